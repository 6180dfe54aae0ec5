//! The filesystem a sandboxed VMM sees: a plan of what to mount in its private root.
//!
//! Jailer-style: an empty tmpfs becomes the VMM's `/`, holding read-only binds of what the
//! VMM binary needs (`/usr`, the `/lib*` directories or their merged-usr links, the
//! dynamic loader's cache), the few device nodes it opens, the VM's own directory
//! (read-write) and its read-only inputs (kernel, initrd, base images), each at the same
//! path as on the host, so the command line needs no rewriting. Nothing else of the host's
//! filesystem is reachable. The plan is a pure value, built before the fork; [`super::child`]
//! carries it out between fork and exec.

use std::path::{Component, Path, PathBuf};

/// What the jail shows of the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// An empty directory of the tmpfs (the parents of everything below).
    Dir(PathBuf),
    /// A symbolic link, as the host has it (`/lib -> usr/lib` on merged-usr systems).
    Symlink { path: PathBuf, target: PathBuf },
    /// A bind mount of the host's `path` at the same path.
    Bind {
        path: PathBuf,
        dir: bool,
        writable: bool,
        /// Device nodes keep device access; everything else is mounted `nodev`.
        device: bool,
    },
    /// The VMM's own `/proc/<pid>` entry at `/proc/self` (read-only, nothing else of
    /// `/proc`), for a VMM that opens an inherited descriptor by path (`/proc/self/fd/N`).
    /// Bound rather than mounted: a procfs cannot be mounted in a user namespace without a
    /// pid namespace of its own, and would show other processes.
    Proc,
}

/// What the jail must contain besides the system parts.
#[derive(Debug, Clone, Default)]
pub struct JailInputs {
    /// The VMM binary (its directory is bound when it is not under a system directory).
    pub binary: PathBuf,
    /// The VM's directory: read-write.
    pub vm_dir: PathBuf,
    /// Read-only files: kernel, initrd, drives and base images outside the VM directory.
    pub read_only: Vec<PathBuf>,
    /// Read-write files outside the VM directory (drives the caller placed elsewhere).
    pub writable: Vec<PathBuf>,
    /// Device nodes the VMM opens (`/dev/kvm`, `/dev/net/tun`), when present on the host.
    pub devices: Vec<PathBuf>,
    /// The host's resolver configuration, for QEMU's user-mode network (slirp reads
    /// `/etc/resolv.conf` to forward the guest's DNS queries).
    pub resolv_conf: bool,
    /// The VMM opens inherited descriptors as `/proc/self/fd/N` ([`Entry::Proc`]).
    pub proc_self: bool,
}

/// Where the host's resolvers are named.
pub const RESOLV_CONF: &str = "/etc/resolv.conf";

/// System directories bound read-only when they are directories, recreated when they are
/// links, skipped when absent.
pub const SYSTEM_DIRS: &[&str] = &[
    "/usr", "/lib", "/lib64", "/lib32", "/libx32", "/bin", "/sbin",
];
/// Files the dynamic loader reads.
pub const SYSTEM_FILES: &[&str] = &["/etc/ld.so.cache"];
/// Device nodes every VMM may open.
pub const BASE_DEVICES: &[&str] = &["/dev/null", "/dev/zero", "/dev/urandom", "/dev/random"];

/// How the host looks at a path (a seam so the plan is testable without a host).
pub trait HostView {
    /// `None`: absent; `Some(Ok(target))`: a link; `Some(Err(is_dir))`: a file or directory.
    fn lookup(&self, path: &Path) -> Option<Result<PathBuf, bool>>;

    /// The path with every link resolved, when it exists.
    fn canonical(&self, path: &Path) -> Option<PathBuf>;
}

/// The real host.
#[derive(Debug, Clone, Copy)]
pub struct RealHost;

