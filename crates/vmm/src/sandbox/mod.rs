//! The VMM sandbox: what a VMM process may reach on the host.
//!
//! The guest is hostile, so the VMM is the last line: a device-emulation bug must not become
//! a host compromise. Layers, outermost first:
//!
//! * **seccomp** — QEMU's own `-sandbox` filter ([`QEMU_SANDBOX`]): no obsolete system calls,
//!   no setuid/setgid, no fork/exec, no scheduler or resource changes. Every VMM gets it.
//! * **`no_new_privs`** — set before `exec`, so nothing the VMM could exec gains privileges.
//! * **its own uid and gid** ([`ids`]) — when the daemon is root, the VMM never is: it
//!   runs as a per-VM id from a reserved range, with no capabilities and only the inputs
//!   group, and owns only its VM's files ([`owner`]). Under an ordinary user's daemon it runs
//!   as that user (who owns the VM anyway).
//! * **a cgroup** ([`cgroup`]) — memory and tasks bounded per VM, entered by the VMM's
//!   child before anything else, where the host lets this daemon make cgroups.
//! * **a jail** ([`jail`]) — when the daemon is root, a private mount namespace whose root
//!   holds only the VMM's binaries, a few devices, its VM directory and its read-only
//!   inputs.
//!
//! [`prepare`] does the file work and builds the [`Confinement`] the launcher runs between
//! fork and exec; [`posture`] reads back what a running VMM really has, for `banger doctor`
//! and the tests.

pub mod cgroup;
mod child;
pub mod ids;
pub mod jail;
pub mod owner;
pub mod posture;
pub mod qcow2;
pub mod spawn;

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub use child::{Confinement, Identity};
pub use ids::IdRange;
pub use owner::OwnershipError;

/// QEMU's `-sandbox` value: its seccomp filter with every optional deny turned on.
pub const QEMU_SANDBOX: &str =
    "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny";

/// The directory in a VM's directory the jail's tmpfs is mounted on (in the VMM's private
/// mount namespace only).
pub const JAIL_MOUNTPOINT: &str = ".jail";

/// The KVM device, which a VMM that uses it opens.
const KVM: &str = "/dev/kvm";

/// How VMM processes are confined; decided once per daemon from its privileges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxPolicy {
    /// No confinement at all: only for unit tests whose launcher is scripted.
    Off,
    /// The daemon is an ordinary user: the VMM runs as that user, with seccomp and
    /// `no_new_privs`.
    AsOwner,
    /// The daemon is root: seccomp, `no_new_privs`, a jail, and a per-VM uid/gid.
    DropFromRoot(IdRange),
}

impl SandboxPolicy {
    /// [`SandboxPolicy::DropFromRoot`] for a root process, else [`SandboxPolicy::AsOwner`].
    pub fn for_this_process(range: IdRange) -> SandboxPolicy {
        // SAFETY: geteuid has no preconditions and touches no memory.
        if unsafe { libc::geteuid() } == 0 {
            SandboxPolicy::DropFromRoot(range)
        } else {
            SandboxPolicy::AsOwner
        }
    }

    /// Whether the VMM's own seccomp filter is requested.
    pub fn seccomp(&self) -> bool {
        !matches!(self, SandboxPolicy::Off)
    }
}

