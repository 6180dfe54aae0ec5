//! `POST /v1/images/{name}/verify` on real files: an untouched image passes, a flipped
//! byte in its root filesystem (addressed by the chunked SHA-256) is named, an unknown
//! image is a 404.

use banger_images::chunked::Chunks;
use banger_images::manifest::FileRecord;

use super::*;

#[tokio::test]
async fn verify_reads_an_image_again_and_names_a_changed_file() {
    let f = fixture();
    let dir = f.daemon.layout.state_dir.join("images/checked-0001");
    register_image(&f.daemon, "checked", dir.clone());
    let rootfs = dir.join("rootfs.ext4");
    std::fs::write(&rootfs, vec![7u8; 3 << 20]).unwrap();
    let chunked = FileRecord::chunked("rootfs.ext4", &Chunks::of(&rootfs, 2).unwrap());
    banger_images::testkit::stand_in_image(&dir, "checked", Some(chunked)).unwrap();
    let verify = || send(&f, empty(Method::POST, "/v1/images/checked/verify"));

    let a = verify().await;
    assert_eq!(
        a.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&a.body)
    );
    let report: banger_api::ImageVerifyReport = serde_json::from_slice(&a.body).unwrap();
    assert!(report.ok, "{report:?}");
    let digests: Vec<(&str, &str)> = report
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.digest.as_str()))
        .collect();
    assert_eq!(
        digests,
        [
            ("vmlinux", "sha256"),
            ("initrd.cpio", "sha256"),
            ("rootfs.ext4", "sha256_1m")
        ]
    );

    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&rootfs)
        .unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, &[8], (2 << 20) + 5).unwrap();
    let a = verify().await;
    assert_eq!(a.status, StatusCode::OK);
    let report: banger_api::ImageVerifyReport = serde_json::from_slice(&a.body).unwrap();
    assert!(!report.ok);
    let changed: Vec<&str> = report
        .files
        .iter()
        .filter(|f| f.problem.is_some())
        .map(|f| f.path.as_str())
        .collect();
    assert_eq!(changed, ["rootfs.ext4"], "{report:?}");

    let a = send(&f, empty(Method::POST, "/v1/images/nosuch/verify")).await;
    assert_error(&a, StatusCode::NOT_FOUND, "not_found");
}