impl HostView for RealHost {
    fn lookup(&self, path: &Path) -> Option<Result<PathBuf, bool>> {
        let meta = std::fs::symlink_metadata(path).ok()?;
        if meta.file_type().is_symlink() {
            Some(std::fs::read_link(path).map_err(|_| false))
        } else {
            Some(Err(meta.is_dir()))
        }
    }

    fn canonical(&self, path: &Path) -> Option<PathBuf> {
        std::fs::canonicalize(path).ok()
    }
}

/// The ordered list of entries: parents before children, each path once.
pub fn plan(inputs: &JailInputs, host: &dyn HostView) -> Result<Vec<Entry>, String> {
    let mut plan = Plan::default();
    for dir in SYSTEM_DIRS {
        let path = Path::new(dir);
        match host.lookup(path) {
            None => {}
            Some(Ok(target)) => plan.symlink(path, &target)?,
            Some(Err(true)) => plan.bind(path, true, false, false)?,
            Some(Err(false)) => {}
        }
    }
    for file in SYSTEM_FILES {
        if matches!(host.lookup(Path::new(file)), Some(Err(false))) {
            plan.bind(Path::new(file), false, false, false)?;
        }
    }
    if inputs.resolv_conf {
        let path = Path::new(RESOLV_CONF);
        match (host.lookup(path), host.canonical(path)) {
            (Some(Err(false)), _) => plan.bind(path, false, false, false)?,
            // systemd-resolved and friends: the link as the host has it, and its target.
            (Some(Ok(target)), Some(real)) => {
                plan.symlink(path, &target)?;
                if !plan.covered(&real) {
                    plan.bind(&real, false, false, false)?;
                }
            }
            _ => {}
        }
    }
    for dev in BASE_DEVICES
        .iter()
        .map(Path::new)
        .chain(inputs.devices.iter().map(PathBuf::as_path))
    {
        if host.lookup(dev).is_some() {
            // A read-only mount still lets the VMM read and write the device itself.
            plan.bind(dev, false, false, true)?;
        }
    }
    let bin_dir = inputs
        .binary
        .parent()
        .ok_or_else(|| format!("the VMM binary {:?} has no directory", inputs.binary))?;
    if !plan.covered(bin_dir) {
        plan.bind(bin_dir, true, false, false)?;
    }
    plan.bind(&inputs.vm_dir, true, true, false)?;
    for file in &inputs.read_only {
        if !plan.covered(file) {
            plan.bind(file, false, false, false)?;
        }
    }
    for file in &inputs.writable {
        if !plan.covered(file) {
            plan.bind(file, false, true, false)?;
        }
    }
    if inputs.proc_self {
        plan.entries.push(Entry::Proc);
    }
    Ok(plan.entries)
}

#[derive(Default)]
struct Plan {
    entries: Vec<Entry>,
}

impl Plan {
    /// Whether `path` is already visible through a bound directory.
    fn covered(&self, path: &Path) -> bool {
        self.entries.iter().any(|e| match e {
            Entry::Bind {
                path: p, dir: true, ..
            } => path.starts_with(p),
            _ => false,
        })
    }

    fn check(&self, path: &Path) -> Result<(), String> {
        let clean = path.is_absolute()
            && path
                .components()
                .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
        if !clean || path == Path::new("/") {
            return Err(format!(
                "{path:?} is not a clean absolute path below /; the VMM jail binds only such paths"
            ));
        }
        // A mount inside a bound host directory would be created in the host's directory
        // itself, not in the jail's tmpfs.
        let inside = self.entries.iter().find_map(|e| match e {
            Entry::Bind {
                path: p, dir: true, ..
            } if path.starts_with(p) => Some(p),
            _ => None,
        });
        if let Some(outer) = inside {
            return Err(format!(
                "{path:?} lies inside the host's {outer:?}, which the VMM jail binds whole; \
                 keep banger's state directory out of system directories"
            ));
        }
        let under_link = self
            .entries
            .iter()
            .any(|e| matches!(e, Entry::Symlink { path: p, .. } if path.starts_with(p)));
        if under_link {
            return Err(format!(
                "{path:?} lies under a system link the VMM jail recreates; keep banger's state \
                 directory out of system directories"
            ));
        }
        Ok(())
    }

