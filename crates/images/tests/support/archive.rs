//! A fake Debian archive served on 127.0.0.1, its `InRelease` signed by a
//! throwaway key made with the real `gpg`.

use std::path::PathBuf;
use std::time::Duration;

use banger_images::debian::DebianOptions;
use sha2::{Digest, Sha256};

use super::http::Server;
use super::run;

/// A throwaway OpenPGP key in a temp GNUPGHOME, and its public keyring.
pub struct Signer {
    home: tempfile::TempDir,
    pub keyring: PathBuf,
}

impl Signer {
    pub fn new() -> Self {
        let home = tempfile::Builder::new().prefix("gpg").tempdir().unwrap();
        let h = home.path().to_str().unwrap().to_string();
        run(
            "gpg",
            &[
                "--batch",
                "--homedir",
                &h,
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
                "--quick-gen-key",
                "banger test archive <test@banger.invalid>",
                "ed25519",
                "sign",
                "never",
            ],
        );
        let keyring = home.path().join("archive-keyring.gpg");
        run(
            "gpg",
            &[
                "--batch",
                "--homedir",
                &h,
                "--export",
                "--output",
                keyring.to_str().unwrap(),
            ],
        );
        Self { home, keyring }
    }

    pub fn clearsign(&self, text: &str) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("Release");
        let output = dir.path().join("InRelease");
        std::fs::write(&input, text).unwrap();
        let h = self.home.path().to_str().unwrap();
        run(
            "gpg",
            &[
                "--batch",
                "--homedir",
                h,
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
                "--clearsign",
                "--output",
                output.to_str().unwrap(),
                input.to_str().unwrap(),
            ],
        );
        std::fs::read(output).unwrap()
    }
}

impl Drop for Signer {
    fn drop(&mut self) {
        // gpg started an agent for this home; stop it with the home.
        let _ = std::process::Command::new("gpgconf")
            .args([
                "--homedir",
                self.home.path().to_str().unwrap(),
                "--kill",
                "all",
            ])
            .output();
    }
}

pub fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

pub struct Entry {
    pub name: String,
    pub version: String,
    pub filename: String,
    pub bytes: Vec<u8>,
    pub depends: Option<String>,
}

pub struct FakeArchive {
    pub server: Server,
    pub signer: Signer,
    pub entries: Vec<Entry>,
    pub by_hash: bool,
    pub valid_until: Option<String>,
    /// `Packages.xz` as last published.
    pub packages_xz: Vec<u8>,
}

pub const SUITE_PATH: &str = "/debian/dists/bookworm";
pub const PACKAGES_PATH: &str = "/debian/dists/bookworm/main/binary-amd64/Packages.xz";

impl FakeArchive {
    pub fn new() -> Self {
        Self {
            server: Server::start(),
            signer: Signer::new(),
            entries: Vec::new(),
            by_hash: false,
            valid_until: None,
            packages_xz: Vec::new(),
        }
    }

    pub fn add(
        &mut self,
        name: &str,
        version: &str,
        bytes: Vec<u8>,
        depends: Option<&str>,
    ) -> String {
        let first = &name[..1];
        let filename = format!("pool/main/{first}/{name}/{name}_{version}_amd64.deb");
        self.server
            .put(&format!("/debian/{filename}"), bytes.clone());
        self.entries.push(Entry {
            name: name.into(),
            version: version.into(),
            filename: filename.clone(),
            bytes,
            depends: depends.map(str::to_string),
        });
        format!("/debian/{filename}")
    }

    /// The `Release` text for the current packages (unsigned).
    pub fn release_text(&mut self) -> String {
        let mut packages = String::new();
        for e in &self.entries {
            packages.push_str(&format!(
                "Package: {}\nVersion: {}\nArchitecture: amd64\nMaintainer: t <t@banger.invalid>\n",
                e.name, e.version
            ));
            if let Some(d) = &e.depends {
                packages.push_str(&format!("Depends: {d}\n"));
            }
            packages.push_str(&format!(
                "Description: test\n more text\n .\n end\nFilename: {}\nSize: {}\nSHA256: {}\n\n",
                e.filename,
                e.bytes.len(),
                sha256(&e.bytes)
            ));
        }
        self.packages_xz = super::xz(packages.as_bytes());
        let mut text = String::from(
            "Origin: Debian\nLabel: Debian\nSuite: stable\nCodename: bookworm\nDate: Sat, 11 Jul 2026 10:16:37 UTC\n",
        );
        if let Some(v) = &self.valid_until {
            text.push_str(&format!("Valid-Until: {v}\n"));
        }
        if self.by_hash {
            text.push_str("Acquire-By-Hash: yes\n");
        }
        text.push_str(
            "Architectures: amd64 arm64\nComponents: main contrib\nDescription: fake\nSHA256:\n",
        );
        text.push_str(&format!(
            " {} {:>8} main/binary-amd64/Packages\n",
            sha256(packages.as_bytes()),
            packages.len()
        ));
        text.push_str(&format!(
            " {} {:>8} main/binary-amd64/Packages.xz\n",
            sha256(&self.packages_xz),
            self.packages_xz.len()
        ));
        text
    }

    /// Sign and serve `InRelease` and `Packages.xz`.
    pub fn publish(&mut self) {
        let text = self.release_text();
        let signed = self.signer.clearsign(&text);
        self.server.put(&format!("{SUITE_PATH}/InRelease"), signed);
        if self.by_hash {
            let path = format!(
                "{SUITE_PATH}/main/binary-amd64/by-hash/SHA256/{}",
                sha256(&self.packages_xz)
            );
            self.server.put(&path, self.packages_xz.clone());
        } else {
            self.server.put(PACKAGES_PATH, self.packages_xz.clone());
        }
    }

    pub fn options(&self) -> DebianOptions {
        DebianOptions {
            mirror: format!("{}/debian", self.server.url()),
            keyring: self.signer.keyring.clone(),
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            ..DebianOptions::default()
        }
    }
}
