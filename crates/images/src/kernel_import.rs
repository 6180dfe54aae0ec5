//! `banger image import-kernel FILE`: a kernel of the user's own, as an ELF `vmlinux` or
//! a bzImage (gzip, xz, zstd or lz4 payload). The ELF form Firecracker and QEMU's microvm
//! boot is derived from a bzImage; the PVH fact is computed here, once, and recorded.
//!
//! Without `--initrd`, the image gets an initramfs holding only the agent: the kernel must
//! then have its virtio drivers built in (Firecracker's guest kernels do). Pair it with a
//! root filesystem with `banger image import REF --kernel NAME`.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use banger_system::progress::{NoProgress, Progress};
use time::format_description::well_known::Rfc3339;

use crate::build::{BuildError, install, io_err, write_synced};
use crate::elf;
use crate::initramfs::{self, InitramfsSpec};
use crate::kernel;
use crate::manifest::{
    FileRecord, MANIFEST_FILE, MANIFEST_FORMAT, Manifest, ManifestDebian, ManifestFiles,
};
use crate::minimal::{BZIMAGE_FILE, BuiltImage, INITRD_FILE, KERNEL_FILE};

/// Kernels are tens of MiB; anything past this is not one.
const MAX_KERNEL: u64 = 512 << 20;

pub struct KernelImportOptions<'a> {
    pub kernel: PathBuf,
    /// An initrd to use as is, instead of the agent-only one.
    pub initrd: Option<PathBuf>,
    pub out_dir: PathBuf,
    pub agent_path: PathBuf,
    pub image_name: String,
    pub progress: &'a dyn Progress,
}

impl<'a> KernelImportOptions<'a> {
    pub fn new(kernel: PathBuf, out_dir: PathBuf, agent_path: PathBuf) -> Self {
        Self {
            kernel,
            initrd: None,
            out_dir,
            agent_path,
            image_name: String::new(),
            progress: &NoProgress,
        }
    }
}