    fn parents(&mut self, path: &Path) {
        let mut at = PathBuf::from("/");
        let Some(parent) = path.parent() else { return };
        for c in parent.components().skip(1) {
            at.push(c);
            let exists = self
                .entries
                .iter()
                .any(|e| matches!(e, Entry::Dir(p) if *p == at));
            if !exists {
                self.entries.push(Entry::Dir(at.clone()));
            }
        }
    }

    fn bind(&mut self, path: &Path, dir: bool, writable: bool, device: bool) -> Result<(), String> {
        if self
            .entries
            .iter()
            .any(|e| matches!(e, Entry::Bind { path: p, .. } if p == path))
        {
            return Ok(());
        }
        self.check(path)?;
        if dir
            && self.entries.iter().any(|e| match e {
                Entry::Bind { path: p, .. } | Entry::Dir(p) => p.starts_with(path),
                Entry::Symlink { path: p, .. } => p.starts_with(path),
                Entry::Proc => Path::new("/proc").starts_with(path),
            })
        {
            return Err(format!(
                "{path:?} would hide paths the VMM jail already holds; keep banger's state \
                 directory out of system directories"
            ));
        }
        self.parents(path);
        self.entries.push(Entry::Bind {
            path: path.to_path_buf(),
            dir,
            writable,
            device,
        });
        Ok(())
    }

