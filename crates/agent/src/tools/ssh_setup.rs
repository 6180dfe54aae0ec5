//! `ssh-setup USER`: add the public keys read from stdin to USER's
//! `~/.ssh/authorized_keys` (creating `~/.ssh` 0700 and the file 0600, owned by USER; keys
//! already there are not added twice), then print the guest's SSH host public keys, one
//! `TYPE BASE64` per line, for the host to pin.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

const HOST_KEY_DIR: &str = "/etc/ssh";

pub fn run(args: &[String]) -> Result<(), String> {
    let [user] = args else {
        return Err("usage: ssh-setup USER".into());
    };
    let mut keys = String::new();
    io::stdin()
        .read_to_string(&mut keys)
        .map_err(|e| format!("reading the keys failed: {e}"))?;
    let account = lookup(Path::new("/etc/passwd"), user)?;
    authorize(&account, &keys)?;
    for key in host_keys(Path::new(HOST_KEY_DIR)) {
        println!("{key}");
    }
    Ok(())
}

#[derive(Debug, PartialEq, Eq)]
struct Account {
    uid: u32,
    gid: u32,
    home: PathBuf,
}

fn lookup(passwd: &Path, user: &str) -> Result<Account, String> {
    let text =
        fs::read_to_string(passwd).map_err(|e| format!("cannot read {}: {e}", passwd.display()))?;
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            (f.len() >= 7 && f[0] == user).then(|| {
                Some(Account {
                    uid: f[2].parse().ok()?,
                    gid: f[3].parse().ok()?,
                    home: PathBuf::from(f[5]),
                })
            })?
        })
        .next()
        .ok_or_else(|| format!("no user {user:?} in {}", passwd.display()))
}

fn authorize(account: &Account, keys: &str) -> Result<(), String> {
    let dir = account.home.join(".ssh");
    let file = dir.join("authorized_keys");
    let fail =
        |what: &str, path: &Path, e: io::Error| format!("cannot {what} {}: {e}", path.display());
    match fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => chown(&dir, account).map_err(|e| fail("chown", &dir, e))?,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(fail("create", &dir, e)),
    }
    let existing = fs::read_to_string(&file).unwrap_or_default();
    let mut text = existing.clone();
    for key in keys.lines().map(str::trim).filter(|k| !k.is_empty()) {
        if !existing.lines().any(|line| line.trim() == key) {
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(key);
            text.push('\n');
        }
    }
    if text == existing {
        return Ok(());
    }
    // A temporary name and a rename: sshd never reads a half-written file.
    let tmp = dir.join(".authorized_keys.banger");
    let _ = fs::remove_file(&tmp);
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| io::Write::write_all(&mut f, text.as_bytes()).and_then(|()| f.sync_all()))
        .map_err(|e| fail("write", &tmp, e))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600))
        .map_err(|e| fail("chmod", &tmp, e))?;
    chown(&tmp, account).map_err(|e| fail("chown", &tmp, e))?;
    fs::rename(&tmp, &file).map_err(|e| fail("rename into", &file, e))
}

fn chown(path: &Path, account: &Account) -> io::Result<()> {
    std::os::unix::fs::lchown(path, Some(account.uid), Some(account.gid))
}

/// `TYPE BASE64` of every `ssh_host_*_key.pub` in `dir`, sorted; the comment is dropped.
fn host_keys(dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut keys: Vec<String> = entries
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with("ssh_host_") && name.ends_with("_key.pub")
        })
        .filter_map(|e| fs::read_to_string(e.path()).ok())
        .filter_map(|text| {
            let mut words = text.split_whitespace();
            Some(format!("{} {}", words.next()?, words.next()?))
        })
        .collect();
    keys.sort();
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_found_in_passwd() {
        let dir = tempfile::tempdir().unwrap();
        let passwd = dir.path().join("passwd");
        fs::write(
            &passwd,
            "root:x:0:0:root:/root:/bin/sh\ndev:x:1000:100::/home/dev:/bin/bash\n",
        )
        .unwrap();
        assert_eq!(
            lookup(&passwd, "dev").unwrap(),
            Account {
                uid: 1000,
                gid: 100,
                home: "/home/dev".into()
            }
        );
        assert!(
            lookup(&passwd, "nobody")
                .unwrap_err()
                .contains("no user \"nobody\"")
        );
    }

    #[test]
    fn keys_are_added_once_and_host_keys_are_read() {
        let dir = tempfile::tempdir().unwrap();
        // SAFETY: geteuid/getegid have no memory effects.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        let account = Account {
            uid,
            gid,
            home: dir.path().into(),
        };
        authorize(&account, "ssh-ed25519 AAAA one\n").unwrap();
        authorize(&account, "ssh-ed25519 AAAA one\nssh-ed25519 BBBB two\n").unwrap();
        let file = dir.path().join(".ssh/authorized_keys");
        assert_eq!(
            fs::read_to_string(&file).unwrap(),
            "ssh-ed25519 AAAA one\nssh-ed25519 BBBB two\n"
        );
        assert_eq!(
            fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::metadata(dir.path().join(".ssh"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
        let etc = dir.path().join("etc");
        fs::create_dir(&etc).unwrap();
        fs::write(
            etc.join("ssh_host_ed25519_key.pub"),
            "ssh-ed25519 KEY root@dev\n",
        )
        .unwrap();
        fs::write(etc.join("ssh_host_ed25519_key"), "private").unwrap();
        assert_eq!(host_keys(&etc), ["ssh-ed25519 KEY"]);
        assert!(host_keys(&dir.path().join("none")).is_empty());
    }
}
