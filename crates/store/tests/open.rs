//! Creating, migrating and refusing databases.

use crate::common;

use banger_store::{SCHEMA_VERSION, Store, StoreError};
use common::{image, names, snapshot, store_with_image};
use std::os::unix::fs::PermissionsExt;

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn open_creates_private_dir_and_file_and_migrates_from_empty() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("a/b/state.db");
    let store = Store::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    assert!(!store.is_read_only());
    assert_eq!(mode(&tmp.path().join("a")), 0o700);
    assert_eq!(mode(&tmp.path().join("a/b")), 0o700);
    assert_eq!(mode(&path), 0o600);
    // WAL is on, and its side files are as private as the database.
    store.insert_image(&image("base")).unwrap();
    assert_eq!(mode(&tmp.path().join("a/b/state.db-wal")), 0o600);
    assert_eq!(mode(&tmp.path().join("a/b/state.db-shm")), 0o600);
    assert!(store.list_images().unwrap().len() == 1);

    let raw = rusqlite::Connection::open(&path).unwrap();
    let journal: String = raw
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(journal, "wal");
}

#[test]
fn reopen_is_idempotent_and_keeps_data() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, path) = store_with_image(tmp.path());
    drop(store);
    for _ in 0..3 {
        let store = Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        assert_eq!(store.list_images().unwrap(), vec![image("base")]);
    }
}

#[test]
fn foreign_keys_are_enforced() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = store_with_image(tmp.path());
    let err = store
        .insert_vm(&common::vm("aaaa00000001", "x", "no-such-image"))
        .unwrap_err();
    assert!(
        matches!(err, StoreError::ImageNotFound(ref n) if n == "no-such-image"),
        "{err:?}"
    );
}

#[test]
fn newer_schema_is_refused_by_both_opens_and_left_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, path) = store_with_image(tmp.path());
    drop(store);
    {
        let raw = rusqlite::Connection::open(&path).unwrap();
        raw.pragma_update(None, "user_version", SCHEMA_VERSION + 5)
            .unwrap();
    }
    let before = snapshot(path.parent().unwrap());

    let err = Store::open(&path).unwrap_err();
    assert!(
        matches!(err, StoreError::SchemaTooNew { found, supported, .. } if found == SCHEMA_VERSION + 5 && supported == SCHEMA_VERSION),
        "{err:?}"
    );
    assert!(err.to_string().contains("upgrade banger"), "{err}");
    let err = Store::open_read_only(&path).unwrap_err();
    assert!(matches!(err, StoreError::SchemaTooNew { .. }), "{err:?}");

    // Not downgraded, not even switched to another journal mode.
    assert_eq!(snapshot(path.parent().unwrap()), before);
}

#[test]
fn foreign_sqlite_database_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("state.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE other (x)")
        .unwrap();
    let before = snapshot(tmp.path());
    for err in [
        Store::open(&path).unwrap_err(),
        Store::open_read_only(&path).unwrap_err(),
    ] {
        assert!(matches!(err, StoreError::Foreign { .. }), "{err:?}");
        assert!(err.is_corrupt());
    }
    assert_eq!(snapshot(tmp.path()), before);
}

#[test]
fn corrupt_file_is_a_clear_error_from_both_opens() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("state.db");
    // Deterministic pseudo-random bytes (xorshift), enough for several pages.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let bytes: Vec<u8> = (0..16384)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        })
        .collect();
    std::fs::write(&path, &bytes).unwrap();

    for err in [
        Store::open_read_only(&path).unwrap_err(),
        Store::open(&path).unwrap_err(),
    ] {
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains(&path.display().to_string()) && msg.contains("move it aside"),
            "{msg}"
        );
    }
    assert_eq!(
        std::fs::read(&path).unwrap(),
        bytes,
        "the corrupt file must be left as found"
    );
    assert_eq!(names(&snapshot(tmp.path())), ["state.db"]);
}

#[test]
fn unusable_paths_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    // The database path is a directory.
    let err = Store::open(tmp.path()).unwrap_err();
    assert!(matches!(err, StoreError::Create { .. }), "{err:?}");
    let err = Store::open_read_only(tmp.path()).unwrap_err();
    assert!(err.to_string().contains("not a regular file"), "{err}");
    // Its parent is a file.
    let file = tmp.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let err = Store::open(file.join("state.db")).unwrap_err();
    assert!(
        err.to_string().contains("cannot create the state database"),
        "{err}"
    );
}

