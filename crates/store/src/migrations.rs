//! Versioned schema migrations, tracked in SQLite's `PRAGMA user_version`.
//!
//! `MIGRATIONS[i]` takes the schema from version `i` to `i + 1`. Each runs in its own
//! `BEGIN IMMEDIATE` transaction together with the version bump, so a crash leaves the
//! database at the previous version, and two processes opening at once cannot both apply
//! a step (the version is re-read under the write lock). Released entries are never
//! edited: a schema change is a new entry appended at the end.

use crate::error::{StoreError, is_corruption};
use rusqlite::{Connection, Transaction, TransactionBehavior};
use std::path::Path;

pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: images and VMs.
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
        -- RESTRICT: a VM's disk is built on its image, so the image outlives the VM.
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
    "#,
    // 2: IPAM — one address lease per VM on the owner's bridge. The primary key means an
    // address is never held twice; the cascade releases it with the VM's row.
    r#"
    CREATE TABLE ip_leases (
        address    TEXT PRIMARY KEY NOT NULL,
        vm_id      TEXT NOT NULL UNIQUE REFERENCES vms (id) ON UPDATE CASCADE ON DELETE CASCADE,
        subnet     TEXT NOT NULL,
        created_at TEXT NOT NULL
    ) STRICT;

    -- The last address handed out per subnet, so allocation continues after it
    -- (round-robin) even when every lease has been released meanwhile.
    CREATE TABLE ip_lease_cursor (
        subnet       TEXT PRIMARY KEY NOT NULL,
        last_address TEXT NOT NULL
    ) STRICT;
    "#,
    // 3: images: the kernel's PVH fact (computed once at build/import), how the guest starts
    // (`init`), an OCI image's run configuration, and the image's content address; and
    // `vm_disks`, each VM's disks with the copy-on-write backend chosen for them. Depends
    // only on entry 1's tables.
    r#"
    ALTER TABLE images ADD COLUMN kernel_pvh INTEGER CHECK (kernel_pvh IS NULL OR kernel_pvh IN (0, 1));
    ALTER TABLE images ADD COLUMN init TEXT CHECK (init IS NULL OR init IN ('initramfs', 'agent', 'systemd'));
    ALTER TABLE images ADD COLUMN config_json TEXT CHECK (config_json IS NULL OR json_valid(config_json));
    ALTER TABLE images ADD COLUMN digest TEXT;

    CREATE TABLE vm_disks (
        vm_id     TEXT NOT NULL REFERENCES vms (id) ON DELETE CASCADE,
        role      TEXT NOT NULL CHECK (role IN ('root', 'work')),
        path      TEXT NOT NULL,
        format    TEXT NOT NULL CHECK (format IN ('raw', 'qcow2')),
        backend   TEXT NOT NULL CHECK (backend IN ('reflink', 'qcow2', 'copy', 'fresh')),
        size_bytes INTEGER NOT NULL CHECK (size_bytes >= 0),
        PRIMARY KEY (vm_id, role)
    ) STRICT;
    "#,
    // 4: the `paused` state, and the reason each VM got its driver. SQLite cannot alter a
    // CHECK constraint, and rebuilding `vms` would cascade-delete the rows of every table
    // that references it (ip_leases, vm_disks), so the constraint text is edited in place:
    // SQLite's documented procedure for loosening a CHECK ("Making Other Kinds Of Table
    // Schema Changes", lang_altertable.html). `writable_schema = RESET` makes this
    // connection reload the edited schema (ADD COLUMN works from the parsed text); the temp
    // table refuses to commit if the edit did not apply; the ALTER TABLE bumps the schema
    // cookie, so every other connection reloads too. Depends only on entry 1's `vms`.
    r#"
    PRAGMA writable_schema = ON;
    UPDATE sqlite_schema
       SET sql = replace(sql, '''stopped'', ''failed'')', '''stopped'', ''failed'', ''paused'')')
     WHERE type = 'table' AND name = 'vms';
    PRAGMA writable_schema = RESET;
    CREATE TEMP TABLE paused_state_check (applied INTEGER NOT NULL CHECK (applied = 1));
    INSERT INTO paused_state_check
        SELECT instr(sql, '''paused''') > 0 FROM sqlite_schema WHERE type = 'table' AND name = 'vms';
    DROP TABLE paused_state_check;
    ALTER TABLE vms ADD COLUMN driver_reason TEXT;
    "#,
    // 5 (reliability; independent of every other table, so the lead may renumber it):
    // write-ahead intents of multi-step VM operations (see intents.rs). No foreign key to
    // `vms`: a `create` intent precedes its row and a `remove` intent outlives it.
    r#"
    CREATE TABLE intents (
        vm_id      TEXT PRIMARY KEY NOT NULL,
        op         TEXT NOT NULL CHECK (op IN ('create', 'remove')),
        dir        TEXT NOT NULL,
        created_at TEXT NOT NULL
    ) STRICT;
    "#,
    // 6 (networking; depends only on entry 1's `vms`, so the lead may renumber it): the
    // ports each VM publishes (`-p`, kept across restarts), and the networking a running VM
    // holds (see vm_net.rs). Both go with their VM.
    r#"
    CREATE TABLE vm_ports (
        vm_id TEXT NOT NULL REFERENCES vms (id) ON DELETE CASCADE,
        spec  TEXT NOT NULL,
        PRIMARY KEY (vm_id, spec)
    ) STRICT;

    CREATE TABLE vm_network (
        vm_id TEXT PRIMARY KEY NOT NULL REFERENCES vms (id) ON DELETE CASCADE,
        mode  TEXT NOT NULL CHECK (mode IN ('bridge', 'user', 'none'))
    ) STRICT;
    "#,
    // 7 (snapshots; depends only on entry 1's `images` and `vms`, so the lead may renumber
    // it): snapshots of VMs (see snapshots.rs), and which snapshot a clone was made from.
    // RESTRICT: a clone's disks are overlays on its snapshot's, so the snapshot outlives it.
    r#"
    CREATE TABLE snapshots (
        id          TEXT PRIMARY KEY NOT NULL,
        name        TEXT NOT NULL UNIQUE,
        source_vm   TEXT NOT NULL,
        image_name  TEXT NOT NULL REFERENCES images (name) ON UPDATE RESTRICT ON DELETE RESTRICT,
        driver      TEXT NOT NULL,
        vcpu        INTEGER NOT NULL CHECK (vcpu > 0),
        memory_mib  INTEGER NOT NULL CHECK (memory_mib > 0),
        disk_bytes  INTEGER NOT NULL CHECK (disk_bytes >= 0),
        dir         TEXT NOT NULL,
        detail_json TEXT NOT NULL CHECK (json_valid(detail_json)),
        size_bytes  INTEGER NOT NULL CHECK (size_bytes >= 0),
        created_at  TEXT NOT NULL
    ) STRICT;

    CREATE TABLE vm_origins (
        vm_id       TEXT PRIMARY KEY NOT NULL REFERENCES vms (id) ON DELETE CASCADE,
        snapshot_id TEXT NOT NULL REFERENCES snapshots (id) ON DELETE RESTRICT,
        restored_at TEXT
    ) STRICT;
    CREATE INDEX vm_origins_by_snapshot ON vm_origins (snapshot_id);
    "#,
    // 8 (host directories; depends only on entry 1's `vms`):
    // the host directories a VM shares (`-v HOST:GUEST[:ro]`), chosen at create and kept
    // across restarts (see shares.rs). They go with their VM.
    r#"
    CREATE TABLE vm_shares (
        vm_id      TEXT NOT NULL REFERENCES vms (id) ON DELETE CASCADE,
        position   INTEGER NOT NULL CHECK (position >= 0),
        host_path  TEXT NOT NULL CHECK (host_path LIKE '/%'),
        guest_path TEXT NOT NULL CHECK (guest_path LIKE '/%'),
        read_only  INTEGER NOT NULL CHECK (read_only IN (0, 1)),
        PRIMARY KEY (vm_id, position),
        UNIQUE (vm_id, guest_path)
    ) STRICT;
    "#,
    // 9 (warm images; depends only on entry 7's `snapshots` and entry 1's `images` and
    // `vms`, so the lead may renumber it): which snapshot is an image's warm state and the
    // key it was taken under (see warm.rs); and why a VM that could have been restored
    // from one booted cold. A retired state (current = 0) waits for its last clone.
    r#"
    CREATE TABLE image_warm (
        snapshot_id TEXT PRIMARY KEY NOT NULL REFERENCES snapshots (id) ON DELETE CASCADE,
        image_name  TEXT NOT NULL REFERENCES images (name) ON UPDATE RESTRICT ON DELETE RESTRICT,
        key_json    TEXT NOT NULL CHECK (json_valid(key_json)),
        current     INTEGER NOT NULL CHECK (current IN (0, 1))
    ) STRICT;
    CREATE UNIQUE INDEX image_warm_current ON image_warm (image_name) WHERE current = 1;

    CREATE TABLE vm_cold_reasons (
        vm_id  TEXT PRIMARY KEY NOT NULL REFERENCES vms (id) ON DELETE CASCADE,
        reason TEXT NOT NULL
    ) STRICT;
    "#,
    // 10 (host directories, second step; independent of entry 9): how each share reaches the guest, chosen at create: live over virtio-fs (every share
    // made before this step) or copied in at every boot (Firecracker, or QEMU without
    // virtiofsd, or asked for). See shares.rs.
    r#"
    ALTER TABLE vm_shares ADD COLUMN delivery TEXT NOT NULL DEFAULT 'virtio-fs'
        CHECK (delivery IN ('virtio-fs', 'copy'));
    "#,
    // 11 (share state of a run; depends only on entry 8's `vm_shares`): why a live share's
    // `virtiofsd` is gone while its VM runs (NULL: serving), set by the daemon's watcher
    // the moment it exits; and the journal position a read-write copy had when the guest's
    // content was last synced back (NULL: not since boot). Both cleared at every start.
    // See shares.rs.
    r#"
    ALTER TABLE vm_shares ADD COLUMN down TEXT;
    ALTER TABLE vm_shares ADD COLUMN synced_at INTEGER CHECK (synced_at >= 0);
    "#,
    // 12 (warm standbys; depends only on entry 1's `vms`): the VMs the daemon keeps
    // restored from a warm state, waiting for a `vm run` to take them (taken_at NULL), and
    // when a VM was taken from one. A waiting standby is no user VM (see standbys.rs).
    r#"
    CREATE TABLE vm_standbys (
        vm_id    TEXT PRIMARY KEY NOT NULL REFERENCES vms (id) ON DELETE CASCADE,
        taken_at TEXT
    ) STRICT;
    "#,
];

