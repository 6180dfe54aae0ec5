//! Image queries.

use crate::error::{StoreError, extended_code};
use crate::migrations::classify;
use crate::model::{ImageRecord, KERNEL_FORMATS};
use crate::{Store, sql};
use rusqlite::{OptionalExtension, Row, TransactionBehavior, params};
use std::path::PathBuf;

const COLUMNS: &str = "name, kernel_path, kernel_format, bzimage_path, initrd_path, rootfs_path, source, \
                       kernel_release, dir, created_at, size_bytes, kernel_pvh, init, config_json, digest";

fn from_row(row: &Row<'_>) -> rusqlite::Result<ImageRecord> {
    Ok(ImageRecord {
        name: row.get(0)?,
        kernel_path: PathBuf::from(row.get::<_, String>(1)?),
        kernel_format: row.get(2)?,
        bzimage_path: row.get::<_, Option<String>>(3)?.map(PathBuf::from),
        initrd_path: row.get::<_, Option<String>>(4)?.map(PathBuf::from),
        rootfs_path: row.get::<_, Option<String>>(5)?.map(PathBuf::from),
        source: row.get(6)?,
        kernel_release: row.get(7)?,
        dir: PathBuf::from(row.get::<_, String>(8)?),
        created_at: row.get(9)?,
        size_bytes: row.get(10)?,
        kernel_pvh: row.get(11)?,
        init: row.get(12)?,
        config_json: row.get(13)?,
        digest: row.get(14)?,
    })
}

impl Store {
    /// Register a new image. A name already taken is [`StoreError::ImageExists`].
    pub fn insert_image(&self, image: &ImageRecord) -> Result<(), StoreError> {
        self.write_image(image, false)
    }

    /// Insert or overwrite the image of that name (used by rebuilds). VMs using it keep
    /// pointing at it.
    pub fn replace_image(&self, image: &ImageRecord) -> Result<(), StoreError> {
        self.write_image(image, true)
    }

    fn write_image(&self, image: &ImageRecord, upsert: bool) -> Result<(), StoreError> {
        let object = format!("image {:?}", image.name);
        if !KERNEL_FORMATS.contains(&image.kernel_format.as_str()) {
            return Err(StoreError::InvalidValue {
                object,
                field: "kernel_format",
                reason: format!(
                    "{:?} is not one of {}",
                    image.kernel_format,
                    KERNEL_FORMATS.join(", ")
                ),
            });
        }
        sql::json(&object, "config_json", image.config_json.as_deref())?;
        let conflict = if upsert {
            "ON CONFLICT (name) DO UPDATE SET kernel_path = excluded.kernel_path, \
             kernel_format = excluded.kernel_format, bzimage_path = excluded.bzimage_path, \
             initrd_path = excluded.initrd_path, rootfs_path = excluded.rootfs_path, \
             source = excluded.source, kernel_release = excluded.kernel_release, dir = excluded.dir, \
             created_at = excluded.created_at, size_bytes = excluded.size_bytes, \
             kernel_pvh = excluded.kernel_pvh, init = excluded.init, \
             config_json = excluded.config_json, digest = excluded.digest"
        } else {
            ""
        };
        let statement = format!(
            "INSERT INTO images ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15) {conflict}"
        );
        let result = self.conn.execute(
            &statement,
            params![
                image.name,
                sql::path(&object, "kernel_path", &image.kernel_path)?,
                image.kernel_format,
                sql::opt_path(&object, "bzimage_path", image.bzimage_path.as_deref())?,
                sql::opt_path(&object, "initrd_path", image.initrd_path.as_deref())?,
                sql::opt_path(&object, "rootfs_path", image.rootfs_path.as_deref())?,
                image.source,
                image.kernel_release,
                sql::path(&object, "dir", &image.dir)?,
                image.created_at,
                sql::int(&object, "size_bytes", image.size_bytes)?,
                image.kernel_pvh,
                image.init,
                image.config_json,
                image.digest,
            ],
        );
        match result {
            Ok(_) => Ok(()),
            Err(e) if extended_code(&e) == Some(sql::CONSTRAINT_PRIMARYKEY) => {
                Err(StoreError::ImageExists(image.name.clone()))
            }
            Err(e) => Err(classify(e, &self.path)),
        }
    }

    pub fn get_image(&self, name: &str) -> Result<Option<ImageRecord>, StoreError> {
        self.conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM images WHERE name = ?1"),
                [name],
                from_row,
            )
            .optional()
            .map_err(|e| classify(e, &self.path))
    }

    /// Every image, by name.
    pub fn list_images(&self) -> Result<Vec<ImageRecord>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {COLUMNS} FROM images ORDER BY name"))
            .map_err(|e| classify(e, &self.path))?;
        let rows = stmt
            .query_map([], from_row)
            .map_err(|e| classify(e, &self.path))?;
        rows.collect::<Result<_, _>>()
            .map_err(|e| classify(e, &self.path))
    }

    /// Remove an image's row. Refused with [`StoreError::ImageInUse`] while VMs use it;
    /// [`StoreError::ImageNotFound`] when there is no such image.
    pub fn delete_image(&self, name: &str) -> Result<(), StoreError> {
        let tx = self.transaction(TransactionBehavior::Immediate)?;
        let vms = vm_names_using(&tx, name).map_err(|e| classify(e, &self.path))?;
        if !vms.is_empty() {
            return Err(StoreError::ImageInUse {
                name: name.to_string(),
                vms,
            });
        }
        let deleted = tx
            .execute("DELETE FROM images WHERE name = ?1", [name])
            .map_err(|e| classify(e, &self.path))?;
        if deleted == 0 {
            return Err(StoreError::ImageNotFound(name.to_string()));
        }
        tx.commit().map_err(|e| classify(e, &self.path))
    }

    /// Names of the VMs built on image `name`, sorted.
    pub fn vms_using_image(&self, name: &str) -> Result<Vec<String>, StoreError> {
        // A waiting standby is the daemon's, not a user's (standbys.rs): the daemon removes
        // it with the image; `delete_image` still refuses while one exists.
        let hidden = self.waiting_standbys()?;
        let mut stmt = self
            .conn
            .prepare("SELECT id, name FROM vms WHERE image_name = ?1 ORDER BY name")
            .map_err(|e| classify(e, &self.path))?;
        let rows: Vec<(String, String)> = stmt
            .query_map([name], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(|e| classify(e, &self.path))?
            .collect::<Result<_, _>>()
            .map_err(|e| classify(e, &self.path))?;
        Ok(rows
            .into_iter()
            .filter(|(id, _)| !hidden.contains(id))
            .map(|(_, name)| name)
            .collect())
    }
}

fn vm_names_using(conn: &rusqlite::Connection, image: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT name FROM vms WHERE image_name = ?1 ORDER BY name")?;
    let rows = stmt.query_map([image], |r| r.get(0))?;
    rows.collect()
}
