//! `banger image import REF`: an OCI image becomes a banger image — its layers applied
//! into a tree (reusing the layer cache), banger's agent added as the lean init, an ext4
//! root disk made with `mkfs.ext4 -d`, and a kernel + initrd paired from a kernel image.

use std::fs;
use std::io::{self, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use banger_system::CommandRunner;
use banger_system::progress::{NoProgress, Progress};
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;

use super::OciError;
use super::apply::Applier;
use super::cache::{BlobCache, chain_ids, link_tree};
use super::rootfs;
use super::source::{self, ImageRef, SourceOptions};
use super::spec::{ImageConfig, RunConfig};
use crate::build::{install, write_synced};
use crate::debian_image::{AGENT_IN_ROOT, ROOTFS_FILE};
use crate::ext4;
use crate::initramfs;
use crate::manifest::{FileRecord, MANIFEST_FILE, Manifest, ManifestFiles};
use crate::minimal::BuiltImage;

/// Inputs of [`import`].
pub struct ImportOptions<'a> {
    pub reference: ImageRef,
    /// Final image directory. Replaced atomically.
    pub out_dir: PathBuf,
    pub cache_dir: PathBuf,
    /// The static banger-agent, added as the guest's init.
    pub agent_path: PathBuf,
    /// A built image whose kernel, bzImage and initrd the new image boots.
    pub kernel_dir: PathBuf,
    pub image_name: String,
    pub source: SourceOptions,
    pub headroom: u64,
    pub runner: &'a dyn CommandRunner,
    pub progress: &'a dyn Progress,
}

impl<'a> ImportOptions<'a> {
    pub fn new(
        reference: ImageRef,
        out_dir: PathBuf,
        cache_dir: PathBuf,
        agent_path: PathBuf,
        kernel_dir: PathBuf,
        runner: &'a dyn CommandRunner,
    ) -> Self {
        Self {
            reference,
            out_dir,
            cache_dir,
            agent_path,
            kernel_dir,
            image_name: String::new(),
            source: SourceOptions::default(),
            headroom: ext4::DEFAULT_HEADROOM,
            runner,
            progress: &NoProgress,
        }
    }
}

/// What an import made.
#[derive(Debug, Clone)]
pub struct Imported {
    pub image: BuiltImage,
    /// Entrypoint, Cmd, Env, WorkingDir, User of the image.
    pub run: RunConfig,
    /// The manifest's digest, where the source has one.
    pub manifest_digest: Option<String>,
}

