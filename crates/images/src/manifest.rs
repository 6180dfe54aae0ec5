//! `manifest.json`: what an image directory holds and where it came from.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::chunked::Chunks;
use crate::fsutil;
use crate::recipe::RecipeStamp;

pub const MANIFEST_FILE: &str = "manifest.json";
pub const MANIFEST_FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Layout version of this file.
    pub format: u32,
    /// Image name (`minimal`).
    pub image: String,
    /// How it was made: `recipe:minimal`, `recipe:debian`, `kernel:PATH`, an OCI reference
    pub source: String,
    /// The recipe and revision that built it ([`crate::recipe`]). Absent for images no
    /// recipe built, and in manifests written before revisions were recorded: their
    /// revision is unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipe: Option<RecipeStamp>,
    /// `uname -r` of the kernel, e.g. `6.1.0-28-cloud-amd64`.
    pub kernel_release: String,
    /// The ELF kernel carries the PVH entry note (QEMU/Firecracker boot it directly).
    pub has_pvh: bool,
    /// Compression of the bzImage payload the vmlinux came from.
    pub kernel_codec: String,
    pub files: ManifestFiles,
    /// Debian packages the image was built from.
    pub packages: Vec<ManifestPackage>,
    /// Modules in `/etc/banger/modules` load order, relative to `/lib/modules/KVER`.
    pub modules: Vec<String>,
    /// The guest agent baked in as `/init`.
    pub agent: FileRecord,
    pub debian: ManifestDebian,
    /// How the guest starts: `initramfs` (no root disk), `agent` (the lean init on the
    /// root disk) or `systemd`. Absent in manifests older than root disks: `initramfs`.
    #[serde(default)]
    pub init: Option<String>,
    /// Packages asked for in the root filesystem (besides what the recipe always adds).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// RFC 3339, UTC.
    pub built_at: String,
    pub banger_version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFiles {
    /// Uncompressed ELF kernel.
    pub kernel: FileRecord,
    /// The original bzImage (QEMU `-M pc` fallback); absent for a kernel imported as an
    /// ELF vmlinux.
    #[serde(default)]
    pub bzimage: Option<FileRecord>,
    pub initrd: FileRecord,
    pub rootfs: Option<FileRecord>,
}

/// A file in the image directory (`path` relative to it), or an input file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    pub path: String,
    pub size: u64,
    /// SHA-256 of the whole file (lowercase hex). Empty for a file addressed by
    /// `sha256_1m` instead.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sha256: String,
    /// The chunked SHA-256 ([`crate::chunked`]): how an OCI import's root filesystem is
    /// addressed, so that a re-import hashes only the chunks it changed. `sha256sum` does
    /// not check it; `split -b 1M --filter=sha256sum FILE | cut -d' ' -f1 | sha256sum`
    /// does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256_1m: Option<String>,
}

impl FileRecord {
    /// The record of `dir/name` addressed by its chunks.
    pub fn chunked(name: &str, chunks: &Chunks) -> Self {
        Self {
            path: name.to_string(),
            size: chunks.len,
            sha256: String::new(),
            sha256_1m: Some(chunks.root()),
        }
    }

    /// Whether `dir`'s file still is what this record says: its size and whichever
    /// digest it carries. `Ok(Some(problem))` says how it differs.
    pub fn verify(&self, dir: &Path) -> std::io::Result<Option<String>> {
        let path = dir.join(&self.path);
        let len = std::fs::metadata(&path)?.len();
        if len != self.size {
            return Ok(Some(format!(
                "is {len} bytes, the manifest says {}",
                self.size
            )));
        }
        let (kind, want, actual) = match &self.sha256_1m {
            Some(want) => (
                "chunked SHA-256",
                want,
                Chunks::of(&path, crate::chunked::all_cores())?.root(),
            ),
            None => ("SHA-256", &self.sha256, fsutil::sha256_file(&path)?.0),
        };
        Ok((&actual != want).then(|| {
            format!("has the {kind} {actual}, the manifest says {want}: it changed after it was recorded")
        }))
    }

    /// Hash `dir/name` and describe it.
    pub fn of(dir: &Path, name: &str) -> std::io::Result<Self> {
        let (sha256, size) = fsutil::sha256_file(&dir.join(name))?;
        Ok(Self {
            path: name.to_string(),
            size,
            sha256,
            sha256_1m: None,
        })
    }

    /// Hash the file at `path` and describe it under its whole path (the agent binary an
    /// image was made with, recorded where it came from).
    pub fn of_path(path: &Path) -> std::io::Result<Self> {
        let (sha256, size) = fsutil::sha256_file(path)?;
        Ok(Self {
            path: path.to_string_lossy().into_owned(),
            size,
            sha256,
            sha256_1m: None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestPackage {
    pub name: String,
    pub version: String,
    pub sha256: String,
    /// Pool path on the mirror.
    pub filename: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestDebian {
    pub mirror: String,
    pub suite: String,
    pub component: String,
    pub arch: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read the image manifest {path:?}; rebuild the image")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the image manifest {path:?} is invalid; rebuild the image")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "the image manifest {path:?} has format {found}, this banger reads format {MANIFEST_FORMAT}; rebuild the image"
    )]
    Format { path: PathBuf, found: u32 },
    #[error("image file {path:?} listed in the manifest is missing; rebuild the image")]
    MissingFile { path: PathBuf },
}

impl Manifest {
    /// Read `dir/manifest.json` and check the files it lists exist.
    pub fn load(dir: &Path) -> Result<Self, ManifestError> {
        let manifest = Self::read(dir)?;
        let files = &manifest.files;
        for record in [&files.kernel, &files.initrd]
            .into_iter()
            .chain(files.bzimage.as_ref())
            .chain(files.rootfs.as_ref())
        {
            let file = dir.join(&record.path);
            let plain_name =
                !record.path.is_empty() && !record.path.contains('/') && record.path != "..";
            if !plain_name || !file.is_file() {
                return Err(ManifestError::MissingFile { path: file });
            }
        }
        Ok(manifest)
    }

    /// Read `dir/manifest.json` without looking at the files it lists: for what it says
    /// about the image (its recipe revision), not for booting it.
    pub fn read(dir: &Path) -> Result<Self, ManifestError> {
        let path = dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| ManifestError::Read {
            path: path.clone(),
            source: e,
        })?;
        let manifest: Manifest = serde_json::from_str(&text).map_err(|e| ManifestError::Parse {
            path: path.clone(),
            source: e,
        })?;
        if manifest.format != MANIFEST_FORMAT {
            return Err(ManifestError::Format {
                path,
                found: manifest.format,
            });
        }
        Ok(manifest)
    }
}
