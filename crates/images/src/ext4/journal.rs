//! How far an ext4 image's journal has come: a number that grows with every transaction a
//! kernel commits to the filesystem, read from the image file while nothing or a running
//! guest has it open.
//!
//! Every change a guest makes to an ext4 filesystem (a write, a new or removed file, a
//! rename, a chmod) is committed through the jbd2 journal, and each commit carries the next
//! transaction number. `mkfs.ext4` leaves the journal empty at transaction 1; a kernel that
//! mounts it and changes nothing writes no transaction (and a clean unmount then leaves the
//! journal superblock as it was). So "the position grew" means "a kernel changed the
//! filesystem": how banger tells whether a guest wrote to a copy-in share without reading
//! the tree.
//!
//! The position is `debugfs logdump`'s walk: from the journal superblock's tail (`Journal
//! starts at block B, transaction T`), through every commit block found after it in
//! sequence. What it cannot see: a commit the guest has not yet written (ext4 commits every
//! 5 seconds), and — after the log wrapped around while the on-disk tail was stale — the
//! commits past the overwritten part (it then reads a smaller number than the truth, but
//! never a larger one). Access-time updates are commits too: the guest mounts copies
//! `noatime`.

use std::ffi::OsStr;
use std::path::Path;

use banger_system::CommandRunner;

use super::Ext4Error;

/// The journal position of a filesystem `mkfs.ext4` just made (nothing committed yet).
pub const FRESH: u64 = 1;

/// The journal position of `image`: the number of the next transaction a kernel would
/// commit, as the image file shows it now.
pub fn position(runner: &dyn CommandRunner, image: &Path) -> Result<u64, Ext4Error> {
    let debugfs =
        banger_system::runner::lookup_executable("debugfs").ok_or(Ext4Error::DebugfsMissing)?;
    let failed = |stderr: String| Ext4Error::Journal {
        image: image.to_path_buf(),
        stderr,
    };
    // `-c`: catastrophic mode, read only and without the bitmaps (faster; nothing written).
    let out = runner
        .run(
            &debugfs,
            &[
                OsStr::new("-c"),
                OsStr::new("-R"),
                OsStr::new("logdump"),
                image.as_os_str(),
            ],
        )
        .map_err(|e| failed(e.to_string()))?;
    if !out.success() {
        return Err(failed(out.stderr_str().trim().to_string()));
    }
    parse(&out.stdout_str()).ok_or_else(|| {
        failed(format!(
            "unexpected logdump output: {}",
            out.stdout_str().trim()
        ))
    })
}

/// The position in `logdump`'s output: after the last commit block found, else the
/// transaction the journal starts at.
fn parse(text: &str) -> Option<u64> {
    let mut start = None;
    let mut last_commit = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("Journal starts at block ") {
            start = rest
                .split_once(", transaction ")
                .and_then(|(_, t)| t.trim().parse::<u64>().ok());
        } else if let Some(rest) = line.strip_prefix("Found expected sequence ")
            && line.contains("(commit block)")
        {
            last_commit = rest
                .split_once(',')
                .and_then(|(seq, _)| seq.trim().parse::<u64>().ok());
        }
    }
    let start = start?;
    Some(last_commit.map_or(start, |c| (c + 1).max(start)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logdump_walks_parse_to_the_next_transaction() {
        let empty = "Journal starts at block 0, transaction 1\n";
        assert_eq!(parse(empty), Some(1));
        let clean_after_writes = "Journal starts at block 0, transaction 7\n";
        assert_eq!(parse(clean_after_writes), Some(7));
        let live = "Journal starts at block 1, transaction 2\n\
            Found expected sequence 2, type 1 (descriptor block) at block 1\n\
            Found expected sequence 2, type 2 (commit block) at block 5\n\
            Found expected sequence 3, type 1 (descriptor block) at block 6\n\
            Found expected sequence 3, type 2 (commit block) at block 9\n\
            No magic number at block 10: end of journal.\n";
        assert_eq!(parse(live), Some(4));
        let torn = "Journal starts at block 1, transaction 2\n\
            Found expected sequence 2, type 1 (descriptor block) at block 1\n\
            Found sequence 1 (not 2) at block 3: end of journal.\n";
        assert_eq!(parse(torn), Some(2));
        assert_eq!(parse("garbage"), None);
    }

    /// What mkfs.ext4 makes (with the flags banger uses) reads as [`FRESH`].
    #[test]
    fn a_fresh_image_is_at_the_first_transaction() {
        let tmp = tempfile::tempdir().unwrap();
        let tree = tmp.path().join("tree");
        std::fs::create_dir(&tree).unwrap();
        std::fs::write(tree.join("a"), b"x").unwrap();
        let image = tmp.path().join("img.ext4");
        let runner = banger_system::runner::RealRunner;
        super::super::make_image(
            &runner,
            &tree,
            &image,
            64 << 20,
            1,
            "t",
            &super::super::Owners::AsInTree,
        )
        .unwrap();
        assert_eq!(position(&runner, &image).unwrap(), FRESH);
    }
}
