//! Doctor reads the real SQLite store and never changes it: byte-for-byte proof on
//! the database and its WAL files, with a live writer holding them open.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use banger_config::Config;
use banger_doctor::{Report, Status, groups};
use banger_store::{ImageRecord, Store, now_rfc3339};
use common::{FakeHost, ScriptedRunner};
use sha2::{Digest, Sha256};

/// Name, size and SHA-256 of every file in `dir`.
fn snapshot(dir: &Path) -> BTreeMap<String, String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (
                name,
                format!("{} {}", bytes.len(), hex::encode(Sha256::digest(&bytes))),
            )
        })
        .collect()
}

fn image(host: &FakeHost, name: &str) -> ImageRecord {
    image_at(host.dir.path(), name)
}

/// An image record whose kernel and rootfs exist under `root/state/images/<name>`.
fn image_at(root: &Path, name: &str) -> ImageRecord {
    let dir = root.join(format!("state/images/{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    let kernel = dir.join("vmlinux");
    let rootfs = dir.join("rootfs.ext4");
    std::fs::write(&kernel, b"kernel").unwrap();
    std::fs::write(&rootfs, b"rootfs").unwrap();
    ImageRecord {
        name: name.to_string(),
        kernel_path: kernel,
        kernel_format: "elf-vmlinux".into(),
        bzimage_path: None,
        initrd_path: None,
        rootfs_path: Some(rootfs),
        source: "test".into(),
        kernel_release: None,
        dir,
        created_at: now_rfc3339(),
        size_bytes: 12,
        kernel_pvh: Some(true),
        init: None,
        config_json: None,
        digest: None,
    }
}

fn doctor(host: &FakeHost, config: Config) -> Report {
    banger_doctor::run(&host.context(config, ScriptedRunner::new()))
}

fn named(name: &str) -> Config {
    Config {
        default_image_name: Some(name.to_string()),
        ..Config::default()
    }
}

const WRITER_ENV: &str = "BANGER_DOCTOR_TEST_WRITER_ROOT";
const WRITER_READY: &str = "BANGER-WRITER-READY";

/// Not a test of its own: the live writer, run in a child process by
/// `live_wal_database_is_left_byte_for_byte_unchanged` (SQLite shares one wal-index
/// mapping between connections of a process, so a writer in the test process itself
/// would not model a daemon next to `banger doctor`). Without the variable it does
/// nothing.
#[test]
fn writer_process() {
    let Some(root) = std::env::var_os(WRITER_ENV) else {
        return;
    };
    let root = PathBuf::from(root);
    let writer = Store::open(root.join("state/state.db")).unwrap();
    writer.insert_image(&image_at(&root, "dev")).unwrap();
    println!("{WRITER_READY}");
    std::io::Write::flush(&mut std::io::stdout()).unwrap();
    // Hold the database open, WAL and all, until the parent closes our stdin.
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    drop(writer);
}

#[test]
fn live_wal_database_is_left_byte_for_byte_unchanged() {
    use std::io::BufRead;
    use std::process::Stdio;

    let host = FakeHost::new();
    let name = banger_system::testkit::test_name(module_path!(), "writer_process");
    let mut child = banger_system::testkit::rerun_command(&name)
        .arg("--nocapture")
        .env(WRITER_ENV, host.dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    // Blocks until the writer has committed and holds the WAL (or exits: then the
    // iterator ends and the assertion fails). libtest prints "test writer_process ... "
    // on the same line first.
    assert!(
        lines
            .by_ref()
            .map(Result::unwrap)
            .any(|l| l.ends_with(WRITER_READY)),
        "writer process did not get ready"
    );

    let state_dir = host.path("state");
    let before = snapshot(&state_dir);
    for sidecar in ["state.db-wal", "state.db-shm"] {
        assert!(
            before.contains_key(sidecar),
            "expected {sidecar} with a live writer: {before:?}"
        );
    }

    let report = doctor(&host, named("dev"));

    let after = snapshot(&state_dir);
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    assert_eq!(
        report.find(groups::STATE, "state store").unwrap().status,
        Status::Pass
    );
    let image = report.find(groups::RUNTIME, "default image").unwrap();
    assert_eq!(image.status, Status::Pass, "{image:?}");
    assert!(image.summary.contains("registered"), "{}", image.summary);
    assert_eq!(after, before, "doctor changed the store's files");
}

#[test]
fn checkpointed_database_is_left_unchanged_and_no_sidecars_appear() {
    let host = FakeHost::new();
    let db = host.path("state/state.db");
    let writer = Store::open(&db).unwrap();
    writer.insert_image(&image(&host, "dev")).unwrap();
    drop(writer);
    let before = snapshot(&host.path("state"));

    let report = doctor(&host, named("dev"));

    assert_eq!(
        report
            .find(groups::RUNTIME, "default image")
            .unwrap()
            .status,
        Status::Pass
    );
    assert_eq!(snapshot(&host.path("state")), before);
}

#[test]
fn missing_database_passes_and_is_not_created() {
    let host = FakeHost::new();
    let report = doctor(&host, Config::default());
    let c = report.find(groups::STATE, "state store").unwrap();
    assert_eq!(c.status, Status::Pass);
    assert!(c.summary.contains("not created yet"), "{}", c.summary);
    let left: Vec<PathBuf> = std::fs::read_dir(host.path("state"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(left.is_empty(), "doctor created {left:?}");
}

#[test]
fn garbage_database_fails_with_a_hint_and_is_not_touched() {
    let host = FakeHost::new();
    let db = host.path("state/state.db");
    std::fs::write(&db, vec![0x5a; 8192]).unwrap();
    let before = snapshot(&host.path("state"));
    let report = doctor(&host, Config::default());
    let c = report.find(groups::STATE, "state store").unwrap();
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert!(c.hint.as_ref().unwrap().contains("move"), "{c:?}");
    assert_eq!(snapshot(&host.path("state")), before);
    // The default image check still answers from the catalog.
    let image = report.find(groups::RUNTIME, "default image").unwrap();
    assert!(
        image.summary.contains("registration unknown"),
        "{}",
        image.summary
    );
}

#[test]
fn registered_image_with_missing_files_fails_naming_them() {
    let host = FakeHost::new();
    let record = image(&host, "dev");
    std::fs::remove_file(record.rootfs_path.as_ref().unwrap()).unwrap();
    Store::open(host.path("state/state.db"))
        .unwrap()
        .insert_image(&record)
        .unwrap();
    let report = doctor(&host, named("dev"));
    let c = report.find(groups::RUNTIME, "default image").unwrap();
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert!(
        c.details
            .iter()
            .any(|d| d.contains("rootfs.ext4 is missing")),
        "{c:?}"
    );
}

#[test]
fn unknown_default_image_fails_catalog_one_passes() {
    let host = FakeHost::new();
    let report = doctor(&host, named("no-such-image"));
    let c = report.find(groups::RUNTIME, "default image").unwrap();
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert!(
        c.summary.contains("not in the built-in catalog"),
        "{}",
        c.summary
    );

    let catalog = banger_images::imagecat::Catalog::embedded().unwrap();
    let report = doctor(&host, named(catalog.default_image()));
    let c = report.find(groups::RUNTIME, "default image").unwrap();
    assert_eq!(c.status, Status::Pass, "{c:?}");
    assert!(c.summary.contains("on first use"), "{}", c.summary);
}
