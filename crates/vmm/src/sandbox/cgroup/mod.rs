//! Per-VM cgroups: the host memory and the tasks a VM's VMM (and its `virtiofsd`s) may
//! take, bounded by the kernel rather than by the VMM's own good behaviour.
//!
//! One interface, two backends ([`Layout`]):
//!
//! * **cgroup v2** — the daemon's own group, delegated to it (`Delegate=yes` in a system
//!   install). v2 allows no processes in a group whose children have controllers, so the
//!   daemon first moves itself into the leaf `daemon/`, then enables memory and pids for
//!   `banger-<instance>/`, where each VM gets `<vm-id>/`.
//! * **cgroup v1** — the memory and pids hierarchies of a hybrid host, writable by a root
//!   daemon: `banger-<instance>/<vm-id>/` below the daemon's own group in each.
//!
//! `<instance>` names one daemon (its state directory), so daemons sharing a cgroup never
//! sweep each other's VMs. A VMM is placed in its VM's group by its forked child before
//! `exec` ([`Placement::enter`]), so no guest code ever runs outside it; the group goes
//! with the VM's release ([`Cgroups::remove`]); a daemon restart sweeps empty groups of VMs
//! it does not know ([`Cgroups::sweep`]). Where neither backend is usable (an ordinary user
//! on a v1 host) VMs run without limits and `banger doctor` and `vm inspect` say why.

pub mod delegate;
mod detect;
pub mod read;

use std::ffi::CString;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use delegate::{CgroupDelegate, Delegate, DelegateError};
pub use detect::{Layout, detect, detect_this_process};

/// What is allowed on top of the guest's RAM by default: QEMU's own heap, its I/O buffers,
/// a `virtiofsd` per share, and page cache charged for the VM's files.
pub const DEFAULT_MEMORY_OVERHEAD_MIB: u64 = 256;
/// TCG's translation cache (QEMU's default `tb-size` is 1 GiB on 64-bit hosts); a VMM
/// that emulates fills it over time, so it is allowed on top under TCG.
pub const TCG_CACHE_MIB: u64 = 1024;
/// Tasks (threads count) per VM by default: QEMU's main, RCU and vCPU threads and its I/O
/// thread pool (up to 64), each `virtiofsd` and its threads, with room to spare.
pub const DEFAULT_PIDS_MAX: u64 = 512;

/// The leaf a v2 daemon moves itself into.
pub(crate) const DAEMON_LEAF: &str = "daemon";
/// How long an exiting VMM may keep its group busy before its leftover tasks are killed.
const REMOVE_WAIT: Duration = Duration::from_secs(3);

/// The `<instance>` of a daemon whose state lives in `state_dir`: 12 hex digits of its
/// path's FNV-1a hash, stable across restarts, distinct between daemons on one host.
pub fn instance_name(state_dir: &Path) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in state_dir.as_os_str().as_encoded_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{:012x}", hash >> 16)
}

/// What a VM's group allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of memory (RAM; page cache is reclaimed first).
    pub memory_max: u64,
    /// Tasks (processes and threads).
    pub pids_max: u64,
}

/// The configurable allowances on top of a VM's own resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overhead {
    pub memory_mib: u64,
    pub pids_max: u64,
}

impl Default for Overhead {
    fn default() -> Overhead {
        Overhead {
            memory_mib: DEFAULT_MEMORY_OVERHEAD_MIB,
            pids_max: DEFAULT_PIDS_MAX,
        }
    }
}

impl Limits {
    /// The limits of a VM with `memory_mib` of RAM: its RAM, the overhead, and TCG's
    /// translation cache when it is emulated.
    pub fn for_vm(memory_mib: u64, tcg: bool, overhead: Overhead) -> Limits {
        let mib = memory_mib
            .saturating_add(overhead.memory_mib)
            .saturating_add(if tcg { TCG_CACHE_MIB } else { 0 });
        Limits {
            memory_max: mib.saturating_mul(1 << 20),
            pids_max: overhead.pids_max,
        }
    }
}

