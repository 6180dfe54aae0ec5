//! Write-ahead intents: a multi-step VM operation is recorded before its first step, so that
//! a daemon that dies half-way (SIGKILL, power loss, a full disk) leaves a record a restarted
//! daemon can finish or undo. Reconciliation reads them at start-up.
//!
//! * `create` is recorded before the VM's directory is made; registering the VM
//!   ([`Store::insert_vm`]) ends it in the same transaction. A `create` intent left over means
//!   the directory may exist without a row: remove it.
//! * `remove` is recorded before the VM's files are deleted; deleting the row
//!   ([`Store::delete_vm`]) ends it in the same transaction. Left over, it means the row may
//!   point at a half-deleted directory: finish the removal.
//!
//! Booting needs no intent of its own: the VM's `starting` state is recorded before its VMM is
//! launched, and names the directory the VMM runs in, where a restarted daemon looks for it.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use rusqlite::params;

use crate::error::{StoreError, extended_code};
use crate::migrations::classify;
use crate::model::now_rfc3339;
use crate::{Store, sql};

/// What a recorded operation was doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IntentOp {
    Create,
    Remove,
}

impl IntentOp {
    pub fn as_str(self) -> &'static str {
        match self {
            IntentOp::Create => "create",
            IntentOp::Remove => "remove",
        }
    }
}

impl fmt::Display for IntentOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for IntentOp {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "create" => Ok(IntentOp::Create),
            "remove" => Ok(IntentOp::Remove),
            other => Err(format!(
                "unknown intent {other:?}; expected create or remove"
            )),
        }
    }
}

/// An operation begun on VM `vm_id`, whose files live in `dir`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intent {
    pub vm_id: String,
    pub op: IntentOp,
    pub dir: PathBuf,
    pub created_at: String,
}

impl Store {
    /// Record that `op` begins on VM `vm_id` (files in `dir`). At most one intent per VM:
    /// operations on one VM are serialised, so a second one is a bug or a leftover that
    /// reconciliation has not handled ([`StoreError::IntentExists`]).
    pub fn begin_intent(
        &self,
        vm_id: &str,
        op: IntentOp,
        dir: &std::path::Path,
    ) -> Result<(), StoreError> {
        let object = format!("VM {vm_id}");
        let result = self.conn.execute(
            "INSERT INTO intents (vm_id, op, dir, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![
                vm_id,
                op.as_str(),
                sql::path(&object, "dir", dir)?,
                now_rfc3339()
            ],
        );
        match result.map_err(|e| (extended_code(&e), e)) {
            Ok(_) => Ok(()),
            Err((Some(sql::CONSTRAINT_PRIMARYKEY), _)) => {
                Err(StoreError::IntentExists(vm_id.to_string()))
            }
            Err((_, e)) => Err(classify(e, &self.path)),
        }
    }

    /// Forget the intent of VM `vm_id` (an operation undone or abandoned). No error when
    /// there is none.
    pub fn end_intent(&self, vm_id: &str) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM intents WHERE vm_id = ?1", [vm_id])
            .map_err(|e| classify(e, &self.path))?;
        Ok(())
    }

    /// Every recorded intent, oldest first.
    pub fn list_intents(&self) -> Result<Vec<Intent>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT vm_id, op, dir, created_at FROM intents ORDER BY created_at, vm_id")
            .map_err(|e| classify(e, &self.path))?;
        let rows = stmt
            .query_map([], |row| {
                let op: String = row.get(1)?;
                let op = op.parse::<IntentOp>().map_err(|e| {
                    rusqlite::Error::FromSqlConversionFailure(
                        1,
                        rusqlite::types::Type::Text,
                        e.into(),
                    )
                })?;
                Ok(Intent {
                    vm_id: row.get(0)?,
                    op,
                    dir: PathBuf::from(row.get::<_, String>(2)?),
                    created_at: row.get(3)?,
                })
            })
            .map_err(|e| classify(e, &self.path))?;
        rows.collect::<Result<_, _>>()
            .map_err(|e| classify(e, &self.path))
    }
}
