//! Picking the kernel modules a guest needs and ordering them for loading.
//!
//! A kernel `.deb` ships no `modules.dep` (depmod runs at install time), so we
//! read each module's `.modinfo` (`name=`, `depends=`) and resolve the closure
//! ourselves. Modules listed in `modules.builtin` are part of the kernel and are
//! skipped. Names compare with `-` and `_` as equals, as the kernel does.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::elf;

/// What the guest loads: virtio transports (mmio for `-M microvm`/Firecracker,
/// pci for `-M pc`), disk, network, console/serial ports, entropy, vsock, and the
/// ACPI power button with the evdev interface the agent reads it through (so QMP
/// `system_powerdown` powers the guest off cleanly), and virtio-fs for shared host
/// directories. Debian's cloud kernel builds `button`, `evdev`, `fuse` and `virtiofs` as
/// modules; a kernel with them built in skips them.
pub const GUEST_MODULES: &[&str] = &[
    "virtio_ring",
    "virtio",
    "virtio_mmio",
    "virtio_pci",
    "virtio_blk",
    "failover",
    "net_failover",
    "virtio_net",
    "virtio_console",
    "virtio_rng",
    "vsock",
    "vmw_vsock_virtio_transport_common",
    "vmw_vsock_virtio_transport",
    "button",
    "evdev",
    // Shared host directories (virtio-fs); loaded only by a guest that mounts a share.
    "fuse",
    "virtiofs",
];

#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    /// A `.ko` could not be parsed.
    #[error("kernel module {path:?} is unreadable: {reason}")]
    BadModule { path: PathBuf, reason: String },
    /// Two files claim the same module name.
    #[error(
        "kernel module {name} is shipped twice ({first:?} and {second:?}); the kernel package is inconsistent"
    )]
    Duplicate {
        name: String,
        first: PathBuf,
        second: PathBuf,
    },
    /// A module is neither shipped nor built in.
    #[error(
        "kernel module {name} (needed by {required_by}) is neither built into this kernel nor shipped with it; use a kernel that provides it"
    )]
    Missing { name: String, required_by: String },
    /// Dependencies loop.
    #[error("kernel modules depend on each other in a cycle: {}", chain.join(" -> "))]
    Cycle { chain: Vec<String> },
}

/// `virtio-rng` and `virtio_rng` are the same module.
pub fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// One loadable module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleInfo {
    pub name: String,
    /// Path relative to `/lib/modules/KVER`, of the uncompressed `.ko`.
    pub path: PathBuf,
    /// Normalised names of the modules it needs loaded first.
    pub depends: Vec<String>,
}

impl ModuleInfo {
    /// Read `name=` and `depends=` from an uncompressed module. `path` is where it
    /// lives relative to `/lib/modules/KVER` (with any `.xz`/`.zst` suffix removed).
    pub fn parse(path: &Path, elf_bytes: &[u8]) -> Result<Self, ModuleError> {
        let strings = elf::modinfo_strings(elf_bytes).map_err(|reason| ModuleError::BadModule {
            path: path.to_path_buf(),
            reason,
        })?;
        let field = |key: &str| {
            strings
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        let name = match field("name") {
            Some(name) if !name.is_empty() => normalize(name),
            // Kernels before 5.x have no name= field; the file name is the name.
            _ => module_name_from_path(path),
        };
        let depends = field("depends")
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(normalize)
            .collect();
        Ok(Self {
            name,
            path: path.to_path_buf(),
            depends,
        })
    }
}

/// `kernel/drivers/char/hw_random/virtio-rng.ko.xz` → `virtio_rng`.
pub fn module_name_from_path(path: &Path) -> String {
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy())
        .unwrap_or_default();
    let base = file.split(".ko").next().unwrap_or(&file);
    normalize(base)
}

/// Whether `path` names a module file, possibly compressed.
pub fn is_module_file(path: &Path) -> bool {
    let name = path.to_string_lossy();
    [".ko", ".ko.xz", ".ko.zst", ".ko.gz"]
        .iter()
        .any(|ext| name.ends_with(ext))
}

