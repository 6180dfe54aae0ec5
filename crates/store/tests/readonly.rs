//! `open_read_only` must never write: every test snapshots all files in the state
//! directory (names and full contents) before and after a read-only open plus queries.

use crate::common;

use banger_store::{Store, StoreError, VmState};
use common::{image, names, snapshot, store_with_image, vm};
use rusqlite::config::DbConfig;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::Stdio;

/// Open read-only, run every read query, close; return what was read.
fn read_everything(path: &Path) -> (Vec<String>, Vec<String>) {
    let store = Store::open_read_only(path).unwrap();
    assert!(store.is_read_only());
    assert_eq!(
        store.schema_version().unwrap(),
        banger_store::SCHEMA_VERSION
    );
    let images: Vec<String> = store
        .list_images()
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    let vms: Vec<String> = store
        .list_vms()
        .unwrap()
        .into_iter()
        .map(|v| v.name)
        .collect();
    for name in &images {
        assert!(store.get_image(name).unwrap().is_some());
        store.vms_using_image(name).unwrap();
    }
    for name in &vms {
        assert!(store.get_vm(name).unwrap().is_some());
    }
    // Writes are refused, not silently applied.
    assert!(store.insert_image(&image("nope")).is_err());
    drop(store);
    (images, vms)
}

/// Leave the database the way a crashed daemon would: committed rows only in the -wal,
/// plus a -shm, and no process holding it open.
fn leave_wal_behind(path: &Path) {
    // This connection holds the database open, so the Store's close cannot checkpoint;
    // it then closes without checkpointing itself.
    let holder = rusqlite::Connection::open(path).unwrap();
    holder
        .set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
        .unwrap();
    holder
        .query_row("SELECT count(*) FROM images", [], |r| r.get::<_, i64>(0))
        .unwrap();
    let store = Store::open(path).unwrap();
    store
        .insert_vm(&vm("aaaa00000001", "in-wal", "base"))
        .unwrap();
    drop(store);
    drop(holder);
}

#[test]
fn clean_database_without_wal_is_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, path) = store_with_image(tmp.path());
    store.insert_vm(&vm("aaaa00000001", "one", "base")).unwrap();
    drop(store); // a clean close checkpoints and removes -wal and -shm
    let dir = path.parent().unwrap();
    let before = snapshot(dir);
    assert_eq!(names(&before), ["state.db"]);

    let (images, vms) = read_everything(&path);
    assert_eq!(
        (images, vms),
        (vec!["base".to_string()], vec!["one".to_string()])
    );
    assert_eq!(
        snapshot(dir),
        before,
        "a read-only open changed or created files"
    );
}

#[test]
fn wal_left_behind_by_a_dead_writer_is_read_and_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, path) = store_with_image(tmp.path());
    drop(store);
    leave_wal_behind(&path);
    let dir = path.parent().unwrap();
    let before = snapshot(dir);
    assert_eq!(names(&before), ["state.db", "state.db-shm", "state.db-wal"]);
    assert!(
        before["state.db-wal"].len() > 32,
        "the WAL must hold frames for this test to mean anything"
    );

    let (_, vms) = read_everything(&path);
    assert_eq!(
        vms,
        ["in-wal"],
        "rows committed only to the WAL must be visible"
    );
    assert_eq!(
        snapshot(dir),
        before,
        "a read-only open changed or created files"
    );

    // Proof the row lives only in the WAL: the database file alone does not have it.
    let alone = tmp.path().join("alone");
    std::fs::create_dir(&alone).unwrap();
    std::fs::copy(&path, alone.join("state.db")).unwrap();
    assert!(read_everything(&alone.join("state.db")).1.is_empty());
}

#[test]
fn wal_without_shm_is_read_without_creating_shm() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, path) = store_with_image(tmp.path());
    drop(store);
    leave_wal_behind(&path);
    let dir = path.parent().unwrap();
    std::fs::remove_file(dir.join("state.db-shm")).unwrap();
    let before = snapshot(dir);
    assert_eq!(names(&before), ["state.db", "state.db-wal"]);

    let (_, vms) = read_everything(&path);
    assert_eq!(vms, ["in-wal"]);
    assert_eq!(
        snapshot(dir),
        before,
        "a read-only open changed or created files"
    );
}

