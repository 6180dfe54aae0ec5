//! A writer for the cpio `newc` format, the only format the kernel unpacks as an
//! initramfs.
//!
//! Entries are collected first and written in one go so the output is
//! deterministic: sorted by path component (a directory always precedes its
//! contents), owner 0:0, mtime 0, inode numbers assigned in output order, and
//! directory link counts of `2 + subdirectories` like a real filesystem.
//! Missing parent directories are added with mode 0755.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFCHR: u32 = 0o020_000;
const TRAILER: &str = "TRAILER!!!";
/// newc stores sizes in 8 hex digits.
const MAX_FILE_SIZE: u64 = u32::MAX as u64;

#[derive(Debug, thiserror::Error)]
pub enum CpioError {
    /// A path that is not a plain relative path inside the archive.
    #[error(
        "cpio entry {path:?} is not a valid archive path: use a path like \"bin/sh\" without \"..\""
    )]
    BadPath { path: PathBuf },
    /// The same path added twice with different contents.
    #[error("cpio entry {path:?} was added twice")]
    Duplicate { path: PathBuf },
    /// A parent of an entry already exists as something that is not a directory.
    #[error(
        "cpio entry {path:?} needs {parent:?} to be a directory, but it was added as a file or symlink"
    )]
    ParentNotDir { path: PathBuf, parent: PathBuf },
    /// A file is larger than newc can describe.
    #[error("cpio entry {path:?} is {size} bytes; the newc format holds at most 4 GiB per file")]
    TooLarge { path: PathBuf, size: u64 },
    /// Reading a source file failed.
    #[error("cannot read {source_path:?} for cpio entry {path:?}")]
    ReadSource {
        path: PathBuf,
        source_path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A source file changed size while the archive was written.
    #[error("{source_path:?} changed size while being archived (expected {expected} bytes)")]
    SourceChanged { source_path: PathBuf, expected: u64 },
    /// Writing the archive failed.
    #[error("cannot write the cpio archive")]
    Write(#[source] io::Error),
}

#[derive(Debug, Clone)]
enum Body {
    Dir,
    Bytes(Vec<u8>),
    /// A file on disk, with the size it had when added.
    File(PathBuf, u64),
    Symlink(String),
    CharDevice {
        major: u32,
        minor: u32,
    },
}

#[derive(Debug, Clone)]
struct Entry {
    perm: u32,
    body: Body,
}

/// Collects entries, then writes a `newc` archive with [`CpioBuilder::write_to`].
#[derive(Debug, Default)]
pub struct CpioBuilder {
    entries: BTreeMap<PathBuf, Entry>,
}

impl CpioBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// A directory with permission bits `perm` (e.g. 0o755). Adding an existing
    /// directory again only updates its permissions.
    pub fn dir(&mut self, path: impl AsRef<Path>, perm: u32) -> Result<&mut Self, CpioError> {
        let path = clean(path.as_ref())?;
        if let Some(existing) = self.entries.get_mut(&path) {
            if matches!(existing.body, Body::Dir) {
                existing.perm = perm & 0o7777;
                return Ok(self);
            }
            return Err(CpioError::Duplicate { path });
        }
        self.insert(path, perm, Body::Dir)
    }

    /// A regular file with the given contents.
    pub fn file_bytes(
        &mut self,
        path: impl AsRef<Path>,
        perm: u32,
        bytes: impl Into<Vec<u8>>,
    ) -> Result<&mut Self, CpioError> {
        let path = clean(path.as_ref())?;
        self.insert(path, perm, Body::Bytes(bytes.into()))
    }

    /// A regular file copied from `source` when the archive is written.
    pub fn file_from(
        &mut self,
        path: impl AsRef<Path>,
        perm: u32,
        source: impl AsRef<Path>,
    ) -> Result<&mut Self, CpioError> {
        let path = clean(path.as_ref())?;
        let source = source.as_ref().to_path_buf();
        let size = std::fs::metadata(&source)
            .map_err(|e| CpioError::ReadSource {
                path: path.clone(),
                source_path: source.clone(),
                source: e,
            })?
            .len();
        if size > MAX_FILE_SIZE {
            return Err(CpioError::TooLarge { path, size });
        }
        self.insert(path, perm, Body::File(source, size))
    }

    /// A symbolic link pointing at `target` (stored verbatim; relative targets are
    /// resolved from the link's directory at use time).
    pub fn symlink(
        &mut self,
        path: impl AsRef<Path>,
        target: &str,
    ) -> Result<&mut Self, CpioError> {
        let path = clean(path.as_ref())?;
        self.insert(path, 0o777, Body::Symlink(target.to_string()))
    }

    /// A character device node, e.g. `dev/console` (5, 1).
    pub fn char_device(
        &mut self,
        path: impl AsRef<Path>,
        perm: u32,
        major: u32,
        minor: u32,
    ) -> Result<&mut Self, CpioError> {
        let path = clean(path.as_ref())?;
        self.insert(path, perm, Body::CharDevice { major, minor })
    }

    /// Whether an entry exists at `path`.
    pub fn contains(&self, path: impl AsRef<Path>) -> bool {
        clean(path.as_ref()).is_ok_and(|p| self.entries.contains_key(&p))
    }

    fn insert(&mut self, path: PathBuf, perm: u32, body: Body) -> Result<&mut Self, CpioError> {
        // Create (or check) every ancestor so the archive is self-contained.
        let mut ancestor = PathBuf::new();
        let parents: Vec<_> = path
            .parent()
            .map(|p| p.components().collect())
            .unwrap_or_default();
        for component in parents {
            ancestor.push(component);
            match self.entries.get(&ancestor) {
                Some(Entry {
                    body: Body::Dir, ..
                }) => {}
                Some(_) => {
                    return Err(CpioError::ParentNotDir {
                        path,
                        parent: ancestor,
                    });
                }
                None => {
                    self.entries.insert(
                        ancestor.clone(),
                        Entry {
                            perm: 0o755,
                            body: Body::Dir,
                        },
                    );
                }
            }
        }
        if self.entries.contains_key(&path) {
            return Err(CpioError::Duplicate { path });
        }
        self.entries.insert(
            path,
            Entry {
                perm: perm & 0o7777,
                body,
            },
        );
        Ok(self)
    }

    /// Write the archive (uncompressed) and its trailer. Returns the bytes written.
    pub fn write_to<W: Write>(&self, out: W) -> Result<u64, CpioError> {
        let mut w = CountingWriter {
            inner: out,
            count: 0,
        };
        let subdirs = self.subdir_counts();
        for (ino, (path, entry)) in (1u32..).zip(&self.entries) {
            let name = path.to_string_lossy();
            let header = |mode: u32, nlink: u32, size: u64, rdev: (u32, u32)| Header {
                ino,
                mode,
                nlink,
                size,
                rdev,
                name: &name,
            };
            match &entry.body {
                Body::Dir => {
                    let nlink = 2 + subdirs.get(path.as_path()).copied().unwrap_or(0);
                    write_header(&mut w, &header(S_IFDIR | entry.perm, nlink, 0, (0, 0)))?;
                }
                Body::Bytes(bytes) => {
                    let size = bytes.len() as u64;
                    if size > MAX_FILE_SIZE {
                        return Err(CpioError::TooLarge {
                            path: path.clone(),
                            size,
                        });
                    }
                    write_header(&mut w, &header(S_IFREG | entry.perm, 1, size, (0, 0)))?;
                    w.write_all(bytes).map_err(CpioError::Write)?;
                    pad(&mut w)?;
                }
                Body::File(source, size) => {
                    write_header(&mut w, &header(S_IFREG | entry.perm, 1, *size, (0, 0)))?;
                    copy_exact(path, source, *size, &mut w)?;
                    pad(&mut w)?;
                }
                Body::Symlink(target) => {
                    let size = target.len() as u64;
                    write_header(&mut w, &header(S_IFLNK | 0o777, 1, size, (0, 0)))?;
                    w.write_all(target.as_bytes()).map_err(CpioError::Write)?;
                    pad(&mut w)?;
                }
                Body::CharDevice { major, minor } => {
                    write_header(
                        &mut w,
                        &header(S_IFCHR | entry.perm, 1, 0, (*major, *minor)),
                    )?;
                }
            }
        }
        let trailer = Header {
            ino: 0,
            mode: 0,
            nlink: 1,
            size: 0,
            rdev: (0, 0),
            name: TRAILER,
        };
        write_header(&mut w, &trailer)?;
        w.flush().map_err(CpioError::Write)?;
        Ok(w.count)
    }

    fn subdir_counts(&self) -> BTreeMap<&Path, u32> {
        let mut counts = BTreeMap::new();
        for (path, entry) in &self.entries {
            if let (Body::Dir, Some(parent)) = (&entry.body, path.parent()) {
                *counts.entry(parent).or_insert(0) += 1;
            }
        }
        counts
    }
}

