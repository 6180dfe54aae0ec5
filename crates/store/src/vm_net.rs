//! What networking a VM has: the ports it publishes (chosen at create, kept across
//! restarts) and the mode a running VM holds (`bridge`, `user`, `none`).
//!
//! The mode row is written before a VM's first network resource is made and deleted after
//! the last is given back, so a daemon killed in between finds it and releases again.
//! The address itself is the VM's lease (`leases.rs`).

use rusqlite::{OptionalExtension, params};

use crate::error::{StoreError, extended_code};
use crate::migrations::classify;
use crate::{Store, sql};

/// Accepted values of a VM's network mode.
pub const NETWORK_MODES: [&str; 3] = ["bridge", "user", "none"];

pub(crate) fn insert_ports(
    conn: &rusqlite::Connection,
    vm_id: &str,
    ports: &[String],
) -> rusqlite::Result<()> {
    for spec in ports {
        conn.execute(
            "INSERT OR IGNORE INTO vm_ports (vm_id, spec) VALUES (?1, ?2)",
            params![vm_id, spec],
        )?;
    }
    Ok(())
}

impl Store {
    /// The ports VM `vm_id` publishes, in the order given at create.
    pub fn vm_ports(&self, vm_id: &str) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT spec FROM vm_ports WHERE vm_id = ?1 ORDER BY rowid")
            .map_err(|e| classify(e, &self.path))?;
        let rows = stmt
            .query_map([vm_id], |r| r.get(0))
            .map_err(|e| classify(e, &self.path))?;
        rows.collect::<Result<_, _>>()
            .map_err(|e| classify(e, &self.path))
    }

    /// Record that VM `vm_id` holds networking of `mode` (one of [`NETWORK_MODES`]).
    pub fn set_vm_network(&self, vm_id: &str, mode: &str) -> Result<(), StoreError> {
        if !NETWORK_MODES.contains(&mode) {
            return Err(StoreError::InvalidValue {
                object: format!("the network of VM {vm_id}"),
                field: "mode",
                reason: format!("{mode:?} is not one of {NETWORK_MODES:?}"),
            });
        }
        self.conn
            .execute(
                "INSERT INTO vm_network (vm_id, mode) VALUES (?1, ?2) \
                 ON CONFLICT (vm_id) DO UPDATE SET mode = excluded.mode",
                params![vm_id, mode],
            )
            .map(drop)
            .map_err(|e| {
                if extended_code(&e) == Some(sql::CONSTRAINT_FOREIGNKEY) {
                    StoreError::VmNotFound(vm_id.to_string())
                } else {
                    classify(e, &self.path)
                }
            })
    }

    /// The networking VM `vm_id` holds, if any.
    pub fn vm_network(&self, vm_id: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row(
                "SELECT mode FROM vm_network WHERE vm_id = ?1",
                [vm_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| classify(e, &self.path))
    }

    /// VM `vm_id` holds no networking any more.
    pub fn clear_vm_network(&self, vm_id: &str) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM vm_network WHERE vm_id = ?1", [vm_id])
            .map(drop)
            .map_err(|e| classify(e, &self.path))
    }

    /// Every VM that holds networking, with its mode.
    pub fn list_vm_networks(&self) -> Result<Vec<(String, String)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT vm_id, mode FROM vm_network ORDER BY rowid")
            .map_err(|e| classify(e, &self.path))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(|e| classify(e, &self.path))?;
        rows.collect::<Result<_, _>>()
            .map_err(|e| classify(e, &self.path))
    }
}
