//! Applying an image layer (a tar stream) onto a directory tree, with the image-spec's
//! whiteout rules, and without ever letting a hostile layer touch anything outside the
//! tree.
//!
//! Containment rests on three rules:
//! * entry names are relative paths without `..`; absolute or escaping names are refused;
//! * parent directories are resolved inside the tree: a symlink met on the way is
//!   followed with the tree as its root (absolute targets restart at the tree's root, `..`
//!   stops there), so `etc -> /` in one layer and `etc/passwd` in the next lands in the
//!   tree's own `/etc`;
//! * the last component is never followed: an existing entry is removed and the new one
//!   created with `O_EXCL`, so an existing inode (which may be shared with the layer
//!   cache through a hard link) is never written in place.
//!
//! Device nodes are refused (a guest's /dev is devtmpfs); hard links must name an earlier
//! entry of the tree; names and PAX headers are bounded.
//!
//! `contain.rs` holds the containment rules; `add.rs` the files banger adds itself.

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsStr;
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::pax;
use contain::{create_file, mkdir, relative_parts, remove_any, set_mtime};

mod add;
mod contain;

/// Longest entry name accepted (Linux's PATH_MAX).
const MAX_NAME: usize = 4096;
/// GNU long-name and PAX extension entries larger than this are refused.
pub const MAX_EXT_HEADER: u64 = 1 << 20;
const WHITEOUT: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";

#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("layer {layer}: entry {entry:?} {problem}; the image is refused")]
    Refused {
        layer: String,
        entry: String,
        problem: String,
    },
    #[error("layer {layer}: the tar stream is corrupt or truncated (at entry {entry:?})")]
    Corrupt {
        layer: String,
        entry: String,
        #[source]
        source: io::Error,
    },
    #[error("layer {layer}: cannot {op} {entry:?}")]
    Io {
        layer: String,
        entry: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },
}

/// What applying one layer did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LayerStats {
    pub entries: u64,
    pub bytes: u64,
    pub whiteouts: u64,
}

/// Applies layers onto one tree.
pub struct Applier<'a> {
    root: &'a Path,
    /// Set owners and security xattrs (only root can).
    privileged: bool,
    /// Unprivileged: the entries the layers give an owner other than root, by path in
    /// the tree (the last layer to write a path decides), set later inside the image.
    foreign: Mutex<BTreeMap<PathBuf, (u32, u32)>>,
}

struct Ctx<'a> {
    layer: &'a str,
    /// Paths (in the tree) this layer created: whiteouts only hide lower layers.
    created: HashSet<PathBuf>,
    /// Directory modes and times, applied at the end so a read-only directory does not
    /// stop its own entries from being written.
    dirs: Vec<(PathBuf, u32, u64)>,
}

impl<'a> Applier<'a> {
    pub fn new(root: &'a Path) -> Self {
        // SAFETY: geteuid has no memory effects.
        let privileged = unsafe { libc::geteuid() } == 0;
        Self {
            root,
            privileged,
            foreign: Mutex::new(BTreeMap::new()),
        }
    }

    /// An applier that never sets owners, as an ordinary user's would be (tests).
    pub fn unprivileged(root: &'a Path) -> Self {
        Self {
            privileged: false,
            ..Self::new(root)
        }
    }

    /// Whether this applier sets owners on the tree (it runs as root).
    pub fn is_privileged(&self) -> bool {
        self.privileged
    }

    /// The foreign owners recorded so far (unfiltered), for the layer cache.
    pub fn foreign_owners(&self) -> Vec<crate::ext4::OwnerFix> {
        let foreign = self.foreign.lock().map(|m| m.clone()).unwrap_or_default();
        foreign
            .into_iter()
            .map(|(path, (uid, gid))| crate::ext4::OwnerFix { path, uid, gid })
            .collect()
    }

    /// Start from the owners recorded with a cached tree this tree was copied from.
    pub fn seed_owners(&self, owners: &[crate::ext4::OwnerFix]) {
        if let Ok(mut foreign) = self.foreign.lock() {
            foreign.extend(owners.iter().map(|f| (f.path.clone(), (f.uid, f.gid))));
        }
    }

    /// How the tree's owners must become the image's: as they are when this applier
    /// could set them, otherwise the caller's files are root's and the entries the layers
    /// gave someone else (still present in the tree) are listed.
    pub fn owners(&self) -> crate::ext4::Owners {
        use crate::ext4::Owners;
        if self.privileged {
            return Owners::AsInTree;
        }
        let fixes = self
            .foreign_owners()
            .into_iter()
            .filter(|f| fs::symlink_metadata(self.root.join(&f.path)).is_ok())
            .collect();
        Owners::CallerIsRoot { fixes }
    }