struct Header<'a> {
    ino: u32,
    mode: u32,
    nlink: u32,
    size: u64,
    rdev: (u32, u32),
    name: &'a str,
}

fn write_header<W: Write>(w: &mut CountingWriter<W>, h: &Header<'_>) -> Result<(), CpioError> {
    let namesize = h.name.len() + 1;
    let text = format!(
        "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
        h.ino, h.mode, 0, 0, h.nlink, 0, h.size, 0, 0, h.rdev.0, h.rdev.1, namesize, 0
    );
    w.write_all(text.as_bytes()).map_err(CpioError::Write)?;
    w.write_all(h.name.as_bytes()).map_err(CpioError::Write)?;
    w.write_all(&[0]).map_err(CpioError::Write)?;
    pad(w)
}

/// Pad to the next multiple of 4 bytes, as newc requires after names and data.
fn pad<W: Write>(w: &mut CountingWriter<W>) -> Result<(), CpioError> {
    let rem = (w.count % 4) as usize;
    if rem != 0 {
        w.write_all(&[0u8; 3][..4 - rem])
            .map_err(CpioError::Write)?;
    }
    Ok(())
}

fn copy_exact<W: Write>(
    path: &Path,
    source: &Path,
    size: u64,
    w: &mut CountingWriter<W>,
) -> Result<(), CpioError> {
    let read_err = |e| CpioError::ReadSource {
        path: path.to_path_buf(),
        source_path: source.to_path_buf(),
        source: e,
    };
    let file = File::open(source).map_err(read_err)?;
    // Read one byte more than expected so growth is detected too.
    let copied = io::copy(&mut file.take(size + 1), w).map_err(|e| match e.kind() {
        io::ErrorKind::WriteZero | io::ErrorKind::BrokenPipe => CpioError::Write(e),
        _ => read_err(e),
    })?;
    if copied != size {
        return Err(CpioError::SourceChanged {
            source_path: source.to_path_buf(),
            expected: size,
        });
    }
    Ok(())
}

