//! Booting the `minimal` image straight through the QEMU driver, without the daemon:
//! the baseline of the boot benchmark and the subject of driver-level tests.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use banger_vmm::{Accel, DriveFormat, DriveSpec, LaunchSpec, QemuConfig};

use crate::Env;

/// The files of the installation's `minimal` image.
#[derive(Debug, Clone)]
pub struct ImageFiles {
    pub kernel: PathBuf,
    pub bzimage: PathBuf,
    pub initrd: PathBuf,
    /// The kernel's PVH fact, as the image records it.
    pub kernel_pvh: bool,
}

impl Env {
    /// Where the `minimal` image's kernel, bzImage and initramfs live.
    pub fn minimal_image(&self) -> anyhow::Result<ImageFiles> {
        let image: serde_json::Value =
            serde_json::from_str(&self.ok(["image", "inspect", "minimal", "--json"]))?;
        let path = |key: &str| {
            image[key]
                .as_str()
                .map(PathBuf::from)
                .with_context(|| format!("`image inspect` shows no {key}"))
        };
        let kernel = path("kernel_path")?;
        // `image inspect` does not show the bzImage; the build puts it beside the vmlinux.
        let bzimage = kernel.with_file_name("bzImage");
        if !bzimage.is_file() {
            bail!("{} is missing", bzimage.display());
        }
        Ok(ImageFiles {
            kernel,
            bzimage,
            initrd: path("initrd_path")?,
            kernel_pvh: image["kernel_pvh"].as_bool().unwrap_or(false),
        })
    }

    /// A QEMU driver configuration like the daemon's on this host: KVM when guests can
    /// run under it, else TCG with the host TSC frequency.
    pub fn host_qemu_config(&self) -> anyhow::Result<QemuConfig> {
        let accel = if banger_vmm::probe_kvm().usable_for_guests {
            Accel::Kvm
        } else {
            Accel::Tcg
        };
        let tsc = banger_vmm::tsc_khz_cached(&self.runtime_dir().join("tsc_khz"))?.khz;
        Ok(QemuConfig::new("qemu-system-x86_64", accel, Some(tsc)))
    }
}

/// A spec that boots `image` in `dir` (created if needed) with a fresh ext4 work disk of
/// `disk_size` (an `mkfs.ext4` size such as `256M`), as the daemon would.
pub fn launch_spec(
    image: &ImageFiles,
    dir: &Path,
    name: &str,
    vcpus: u32,
    memory_mib: u64,
    disk_size: &str,
) -> anyhow::Result<LaunchSpec> {
    std::fs::create_dir_all(dir)?;
    let disk = dir.join("work.ext4");
    let status = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-E", "lazy_itable_init=1,lazy_journal_init=1"])
        .arg(&disk)
        .arg(disk_size)
        .status()
        .context("running mkfs.ext4")?;
    if !status.success() {
        bail!("mkfs.ext4 {} failed", disk.display());
    }
    Ok(LaunchSpec {
        vm_id: name.to_string(),
        vm_dir: dir.to_path_buf(),
        kernel: image.kernel.clone(),
        kernel_pvh: image.kernel_pvh,
        bzimage: Some(image.bzimage.clone()),
        initrd: Some(image.initrd.clone()),
        kernel_args: vec![
            format!("banger.hostname={name}"),
            "banger.workdisk=/dev/vda".into(),
        ],
        drives: vec![DriveSpec {
            id: "work".into(),
            path: disk,
            format: DriveFormat::Raw,
            read_only: false,
            root: false,
        }],
        nics: Vec::new(),
        user_net: None,
        vcpus,
        memory_mib,
        memory: Default::default(),
        restore: None,
        shares: Vec::new(),
        console_log: dir.join("console.log"),
    })
}
