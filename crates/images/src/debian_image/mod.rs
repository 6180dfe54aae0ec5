//! The `debian` recipe: a real Debian userland on a root disk, the default image.
//!
//! * kernel: Debian's cloud kernel (`vmlinux` with its PVH fact, `bzImage`), fetched
//!   through the signed archive like `minimal`'s;
//! * initrd: the agent as `/init` plus the virtio modules; it mounts the root disk, gives
//!   the VM its identity and hands PID 1 to the disk's init;
//! * rootfs: `mmdebstrap --variant=minbase` with openssh-server (plus what the caller
//!   asks for), the agent, the kernel's modules, as `rootfs.ext4` made with
//!   `mkfs.ext4 -d` (no loop mount).
//!
//! The init is the lean one by default (the agent as PID 1 starting sshd: measured faster
//! than systemd, see docs/images.md), or systemd (`--init systemd`).
//!
//! As root mmdebstrap writes the tree directly (`--mode=root`); an ordinary user's build
//! goes through a tarball in an unprivileged mode, and the owners it names are set inside
//! the image (`rootfs::bootstrap`, `ext4::owners`).

mod rootfs;

use std::fs;
use std::path::PathBuf;
use std::time::Instant;

use banger_system::CommandRunner;
use banger_system::progress::{NoProgress, Progress};
use time::format_description::well_known::Rfc3339;

use crate::build::{BuildError, install, io_err, write_synced};
use crate::debian::{Archive, DebianOptions, Package};
use crate::ext4;
use crate::imagecat::Recipe;
use crate::initramfs::{self, InitramfsSpec};
use crate::kernel_bundle;
use crate::manifest::{
    FileRecord, MANIFEST_FILE, MANIFEST_FORMAT, Manifest, ManifestDebian, ManifestFiles,
    ManifestPackage,
};
use crate::minimal::{BZIMAGE_FILE, BuiltImage, DEFAULT_KERNEL_PACKAGE, INITRD_FILE, KERNEL_FILE};
use crate::recipe::RecipeChange;

pub use rootfs::{AGENT_IN_ROOT, BASE_PACKAGES};

/// Bumped whenever what the recipe writes into the image changes (beyond the agent, which
/// is fingerprinted on its own), with a line in [`RECIPE_CHANGES`]: images record it
/// ([`crate::recipe`]), so `image ls`, `image inspect` and doctor mark older ones outdated,
/// and prebuilt images kept for tests (`banger-e2e`'s templates) are rebuilt when it
/// differs.
pub const RECIPE_REVISION: u32 = 2;

/// What each revision after the first changed, oldest first: the "why" of the rebuild
/// hint, so each says what a rebuilt image does differently.
pub const RECIPE_CHANGES: &[RecipeChange] = &[RecipeChange {
    revision: 2,
    change: "ssh sessions keep the guest's C.UTF-8 locale instead of accepting the client's \
             (older images print `bash: warning: setlocale` on every `ssh NAME.vm` command)",
}];

pub const ROOTFS_FILE: &str = "rootfs.ext4";
pub const DEFAULT_SUITE: &str = "bookworm";

/// How a Debian image's guest starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GuestInitKind {
    /// The agent as PID 1, starting sshd: the lean init.
    #[default]
    Agent,
    Systemd,
}

impl GuestInitKind {
    pub fn as_str(self) -> &'static str {
        match self {
            GuestInitKind::Agent => "agent",
            GuestInitKind::Systemd => "systemd",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "agent" | "lean" => Some(GuestInitKind::Agent),
            "systemd" => Some(GuestInitKind::Systemd),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DebianImageError {
    #[error("cannot unpack the Debian root filesystem mmdebstrap made")]
    Unpack {
        #[source]
        source: crate::oci::apply::LayerError,
    },
    #[error(
        "mmdebstrap was not found: it builds the Debian root filesystem; install it with `apt-get install mmdebstrap`"
    )]
    MmdebstrapMissing,
    #[error("{what} {value:?} is not valid: {rule}")]
    BadInput {
        what: &'static str,
        value: String,
        rule: &'static str,
    },
    #[error(
        "mmdebstrap could not build Debian {suite} from {mirror} (check the suite, the package names and the network, or set BANGER_DEBIAN_MIRROR):\n{stderr}"
    )]
    Mmdebstrap {
        suite: String,
        mirror: String,
        stderr: String,
    },
    #[error(
        "mmdebstrap could not build Debian {suite} from {mirror} as an ordinary user: it needs the fakechroot and fakeroot packages (`apt-get install fakechroot fakeroot`) or a sub-uid range for your user in /etc/subuid (unshare mode); or build as root. Its output:\n{stderr}"
    )]
    MmdebstrapUnprivileged {
        suite: String,
        mirror: String,
        stderr: String,
    },
    #[error(transparent)]
    Ext4(#[from] ext4::Ext4Error),
}

/// Inputs of [`build_debian`].
pub struct DebianImageOptions<'a> {
    /// Final image directory. Replaced atomically.
    pub out_dir: PathBuf,
    pub cache_dir: PathBuf,
    /// The static banger-agent: `/init` of the initrd and the root disk's init.
    pub agent_path: PathBuf,
    /// Mirror and suite (`debian.suite`) for both the kernel and the root filesystem.
    pub debian: DebianOptions,
    pub kernel_package: String,
    pub image_name: String,
    /// Packages to add to the base set.
    pub include: Vec<String>,
    pub init: GuestInitKind,
    /// Free space for the guest beyond what the tree uses.
    pub headroom: u64,
    pub runner: &'a dyn CommandRunner,
    pub progress: &'a dyn Progress,
}