    /// Apply the tar stream `tar` (already decompressed). `layer` names it in errors.
    pub fn apply(&self, layer: &str, tar: impl Read) -> Result<LayerStats, LayerError> {
        let mut ctx = Ctx {
            layer,
            created: HashSet::new(),
            dirs: Vec::new(),
        };
        let mut stats = LayerStats::default();
        let mut archive = tar::Archive::new(tar);
        let corrupt = |entry: &str, source| LayerError::Corrupt {
            layer: layer.to_string(),
            entry: entry.to_string(),
            source,
        };
        let entries = archive.entries().map_err(|e| corrupt("(start)", e))?;
        let mut ext = pax::Pending::default();
        let mut last = String::from("(start)");
        for entry in entries.raw(true) {
            let mut entry = entry.map_err(|e| corrupt(&last, e))?;
            let kind = entry.header().entry_type();
            let size = entry.header().size().map_err(|e| corrupt(&last, e))?;
            if kind.is_gnu_longname()
                || kind.is_gnu_longlink()
                || kind.is_pax_local_extensions()
                || kind.is_pax_global_extensions()
            {
                if size > MAX_EXT_HEADER {
                    return Err(refused(
                        layer,
                        &last,
                        &format!(
                            "is followed by an oversized header ({size} bytes, limit {MAX_EXT_HEADER})"
                        ),
                    ));
                }
                let mut data = Vec::with_capacity(size as usize);
                entry
                    .by_ref()
                    .take(size)
                    .read_to_end(&mut data)
                    .map_err(|e| corrupt(&last, e))?;
                ext.absorb(kind, data)
                    .map_err(|problem| refused(layer, &last, &problem))?;
                continue;
            }
            let pending = std::mem::take(&mut ext);
            let name = pending
                .path
                .clone()
                .unwrap_or_else(|| entry.header().path_bytes().into_owned());
            last = String::from_utf8_lossy(&name).into_owned();
            stats.entries += 1;
            stats.bytes += size;
            self.entry(&mut ctx, &mut entry, &name, &pending, &mut stats)?;
        }
        // The last entry for a directory wins; children before parents, so setting a
        // child's time does not disturb its parent's.
        let mut dirs: std::collections::HashMap<&Path, (u32, u64)> = Default::default();
        for (path, mode, mtime) in &ctx.dirs {
            dirs.insert(path, (*mode, *mtime));
        }
        let mut dirs: Vec<_> = dirs.into_iter().collect();
        dirs.sort_by_key(|(p, _)| std::cmp::Reverse(p.components().count()));
        for (path, (mode, mtime)) in dirs {
            let _ = fs::set_permissions(path, fs::Permissions::from_mode(mode));
            set_mtime(path, mtime);
        }
        Ok(stats)
    }

    fn entry(
        &self,
        ctx: &mut Ctx<'_>,
        entry: &mut tar::Entry<'_, impl Read>,
        raw_name: &[u8],
        ext: &pax::Pending,
        stats: &mut LayerStats,
    ) -> Result<(), LayerError> {
        let layer = ctx.layer;
        let shown = String::from_utf8_lossy(raw_name).into_owned();
        let parts = relative_parts(raw_name).map_err(|p| refused(layer, &shown, &p))?;
        let Some((name, parents)) = parts.split_last() else {
            return Ok(()); // "./": the root itself.
        };
        let io = |op: &'static str| {
            let shown = shown.clone();
            move |source| LayerError::Io {
                layer: layer.to_string(),
                entry: shown,
                op,
                source,
            }
        };
        let parent = self
            .resolve_dir(parents, true)
            .map_err(|e| refused(layer, &shown, &e))?;

        let name_bytes = name.as_bytes();
        if name_bytes == OPAQUE.as_bytes() {
            stats.whiteouts += 1;
            for child in fs::read_dir(&parent).map_err(io("read"))? {
                let child = child.map_err(io("read"))?.path();
                if !ctx.created.contains(&child) {
                    remove_any(&child).map_err(io("clear opaque directory"))?;
                }
            }
            return Ok(());
        }
        if let Some(hidden) = name_bytes.strip_prefix(WHITEOUT.as_bytes()) {
            stats.whiteouts += 1;
            if hidden.is_empty() || hidden == b"." || hidden == b".." {
                return Err(refused(layer, &shown, "is a malformed whiteout"));
            }
            let target = parent.join(OsStr::from_bytes(hidden));
            if !ctx.created.contains(&target) {
                remove_any(&target).map_err(io("apply whiteout to"))?;
            }
            return Ok(());
        }

        let header = entry.header();
        let kind = header.entry_type();
        let path = parent.join(name);
        let mode = header.mode().unwrap_or(0o644) & 0o7777;
        let mtime = header.mtime().unwrap_or(0);
        let uid = ext.uid.or_else(|| header.uid().ok()).unwrap_or(0);
        let gid = ext.gid.or_else(|| header.gid().ok()).unwrap_or(0);
        let existing = fs::symlink_metadata(&path).ok();

