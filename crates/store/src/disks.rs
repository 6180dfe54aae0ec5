//! VM disk queries: which disks a VM has and how each was made.

use crate::error::StoreError;
use crate::migrations::classify;
use crate::model::{DiskRole, VmDisk, VmRecord};
use crate::{Store, sql};
use rusqlite::{TransactionBehavior, params};
use std::path::PathBuf;

/// Accepted values of [`VmDisk::format`] and [`VmDisk::backend`].
pub const DISK_FORMATS: [&str; 2] = ["raw", "qcow2"];
pub const DISK_BACKENDS: [&str; 4] = ["reflink", "qcow2", "copy", "fresh"];

impl Store {
    /// Register a VM together with its disks, in one transaction: either both are
    /// recorded or neither. Errors as [`Store::insert_vm`].
    pub fn insert_vm_with_disks(&self, vm: &VmRecord, disks: &[VmDisk]) -> Result<(), StoreError> {
        self.insert_vm_with(vm, disks, &[])
    }

    /// [`Store::insert_vm_with_disks`], with the ports the VM publishes (`-p`, as
    /// canonical text; see [`Store::vm_ports`]) in the same transaction.
    pub fn insert_vm_with(
        &self,
        vm: &VmRecord,
        disks: &[VmDisk],
        ports: &[String],
    ) -> Result<(), StoreError> {
        self.insert_vm_sharing(vm, disks, ports, &[])
    }

    /// [`Store::insert_vm_with`], with the host directories the VM shares (`-v`) in the
    /// same transaction. A guest path given twice is refused and nothing is recorded.
    pub fn insert_vm_sharing(
        &self,
        vm: &VmRecord,
        disks: &[VmDisk],
        ports: &[String],
        shares: &[crate::VmShare],
    ) -> Result<(), StoreError> {
        let object = format!("VM {:?}", vm.name);
        for disk in disks {
            check(&object, disk)?;
        }
        let tx = self.transaction(TransactionBehavior::Immediate)?;
        self.insert_vm_on(&tx, vm)?;
        self.insert_disks_on(&tx, vm, disks)?;
        crate::vm_net::insert_ports(&tx, &vm.id, ports).map_err(|e| classify(e, &self.path))?;
        crate::shares::insert_shares(&tx, &self.path, &object, &vm.id, shares)?;
        tx.commit().map_err(|e| classify(e, &self.path))
    }

    /// VM `vm`'s disks on `conn`, a transaction the caller commits.
    pub(crate) fn insert_disks_on(
        &self,
        conn: &rusqlite::Connection,
        vm: &VmRecord,
        disks: &[VmDisk],
    ) -> Result<(), StoreError> {
        let object = format!("VM {:?}", vm.name);
        for disk in disks {
            check(&object, disk)?;
        }
        let tx = conn;
        for disk in disks {
            tx.execute(
                "INSERT INTO vm_disks (vm_id, role, path, format, backend, size_bytes) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    vm.id,
                    disk.role.as_str(),
                    sql::path(&object, "disk path", &disk.path)?,
                    disk.format,
                    disk.backend,
                    sql::int(&object, "disk size_bytes", disk.size_bytes)?,
                ],
            )
            .map_err(|e| classify(e, &self.path))?;
        }
        Ok(())
    }

    /// The disks of VM `id`, root first. Empty for VMs created before disks were recorded.
    pub fn vm_disks(&self, id: &str) -> Result<Vec<VmDisk>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT role, path, format, backend, size_bytes FROM vm_disks WHERE vm_id = ?1 \
                 ORDER BY CASE role WHEN 'root' THEN 0 ELSE 1 END",
            )
            .map_err(|e| classify(e, &self.path))?;
        let rows = stmt
            .query_map([id], |row| {
                let role: String = row.get(0)?;
                Ok(VmDisk {
                    role: if role == "root" {
                        DiskRole::Root
                    } else {
                        DiskRole::Work
                    },
                    path: PathBuf::from(row.get::<_, String>(1)?),
                    format: row.get(2)?,
                    backend: row.get(3)?,
                    size_bytes: row.get(4)?,
                })
            })
            .map_err(|e| classify(e, &self.path))?;
        rows.collect::<Result<_, _>>()
            .map_err(|e| classify(e, &self.path))
    }
}

fn check(object: &str, disk: &VmDisk) -> Result<(), StoreError> {
    let bad = |field: &'static str, value: &str, allowed: &[&str]| StoreError::InvalidValue {
        object: object.to_string(),
        field,
        reason: format!("{value:?} is not one of {}", allowed.join(", ")),
    };
    if !DISK_FORMATS.contains(&disk.format.as_str()) {
        return Err(bad("disk format", &disk.format, &DISK_FORMATS));
    }
    if !DISK_BACKENDS.contains(&disk.backend.as_str()) {
        return Err(bad("disk backend", &disk.backend, &DISK_BACKENDS));
    }
    Ok(())
}