impl<'a> DebianImageOptions<'a> {
    pub fn new(
        out_dir: PathBuf,
        cache_dir: PathBuf,
        agent_path: PathBuf,
        runner: &'a dyn CommandRunner,
    ) -> Self {
        let debian = DebianOptions {
            suite: DEFAULT_SUITE.to_string(),
            ..Default::default()
        };
        Self {
            out_dir,
            cache_dir,
            agent_path,
            debian,
            kernel_package: DEFAULT_KERNEL_PACKAGE.to_string(),
            image_name: "debian".to_string(),
            include: Vec::new(),
            init: GuestInitKind::Agent,
            headroom: ext4::DEFAULT_HEADROOM,
            runner,
            progress: &NoProgress,
        }
    }
}

/// Check user input before anything runs: suites and package names go onto
/// mmdebstrap's command line.
pub fn validate(opts: &DebianImageOptions<'_>) -> Result<(), DebianImageError> {
    let suite = &opts.debian.suite;
    if suite.is_empty()
        || suite.len() > 64
        || !suite
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(DebianImageError::BadInput {
            what: "suite",
            value: suite.clone(),
            rule: "use a Debian suite or codename such as bookworm or trixie",
        });
    }
    for p in &opts.include {
        let ok = p.len() >= 2
            && p.len() <= 128
            && p.as_bytes()[0].is_ascii_alphanumeric()
            && p.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.')
            });
        if !ok {
            return Err(DebianImageError::BadInput {
                what: "package name",
                value: p.clone(),
                rule: "Debian package names are lowercase letters, digits, '+', '-' and '.', starting with a letter or digit",
            });
        }
    }
    Ok(())
}

/// Build the Debian image into `opts.out_dir`.
pub fn build_debian(opts: &DebianImageOptions<'_>) -> Result<BuiltImage, BuildError> {
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
    validate(opts)?;
    initramfs::check_agent(&opts.agent_path)?;
    let mmdebstrap = banger_system::runner::lookup_executable("mmdebstrap")
        .ok_or(DebianImageError::MmdebstrapMissing)?;

    let archive =
        Archive::new(opts.debian.clone(), &opts.cache_dir, opts.runner).with_progress(progress);
    progress.phase("reading the Debian archive index", None, None);
    let index = archive.fetch_index()?;

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
    let release = bundle.kpkg.release.clone();

    progress.phase("writing the initramfs", None, None);
    let load_order = bundle.load_order()?;
    let version = env!("CARGO_PKG_VERSION");
    initramfs::write_initramfs(
        &InitramfsSpec {
            agent: &opts.agent_path,
            busybox: None,
            kernel_release: &release,
            modules_root: &modules_dir,
            modules: &load_order,
            banger_version: version,
        },
        &stage.path().join(INITRD_FILE),
    )?;
    let module_paths: Vec<String> = load_order
        .iter()
        .map(|m| m.path.to_string_lossy().into_owned())
        .collect();

    let include = rootfs::include_list(opts.init, &opts.include);
    progress.phase(
        &format!(
            "bootstrapping Debian {} with mmdebstrap ({include})",
            opts.debian.suite
        ),
        None,
        None,
    );
    let tree = work.path().join("rootfs");
    let owners = rootfs::bootstrap(
        opts.runner,
        &mmdebstrap,
        &opts.debian.suite,
        &opts.debian.mirror,
        &include,
        &tree,
    )?;
    progress.phase("installing the agent and the kernel modules", None, None);
    let notes = rootfs::Customize {
        root: &tree,
        agent: &opts.agent_path,
        init: opts.init,
        kernel_release: &release,
        modules_dir: &modules_dir,
        runner: opts.runner,
    }
    .apply()?;
    for n in notes {
        progress.note(&n);
    }

    let (used, entries) = ext4::tree_usage(&tree).map_err(io_err("measure", &tree))?;
    let size = ext4::image_size(used, opts.headroom);
    progress.phase(
        &format!(
            "making {ROOTFS_FILE}: {entries} files, {} MiB used, {} MiB image",
            used >> 20,
            size >> 20
        ),
        None,
        None,
    );
    let report = ext4::make_image(
        opts.runner,
        &tree,
        &stage.path().join(ROOTFS_FILE),
        size,
        entries,
        "root",
        &owners,
    )
    .map_err(DebianImageError::from)?;
    for note in report.notes() {
        progress.note(&note);
    }
    drop(work);

    progress.phase("recording the image", None, None);
    let record =
        |file: &str| FileRecord::of(stage.path(), file).map_err(io_err("hash", stage.path()));
    let agent_record =
        FileRecord::of_path(&opts.agent_path).map_err(io_err("hash", &opts.agent_path))?;
    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        image: opts.image_name.clone(),
        source: Recipe::Debian.source(),
        recipe: Some(Recipe::Debian.stamp()),
        kernel_release: release.clone(),
        has_pvh: bundle.has_pvh,
        kernel_codec: bundle.codec.to_string(),
        files: ManifestFiles {
            kernel: record(KERNEL_FILE)?,
            bzimage: Some(record(BZIMAGE_FILE)?),
            initrd: record(INITRD_FILE)?,
            rootfs: Some(record(ROOTFS_FILE)?),
        },
        packages: vec![manifest_package(&bundle.package)],
        modules: module_paths,
        agent: agent_record,
        debian: ManifestDebian {
            mirror: opts.debian.mirror.clone(),
            suite: opts.debian.suite.clone(),
            component: opts.debian.component.clone(),
            arch: opts.debian.arch.clone(),
        },
        init: Some(opts.init.as_str().to_string()),
        include: opts.include.clone(),
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
