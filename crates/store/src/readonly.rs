//! Opening the database without writing a single byte to any of its files.
//!
//! `SQLITE_OPEN_READ_ONLY` alone is not enough for a WAL database: to read one, SQLite
//! opens (and creates, if the directory is writable) the `-wal` file and maps the `-shm`
//! wal-index read-write, recording a read mark in it or even rebuilding it. So the open
//! mode is picked from what is on disk:
//!
//! 1. **No `-wal`, or one without frames** (the daemon is not running, or shut down
//!    cleanly and checkpointed): every committed page is in the database file, so open it
//!    `immutable=1`. SQLite then takes no locks and never looks at, or creates, `-wal`
//!    and `-shm`.
//! 2. **`-wal` with frames and a `-shm`** (a daemon is running, or one crashed): open
//!    with `readonly_shm=1`. The wal-index is mapped read-only. With a live writer the
//!    reader uses the writer's index under the normal shared locks; with no live writer
//!    SQLite cannot trust the index and reads the WAL into private heap memory instead.
//!    Either way nothing is written: locks are `fcntl` locks, not file contents.
//!    (Inside one process SQLite shares a single mapping between connections, so a
//!    reader opened beside the daemon's own writer uses the writer's read-write mapping
//!    and may record a read mark in it; that only happens within the daemon itself.)
//! 3. **`-wal` with frames but no `-shm`** (someone deleted it): `readonly_shm` cannot
//!    open a missing index and a plain read-only open would create one. SQLite's way
//!    around that — exclusive locking mode, which keeps the index in heap memory — needs
//!    an exclusive lock that a read-only descriptor cannot take (and `nolock=1` disables
//!    WAL altogether). So copy the database and its WAL into a private temporary
//!    directory and open the copy; SQLite builds its index there, and the copy is removed
//!    with the `Store`. No writer can be running (a writer always has a `-shm`), so the
//!    copy is consistent.
//!
//! In every mode the connection is also `query_only`, and checkpoint-on-close is turned
//! off, so closing never folds the WAL back into the database.
//!
//! One race remains: if a daemon checkpoints and removes its `-wal` between our look at
//! the directory and SQLite's first read, SQLite may create an empty `-wal`. That window
//! is the daemon's shutdown instant, and the file it would leave is empty.

use crate::error::StoreError;
use crate::migrations::{self, SCHEMA_VERSION};
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A WAL file starts with a 32-byte header; frames follow it.
const WAL_HEADER_LEN: u64 = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Immutable,
    ReadOnlyShm,
    PrivateCopy,
}

pub(crate) fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

pub(crate) fn choose_mode(path: &Path) -> Mode {
    let wal_has_frames =
        std::fs::metadata(sidecar(path, "-wal")).is_ok_and(|m| m.len() > WAL_HEADER_LEN);
    if !wal_has_frames {
        Mode::Immutable
    } else if sidecar(path, "-shm").exists() {
        Mode::ReadOnlyShm
    } else {
        Mode::PrivateCopy
    }
}

/// An open read-only connection, and the private copy it reads when there is one (the
/// copy must outlive the connection: `ReadOnly` fields drop in declaration order).
pub(crate) struct ReadOnly {
    pub conn: Connection,
    pub snapshot: Option<tempfile::TempDir>,
}

pub(crate) fn open(path: &Path, busy_timeout: Duration) -> Result<ReadOnly, StoreError> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => {}
        Ok(_) => {
            return Err(StoreError::InvalidValue {
                object: path.display().to_string(),
                field: "state database",
                reason: "it is not a regular file".to_string(),
            });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(StoreError::NotFound {
                path: path.to_path_buf(),
            });
        }
        Err(source) => {
            return Err(StoreError::Create {
                path: path.to_path_buf(),
                source,
            });
        }
    }
    let mode = choose_mode(path);
    let mut snapshot = None;
    let (target, query) = match mode {
        Mode::Immutable => (path.to_path_buf(), "mode=ro&immutable=1"),
        Mode::ReadOnlyShm => (path.to_path_buf(), "mode=ro&readonly_shm=1"),
        Mode::PrivateCopy => {
            let (dir, copy) = private_copy(path)?;
            snapshot = Some(dir);
            (copy, "mode=ro")
        }
    };
    let uri = format!("file:{}?{query}", percent_encode(&target));
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(&uri, flags).map_err(|source| StoreError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let classify = |e| migrations::classify(e, path);
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
        .map_err(classify)?;
    conn.busy_timeout(busy_timeout).map_err(classify)?;
    conn.pragma_update(None, "query_only", true)
        .map_err(classify)?;

    let version = migrations::user_version(&conn, path)?;
    migrations::check_known(&conn, path, version)?;
    if version != SCHEMA_VERSION {
        return Err(StoreError::SchemaOutdated {
            path: path.to_path_buf(),
            found: version,
            expected: SCHEMA_VERSION,
        });
    }
    Ok(ReadOnly { conn, snapshot })
}

/// Copy `path` and its -wal into a fresh 0700 temporary directory (mode 3).
fn private_copy(path: &Path) -> Result<(tempfile::TempDir, PathBuf), StoreError> {
    let io = |source| StoreError::Create {
        path: path.to_path_buf(),
        source,
    };
    let dir = tempfile::Builder::new()
        .prefix("banger-store-ro-")
        .tempdir()
        .map_err(io)?;
    let copy = dir.path().join("state.db");
    std::fs::copy(path, &copy).map_err(io)?;
    std::fs::copy(sidecar(path, "-wal"), sidecar(&copy, "-wal")).map_err(io)?;
    Ok((dir, copy))
}

/// Percent-encode a path for an SQLite `file:` URI (`?`, `#`, `%` and friends would
/// otherwise be read as URI syntax). Unreserved characters and `/` pass through.
fn percent_encode(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut out = String::new();
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_paths_are_percent_encoded() {
        assert_eq!(
            percent_encode(Path::new("/a b/x?y#z%.db")),
            "/a%20b/x%3Fy%23z%25.db"
        );
        assert_eq!(
            percent_encode(Path::new("/var/lib/banger/state.db")),
            "/var/lib/banger/state.db"
        );
    }
}
