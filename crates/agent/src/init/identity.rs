//! A VM's own identity, made at its first boot and never shared with another VM of the
//! same image: hostname (`/etc/hostname`, `/etc/hosts`), `/etc/machine-id`, and SSH host
//! keys. `/etc/banger/identity` records the VM id it was made for, so a disk cloned
//! into a new VM gets a new identity while a restart keeps it.

use std::fs;
use std::io::{self, Write};
use std::path::Path;
use std::process::Command;

use crate::log;

pub const MARKER: &str = "etc/banger/identity";

/// Make the identity of VM `vm_id` named `name` under `root`, unless it is already there.
/// Failures are logged: a VM with a missing piece is still worth booting.
pub fn ensure(root: &Path, name: &str, vm_id: &str) {
    let marker = root.join(MARKER);
    let current = fs::read_to_string(&marker).unwrap_or_default();
    if !vm_id.is_empty() && current.trim() == vm_id {
        return;
    }
    log!("first boot of VM {vm_id}: making its hostname, machine-id and SSH host keys");
    for (what, result) in [
        ("hostname", write_hostname(root, name)),
        ("machine-id", write_machine_id(root)),
        ("SSH host keys", ssh_host_keys(root, name)),
    ] {
        if let Err(e) = result {
            log!("setting up the {what} failed: {e}");
        }
    }
    if let Err(e) = write_atomic(root, &marker, format!("{vm_id}\n").as_bytes()) {
        log!("recording the identity in {} failed: {e}", marker.display());
    }
}

fn write_hostname(root: &Path, name: &str) -> io::Result<()> {
    write_atomic(
        root,
        &root.join("etc/hostname"),
        format!("{name}\n").as_bytes(),
    )?;
    let hosts_path = root.join("etc/hosts");
    let old = fs::read_to_string(&hosts_path).unwrap_or_else(|_| {
        "127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n".to_string()
    });
    let mut hosts: String = old
        .lines()
        .filter(|l| !l.starts_with("127.0.1.1"))
        .map(|l| format!("{l}\n"))
        .collect();
    hosts.push_str(&format!("127.0.1.1\t{name}\n"));
    write_atomic(root, &hosts_path, hosts.as_bytes())
}

fn write_machine_id(root: &Path) -> io::Result<()> {
    let mut bytes = [0u8; 16];
    // SAFETY: getrandom writes at most `bytes.len()` bytes into the buffer we own.
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if n != bytes.len() as isize {
        return Err(io::Error::last_os_error());
    }
    let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    write_atomic(
        root,
        &root.join("etc/machine-id"),
        format!("{id}\n").as_bytes(),
    )?;
    // D-Bus keeps its own copy on some systems; a symlink to /etc/machine-id is fine.
    let dbus = root.join("var/lib/dbus/machine-id");
    if fs::symlink_metadata(&dbus).is_ok_and(|m| m.is_file()) {
        write_atomic(root, &dbus, format!("{id}\n").as_bytes())?;
    }
    Ok(())
}

/// A fresh ed25519 host key (the only one the image's sshd is configured to use), made
/// by the image's own `ssh-keygen`. `root` is `/` at boot (tests use a temp dir, with no
/// ssh-keygen in it).
fn ssh_host_keys(root: &Path, name: &str) -> io::Result<()> {
    let keygen = root.join("usr/bin/ssh-keygen");
    if !keygen.exists() {
        return Ok(()); // No OpenSSH in this image.
    }
    let ssh_dir = root.join("etc/ssh");
    if let Ok(entries) = fs::read_dir(&ssh_dir) {
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with("ssh_host_") {
                fs::remove_file(entry.path())?;
            }
        }
    }
    let out = Command::new(&keygen)
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(ssh_dir.join("ssh_host_ed25519_key"))
        .arg("-C")
        .arg(format!("root@{name}"))
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "ssh-keygen failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Write `path` through a temp file in the same directory, fsync, rename: a power cut
/// never leaves half a file. Refuses a destination that is a symlink leading out of `root`
/// (the image's files are the image author's, not ours to follow).
fn write_atomic(root: &Path, path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(root);
    fs::create_dir_all(dir)?;
    if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        fs::remove_file(path)?;
    }
    let tmp = dir.join(format!(
        ".{}.banger-tmp",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_vm_id_gets_a_new_identity_and_a_restart_keeps_it() {
        let root = tempfile::tempdir().unwrap();
        let etc = root.path().join("etc");
        fs::create_dir_all(&etc).unwrap();
        fs::write(etc.join("machine-id"), "").unwrap();
        fs::write(
            etc.join("hosts"),
            "127.0.0.1\tlocalhost\n127.0.1.1\timagehost\n",
        )
        .unwrap();

        ensure(root.path(), "dev", "aaaa00000001");
        let id1 = fs::read_to_string(etc.join("machine-id")).unwrap();
        assert_eq!(id1.trim().len(), 32);
        assert_eq!(fs::read_to_string(etc.join("hostname")).unwrap(), "dev\n");
        let hosts = fs::read_to_string(etc.join("hosts")).unwrap();
        assert_eq!(hosts, "127.0.0.1\tlocalhost\n127.0.1.1\tdev\n");

        ensure(root.path(), "dev", "aaaa00000001");
        assert_eq!(fs::read_to_string(etc.join("machine-id")).unwrap(), id1);

        ensure(root.path(), "clone", "bbbb00000002");
        let id2 = fs::read_to_string(etc.join("machine-id")).unwrap();
        assert_ne!(id1, id2);
        assert_eq!(
            fs::read_to_string(root.path().join(MARKER)).unwrap(),
            "bbbb00000002\n"
        );
    }
}
