//! Reading Debian binary packages (`.deb`) without `dpkg`.
//!
//! A `.deb` is an `ar` archive holding `debian-binary`, `control.tar.*` and
//! `data.tar.*`. We parse the `ar` container ourselves and stream `data.tar`
//! through the matching decompressor, so callers can pick out the few files they
//! need (a kernel, some modules, one binary) without unpacking the whole package.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

const AR_MAGIC: &[u8; 8] = b"!<arch>\n";
const AR_HEADER_LEN: usize = 60;

/// The reader handed to [`DebFile::for_each_data_entry`] callbacks.
pub type DataReader = Box<dyn Read>;

#[derive(Debug, thiserror::Error)]
pub enum DebError {
    /// The package file could not be opened or read.
    #[error("cannot read package {path:?}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The file is not a well-formed `.deb`.
    #[error("{path:?} is not a valid .deb package: {reason}; delete it so it is downloaded again")]
    NotDeb { path: PathBuf, reason: String },
    /// `data.tar` uses a compression we do not read.
    #[error(
        "{path:?} compresses its contents as {member}, which banger cannot read (supported: xz, zstd, gzip, none)"
    )]
    UnsupportedCompression { path: PathBuf, member: String },
    /// Decompressing or reading the tar stream failed.
    #[error("cannot read {member} in {path:?}")]
    Data {
        path: PathBuf,
        member: String,
        #[source]
        source: io::Error,
    },
    /// Handling (unpacking, reading) one entry failed.
    #[error("cannot extract {entry:?} from {path:?}")]
    Entry {
        path: PathBuf,
        entry: PathBuf,
        #[source]
        source: io::Error,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Xz,
    Zstd,
    Gzip,
}

#[derive(Debug, Clone)]
struct Member {
    name: String,
    offset: u64,
    size: u64,
}

/// An opened `.deb`: its `ar` members are indexed, nothing is decompressed yet.
#[derive(Debug)]
pub struct DebFile {
    path: PathBuf,
    data: Member,
    compression: Compression,
}

impl DebFile {
    /// Open `path` and index its members.
    pub fn open(path: &Path) -> Result<Self, DebError> {
        let io_err = |e| DebError::Io {
            path: path.to_path_buf(),
            source: e,
        };
        let not_deb = |reason: &str| DebError::NotDeb {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        };
        let mut file = File::open(path).map_err(io_err)?;
        let len = file.metadata().map_err(io_err)?.len();
        let mut magic = [0u8; 8];
        read_exact_or(&mut file, &mut magic, || not_deb("file is too short"))?.map_err(io_err)?;
        if &magic != AR_MAGIC {
            return Err(not_deb(
                "it does not start with the ar signature \"!<arch>\"",
            ));
        }

        let mut members = Vec::new();
        let mut offset = AR_MAGIC.len() as u64;
        while offset < len {
            let mut header = [0u8; AR_HEADER_LEN];
            file.seek(SeekFrom::Start(offset)).map_err(io_err)?;
            read_exact_or(&mut file, &mut header, || {
                not_deb("an ar member header is truncated")
            })?
            .map_err(io_err)?;
            if &header[58..60] != b"`\n" {
                return Err(not_deb("an ar member header is corrupt"));
            }
            let name = String::from_utf8_lossy(&header[0..16])
                .trim_end()
                .trim_end_matches('/')
                .to_string();
            let size = std::str::from_utf8(&header[48..58])
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| not_deb("an ar member size is not a number"))?;
            let data_offset = offset + AR_HEADER_LEN as u64;
            if data_offset.checked_add(size).is_none_or(|end| end > len) {
                return Err(not_deb(&format!(
                    "member {name} runs past the end of the file"
                )));
            }
            members.push(Member {
                name,
                offset: data_offset,
                size,
            });
            // Members are padded to an even offset.
            offset = data_offset + size + (size % 2);
        }

        let first = members
            .first()
            .ok_or_else(|| not_deb("it has no members"))?;
        if first.name != "debian-binary" {
            return Err(not_deb("its first member is not debian-binary"));
        }
        let mut version = vec![0u8; first.size.min(16) as usize];
        file.seek(SeekFrom::Start(first.offset)).map_err(io_err)?;
        file.read_exact(&mut version).map_err(io_err)?;
        if !version.starts_with(b"2.") {
            return Err(not_deb("debian-binary is not format 2.x"));
        }