pub fn import_kernel(opts: &KernelImportOptions<'_>) -> Result<BuiltImage, BuildError> {
    let out_dir = &opts.out_dir;
    let (parent, name) = match (out_dir.parent(), out_dir.file_name()) {
        (Some(p), Some(n)) if out_dir.is_absolute() => (p, n.to_string_lossy().into_owned()),
        _ => {
            return Err(BuildError::BadOutDir {
                path: out_dir.clone(),
            });
        }
    };
    initramfs::check_agent(&opts.agent_path)?;
    let bytes = read_bounded(&opts.kernel)?;
    let bad = |reason: String| BuildError::KernelFile {
        path: opts.kernel.clone(),
        reason,
    };
    fs::create_dir_all(parent).map_err(io_err("create", parent))?;
    let stage = tempfile::Builder::new()
        .prefix(&format!(".{name}.new-"))
        .tempdir_in(parent)
        .map_err(io_err("create a staging directory in", parent))?;

    let (elf_bytes, codec, has_bzimage) = if bytes.starts_with(b"\x7fELF") {
        opts.progress.note("the kernel is an ELF vmlinux");
        (bytes, "none".to_string(), false)
    } else {
        opts.progress
            .phase("extracting vmlinux from the bzImage", None, None);
        let v = kernel::extract_vmlinux(&bytes).map_err(|e| {
            bad(format!(
                "it is neither an ELF vmlinux nor a usable bzImage ({})",
                banger_system::error_chain(&e)
            ))
        })?;
        write_synced(&stage.path().join(BZIMAGE_FILE), &bytes)?;
        (v.elf, v.codec.name().to_string(), true)
    };
    if elf_bytes.len() < 20
        || elf_bytes[4] != 2
        || u16::from_le_bytes([elf_bytes[18], elf_bytes[19]]) != 62
    {
        return Err(bad("it is not a 64-bit x86_64 ELF kernel".into()));
    }
    let has_pvh = elf::has_pvh_note(&elf_bytes).map_err(bad)?;
    let release = kernel_release(&elf_bytes).unwrap_or_else(|| "unknown".to_string());
    write_synced(&stage.path().join(KERNEL_FILE), &elf_bytes)?;
    drop(elf_bytes);
    opts.progress.note(&format!(
        "kernel {release}: PVH entry {}",
        if has_pvh {
            "present"
        } else {
            "absent (QEMU boots its bzImage on -M pc)"
        }
    ));

    let initrd = stage.path().join(INITRD_FILE);
    match &opts.initrd {
        Some(given) => {
            fs::copy(given, &initrd).map_err(io_err("copy the initrd", given))?;
        }
        None => {
            let empty = tempfile::tempdir_in(parent).map_err(io_err("create", parent))?;
            initramfs::write_initramfs(
                &InitramfsSpec {
                    agent: &opts.agent_path,
                    busybox: None,
                    kernel_release: &release,
                    modules_root: empty.path(),
                    modules: &[],
                    banger_version: env!("CARGO_PKG_VERSION"),
                },
                &initrd,
            )?;
        }
    }

    let record =
        |file: &str| FileRecord::of(stage.path(), file).map_err(io_err("hash", stage.path()));
    let agent = FileRecord::of_path(&opts.agent_path).map_err(io_err("hash", &opts.agent_path))?;
    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        image: opts.image_name.clone(),
        source: format!("kernel:{}", opts.kernel.display()),
        recipe: None,
        kernel_release: release,
        has_pvh,
        kernel_codec: codec,
        files: ManifestFiles {
            kernel: record(KERNEL_FILE)?,
            bzimage: if has_bzimage {
                Some(record(BZIMAGE_FILE)?)
            } else {
                None
            },
            initrd: record(INITRD_FILE)?,
            rootfs: None,
        },
        packages: Vec::new(),
        modules: Vec::new(),
        agent,
        debian: ManifestDebian {
            mirror: String::new(),
            suite: String::new(),
            component: String::new(),
            arch: "amd64".into(),
        },
        init: Some("initramfs".into()),
        include: Vec::new(),
        built_at: time::OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .unwrap_or_else(|_| "unknown".to_string()),
        banger_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| BuildError::Io {
        op: "serialise",
        path: stage.path().join(MANIFEST_FILE),
        source: e.into(),
    })?;
    write_synced(&stage.path().join(MANIFEST_FILE), &json)?;
    install(stage, out_dir, parent, &name)?;
    Ok(BuiltImage::from_manifest(out_dir, &manifest))
}

fn read_bounded(path: &Path) -> Result<Vec<u8>, BuildError> {
    let file = fs::File::open(path).map_err(io_err("open the kernel", path))?;
    let mut bytes = Vec::new();
    file.take(MAX_KERNEL + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err("read the kernel", path))?;
    if bytes.len() as u64 > MAX_KERNEL {
        return Err(BuildError::KernelFile {
            path: path.to_path_buf(),
            reason: format!("it is larger than {} MiB", MAX_KERNEL >> 20),
        });
    }
    Ok(bytes)
}

/// `6.1.0-50-cloud-amd64` from the `Linux version …` banner every kernel carries.
pub fn kernel_release(elf: &[u8]) -> Option<String> {
    const BANNER: &[u8] = b"Linux version ";
    let at = elf.windows(BANNER.len()).position(|w| w == BANNER)? + BANNER.len();
    let rest = &elf[at..elf.len().min(at + 128)];
    let end = rest
        .iter()
        .position(|b| b.is_ascii_whitespace() || *b == 0)?;
    let release = std::str::from_utf8(&rest[..end]).ok()?;
    (!release.is_empty() && release.is_ascii()).then(|| release.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_from_the_banner() {
        let mut elf = vec![0u8; 64];
        elf.extend_from_slice(b"Linux version 6.1.0-50-cloud-amd64 (debian-kernel@lists) #1 SMP\0");
        assert_eq!(
            kernel_release(&elf).as_deref(),
            Some("6.1.0-50-cloud-amd64")
        );
        assert_eq!(kernel_release(b"nothing here"), None);
    }
}
