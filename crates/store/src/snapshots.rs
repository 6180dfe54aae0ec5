//! Snapshots of VMs, and the snapshot each clone was made from (`vm_origins`).
//!
//! A snapshot row is registered last, once its directory is complete; a clone's row and
//! its origin land in one transaction, and the origin's RESTRICT keeps a snapshot while
//! any clone is built on it.

use crate::error::{StoreError, extended_code};
use crate::migrations::classify;
use crate::model::{VmDisk, VmRecord};
use crate::{Store, sql};
use rusqlite::{OptionalExtension, Row, TransactionBehavior, params};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// One snapshot of a VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    /// Short random hex, like a VM id; unique.
    pub id: String,
    /// Unique among snapshots.
    pub name: String,
    /// The name of the VM it was taken of (which may since have been removed).
    pub source_vm: String,
    pub image_name: String,
    pub driver: String,
    pub vcpu: u32,
    pub memory_mib: u64,
    pub disk_bytes: u64,
    /// The snapshot's own directory: state, memory and disk copies.
    pub dir: PathBuf,
    /// Opaque JSON owned by the daemon: the VMM's files, the disks, the device set.
    pub detail_json: String,
    pub size_bytes: u64,
    pub created_at: String,
}

/// Where a clone came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmOrigin {
    pub snapshot_id: String,
    /// When its first start restored the snapshot; `None` until then.
    pub restored_at: Option<String>,
}

const COLUMNS: &str = "id, name, source_vm, image_name, driver, vcpu, memory_mib, disk_bytes, dir, \
                       detail_json, size_bytes, created_at";

fn from_row(row: &Row<'_>) -> rusqlite::Result<SnapshotRecord> {
    Ok(SnapshotRecord {
        id: row.get(0)?,
        name: row.get(1)?,
        source_vm: row.get(2)?,
        image_name: row.get(3)?,
        driver: row.get(4)?,
        vcpu: row.get(5)?,
        memory_mib: row.get(6)?,
        disk_bytes: row.get(7)?,
        dir: PathBuf::from(row.get::<_, String>(8)?),
        detail_json: row.get(9)?,
        size_bytes: row.get(10)?,
        created_at: row.get(11)?,
    })
}

impl Store {
    /// Register a finished snapshot. Errors: [`StoreError::SnapshotExists`] (name taken),
    /// [`StoreError::ImageNotFound`].
    pub fn insert_snapshot(&self, snap: &SnapshotRecord) -> Result<(), StoreError> {
        let object = format!("snapshot {:?}", snap.name);
        sql::json(&object, "detail_json", Some(&snap.detail_json))?;
        let result = self.conn.execute(
            &format!(
                "INSERT INTO snapshots ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
            ),
            params![
                snap.id,
                snap.name,
                snap.source_vm,
                snap.image_name,
                snap.driver,
                snap.vcpu,
                sql::int(&object, "memory_mib", snap.memory_mib)?,
                sql::int(&object, "disk_bytes", snap.disk_bytes)?,
                sql::path(&object, "dir", &snap.dir)?,
                snap.detail_json,
                sql::int(&object, "size_bytes", snap.size_bytes)?,
                snap.created_at,
            ],
        );
        match result.map_err(|e| (extended_code(&e), e)) {
            Ok(_) => Ok(()),
            Err((Some(sql::CONSTRAINT_UNIQUE | sql::CONSTRAINT_PRIMARYKEY), _)) => {
                Err(StoreError::SnapshotExists(snap.name.clone()))
            }
            Err((Some(sql::CONSTRAINT_FOREIGNKEY), _)) => {
                Err(StoreError::ImageNotFound(snap.image_name.clone()))
            }
            Err((_, e)) => Err(classify(e, &self.path)),
        }
    }

    /// The snapshot named `name`, or with that id.
    pub fn get_snapshot(&self, name: &str) -> Result<Option<SnapshotRecord>, StoreError> {
        self.conn
            .query_row(
                &format!(
                    "SELECT {COLUMNS} FROM snapshots WHERE name = ?1 OR id = ?1 \
                     ORDER BY name = ?1 DESC LIMIT 1"
                ),
                [name],
                from_row,
            )
            .optional()
            .map_err(|e| classify(e, &self.path))
    }

