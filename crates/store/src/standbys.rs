//! Warm standbys (`vm_standbys`): VMs the daemon keeps restored from an image's warm state
//! so that `vm run` of the image hands one over instead of restoring.
//!
//! A waiting standby (`taken_at` NULL) is a VM row like any other — its disks, lease and
//! lifecycle are the ordinary ones — that the daemon hides from users. Taking one renames
//! it and stamps `taken_at` in one transaction, so two runs can never take the same one;
//! the stamp stays, so `vm inspect` can say the VM came from a standby.

use crate::error::{StoreError, extended_code};
use crate::migrations::classify;
use crate::{Store, sql};
use rusqlite::{OptionalExtension, TransactionBehavior, params};

impl Store {
    /// The ids of the waiting standbys, oldest first.
    pub fn waiting_standbys(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT s.vm_id FROM vm_standbys s JOIN vms v ON v.id = s.vm_id \
                 WHERE s.taken_at IS NULL ORDER BY v.created_at, v.id",
            )
            .map_err(|e| classify(e, &self.path))?;
        stmt.query_map([], |row| row.get(0))
            .map_err(|e| classify(e, &self.path))?
            .collect::<Result<_, _>>()
            .map_err(|e| classify(e, &self.path))
    }

    /// Whether VM `vm_id` is a waiting standby (hidden from users).
    pub fn is_waiting_standby(&self, vm_id: &str) -> Result<bool, StoreError> {
        self.conn
            .query_row(
                "SELECT 1 FROM vm_standbys WHERE vm_id = ?1 AND taken_at IS NULL",
                [vm_id],
                |_| Ok(()),
            )
            .optional()
            .map(|found| found.is_some())
            .map_err(|e| classify(e, &self.path))
    }

    /// When VM `vm_id` was taken from a standby, if it was.
    pub fn standby_taken_at(&self, vm_id: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row(
                "SELECT taken_at FROM vm_standbys WHERE vm_id = ?1",
                [vm_id],
                |row| row.get::<_, Option<String>>(0),
            )
            .optional()
            .map(Option::flatten)
            .map_err(|e| classify(e, &self.path))
    }

    /// Take waiting standby `vm_id` as VM `name`, at `at`, in one transaction. `Ok(false)`
    /// when it is not waiting any more (taken or gone). Errors: [`StoreError::VmExists`]
    /// when `name` is taken (the standby then stays waiting).
    pub fn take_standby(&self, vm_id: &str, name: &str, at: &str) -> Result<bool, StoreError> {
        let tx = self.transaction(TransactionBehavior::Immediate)?;
        let stamped = tx
            .execute(
                "UPDATE vm_standbys SET taken_at = ?2 WHERE vm_id = ?1 AND taken_at IS NULL",
                params![vm_id, at],
            )
            .map_err(|e| classify(e, &self.path))?;
        if stamped == 0 {
            return Ok(false);
        }
        let renamed = tx.execute(
            "UPDATE vms SET name = ?2, updated_at = ?3 WHERE id = ?1",
            params![vm_id, name, at],
        );
        match renamed.map_err(|e| (extended_code(&e), e)) {
            Ok(1) => {}
            Ok(_) => return Ok(false),
            Err((Some(sql::CONSTRAINT_UNIQUE), _)) => {
                return Err(StoreError::VmExists(name.to_string()));
            }
            Err((_, e)) => return Err(classify(e, &self.path)),
        }
        tx.commit().map_err(|e| classify(e, &self.path))?;
        Ok(true)
    }
}