        match kind {
            tar::EntryType::Directory => {
                match existing {
                    Some(m) if m.is_dir() => {}
                    Some(_) => {
                        remove_any(&path).map_err(io("replace"))?;
                        mkdir(&path).map_err(io("create directory"))?;
                    }
                    None => mkdir(&path).map_err(io("create directory"))?,
                }
                self.own(&path, uid, gid, ext)
                    .map_err(io("set the owner of"))?;
                ctx.dirs.push((path.clone(), mode, mtime));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if existing.is_some() {
                    remove_any(&path).map_err(io("replace"))?;
                }
                let mut file = create_file(&path).map_err(io("create"))?;
                io::copy(entry, &mut file).map_err(|e| LayerError::Corrupt {
                    layer: layer.to_string(),
                    entry: shown.clone(),
                    source: e,
                })?;
                drop(file);
                // Owner first: chown clears set-id bits, chmod then sets them.
                self.own(&path, uid, gid, ext)
                    .map_err(io("set the owner of"))?;
                fs::set_permissions(&path, fs::Permissions::from_mode(mode))
                    .map_err(io("set the mode of"))?;
                set_mtime(&path, mtime);
            }
            tar::EntryType::Symlink => {
                let target = ext
                    .linkpath
                    .clone()
                    .or_else(|| header.link_name_bytes().map(|l| l.into_owned()))
                    .ok_or_else(|| refused(layer, &shown, "is a symlink without a target"))?;
                if target.is_empty() || target.len() > MAX_NAME || target.contains(&0) {
                    return Err(refused(layer, &shown, "has an invalid symlink target"));
                }
                if existing.is_some() {
                    remove_any(&path).map_err(io("replace"))?;
                }
                std::os::unix::fs::symlink(OsStr::from_bytes(&target), &path)
                    .map_err(io("create symlink"))?;
                self.own(&path, uid, gid, ext)
                    .map_err(io("set the owner of"))?;
            }
            tar::EntryType::Link => {
                let target = ext
                    .linkpath
                    .clone()
                    .or_else(|| header.link_name_bytes().map(|l| l.into_owned()))
                    .ok_or_else(|| refused(layer, &shown, "is a hard link without a target"))?;
                let outside = || {
                    refused(
                        layer,
                        &shown,
                        &format!(
                            "is a hard link to {:?}, outside the image",
                            String::from_utf8_lossy(&target)
                        ),
                    )
                };
                let tparts = relative_parts(&target).map_err(|_| outside())?;
                let Some((tname, tparents)) = tparts.split_last() else {
                    return Err(outside());
                };
                let tdir = self.resolve_dir(tparents, false).map_err(|_| outside())?;
                let source = tdir.join(tname);
                match fs::symlink_metadata(&source) {
                    Ok(m) if !m.is_dir() => {}
                    _ => {
                        return Err(refused(
                            layer,
                            &shown,
                            &format!(
                                "is a hard link to {:?}, which is not an earlier file of the image",
                                String::from_utf8_lossy(&target)
                            ),
                        ));
                    }
                }
                if source == path {
                    return Ok(());
                }
                if existing.is_some() {
                    remove_any(&path).map_err(io("replace"))?;
                }
                fs::hard_link(&source, &path).map_err(io("create hard link"))?;
                // The link is the source's inode: the source's owner (recorded under the
                // source's path, if foreign) is the one to restore, not what this path had.
                if let (Ok(rel), Ok(mut foreign)) =
                    (path.strip_prefix(self.root), self.foreign.lock())
                {
                    foreign.remove(rel);
                }
            }
            tar::EntryType::Fifo => {
                if existing.is_some() {
                    remove_any(&path).map_err(io("replace"))?;
                }
                nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(mode))
                    .map_err(|e| io("create fifo")(e.into()))?;
                self.own(&path, uid, gid, ext)
                    .map_err(io("set the owner of"))?;
            }
            tar::EntryType::Char | tar::EntryType::Block => {
                return Err(refused(
                    layer,
                    &shown,
                    "is a device node; images may not carry devices (the guest's /dev is devtmpfs)",
                ));
            }
            other => {
                return Err(refused(
                    layer,
                    &shown,
                    &format!(
                        "has an unsupported tar entry type {:?}",
                        other.as_byte() as char
                    ),
                ));
            }
        }
        ctx.created.insert(path);
        Ok(())
    }

    /// Owner and (PAX) extended attributes, when running as root.
    fn own(&self, path: &Path, uid: u64, gid: u64, ext: &pax::Pending) -> io::Result<()> {
        let (uid, gid) = (
            u32::try_from(uid).unwrap_or(u32::MAX - 1),
            u32::try_from(gid).unwrap_or(u32::MAX - 1),
        );
        if !self.privileged {
            if let (Ok(rel), Ok(mut foreign)) = (path.strip_prefix(self.root), self.foreign.lock())
            {
                if (uid, gid) == (0, 0) {
                    foreign.remove(rel);
                } else {
                    foreign.insert(rel.to_path_buf(), (uid, gid));
                }
            }
            return Ok(());
        }
        std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
        for (name, value) in &ext.xattrs {
            // Best effort: a filesystem without that namespace just loses the attribute.
            let _ = pax::set_xattr(path, name, value);
        }
        Ok(())
    }
}

fn refused(layer: &str, entry: &str, problem: &str) -> LayerError {
    LayerError::Refused {
        layer: layer.to_string(),
        entry: entry.to_string(),
        problem: problem.to_string(),
    }
}