    /// Every snapshot, oldest first.
    pub fn list_snapshots(&self) -> Result<Vec<SnapshotRecord>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {COLUMNS} FROM snapshots ORDER BY created_at, name"
            ))
            .map_err(|e| classify(e, &self.path))?;
        let rows = stmt
            .query_map([], from_row)
            .map_err(|e| classify(e, &self.path))?;
        rows.collect::<Result<_, _>>()
            .map_err(|e| classify(e, &self.path))
    }

    /// Names of the VMs made from snapshot `id`.
    pub fn snapshot_clones(&self, id: &str) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT vms.name FROM vm_origins JOIN vms ON vms.id = vm_origins.vm_id \
                 WHERE vm_origins.snapshot_id = ?1 ORDER BY vms.name",
            )
            .map_err(|e| classify(e, &self.path))?;
        let rows = stmt
            .query_map([id], |row| row.get(0))
            .map_err(|e| classify(e, &self.path))?;
        rows.collect::<Result<_, _>>()
            .map_err(|e| classify(e, &self.path))
    }

    /// Unregister snapshot `id`; refused with [`StoreError::SnapshotInUse`] while a clone is
    /// built on it. The caller removes the directory afterwards.
    pub fn delete_snapshot(&self, id: &str) -> Result<(), StoreError> {
        let tx = self.transaction(TransactionBehavior::Immediate)?;
        let name: Option<String> = tx
            .query_row("SELECT name FROM snapshots WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| classify(e, &self.path))?;
        let Some(name) = name else {
            return Ok(());
        };
        let clones = self.snapshot_clones(id)?;
        if !clones.is_empty() {
            return Err(StoreError::SnapshotInUse { name, vms: clones });
        }
        tx.execute("DELETE FROM snapshots WHERE id = ?1", [id])
            .map_err(|e| classify(e, &self.path))?;
        tx.commit().map_err(|e| classify(e, &self.path))
    }

    /// Register a clone of snapshot `snapshot_id` with its disks, in one transaction (which
    /// also ends its `create` intent). Errors as [`Store::insert_vm`].
    pub fn insert_clone(
        &self,
        vm: &VmRecord,
        disks: &[VmDisk],
        snapshot_id: &str,
    ) -> Result<(), StoreError> {
        self.insert_clone_as(vm, disks, snapshot_id, false)
    }

    /// [`Store::insert_clone`]; with `standby`, registered as a waiting standby in the same
    /// transaction, so it is never visible as a user VM (see standbys.rs).
    pub fn insert_clone_as(
        &self,
        vm: &VmRecord,
        disks: &[VmDisk],
        snapshot_id: &str,
        standby: bool,
    ) -> Result<(), StoreError> {
        let tx = self.transaction(TransactionBehavior::Immediate)?;
        self.insert_vm_on(&tx, vm)?;
        self.insert_disks_on(&tx, vm, disks)?;
        tx.execute(
            "INSERT INTO vm_origins (vm_id, snapshot_id, restored_at) VALUES (?1, ?2, NULL)",
            params![vm.id, snapshot_id],
        )
        .map_err(|e| classify(e, &self.path))?;
        if standby {
            tx.execute(
                "INSERT INTO vm_standbys (vm_id, taken_at) VALUES (?1, NULL)",
                [&vm.id],
            )
            .map_err(|e| classify(e, &self.path))?;
        }
        tx.commit().map_err(|e| classify(e, &self.path))
    }

    /// The snapshot VM `vm_id` was made from, if it is a clone.
    pub fn vm_origin(&self, vm_id: &str) -> Result<Option<VmOrigin>, StoreError> {
        self.conn
            .query_row(
                "SELECT snapshot_id, restored_at FROM vm_origins WHERE vm_id = ?1",
                [vm_id],
                |row| {
                    Ok(VmOrigin {
                        snapshot_id: row.get(0)?,
                        restored_at: row.get(1)?,
                    })
                },
            )
            .optional()
            .map_err(|e| classify(e, &self.path))
    }

    /// Record that clone `vm_id` was restored (its later starts boot its own disks).
    pub fn mark_restored(&self, vm_id: &str, at: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE vm_origins SET restored_at = ?2 WHERE vm_id = ?1",
                params![vm_id, at],
            )
            .map(drop)
            .map_err(|e| classify(e, &self.path))
    }
}
