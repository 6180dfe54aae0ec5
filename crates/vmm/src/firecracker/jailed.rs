//! Firecracker started through its `jailer` by a privileged launcher (in a system install,
//! the root helper's `launch_jailed` verb; docs/privileges.md), instead of spawned by the
//! daemon.
//!
//! The daemon still makes the VM directory's pipes and files; the launcher hard-links them,
//! the kernel and the initrd into the chroot under fixed names, and the boot plan names
//! them by their paths inside the chroot. The drives are linked at their relocatable names
//! `fc-drives/<id>` and the vsock socket is `firecracker.vsock`, both relative to the
//! jailed Firecracker's working directory — the chroot's root — exactly as an unjailed
//! Firecracker names them in the VM directory ([`super::relocate`]): a snapshot of a jailed
//! VM records those names, and a restore through the jailer (of any VM's snapshot) finds
//! the clone's own disks and socket under them in the clone's chroot. The snapshot's state
//! and memory files are linked in too, and `PUT /snapshot/load` names them there.
//!
//! What comes back — the host pid (checked by the launcher to run as the owner), the API
//! socket's host path — is all the daemon needs to drive, stop and kill it as the owner,
//! like a Firecracker it spawned.
//! The jail goes with the VM's one release ([`super::FirecrackerDriver::kill`]).

use std::path::{Path, PathBuf};

use banger_helper_proto::{
    CleanPath, ConsoleOn, JAIL_API_SOCKET, JAIL_INITRD, JAIL_KERNEL, JAIL_STDERR, JAIL_VSOCK,
    JailFile, JailFileName, JailId, JailLaunch, JailLimits, Jailed,
};

use std::sync::Arc;

use banger_firecracker::SemVer;

use super::FirecrackerConfig;
use super::api::ApiCall;
use super::payloads::{FcPaths, PlanInput, boot_plan};
use super::relocate::{self, LayoutNic};
use crate::error::VmmError;
use crate::process::ProcessIdentity;
use crate::sandbox::cgroup::{Limits, Overhead};
use crate::spec::{LaunchSpec, SnapshotFiles};

/// The snapshot's files in a restoring jail's chroot (named by the helper's protocol, which
/// seals them).
pub use banger_helper_proto::{JAIL_SNAPSHOT_MEMORY, JAIL_SNAPSHOT_STATE};

/// An error of the launcher, kept whole as the cause.
pub type LaunchError = Box<dyn std::error::Error + Send + Sync>;

/// Who runs the jailer: the root helper in a system install.
pub trait JailLauncher: Send + Sync {
    /// Start `launch`'s Firecracker in its jail; `None` when this launcher does not jail
    /// (a helper started without a jailer): the driver then spawns Firecracker in banger's
    /// own sandbox.
    fn launch(&self, launch: &JailLaunch) -> Result<Option<Jailed>, LaunchError>;
    /// Remove VM `id`'s jail once its Firecracker is gone (nothing to do is not an error).
    fn release(&self, id: &JailId) -> Result<(), LaunchError>;
    /// Where VM `id`'s chroot is on the host, when this launcher knows its layout: a
    /// process rooted there is that VM's Firecracker, whatever its binary is called (the
    /// jailer runs a copy inside the chroot).
    fn chroot(&self, _id: &JailId) -> Option<PathBuf> {
        None
    }
}

/// A launch through the jailer, as the boot plan and the launcher see it.
pub(super) struct JailView {
    /// `spec` with the kernel, initrd and drives at their chroot paths.
    pub spec: LaunchSpec,
    /// The paths the boot plan names, inside the chroot.
    pub paths: FcPaths,
    /// The snapshot a restore loads, at its chroot paths.
    pub restore: Option<SnapshotFiles>,
    pub launch: JailLaunch,
}

fn invalid(spec: &LaunchSpec, problem: String) -> VmmError {
    VmmError::InvalidSpec {
        vm_id: spec.vm_id.clone(),
        problem,
    }
}

/// The jail id of VM `vm_id`.
pub(super) fn jail_id(vm_id: &str) -> Result<JailId, String> {
    JailId::new(vm_id).map_err(|e| e.to_string())
}

