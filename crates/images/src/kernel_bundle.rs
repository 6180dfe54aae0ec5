//! The kernel half of every recipe: Debian's kernel package, fetched and verified, turned
//! into the files an image boots (`vmlinux` with its PVH fact, `bzImage`) and the guest
//! modules in load order.
//!
//! Both recipes build on it: a change to what it puts into an image bumps both
//! `debian_image::RECIPE_REVISION` and `minimal::RECIPE_REVISION` (see [`crate::recipe`]).

use std::path::Path;

use banger_system::progress::Progress;

use crate::build::{BuildError, write_synced};
use crate::deb::DebFile;
use crate::debian::{Archive, Package, PackageIndex};
use crate::kernel;
use crate::kernel_package::{KernelPackage, unpack_kernel_package};
use crate::minimal::{BZIMAGE_FILE, KERNEL_FILE};
use crate::modules::{GUEST_MODULES, ModuleInfo};

/// A kernel package taken apart.
#[derive(Debug)]
pub(crate) struct KernelBundle {
    pub package: Package,
    pub kpkg: KernelPackage,
    /// The ELF carries the PVH entry note.
    pub has_pvh: bool,
    /// Compression of the bzImage payload.
    pub codec: &'static str,
}

impl KernelBundle {
    /// [`GUEST_MODULES`] and their dependencies, dependencies first.
    pub fn load_order(&self) -> Result<Vec<&ModuleInfo>, BuildError> {
        Ok(self.kpkg.modules.resolve(GUEST_MODULES)?)
    }
}

/// Resolve `metapackage`, fetch the kernel, write `vmlinux` and `bzImage` into `stage`
/// and every module (uncompressed) under `modules_dir`.
pub(crate) fn prepare(
    archive: &Archive<'_>,
    index: &PackageIndex,
    metapackage: &str,
    modules_dir: &Path,
    stage: &Path,
    progress: &dyn Progress,
) -> Result<KernelBundle, BuildError> {
    let package = archive.resolve_metapackage(index, metapackage)?.clone();
    progress.note(&format!(
        "{metapackage} is {} {}",
        package.name, package.version
    ));
    let deb = archive.fetch_deb(&package)?;
    progress.phase(&format!("unpack {}", package.name), None, None);
    let kpkg = unpack_kernel_package(&DebFile::open(&deb)?, &package.name, modules_dir)?;
    progress.note(&format!(
        "kernel {}: {} modules shipped",
        kpkg.release,
        kpkg.modules.len()
    ));
    progress.phase("extract vmlinux", None, None);
    let vmlinux = kernel::extract_vmlinux(&kpkg.bzimage).map_err(|source| BuildError::Kernel {
        package: package.name.clone(),
        source,
    })?;
    write_synced(&stage.join(KERNEL_FILE), &vmlinux.elf)?;
    write_synced(&stage.join(BZIMAGE_FILE), &kpkg.bzimage)?;
    Ok(KernelBundle {
        has_pvh: vmlinux.has_pvh,
        codec: vmlinux.codec.name(),
        package,
        kpkg,
    })
}