    fn symlink(&mut self, path: &Path, target: &Path) -> Result<(), String> {
        self.check(path)?;
        self.parents(path);
        self.entries.push(Entry::Symlink {
            path: path.to_path_buf(),
            target: target.to_path_buf(),
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct FakeHost(HashMap<&'static str, Result<&'static str, bool>>);

    impl HostView for FakeHost {
        fn lookup(&self, path: &Path) -> Option<Result<PathBuf, bool>> {
            self.0.get(path.to_str()?).map(|r| r.map(PathBuf::from))
        }

        fn canonical(&self, path: &Path) -> Option<PathBuf> {
            match self.lookup(path)? {
                Ok(target) => Some(path.parent()?.join(target)),
                Err(_) => Some(path.to_path_buf()),
            }
        }
    }

    fn merged_usr() -> FakeHost {
        FakeHost(HashMap::from([
            ("/usr", Err(true)),
            ("/lib", Ok("usr/lib")),
            ("/lib64", Ok("usr/lib64")),
            ("/bin", Ok("usr/bin")),
            ("/sbin", Ok("usr/sbin")),
            ("/etc/ld.so.cache", Err(false)),
            ("/dev/null", Err(false)),
            ("/dev/urandom", Err(false)),
            ("/dev/kvm", Err(false)),
        ]))
    }

    fn inputs() -> JailInputs {
        JailInputs {
            binary: "/usr/bin/qemu-system-x86_64".into(),
            vm_dir: "/var/lib/banger/vms/abc".into(),
            read_only: vec![
                "/var/lib/banger/images/debian/vmlinux".into(),
                "/var/lib/banger/images/debian/initrd".into(),
                "/var/lib/banger/vms/abc/root.base".into(),
            ],
            writable: vec![],
            devices: vec!["/dev/kvm".into(), "/dev/net/tun".into()],
            resolv_conf: false,
            proc_self: false,
        }
    }

    #[test]
    fn a_merged_usr_host_gets_links_binds_and_only_the_vms_files() {
        let plan = plan(&inputs(), &merged_usr()).unwrap();
        let binds: Vec<(&Path, bool)> = plan
            .iter()
            .filter_map(|e| match e {
                Entry::Bind { path, writable, .. } => Some((path.as_path(), *writable)),
                _ => None,
            })
            .collect();
        assert_eq!(
            binds,
            vec![
                (Path::new("/usr"), false),
                (Path::new("/etc/ld.so.cache"), false),
                (Path::new("/dev/null"), false),
                (Path::new("/dev/urandom"), false),
                (Path::new("/dev/kvm"), false),
                (Path::new("/var/lib/banger/vms/abc"), true),
                (Path::new("/var/lib/banger/images/debian/vmlinux"), false),
                (Path::new("/var/lib/banger/images/debian/initrd"), false),
            ],
            "absent devices are skipped, files inside the VM dir come with it"
        );
        assert!(plan.contains(&Entry::Symlink {
            path: "/lib".into(),
            target: "usr/lib".into()
        }));
        // Parents come before what they hold, once each.
        let pos = |want: &Entry| plan.iter().position(|e| e == want).unwrap();
        assert!(
            pos(&Entry::Dir("/var/lib/banger".into()))
                < pos(&Entry::Dir("/var/lib/banger/vms".into()))
        );
        let dirs = plan
            .iter()
            .filter(|e| matches!(e, Entry::Dir(p) if p == Path::new("/var")))
            .count();
        assert_eq!(dirs, 1);
        assert!(
            plan.iter()
                .all(|e| !matches!(e, Entry::Dir(p) if p.starts_with("/usr")))
        );
        let devices: Vec<_> = plan
            .iter()
            .filter(|e| matches!(e, Entry::Bind { device: true, .. }))
            .collect();
        assert_eq!(devices.len(), 3);
    }

    #[test]
    fn state_inside_a_bound_system_dir_or_relative_paths_are_refused() {
        let mut i = inputs();
        i.vm_dir = "/usr/local/var/banger/vms/abc".into();
        let err = plan(&i, &merged_usr()).unwrap_err();
        assert!(err.contains("inside the host's \"/usr\""), "{err}");

        let mut i = inputs();
        i.vm_dir = "/lib/banger/vms/abc".into();
        let err = plan(&i, &merged_usr()).unwrap_err();
        assert!(err.contains("system link"), "{err}");

        let mut i = inputs();
        i.read_only = vec!["/var/lib/banger/../../etc/shadow".into()];
        let err = plan(&i, &merged_usr()).unwrap_err();
        assert!(err.contains("clean absolute path"), "{err}");

        let mut i = inputs();
        i.vm_dir = "/".into();
        assert!(plan(&i, &merged_usr()).is_err());
    }

    #[test]
    fn a_binary_outside_the_system_dirs_brings_its_directory() {
        let mut i = inputs();
        i.binary = "/opt/qemu/bin/qemu-system-x86_64".into();
        let plan = plan(&i, &merged_usr()).unwrap();
        assert!(plan.iter().any(|e| matches!(e, Entry::Bind { path, dir: true, writable: false, .. } if path == Path::new("/opt/qemu/bin"))));
    }

    #[test]
    fn user_networking_brings_the_hosts_resolvers_through_their_link() {
        let mut host = merged_usr();
        host.0.insert(
            "/etc/resolv.conf",
            Ok("/run/systemd/resolve/stub-resolv.conf"),
        );
        let mut i = inputs();
        assert!(
            !plan(&i, &host).unwrap().iter().any(
                |e| matches!(e, Entry::Symlink { path, .. } if path == Path::new(RESOLV_CONF))
            )
        );
        i.resolv_conf = true;
        let p = plan(&i, &host).unwrap();
        assert!(p.contains(&Entry::Symlink {
            path: RESOLV_CONF.into(),
            target: "/run/systemd/resolve/stub-resolv.conf".into()
        }));
        assert!(p.contains(&Entry::Bind {
            path: "/run/systemd/resolve/stub-resolv.conf".into(),
            dir: false,
            writable: false,
            device: false
        }));
        host.0.insert("/etc/resolv.conf", Err(false));
        let p = plan(&i, &host).unwrap();
        assert!(
            p.iter()
                .any(|e| matches!(e, Entry::Bind { path, .. } if path == Path::new(RESOLV_CONF)))
        );
    }
}
