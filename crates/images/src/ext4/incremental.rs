//! An image from a copy of another image, changed with `debugfs` where its tree changed,
//! instead of a `mkfs.ext4 -d` of the whole tree: what makes re-importing an OCI image
//! that shares its base layers cost about its new layers.
//!
//! The change is computed from two [`Snapshot`]s — the tree the base image was made from
//! and the new tree — not from the layers: the applier has already applied whiteouts,
//! opaque directories and hard links to the new tree, so the result is the same whatever
//! the layers said. An entry is unchanged when it is the same inode (the tree cache
//! hard-links unchanged files; the applier never writes an inode in place) with the same
//! metadata; directories are compared by kind and metadata. Everything else is removed
//! (deepest first) and written again (parents first) with its mode, owner and mtime; new
//! hard links get `ln` and their link count.
//!
//! debugfs reads one command a line, splitting on blanks with `"` quoting and no escapes,
//! so an entry whose name (or link target) has a `"` or a control character cannot be
//! handed to it safely: [`plan`] then says [`Unsupported`] and the caller makes the image
//! with a full mkfs. So do extended attributes (mkfs copies them; this does not), sockets,
//! and device nodes.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use banger_system::CommandRunner;

use super::Ext4Error;
use super::snapshot::{Entry, Kind, Snapshot};

/// Why a change cannot be made incrementally (the caller falls back to a full build).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported(pub String);

/// The debugfs commands that turn an image of `base` into one of `new`, whose files are
/// read from `tree` (the new tree on the host). `always` are paths to write whatever their
/// inodes say (files added after the tree was snapshotted, whose inode numbers may have
/// been reused). Also returns how many entries it writes.
pub fn plan(
    base: &Snapshot,
    new: &Snapshot,
    tree: &Path,
    always: &[&[u8]],
) -> Result<(Vec<u8>, usize), Unsupported> {
    let kept = |path: &[u8], n: &Entry| -> bool {
        let Some(b) = base.entries.get(path) else {
            return false;
        };
        if b.kind != n.kind {
            return false;
        }
        n.kind == Kind::Dir
            || (b.ino == n.ino
                && b.mode == n.mode
                && (b.uid, b.gid) == (n.uid, n.gid)
                && b.size == n.size
                && b.mtime == n.mtime
                && !always.contains(&path))
    };
    let mut script = Vec::new();
    // Removals, children before their directory.
    for (path, b) in base.entries.iter().rev() {
        if new.entries.get(path).is_some_and(|n| kept(path, n)) {
            continue;
        }
        let cmd = if b.kind == Kind::Dir { "rmdir" } else { "rm" };
        command(&mut script, cmd, &[&abs(path)])?;
    }
    // Inodes still in the image, by inode number: a new path linking to one gets `ln`.
    let mut in_image: HashMap<u64, Vec<u8>> = HashMap::new();
    let mut links: HashMap<u64, usize> = HashMap::new();
    for (path, n) in &new.entries {
        if n.kind != Kind::Dir {
            *links.entry(n.ino).or_default() += 1;
            if kept(path, n) {
                in_image.entry(n.ino).or_insert_with(|| path.clone());
            }
        }
    }
    let mut written = 0;
    let mut relinked: Vec<(u64, Vec<u8>)> = Vec::new();
    for (path, n) in &new.entries {
        let is_kept = kept(path, n);
        if n.kind == Kind::Dir {
            let b = base.entries.get(path);
            if !is_kept {
                // By name inside its parent: debugfs resolves `mkdir "/top"` against an
                // empty parent path and fails for every top-level directory.
                let (parent, name) = split(path);
                command(&mut script, "cd", &[&abs(parent)])?;
                command(&mut script, "mkdir", &[name])?;
                written += 1;
            }
            // mkfs copies each directory's mtime too, so a changed one is set as well.
            let same =
                |b: &Entry| (b.mode, b.uid, b.gid, b.mtime) == (n.mode, n.uid, n.gid, n.mtime);
            if !is_kept || b.is_none_or(|b| !same(b)) {
                set_fields(&mut script, path, n)?;
            }
            continue;
        }
        if is_kept {
            continue;
        }
        written += 1;
        let (parent, name) = split(path);
        if let Some(first) = in_image.get(&n.ino) {
            // Another name of an inode already in the image.
            command(&mut script, "cd", &[&abs(parent)])?;
            command(&mut script, "ln", &[&abs(first), name])?;
            relinked.push((n.ino, path.clone()));
            continue;
        }
        match n.kind {
            Kind::File => {
                let host = tree.join(OsStr::from_bytes(path));
                command(&mut script, "cd", &[&abs(parent)])?;
                command(&mut script, "write", &[host.as_os_str().as_bytes(), name])?;
            }
            Kind::Symlink => {
                let host = tree.join(OsStr::from_bytes(path));
                let target = std::fs::read_link(&host)
                    .map_err(|e| Unsupported(format!("cannot read link {host:?}: {e}")))?;
                // By name inside its parent, as `mkdir` above.
                command(&mut script, "cd", &[&abs(parent)])?;
                command(
                    &mut script,
                    "symlink",
                    &[name, target.as_os_str().as_bytes()],
                )?;
            }
            Kind::Fifo => {
                command(&mut script, "cd", &[&abs(parent)])?;
                command(&mut script, "mknod", &[name, b"p"])?;
            }
            Kind::Dir | Kind::Other => {
                return Err(Unsupported(format!(
                    "{} is a socket or device",
                    String::from_utf8_lossy(path)
                )));
            }
        }
        if has_xattrs(&tree.join(OsStr::from_bytes(path))) {
            return Err(Unsupported(format!(
                "{} has extended attributes",
                String::from_utf8_lossy(path)
            )));
        }
        set_fields(&mut script, path, n)?;
        in_image.insert(n.ino, path.clone());
    }
    // `ln` leaves link counts alone: give each relinked inode its count in the new tree.
    for (ino, path) in relinked {
        let count = links.get(&ino).copied().unwrap_or(1).to_string();
        command(
            &mut script,
            "set_inode_field",
            &[&abs(&path), b"links_count", count.as_bytes()],
        )?;
    }
    Ok((script, written))
}

