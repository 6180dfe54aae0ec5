//! The lifecycle's compound moves: a VM reaching `running`, and a VM whose VMM is gone
//! leaving the running world. Each records several fields with its state change in one
//! write transaction (one commit, one WAL sync): a daemon killed at any moment leaves
//! either all of it or none of it, never a `running` VM without its start time or a
//! `stopped` one still naming a VMM.

use crate::error::StoreError;
use crate::migrations::classify;
use crate::model::{VmState, now_rfc3339};
use crate::{Store, sql};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

/// What a VM's move to `running` records besides its state ([`Store::mark_running`]).
#[derive(Debug, Clone, Copy)]
pub struct Started<'a> {
    /// The driver that launched the VMM.
    pub driver: &'a str,
    /// The VMM's runtime record (JSON).
    pub runtime_json: &'a str,
    /// The boot's phase timings (JSON), if measured.
    pub boot_json: Option<&'a str>,
    /// When the VM started (RFC 3339 UTC).
    pub started_at: &'a str,
    /// The boot restored the VM's snapshot: a clone's later starts boot its own disks
    /// (`vm_origins.restored_at` is set to `started_at`).
    pub restored: bool,
}

impl Store {
    /// VM `id` has booted: in one transaction, check that it is still `from` (normally
    /// `starting`), record its runtime, boot timings and start time, forget what its shares
    /// reported during the previous run (this boot serves every share afresh), mark a
    /// restored clone as restored, and move it to `running`.
    ///
    /// All or nothing: if the VM is no longer `from` ([`StoreError::StateConflict`]), the
    /// move is not allowed ([`StoreError::InvalidTransition`]), a JSON field does not parse
    /// ([`StoreError::InvalidJson`]) or any write fails, nothing is recorded.
    pub fn mark_running(
        &self,
        id: &str,
        from: VmState,
        run: &Started<'_>,
    ) -> Result<(), StoreError> {
        let object = format!("VM {id}");
        sql::json(&object, "runtime_json", Some(run.runtime_json))?;
        sql::json(&object, "boot_json", run.boot_json)?;
        let tx = self.transaction(TransactionBehavior::Immediate)?;
        self.check_transition(&tx, id, Some(from), VmState::Running)?;
        let now = now_rfc3339();
        tx.execute(
            "UPDATE vms SET state = ?2, last_error = NULL, driver = ?3, runtime_json = ?4, \
             boot_json = ?5, started_at = ?6, updated_at = ?7 WHERE id = ?1",
            params![
                id,
                VmState::Running,
                run.driver,
                run.runtime_json,
                run.boot_json,
                run.started_at,
                now
            ],
        )
        .map_err(|e| classify(e, &self.path))?;
        self.clear_share_run_on(&tx, id)?;
        if run.restored {
            tx.execute(
                "UPDATE vm_origins SET restored_at = ?2 WHERE vm_id = ?1",
                params![id, run.started_at],
            )
            .map_err(|e| classify(e, &self.path))?;
        }
        tx.commit().map_err(|e| classify(e, &self.path))
    }

    /// VM `id`'s VMM is gone: in one transaction, check that it is still `from`, drop its
    /// runtime record (writing back `driver` and `boot_json`, the VM's as they were before
    /// the run, so a failed boot keeps the last good boot's timings), and move it to `to`
    /// with `last_error` (`None` clears it).
    ///
    /// All or nothing, with the errors of [`Store::update_vm_state`]: a VM no longer in
    /// `from` keeps its runtime record.
    pub fn mark_ended(
        &self,
        id: &str,
        from: VmState,
        to: VmState,
        last_error: Option<&str>,
        driver: Option<&str>,
        boot_json: Option<&str>,
    ) -> Result<(), StoreError> {
        sql::json(&format!("VM {id}"), "boot_json", boot_json)?;
        let tx = self.transaction(TransactionBehavior::Immediate)?;
        self.check_transition(&tx, id, Some(from), to)?;
        tx.execute(
            "UPDATE vms SET state = ?2, last_error = ?3, driver = ?4, runtime_json = NULL, \
             boot_json = ?5, updated_at = ?6 WHERE id = ?1",
            params![id, to, last_error, driver, boot_json, now_rfc3339()],
        )
        .map_err(|e| classify(e, &self.path))?;
        tx.commit().map_err(|e| classify(e, &self.path))
    }

    /// Within a write transaction on `conn`: fail unless VM `id` exists, is in `from` (when
    /// given) and may move to `to`. See [`Store::update_vm_state`] for the errors.
    pub(crate) fn check_transition(
        &self,
        conn: &Connection,
        id: &str,
        from: Option<VmState>,
        to: VmState,
    ) -> Result<(), StoreError> {
        let current: VmState = conn
            .query_row("SELECT state FROM vms WHERE id = ?1", [id], |r| r.get(0))
            .optional()
            .map_err(|e| classify(e, &self.path))?
            .ok_or_else(|| StoreError::VmNotFound(id.to_string()))?;
        if let Some(expected) = from.filter(|&f| f != current) {
            return Err(StoreError::StateConflict {
                id: id.to_string(),
                expected,
                actual: current,
            });
        }
        if !current.can_transition_to(to) {
            return Err(StoreError::InvalidTransition {
                id: id.to_string(),
                from: current,
                to,
            });
        }
        Ok(())
    }
}
