//! P2: VM root disks from a 2 GiB image — copy-on-write clones (what banger does) against
//! full copies (the naive way) — on ext4 (this machine's filesystem: qcow2 overlays) and on
//! a loop-mounted xfs with reflinks (inside a private mount namespace, so the host's mount
//! table never changes; the loop device goes with the mount).

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use banger_images::vmdisk::{self, DiskOptions};
use banger_system::progress::NoProgress;

const IMAGE_BYTES: u64 = 2 << 30;
/// Real data in the image (a Debian-sized root filesystem uses a few hundred MiB).
const DATA_BYTES: u64 = 512 << 20;
/// VMs per copy-on-write backend (sparse copies, which really copy, get fewer).
pub const CLONES: usize = 20;
/// Full copies write 2 GiB each; one gives the per-VM figure (on a shared CI disk more
/// would only measure the neighbours).
const FULL_COPIES: usize = 1;

/// Results of one filesystem.
pub struct Figures {
    pub label: String,
    pub backend: String,
    pub clone_per_vm: Duration,
    pub copy_per_vm: Duration,
    pub bytes_per_vm: u64,
}

impl Figures {
    pub fn print(&self) {
        println!(
            "{:<34} {:>8}: clone {:>8.2} ms/VM, full copy {:>8.0} ms/VM, ratio 1/{:<6.0} (goal >= 1/100), {:>8} bytes/VM before any write (goal <= 1 MiB)",
            self.label,
            self.backend,
            ms(self.clone_per_vm),
            ms(self.copy_per_vm),
            self.copy_per_vm.as_secs_f64() / self.clone_per_vm.as_secs_f64().max(1e-9),
            self.bytes_per_vm
        );
    }
}

/// Measure in `dir` (created); `statvfs` deltas are trusted only on a private filesystem.
pub fn measure(
    label: &str,
    dir: &Path,
    allow_qcow2: bool,
    private_fs: bool,
    clones: usize,
) -> anyhow::Result<Figures> {
    fs::create_dir_all(dir)?;
    let base = dir.join("base.img");
    write_image(&base)?;
    let qemu_img = banger_system::runner::lookup_executable("qemu-img");
    let opts = DiskOptions {
        allow_qcow2,
        qemu_img: qemu_img.as_deref(),
        // The image's own size: the figures compare clones of the same bytes.
        size_bytes: 0,
    };
    sync();
    let free_before = free_bytes(dir)?;
    let t0 = Instant::now();
    let mut disks = Vec::new();
    for i in 0..clones {
        let vm = dir.join(format!("vm{i}"));
        fs::create_dir(&vm)?;
        disks.push(vmdisk::create_root_disk(&base, &vm, opts, &NoProgress)?);
    }
    let clone_total = t0.elapsed();
    sync();
    let backend = disks[0].backend.as_str().to_string();
    let bytes_per_vm = if private_fs {
        free_before.saturating_sub(free_bytes(dir)?) / clones as u64
    } else {
        // Allocated bytes of each disk (a qcow2 overlay's `root.base` is a hard link to
        // the image and costs nothing).
        let mut used = 0;
        for d in &disks {
            used += vmdisk::used_bytes(&d.path)?;
        }
        used / clones as u64
    };
    for i in 0..clones {
        fs::remove_dir_all(dir.join(format!("vm{i}")))?;
    }
    let mut copy_total = Duration::ZERO;
    for _ in 0..FULL_COPIES {
        let copy = dir.join("full.img");
        let t = Instant::now();
        full_copy(&base, &copy)?;
        copy_total += t.elapsed();
        fs::remove_file(&copy)?;
    }
    fs::remove_file(&base)?;
    Ok(Figures {
        label: label.to_string(),
        backend,
        clone_per_vm: clone_total / clones as u32,
        copy_per_vm: copy_total / FULL_COPIES as u32,
        bytes_per_vm,
    })
}

/// A 2 GiB image with 512 MiB of data spread through it (1 MiB every 4 MiB).
fn write_image(path: &Path) -> anyhow::Result<()> {
    let mut f = File::create(path)?;
    f.set_len(IMAGE_BYTES)?;
    let chunk: Vec<u8> = (0..(1 << 20)).map(|i| (i % 251) as u8 + 1).collect();
    let mut at = 0;
    while at < DATA_BYTES * 4 {
        f.seek(SeekFrom::Start(at))?;
        f.write_all(&chunk)?;
        at += 4 << 20;
    }
    f.sync_all()?;
    Ok(())
}

/// The naive way: every byte read and written (no reflink, no holes kept).
fn full_copy(from: &Path, to: &Path) -> anyhow::Result<()> {
    let mut src = File::open(from)?;
    let mut dst = File::create(to)?;
    let mut buf = vec![0u8; 4 << 20];
    loop {
        let n = src.read(&mut buf)?;
        if n == 0 {
            break;
        }
        dst.write_all(&buf[..n])?;
    }
    dst.sync_all()?;
    Ok(())
}

fn free_bytes(dir: &Path) -> anyhow::Result<u64> {
    let st = nix::sys::statvfs::statvfs(dir)?;
    Ok(st.blocks_available() * st.fragment_size())
}

fn sync() {
    // SAFETY: sync takes no arguments and touches no memory of ours.
    unsafe { libc::sync() };
}

/// The xfs half, run by `banger-bench disks-xfs DIR` inside `unshare --mount`: make a
/// reflink-enabled xfs in a file, loop-mount it privately, measure, unmount.
pub fn xfs_inner(work: &Path) -> anyhow::Result<Figures> {
    fs::create_dir_all(work)?;
    let img = work.join("xfs.img");
    let mnt = work.join("mnt");
    fs::create_dir_all(&mnt)?;
    {
        let f = File::create(&img)?;
        f.set_len(6 << 30)?;
    }
    run("mkfs.xfs", &["-q", "-f", "-m", "reflink=1", path(&img)?])?;
    // Private propagation: the mount exists only in this namespace.
    run("mount", &["--make-rprivate", "/"])?;
    run("mount", &["-o", "loop", path(&img)?, path(&mnt)?])?;
    let result = measure(
        "xfs (loop-mounted, reflink=1)",
        &mnt.join("bench"),
        false,
        true,
        CLONES,
    );
    let _ = run("umount", &[path(&mnt)?]);
    let _ = fs::remove_file(&img);
    result
}

/// Start [`xfs_inner`] in a private mount namespace.
pub fn xfs(exe: &Path, work: &Path) -> anyhow::Result<()> {
    let status = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--"])
        .arg(exe)
        .arg("disks-xfs")
        .arg(work)
        .status()
        .context("running unshare (util-linux) for the xfs measurement")?;
    if !status.success() {
        bail!("the xfs measurement failed ({status}); it needs root, xfsprogs and loop devices");
    }
    Ok(())
}

fn run(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

fn path(p: &Path) -> anyhow::Result<&str> {
    p.to_str().context("non-UTF-8 path")
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Where the bench works: inside target/, on this machine's filesystem.
pub fn work_dir() -> PathBuf {
    crate::workspace_root().join("target/bench-disks")
}
