//! VM queries, including the state machine's compare-and-set.

use crate::error::{StoreError, extended_code};
use crate::migrations::classify;
use crate::model::{VmRecord, VmState, now_rfc3339};
use crate::{Store, sql};
use rusqlite::{OptionalExtension, Row, TransactionBehavior, params};
use std::path::PathBuf;

const COLUMNS: &str = "id, name, image_name, state, vcpu, memory_mib, disk_bytes, dir, driver, runtime_json, \
                       boot_json, last_error, created_at, updated_at, started_at, driver_reason";

fn from_row(row: &Row<'_>) -> rusqlite::Result<VmRecord> {
    Ok(VmRecord {
        id: row.get(0)?,
        name: row.get(1)?,
        image_name: row.get(2)?,
        state: row.get(3)?,
        vcpu: row.get(4)?,
        memory_mib: row.get(5)?,
        disk_bytes: row.get(6)?,
        dir: PathBuf::from(row.get::<_, String>(7)?),
        driver: row.get(8)?,
        runtime_json: row.get(9)?,
        boot_json: row.get(10)?,
        last_error: row.get(11)?,
        created_at: row.get(12)?,
        updated_at: row.get(13)?,
        started_at: row.get(14)?,
        driver_reason: row.get(15)?,
    })
}

impl Store {
    /// Add a VM. Errors: [`StoreError::VmExists`] (name taken), [`StoreError::VmIdExists`],
    /// [`StoreError::ImageNotFound`] (its image is not registered).
    pub fn insert_vm(&self, vm: &VmRecord) -> Result<(), StoreError> {
        let tx = self.transaction(TransactionBehavior::Immediate)?;
        self.insert_vm_on(&tx, vm)?;
        tx.commit().map_err(|e| classify(e, &self.path))
    }

    /// [`Store::insert_vm`] on `conn`, a transaction the caller commits (the row and the end
    /// of its `create` intent must land together).
    pub(crate) fn insert_vm_on(
        &self,
        conn: &rusqlite::Connection,
        vm: &VmRecord,
    ) -> Result<(), StoreError> {
        let object = format!("VM {:?}", vm.name);
        sql::json(&object, "runtime_json", vm.runtime_json.as_deref())?;
        sql::json(&object, "boot_json", vm.boot_json.as_deref())?;
        let result = conn.execute(
            &format!(
                "INSERT INTO vms ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"
            ),
            params![
                vm.id,
                vm.name,
                vm.image_name,
                vm.state,
                vm.vcpu,
                sql::int(&object, "memory_mib", vm.memory_mib)?,
                sql::int(&object, "disk_bytes", vm.disk_bytes)?,
                sql::path(&object, "dir", &vm.dir)?,
                vm.driver,
                vm.runtime_json,
                vm.boot_json,
                vm.last_error,
                vm.created_at,
                vm.updated_at,
                vm.started_at,
                vm.driver_reason,
            ],
        );
        match result.map_err(|e| (extended_code(&e), e)) {
            // Registering a VM completes its creation: its `create` intent ends in the same
            // transaction, so there is never a moment with both or neither.
            Ok(_) => conn
                .execute(
                    "DELETE FROM intents WHERE vm_id = ?1 AND op = 'create'",
                    [&vm.id],
                )
                .map(drop)
                .map_err(|e| classify(e, &self.path)),
            Err((Some(sql::CONSTRAINT_UNIQUE), _)) => Err(StoreError::VmExists(vm.name.clone())),
            Err((Some(sql::CONSTRAINT_PRIMARYKEY), _)) => {
                Err(StoreError::VmIdExists(vm.id.clone()))
            }
            Err((Some(sql::CONSTRAINT_FOREIGNKEY), _)) => {
                Err(StoreError::ImageNotFound(vm.image_name.clone()))
            }
            Err((_, e)) => Err(classify(e, &self.path)),
        }
    }

