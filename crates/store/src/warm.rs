//! Warm images: the snapshot an image is restored from instead of booting (`image_warm`),
//! and why a VM that could have been restored from one booted cold (`vm_cold_reasons`).
//!
//! An image has at most one current warm state. A state that no longer matches is
//! retired (`current = 0`) rather than deleted while clones are built on its disks; the
//! daemon deletes retired states once no clone is left.

use crate::error::StoreError;
use crate::migrations::classify;
use crate::snapshots::SnapshotRecord;
use crate::{Store, sql};
use rusqlite::{OptionalExtension, TransactionBehavior, params};

/// An image's warm state: its snapshot and the key it was taken under (JSON owned by
/// the daemon).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarmState {
    pub snapshot: SnapshotRecord,
    pub image_name: String,
    pub key_json: String,
    /// `false` once retired: kept only for the clones built on it.
    pub current: bool,
}

impl Store {
    /// Register `snap` as image `snap.image_name`'s current warm state, retiring the one
    /// before it, in one transaction: the snapshot is never visible as a user snapshot.
    pub fn insert_warm_state(
        &self,
        snap: &SnapshotRecord,
        key_json: &str,
    ) -> Result<(), StoreError> {
        let object = format!("warm state of image {:?}", snap.image_name);
        sql::json(&object, "key_json", Some(key_json))?;
        let tx = self.transaction(TransactionBehavior::Immediate)?;
        tx.execute(
            "UPDATE image_warm SET current = 0 WHERE image_name = ?1",
            [&snap.image_name],
        )
        .map_err(|e| classify(e, &self.path))?;
        self.insert_snapshot(snap)?;
        tx.execute(
            "INSERT INTO image_warm (snapshot_id, image_name, key_json, current) \
             VALUES (?1, ?2, ?3, 1)",
            params![snap.id, snap.image_name, key_json],
        )
        .map_err(|e| classify(e, &self.path))?;
        tx.commit().map_err(|e| classify(e, &self.path))
    }

    /// Image `image`'s current warm state, if it has one.
    pub fn current_warm_state(&self, image: &str) -> Result<Option<WarmState>, StoreError> {
        Ok(self
            .warm_states()?
            .into_iter()
            .find(|w| w.current && w.image_name == image))
    }

    /// Every warm state, current and retired.
    pub fn warm_states(&self) -> Result<Vec<WarmState>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT snapshot_id, image_name, key_json, current FROM image_warm \
                 ORDER BY image_name, current DESC",
            )
            .map_err(|e| classify(e, &self.path))?;
        let rows: Vec<(String, String, String, i64)> = stmt
            .query_map([], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })
            .map_err(|e| classify(e, &self.path))?
            .collect::<Result<_, _>>()
            .map_err(|e| classify(e, &self.path))?;
        let mut states = Vec::with_capacity(rows.len());
        for (snapshot_id, image_name, key_json, current) in rows {
            // The foreign key keeps the snapshot as long as the row.
            if let Some(snapshot) = self.get_snapshot(&snapshot_id)? {
                states.push(WarmState {
                    snapshot,
                    image_name,
                    key_json,
                    current: current == 1,
                });
            }
        }
        Ok(states)
    }

    /// The image whose warm state snapshot `snapshot_id` is, if it is one.
    pub fn warm_image_of(&self, snapshot_id: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row(
                "SELECT image_name FROM image_warm WHERE snapshot_id = ?1",
                [snapshot_id],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| classify(e, &self.path))
    }

    /// Retire warm state `snapshot_id`: no new VM restores from it.
    pub fn retire_warm_state(&self, snapshot_id: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE image_warm SET current = 0 WHERE snapshot_id = ?1",
                [snapshot_id],
            )
            .map(drop)
            .map_err(|e| classify(e, &self.path))
    }

    /// Record why VM `vm_id` booted cold although its image could be warm.
    pub fn set_cold_reason(&self, vm_id: &str, reason: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO vm_cold_reasons (vm_id, reason) VALUES (?1, ?2) \
                 ON CONFLICT (vm_id) DO UPDATE SET reason = excluded.reason",
                params![vm_id, reason],
            )
            .map(drop)
            .map_err(|e| classify(e, &self.path))
    }

    /// Why VM `vm_id` booted cold, when that was recorded.
    pub fn cold_reason(&self, vm_id: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row(
                "SELECT reason FROM vm_cold_reasons WHERE vm_id = ?1",
                [vm_id],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| classify(e, &self.path))
    }
}