pub fn import(opts: &ImportOptions<'_>) -> Result<Imported, OciError> {
    let started = Instant::now();
    let progress = opts.progress;
    let out_dir = &opts.out_dir;
    let (parent, name) = match (out_dir.parent(), out_dir.file_name()) {
        (Some(p), Some(n)) if out_dir.is_absolute() => (p, n.to_string_lossy().into_owned()),
        _ => {
            return Err(OciError::Invalid {
                what: out_dir.display().to_string(),
                problem: "must be an absolute path with a parent directory".into(),
            });
        }
    };
    initramfs::check_agent(&opts.agent_path).map_err(|e| OciError::Agent(Box::new(e)))?;
    let kernel = Manifest::load(&opts.kernel_dir).map_err(|e| OciError::Kernel(Box::new(e)))?;

    let mut src = source::open(&opts.reference, &opts.source)?;
    let resolved = src.resolve(progress)?;
    let config: ImageConfig =
        serde_json::from_slice(&resolved.config).map_err(|e| OciError::Invalid {
            what: resolved.config_digest.clone(),
            problem: format!("is not a valid image config: {e}"),
        })?;
    for (field, value, want) in [
        ("os", &config.os, "linux"),
        ("architecture", &config.architecture, "amd64"),
    ] {
        if !value.is_empty() && value != want {
            return Err(OciError::Invalid {
                what: opts.reference.describe(),
                problem: format!("is a {field} {value:?} image; banger guests are linux/amd64"),
            });
        }
    }
    let diff_ids = &config.rootfs.diff_ids;
    if diff_ids.len() != resolved.layers.len() {
        return Err(OciError::Invalid {
            what: opts.reference.describe(),
            problem: format!(
                "has {} layers but its config lists {} diff ids",
                resolved.layers.len(),
                diff_ids.len()
            ),
        });
    }
    let cache = BlobCache::new(&opts.cache_dir);
    fs::create_dir_all(parent).map_err(io_err("create", parent))?;
    let work = tempfile::Builder::new()
        .prefix(&format!(".{name}.work-"))
        .tempdir_in(parent)
        .map_err(io_err("create a work directory in", parent))?;
    let stage = tempfile::Builder::new()
        .prefix(&format!(".{name}.new-"))
        .tempdir_in(parent)
        .map_err(io_err("create a staging directory in", parent))?;
    let tree = work.path().join("rootfs");
    let chains = chain_ids(diff_ids);
    let applier = Applier::new(&tree);
    let agent = FileRecord::of_path(&opts.agent_path).map_err(io_err("hash", &opts.agent_path))?;
    let image = stage.path().join(ROOTFS_FILE);
    // Declared after `stage`, so an early return waits for the copy before the staging
    // directory is removed.
    let early = rootfs::EarlyCopy::start(
        &opts.cache_dir,
        &chains,
        &agent.sha256,
        &image,
        applier.is_privileged(),
    );
    src.fetch_layers(&resolved, &cache, progress)?;
    let mut took = Took::new(started);
    took.mark("fetch");

    // Start from the longest prefix of this image's layers already unpacked.
    // An unprivileged import reuses only trees kept with their owners.
    let reused = (1..=chains.len()).rev().find_map(|k| {
        cache
            .tree(&chains[k - 1])
            .filter(|t| applier.is_privileged() || t.owners.is_some())
            .map(|t| (k, t))
    });
    let first = match reused {
        Some((k, cached)) => {
            applier.seed_owners(cached.owners.as_deref().unwrap_or_default());
            let cached = cached.path;
            progress.note(&format!(
                "reusing {k} of {} layers already unpacked",
                chains.len()
            ));
            fs::create_dir(&tree).map_err(io_err("create", &tree))?;
            link_tree(&cached, &tree).map_err(io_err("copy the cached layers into", &tree))?;
            k
        }
        None => {
            fs::create_dir(&tree).map_err(io_err("create", &tree))?;
            0
        }
    };
    // `/` of the guest: what every image has, whatever the daemon's umask.
    fs::set_permissions(&tree, fs::Permissions::from_mode(0o755))
        .map_err(io_err("set the mode of", &tree))?;
    let total = resolved.layers.len();
    for i in first..total {
        let layer = &resolved.layers[i];
        let blob = cache
            .get(&layer.digest, None)?
            .ok_or_else(|| OciError::Invalid {
                what: layer.digest.clone(),
                problem: "vanished from the layer cache".into(),
            })?;
        progress.phase(
            &format!("unpacking layer {}/{total} {}", i + 1, short(&layer.digest)),
            None,
            None,
        );
        apply_verified(&applier, &layer.digest, &blob, &diff_ids[i])?;
        // Keep the image's own tree, and the one below its top layer (the usual shared
        // base of images built FROM the same parent).
        if i + 2 >= total {
            let owners = (!applier.is_privileged()).then(|| applier.foreign_owners());
            cache.keep_tree(&tree, &chains[i], owners.as_deref());
        }
    }

    took.mark("unpack");
    progress.phase("adding the banger agent", None, None);
    add_banger_files(&applier, &opts.agent_path, &tree)?;
    took.mark("agent");

    let made = rootfs::make(
        &rootfs::Job {
            runner: opts.runner,
            cache_dir: &opts.cache_dir,
            tree: &tree,
            image: &image,
            chains: &chains,
            agent_sha256: &agent.sha256,
            headroom: opts.headroom,
            owners: applier.owners(),
            added: &BANGER_FILES.map(str::as_bytes),
            progress,
        },
        early,
    )?;
    let step = match &made.how {
        rootfs::How::Full(owners) => {
            for note in owners.notes() {
                progress.note(&note);
            }
            "mkfs"
        }
        rootfs::How::Incremental { shared, written } => {
            progress.note(&format!(
                "root filesystem made from a recent import sharing {shared} of {total} layers ({written} entries written)"
            ));
            "debugfs"
        }
    };
    took.mark(step);
    remove_in_background(work);
    took.mark("cleanup");

    // The kernel half comes from the kernel image, linked (or copied) in.
    let files = &kernel.files;
    for record in [&files.kernel, &files.initrd]
        .into_iter()
        .chain(files.bzimage.as_ref())
    {
        let from = opts.kernel_dir.join(&record.path);
        let to = stage.path().join(&record.path);
        if fs::hard_link(&from, &to).is_err() {
            fs::copy(&from, &to).map_err(io_err("copy the kernel file", &from))?;
        }
    }
    let manifest = Manifest {
        image: opts.image_name.clone(),
        source: opts.reference.describe(),
        recipe: None,
        files: ManifestFiles {
            kernel: files.kernel.clone(),
            bzimage: files.bzimage.clone(),
            initrd: files.initrd.clone(),
            rootfs: Some(made.record),
        },
        agent,
        init: Some("agent".into()),
        include: Vec::new(),
        built_at: time::OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .unwrap_or_else(|_| "unknown".to_string()),
        banger_version: env!("CARGO_PKG_VERSION").to_string(),
        ..kernel
    };
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| OciError::Io {
        op: "serialise",
        path: stage.path().join(MANIFEST_FILE),
        source: e.into(),
    })?;
    write_synced(&stage.path().join(MANIFEST_FILE), &json)
        .map_err(|e| OciError::Build(Box::new(e)))?;
    took.mark("manifest");
    install(stage, out_dir, parent, &name).map_err(|e| OciError::Build(Box::new(e)))?;
    took.mark("fsync+rename");
    progress.note(&format!(
        "image {} imported from {} in {:.1} s ({took})",
        opts.image_name,
        opts.reference.describe(),
        started.elapsed().as_secs_f64()
    ));
    Ok(Imported {
        image: BuiltImage::from_manifest(out_dir, &manifest),
        run: config.run_config(),
        manifest_digest: resolved.manifest_digest,
    })
}

