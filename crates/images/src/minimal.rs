//! The `minimal` recipe: Debian's cloud kernel and static busybox, fetched and
//! verified from the archive, plus banger-agent as PID 1 — no root disk.
//!
//! Everything is built in a temp directory beside the destination and renamed
//! into place at the end, so an image directory is either complete or absent.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use banger_system::CommandRunner;
use banger_system::progress::{NoProgress, Progress};
use time::format_description::well_known::Rfc3339;

use crate::deb::{DebError, DebFile};
use crate::debian::{Archive, DebianError, DebianOptions, Package};
use crate::fsutil;
use crate::initramfs::{self, InitramfsError, InitramfsSpec};
use crate::kernel::{self, KernelError};
use crate::kernel_package::unpack_kernel_package;
use crate::manifest::{
    FileRecord, MANIFEST_FILE, MANIFEST_FORMAT, Manifest, ManifestDebian, ManifestFiles,
    ManifestPackage,
};
use crate::modules::{GUEST_MODULES, ModuleError};

pub const KERNEL_FILE: &str = "vmlinux";
pub const BZIMAGE_FILE: &str = "bzImage";
pub const INITRD_FILE: &str = "initrd.cpio";
pub const DEFAULT_KERNEL_PACKAGE: &str = "linux-image-cloud-amd64";
pub const BUSYBOX_PACKAGE: &str = "busybox-static";

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Initramfs(#[from] InitramfsError),
    #[error(transparent)]
    Debian(#[from] DebianError),
    #[error(transparent)]
    Deb(#[from] DebError),
    #[error(transparent)]
    Modules(#[from] ModuleError),
    /// The bzImage could not be turned into a vmlinux.
    #[error("cannot extract vmlinux from the kernel in {package}")]
    Kernel {
        package: String,
        #[source]
        source: KernelError,
    },
    /// The kernel package does not hold exactly one kernel.
    #[error(
        "package {package} should hold exactly one boot/vmlinuz-*, found {found:?}; name a kernel image package"
    )]
    NoKernel { package: String, found: Vec<String> },
    /// The kernel and its modules disagree on the release.
    #[error("package {package} mixes kernel releases {releases:?}")]
    KernelReleaseMismatch {
        package: String,
        releases: Vec<String>,
    },
    /// busybox-static did not contain the binary.
    #[error("package {package} contains no bin/busybox")]
    NoBusybox { package: String },
    /// The destination has no parent directory to build beside.
    #[error("image directory {path:?} must be an absolute path with a parent directory")]
    BadOutDir { path: PathBuf },
    #[error("cannot {op} {path:?}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl BuildError {
    /// Whether reaching the Debian archive failed (a network or mirror problem), as opposed
    /// to a local one (a full disk, a broken package) that a network hint would misdirect.
    pub fn is_network(&self) -> bool {
        matches!(
            self,
            BuildError::Debian(DebianError::Http { .. } | DebianError::HttpStatus { .. })
        )
    }
}

fn io_err<'p>(op: &'static str, path: &'p Path) -> impl FnOnce(std::io::Error) -> BuildError + 'p {
    move |source| BuildError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Inputs of [`build_minimal`].
pub struct MinimalOptions<'a> {
    /// Final image directory, e.g. `<state>/images/minimal`. Replaced atomically.
    pub out_dir: PathBuf,
    /// Download cache (see [`crate::debian::Cache`]).
    pub cache_dir: PathBuf,
    /// The static banger-agent binary to install as `/init`.
    pub agent_path: PathBuf,
    pub debian: DebianOptions,
    /// A kernel metapackage; its first dependency is the real kernel package.
    pub kernel_package: String,
    /// Image name recorded in the manifest.
    pub image_name: String,
    pub runner: &'a dyn CommandRunner,
    /// Told each phase (downloads with byte counts) and the decisions taken.
    pub progress: &'a dyn Progress,
}

impl<'a> MinimalOptions<'a> {
    pub fn new(
        out_dir: PathBuf,
        cache_dir: PathBuf,
        agent_path: PathBuf,
        runner: &'a dyn CommandRunner,
    ) -> Self {
        Self {
            out_dir,
            cache_dir,
            agent_path,
            debian: DebianOptions::default(),
            kernel_package: DEFAULT_KERNEL_PACKAGE.to_string(),
            image_name: "minimal".to_string(),
            runner,
            progress: &NoProgress,
        }
    }
}

/// A finished image directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltImage {
    pub dir: PathBuf,
    /// Uncompressed ELF kernel (`vmlinux`).
    pub kernel_path: PathBuf,
    pub bzimage_path: PathBuf,
    pub initrd_path: PathBuf,
    /// `None` for the minimal image: it runs from its initramfs.
    pub rootfs_path: Option<PathBuf>,
    pub kernel_release: String,
    pub has_pvh: bool,
}

