//! A root filesystem image from a directory tree: `mkfs.ext4 -d` (no loop mount, no
//! root needed for the formatting itself; modes come from the tree, owners from the tree
//! or, for an unprivileged build, as [`owners`] explains).
//!
//! The image is sized from the tree: its used bytes, a quarter more for ext4's own
//! metadata, and a 64 MiB slack — no headroom for the guest's files. Each VM's root disk
//! has the VM's size instead (`vmdisk`), and the guest agent grows the filesystem online to
//! fill it at boot, so an image costs what its content costs to make, hash and copy. The
//! file is sparse, and inode tables and the journal are zeroed by mkfs (as holes) instead
//! of by every VM's kernel later.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use banger_system::CommandRunner;

pub mod incremental;
pub mod journal;
pub mod owners;
pub mod snapshot;
pub use owners::{OwnerFix, OwnerReport, Owners};

/// Free space a new image offers beyond [`image_size`]'s slack. None: VMs get their
/// space from their own disk size (the guest grows its root filesystem at boot). Images
/// built before that carried 1 GiB here, and still boot (a disk never shrinks below its
/// image).
pub const DEFAULT_HEADROOM: u64 = 0;
/// Bytes of data per inode of an image (`mkfs.ext4 -i`, its default `inode_ratio` for
/// filesystems of 512 MiB and more).
const BYTES_PER_INODE: u64 = 16 << 10;
/// [`BYTES_PER_INODE`] as mkfs's `-i` argument.
const BYTES_PER_INODE_ARG: &str = "16384";
const MIB: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum Ext4Error {
    #[error("mkfs.ext4 was not found: it makes root filesystem images; install e2fsprogs")]
    MkfsMissing,
    #[error("cannot {op} {path:?}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("mkfs.ext4 -d {tree:?} into {image:?} failed: {stderr}")]
    Mkfs {
        tree: PathBuf,
        image: PathBuf,
        stderr: String,
    },
    #[error(
        "debugfs was not found: it sets owners inside images built without root; install e2fsprogs"
    )]
    DebugfsMissing,
    #[error("debugfs could not read the journal of {image:?}: {stderr}")]
    Journal { image: PathBuf, stderr: String },
    #[error("debugfs could not apply the changed entries to {image:?}: {stderr}")]
    Incremental { image: PathBuf, stderr: String },
    #[error("debugfs could not set the owners of {count} entries in {image:?}: {stderr}")]
    Debugfs {
        image: PathBuf,
        count: usize,
        stderr: String,
    },
}

/// Bytes the tree at `dir` occupies (allocated blocks; directories and inodes included
/// roughly), and how many entries it has.
pub fn tree_usage(dir: &Path) -> std::io::Result<(u64, u64)> {
    let mut bytes = 0u64;
    let mut entries = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d)? {
            let entry = entry?;
            let meta = entry.path().symlink_metadata()?;
            entries += 1;
            bytes += meta.blocks() * 512;
            if meta.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    Ok((bytes, entries))
}

/// The image size for a tree: used bytes plus a quarter for ext4's own metadata, plus a
/// 64 MiB slack (the journal, directories a guest's first boot writes) and `headroom`,
/// rounded up to a MiB.
pub fn image_size(used: u64, headroom: u64) -> u64 {
    let size = used + used / 4 + 64 * MIB + headroom;
    size.div_ceil(MIB) * MIB
}

/// Inodes an image of `size` bytes needs for `entries` files: mkfs's default for the size,
/// or, for a tree of many small files (which a tight image would run out of inodes for),
/// the entries plus a quarter. `None` leaves mkfs its default.
pub fn inode_count(size: u64, entries: u64) -> Option<u64> {
    let wanted = entries + entries / 4 + 1024;
    (wanted > size / BYTES_PER_INODE).then_some(wanted)
}

