//! Picking a Debian `linux-image-*` package apart in one pass: the bzImage, the
//! list of built-in modules, and every loadable module's `.modinfo`.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use crate::build::BuildError;
use crate::deb::{DebError, DebFile};
use crate::modules::{self, ModuleError, ModuleInfo, ModuleSet};

/// What the build needs from a kernel package.
#[derive(Debug)]
pub struct KernelPackage {
    /// `uname -r`, from `boot/vmlinuz-<release>`.
    pub release: String,
    pub bzimage: Vec<u8>,
    /// Every shipped module; the uncompressed files are under the `modules_dir`
    /// given to [`unpack_kernel_package`], at [`ModuleInfo::path`].
    pub modules: ModuleSet,
}

/// Where a path sits under `lib/modules/<release>/` (or `usr/lib/modules/…`):
/// the release and the path below it.
fn split_modules_path(path: &Path) -> Option<(String, PathBuf)> {
    let parts: Vec<&std::ffi::OsStr> = path
        .components()
        .map(|c| match c {
            Component::Normal(s) => Some(s),
            _ => None,
        })
        .collect::<Option<_>>()?;
    let start = match parts.as_slice() {
        [first, ..] if *first == "lib" => 1,
        [first, second, ..] if *first == "usr" && *second == "lib" => 2,
        _ => return None,
    };
    if parts.get(start).is_none_or(|p| *p != "modules") {
        return None;
    }
    let release = parts.get(start + 1)?.to_string_lossy().into_owned();
    let rest: PathBuf = parts.get(start + 2..)?.iter().collect();
    (!rest.as_os_str().is_empty()).then_some((release, rest))
}

/// Read the kernel package `deb`, writing the uncompressed modules under
/// `modules_dir` as it goes (the `.deb` is streamed once).
pub fn unpack_kernel_package(
    deb: &DebFile,
    package: &str,
    modules_dir: &Path,
) -> Result<KernelPackage, BuildError> {
    let mut bzimages: Vec<(String, Vec<u8>)> = Vec::new();
    let mut releases = BTreeSet::new();
    let mut builtin = String::new();
    let mut parsed: Vec<Result<ModuleInfo, ModuleError>> = Vec::new();

    deb.for_each_data_entry(|rel, entry| {
        if !entry.header().entry_type().is_file() {
            return Ok(());
        }
        if let Some(name) = rel.strip_prefix("boot").ok().and_then(|f| f.to_str()) {
            if let Some(release) = name.strip_prefix("vmlinuz-") {
                let mut bytes = Vec::new();
                entry.read_to_end(&mut bytes)?;
                bzimages.push((release.to_string(), bytes));
            }
            return Ok(());
        }
        let Some((release, inner)) = split_modules_path(rel) else {
            return Ok(());
        };
        if inner == Path::new("modules.builtin") {
            releases.insert(release);
            entry.read_to_string(&mut builtin)?;
        } else if modules::is_module_file(&inner) {
            releases.insert(release);
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes)?;
            let info = modules::decompress_module(&inner, bytes).and_then(|(path, elf)| {
                let info = ModuleInfo::parse(&path, &elf)?;
                Ok((info, elf))
            });
            match info {
                Ok((info, elf)) => {
                    let dest = modules_dir.join(&info.path);
                    if let Some(parent) = dest.parent() {
                        std::fs::create_dir_all(parent)?;
                    }
                    std::fs::write(&dest, elf)?;
                    parsed.push(Ok(info));
                }
                Err(e) => parsed.push(Err(e)),
            }
        }
        Ok(())
    })
    .map_err(|e: DebError| BuildError::Deb(e))?;

    let [(release, bzimage)] =
        <[_; 1]>::try_from(bzimages).map_err(|found| BuildError::NoKernel {
            package: package.to_string(),
            found: found.into_iter().map(|(r, _)| r).collect(),
        })?;
    releases.insert(release.clone());
    if releases.len() > 1 {
        return Err(BuildError::KernelReleaseMismatch {
            package: package.to_string(),
            releases: releases.into_iter().collect(),
        });
    }
    let mut set = ModuleSet::new();
    set.add_builtin_list(&builtin);
    for info in parsed {
        set.add(info?)?;
    }
    Ok(KernelPackage {
        release,
        bzimage,
        modules: set,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modules_paths_split_into_release_and_rest() {
        let (r, p) =
            split_modules_path(Path::new("lib/modules/6.1.0-1-cloud-amd64/kernel/a.ko")).unwrap();
        assert_eq!(
            (r.as_str(), p.as_path()),
            ("6.1.0-1-cloud-amd64", Path::new("kernel/a.ko"))
        );
        let (r, _) = split_modules_path(Path::new("usr/lib/modules/6.12/modules.builtin")).unwrap();
        assert_eq!(r, "6.12");
        assert!(split_modules_path(Path::new("lib/firmware/x")).is_none());
        assert!(split_modules_path(Path::new("lib/modules/6.1")).is_none());
    }
}