/// Remove the scratch tree without waiting: unlinking thousands of entries cost as much
/// as all the rest of a re-import (1.9 of 3.9 s in the P3 bench), and nothing needs it
/// gone. A process that exits first leaves a `.NAME.work-` directory beside the images,
/// which the daemon's next start reclaims (`daemon/src/images/reclaim.rs`).
fn remove_in_background(work: tempfile::TempDir) {
    // Without a thread the closure, and with it the directory, is dropped right here.
    let _ = std::thread::Builder::new()
        .name("import-cleanup".into())
        .spawn(move || drop(work));
}

/// Where an import's time went, for its closing note (and the P3 benchmark).
struct Took {
    last: Instant,
    steps: Vec<(&'static str, f64)>,
}

impl Took {
    fn new(start: Instant) -> Self {
        Took {
            last: start,
            steps: Vec::new(),
        }
    }

    fn mark(&mut self, step: &'static str) {
        let now = Instant::now();
        self.steps.push((step, (now - self.last).as_secs_f64()));
        self.last = now;
    }
}

impl std::fmt::Display for Took {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (step, secs)) in self.steps.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{step} {secs:.1} s")?;
        }
        Ok(())
    }
}

/// Decompress (gzip, zstd or none, by magic) and apply one layer, checking that the
/// uncompressed stream is the `diff_id` the image's config promises.
fn apply_verified(
    applier: &Applier<'_>,
    digest: &str,
    blob: &Path,
    diff_id: &str,
) -> Result<(), OciError> {
    let file = fs::File::open(blob).map_err(io_err("open", blob))?;
    let mut raw = BufReader::with_capacity(1 << 16, file);
    let magic = {
        use std::io::BufRead;
        raw.fill_buf().map_err(io_err("read", blob))?.to_vec()
    };
    let corrupt = |problem: String| OciError::Invalid {
        what: format!("layer {digest}"),
        problem,
    };
    let decoded: Box<dyn Read> = if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(raw))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(
            ruzstd::StreamingDecoder::new(raw)
                .map_err(|e| corrupt(format!("is not valid zstd: {e}")))?,
        )
    } else {
        Box::new(raw)
    };
    let mut hashing = HashingReader {
        inner: decoded,
        hasher: Sha256::new(),
    };
    applier.apply(digest, &mut hashing)?;
    // The tar's end-of-archive blocks and any padding count towards the diff id.
    io::copy(&mut hashing, &mut io::sink())
        .map_err(|e| corrupt(format!("is corrupt or truncated after its last entry: {e}")))?;
    let actual = format!("sha256:{}", hex::encode(hashing.hasher.finalize()));
    if actual != diff_id {
        return Err(corrupt(format!(
            "unpacks to {actual}, but the image config says {diff_id}; the image is corrupt or was tampered with"
        )));
    }
    Ok(())
}

struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// The files [`add_banger_files`] writes (directories aside): always rewritten by an
/// incremental build, since their inodes are new each time.
const BANGER_FILES: [&str; 4] = [
    AGENT_IN_ROOT,
    "etc/machine-id",
    "etc/banger/services",
    SSHD_DROP_IN,
];
const SSHD_DROP_IN: &str = "etc/ssh/sshd_config.d/banger.conf";

/// The agent as the guest's init (the lean one: it starts sshd when the image has it),
/// an empty machine-id (each VM makes its own at first boot), and the mount points init
/// needs. Written through the applier, so a hostile image's symlinks cannot redirect
/// them outside the tree.
fn add_banger_files(applier: &Applier<'_>, agent: &Path, tree: &Path) -> Result<(), OciError> {
    let agent_bytes = fs::read(agent).map_err(io_err("read", agent))?;
    applier.add_file(AGENT_IN_ROOT, &agent_bytes, 0o755)?;
    for dir in ["dev", "proc", "sys", "run", "tmp", "etc", "root", "work"] {
        applier.add_dir(dir)?;
    }
    applier.add_file("etc/machine-id", b"", 0o444)?;
    let sshd = ["usr/sbin/sshd", "sbin/sshd"]
        .into_iter()
        .find(|p| fs::symlink_metadata(tree.join(p)).is_ok_and(|m| m.is_file()));
    let mut services = String::from(
        "# The lean init (banger-agent as PID 1) starts these:\n\
         # NAME [listen=tcp:PORT [prestart]] PROGRAM [ARG]...\n",
    );
    if let Some(sshd) = sshd {
        // Socket-activated: port 22 is open as soon as the agent is (see the
        // agent's `init/services.rs`); one sshd kept started for the next tunnel
        // (`init/prestart.rs`).
        services.push_str(&format!("sshd listen=tcp:22 prestart /{sshd} -i -e\n"));
        applier.add_file(
            SSHD_DROP_IN,
            b"# banger: each VM makes its own ed25519 host key at first boot.\nHostKey /etc/ssh/ssh_host_ed25519_key\n",
            0o644,
        )?;
    }
    applier.add_file("etc/banger/services", services.as_bytes(), 0o644)?;
    Ok(())
}

fn short(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    &hex[..hex.len().min(12)]
}

fn io_err<'p>(op: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> OciError + 'p {
    move |source| OciError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}
