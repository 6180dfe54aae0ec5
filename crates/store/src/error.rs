use crate::model::VmState;
use std::path::PathBuf;

/// Why a store operation failed. Messages name the object and what to do next; the
/// underlying SQLite or I/O error is the `source` (print the chain to see it).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// `open_read_only` on a path with no database: nothing was created.
    #[error("state database {} does not exist; the daemon creates it on first start", path.display())]
    NotFound { path: PathBuf },
    #[error("cannot create the state database {}; check the permissions of its directory", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the state database {}; check its permissions", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// Not an SQLite file, or a damaged one.
    #[error(
        "{} is not a valid banger state database (corrupt or not SQLite); move it aside and restart the daemon to create a fresh one",
        path.display()
    )]
    Corrupt {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// An SQLite database that banger did not create (tables but no schema version).
    #[error("{} holds tables but no banger schema version; it is not a banger state database, move it aside", path.display())]
    Foreign { path: PathBuf },
    /// Written by a newer banger: refuse rather than downgrade.
    #[error(
        "state database {} has schema version {found}, newer than this banger understands (up to {supported}); upgrade banger — it will not downgrade the database",
        path.display()
    )]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    /// `open_read_only` found an older (or empty) schema it cannot migrate.
    #[error(
        "state database {} has schema version {found}, but this banger reads version {expected}; start the daemon once to migrate it",
        path.display()
    )]
    SchemaOutdated {
        path: PathBuf,
        found: i64,
        expected: i64,
    },
    #[error("migrating state database {} to schema version {version} failed; the database was left at the previous version", path.display())]
    Migration {
        path: PathBuf,
        version: i64,
        #[source]
        source: rusqlite::Error,
    },
    #[error("image {0:?} already exists; remove it first or choose another name")]
    ImageExists(String),
    #[error("image {0:?} is not registered")]
    ImageNotFound(String),
    #[error("image {name:?} is used by VM(s) {}; remove those VMs first", vms.join(", "))]
    ImageInUse { name: String, vms: Vec<String> },
    #[error("a snapshot named {0:?} already exists; choose another name or remove it")]
    SnapshotExists(String),
    #[error("snapshot {name:?} has clones: VM(s) {}; remove those VMs first", vms.join(", "))]
    SnapshotInUse { name: String, vms: Vec<String> },
    #[error("a VM named {0:?} already exists; choose another name or remove that VM")]
    VmExists(String),
    /// An operation on this VM is already recorded as begun (see [`crate::Intent`]).
    #[error(
        "an operation on VM {0} is already under way (a leftover is finished when the daemon restarts)"
    )]
    IntentExists(String),
    #[error("a VM with id {0} already exists; generate a new id")]
    VmIdExists(String),
    #[error("VM {0:?} not found")]
    VmNotFound(String),
    /// Compare-and-set failed: someone else changed the state first.
    #[error("VM {id} is {actual}, not {expected}: it changed concurrently; re-read it and retry")]
    StateConflict {
        id: String,
        expected: VmState,
        actual: VmState,
    },
    /// The lifecycle state machine forbids this move.
    #[error("VM {id} cannot go from {from} to {to}")]
    InvalidTransition {
        id: String,
        from: VmState,
        to: VmState,
    },
    #[error("{field} of {object} is not valid JSON")]
    InvalidJson {
        object: String,
        field: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// Every guest address of the subnet is leased.
    #[error(
        "no free address left in {subnet} ({size} guest addresses, all leased); remove unused VMs or configure a larger subnet"
    )]
    AddressesExhausted { subnet: String, size: u64 },
    #[error("{field} of {object} is invalid: {reason}")]
    InvalidValue {
        object: String,
        field: &'static str,
        reason: String,
    },
    /// SQLite could not write: the disk (or the quota) holding the database is full.
    #[error(
        "no space left to write the state database {}: free space on its disk and retry (nothing was half-written: SQLite rolled the change back)",
        path.display()
    )]
    Full {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("state database query failed")]
    Sqlite(#[from] rusqlite::Error),
}

impl StoreError {
    /// The disk holding the database is full.
    pub fn is_full(&self) -> bool {
        matches!(self, StoreError::Full { .. })
    }

    /// True when the error means "the file is not a usable banger database".
    pub fn is_corrupt(&self) -> bool {
        matches!(
            self,
            StoreError::Corrupt { .. } | StoreError::Foreign { .. }
        )
    }
}

/// SQLite's answer for "this is not a database" / "this database is damaged".
pub(crate) fn is_corruption(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt)
    )
}

/// The extended result code of a failed statement (e.g. `SQLITE_CONSTRAINT_UNIQUE`).
pub(crate) fn extended_code(e: &rusqlite::Error) -> Option<i32> {
    match e {
        rusqlite::Error::SqliteFailure(f, _) => Some(f.extended_code),
        _ => None,
    }
}