/// Why a VMM could not be sandboxed; the VM is then not started.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot give VM {vm_id}'s files to its sandboxed VMM")]
    Ownership {
        vm_id: String,
        #[source]
        source: OwnershipError,
    },

    #[error("every id of the VMM id range {base}+{count} is in use; stop a VM or widen the range")]
    NoFreeId { base: u32, count: u32 },

    #[error(
        "VM {vm_id}'s drive {path:?} is writable but outside the VM's directory; a sandboxed \
         VMM writes only inside its own directory"
    )]
    WritableOutside { vm_id: String, path: PathBuf },

    #[error("cannot build VM {vm_id}'s VMM jail: {problem}")]
    Jail { vm_id: String, problem: String },

    #[error("cannot {action} {path:?} for VM {vm_id}'s sandbox")]
    Io {
        vm_id: String,
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What a sandboxed launch needs from the driver.
#[derive(Debug, Clone)]
pub struct SandboxRequest<'a> {
    pub vm_id: &'a str,
    /// The VMM binary, as it will be executed.
    pub binary: &'a Path,
    pub vm_dir: &'a Path,
    /// Files the VMM reads: kernel, initrd, read-only drives. Backing files of qcow2
    /// drives are found here.
    pub read_only: Vec<PathBuf>,
    /// Drives the VMM writes.
    pub writable: Vec<PathBuf>,
    /// Device nodes the VMM opens besides `/dev/kvm` (none for QEMU today: its TAPs are
    /// opened by the daemon and inherited as descriptors).
    pub devices: Vec<PathBuf>,
    /// The VMM opens `/dev/kvm`.
    pub kvm: bool,
    /// The VM uses QEMU's user-mode network (its DNS forwarder reads the host's resolvers).
    pub user_net: bool,
    /// The VM's cgroup, which the VMM enters before anything else; `None` without limits.
    pub cgroup: Option<cgroup::Placement>,
    /// The VMM opens an inherited descriptor by path (`/proc/self/fd/N`): the jail gets its
    /// own `/proc` entry ([`jail::Entry::Proc`]).
    pub proc_self: bool,
}

/// A prepared sandbox: hand [`Prepared::confinement`] to the launcher; keep the value
/// until the VMM is running (it holds the id reservation).
#[derive(Debug)]
pub struct Prepared {
    pub confinement: Arc<Confinement>,
    /// The uid and gid the VMM will run as, when it drops from root.
    pub identity: Option<Identity>,
    /// The jail is built in a user namespace (an ordinary user's VMM); a host that refuses
    /// it at run time (an LSM policy) gets the VMM without the jail.
    pub userns_jail: bool,
    _reservation: Option<Reservation>,
}

/// Ids handed out by this daemon whose VMM may not be running yet (`ids_in_use` cannot
/// see them): two VMs starting at once never get the same id.
static RESERVED: Mutex<Option<HashSet<u32>>> = Mutex::new(None);

#[derive(Debug)]
struct Reservation(u32);

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Ok(mut set) = RESERVED.lock()
            && let Some(set) = set.as_mut()
        {
            set.remove(&self.0);
        }
    }
}

fn reserve(range: IdRange, vm_id: &str) -> Result<Reservation, SandboxError> {
    let io = |source| SandboxError::Io {
        vm_id: vm_id.to_owned(),
        action: "list the ids live processes use in",
        path: "/proc".into(),
        source,
    };
    let mut in_use = ids::ids_in_use().map_err(io)?;
    // A poisoned lock only means another launch panicked; the set is still valid.
    let mut guard = RESERVED.lock().unwrap_or_else(|p| p.into_inner());
    let reserved = guard.get_or_insert_with(HashSet::new);
    in_use.extend(reserved.iter().copied());
    let id = range.pick(vm_id, &in_use).ok_or(SandboxError::NoFreeId {
        base: range.base(),
        count: range.count(),
    })?;
    reserved.insert(id);
    Ok(Reservation(id))
}

