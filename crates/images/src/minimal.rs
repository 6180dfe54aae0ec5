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

pub use crate::build::BuildError;
use crate::build::{install, io_err, write_synced};
use crate::deb::DebFile;
use crate::debian::{Archive, DebianOptions, Package};
use crate::imagecat::Recipe;
use crate::initramfs::{self, InitramfsSpec};
use crate::kernel_bundle;
use crate::manifest::{
    FileRecord, MANIFEST_FILE, MANIFEST_FORMAT, Manifest, ManifestDebian, ManifestFiles,
    ManifestPackage,
};
use crate::recipe::RecipeChange;

pub const KERNEL_FILE: &str = "vmlinux";
pub const BZIMAGE_FILE: &str = "bzImage";
pub const INITRD_FILE: &str = "initrd.cpio";
pub const DEFAULT_KERNEL_PACKAGE: &str = "linux-image-cloud-amd64";
pub const BUSYBOX_PACKAGE: &str = "busybox-static";

/// Bumped whenever what the recipe writes into the image changes (beyond the agent, which
/// is fingerprinted on its own), with a line in [`RECIPE_CHANGES`]: images record it
/// ([`crate::recipe`]), so older ones are marked outdated.
pub const RECIPE_REVISION: u32 = 1;

/// What each revision after the first changed, oldest first (see
/// [`crate::debian_image::RECIPE_CHANGES`]).
pub const RECIPE_CHANGES: &[RecipeChange] = &[];

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
    /// Where phases and notes are reported.
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
    pub bzimage_path: Option<PathBuf>,
    pub initrd_path: PathBuf,
    /// `None` for the minimal image: it runs from its initramfs.
    pub rootfs_path: Option<PathBuf>,
    pub kernel_release: String,
    pub has_pvh: bool,
    /// `initramfs`, `agent` or `systemd` (see [`Manifest::init`]).
    pub init: String,
}

impl BuiltImage {
    /// Describe an existing image directory from its `manifest.json`.
    pub fn load(dir: &Path) -> Result<Self, crate::manifest::ManifestError> {
        let m = Manifest::load(dir)?;
        Ok(Self::from_manifest(dir, &m))
    }

    pub(crate) fn from_manifest(dir: &Path, m: &Manifest) -> Self {
        Self {
            dir: dir.to_path_buf(),
            kernel_path: dir.join(&m.files.kernel.path),
            bzimage_path: m.files.bzimage.as_ref().map(|b| dir.join(&b.path)),
            initrd_path: dir.join(&m.files.initrd.path),
            rootfs_path: m.files.rootfs.as_ref().map(|r| dir.join(&r.path)),
            kernel_release: m.kernel_release.clone(),
            has_pvh: m.has_pvh,
            init: m.init.clone().unwrap_or_else(|| "initramfs".to_string()),
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
    let busybox_pkg = archive.package(&index, BUSYBOX_PACKAGE)?.clone();

    fs::create_dir_all(parent).map_err(io_err("create", parent))?;
    let work = tempfile::Builder::new()
        .prefix(&format!(".{name}.work-"))
        .tempdir_in(parent)
        .map_err(io_err("create a work directory in", parent))?;
    let stage = tempfile::Builder::new()
        .prefix(&format!(".{name}.new-"))
        .tempdir_in(parent)
        .map_err(io_err("create a staging directory in", parent))?;

    let modules_dir = work.path().join("modules");
    let bundle = kernel_bundle::prepare(
        &archive,
        &index,
        &opts.kernel_package,
        &modules_dir,
        stage.path(),
        progress,
    )?;
    drop(index);
    let busybox_deb = archive.fetch_deb(&busybox_pkg)?;
    let (kernel_pkg, kpkg, has_pvh, codec) =
        (&bundle.package, &bundle.kpkg, bundle.has_pvh, bundle.codec);
    progress.phase("resolve kernel modules", None, None);
    let load_order = bundle.load_order()?;
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
        busybox: Some((&busybox, &applets)),
        kernel_release: &kpkg.release,
        modules_root: &modules_dir,
        modules: &load_order,
        banger_version: version,
    };
    initramfs::write_initramfs(&spec, &stage.path().join(INITRD_FILE))?;

    let record =
        |file: &str| FileRecord::of(stage.path(), file).map_err(io_err("hash", stage.path()));
    let agent_record =
        FileRecord::of_path(&opts.agent_path).map_err(io_err("hash", &opts.agent_path))?;
    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        image: opts.image_name.clone(),
        source: Recipe::Minimal.source(),
        recipe: Some(Recipe::Minimal.stamp()),
        kernel_release: kpkg.release.clone(),
        has_pvh,
        kernel_codec: codec.to_string(),
        files: ManifestFiles {
            kernel: record(KERNEL_FILE)?,
            bzimage: Some(record(BZIMAGE_FILE)?),
            initrd: record(INITRD_FILE)?,
            rootfs: None,
        },
        packages: [kernel_pkg, &busybox_pkg]
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
        init: Some("initramfs".to_string()),
        include: Vec::new(),
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