/// A cgroup operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cannot {action} {path:?} (per-VM cgroup limits)")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "the root helper could not make or remove the VM's groups; check that \
         banger-helper.service runs (`systemctl status banger-helper.service`)"
    )]
    Delegated {
        #[source]
        source: DelegateError,
    },
    #[error(
        "VM {vm_id}'s cgroup {path:?} still holds tasks ({tasks}) after they were killed; \
         find them with `cat {path:?}/cgroup.procs`"
    )]
    Busy {
        vm_id: String,
        path: PathBuf,
        tasks: String,
    },
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> CgroupError + use<> {
    let path = path.to_path_buf();
    move |source| CgroupError::Io {
        action,
        path,
        source,
    }
}

/// One daemon's VM cgroups, set up ([`Cgroups::setup`]) and ready for VMs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroups {
    layout: Layout,
    /// The groups VM groups are made in (one per hierarchy).
    parents: Vec<PathBuf>,
}

/// Whether this daemon limits its VMs, decided once when it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupPolicy {
    /// No limits, and why (said by doctor and `vm inspect`).
    Unavailable { reason: String },
    Limit {
        cgroups: std::sync::Arc<Cgroups>,
        overhead: Overhead,
    },
    /// Groups made by a privileged delegate (the root helper on a v1 host, where this
    /// daemon cannot make them): a start is refused when the delegate fails.
    Delegated {
        delegate: Delegate,
        overhead: Overhead,
    },
}

impl CgroupPolicy {
    /// Detect and set up the backend this process can use; `instance` names the daemon.
    pub fn for_this_process(instance: &str, overhead: Overhead) -> CgroupPolicy {
        match Cgroups::detect_and_setup(instance) {
            Ok(cgroups) => CgroupPolicy::Limit {
                cgroups: std::sync::Arc::new(cgroups),
                overhead,
            },
            Err(reason) => CgroupPolicy::Unavailable { reason },
        }
    }
}

impl CgroupPolicy {
    /// VM `vm_id`'s group, with the limits of a VM of `memory_mib` (emulated under TCG when
    /// `tcg`); `None` when this daemon sets no limits.
    pub async fn make(
        &self,
        vm_id: &str,
        memory_mib: u64,
        tcg: bool,
    ) -> Result<Option<VmCgroup>, crate::error::VmmError> {
        let made = match self {
            CgroupPolicy::Unavailable { .. } => return Ok(None),
            CgroupPolicy::Limit { cgroups, overhead } => {
                cgroups.create(vm_id, Limits::for_vm(memory_mib, tcg, *overhead))
            }
            CgroupPolicy::Delegated { delegate, overhead } => {
                delegate
                    .make(vm_id, Limits::for_vm(memory_mib, tcg, *overhead))
                    .await
            }
        };
        let made = made.map_err(|source| crate::error::VmmError::Cgroup {
            vm_id: vm_id.to_owned(),
            source,
        })?;
        let limits = made.limits;
        tracing::info!(vm = %vm_id, dirs = ?made.dirs, ?limits, "VM cgroup ready");
        Ok(Some(made))
    }

    /// Remove VM `vm_id`'s group after a launch that failed; failures are logged (the
    /// daemon's next start sweeps what is left).
    pub async fn discard(&self, vm_id: &str) {
        let removed = match self {
            CgroupPolicy::Unavailable { .. } => return,
            CgroupPolicy::Limit { cgroups, .. } => cgroups.remove(vm_id).await,
            CgroupPolicy::Delegated { delegate, .. } => delegate.remove(vm_id).await,
        };
        if let Err(e) = removed {
            tracing::warn!(vm = %vm_id, error = %banger_system::error_chain(&e), "cannot remove the cgroup of a VM that failed to start");
        }
    }
}

/// The `cgroup.procs` files a VMM's child writes itself into before `exec`, prepared before
/// the fork.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    procs: Vec<CString>,
}

impl Placement {
    /// Entering the groups `dirs` (each one's `cgroup.procs`).
    pub fn for_dirs(dirs: &[PathBuf]) -> Result<Placement, CgroupError> {
        let procs = dirs
            .iter()
            .map(|dir| {
                CString::new(dir.join("cgroup.procs").as_os_str().as_encoded_bytes()).map_err(
                    |_| CgroupError::Io {
                        action: "use",
                        path: dir.clone(),
                        source: io::Error::from(io::ErrorKind::InvalidInput),
                    },
                )
            })
            .collect::<Result<_, _>>()?;
        Ok(Placement { procs })
    }

