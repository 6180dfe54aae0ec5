//! banger's own known_hosts file: the host keys each guest reported, pinned under
//! `banger-<vm id>` (the `HostKeyAlias` of its block in the rendered ssh_config).
//!
//! Host keys come from the guest, which is untrusted: each line is checked to be exactly
//! `KEYTYPE BASE64` of a known type and bounded length before it is written.

use std::path::Path;

use crate::SshError;

const MAX_KEY_LEN: usize = 16 * 1024;
const KEY_TYPES: [&str; 6] = [
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
    "sk-ssh-ed25519@openssh.com",
];

fn validate(alias: &str, key: &str) -> Result<String, SshError> {
    let bad = |why| SshError::BadHostKey {
        alias: alias.to_string(),
        line: key.chars().take(80).collect(),
        why,
    };
    if key.len() > MAX_KEY_LEN {
        return Err(bad("it is too long"));
    }
    if key.chars().any(char::is_control) {
        return Err(bad("it contains control characters"));
    }
    let mut parts = key.split_whitespace();
    let (Some(kind), Some(blob)) = (parts.next(), parts.next()) else {
        return Err(bad("it is not `KEYTYPE BASE64`"));
    };
    // A trailing comment (`root@host`) is dropped; anything else is refused.
    if !KEY_TYPES.contains(&kind) {
        return Err(bad("unknown key type"));
    }
    if blob.is_empty()
        || !blob
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
    {
        return Err(bad("the key is not base64"));
    }
    Ok(format!("banger-{alias} {kind} {blob}"))
}

fn alias_ok(alias: &str) -> bool {
    !alias.is_empty()
        && alias.len() <= 63
        && alias
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn read(path: &Path) -> Result<String, SshError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(source) => Err(SshError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn is_for(line: &str, alias: &str) -> bool {
    line.split_whitespace().next() == Some(&format!("banger-{alias}"))
}

/// Pin `keys` (`KEYTYPE BASE64 [comment]` lines) for VM `alias`, replacing what was
/// pinned for it before. Nothing is written unless every key is valid.
pub fn pin(path: &Path, alias: &str, keys: &[String]) -> Result<(), SshError> {
    if !alias_ok(alias) {
        return Err(SshError::BadHostKey {
            alias: alias.to_string(),
            line: String::new(),
            why: "the alias is not a DNS label",
        });
    }
    let lines = keys
        .iter()
        .map(|k| validate(alias, k))
        .collect::<Result<Vec<_>, _>>()?;
    let mut out: String = read(path)?
        .lines()
        .filter(|l| !is_for(l, alias))
        .map(|l| format!("{l}\n"))
        .collect();
    for line in lines {
        out.push_str(&line);
        out.push('\n');
    }
    if let Some(dir) = path.parent() {
        crate::write::private_dir(dir)?;
    }
    crate::write::atomic(path, out.as_bytes(), 0o600)
}

/// Forget VM `alias`'s keys; `false` if none were pinned.
pub fn unpin(path: &Path, alias: &str) -> Result<bool, SshError> {
    let text = read(path)?;
    let kept: String = text
        .lines()
        .filter(|l| !is_for(l, alias))
        .map(|l| format!("{l}\n"))
        .collect();
    if kept.len() == text.len() {
        return Ok(false);
    }
    crate::write::atomic(path, kept.as_bytes(), 0o600)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHk0Z2y1 root@guest";

    #[test]
    fn pins_replaces_and_unpins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        pin(&path, "aaaa", &[KEY.into()]).unwrap();
        pin(&path, "bbbb", &[KEY.into()]).unwrap();
        pin(&path, "aaaa", &["ecdsa-sha2-nistp256 AAAAE2V=".into()]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "banger-bbbb ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHk0Z2y1\nbanger-aaaa ecdsa-sha2-nistp256 AAAAE2V=\n"
        );
        assert!(unpin(&path, "aaaa").unwrap());
        assert!(!unpin(&path, "aaaa").unwrap());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "banger-bbbb ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHk0Z2y1\n"
        );
    }

    #[test]
    fn hostile_keys_are_refused_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        for bad in [
            "ssh-ed25519",
            "ssh-ed25519 AAAA\n* ssh-ed25519 BBBB",
            "evil-type AAAA",
            "ssh-ed25519 AA;AA",
            "@cert-authority * ssh-ed25519 AAAA",
        ] {
            assert!(
                pin(&path, "aaaa", &[KEY.into(), bad.into()]).is_err(),
                "{bad:?}"
            );
        }
        assert!(pin(&path, "a*", &[KEY.into()]).is_err());
        assert!(!path.exists());
    }
}