/// Plan `spec`'s jail: which host file goes where, and the spec and paths inside it.
pub(super) fn view(
    spec: &LaunchSpec,
    host: &FcPaths,
    console_on: ConsoleOn,
    memory_limit: Option<u64>,
    pids_limit: u32,
) -> Result<JailView, VmmError> {
    let bad = |e: banger_helper_proto::JailArgError| invalid(spec, e.to_string());
    let mut files = Vec::new();
    let mut add = |name: &str, source: &Path| -> Result<PathBuf, VmmError> {
        files.push(JailFile {
            name: JailFileName::new(name).map_err(bad)?,
            source: CleanPath::new(source).map_err(bad)?,
        });
        Ok(Path::new("/").join(name))
    };
    let mut inside = spec.clone();
    inside.kernel = add(JAIL_KERNEL, &spec.kernel)?;
    if let Some(initrd) = &spec.initrd {
        inside.initrd = Some(add(JAIL_INITRD, initrd)?);
    }
    for (drive, host_drive) in inside.drives.iter_mut().zip(&spec.drives) {
        drive.path = add(&relocate::drive_link(&drive.id), &host_drive.path)?;
    }
    let restore = match &spec.restore {
        None => None,
        Some(files) => Some(SnapshotFiles {
            state: add(JAIL_SNAPSHOT_STATE, &files.state)?,
            memory: files
                .memory
                .as_ref()
                .map(|m| add(JAIL_SNAPSHOT_MEMORY, m))
                .transpose()?,
        }),
    };
    inside.restore = restore.clone();
    let jail = FcPaths {
        api_socket: Path::new("/").join(JAIL_API_SOCKET),
        vsock: Path::new("/").join(JAIL_VSOCK),
        log: host.log.clone(),
        log_fifo: add("firecracker.log.fifo", &host.log_fifo)?,
        metrics: add("firecracker.metrics", &host.metrics)?,
        stderr: host.stderr.clone(),
        launch_record: host.launch_record.clone(),
        console_fifo: add("console.fifo", &host.console_fifo)?,
    };
    let limits = memory_limit
        .map(|m| JailLimits::new(m, pids_limit))
        .transpose()
        .map_err(bad)?;
    let console = Some((JailFileName::new("console.fifo").map_err(bad)?, console_on));
    let launch = JailLaunch::new(
        JailId::new(&spec.vm_id).map_err(bad)?,
        files,
        console,
        limits,
    )
    .map_err(bad)?;
    Ok(JailView {
        spec: inside,
        paths: jail,
        restore,
        launch,
    })
}

/// The host-side paths of a jailed Firecracker: the VM directory's, with the API and vsock
/// sockets where Firecracker made them, in its chroot.
pub(super) fn host_paths(host: &FcPaths, jailed: &Jailed) -> FcPaths {
    FcPaths {
        api_socket: jailed.api_socket.clone(),
        vsock: jailed.root.join(JAIL_VSOCK),
        stderr: jailed.root.join(JAIL_STDERR),
        ..host.clone()
    }
}

/// The calls that configure a jailed Firecracker: a boot's, or with `overrides` a restore's
/// of `spec.restore`, every file named by its chroot path; the drives and the vsock keep
/// the plan's relocatable names (see above).
fn plan(
    config: &FirecrackerConfig,
    spec: &LaunchSpec,
    version: &SemVer,
    view: &JailView,
    overrides: &[LayoutNic],
) -> Result<Vec<ApiCall>, VmmError> {
    let input = PlanInput {
        spec: &view.spec,
        version,
        paths: &view.paths,
        guest_cid: config.guest_cid,
        agent_port: config.agent_port,
    };
    match (&view.restore, &spec.restore) {
        (Some(inside), Some(host)) => {
            relocate::restore_plan(&input, inside, overrides).map_err(|reason| {
                VmmError::RestoreFailed {
                    vm_id: spec.vm_id.clone(),
                    state: host.state.clone(),
                    reason,
                }
            })
        }
        _ => boot_plan(&input).map_err(|problem| VmmError::InvalidSpec {
            vm_id: spec.vm_id.clone(),
            problem,
        }),
    }
}

/// Start Firecracker through its jailer by `launcher`: the plan (a boot's, or with
/// `overrides` a restore's of `spec.restore`) names the files by their chroot paths; the
/// host paths of its sockets come back.
pub(super) async fn start(
    config: &FirecrackerConfig,
    spec: &LaunchSpec,
    version: &SemVer,
    paths: &FcPaths,
    launcher: &Arc<dyn JailLauncher>,
    overrides: &[LayoutNic],
) -> Result<Option<(ProcessIdentity, FcPaths, Vec<ApiCall>)>, VmmError> {
    let console_on = if relocate::serial_out(version, spec.restore.is_some()) {
        ConsoleOn::Stdin
    } else {
        ConsoleOn::Stdout
    };
    let limits = Limits::for_vm(spec.memory_mib, false, Overhead::default());
    let pids = u32::try_from(limits.pids_max).unwrap_or(u32::MAX);
    let view = view(spec, paths, console_on, Some(limits.memory_max), pids)?;
    let plan = plan(config, spec, version, &view, overrides)?;
    let launcher = Arc::clone(launcher);
    let launch = view.launch.clone();
    let failed = |source| VmmError::Jailer {
        vm_id: spec.vm_id.clone(),
        action: "start",
        source,
    };
    let jailed = tokio::task::spawn_blocking(move || launcher.launch(&launch))
        .await
        .map_err(|e| failed(Box::new(e)))?
        .map_err(failed)?;
    let Some(jailed) = jailed else {
        return Ok(None);
    };
    let identity = ProcessIdentity {
        pid: jailed.pid,
        start_time: jailed.start_time,
    };
    Ok(Some((identity, host_paths(paths, &jailed), plan)))
}

#[cfg(test)]
#[path = "jailed_tests.rs"]
mod tests;
