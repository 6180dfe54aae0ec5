//! The backing files of a qcow2 image: a sandboxed VMM opens them itself, so the jail must
//! hold them and the VMM must be able to read them.

use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// A chain longer than this is refused (banger makes chains of one).
const MAX_CHAIN: usize = 8;
/// QEMU limits backing file names to 1023 bytes.
const MAX_NAME: u32 = 1023;

/// Every file `image` is backed by, nearest first; empty for a raw file or a qcow2 image
/// without a backing file. Relative names are resolved against the image's directory,
/// as QEMU does.
pub fn backing_chain(image: &Path) -> io::Result<Vec<PathBuf>> {
    let mut chain = Vec::new();
    let mut at = image.to_path_buf();
    while let Some(next) = backing_file(&at)? {
        if chain.len() == MAX_CHAIN || chain.contains(&next) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{image:?} has a backing chain longer than {MAX_CHAIN} or a loop"),
            ));
        }
        chain.push(next.clone());
        at = next;
    }
    Ok(chain)
}

fn backing_file(image: &Path) -> io::Result<Option<PathBuf>> {
    let mut f = std::fs::File::open(image)?;
    let mut header = [0u8; 20];
    match f.read_exact(&mut header) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    if &header[..4] != b"QFI\xfb" {
        return Ok(None);
    }
    let offset = u64::from_be_bytes(header[8..16].try_into().unwrap_or_default());
    let len = u32::from_be_bytes(header[16..20].try_into().unwrap_or_default());
    if offset == 0 || len == 0 {
        return Ok(None);
    }
    if len > MAX_NAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{image:?} names a backing file of {len} bytes; QEMU allows {MAX_NAME}"),
        ));
    }
    f.seek(SeekFrom::Start(offset))?;
    let mut name = vec![0u8; len as usize];
    f.read_exact(&mut name)?;
    let name =
        PathBuf::from(<std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(name));
    Ok(Some(if name.is_absolute() {
        name
    } else {
        image.parent().unwrap_or(Path::new("/")).join(name)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qcow2_with_backing(path: &Path, backing: &str) {
        let mut h = vec![0u8; 512];
        h[..4].copy_from_slice(b"QFI\xfb");
        h[4..8].copy_from_slice(&3u32.to_be_bytes());
        h[8..16].copy_from_slice(&104u64.to_be_bytes());
        h[16..20].copy_from_slice(&(backing.len() as u32).to_be_bytes());
        h[104..104 + backing.len()].copy_from_slice(backing.as_bytes());
        std::fs::write(path, h).unwrap();
    }

    #[test]
    fn chains_relative_names_raw_files_and_loops() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("base.raw");
        std::fs::write(&raw, vec![0u8; 4096]).unwrap();
        assert!(backing_chain(&raw).unwrap().is_empty());
        let mid = dir.path().join("mid.qcow2");
        qcow2_with_backing(&mid, raw.to_str().unwrap());
        let top = dir.path().join("top.qcow2");
        qcow2_with_backing(&top, "mid.qcow2");
        assert_eq!(backing_chain(&top).unwrap(), vec![mid.clone(), raw]);
        let a = dir.path().join("a");
        qcow2_with_backing(&a, "a");
        assert!(backing_chain(&a).is_err());
    }

    /// The real tool agrees with the parser.
    #[test]
    fn an_overlay_made_by_qemu_img() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("base.raw");
        std::fs::write(&raw, vec![0u8; 1 << 20]).unwrap();
        let top = dir.path().join("top.qcow2");
        let status = std::process::Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
            .arg(&raw)
            .arg(&top)
            .status()
            .expect("qemu-img (qemu-utils) is installed by scripts/install-deps");
        assert!(status.success());
        assert_eq!(backing_chain(&top).unwrap(), vec![raw]);
    }
}
