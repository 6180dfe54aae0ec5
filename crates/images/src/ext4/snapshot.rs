//! What a tree held when an image was made from it: each entry's kind, mode, owner, size,
//! mtime and inode number, by path. Two snapshots of trees that share inodes (the OCI
//! tree cache hard-links unchanged files, and the applier never writes an inode in place)
//! say exactly which entries changed between them: see [`super::incremental`].

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// The kind of an entry, as ext4 stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    Symlink,
    Fifo,
    /// Sockets and device nodes: never in an image (the applier refuses devices), and
    /// never written incrementally.
    Other,
}

impl Kind {
    fn code(self) -> u8 {
        match self {
            Kind::Dir => b'd',
            Kind::File => b'f',
            Kind::Symlink => b'l',
            Kind::Fifo => b'p',
            Kind::Other => b'?',
        }
    }

    fn from_code(c: u8) -> Option<Self> {
        Some(match c {
            b'd' => Kind::Dir,
            b'f' => Kind::File,
            b'l' => Kind::Symlink,
            b'p' => Kind::Fifo,
            b'?' => Kind::Other,
            _ => return None,
        })
    }

    /// The `S_IFMT` bits of an inode of this kind.
    pub fn type_bits(self) -> u32 {
        match self {
            Kind::Dir => 0o040000,
            Kind::File => 0o100000,
            Kind::Symlink => 0o120000,
            Kind::Fifo => 0o010000,
            Kind::Other => 0,
        }
    }
}

/// One entry of a tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub kind: Kind,
    pub ino: u64,
    /// Permission bits, set-id and sticky bits included (no type bits).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: i64,
}

impl Entry {
    fn of(meta: &fs::Metadata) -> Self {
        let t = meta.file_type();
        let kind = if t.is_dir() {
            Kind::Dir
        } else if t.is_file() {
            Kind::File
        } else if t.is_symlink() {
            Kind::Symlink
        } else if t.is_fifo() {
            Kind::Fifo
        } else {
            Kind::Other
        };
        Entry {
            kind,
            ino: meta.ino(),
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            size: meta.len(),
            mtime: meta.mtime(),
        }
    }
}

/// Every entry below a tree's root, by path relative to it (bytes, `/`-separated). The
/// order sorts a directory before its entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub entries: BTreeMap<Vec<u8>, Entry>,
}

impl Snapshot {
    /// Walk `tree` (links are not followed).
    pub fn of(tree: &Path) -> io::Result<Self> {
        let mut entries = BTreeMap::new();
        let mut stack = vec![(tree.to_path_buf(), Vec::new())];
        while let Some((dir, rel)) = stack.pop() {
            for entry in fs::read_dir(&dir)? {
                let entry = entry?;
                let meta = entry.metadata()?;
                let mut path = rel.clone();
                if !path.is_empty() {
                    path.push(b'/');
                }
                path.extend_from_slice(entry.file_name().as_bytes());
                let e = Entry::of(&meta);
                if e.kind == Kind::Dir {
                    stack.push((entry.path(), path.clone()));
                }
                entries.insert(path, e);
            }
        }
        Ok(Snapshot { entries })
    }

    /// A compact binary form (a snapshot of a Debian-sized tree is ~0.5 MB).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * 64);
        out.extend_from_slice(MAGIC);
        for (path, e) in &self.entries {
            out.extend_from_slice(&(path.len() as u32).to_le_bytes());
            out.extend_from_slice(path);
            out.push(e.kind.code());
            out.extend_from_slice(&e.ino.to_le_bytes());
            out.extend_from_slice(&e.mode.to_le_bytes());
            out.extend_from_slice(&e.uid.to_le_bytes());
            out.extend_from_slice(&e.gid.to_le_bytes());
            out.extend_from_slice(&e.size.to_le_bytes());
            out.extend_from_slice(&e.mtime.to_le_bytes());
        }
        out
    }

    /// `None` for anything [`Self::encode`] did not write (a truncated or foreign file).
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let mut r = Cursor(bytes.strip_prefix(MAGIC)?);
        let mut entries = BTreeMap::new();
        while !r.0.is_empty() {
            let len = r.u32()? as usize;
            let path = r.take(len)?.to_vec();
            let kind = Kind::from_code(*r.take(1)?.first()?)?;
            let entry = Entry {
                kind,
                ino: r.u64()?,
                mode: r.u32()?,
                uid: r.u32()?,
                gid: r.u32()?,
                size: r.u64()?,
                mtime: r.u64()? as i64,
            };
            entries.insert(path, entry);
        }
        Some(Snapshot { entries })
    }
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, tail) = self.0.split_at_checked(n)?;
        self.0 = tail;
        Some(head)
    }

    fn u32(&mut self) -> Option<u32> {
        self.take(4)?.try_into().ok().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Option<u64> {
        self.take(8)?.try_into().ok().map(u64::from_le_bytes)
    }
}

const MAGIC: &[u8] = b"banger-snapshot-1\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_survives_its_encoding() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("a b")).unwrap();
        fs::write(dir.path().join("a b/f"), b"x").unwrap();
        std::os::unix::fs::symlink("f", dir.path().join("a b/l")).unwrap();
        let snap = Snapshot::of(dir.path()).unwrap();
        let keys: Vec<&[u8]> = snap.entries.keys().map(|k| k.as_slice()).collect();
        assert_eq!(keys, [&b"a b"[..], b"a b/f", b"a b/l"]);
        assert_eq!(snap.entries[&b"a b/l"[..]].kind, Kind::Symlink);
        let bytes = snap.encode();
        assert_eq!(Snapshot::decode(&bytes), Some(snap));
        assert_eq!(Snapshot::decode(&bytes[..bytes.len() - 1]), None);
        assert_eq!(Snapshot::decode(b"other"), None);
    }
}
