//! A VM's own identity, made at its first boot and never shared with another VM of the
//! same image: hostname (`/etc/hostname`, `/etc/hosts`), `/etc/machine-id`, and SSH host
//! keys. `/etc/banger/identity` records the VM id it was made for, so a disk cloned
//! into a new VM gets a new identity while a restart keeps it.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::log;

pub const MARKER: &str = "etc/banger/identity";

/// Make the identity of VM `vm_id` named `name` under `root`, unless it is already there.
/// Failures are logged: a VM with a missing piece is still worth booting.
pub fn ensure(root: &Path, name: &str, vm_id: &str) {
    let marker = root.join(MARKER);
    let current = fs::read_to_string(&marker).unwrap_or_default();
    if !vm_id.is_empty() && current.trim() == vm_id {
        // The same machine under a new name (a standby handed to `vm run` is renamed): its
        // machine-id and host keys stay, its name follows.
        let named = fs::read_to_string(root.join("etc/hostname")).unwrap_or_default();
        if named.trim() != name
            && let Err(e) = write_hostname(root, name)
        {
            log!("renaming the host to {name} failed: {e}");
        }
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
    if let Err(e) = write_atomic(root, &marker, format!("{vm_id}\n").as_bytes(), 0o644) {
        log!("recording the identity in {} failed: {e}", marker.display());
    }
}

fn write_hostname(root: &Path, name: &str) -> io::Result<()> {
    write_atomic(
        root,
        &root.join("etc/hostname"),
        format!("{name}\n").as_bytes(),
        0o644,
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
    write_atomic(root, &hosts_path, hosts.as_bytes(), 0o644)
}

fn write_machine_id(root: &Path) -> io::Result<()> {
    let mut bytes = [0u8; 16];
    fill_random(&mut bytes)?;
    let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    write_atomic(
        root,
        &root.join("etc/machine-id"),
        format!("{id}\n").as_bytes(),
        0o444,
    )?;
    // D-Bus keeps its own copy on some systems; a symlink to /etc/machine-id is fine.
    let dbus = root.join("var/lib/dbus/machine-id");
    if fs::symlink_metadata(&dbus).is_ok_and(|m| m.is_file()) {
        write_atomic(root, &dbus, format!("{id}\n").as_bytes(), 0o444)?;
    }
    Ok(())
}

/// A fresh ed25519 host key (the only one the image's sshd is configured to use), made
/// in-process ([`super::hostkey`]). Images without OpenSSH get none.
fn ssh_host_keys(root: &Path, name: &str) -> io::Result<()> {
    let has_openssh = ["usr/sbin/sshd", "sbin/sshd"]
        .iter()
        .any(|p| fs::symlink_metadata(root.join(p)).is_ok());
    if !has_openssh {
        return Ok(());
    }
    let ssh_dir = root.join("etc/ssh");
    if let Ok(entries) = fs::read_dir(&ssh_dir) {
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with("ssh_host_") {
                fs::remove_file(entry.path())?;
            }
        }
    }
    let mut seed = [0u8; 32];
    let mut check = [0u8; 4];
    fill_random(&mut seed)?;
    fill_random(&mut check)?;
    let key = super::hostkey::ed25519(&seed, u32::from_ne_bytes(check), &format!("root@{name}"));
    write_atomic(
        root,
        &ssh_dir.join("ssh_host_ed25519_key"),
        key.private.as_bytes(),
        0o600,
    )?;
    write_atomic(
        root,
        &ssh_dir.join("ssh_host_ed25519_key.pub"),
        key.public.as_bytes(),
        0o644,
    )
}

/// Fill `buf` from the kernel's CSPRNG (blocking until it is seeded, early in boot).
fn fill_random(buf: &mut [u8]) -> io::Result<()> {
    // SAFETY: getrandom writes at most `buf.len()` bytes into the buffer we own.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n != buf.len() as isize {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Write `path` through a temp file in the same directory, fsync, rename: a power cut
/// never leaves half a file. Refuses a destination that is a symlink leading out of `root`
/// (the image's files are the image author's, not ours to follow).
fn write_atomic(root: &Path, path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
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
        let _ = fs::remove_file(&tmp);
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn a_new_vm_id_gets_a_new_identity_and_a_restart_keeps_it() {
        let root = tempfile::tempdir().unwrap();
        let etc = root.path().join("etc");
        fs::create_dir_all(&etc).unwrap();
        fs::write(etc.join("machine-id"), "").unwrap();
        // An image with OpenSSH gets a host key; one shipped in the image goes.
        fs::create_dir_all(root.path().join("usr/sbin")).unwrap();
        fs::write(root.path().join("usr/sbin/sshd"), "").unwrap();
        fs::create_dir_all(etc.join("ssh")).unwrap();
        fs::write(etc.join("ssh/ssh_host_rsa_key"), "shared").unwrap();
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

        let key = etc.join("ssh/ssh_host_ed25519_key");
        let key1 = fs::read_to_string(&key).unwrap();
        assert!(key1.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
        assert_eq!(fs::metadata(&key).unwrap().mode() & 0o777, 0o600);
        let public = fs::read_to_string(etc.join("ssh/ssh_host_ed25519_key.pub")).unwrap();
        assert!(public.starts_with("ssh-ed25519 ") && public.ends_with(" root@dev\n"));
        assert!(!etc.join("ssh/ssh_host_rsa_key").exists());

        ensure(root.path(), "dev", "aaaa00000001");
        assert_eq!(fs::read_to_string(etc.join("machine-id")).unwrap(), id1);
        assert_eq!(fs::read_to_string(&key).unwrap(), key1);

        ensure(root.path(), "clone", "bbbb00000002");
        let id2 = fs::read_to_string(etc.join("machine-id")).unwrap();
        assert_ne!(id1, id2);
        assert_ne!(fs::read_to_string(&key).unwrap(), key1);
        assert_eq!(
            fs::read_to_string(root.path().join(MARKER)).unwrap(),
            "bbbb00000002\n"
        );

        // Renamed (a standby taken by `vm run`): the name follows, the rest stays.
        let key2 = fs::read_to_string(&key).unwrap();
        ensure(root.path(), "taken", "bbbb00000002");
        assert_eq!(fs::read_to_string(etc.join("hostname")).unwrap(), "taken\n");
        let hosts = fs::read_to_string(etc.join("hosts")).unwrap();
        assert_eq!(hosts, "127.0.0.1\tlocalhost\n127.0.1.1\ttaken\n");
        assert_eq!(fs::read_to_string(etc.join("machine-id")).unwrap(), id2);
        assert_eq!(fs::read_to_string(&key).unwrap(), key2);
    }
}
