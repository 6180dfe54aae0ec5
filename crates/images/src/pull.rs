//! `banger image pull NAME` (and the automatic pull on first use) for catalog entries of
//! kind `download`: each file fetched, verified against its pinned SHA-256 and cached
//! ([`crate::download`]), then laid out as an image directory. A bzImage kernel gets its
//! ELF form extracted and its PVH fact recorded; an entry without an initrd gets one that
//! holds only the agent.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use banger_system::progress::{NoProgress, Progress};

use crate::build::{BuildError, install, io_err, write_synced};
use crate::debian_image::ROOTFS_FILE;
use crate::download::{self, DownloadError};
use crate::http::HttpClient;
use crate::imagecat::DownloadSpec;
use crate::kernel_import::{KernelImportOptions, import_kernel};
use crate::manifest::{FileRecord, MANIFEST_FILE, Manifest};
use crate::minimal::BuiltImage;

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(transparent)]
    Download(#[from] DownloadError),
    #[error(transparent)]
    Build(#[from] BuildError),
}

pub struct PullOptions<'a> {
    pub name: String,
    pub spec: DownloadSpec,
    pub out_dir: PathBuf,
    pub cache_dir: PathBuf,
    pub agent_path: PathBuf,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub progress: &'a dyn Progress,
}

impl<'a> PullOptions<'a> {
    pub fn new(
        name: String,
        spec: DownloadSpec,
        out_dir: PathBuf,
        cache_dir: PathBuf,
        agent_path: PathBuf,
    ) -> Self {
        Self {
            name,
            spec,
            out_dir,
            cache_dir,
            agent_path,
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(60),
            progress: &NoProgress,
        }
    }
}

pub fn pull(opts: &PullOptions<'_>) -> Result<BuiltImage, PullError> {
    let client = HttpClient::new(opts.connect_timeout, opts.read_timeout);
    let progress = opts.progress;
    let fetch =
        |url: &str, sha: &str| download::fetch(&client, url, sha, &opts.cache_dir, progress);
    // Everything is fetched and verified before anything is laid out.
    let kernel = fetch(&opts.spec.kernel.url, &opts.spec.kernel.sha256)?;
    let initrd = opts
        .spec
        .initrd
        .as_ref()
        .map(|a| fetch(&a.url, &a.sha256))
        .transpose()?;
    let rootfs = opts
        .spec
        .rootfs
        .as_ref()
        .map(|a| fetch(&a.url, &a.sha256))
        .transpose()?;

    // The kernel half (ELF form, PVH fact, initrd) is an import-kernel into the final
    // directory's place; the root filesystem and the manifest are then added to it
    // before it is renamed into place a second time.
    let parent = opts.out_dir.parent().ok_or_else(|| BuildError::BadOutDir {
        path: opts.out_dir.clone(),
    })?;
    fs::create_dir_all(parent).map_err(io_err("create", parent))?;
    let work = tempfile::Builder::new()
        .prefix(&format!(".{}.work-", opts.name))
        .tempdir_in(parent)
        .map_err(io_err("create a work directory in", parent))?;
    let kernel_dir = work.path().join("kernel");
    let mut k = KernelImportOptions::new(kernel, kernel_dir.clone(), opts.agent_path.clone());
    k.initrd = initrd;
    k.image_name = opts.name.clone();
    k.progress = progress;
    import_kernel(&k)?;

    let stage = tempfile::Builder::new()
        .prefix(&format!(".{}.new-", opts.name))
        .tempdir_in(parent)
        .map_err(io_err("create a staging directory in", parent))?;
    for entry in fs::read_dir(&kernel_dir).map_err(io_err("read", &kernel_dir))? {
        let entry = entry.map_err(io_err("read", &kernel_dir))?;
        let to = stage.path().join(entry.file_name());
        fs::rename(entry.path(), &to).map_err(io_err("move", &to))?;
    }
    let mut manifest = Manifest::load(stage.path()).map_err(|e| BuildError::Io {
        op: "read back",
        path: stage.path().join(MANIFEST_FILE),
        source: std::io::Error::other(e.to_string()),
    })?;
    if let Some(rootfs) = rootfs {
        link_or_copy(&rootfs, &stage.path().join(ROOTFS_FILE))?;
        manifest.files.rootfs =
            Some(FileRecord::of(stage.path(), ROOTFS_FILE).map_err(io_err("hash", stage.path()))?);
        manifest.init = Some("agent".into());
    }
    manifest.source = format!("catalog:{}", opts.name);
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| BuildError::Io {
        op: "serialise",
        path: stage.path().join(MANIFEST_FILE),
        source: e.into(),
    })?;
    write_synced(&stage.path().join(MANIFEST_FILE), &json)?;
    install(stage, &opts.out_dir, parent, &opts.name)?;
    drop(work);
    Ok(BuiltImage::from_manifest(&opts.out_dir, &manifest))
}

/// The image shares the cached file's blocks when it can (it is never written: VMs get
/// copy-on-write clones of it).
fn link_or_copy(from: &Path, to: &Path) -> Result<(), BuildError> {
    if fs::hard_link(from, to).is_ok() {
        return Ok(());
    }
    fs::copy(from, to).map_err(io_err("copy", from))?;
    Ok(())
}
