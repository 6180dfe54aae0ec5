//! Files and directories banger adds to a tree itself (the agent, its config), placed
//! by the same containment rules as a layer's entries.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use super::contain::{create_file, relative_parts, remove_any};
use super::{Applier, LayerError, pax, refused};

impl Applier<'_> {
    /// Write `rel` (a relative path) with `data` and `mode`, replacing whatever is there,
    /// resolved like a layer entry: never outside the tree. Owned by root.
    pub fn add_file(&self, rel: &str, data: &[u8], mode: u32) -> Result<(), LayerError> {
        let (parent, name) = self.place(rel)?;
        let path = parent.join(name);
        let io = |op: &'static str| {
            move |source| LayerError::Io {
                layer: "banger".into(),
                entry: rel.to_string(),
                op,
                source,
            }
        };
        remove_any(&path).map_err(io("replace"))?;
        let mut file = create_file(&path).map_err(io("create"))?;
        io::Write::write_all(&mut file, data).map_err(io("write"))?;
        drop(file);
        self.own(&path, 0, 0, &pax::Pending::default())
            .map_err(io("set the owner of"))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).map_err(io("set the mode of"))
    }

    /// Make sure directory `rel` exists (a symlink to a directory inside the tree counts).
    pub fn add_dir(&self, rel: &str) -> Result<(), LayerError> {
        let parts = relative_parts(rel.as_bytes()).map_err(|p| refused("banger", rel, &p))?;
        self.resolve_dir(&parts, true)
            .map(drop)
            .map_err(|p| refused("banger", rel, &p))
    }

    fn place<'r>(&self, rel: &'r str) -> Result<(PathBuf, &'r OsStr), LayerError> {
        let parts = relative_parts(rel.as_bytes()).map_err(|p| refused("banger", rel, &p))?;
        let Some((name, parents)) = parts.split_last() else {
            return Err(refused("banger", rel, "names the root"));
        };
        let parent = self
            .resolve_dir(parents, true)
            .map_err(|p| refused("banger", rel, &p))?;
        Ok((parent, name))
    }
}