/// Normalise an archive path: strip a leading `/` or `./`, reject `..` and empty.
fn clean(path: &Path) -> Result<PathBuf, CpioError> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(c) => out.push(c),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(CpioError::BadPath {
                    path: path.to_path_buf(),
                });
            }
        }
    }
    if out.as_os_str().is_empty() {
        return Err(CpioError::BadPath {
            path: path.to_path_buf(),
        });
    }
    Ok(out)
}

struct CountingWriter<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_aligned_and_parents_come_first() {
        let mut b = CpioBuilder::new();
        b.file_bytes("a/b/c", 0o644, b"hello".to_vec()).unwrap();
        b.symlink("a-link", "a/b/c").unwrap();
        let mut out = Vec::new();
        let n = b.write_to(&mut out).unwrap();
        assert_eq!(n as usize, out.len());
        assert_eq!(out.len() % 4, 0);
        let text = String::from_utf8_lossy(&out);
        let pos = |s: &str| text.find(s).unwrap();
        assert!(pos("a\0") < pos("a/b\0"));
        assert!(pos("a/b\0") < pos("a/b/c\0"));
        assert!(text.ends_with("TRAILER!!!\0\0\0\0"));
    }

    #[test]
    fn bad_paths_and_conflicts_are_errors() {
        let mut b = CpioBuilder::new();
        assert!(matches!(
            b.dir("../x", 0o755),
            Err(CpioError::BadPath { .. })
        ));
        assert!(matches!(b.dir("/", 0o755), Err(CpioError::BadPath { .. })));
        b.file_bytes("f", 0o644, Vec::new()).unwrap();
        assert!(matches!(
            b.file_bytes("f", 0o644, Vec::new()),
            Err(CpioError::Duplicate { .. })
        ));
        assert!(matches!(
            b.file_bytes("f/g", 0o644, Vec::new()),
            Err(CpioError::ParentNotDir { .. })
        ));
        assert!(matches!(
            b.dir("f", 0o755),
            Err(CpioError::Duplicate { .. })
        ));
    }

    #[test]
    fn directory_link_count_counts_subdirectories() {
        let mut b = CpioBuilder::new();
        b.dir("d/x", 0o755).unwrap();
        b.dir("d/y", 0o755).unwrap();
        b.file_bytes("d/f", 0o644, Vec::new()).unwrap();
        let mut out = Vec::new();
        b.write_to(&mut out).unwrap();
        // First entry is "d": nlink field is the 5th 8-digit field after the magic.
        let nlink = &out[6 + 8 * 4..6 + 8 * 5];
        assert_eq!(nlink, b"00000004");
    }
}
