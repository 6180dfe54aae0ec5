//! The archive fetcher against a fake mirror on 127.0.0.1 whose InRelease is
//! signed by a throwaway key (real gpg, real gpgv).

use crate::support;

use std::path::PathBuf;

use banger_images::debian::{Archive, DebianError};
use banger_system::RealRunner;
use support::archive::{FakeArchive, PACKAGES_PATH, SUITE_PATH, Signer, sha256};

/// An archive with a kernel metapackage, the kernel it points to, and busybox.
fn archive() -> (FakeArchive, String) {
    let mut a = FakeArchive::new();
    a.add(
        "linux-image-cloud-amd64",
        "6.1.1-1",
        b"meta".to_vec(),
        Some("linux-image-6.1.0-9-cloud-amd64 (= 6.1.1-1)"),
    );
    let deb = a.add(
        "linux-image-6.1.0-9-cloud-amd64",
        "6.1.1-1",
        b"kernel package bytes".to_vec(),
        Some("kmod, initramfs-tools | linux-initramfs-tool"),
    );
    a.add("busybox-static", "1:1.35", b"busybox bytes".to_vec(), None);
    a.publish();
    (a, deb)
}

fn cache() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn good_chain_resolves_metapackage_and_fetches_verified_deb() {
    let (a, deb_path) = archive();
    let cache = cache();
    let archive = Archive::new(a.options(), cache.path(), &RealRunner);
    let index = archive.fetch_index().unwrap();
    assert_eq!(index.len(), 3);
    let kernel = archive
        .resolve_metapackage(&index, "linux-image-cloud-amd64")
        .unwrap();
    assert_eq!(kernel.name, "linux-image-6.1.0-9-cloud-amd64");
    assert_eq!(kernel.version, "6.1.1-1");
    let path = archive.fetch_deb(kernel).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"kernel package bytes");
    assert_eq!(
        path,
        cache
            .path()
            .join("sha256")
            .join(sha256(b"kernel package bytes"))
    );
    assert_eq!(a.server.hits(&deb_path), 1);
    // A package that is not there is a clear error.
    let err = archive.package(&index, "nope").unwrap_err();
    assert!(matches!(err, DebianError::PackageNotFound { .. }), "{err}");
    assert!(err.to_string().contains("nope"));
    // busybox has no Depends: not a metapackage.
    let err = archive
        .resolve_metapackage(&index, "busybox-static")
        .unwrap_err();
    assert!(matches!(err, DebianError::NotMetapackage { .. }), "{err}");
}

#[test]
fn second_fetch_uses_the_cache() {
    let (a, deb_path) = archive();
    let cache = cache();
    for _ in 0..2 {
        let archive = Archive::new(a.options(), cache.path(), &RealRunner);
        let index = archive.fetch_index().unwrap();
        let pkg = archive
            .package(&index, "linux-image-6.1.0-9-cloud-amd64")
            .unwrap();
        archive.fetch_deb(pkg).unwrap();
    }
    assert_eq!(a.server.hits(&deb_path), 1, "the .deb was downloaded twice");
    assert_eq!(
        a.server.hits(PACKAGES_PATH),
        1,
        "Packages.xz was downloaded twice"
    );
    assert_eq!(a.server.hits(&format!("{SUITE_PATH}/InRelease")), 2);
}

#[test]
fn damaged_cache_entry_is_downloaded_again() {
    let (a, _) = archive();
    let cache = cache();
    let archive = Archive::new(a.options(), cache.path(), &RealRunner);
    let index = archive.fetch_index().unwrap();
    let pkg = archive.package(&index, "busybox-static").unwrap();
    let path = archive.fetch_deb(pkg).unwrap();
    std::fs::write(&path, b"busybox bytez").unwrap();
    let again = archive.fetch_deb(pkg).unwrap();
    assert_eq!(std::fs::read(again).unwrap(), b"busybox bytes");
    assert_eq!(a.server.hits(&format!("/debian/{}", pkg.filename)), 2);
}