/// Make `image` (which must not exist) an ext4 filesystem of `size` bytes holding `tree`
/// (of `entries` files, see [`tree_usage`]), with owners as `owners` says.
pub fn make_image(
    runner: &dyn CommandRunner,
    tree: &Path,
    image: &Path,
    size: u64,
    entries: u64,
    label: &str,
    owners: &Owners,
) -> Result<OwnerReport, Ext4Error> {
    let mkfs =
        banger_system::runner::lookup_executable("mkfs.ext4").ok_or(Ext4Error::MkfsMissing)?;
    let io = |op: &'static str| {
        move |source| Ext4Error::Io {
            op,
            path: image.to_path_buf(),
            source,
        }
    };
    let file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(image)
        .map_err(io("create"))?;
    file.set_len(size).map_err(io("size"))?;
    drop(file);
    let fixed = [
        "-q",
        "-F",
        // The layout of the filesystem every VM grows to its disk size at boot, not of
        // the few hundred MiB the image holds: below 512 MiB mkfs would pick its "small"
        // type (1 KiB blocks, an inode per 4 KiB), and growing that to an 8 GiB disk made
        // two million inodes and cost ~1 s of each first boot under emulation.
        "-b",
        "4096",
        "-i",
        BYTES_PER_INODE_ARG,
        "-L",
        label,
        "-m",
        "0",
        // Zero inode tables and journal now (as holes in the sparse file), so no guest
        // kernel spends its first minutes writing them into its own clone.
        "-E",
        "lazy_itable_init=0,lazy_journal_init=0,nodiscard",
        "-d",
    ];
    let inodes = inode_count(size, entries).map(|n| n.to_string());
    let args: Vec<&OsStr> = inodes
        .iter()
        .flat_map(|n| [OsStr::new("-N"), OsStr::new(n)])
        .chain(fixed.iter().map(OsStr::new))
        .chain([tree.as_os_str(), image.as_os_str()])
        .collect();
    let mut report = OwnerReport::default();
    let result = match owners {
        Owners::AsInTree => runner.run(&mkfs, &args),
        Owners::CallerIsRoot { .. } => match owners::unshare_program() {
            Some(unshare) => {
                let out = runner.run(&unshare, &owners::as_namespace_root(&mkfs, &args));
                match out {
                    Ok(out) if !out.success() && owners::no_user_namespace(&out.stderr_str()) => {
                        report.not_mapped = Some(out.stderr_str().trim().to_string());
                        recreate(image, size).map_err(io("recreate"))?;
                        runner.run(&mkfs, &args)
                    }
                    other => other,
                }
            }
            None => {
                report.not_mapped = Some("unshare (util-linux) was not found".to_string());
                runner.run(&mkfs, &args)
            }
        },
    };
    let out = result.map_err(|e| Ext4Error::Mkfs {
        tree: tree.to_path_buf(),
        image: image.to_path_buf(),
        stderr: e.to_string(),
    })?;
    if !out.success() {
        let _ = fs::remove_file(image);
        return Err(Ext4Error::Mkfs {
            tree: tree.to_path_buf(),
            image: image.to_path_buf(),
            stderr: out.stderr_str().trim().to_string(),
        });
    }
    if let Owners::CallerIsRoot { fixes } = owners
        && let Err(e) = set_owners(runner, image, fixes, &mut report)
    {
        let _ = fs::remove_file(image);
        return Err(e);
    }
    fs::File::open(image)
        .and_then(|f| f.sync_all())
        .map_err(io("sync"))?;
    Ok(report)
}

/// An empty sparse file again, after a failed attempt may have written to it.
fn recreate(image: &Path, size: u64) -> std::io::Result<()> {
    let file = fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(image)?;
    file.set_len(size)
}

