//! `install` against release files served from 127.0.0.1: a good release, a checksum
//! mismatch, a truncated download, a tarball without the binary, a binary that is another
//! version, and a running binary being replaced. These tests must run as root (the
//! installed files are chowned to root, as in production).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::{Arc, Mutex};

use banger_firecracker::SemVer;
use banger_firecracker::install::{InstallError, InstallRequest, install};
use banger_system::RealRunner;

/// path → (body, Content-Length to announce)
type Routes = Arc<Mutex<HashMap<String, (Vec<u8>, usize)>>>;

/// A tiny HTTP/1.1 server; each connection gets one answer.
fn serve(routes: Routes) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let routes = routes.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let path = line.split(' ').nth(1).unwrap_or("").to_owned();
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                        break;
                    }
                }
                let found = routes.lock().unwrap().get(&path).cloned();
                match found {
                    Some((body, announced)) => {
                        let _ = write!(
                            stream,
                            "HTTP/1.1 200 OK\r\nContent-Length: {announced}\r\nConnection: close\r\n\r\n"
                        );
                        let _ = stream.write_all(&body);
                    }
                    None => {
                        let _ = write!(
                            stream,
                            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        );
                    }
                }
            });
        }
    });
    format!("http://{addr}/releases/download")
}

fn script(version_line: &str) -> Vec<u8> {
    format!("#!/bin/sh\necho '{version_line}'\n").into_bytes()
}