    /// Look a VM up by name, else by id (an exact name match wins over an id match).
    pub fn get_vm(&self, name_or_id: &str) -> Result<Option<VmRecord>, StoreError> {
        self.conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM vms WHERE name = ?1 OR id = ?1 ORDER BY name = ?1 DESC LIMIT 1"),
                [name_or_id],
                from_row,
            )
            .optional()
            .map_err(|e| classify(e, &self.path))
    }

    /// Every VM, oldest first.
    pub fn list_vms(&self) -> Result<Vec<VmRecord>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {COLUMNS} FROM vms ORDER BY created_at, name"
            ))
            .map_err(|e| classify(e, &self.path))?;
        let rows = stmt
            .query_map([], from_row)
            .map_err(|e| classify(e, &self.path))?;
        rows.collect::<Result<_, _>>()
            .map_err(|e| classify(e, &self.path))
    }

    /// Move VM `id` to state `to`, replacing `last_error` (`None` clears it).
    ///
    /// The move must be allowed by [`VmState::can_transition_to`]
    /// ([`StoreError::InvalidTransition`]). With `from`, this is a compare-and-set: if the
    /// VM is no longer in `from`, nothing changes and the answer is
    /// [`StoreError::StateConflict`]. The check and the write happen in one write
    /// transaction, so concurrent writers cannot interleave.
    pub fn update_vm_state(
        &self,
        id: &str,
        from: Option<VmState>,
        to: VmState,
        last_error: Option<&str>,
    ) -> Result<(), StoreError> {
        let tx = self.transaction(TransactionBehavior::Immediate)?;
        self.check_transition(&tx, id, from, to)?;
        tx.execute(
            "UPDATE vms SET state = ?2, last_error = ?3, updated_at = ?4 WHERE id = ?1",
            params![id, to, last_error, now_rfc3339()],
        )
        .map_err(|e| classify(e, &self.path))?;
        tx.commit().map_err(|e| classify(e, &self.path))
    }

    /// Record the driver and its runtime/boot JSON for VM `id` (`None` clears a field).
    pub fn set_vm_runtime(
        &self,
        id: &str,
        driver: Option<&str>,
        runtime_json: Option<&str>,
        boot_json: Option<&str>,
    ) -> Result<(), StoreError> {
        let object = format!("VM {id}");
        sql::json(&object, "runtime_json", runtime_json)?;
        sql::json(&object, "boot_json", boot_json)?;
        self.update_one(
            id,
            "UPDATE vms SET driver = ?2, runtime_json = ?3, boot_json = ?4, updated_at = ?5 WHERE id = ?1",
            params![id, driver, runtime_json, boot_json, now_rfc3339()],
        )
    }

    /// Record when VM `id` last started (RFC 3339 UTC).
    pub fn set_vm_started(&self, id: &str, started_at: &str) -> Result<(), StoreError> {
        self.update_one(
            id,
            "UPDATE vms SET started_at = ?2, updated_at = ?3 WHERE id = ?1",
            params![id, started_at, now_rfc3339()],
        )
    }

    /// Remove VM `id`'s row ([`StoreError::VmNotFound`] if there is none). The daemon
    /// stops the VM and removes its files first. The VM's intent (its `remove`) ends in the
    /// same transaction.
    pub fn delete_vm(&self, id: &str) -> Result<(), StoreError> {
        let tx = self.transaction(TransactionBehavior::Immediate)?;
        let changed = tx
            .execute("DELETE FROM vms WHERE id = ?1", params![id])
            .map_err(|e| classify(e, &self.path))?;
        if changed == 0 {
            return Err(StoreError::VmNotFound(id.to_string()));
        }
        tx.execute("DELETE FROM intents WHERE vm_id = ?1", params![id])
            .map_err(|e| classify(e, &self.path))?;
        tx.commit().map_err(|e| classify(e, &self.path))
    }

    /// Run a statement that must touch exactly the row of VM `id`.
    fn update_one(
        &self,
        id: &str,
        statement: &str,
        params: impl rusqlite::Params,
    ) -> Result<(), StoreError> {
        let changed = self
            .conn
            .execute(statement, params)
            .map_err(|e| classify(e, &self.path))?;
        if changed == 0 {
            return Err(StoreError::VmNotFound(id.to_string()));
        }
        Ok(())
    }
}