/// Give `fixes` their owners inside `image` (one debugfs run for all of them).
fn set_owners(
    runner: &dyn CommandRunner,
    image: &Path,
    fixes: &[OwnerFix],
    report: &mut OwnerReport,
) -> Result<(), Ext4Error> {
    let (script, skipped) = owners::debugfs_script(fixes);
    report.skipped = skipped;
    if script.is_empty() {
        return Ok(());
    }
    let count = fixes.len() - skipped;
    run_debugfs(runner, image, &script).map_err(|e| match e {
        DebugfsFailure::Missing => Ext4Error::DebugfsMissing,
        DebugfsFailure::Failed(stderr) => Ext4Error::Debugfs {
            image: image.to_path_buf(),
            count,
            stderr,
        },
    })?;
    report.restored = count;
    Ok(())
}

/// Why a `debugfs -w` script run failed.
enum DebugfsFailure {
    Missing,
    /// debugfs's error lines, or its exit status.
    Failed(String),
}

/// Run `script` against `image` with `debugfs -w -f -`. debugfs exits 0 even when commands
/// fail, so its stderr is read for errors too: any one fails the run.
fn run_debugfs(
    runner: &dyn CommandRunner,
    image: &Path,
    script: &[u8],
) -> Result<(), DebugfsFailure> {
    let debugfs =
        banger_system::runner::lookup_executable("debugfs").ok_or(DebugfsFailure::Missing)?;
    let out = runner
        .run_with_input(
            &debugfs,
            &[
                OsStr::new("-w"),
                OsStr::new("-f"),
                OsStr::new("-"),
                image.as_os_str(),
            ],
            script,
        )
        .map_err(|e| DebugfsFailure::Failed(e.to_string()))?;
    match owners::debugfs_errors(&out.stderr_str())
        .or_else(|| (!out.success()).then(|| format!("exit status {:?}", out.code)))
    {
        Some(errors) => Err(DebugfsFailure::Failed(errors)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_leave_room_and_round_to_mib() {
        assert_eq!(image_size(0, 0), 64 * MIB);
        assert_eq!(image_size(400 * MIB, DEFAULT_HEADROOM), 564 * MIB);
        assert_eq!(image_size(400 * MIB, 1 << 30), (564 + 1024) * MIB);
        assert_eq!(image_size(1, 0) % MIB, 0);
    }

    #[test]
    fn many_small_files_get_enough_inodes() {
        // 300 MiB of ordinary files: mkfs's default (19 200 inodes) is plenty.
        assert_eq!(inode_count(300 * MIB, 8_600), None);
        // 100 000 tiny files in 200 MiB: the default (12 800) would run out.
        assert_eq!(inode_count(200 * MIB, 100_000), Some(126_024));
    }

    /// A small image gets the layout of the large filesystem VMs grow it into (4 KiB
    /// blocks, an inode per 16 KiB), not mkfs's "small" type: growing that is what cost.
    #[test]
    fn a_small_image_has_the_layout_of_a_large_one() {
        let tmp = tempfile::tempdir().unwrap();
        let tree = tmp.path().join("tree");
        fs::create_dir(&tree).unwrap();
        fs::write(tree.join("a"), b"x").unwrap();
        let image = tmp.path().join("img.ext4");
        let runner = banger_system::runner::RealRunner;
        make_image(&runner, &tree, &image, 64 * MIB, 1, "t", &Owners::AsInTree).unwrap();
        let dumpe2fs = banger_system::runner::lookup_executable("dumpe2fs")
            .expect("dumpe2fs is missing: run scripts/install-deps (package e2fsprogs)");
        let out = std::process::Command::new(dumpe2fs)
            .arg("-h")
            .arg(&image)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_string())
                .unwrap_or_else(|| panic!("no {name} in dumpe2fs's output:\n{text}"))
        };
        assert_eq!(field("Block size:"), "4096");
        assert_eq!(
            field("Inode count:"),
            (64 * MIB / BYTES_PER_INODE).to_string()
        );
        assert_eq!(BYTES_PER_INODE_ARG, BYTES_PER_INODE.to_string());
    }
}
