//! Who owns the files of an image built without root.
//!
//! `mkfs.ext4 -d` copies each file's owner from the tree. A daemon running as root
//! unpacks the tree with the image's own owners, so the tree is right as it is. An
//! ordinary user's daemon cannot `chown`: every file of its tree is its own, and copied
//! as is the guest would see `/`, `/etc/shadow` and `/usr/bin/sudo` owned by, say,
//! uid 1000 (sshd's StrictModes then refuses root's keys, sudo stops being set-uid
//! root). So for an unprivileged build:
//!
//! 1. mkfs runs in a user namespace that maps the caller to root (`unshare
//!    --map-root-user`, no privilege or sub-uid range needed): the caller's files land
//!    in the image as root's, which is what almost every file of a root filesystem is;
//! 2. the few entries the layers gave another owner (a service account's directory, a
//!    `USER node` image's home) are then set inside the image file with `debugfs`
//!    (`set_inode_field`), which needs no privilege either.
//!
//! Where user namespaces are unavailable (a sysctl, or an LSM policy such as Ubuntu's
//! AppArmor restriction), step 1 is skipped and the report says so: the build still
//! works, with the caller's uid in the guest, and the user is told.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// An entry whose owner in the image differs from root: its path relative to the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerFix {
    pub path: PathBuf,
    pub uid: u32,
    pub gid: u32,
}

/// How the tree's owners become the image's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owners {
    /// The tree carries the right owners (it was unpacked by root): copy them.
    AsInTree,
    /// The tree belongs to the (unprivileged) caller: the caller's files are root's in
    /// the image, and `fixes` name the entries that belong to someone else.
    CallerIsRoot { fixes: Vec<OwnerFix> },
}

/// What happened to the owners, for the build's progress notes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnerReport {
    /// The caller's files could not be mapped to root (no user namespace): the reason.
    pub not_mapped: Option<String>,
    /// Entries given their own owner inside the image.
    pub restored: usize,
    /// Entries whose names `debugfs` cannot be handed safely (a `"` or a control
    /// character): left owned by root.
    pub skipped: usize,
}

impl OwnerReport {
    /// One line per thing the user should know; empty when the image is exact.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if let Some(why) = &self.not_mapped {
            notes.push(format!(
                "files in the image belong to your uid, not root: no user namespace to map it ({why}); build as root for exact owners"
            ));
        }
        if self.skipped > 0 {
            notes.push(format!(
                "{} entries with unusual names kept root as their owner instead of the layer's; build as root for exact owners",
                self.skipped
            ));
        }
        notes
    }
}

/// The `debugfs` command file that gives each fix its owner, and how many fixes had to be
/// skipped. debugfs reads one command a line, splitting on blanks with `"` quoting and no
/// escapes: a name with a `"`, a line break or another control character cannot be passed
/// safely, so it is skipped rather than risk a second command.
pub fn debugfs_script(fixes: &[OwnerFix]) -> (Vec<u8>, usize) {
    let mut script = Vec::new();
    let mut skipped = 0;
    for fix in fixes {
        let name = fix.path.as_os_str().as_bytes();
        let safe = !name.is_empty()
            && !name.starts_with(b"/")
            && name.iter().all(|&b| b != b'"' && b >= 0x20 && b != 0x7f);
        if !safe {
            skipped += 1;
            continue;
        }
        for (field, value) in [("uid", fix.uid), ("gid", fix.gid)] {
            script.extend_from_slice(b"set_inode_field \"/");
            script.extend_from_slice(name);
            script.extend_from_slice(format!("\" {field} {value}\n").as_bytes());
        }
    }
    (script, skipped)
}

/// Errors debugfs printed: it exits 0 whatever its commands did, and starts with a
/// version banner on stderr.
pub fn debugfs_errors(stderr: &str) -> Option<String> {
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("debugfs "))
        .collect();
    (!errors.is_empty()).then(|| errors.join("\n"))
}

