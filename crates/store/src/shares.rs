//! The host directories a VM shares (`-v HOST:GUEST[:ro]`): chosen at create, registered
//! with the VM in one transaction, and read back at every start and by `vm inspect`.
//!
//! The store keeps what was asked, already validated by the daemon (absolute, canonical
//! host directory; absolute guest path), and how the share reaches the guest
//! ([`Delivery`]), chosen once at create so a VM never changes it behind its user's back.

use std::path::{Path, PathBuf};

use rusqlite::params;

use crate::error::StoreError;
use crate::migrations::classify;
use crate::{Store, sql};

/// One host directory shared with a VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmShare {
    /// The host directory, absolute with symbolic links resolved.
    pub host_path: PathBuf,
    /// Where the guest mounts it: an absolute path.
    pub guest_path: String,
    /// The guest may read but not write (enforced on the host side).
    pub read_only: bool,
    pub delivery: Delivery,
}

/// How a share reaches the guest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Delivery {
    /// Live both ways, served by a `virtiofsd` (QEMU only).
    #[default]
    VirtioFs,
    /// Copied into an ext4 drive at every boot; `vm sync` copies the guest's changes back.
    Copy,
}

impl Delivery {
    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::VirtioFs => "virtio-fs",
            Delivery::Copy => "copy",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "virtio-fs" => Some(Delivery::VirtioFs),
            "copy" => Some(Delivery::Copy),
            _ => None,
        }
    }
}

pub(crate) fn insert_shares(
    conn: &rusqlite::Connection,
    db: &Path,
    object: &str,
    vm_id: &str,
    shares: &[VmShare],
) -> Result<(), StoreError> {
    for (position, share) in shares.iter().enumerate() {
        let host = sql::path(object, "share host_path", &share.host_path)?;
        conn.execute(
            "INSERT INTO vm_shares (vm_id, position, host_path, guest_path, read_only, delivery) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                vm_id,
                position as i64,
                host,
                share.guest_path,
                share.read_only,
                share.delivery.as_str()
            ],
        )
        .map_err(|e| {
            if crate::error::extended_code(&e) == Some(sql::CONSTRAINT_UNIQUE) {
                StoreError::InvalidValue {
                    object: object.to_string(),
                    field: "shares",
                    reason: format!(
                        "guest path {:?} is shared twice; give each share its own guest path",
                        share.guest_path
                    ),
                }
            } else {
                classify(e, db)
            }
        })?;
    }
    Ok(())
}

impl Store {
    /// The directories VM `vm_id` shares, in the order given at create.
    pub fn vm_shares(&self, vm_id: &str) -> Result<Vec<VmShare>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT host_path, guest_path, read_only, delivery FROM vm_shares \
                 WHERE vm_id = ?1 ORDER BY position",
            )
            .map_err(|e| classify(e, &self.path))?;
        let rows = stmt
            .query_map([vm_id], |r| {
                let delivery: String = r.get(3)?;
                Ok(VmShare {
                    host_path: PathBuf::from(r.get::<_, String>(0)?),
                    guest_path: r.get(1)?,
                    read_only: r.get(2)?,
                    // The column's CHECK admits only the names `Delivery::parse` knows.
                    delivery: Delivery::parse(&delivery).unwrap_or_default(),
                })
            })
            .map_err(|e| classify(e, &self.path))?;
        rows.collect::<Result<_, _>>()
            .map_err(|e| classify(e, &self.path))
    }

    /// Record that share `position` of VM `vm_id` is down (`Some(why)`), or serving again
    /// (`None`).
    pub fn set_share_down(
        &self,
        vm_id: &str,
        position: usize,
        why: Option<&str>,
    ) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE vm_shares SET down = ?3 WHERE vm_id = ?1 AND position = ?2",
                params![vm_id, position as i64, why],
            )
            .map(drop)
            .map_err(|e| classify(e, &self.path))
    }

    /// Forget what VM `vm_id`'s last run recorded of its shares (failures, syncs): a start
    /// serves them afresh and copies the host directories in again.
    pub fn clear_share_run(&self, vm_id: &str) -> Result<(), StoreError> {
        self.clear_share_run_on(&self.conn, vm_id)
    }

    /// [`Store::clear_share_run`] on `conn`, a transaction the caller commits.
    pub(crate) fn clear_share_run_on(
        &self,
        conn: &rusqlite::Connection,
        vm_id: &str,
    ) -> Result<(), StoreError> {
        conn.execute(
            "UPDATE vm_shares SET down = NULL, synced_at = NULL WHERE vm_id = ?1 \
             AND (down IS NOT NULL OR synced_at IS NOT NULL)",
            [vm_id],
        )
        .map(drop)
        .map_err(|e| classify(e, &self.path))
    }

    /// Record that copy `position` of VM `vm_id` was synced back at journal position `at`.
    pub fn set_share_synced(
        &self,
        vm_id: &str,
        position: usize,
        at: u64,
    ) -> Result<(), StoreError> {
        let at = i64::try_from(at).unwrap_or(i64::MAX);
        self.conn
            .execute(
                "UPDATE vm_shares SET synced_at = ?3 WHERE vm_id = ?1 AND position = ?2",
                params![vm_id, position as i64, at],
            )
            .map(drop)
            .map_err(|e| classify(e, &self.path))
    }

    /// The journal positions VM `vm_id`'s copies were last synced back at, by position.
    pub fn shares_synced(&self, vm_id: &str) -> Result<Vec<(usize, u64)>, StoreError> {
        let marks: Vec<(usize, i64)> = self.set_per_share(vm_id, RunColumn::SyncedAt)?;
        Ok(marks
            .into_iter()
            .map(|(p, at)| (p, at.max(0) as u64))
            .collect())
    }

    /// The shares of VM `vm_id` recorded as down: position and why, in order.
    pub fn shares_down(&self, vm_id: &str) -> Result<Vec<(usize, String)>, StoreError> {
        self.set_per_share(vm_id, RunColumn::Down)
    }

    /// The shares of VM `vm_id` whose `column` is set: position and value, in order.
    fn set_per_share<T: rusqlite::types::FromSql>(
        &self,
        vm_id: &str,
        column: RunColumn,
    ) -> Result<Vec<(usize, T)>, StoreError> {
        let name = column.name();
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT position, {name} FROM vm_shares \
                 WHERE vm_id = ?1 AND {name} IS NOT NULL ORDER BY position"
            ))
            .map_err(|e| classify(e, &self.path))?;
        let rows = stmt
            .query_map([vm_id], |r| {
                Ok((r.get::<_, i64>(0)? as usize, r.get::<_, T>(1)?))
            })
            .map_err(|e| classify(e, &self.path))?;
        rows.collect::<Result<_, _>>()
            .map_err(|e| classify(e, &self.path))
    }

    /// Whether VM `vm_id` shares any host directory: a live virtio-fs device cannot be
    /// migrated by QEMU 7.2, and a copy-in drive is rebuilt at every boot, so snapshots
    /// ask this first.
    pub fn vm_has_shares(&self, vm_id: &str) -> Result<bool, StoreError> {
        self.conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM vm_shares WHERE vm_id = ?1)",
                [vm_id],
                |r| r.get(0),
            )
            .map_err(|e| classify(e, &self.path))
    }
}

/// The columns of `vm_shares` a run sets (a fixed name each: never text from outside).
#[derive(Clone, Copy)]
enum RunColumn {
    Down,
    SyncedAt,
}

impl RunColumn {
    fn name(self) -> &'static str {
        match self {
            RunColumn::Down => "down",
            RunColumn::SyncedAt => "synced_at",
        }
    }
}
