//! banger's state store: images, VMs and their address leases in SQLite.
//!
//! * [`Store::open`] is for the daemon, the only writer: it creates the database (0600,
//!   in a 0700 directory), switches it to WAL, enables foreign keys and migrates the
//!   schema (refusing a database written by a newer banger).
//! * [`Store::open_read_only`] is for `doctor` and other inspectors: it never creates,
//!   migrates, checkpoints or writes anything — see `readonly.rs` for how WAL files are
//!   handled without touching them.
//!
//! Multi-step operations are recorded before they begin ([`Intent`], see `intents.rs`).
//!
//! A `Store` wraps one connection; it is `Send` but not `Sync`, so the daemon keeps it
//! behind a `Mutex`.

mod disks;
mod error;
mod images;
mod intents;
mod leases;
mod migrations;
mod model;
mod readonly;
mod shares;
mod snapshots;
mod sql;
mod standbys;
mod transitions;
mod vm_net;
mod vms;
mod warm;

pub use disks::{DISK_BACKENDS, DISK_FORMATS};
pub use error::StoreError;
pub use intents::{Intent, IntentOp};
pub use leases::IpLease;
pub use migrations::SCHEMA_VERSION;
pub use model::{
    DiskRole, GuestInit, ImageRecord, KERNEL_FORMATS, VM_ID_HEX_LEN, VmDisk, VmRecord, VmState,
    is_vm_id, new_vm_id, now_rfc3339,
};
pub use shares::{Delivery, VmShare};
pub use snapshots::{SnapshotRecord, VmOrigin};
pub use transitions::Started;
pub use vm_net::NETWORK_MODES;
pub use warm::WarmState;

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a statement waits for another connection's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// An open state database.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    read_only: bool,
    /// A read-only store may read a private copy (see readonly.rs); declared after
    /// `conn` so the connection closes before the copy is removed.
    _snapshot: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .field("read_only", &self.read_only)
            .finish()
    }
}

impl Store {
    /// Open (creating if needed) and migrate the database at `path` for reading and writing.
    pub fn open(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        let path = path.as_ref();
        let create = |source| StoreError::Create {
            path: path.to_path_buf(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(create)?;
        }
        // Create the file ourselves so it is 0600 from its first byte (SQLite would apply
        // the umask). SQLite gives -wal and -shm the same mode as the database file.
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(create)?;

        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let classify = |e| migrations::classify(e, path);
        conn.busy_timeout(BUSY_TIMEOUT).map_err(classify)?;

        // Refuse a newer or foreign database before changing anything, even the journal mode.
        let version = migrations::user_version(&conn, path)?;
        migrations::check_known(&conn, path, version)?;

        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "wal", |r| r.get(0))
            .map_err(classify)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::InvalidValue {
                object: path.display().to_string(),
                field: "journal_mode",
                reason: format!(
                    "SQLite kept {mode:?} instead of WAL; put the state directory on a local filesystem"
                ),
            });
        }
        conn.pragma_update(None, "foreign_keys", true)
            .map_err(classify)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(classify)?;
        migrations::migrate(&conn, path)?;
        Ok(Store {
            conn,
            path: path.to_path_buf(),
            read_only: false,
            _snapshot: None,
        })
    }

    /// Open an existing database for reading only. Never creates, migrates, checkpoints
    /// or writes any file (the database, its -wal or its -shm); fails with
    /// [`StoreError::NotFound`] when there is no database, and with a schema error when the
    /// database is not at exactly [`SCHEMA_VERSION`].
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        let path = path.as_ref();
        let ro = readonly::open(path, BUSY_TIMEOUT)?;
        Ok(Store {
            conn: ro.conn,
            path: path.to_path_buf(),
            read_only: true,
            _snapshot: ro.snapshot,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// A transaction on the shared connection (`Store` methods never nest them).
    fn transaction(&self, behavior: TransactionBehavior) -> Result<Transaction<'_>, StoreError> {
        Transaction::new_unchecked(&self.conn, behavior)
            .map_err(|e| migrations::classify(e, &self.path))
    }

    /// The schema version stored in the database.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        migrations::user_version(&self.conn, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>() {}

    #[test]
    fn store_is_send() {
        assert_send::<Store>();
    }

    /// SQLITE_FULL (what ENOSPC becomes) is reported as a full disk naming the database,
    /// not as a failed query; `max_page_count` makes the database "full" without a small
    /// filesystem.
    #[test]
    fn a_full_database_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let store = Store::open(&path).unwrap();
        let pages: i64 = store
            .conn
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap();
        store
            .conn
            .execute_batch(&format!("PRAGMA max_page_count = {pages}"))
            .unwrap();
        let mut err = None;
        for i in 0..1000 {
            let name = format!("image-{i:04}-{}", "x".repeat(200));
            let image = crate::ImageRecord {
                name: name.clone(),
                kernel_path: format!("/images/{name}/vmlinux").into(),
                kernel_format: "elf-vmlinux".into(),
                bzimage_path: None,
                initrd_path: None,
                rootfs_path: None,
                source: "test".into(),
                kernel_release: None,
                dir: format!("/images/{name}").into(),
                created_at: "2024-05-01T10:00:00Z".into(),
                size_bytes: 0,
                kernel_pvh: None,
                init: None,
                config_json: None,
                digest: None,
            };
            if let Err(e) = store.insert_image(&image) {
                err = Some(e);
                break;
            }
        }
        let err = err.expect("the database never filled up");
        assert!(err.is_full(), "{err:?}");
        assert!(err.to_string().contains("no space left"), "{err}");
        assert!(err.to_string().contains("state.db"), "{err}");
    }
}