#[test]
fn version_zero_with_tables_is_not_migrated() {
    // A database at version 0 that already has an `images` table is not ours: refused
    // before migration 1 runs, and left at version 0. (Rollback of a failing step is
    // unit-tested in migrations.rs.)
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("state.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE images (x)")
        .unwrap();
    assert!(Store::open(&path).is_err());
    let raw = rusqlite::Connection::open(&path).unwrap();
    let v: i64 = raw
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, 0);
}

/// A database written by the first schema (VMs in every old state, and a table that
/// references `vms` with ON DELETE CASCADE, as networking's leases do) migrates to the
/// current one without losing a row: the `paused` state becomes storable in place.
#[test]
fn the_paused_migration_keeps_every_row_and_referencing_tables() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("state.db");
    {
        let raw = rusqlite::Connection::open(&path).unwrap();
        raw.pragma_update(None, "foreign_keys", true).unwrap();
        raw.execute_batch(
            r#"
            CREATE TABLE images (
                name           TEXT PRIMARY KEY NOT NULL,
                kernel_path    TEXT NOT NULL,
                kernel_format  TEXT NOT NULL CHECK (kernel_format IN ('elf-vmlinux', 'bzimage')),
                bzimage_path   TEXT,
                initrd_path    TEXT,
                rootfs_path    TEXT,
                source         TEXT NOT NULL,
                kernel_release TEXT,
                dir            TEXT NOT NULL,
                created_at     TEXT NOT NULL,
                size_bytes     INTEGER NOT NULL CHECK (size_bytes >= 0)
            ) STRICT;
            CREATE TABLE vms (
                id           TEXT PRIMARY KEY NOT NULL,
                name         TEXT NOT NULL UNIQUE,
                image_name   TEXT NOT NULL REFERENCES images (name) ON UPDATE RESTRICT ON DELETE RESTRICT,
                state        TEXT NOT NULL
                             CHECK (state IN ('created', 'starting', 'running', 'stopping', 'stopped', 'failed')),
                vcpu         INTEGER NOT NULL CHECK (vcpu > 0),
                memory_mib   INTEGER NOT NULL CHECK (memory_mib > 0),
                disk_bytes   INTEGER NOT NULL CHECK (disk_bytes >= 0),
                dir          TEXT NOT NULL,
                driver       TEXT,
                runtime_json TEXT CHECK (runtime_json IS NULL OR json_valid(runtime_json)),
                boot_json    TEXT CHECK (boot_json IS NULL OR json_valid(boot_json)),
                last_error   TEXT,
                created_at   TEXT NOT NULL,
                updated_at   TEXT NOT NULL,
                started_at   TEXT
            ) STRICT;
            CREATE INDEX vms_by_image ON vms (image_name);
            CREATE TABLE leases (
                address TEXT PRIMARY KEY,
                vm_id   TEXT NOT NULL REFERENCES vms (id) ON DELETE CASCADE
            ) STRICT;
            INSERT INTO images VALUES ('base', '/k', 'elf-vmlinux', NULL, NULL, NULL, 'built', NULL, '/i', 't', 1);
            INSERT INTO vms VALUES ('aaaa00000001', 'dev', 'base', 'running', 1, 64, 0, '/vms/a', 'qemu', NULL, NULL, NULL, 't', 't', NULL);
            INSERT INTO vms VALUES ('aaaa00000002', 'old', 'base', 'stopped', 1, 64, 0, '/vms/b', NULL, NULL, NULL, NULL, 't', 't', NULL);
            INSERT INTO leases VALUES ('172.30.0.2', 'aaaa00000001');
            PRAGMA user_version = 1;
            "#,
        )
        .unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let vms = store.list_vms().unwrap();
    assert_eq!(vms.len(), 2);
    assert_eq!(vms[0].driver_reason, None);
    store
        .update_vm_state(
            "aaaa00000001",
            Some(banger_store::VmState::Running),
            banger_store::VmState::Paused,
            None,
        )
        .unwrap();
    assert_eq!(
        store.get_vm("dev").unwrap().unwrap().state,
        banger_store::VmState::Paused
    );
    drop(store);

    // A fresh connection sees the same schema; nothing referencing `vms` was touched; the
    // database is sound.
    let raw = rusqlite::Connection::open(&path).unwrap();
    let leases: i64 = raw
        .query_row("SELECT count(*) FROM leases", [], |r| r.get(0))
        .unwrap();
    assert_eq!(leases, 1);
    let check: String = raw
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let err = raw
        .execute(
            "UPDATE vms SET state = 'bogus' WHERE id = 'aaaa00000001'",
            [],
        )
        .unwrap_err();
    assert!(err.to_string().contains("CHECK constraint failed"), "{err}");
    raw.execute(
        "UPDATE vms SET state = 'paused' WHERE id = 'aaaa00000002'",
        [],
    )
    .unwrap();
}
