//! An SSH host key made in-process: an ed25519 key pair written in OpenSSH's own formats
//! (`openssh-key-v1` private key, `ssh-ed25519 …` public line). Spawning the image's
//! `ssh-keygen` instead cost ~300 ms of every first boot under TCG (it loads libcrypto),
//! time spent before sshd can start.
//!
//! The private key format is OpenSSH's `PROTOCOL.key`: magic, cipher `none`, KDF `none`,
//! one public key, then the private section (two equal check words, the key, its comment,
//! padding to the 8-byte block).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

const MAGIC: &[u8] = b"openssh-key-v1\0";
const KEY_TYPE: &str = "ssh-ed25519";
/// The unencrypted private section is padded to this block size.
const BLOCK: usize = 8;
/// OpenSSH wraps the base64 of a private key at 70 columns.
const WRAP: usize = 70;

/// A key pair in OpenSSH's file formats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostKey {
    /// `-----BEGIN OPENSSH PRIVATE KEY-----` …: the file sshd reads (mode 0600).
    pub private: String,
    /// `ssh-ed25519 AAAA… comment`: the `.pub` file.
    pub public: String,
}

/// The ed25519 key pair of the 32-byte `seed`, with `check` as the private section's
/// check word (random in real keys: it only tells a wrong passphrase from a right one).
pub fn ed25519(seed: &[u8; 32], check: u32, comment: &str) -> HostKey {
    let signing = ed25519_dalek::SigningKey::from_bytes(seed);
    let public = signing.verifying_key().to_bytes();

    let mut public_blob = Vec::with_capacity(51);
    put_string(&mut public_blob, KEY_TYPE.as_bytes());
    put_string(&mut public_blob, &public);

    let mut private_section = Vec::with_capacity(160 + comment.len());
    private_section.extend_from_slice(&check.to_be_bytes());
    private_section.extend_from_slice(&check.to_be_bytes());
    put_string(&mut private_section, KEY_TYPE.as_bytes());
    put_string(&mut private_section, &public);
    // OpenSSH stores the 64-byte "secret key" of ref10: the seed, then the public key.
    let mut secret = [0u8; 64];
    secret[..32].copy_from_slice(seed);
    secret[32..].copy_from_slice(&public);
    put_string(&mut private_section, &secret);
    put_string(&mut private_section, comment.as_bytes());
    let mut pad = 1u8;
    while private_section.len() % BLOCK != 0 {
        private_section.push(pad);
        pad += 1;
    }

    let mut file = Vec::with_capacity(MAGIC.len() + 64 + public_blob.len() + private_section.len());
    file.extend_from_slice(MAGIC);
    put_string(&mut file, b"none"); // cipher
    put_string(&mut file, b"none"); // KDF
    put_string(&mut file, b""); // KDF options
    file.extend_from_slice(&1u32.to_be_bytes()); // number of keys
    put_string(&mut file, &public_blob);
    put_string(&mut file, &private_section);

    let encoded = STANDARD.encode(&file);
    let mut private = String::from("-----BEGIN OPENSSH PRIVATE KEY-----\n");
    for line in encoded.as_bytes().chunks(WRAP) {
        // base64 output is ASCII, so every chunk is valid UTF-8.
        private.push_str(&String::from_utf8_lossy(line));
        private.push('\n');
    }
    private.push_str("-----END OPENSSH PRIVATE KEY-----\n");
    HostKey {
        private,
        public: format!("{KEY_TYPE} {} {comment}\n", STANDARD.encode(&public_blob)),
    }
}

/// SSH wire `string`: a big-endian u32 length, then the bytes.
fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::process::Command;

    /// RFC 8032 test vector 1: the seed and the public key it must give.
    #[test]
    fn the_public_key_is_rfc_8032s() {
        let seed: [u8; 32] =
            hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
        let key = ed25519(&seed, 7, "root@test");
        let blob = STANDARD
            .decode(key.public.split_whitespace().nth(1).unwrap())
            .unwrap();
        assert_eq!(
            &blob[blob.len() - 32..],
            hex::<32>("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
        );
        assert!(key.public.ends_with(" root@test\n"));
        assert!(key.private.lines().all(|l| l.len() <= WRAP + 1));
    }

    /// The real OpenSSH reads our private key and derives the same public key from it.
    #[test]
    fn ssh_keygen_reads_the_private_key() {
        let Some(keygen) = ["/usr/bin/ssh-keygen", "/bin/ssh-keygen"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
        else {
            panic!("this test needs ssh-keygen (apt-get install openssh-client)");
        };
        let dir = tempfile::tempdir().unwrap();
        for (i, comment) in ["root@a", "root@a-much-longer-host-name.example"]
            .iter()
            .enumerate()
        {
            let seed = [i as u8 + 1; 32];
            let key = ed25519(&seed, 0x1234_5678, comment);
            let path = dir.path().join(format!("key{i}"));
            std::fs::write(&path, &key.private).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            let out = Command::new(keygen)
                .arg("-y")
                .arg("-f")
                .arg(&path)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "ssh-keygen refused the key: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let derived = String::from_utf8(out.stdout).unwrap();
            assert_eq!(derived.trim(), key.public.trim(), "comment {comment}");
        }
    }

    fn hex<const N: usize>(s: &str) -> [u8; N] {
        let mut out = [0u8; N];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }
}