#[test]
fn missing_database_creates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("state.db");
    let err = Store::open_read_only(&path).unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert!(snapshot(tmp.path()).is_empty(), "files were created");

    // Nor its missing parent directories.
    let deep = tmp.path().join("a/b/state.db");
    assert!(matches!(
        Store::open_read_only(&deep),
        Err(StoreError::NotFound { .. })
    ));
    assert!(!tmp.path().join("a").exists());
}

#[test]
fn empty_or_uninitialised_file_is_reported_not_migrated() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("state.db");
    std::fs::write(&path, b"").unwrap();
    let err = Store::open_read_only(&path).unwrap_err();
    assert!(
        matches!(err, StoreError::SchemaOutdated { found: 0, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("start the daemon once"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), b"", "the file was written");
    assert_eq!(names(&snapshot(tmp.path())), ["state.db"]);
}

#[test]
fn writer_and_reader_coexist_in_one_process() {
    let tmp = tempfile::tempdir().unwrap();
    let (writer, path) = store_with_image(tmp.path());
    writer
        .insert_vm(&vm("aaaa00000001", "first", "base"))
        .unwrap();

    let reader = Store::open_read_only(&path).unwrap();
    assert_eq!(reader.list_vms().unwrap().len(), 1);
    // The writer keeps working while the reader is open, and the reader sees it.
    writer
        .insert_vm(&vm("aaaa00000002", "second", "base"))
        .unwrap();
    writer
        .update_vm_state(
            "aaaa00000001",
            Some(VmState::Created),
            VmState::Starting,
            None,
        )
        .unwrap();
    assert_eq!(reader.list_vms().unwrap().len(), 2);
    assert_eq!(
        reader.get_vm("first").unwrap().unwrap().state,
        VmState::Starting
    );
    assert!(
        reader.delete_vm("aaaa00000002").is_err(),
        "the reader must not write"
    );
    drop(reader);
    assert_eq!(writer.list_vms().unwrap().len(), 2);
}

/// Child half of `live_writer_in_another_process_sees_no_writes`: holds the store open
/// with rows in its WAL until its stdin closes.
#[test]
fn child_writer() {
    let Ok(path) = std::env::var("BANGER_STORE_TEST_CHILD_DB") else {
        return;
    };
    let store = Store::open(&path).unwrap();
    store
        .insert_vm(&vm("bbbb00000001", "live", "base"))
        .unwrap();
    println!("READY");
    std::io::stdout().flush().unwrap();
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    store
        .update_vm_state("bbbb00000001", None, VmState::Starting, None)
        .unwrap();
}

#[test]
fn live_writer_in_another_process_sees_no_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, path) = store_with_image(tmp.path());
    drop(store);
    let name = banger_system::testkit::test_name(module_path!(), "child_writer");
    let mut child = banger_system::testkit::rerun_command(&name)
        .arg("--nocapture")
        .env("BANGER_STORE_TEST_CHILD_DB", &path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // The harness may print "test child_writer ... " on the same line before READY.
    assert!(
        lines.any(|l| l.unwrap().ends_with("READY")),
        "child writer never became ready"
    );

    let dir = path.parent().unwrap();
    let before = snapshot(dir);
    assert_eq!(names(&before), ["state.db", "state.db-shm", "state.db-wal"]);
    let (_, vms) = read_everything(&path);
    assert_eq!(
        vms,
        ["live"],
        "the live writer's committed row must be visible"
    );
    assert_eq!(
        snapshot(dir),
        before,
        "a read-only open changed or created files"
    );

    // Let the child finish its write; it must not be blocked by us.
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    let after = Store::open_read_only(&path).unwrap();
    assert_eq!(
        after.get_vm("live").unwrap().unwrap().state,
        VmState::Starting
    );
}