/// The schema version this build of banger reads and writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Read `user_version`, turning "not a database" into a clear error.
pub(crate) fn user_version(conn: &Connection, path: &Path) -> Result<i64, StoreError> {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(|e| classify(e, path))
}

/// Refuse databases this build must not touch: newer schemas and foreign SQLite files.
pub(crate) fn check_known(conn: &Connection, path: &Path, version: i64) -> Result<(), StoreError> {
    check_known_to(conn, path, version, SCHEMA_VERSION)
}

fn check_known_to(
    conn: &Connection,
    path: &Path,
    version: i64,
    latest: i64,
) -> Result<(), StoreError> {
    if version > latest {
        return Err(StoreError::SchemaTooNew {
            path: path.to_path_buf(),
            found: version,
            supported: latest,
        });
    }
    if version == 0 {
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%'",
                [],
                |r| r.get(0),
            )
            .map_err(|e| classify(e, path))?;
        if tables > 0 {
            return Err(StoreError::Foreign {
                path: path.to_path_buf(),
            });
        }
    }
    Ok(())
}

/// Bring the schema up to [`SCHEMA_VERSION`].
pub(crate) fn migrate(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    migrate_with(conn, path, MIGRATIONS)
}

/// [`migrate`] over an explicit list (tests inject failing steps).
fn migrate_with(conn: &Connection, path: &Path, migrations: &[&str]) -> Result<(), StoreError> {
    let latest = migrations.len() as i64;
    if user_version(conn, path)? == latest {
        return Ok(());
    }
    loop {
        let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)
            .map_err(|e| classify(e, path))?;
        let version = user_version(&tx, path)?;
        check_known_to(&tx, path, version, latest)?;
        let Some(sql) = usize::try_from(version)
            .ok()
            .and_then(|v| migrations.get(v))
        else {
            // version == latest (anything newer was refused just above): done.
            return Ok(());
        };
        let next = version + 1;
        let step = |e| StoreError::Migration {
            path: path.to_path_buf(),
            version: next,
            source: e,
        };
        tx.execute_batch(sql).map_err(step)?;
        tx.pragma_update(None, "user_version", next).map_err(step)?;
        tx.commit().map_err(step)?;
    }
}