/// Decompress a module if its name says it is compressed. Returns the bytes and
/// the path with the compression suffix removed.
pub fn decompress_module(path: &Path, bytes: Vec<u8>) -> Result<(PathBuf, Vec<u8>), ModuleError> {
    let text = path.to_string_lossy();
    let bad = |reason: String| ModuleError::BadModule {
        path: path.to_path_buf(),
        reason,
    };
    let (stem, out) = if let Some(stem) = text.strip_suffix(".xz") {
        let mut out = Vec::new();
        liblzma::read::XzDecoder::new(&bytes[..])
            .read_to_end(&mut out)
            .map_err(|e| bad(format!("xz: {e}")))?;
        (stem, out)
    } else if let Some(stem) = text.strip_suffix(".zst") {
        let mut out = Vec::new();
        ruzstd::StreamingDecoder::new(&bytes[..])
            .map_err(|e| bad(format!("zstd: {e}")))?
            .read_to_end(&mut out)
            .map_err(|e| bad(format!("zstd: {e}")))?;
        (stem, out)
    } else if let Some(stem) = text.strip_suffix(".gz") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_end(&mut out)
            .map_err(|e| bad(format!("gzip: {e}")))?;
        (stem, out)
    } else {
        return Ok((path.to_path_buf(), bytes));
    };
    Ok((PathBuf::from(stem), out))
}

/// Every module a kernel ships, plus the names built into it.
#[derive(Debug, Default, Clone)]
pub struct ModuleSet {
    modules: BTreeMap<String, ModuleInfo>,
    builtin: BTreeSet<String>,
}

impl ModuleSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, info: ModuleInfo) -> Result<(), ModuleError> {
        if let Some(existing) = self.modules.get(&info.name) {
            return Err(ModuleError::Duplicate {
                name: info.name.clone(),
                first: existing.path.clone(),
                second: info.path,
            });
        }
        self.modules.insert(info.name.clone(), info);
        Ok(())
    }

    /// Record the contents of `modules.builtin` (one module path per line).
    pub fn add_builtin_list(&mut self, text: &str) {
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            self.builtin.insert(module_name_from_path(Path::new(line)));
        }
    }

    pub fn is_builtin(&self, name: &str) -> bool {
        self.builtin.contains(&normalize(name))
    }

    pub fn get(&self, name: &str) -> Option<&ModuleInfo> {
        self.modules.get(&normalize(name))
    }

    pub fn len(&self) -> usize {
        self.modules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.modules.is_empty()
    }

    /// The modules to load for `wanted`, dependencies first, each once; built-in
    /// modules are left out.
    pub fn resolve(&self, wanted: &[&str]) -> Result<Vec<&ModuleInfo>, ModuleError> {
        let mut order = Vec::new();
        let mut done = BTreeSet::new();
        let mut stack = Vec::new();
        for name in wanted {
            self.visit(
                &normalize(name),
                "the guest",
                &mut stack,
                &mut done,
                &mut order,
            )?;
        }
        Ok(order)
    }

    fn visit<'a>(
        &'a self,
        name: &str,
        required_by: &str,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        order: &mut Vec<&'a ModuleInfo>,
    ) -> Result<(), ModuleError> {
        if done.contains(name) || self.builtin.contains(name) {
            return Ok(());
        }
        if let Some(start) = stack.iter().position(|n| n == name) {
            let mut chain = stack[start..].to_vec();
            chain.push(name.to_string());
            return Err(ModuleError::Cycle { chain });
        }
        let info = self.modules.get(name).ok_or_else(|| ModuleError::Missing {
            name: name.to_string(),
            required_by: required_by.to_string(),
        })?;
        stack.push(name.to_string());
        for dep in &info.depends {
            self.visit(dep, name, stack, done, order)?;
        }
        stack.pop();
        done.insert(name.to_string());
        order.push(info);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, deps: &[&str]) -> ModuleInfo {
        ModuleInfo {
            name: name.into(),
            path: PathBuf::from(format!("kernel/{name}.ko")),
            depends: deps.iter().map(|d| d.to_string()).collect(),
        }
    }

    #[test]
    fn names_from_paths_are_normalised() {
        assert_eq!(
            module_name_from_path(Path::new("kernel/x/virtio-rng.ko.xz")),
            "virtio_rng"
        );
        assert!(is_module_file(Path::new("a/b.ko.zst")));
        assert!(!is_module_file(Path::new("a/b.kol")));
    }

    #[test]
    fn resolve_orders_dependencies_first_and_dedups() {
        let mut set = ModuleSet::new();
        set.add(info("a", &["b", "c"])).unwrap();
        set.add(info("b", &["c"])).unwrap();
        set.add(info("c", &[])).unwrap();
        let names: Vec<_> = set
            .resolve(&["a", "c"])
            .unwrap()
            .iter()
            .map(|m| m.name.clone())
            .collect();
        assert_eq!(names, ["c", "b", "a"]);
    }
}