#[test]
fn tampered_packages_index_fails_with_checksum_error() {
    let (a, _) = archive();
    let mut tampered = a.packages_xz.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0xff;
    a.server.put(PACKAGES_PATH, tampered);
    let cache = cache();
    let err = Archive::new(a.options(), cache.path(), &RealRunner)
        .fetch_index()
        .unwrap_err();
    match &err {
        DebianError::Checksum { what, .. } => assert_eq!(what, "main/binary-amd64/Packages.xz"),
        other => panic!("expected a checksum error, got {other}"),
    }
    assert!(err.to_string().contains("Packages.xz"), "{err}");
    // Nothing unverified is left in the cache.
    let cached: Vec<_> = std::fs::read_dir(cache.path().join("sha256"))
        .unwrap()
        .collect();
    assert!(cached.is_empty(), "{cached:?}");
}

#[test]
fn tampered_deb_fails_with_checksum_error_naming_the_file() {
    let (a, deb_path) = archive();
    a.server.put(&deb_path, b"kernel package bytez".to_vec());
    let cache = cache();
    let archive = Archive::new(a.options(), cache.path(), &RealRunner);
    let index = archive.fetch_index().unwrap();
    let kernel = archive
        .resolve_metapackage(&index, "linux-image-cloud-amd64")
        .unwrap();
    let err = archive.fetch_deb(kernel).unwrap_err();
    assert!(matches!(err, DebianError::Checksum { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("linux-image-6.1.0-9-cloud-amd64_6.1.1-1_amd64.deb"),
        "{err}"
    );
    // A different length is caught too, as a size error.
    a.server.put(&deb_path, b"short".to_vec());
    let err = archive.fetch_deb(kernel).unwrap_err();
    assert!(
        matches!(
            err,
            DebianError::SizeMismatch {
                expected: 20,
                got: 5,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn altered_signed_text_is_a_bad_signature() {
    let (a, _) = archive();
    let signed = a.server.get(&format!("{SUITE_PATH}/InRelease")).unwrap();
    let text = String::from_utf8(signed)
        .unwrap()
        .replace("Codename: bookworm", "Codename: bookwork");
    a.server.put(&format!("{SUITE_PATH}/InRelease"), text);
    let err = Archive::new(a.options(), cache().path(), &RealRunner)
        .fetch_index()
        .unwrap_err();
    assert!(matches!(err, DebianError::BadSignature { .. }), "{err}");
}

#[test]
fn signature_by_an_unknown_key_is_rejected() {
    let (mut a, _) = archive();
    let stranger = Signer::new();
    let text = a.release_text();
    a.server.put(
        &format!("{SUITE_PATH}/InRelease"),
        stranger.clearsign(&text),
    );
    let err = Archive::new(a.options(), cache().path(), &RealRunner)
        .fetch_index()
        .unwrap_err();
    assert!(matches!(err, DebianError::BadSignature { .. }), "{err}");
    assert!(
        err.to_string().contains("no signature is by a key"),
        "{err}"
    );
}

#[test]
fn unsigned_release_is_rejected() {
    let (mut a, _) = archive();
    let text = a.release_text();
    a.server.put(&format!("{SUITE_PATH}/InRelease"), text);
    let err = Archive::new(a.options(), cache().path(), &RealRunner)
        .fetch_index()
        .unwrap_err();
    assert!(matches!(err, DebianError::BadSignature { .. }), "{err}");
}

#[test]
fn by_hash_urls_are_used_when_advertised() {
    let mut a = FakeArchive::new();
    a.by_hash = true;
    a.add("busybox-static", "1", b"bb".to_vec(), None);
    a.publish();
    let index = Archive::new(a.options(), cache().path(), &RealRunner)
        .fetch_index()
        .unwrap();
    assert!(index.get("busybox-static").is_some());
    assert_eq!(a.server.hits(PACKAGES_PATH), 0);
    let by_hash = format!(
        "{SUITE_PATH}/main/binary-amd64/by-hash/SHA256/{}",
        sha256(&a.packages_xz)
    );
    assert_eq!(a.server.hits(&by_hash), 1);
}

#[test]
fn by_hash_falls_back_to_the_plain_path() {
    let mut a = FakeArchive::new();
    a.by_hash = true;
    a.add("busybox-static", "1", b"bb".to_vec(), None);
    a.publish();
    let by_hash = format!(
        "{SUITE_PATH}/main/binary-amd64/by-hash/SHA256/{}",
        sha256(&a.packages_xz)
    );
    a.server.remove(&by_hash);
    a.server.put(PACKAGES_PATH, a.packages_xz.clone());
    Archive::new(a.options(), cache().path(), &RealRunner)
        .fetch_index()
        .unwrap();
    assert_eq!(
        (a.server.hits(&by_hash), a.server.hits(PACKAGES_PATH)),
        (1, 1)
    );
}

#[test]
fn expired_release_is_rejected() {
    let mut a = FakeArchive::new();
    a.valid_until = Some("Mon, 01 Jan 2024 00:00:00 UTC".into());
    a.add("busybox-static", "1", b"bb".to_vec(), None);
    a.publish();
    let err = Archive::new(a.options(), cache().path(), &RealRunner)
        .fetch_index()
        .unwrap_err();
    assert!(matches!(err, DebianError::Release { .. }), "{err}");
    assert!(err.to_string().contains("expired"), "{err}");
}

#[test]
fn wrong_suite_is_rejected() {
    let (a, _) = archive();
    let mut opts = a.options();
    opts.suite = "trixie".into();
    a.server.put(
        "/debian/dists/trixie/InRelease",
        a.server.get(&format!("{SUITE_PATH}/InRelease")).unwrap(),
    );
    let err = Archive::new(opts, cache().path(), &RealRunner)
        .fetch_index()
        .unwrap_err();
    assert!(matches!(err, DebianError::Release { .. }), "{err}");
    assert!(err.to_string().contains("trixie"), "{err}");
}

#[test]
fn missing_keyring_and_gpgv_name_the_package_to_install() {
    let (a, _) = archive();
    let mut opts = a.options();
    opts.keyring = PathBuf::from("/nonexistent/keyring.gpg");
    let err = Archive::new(opts, cache().path(), &RealRunner)
        .fetch_index()
        .unwrap_err();
    assert!(matches!(err, DebianError::KeyringMissing { .. }), "{err}");
    assert!(err.to_string().contains("debian-archive-keyring"), "{err}");

    let mut opts = a.options();
    opts.gpgv = PathBuf::from("/nonexistent/gpgv");
    let err = Archive::new(opts, cache().path(), &RealRunner)
        .fetch_index()
        .unwrap_err();
    assert!(matches!(err, DebianError::GpgvMissing { .. }), "{err}");
    assert!(err.to_string().contains("apt-get install gpgv"), "{err}");
}

#[test]
fn http_errors_name_the_url_and_status() {
    let (a, _) = archive();
    a.server.remove(&format!("{SUITE_PATH}/InRelease"));
    let err = Archive::new(a.options(), cache().path(), &RealRunner)
        .fetch_index()
        .unwrap_err();
    assert!(
        matches!(err, DebianError::HttpStatus { status: 404, .. }),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains(&format!("{}{SUITE_PATH}/InRelease", a.server.url())) && text.contains("404"),
        "{text}"
    );

    // Nothing listens on a port we just released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut opts = a.options();
    opts.mirror = format!("http://127.0.0.1:{port}/debian");
    let err = Archive::new(opts, cache().path(), &RealRunner)
        .fetch_index()
        .unwrap_err();
    assert!(matches!(err, DebianError::Http { .. }), "{err}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );

    let mut opts = a.options();
    opts.mirror = "ftp://deb.debian.org/debian".into();
    let err = Archive::new(opts, cache().path(), &RealRunner)
        .fetch_index()
        .unwrap_err();
    assert!(matches!(err, DebianError::UnsupportedUrl { .. }), "{err}");
}