        let data = members
            .into_iter()
            .find(|m| m.name.starts_with("data.tar"))
            .ok_or_else(|| not_deb("it has no data.tar member"))?;
        let compression = match data.name.as_str() {
            "data.tar" => Compression::None,
            "data.tar.xz" => Compression::Xz,
            "data.tar.zst" => Compression::Zstd,
            "data.tar.gz" => Compression::Gzip,
            other => {
                return Err(DebError::UnsupportedCompression {
                    path: path.to_path_buf(),
                    member: other.to_string(),
                });
            }
        };
        Ok(Self {
            path: path.to_path_buf(),
            data,
            compression,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// Call `f` for every entry of `data.tar`, in archive order, with the entry's
    /// path relative to the package root (no leading `./`).
    pub fn for_each_data_entry<F>(&self, mut f: F) -> Result<(), DebError>
    where
        F: FnMut(&Path, &mut tar::Entry<'_, DataReader>) -> io::Result<()>,
    {
        let data_err = |e| DebError::Data {
            path: self.path.clone(),
            member: self.data.name.clone(),
            source: e,
        };
        let mut archive = tar::Archive::new(self.data_reader().map_err(data_err)?);
        archive.set_preserve_permissions(true);
        archive.set_preserve_ownerships(false);
        archive.set_unpack_xattrs(false);
        for entry in archive.entries().map_err(data_err)? {
            let mut entry = entry.map_err(data_err)?;
            let raw = entry.path().map_err(data_err)?.into_owned();
            let Some(rel) = relative(&raw) else { continue };
            f(&rel, &mut entry).map_err(|e| DebError::Entry {
                path: self.path.clone(),
                entry: rel.clone(),
                source: e,
            })?;
        }
        Ok(())
    }

    /// Unpack every entry whose relative path satisfies `want` under `dest`.
    /// Returns the relative paths unpacked. Entries can never land outside `dest`.
    pub fn extract_matching(
        &self,
        dest: &Path,
        want: impl Fn(&Path) -> bool,
    ) -> Result<Vec<PathBuf>, DebError> {
        std::fs::create_dir_all(dest).map_err(|e| DebError::Entry {
            path: self.path.clone(),
            entry: dest.to_path_buf(),
            source: e,
        })?;
        let mut unpacked = Vec::new();
        self.for_each_data_entry(|rel, entry| {
            if want(rel) {
                entry.unpack_in(dest)?;
                unpacked.push(rel.to_path_buf());
            }
            Ok(())
        })?;
        Ok(unpacked)
    }

    /// Unpack the whole of `data.tar` under `dest`.
    pub fn extract_all(&self, dest: &Path) -> Result<Vec<PathBuf>, DebError> {
        self.extract_matching(dest, |_| true)
    }

    fn data_reader(&self) -> io::Result<DataReader> {
        let mut file = File::open(&self.path)?;
        file.seek(SeekFrom::Start(self.data.offset))?;
        let raw = BufReader::with_capacity(1 << 16, file.take(self.data.size));
        Ok(match self.compression {
            Compression::None => Box::new(raw),
            Compression::Xz => Box::new(liblzma::read::XzDecoder::new_multi_decoder(raw)),
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(raw)),
            Compression::Zstd => Box::new(
                ruzstd::StreamingDecoder::new(raw)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?,
            ),
        })
    }
}

/// `./usr/bin/x` → `usr/bin/x`; `.` or `./` (the root) → `None`.
fn relative(raw: &Path) -> Option<PathBuf> {
    let rel: PathBuf = raw
        .components()
        .filter(|c| matches!(c, Component::Normal(_) | Component::ParentDir))
        .collect();
    (!rel.as_os_str().is_empty()).then_some(rel)
}

/// `read_exact`, but an early end of file becomes the caller's error.
fn read_exact_or<E>(
    file: &mut File,
    buf: &mut [u8],
    on_eof: impl FnOnce() -> E,
) -> Result<io::Result<()>, E> {
    match file.read_exact(buf) {
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(on_eof()),
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_strips_dot_prefix() {
        assert_eq!(
            relative(Path::new("./boot/vmlinuz")),
            Some(PathBuf::from("boot/vmlinuz"))
        );
        assert_eq!(relative(Path::new("./")), None);
        assert_eq!(relative(Path::new(".")), None);
    }

    #[test]
    fn garbage_is_not_a_deb() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.deb");
        std::fs::write(&p, b"!<arch>\nshort").unwrap();
        assert!(matches!(DebFile::open(&p), Err(DebError::NotDeb { .. })));
        std::fs::write(&p, b"hello").unwrap();
        assert!(matches!(DebFile::open(&p), Err(DebError::NotDeb { .. })));
    }
}