impl BuiltImage {
    /// Describe an existing image directory from its `manifest.json`.
    pub fn load(dir: &Path) -> Result<Self, crate::manifest::ManifestError> {
        let m = Manifest::load(dir)?;
        Ok(Self::from_manifest(dir, &m))
    }

    fn from_manifest(dir: &Path, m: &Manifest) -> Self {
        Self {
            dir: dir.to_path_buf(),
            kernel_path: dir.join(&m.files.kernel.path),
            bzimage_path: dir.join(&m.files.bzimage.path),
            initrd_path: dir.join(&m.files.initrd.path),
            rootfs_path: m.files.rootfs.as_ref().map(|r| dir.join(&r.path)),
            kernel_release: m.kernel_release.clone(),
            has_pvh: m.has_pvh,
        }
    }
}

/// Build the minimal image into `opts.out_dir`.
pub fn build_minimal(opts: &MinimalOptions<'_>) -> Result<BuiltImage, BuildError> {
    let started = Instant::now();
    let progress = opts.progress;
    let out_dir = &opts.out_dir;
    let (parent, name) = match (out_dir.parent(), out_dir.file_name()) {
        (Some(p), Some(n)) if out_dir.is_absolute() => (p, n.to_string_lossy().into_owned()),
        _ => {
            return Err(BuildError::BadOutDir {
                path: out_dir.clone(),
            });
        }
    };
    // Refuse a dynamic agent before downloading anything.
    initramfs::check_agent(&opts.agent_path)?;

    let archive =
        Archive::new(opts.debian.clone(), &opts.cache_dir, opts.runner).with_progress(progress);
    progress.phase("fetch the Debian package index", None, None);
    let index = archive.fetch_index()?;
    let kernel_pkg = archive
        .resolve_metapackage(&index, &opts.kernel_package)?
        .clone();
    progress.note(&format!(
        "{} is {} {}",
        opts.kernel_package, kernel_pkg.name, kernel_pkg.version
    ));
    let busybox_pkg = archive.package(&index, BUSYBOX_PACKAGE)?.clone();
    drop(index);
    let kernel_deb = archive.fetch_deb(&kernel_pkg)?;
    let busybox_deb = archive.fetch_deb(&busybox_pkg)?;

    fs::create_dir_all(parent).map_err(io_err("create", parent))?;
    let work = tempfile::Builder::new()
        .prefix(&format!(".{name}.work-"))
        .tempdir_in(parent)
        .map_err(io_err("create a work directory in", parent))?;
    let stage = tempfile::Builder::new()
        .prefix(&format!(".{name}.new-"))
        .tempdir_in(parent)
        .map_err(io_err("create a staging directory in", parent))?;

    progress.phase(&format!("unpack {}", kernel_pkg.name), None, None);
    let modules_dir = work.path().join("modules");
    let kpkg = unpack_kernel_package(&DebFile::open(&kernel_deb)?, &kernel_pkg.name, &modules_dir)?;
    progress.note(&format!(
        "kernel {}: {} modules shipped",
        kpkg.release,
        kpkg.modules.len()
    ));
    progress.phase("extract vmlinux", None, None);
    let vmlinux = kernel::extract_vmlinux(&kpkg.bzimage).map_err(|source| BuildError::Kernel {
        package: kernel_pkg.name.clone(),
        source,
    })?;
    write_synced(&stage.path().join(KERNEL_FILE), &vmlinux.elf)?;
    write_synced(&stage.path().join(BZIMAGE_FILE), &kpkg.bzimage)?;
    let (has_pvh, codec) = (vmlinux.has_pvh, vmlinux.codec);
    drop(vmlinux);

    progress.phase("resolve kernel modules", None, None);
    let load_order = kpkg.modules.resolve(GUEST_MODULES)?;
    progress.note(&format!(
        "modules to load: {}",
        load_order
            .iter()
            .map(|m| m.name.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    ));

    progress.phase(&format!("unpack {}", busybox_pkg.name), None, None);
    let busybox = extract_busybox(&busybox_deb, &busybox_pkg, work.path())?;
    let applets = initramfs::busybox_applets(opts.runner, &busybox)?;

    progress.phase("write the initramfs", None, None);
    let version = env!("CARGO_PKG_VERSION");
    let spec = InitramfsSpec {
        agent: &opts.agent_path,
        busybox: &busybox,
        applets: &applets,
        kernel_release: &kpkg.release,
        modules_root: &modules_dir,
        modules: &load_order,
        banger_version: version,
    };
    initramfs::write_initramfs(&spec, &stage.path().join(INITRD_FILE))?;

    let record =
        |file: &str| FileRecord::of(stage.path(), file).map_err(io_err("hash", stage.path()));
    let agent_record = {
        let (sha256, size) =
            fsutil::sha256_file(&opts.agent_path).map_err(io_err("hash", &opts.agent_path))?;
        FileRecord {
            path: opts.agent_path.to_string_lossy().into_owned(),
            size,
            sha256,
        }
    };
    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        image: opts.image_name.clone(),
        source: "recipe:minimal".to_string(),
        kernel_release: kpkg.release.clone(),
        has_pvh,
        kernel_codec: codec.name().to_string(),
        files: ManifestFiles {
            kernel: record(KERNEL_FILE)?,
            bzimage: record(BZIMAGE_FILE)?,
            initrd: record(INITRD_FILE)?,
            rootfs: None,
        },
        packages: [&kernel_pkg, &busybox_pkg]
            .into_iter()
            .map(manifest_package)
            .collect(),
        modules: load_order
            .iter()
            .map(|m| m.path.to_string_lossy().into_owned())
            .collect(),
        agent: agent_record,
        debian: ManifestDebian {
            mirror: opts.debian.mirror.clone(),
            suite: opts.debian.suite.clone(),
            component: opts.debian.component.clone(),
            arch: opts.debian.arch.clone(),
        },
        built_at: time::OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .unwrap_or_else(|_| "unknown".to_string()),
        banger_version: version.to_string(),
    };
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| BuildError::Io {
        op: "serialise",
        path: stage.path().join(MANIFEST_FILE),
        source: e.into(),
    })?;
    write_synced(&stage.path().join(MANIFEST_FILE), &json)?;
    drop(work);

    progress.phase("install the image", None, None);
    install(stage, out_dir, parent, &name)?;
    progress.note(&format!(
        "image {} ready in {:.1} s at {}",
        opts.image_name,
        started.elapsed().as_secs_f64(),
        out_dir.display()
    ));
    Ok(BuiltImage::from_manifest(out_dir, &manifest))
}