/// Prepare `req`'s VMM for launch under `policy`: under [`SandboxPolicy::DropFromRoot`],
/// choose the VM's ids, give it its directory, share its inputs, and plan its jail. `None`
/// under [`SandboxPolicy::Off`].
pub fn prepare(
    policy: SandboxPolicy,
    req: &SandboxRequest<'_>,
) -> Result<Option<Prepared>, SandboxError> {
    let vm_id = req.vm_id.to_owned();
    let range = match policy {
        SandboxPolicy::Off => return Ok(None),
        SandboxPolicy::AsOwner => return prepare_as_owner(req).map(Some),
        SandboxPolicy::DropFromRoot(range) => range,
    };

    let reservation = reserve(range, req.vm_id)?;
    let mut groups = vec![range.inputs_gid()];
    if req.kvm {
        let kvm = Path::new(KVM);
        let meta = std::fs::metadata(kvm).map_err(io(req, "inspect", kvm))?;
        if meta.gid() != 0 {
            groups.push(meta.gid());
        }
    }
    let identity = Identity {
        uid: reservation.0,
        gid: reservation.0,
        groups,
    };

    let inputs = jail_inputs(req)?;
    for file in &inputs.writable {
        if !file.starts_with(req.vm_dir) {
            return Err(SandboxError::WritableOutside {
                vm_id,
                path: file.clone(),
            });
        }
    }

    // The mountpoint first, so the walk below gives it away like everything else; it is
    // only a place to mount on, inside the VMM's own namespace.
    let mountpoint = make_mountpoint(req)?;
    owner::give_vm_dir(req.vm_dir, identity.uid, identity.gid, range.inputs_gid()).map_err(
        |source| SandboxError::Ownership {
            vm_id: vm_id.clone(),
            source,
        },
    )?;
    for file in inputs
        .read_only
        .iter()
        .filter(|f| !f.starts_with(req.vm_dir))
    {
        owner::share_input(file, range.inputs_gid()).map_err(|source| SandboxError::Ownership {
            vm_id: vm_id.clone(),
            source,
        })?;
    }

    let entries = plan_jail(req, &inputs)?;
    let confinement = Confinement::new(Some((&mountpoint, entries)), Some(identity.clone()))
        .and_then(|c| c.working_dir(req.vm_dir))
        .map_err(io(req, "prepare the jail of", req.vm_dir))?
        .in_cgroup(req.cgroup.clone());
    Ok(Some(Prepared {
        confinement: Arc::new(confinement),
        identity: Some(identity),
        userns_jail: false,
        _reservation: Some(reservation),
    }))
}

/// An ordinary user's VMM: it stays the owner; where unprivileged user namespaces are
/// allowed it gets the same jail, built inside a user namespace that maps only the owner's
/// own ids (so its access to every file is exactly the owner's).
fn prepare_as_owner(req: &SandboxRequest<'_>) -> Result<Prepared, SandboxError> {
    let unjailed = || -> Result<Prepared, SandboxError> {
        Ok(Prepared {
            confinement: Arc::new(
                Confinement::new(None, None)
                    .map_err(io(req, "prepare the confinement of", req.binary))?
                    .in_cgroup(req.cgroup.clone()),
            ),
            identity: None,
            userns_jail: false,
            _reservation: None,
        })
    };
    // SAFETY: geteuid has no preconditions and touches no memory.
    let root = unsafe { libc::geteuid() } == 0;
    if root || posture::user_namespaces().is_err() {
        return unjailed();
    }
    let entries = plan_jail(req, &jail_inputs(req)?)?;
    let mountpoint = make_mountpoint(req)?;
    let confinement = Confinement::in_user_namespace(&mountpoint, entries)
        .and_then(|c| c.working_dir(req.vm_dir))
        .map_err(io(req, "prepare the jail of", req.vm_dir))?
        .in_cgroup(req.cgroup.clone());
    Ok(Prepared {
        confinement: Arc::new(confinement),
        identity: None,
        userns_jail: true,
        _reservation: None,
    })
}

/// `.jail` in the VM directory: a real directory (a link or file there is replaced).
fn make_mountpoint(req: &SandboxRequest<'_>) -> Result<PathBuf, SandboxError> {
    let mountpoint = req.vm_dir.join(JAIL_MOUNTPOINT);
    match std::fs::symlink_metadata(&mountpoint) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => std::fs::remove_file(&mountpoint).map_err(io(req, "remove", &mountpoint))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(req, "inspect", &mountpoint)(e)),
    }
    if !mountpoint.exists() {
        std::fs::create_dir(&mountpoint).map_err(io(req, "create", &mountpoint))?;
    }
    Ok(mountpoint)
}

