//! Conversions between record fields and SQL values that can fail.

use crate::error::StoreError;
use std::path::Path;

pub(crate) const CONSTRAINT_PRIMARYKEY: i32 = rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY;
pub(crate) const CONSTRAINT_UNIQUE: i32 = rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE;
pub(crate) const CONSTRAINT_FOREIGNKEY: i32 = rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY;

/// Paths are stored as text: the JSON API needs UTF-8 anyway.
pub(crate) fn path<'a>(
    object: &str,
    field: &'static str,
    p: &'a Path,
) -> Result<&'a str, StoreError> {
    p.to_str().ok_or_else(|| StoreError::InvalidValue {
        object: object.to_string(),
        field,
        reason: format!("path {} is not valid UTF-8; rename it", p.display()),
    })
}

pub(crate) fn opt_path<'a>(
    object: &str,
    field: &'static str,
    p: Option<&'a Path>,
) -> Result<Option<&'a str>, StoreError> {
    p.map(|p| path(object, field, p)).transpose()
}

/// SQLite integers are signed 64-bit.
pub(crate) fn int(object: &str, field: &'static str, v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::InvalidValue {
        object: object.to_string(),
        field,
        reason: format!("{v} is larger than the store can hold ({})", i64::MAX),
    })
}

/// Opaque JSON columns must at least be JSON.
pub(crate) fn json(object: &str, field: &'static str, v: Option<&str>) -> Result<(), StoreError> {
    if let Some(text) = v {
        serde_json::from_str::<serde::de::IgnoredAny>(text).map_err(|source| {
            StoreError::InvalidJson {
                object: object.to_string(),
                field,
                source,
            }
        })?;
    }
    Ok(())
}