/// A release tarball holding `files` (name inside `release-vV-ARCH/`, contents).
fn tarball(version: &str, files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut builder = tar::Builder::new(gz);
    for (name, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o755);
        header.set_cksum();
        builder
            .append_data(
                &mut header,
                format!("release-v{version}-x86_64/{name}"),
                &data[..],
            )
            .unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

fn sha256(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

struct Release {
    routes: Routes,
    base: String,
    bin_dir: tempfile::TempDir,
}

impl Release {
    /// Publish `tgz` as release `version`, with `checksum_of`'s SHA-256.
    fn publish(
        version: &str,
        tgz: Vec<u8>,
        checksum_of: &[u8],
        announced: Option<usize>,
    ) -> Release {
        assert_eq!(
            // SAFETY: geteuid has no preconditions.
            unsafe { libc::geteuid() },
            0,
            "these tests install root-owned files and must run as root"
        );
        let routes: Routes = Arc::default();
        let name = format!("firecracker-v{version}-x86_64.tgz");
        let sums = format!("{}  {name}\n", sha256(checksum_of));
        let len = announced.unwrap_or(tgz.len());
        let mut map = routes.lock().unwrap();
        map.insert(format!("/releases/download/v{version}/{name}"), (tgz, len));
        map.insert(
            format!("/releases/download/v{version}/{name}.sha256.txt"),
            (sums.clone().into_bytes(), sums.len()),
        );
        drop(map);
        let base = serve(routes.clone());
        Release {
            routes,
            base,
            bin_dir: tempfile::tempdir().unwrap(),
        }
    }

    fn install(
        &self,
        version: &str,
    ) -> Result<banger_firecracker::install::Installed, InstallError> {
        let req = InstallRequest {
            version: SemVer::parse(version).unwrap(),
            base_url: self.base.clone(),
            bin_dir: self.bin_dir.path().to_path_buf(),
            arch: "x86_64".into(),
        };
        let mut lines = Vec::new();
        let result = install(&req, &RealRunner, &mut |l| lines.push(l.to_owned()));
        assert!(!lines.is_empty());
        result
    }

    fn nothing_installed(&self) {
        let entries: Vec<_> = std::fs::read_dir(self.bin_dir.path()).unwrap().collect();
        assert!(entries.is_empty(), "{entries:?}");
    }
}

fn good_files(version: &str) -> Vec<(&'static str, Vec<u8>)> {
    let fc: &'static str = Box::leak(format!("firecracker-v{version}-x86_64").into_boxed_str());
    let jailer: &'static str = Box::leak(format!("jailer-v{version}-x86_64").into_boxed_str());
    vec![
        (fc, script(&format!("Firecracker v{version}"))),
        (jailer, script(&format!("Jailer v{version}"))),
        ("SHA256SUMS", b"unused".to_vec()),
    ]
}

fn check_installed(path: &Path) {
    let meta = std::fs::symlink_metadata(path).unwrap();
    assert!(meta.file_type().is_file());
    assert_eq!(meta.uid(), 0);
    assert_eq!(meta.gid(), 0);
    assert_eq!(meta.permissions().mode() & 0o7777, 0o755);
}

#[test]
fn a_good_release_is_installed_root_owned_and_runs() {
    let tgz = tarball("1.14.1", &good_files("1.14.1"));
    let release = Release::publish("1.14.1", tgz.clone(), &tgz, None);
    let installed = release.install("1.14.1").unwrap();
    assert_eq!(installed.sha256, sha256(&tgz));
    check_installed(&installed.firecracker);
    check_installed(&installed.jailer);
    assert_eq!(
        installed.firecracker,
        release.bin_dir.path().join("firecracker")
    );
    let version = banger_firecracker::query_version(&RealRunner, &installed.firecracker).unwrap();
    assert_eq!(version.to_string(), "v1.14.1");
    // Only the two binaries, no temporary files left behind.
    let mut names: Vec<String> = std::fs::read_dir(release.bin_dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["firecracker", "jailer"]);
}

#[test]
fn a_running_binary_is_replaced_by_rename_not_rewritten() {
    let tgz = tarball("1.14.1", &good_files("1.14.1"));
    let release = Release::publish("1.14.1", tgz.clone(), &tgz, None);
    let target = release.bin_dir.path().join("firecracker");
    std::fs::write(&target, b"old binary").unwrap();
    // A running process holds the old file open; its contents must not change.
    let mut held = std::fs::File::open(&target).unwrap();
    let old_inode = std::fs::metadata(&target).unwrap().ino();
    release.install("1.14.1").unwrap();
    assert_ne!(std::fs::metadata(&target).unwrap().ino(), old_inode);
    let mut old = String::new();
    held.read_to_string(&mut old).unwrap();
    assert_eq!(old, "old binary");
}

#[test]
fn a_checksum_mismatch_installs_nothing() {
    let tgz = tarball("1.14.1", &good_files("1.14.1"));
    let release = Release::publish("1.14.1", tgz, b"something else", None);
    let err = release.install("1.14.1").unwrap_err();
    assert!(
        matches!(err, InstallError::ChecksumMismatch { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("nothing was installed"), "{err}");
    release.nothing_installed();
}

#[test]
fn a_truncated_download_installs_nothing() {
    let tgz = tarball("1.14.1", &good_files("1.14.1"));
    let cut = tgz[..tgz.len() / 2].to_vec();
    let release = Release::publish("1.14.1", cut, &tgz, Some(tgz.len()));
    let err = release.install("1.14.1").unwrap_err();
    let text = banger_system::error_chain(&err);
    assert!(matches!(err, InstallError::Truncated { .. }), "{text}");
    release.nothing_installed();
}

#[test]
fn a_tarball_without_the_binary_installs_nothing() {
    let files = vec![("jailer-v1.14.1-x86_64", script("Jailer v1.14.1"))];
    let tgz = tarball("1.14.1", &files);
    let release = Release::publish("1.14.1", tgz.clone(), &tgz, None);
    let err = release.install("1.14.1").unwrap_err();
    assert!(matches!(err, InstallError::MissingBinary { .. }), "{err}");
    assert!(
        err.to_string().contains("firecracker-v1.14.1-x86_64"),
        "{err}"
    );
    release.nothing_installed();
}

#[test]
fn a_binary_of_another_version_installs_nothing() {
    let mut files = good_files("1.14.1");
    files[0].1 = script("Firecracker v1.13.0");
    let tgz = tarball("1.14.1", &files);
    let release = Release::publish("1.14.1", tgz.clone(), &tgz, None);
    let err = release.install("1.14.1").unwrap_err();
    assert!(matches!(err, InstallError::VersionMismatch { .. }), "{err}");
    release.nothing_installed();
}

#[test]
fn an_unknown_version_is_a_download_error_naming_the_url() {
    let tgz = tarball("1.14.1", &good_files("1.14.1"));
    let release = Release::publish("1.14.1", tgz.clone(), &tgz, None);
    let err = release.install("1.99.0").unwrap_err();
    assert!(matches!(err, InstallError::Download { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("v1.99.0/firecracker-v1.99.0-x86_64.tgz.sha256.txt"),
        "{err}"
    );
    let _ = release.routes.lock().unwrap().len();
    release.nothing_installed();
}