    /// Move the calling process into the VM's group in every hierarchy. Async-signal-safe
    /// (only `open`, `write` and `close` on strings prepared before the fork): run in the
    /// forked child, first, so everything it then does (namespaces, `exec`, the guest) is
    /// charged to the VM.
    pub fn enter(&self) -> io::Result<()> {
        for file in &self.procs {
            // "0" is the writing process itself, in v1 and v2 alike.
            super::child::write_file(file, c"0")?;
        }
        Ok(())
    }
}

/// Make `command`'s child a detached VM process: a session of its own (it outlives the
/// daemon and never gets the daemon's terminal signals) and, with `placement`, the VM's
/// cgroup entered before `exec`, so none of its code runs outside the group. For the VMM
/// processes spawned without the sandbox's own fork (Firecracker, virtiofsd).
pub fn detach_into(command: &mut tokio::process::Command, placement: Option<&Placement>) {
    let placement = placement.cloned();
    // SAFETY: setsid(2) is async-signal-safe and only changes the child's own session; it
    // runs in the forked child before exec and touches no memory shared with the parent.
    // `Placement::enter` is async-signal-safe (writes to paths prepared before the fork).
    unsafe {
        command.pre_exec(move || {
            if libc::setsid() == -1 {
                return Err(io::Error::last_os_error());
            }
            match &placement {
                Some(placement) => placement.enter(),
                None => Ok(()),
            }
        });
    }
}

/// A VM's group, made with its limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmCgroup {
    /// Its directory in each hierarchy.
    pub dirs: Vec<PathBuf>,
    pub limits: Limits,
    pub placement: Placement,
}

impl Cgroups {
    /// Detect the backend ([`detect_this_process`]) and prepare it; the reason when none is
    /// usable.
    pub fn detect_and_setup(instance: &str) -> Result<Cgroups, String> {
        let layout = detect_this_process()?;
        Cgroups::setup(layout, instance).map_err(|e| {
            format!(
                "cannot set up the VM cgroups: {}",
                banger_system::error_chain(&e)
            )
        })
    }

    /// Prepare `layout` (v2: the daemon moved into its leaf, memory and pids enabled below
    /// its group). The parent groups are made by the first VM's [`Cgroups::create`], so a
    /// daemon that never runs a VM leaves nothing in the hierarchy however it ends.
    /// Idempotent: a restarted daemon runs it again.
    pub fn setup(layout: Layout, instance: &str) -> Result<Cgroups, CgroupError> {
        let parents = layout.parents(instance);
        if let Layout::V2 { group, move_self } = &layout {
            if *move_self {
                let leaf = group.join(DAEMON_LEAF);
                mkdir(&leaf)?;
                let procs = leaf.join("cgroup.procs");
                std::fs::write(&procs, std::process::id().to_string())
                    .map_err(io_err("move the daemon into", &procs))?;
            }
            enable_controllers(group)?;
        }
        Ok(Cgroups { layout, parents })
    }