/// Map SQLite's corruption codes to [`StoreError::Corrupt`] and a full disk to
/// [`StoreError::Full`]; anything else stays generic.
pub(crate) fn classify(e: rusqlite::Error, path: &Path) -> StoreError {
    if is_corruption(&e) {
        StoreError::Corrupt {
            path: path.to_path_buf(),
            source: e,
        }
    } else if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) {
        StoreError::Full {
            path: path.to_path_buf(),
            source: e,
        }
    } else {
        StoreError::Sqlite(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_step_rolls_back_to_the_previous_version() {
        let conn = Connection::open_in_memory().unwrap();
        let path = Path::new("/test.db");
        let steps = [
            "CREATE TABLE a (x)",
            "CREATE TABLE b (x); INSERT INTO a VALUES (1); SELECT no_such_function();",
        ];
        let err = migrate_with(&conn, path, &steps).unwrap_err();
        assert!(
            matches!(err, StoreError::Migration { version: 2, .. }),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("left at the previous version"),
            "{err}"
        );
        assert_eq!(user_version(&conn, path).unwrap(), 1);
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name = 'b'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 0, "step 2's DDL must be rolled back");
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM a", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 0, "step 2's DML must be rolled back");

        // A fixed step 2 applies on the next open; a shorter list then refuses version 2.
        migrate_with(&conn, path, &["CREATE TABLE a (x)", "CREATE TABLE b (x)"]).unwrap();
        assert_eq!(user_version(&conn, path).unwrap(), 2);
        let err = migrate_with(&conn, path, &["CREATE TABLE a (x)"]).unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::SchemaTooNew {
                    found: 2,
                    supported: 1,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    /// The paused-state step refuses to commit when the CHECK text it edits is not there
    /// (a schema it does not know), instead of leaving `paused` unstorable.
    #[test]
    fn the_paused_step_fails_cleanly_on_an_unexpected_schema() {
        let conn = Connection::open_in_memory().unwrap();
        let path = Path::new("/mem");
        let odd_v1 = "CREATE TABLE vms (id TEXT PRIMARY KEY, state TEXT CHECK (state IN ('x')))";
        let paused_step = MIGRATIONS
            .iter()
            .position(|sql| sql.contains("paused_state_check"))
            .unwrap();
        let steps = [odd_v1, MIGRATIONS[paused_step]];
        let err = migrate_with(&conn, path, &steps).unwrap_err();
        assert!(
            matches!(err, StoreError::Migration { version: 2, .. }),
            "{err:?}"
        );
        assert_eq!(user_version(&conn, path).unwrap(), 1);
        let columns: i64 = conn
            .query_row(
                "SELECT count(*) FROM pragma_table_info('vms') WHERE name = 'driver_reason'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(columns, 0, "the step was rolled back");
    }

    #[test]
    fn the_real_migrations_apply_and_are_idempotent() {
        let conn = Connection::open_in_memory().unwrap();
        let path = Path::new("/mem");
        migrate(&conn, path).unwrap();
        assert_eq!(user_version(&conn, path).unwrap(), SCHEMA_VERSION);
        migrate(&conn, path).unwrap();
        assert_eq!(user_version(&conn, path).unwrap(), SCHEMA_VERSION);
    }
}