/// util-linux's `unshare`, which makes the user namespace.
pub fn unshare_program() -> Option<PathBuf> {
    banger_system::runner::lookup_executable("unshare")
}

/// Whether a failed `unshare … mkfs.ext4` run failed for want of a user namespace
/// (unshare's own messages start with its name; mkfs's never do).
pub fn no_user_namespace(stderr: &str) -> bool {
    stderr.lines().any(|l| l.starts_with("unshare:"))
}

/// The arguments that run `program args…` in a user namespace where the caller is root.
pub fn as_namespace_root<'a>(program: &'a Path, args: &[&'a OsStr]) -> Vec<&'a OsStr> {
    let mut all: Vec<&OsStr> = ["--user", "--map-root-user", "--"]
        .iter()
        .map(OsStr::new)
        .collect();
    all.push(program.as_os_str());
    all.extend_from_slice(args);
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fix(path: &[u8], uid: u32, gid: u32) -> OwnerFix {
        OwnerFix {
            path: PathBuf::from(OsStr::from_bytes(path)),
            uid,
            gid,
        }
    }

    #[test]
    fn the_script_sets_uid_and_gid_of_quoted_absolute_paths() {
        let (script, skipped) =
            debugfs_script(&[fix(b"home/node", 1000, 1000), fix(b"var/a b", 7, 8)]);
        assert_eq!(skipped, 0);
        assert_eq!(
            String::from_utf8(script).unwrap(),
            "set_inode_field \"/home/node\" uid 1000\n\
             set_inode_field \"/home/node\" gid 1000\n\
             set_inode_field \"/var/a b\" uid 7\n\
             set_inode_field \"/var/a b\" gid 8\n"
        );
    }

    #[test]
    fn names_that_could_smuggle_a_command_are_skipped() {
        let hostile: [&[u8]; 6] = [
            b"a\nwrite /etc/passwd x",
            b"a\" uid 0\nrm \"/b",
            b"tab\there",
            b"del\x7f",
            b"/absolute",
            b"",
        ];
        let fixes: Vec<OwnerFix> = hostile.iter().map(|n| fix(n, 1, 1)).collect();
        let (script, skipped) = debugfs_script(&fixes);
        assert!(script.is_empty(), "{}", String::from_utf8_lossy(&script));
        assert_eq!(skipped, hostile.len());
    }

    #[test]
    fn non_utf8_names_pass_through_as_bytes() {
        let (script, skipped) = debugfs_script(&[fix(b"caf\xe9", 2, 3)]);
        assert_eq!(skipped, 0);
        assert!(script.starts_with(b"set_inode_field \"/caf\xe9\" uid 2\n"));
    }

    #[test]
    fn only_real_errors_count() {
        assert_eq!(debugfs_errors("debugfs 1.47.0 (5-Feb-2023)\n"), None);
        assert_eq!(
            debugfs_errors("debugfs 1.47.0 (5-Feb-2023)\nset_inode_field: File not found by ext2_lookup while …\n")
                .as_deref(),
            Some("set_inode_field: File not found by ext2_lookup while …")
        );
    }

    #[test]
    fn only_unshare_failures_mean_no_namespace() {
        assert!(no_user_namespace(
            "unshare: unshare failed: Operation not permitted\n"
        ));
        assert!(no_user_namespace(
            "unshare: write failed /proc/self/uid_map: Operation not permitted"
        ));
        assert!(!no_user_namespace(
            "mkfs.ext4: Could not allocate block in ext2 filesystem"
        ));
    }

    #[test]
    fn notes_say_what_is_inexact() {
        assert!(OwnerReport::default().notes().is_empty());
        let report = OwnerReport {
            not_mapped: Some("unshare: Operation not permitted".into()),
            restored: 3,
            skipped: 2,
        };
        let notes = report.notes();
        assert_eq!(notes.len(), 2);
        assert!(notes[0].contains("your uid"), "{}", notes[0]);
        assert!(notes[1].starts_with("2 entries"), "{}", notes[1]);
    }
}
