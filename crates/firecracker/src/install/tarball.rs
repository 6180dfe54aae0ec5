//! Taking the two binaries out of a release tarball (`release-vV-ARCH/firecracker-vV-ARCH`,
//! `release-vV-ARCH/jailer-vV-ARCH`, beside debug files and tools banger does not need).
//! Entries are matched by file name and read as data: nothing in the archive chooses where
//! anything is written.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::{InstallError, InstallRequest};

/// Largest binary accepted from the archive.
const MAX_BINARY_BYTES: u64 = 256 << 20;

pub(super) struct Binaries {
    pub firecracker: PathBuf,
    pub jailer: PathBuf,
}

pub(super) fn extract(
    tarball: &Path,
    req: &InstallRequest,
    scratch: &Path,
) -> Result<Binaries, InstallError> {
    let name = req.tarball_name();
    let bad = |source: std::io::Error| InstallError::BadTarball {
        tarball: name.clone(),
        source,
    };
    let wanted = [
        format!("firecracker-{}-{}", req.version, req.arch),
        format!("jailer-{}-{}", req.version, req.arch),
    ];
    let file = std::fs::File::open(tarball).map_err(|e| InstallError::io("open", tarball, e))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut found: [Option<PathBuf>; 2] = [None, None];
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path().map_err(bad)?.into_owned();
        let Some(file_name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(slot) = wanted.iter().position(|w| w == file_name) else {
            continue;
        };
        let dest = scratch.join(&wanted[slot]);
        let mut out =
            std::fs::File::create(&dest).map_err(|e| InstallError::io("create", &dest, e))?;
        let copied =
            std::io::copy(&mut (&mut entry).take(MAX_BINARY_BYTES + 1), &mut out).map_err(bad)?;
        if copied > MAX_BINARY_BYTES {
            return Err(bad(std::io::Error::other(format!(
                "{file_name} is larger than {MAX_BINARY_BYTES} bytes"
            ))));
        }
        found[slot] = Some(dest);
    }
    let [firecracker, jailer] = found;
    let missing = |slot: usize| InstallError::MissingBinary {
        tarball: name.clone(),
        binary: wanted[slot].clone(),
        arch: req.arch.clone(),
    };
    Ok(Binaries {
        firecracker: firecracker.ok_or_else(|| missing(0))?,
        jailer: jailer.ok_or_else(|| missing(1))?,
    })
}