/// What the jail of `req`'s VMM holds, whoever it runs as: the inputs that exist (a missing
/// one is left out, so QEMU itself reports it by name, as unsandboxed QEMU would), the
/// backing files of their qcow2 images, and the devices it opens.
fn jail_inputs(req: &SandboxRequest<'_>) -> Result<jail::JailInputs, SandboxError> {
    let present = |p: &&PathBuf| std::fs::symlink_metadata(p).is_ok();
    let writable: Vec<PathBuf> = req.writable.iter().filter(present).cloned().collect();
    let mut read_only: Vec<PathBuf> = req.read_only.iter().filter(present).cloned().collect();
    let mut backing = Vec::new();
    for file in read_only.iter().chain(writable.iter()) {
        let chain =
            qcow2::backing_chain(file).map_err(io(req, "read the qcow2 header of", file))?;
        backing.extend(chain);
    }
    read_only.extend(backing);
    let mut devices = req.devices.clone();
    if req.kvm {
        devices.push(KVM.into());
    }
    Ok(jail::JailInputs {
        binary: req.binary.to_path_buf(),
        vm_dir: req.vm_dir.to_path_buf(),
        read_only,
        writable,
        devices,
        resolv_conf: req.user_net,
        proc_self: req.proc_self,
    })
}

/// The jail's entries for `inputs`, as this host has them.
fn plan_jail(
    req: &SandboxRequest<'_>,
    inputs: &jail::JailInputs,
) -> Result<Vec<jail::Entry>, SandboxError> {
    jail::plan(inputs, &jail::RealHost).map_err(|problem| SandboxError::Jail {
        vm_id: req.vm_id.to_owned(),
        problem,
    })
}

/// The error for a failed `action` on `path` while preparing `req`'s sandbox.
fn io(
    req: &SandboxRequest<'_>,
    action: &'static str,
    path: &Path,
) -> impl FnOnce(std::io::Error) -> SandboxError + use<> {
    let vm_id = req.vm_id.to_owned();
    let path = path.to_path_buf();
    move |source| SandboxError::Io {
        vm_id,
        action,
        path,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The inputs either policy jails: present files only, qcow2 backing files found (an
    /// image made by qemu-img itself), KVM among the devices.
    #[test]
    fn jail_inputs_keep_present_files_their_backing_files_and_kvm() {
        let dir = tempfile::tempdir().expect("tempdir");
        let vm_dir = dir.path().join("vm");
        std::fs::create_dir(&vm_dir).expect("vm dir");
        let kernel = dir.path().join("vmlinux");
        std::fs::write(&kernel, b"kernel").expect("kernel");
        let base = dir.path().join("base.raw");
        std::fs::write(&base, vec![0u8; 4096]).expect("base");
        let work = vm_dir.join("work.qcow2");
        let made = std::process::Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
            .arg(&base)
            .arg(&work)
            .status()
            .expect("qemu-img (apt install qemu-utils)");
        assert!(made.success());
        let req = SandboxRequest {
            vm_id: "0123456789ab",
            binary: Path::new("/usr/bin/qemu-system-x86_64"),
            vm_dir: &vm_dir,
            read_only: vec![kernel.clone(), dir.path().join("missing-initrd")],
            writable: vec![work.clone(), vm_dir.join("missing.ext4")],
            devices: vec![],
            kvm: true,
            user_net: true,
            cgroup: None,
            proc_self: false,
        };
        let inputs = jail_inputs(&req).expect("inputs");
        assert_eq!(inputs.read_only, vec![kernel, base]);
        assert_eq!(inputs.writable, vec![work]);
        assert_eq!(inputs.devices, vec![PathBuf::from(KVM)]);
        assert!(inputs.resolv_conf);
        assert_eq!(inputs.vm_dir, vm_dir);
    }
}