/// Mode (with its type), owner and mtime, as `mkfs.ext4 -d` copies them from the tree.
fn set_fields(script: &mut Vec<u8>, path: &[u8], e: &Entry) -> Result<(), Unsupported> {
    let p = abs(path);
    let mode = format!("0{:o}", e.kind.type_bits() | e.mode);
    let fields = [
        ("mode", mode),
        ("uid", e.uid.to_string()),
        ("gid", e.gid.to_string()),
        ("mtime", format!("@{}", e.mtime)),
    ];
    for (field, value) in fields {
        command(
            script,
            "set_inode_field",
            &[&p, field.as_bytes(), value.as_bytes()],
        )?;
    }
    Ok(())
}

fn abs(path: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(path.len() + 1);
    p.push(b'/');
    p.extend_from_slice(path);
    p
}

/// `(parent, name)` of a relative path; the parent of a top-level entry is `b""` (`/`).
fn split(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (b"", path),
    }
}

/// One debugfs command line, every argument quoted; refuses what cannot be quoted safely.
fn command(script: &mut Vec<u8>, cmd: &str, args: &[&[u8]]) -> Result<(), Unsupported> {
    script.extend_from_slice(cmd.as_bytes());
    for arg in args {
        if arg.is_empty() || arg.iter().any(|&b| b == b'"' || b < 0x20 || b == 0x7f) {
            return Err(Unsupported(format!(
                "the name {:?} cannot be handed to debugfs safely",
                String::from_utf8_lossy(arg)
            )));
        }
        script.extend_from_slice(b" \"");
        script.extend_from_slice(arg);
        script.push(b'"');
    }
    script.push(b'\n');
    Ok(())
}

fn has_xattrs(path: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return true;
    };
    // SAFETY: a size query (null buffer, size 0) on a valid C string; nothing is written.
    let n = unsafe { libc::llistxattr(c.as_ptr(), std::ptr::null_mut(), 0) };
    // No xattr support on the host filesystem means none to copy.
    n > 0
}

