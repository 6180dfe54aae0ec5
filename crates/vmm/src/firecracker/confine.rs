//! Firecracker in the VMM sandbox ([`crate::sandbox`]), as QEMU is: under a root daemon its
//! own per-VM uid and gid, a private mount namespace holding only its binary, its devices,
//! its VM directory and its read-only inputs, `no_new_privs`, and the VM's cgroup; under an
//! ordinary user's daemon the same jail in a user namespace where the host allows one.
//! Firecracker's own seccomp filters stay on (banger never passes `--no-seccomp`).
//!
//! Unlike QEMU, Firecracker opens its TAPs itself, by name (`host_dev_name`), through
//! `/dev/net/tun`: the node is in its jail, and each TAP is given to its uid
//! (`TUNSETOWNER`) so it may attach without `CAP_NET_ADMIN`.

use std::path::{Path, PathBuf};

use super::FirecrackerConfig;
use super::payloads::FcPaths;
use crate::error::VmmError;
use crate::process::ProcessIdentity;
use crate::sandbox::cgroup::VmCgroup;
use crate::sandbox::{self, Prepared, SandboxPolicy, SandboxRequest};
use crate::spec::LaunchSpec;

/// The KVM device; a host without it runs no real Firecracker, but the jail is still built
/// (the VMM then says itself that it is missing).
const KVM: &str = "/dev/kvm";
/// The TUN/TAP clone device Firecracker attaches to its TAPs through.
const TUN: &str = "/dev/net/tun";

/// A prepared sandbox and the binary as the jail holds it.
#[derive(Debug)]
pub(super) struct Sandbox {
    pub binary: PathBuf,
    pub prepared: Prepared,
}

impl Sandbox {
    /// The uid the VMM must run as, when it drops from root.
    pub fn uid(&self) -> Option<u32> {
        self.prepared.identity.as_ref().map(|i| i.uid)
    }
}

/// Prepare the sandbox of `spec`'s Firecracker under `policy`; `None` when it is off. Runs
/// after the launcher made the VM directory's pipes and files, so they are given to the
/// VMM's uid with the rest.
pub(super) fn prepare(
    policy: SandboxPolicy,
    binary: &Path,
    spec: &LaunchSpec,
    cgroup: Option<&VmCgroup>,
) -> Result<Option<Sandbox>, VmmError> {
    if policy == SandboxPolicy::Off {
        return Ok(None);
    }
    let binary = sandbox::spawn::resolve_binary(binary)?;
    let (mut read_only, writable) = spec.sandbox_files(&spec.kernel);
    // A restore reads the snapshot's state and maps its memory file, read-only (`PUT
    // /snapshot/load`); both are outside the clone's directory.
    if let Some(files) = &spec.restore {
        read_only.push(files.state.clone());
        read_only.extend(files.memory.iter().cloned());
    }
    let devices = if spec.nics.is_empty() {
        Vec::new()
    } else {
        vec![PathBuf::from(TUN)]
    };
    let request = SandboxRequest {
        vm_id: &spec.vm_id,
        binary: &binary,
        vm_dir: &spec.vm_dir,
        read_only,
        writable,
        devices,
        kvm: Path::new(KVM).exists(),
        user_net: false,
        cgroup: cgroup.map(|c| c.placement.clone()),
        // Firecracker opens its files by path; it inherits no descriptor it must reopen
        // through /proc/self/fd (QEMU's restores do, for the sealed RAM copy).
        proc_self: false,
    };
    let prepared = sandbox::prepare(policy, &request).map_err(|source| VmmError::Sandbox {
        vm_id: spec.vm_id.clone(),
        source,
    })?;
    let Some(prepared) = prepared else {
        return Ok(None);
    };
    if let Some(identity) = &prepared.identity {
        for nic in &spec.nics {
            crate::validate::tap_name(&nic.tap).map_err(|problem| VmmError::InvalidSpec {
                vm_id: spec.vm_id.clone(),
                problem,
            })?;
            banger_net::tap::give_to(&nic.tap, identity.uid).map_err(|source| {
                VmmError::OpenTap {
                    vm_id: spec.vm_id.clone(),
                    tap: nic.tap.clone(),
                    source: Box::new(source),
                }
            })?;
        }
    }
    Ok(Some(Sandbox { binary, prepared }))
}

/// Spawn Firecracker in banger's own sandbox (this module), after the pipes and files exist
/// (the sandbox gives them to the VMM's uid).
pub(super) fn spawn(
    config: &FirecrackerConfig,
    spec: &LaunchSpec,
    paths: &FcPaths,
    serial_out: bool,
    cgroup: Option<&VmCgroup>,
) -> Result<ProcessIdentity, VmmError> {
    let sandbox = prepare(config.sandbox, &config.binary, spec, cgroup)?;
    // After the sandbox's walk of the VM directory, which refuses symlinks (`relocate`).
    super::relocate::link_drives(spec)?;
    let placement = cgroup.map(|c| &c.placement);
    let identity =
        match super::launch::spawn(config, spec, paths, serial_out, placement, sandbox.as_ref()) {
            // A host whose policy refuses what user namespaces normally allow (an LSM
            // restricting them) still runs the owner's Firecracker, unjailed; doctor then
            // shows its root is the host's.
            Err(e @ VmmError::Confine { .. })
                if sandbox.as_ref().is_some_and(|s| s.prepared.userns_jail) =>
            {
                tracing::warn!(
                    vm = %spec.vm_id,
                    error = %banger_system::error_chain(&e),
                    "cannot jail Firecracker in a user namespace; starting it without the jail"
                );
                super::launch::spawn(config, spec, paths, serial_out, placement, None)?
            }
            other => other?,
        };
    if let Some(uid) = sandbox.as_ref().and_then(Sandbox::uid) {
        crate::sandbox::spawn::check_identity(&spec.vm_id, identity.pid, identity.start_time, uid)?;
    }
    Ok(identity)
}