    /// Make the parent groups (again: [`Cgroups::retire`] removes them once empty), with
    /// memory and pids enabled for the VM groups on v2.
    fn ensure_parents(&self) -> Result<(), CgroupError> {
        for parent in &self.parents {
            mkdir(parent)?;
            if let Layout::V2 { .. } = self.layout {
                enable_controllers(parent)?;
            }
        }
        Ok(())
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// `v2 <dir>` or `v1 <memory dir>, <pids dir>`: where VM groups are made.
    pub fn describe(&self) -> String {
        let dirs: Vec<String> = self
            .parents
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        match self.layout {
            Layout::V2 { .. } => format!("cgroup v2 {}", dirs.join(", ")),
            Layout::V1 { .. } => format!("cgroup v1 {}", dirs.join(", ")),
        }
    }

    /// VM `vm_id`'s directory in each hierarchy.
    pub fn dirs(&self, vm_id: &str) -> Vec<PathBuf> {
        self.parents.iter().map(|p| p.join(vm_id)).collect()
    }

    /// Make VM `vm_id`'s group with `limits` (a group left from its last run is reused:
    /// the limits are written again).
    pub fn create(&self, vm_id: &str, limits: Limits) -> Result<VmCgroup, CgroupError> {
        self.ensure_parents()?;
        let dirs = self.dirs(vm_id);
        for dir in &dirs {
            mkdir(dir)?;
        }
        let placement = Placement::for_dirs(&dirs)?;
        let memory = limits.memory_max.to_string();
        let pids = limits.pids_max.to_string();
        match &self.layout {
            Layout::V2 { .. } => {
                write(&dirs[0].join("memory.max"), &memory)?;
                write(&dirs[0].join("pids.max"), &pids)?;
                // An OOM kill takes the whole VM (QEMU and its virtiofsds), not a piece
                // the others would hang on.
                write(&dirs[0].join("memory.oom.group"), "1")?;
            }
            Layout::V1 { .. } => {
                write(&dirs[0].join("memory.limit_in_bytes"), &memory)?;
                write(&dirs[1].join("pids.max"), &pids)?;
            }
        }
        Ok(VmCgroup {
            dirs,
            limits,
            placement,
        })
    }

    /// Remove VM `vm_id`'s group. Its VMM is gone; tasks left in the group belong to
    /// nothing else (a stray `virtiofsd`, a VMM still exiting) and are killed after
    /// [`REMOVE_WAIT`]. A group that does not exist is fine.
    pub async fn remove(&self, vm_id: &str) -> Result<(), CgroupError> {
        remove_dirs(vm_id, &self.dirs(vm_id)).await
    }

    /// Remove the empty groups of VMs `keep` does not name (leftovers of VMs that ended
    /// while no daemon ran, or of launches a dead daemon never finished); returns the VM
    /// ids removed. A group with tasks in it is left alone: it is not proven dead.
    pub fn sweep(&self, keep: &dyn Fn(&str) -> bool) -> Vec<String> {
        let mut removed = Vec::new();
        for parent in &self.parents {
            let Ok(entries) = std::fs::read_dir(parent) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
                if !is_dir || keep(&name) {
                    continue;
                }
                match std::fs::remove_dir(entry.path()) {
                    Ok(()) => removed.push(name),
                    Err(e) => tracing::warn!(
                        group = %entry.path().display(), error = %e,
                        "cannot remove a leftover VM cgroup"
                    ),
                }
            }
        }
        removed.sort();
        removed.dedup();
        removed
    }
}

impl Cgroups {
    /// Remove the parent groups if they hold no VM group any more (a daemon that exits);
    /// a parent with VMs in it stays, and is used again by the next start.
    pub fn retire(&self) {
        for parent in &self.parents {
            match std::fs::remove_dir(parent) {
                Ok(()) => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::EBUSY | libc::ENOENT)) => {}
                Err(e) => {
                    tracing::warn!(group = %parent.display(), error = %e, "cannot remove the VM cgroups' parent")
                }
            }
        }
    }
}

/// Remove the group directories `dirs` of VM `vm_id` ([`Cgroups::remove`]).
pub async fn remove_dirs(vm_id: &str, dirs: &[PathBuf]) -> Result<(), CgroupError> {
    for dir in dirs {
        let mut deadline = Instant::now() + REMOVE_WAIT;
        let mut killed = false;
        loop {
            match std::fs::remove_dir(dir) {
                Ok(()) => break,
                Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
                Err(e) => return Err(io_err("remove", dir)(e)),
            }
            let tasks = read::tasks(dir);
            if Instant::now() >= deadline {
                if killed {
                    return Err(CgroupError::Busy {
                        vm_id: vm_id.to_owned(),
                        path: dir.clone(),
                        tasks: tasks
                            .iter()
                            .map(u32::to_string)
                            .collect::<Vec<_>>()
                            .join(" "),
                    });
                }
                for pid in &tasks {
                    tracing::warn!(vm = %vm_id, pid, group = %dir.display(), "killing a task left in a VM's cgroup");
                    // SAFETY: kill has no memory effects; the pid was read from the VM's
                    // own group, which nothing but the VM's processes joins.
                    unsafe { libc::kill(*pid as libc::pid_t, libc::SIGKILL) };
                }
                killed = true;
                deadline = Instant::now() + REMOVE_WAIT;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(())
}

fn mkdir(dir: &Path) -> Result<(), CgroupError> {
    match std::fs::create_dir(dir) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(io_err("create", dir)(e)),
        _ => Ok(()),
    }
}

fn write(file: &Path, value: &str) -> Result<(), CgroupError> {
    std::fs::write(file, value).map_err(io_err("write", file))
}

/// v2: let `group`'s children have the memory and pids controllers.
fn enable_controllers(group: &Path) -> Result<(), CgroupError> {
    write(&group.join("cgroup.subtree_control"), "+memory +pids")
}

#[cfg(test)]
mod tests;