/// Run `script` against `image` with `debugfs -w`. Any error debugfs reports fails the
/// whole change (the caller then builds the image in full).
pub fn apply(runner: &dyn CommandRunner, image: &Path, script: &[u8]) -> Result<(), Ext4Error> {
    super::run_debugfs(runner, image, script).map_err(|e| match e {
        super::DebugfsFailure::Missing => Ext4Error::DebugfsMissing,
        super::DebugfsFailure::Failed(stderr) => Ext4Error::Incremental {
            image: image.to_path_buf(),
            stderr,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: Kind, ino: u64) -> Entry {
        Entry {
            kind,
            ino,
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: 1,
            mtime: 5,
        }
    }

    fn snap(entries: &[(&str, Entry)]) -> Snapshot {
        Snapshot {
            entries: entries
                .iter()
                .map(|(p, e)| (p.as_bytes().to_vec(), *e))
                .collect(),
        }
    }

    #[test]
    fn only_what_changed_is_written_and_removals_come_first() {
        let base = snap(&[
            ("etc", entry(Kind::Dir, 1)),
            ("etc/keep", entry(Kind::File, 2)),
            ("etc/old", entry(Kind::File, 3)),
            ("gone", entry(Kind::Dir, 4)),
            ("gone/x", entry(Kind::File, 5)),
        ]);
        let new = snap(&[
            ("etc", entry(Kind::Dir, 11)),
            ("etc/keep", entry(Kind::File, 2)),
            ("etc/old", entry(Kind::File, 13)),
            ("etc/link", entry(Kind::File, 2)),
        ]);
        let (script, written) = plan(&base, &new, Path::new("/t"), &[]).unwrap();
        let script = String::from_utf8(script).unwrap();
        let lines: Vec<&str> = script.lines().collect();
        assert_eq!(
            &lines[..3],
            ["rm \"/gone/x\"", "rmdir \"/gone\"", "rm \"/etc/old\""]
        );
        assert!(
            script.contains("cd \"/etc\"\nln \"/etc/keep\" \"link\"\n"),
            "{script}"
        );
        assert!(
            script.contains("write \"/t/etc/old\" \"old\"\n"),
            "{script}"
        );
        assert!(
            script.contains("set_inode_field \"/etc/old\" \"mode\" \"0100644\"\n"),
            "{script}"
        );
        assert!(
            script.ends_with("set_inode_field \"/etc/link\" \"links_count\" \"2\"\n"),
            "{script}"
        );
        assert!(!script.contains("keep\" \"keep"), "{script}");
        assert_eq!(written, 2);
    }

    /// debugfs fails `mkdir "/top"` and `symlink "/top" T` (it looks the parent up by
    /// the empty path before the last `/`): new entries are made by name in their parent.
    #[test]
    fn new_top_level_entries_are_made_inside_the_root() {
        let tree = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("etc", tree.path().join("link")).unwrap();
        let new = snap(&[
            ("srv", entry(Kind::Dir, 1)),
            ("link", entry(Kind::Symlink, 2)),
        ]);
        let (script, written) = plan(&snap(&[]), &new, tree.path(), &[]).unwrap();
        let script = String::from_utf8(script).unwrap();
        assert!(script.contains("cd \"/\"\nmkdir \"srv\"\n"), "{script}");
        assert!(
            script.contains("cd \"/\"\nsymlink \"link\" \"etc\"\n"),
            "{script}"
        );
        assert_eq!(written, 2);
    }

    #[test]
    fn names_debugfs_cannot_take_safely_are_unsupported() {
        let base = snap(&[]);
        for name in ["a\"b", "a\nrm /x", "tab\there"] {
            let new = snap(&[(name, entry(Kind::Dir, 1))]);
            assert!(plan(&base, &new, Path::new("/t"), &[]).is_err(), "{name:?}");
        }
        let new = snap(&[("with space", entry(Kind::Dir, 1))]);
        assert!(plan(&base, &new, Path::new("/t"), &[]).is_ok());
    }
}