fn manifest_package(p: &Package) -> ManifestPackage {
    ManifestPackage {
        name: p.name.clone(),
        version: p.version.clone(),
        sha256: p.sha256.clone(),
        filename: p.filename.clone(),
    }
}

/// Unpack `bin/busybox` (or `usr/bin/busybox`) into `work`.
fn extract_busybox(deb_path: &Path, package: &Package, work: &Path) -> Result<PathBuf, BuildError> {
    let dest = work.join("busybox-root");
    let deb = DebFile::open(deb_path)?;
    let candidates = [Path::new("bin/busybox"), Path::new("usr/bin/busybox")];
    let unpacked = deb.extract_matching(&dest, |p| candidates.contains(&p))?;
    let found = candidates
        .iter()
        .map(|c| dest.join(c))
        .find(|p| unpacked.iter().any(|u| dest.join(u) == *p) && p.is_file());
    found.ok_or_else(|| BuildError::NoBusybox {
        package: package.name.clone(),
    })
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), BuildError> {
    use std::io::Write;
    let mut file = fs::File::create(path).map_err(io_err("create", path))?;
    file.write_all(bytes).map_err(io_err("write", path))?;
    file.sync_all().map_err(io_err("sync", path))
}

/// Move the finished `stage` to `out_dir`, replacing a previous image. The old
/// directory is first renamed aside, so `out_dir` is never half old, half new.
fn install(
    stage: tempfile::TempDir,
    out_dir: &Path,
    parent: &Path,
    name: &str,
) -> Result<(), BuildError> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(stage.path(), fs::Permissions::from_mode(0o755))
        .map_err(io_err("set permissions on", stage.path()))?;
    fsutil::fsync_dir(stage.path()).map_err(io_err("sync", stage.path()))?;
    let old = if out_dir.exists() {
        // rename(2) may replace an empty directory: reserve a unique one.
        let old = tempfile::Builder::new()
            .prefix(&format!(".{name}.old-"))
            .tempdir_in(parent)
            .map_err(io_err("create a directory in", parent))?;
        fs::rename(out_dir, old.path())
            .map_err(io_err("move aside the previous image", out_dir))?;
        Some(old)
    } else {
        None
    };
    let staged = stage.keep();
    if let Err(e) = fs::rename(&staged, out_dir) {
        // Put the previous image back; the staged copy is cleaned up below.
        if let Some(old) = &old {
            let _ = fs::rename(old.path(), out_dir);
        }
        let _ = fs::remove_dir_all(&staged);
        return Err(io_err("move the new image into", out_dir)(e));
    }
    fsutil::fsync_dir(parent).map_err(io_err("sync", parent))?;
    // Dropping `old` deletes the previous image.
    drop(old);
    Ok(())
}
