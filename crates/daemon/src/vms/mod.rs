//! The VM lifecycle service: every `/v1/vms` handler and the machinery behind it.
//!
//! States (persisted in the store): `created → starting → running → stopping →
//! stopped`, with `failed` when a boot does not reach a ready agent and `paused` (from
//! and back to `running`) while the vCPUs are frozen. Lifecycle
//! operations on one VM are serialised by its slot's `op` lock.
//!
//! Crash safety: every step that creates something on the host is recorded in the store
//! first (an intent for create and remove, the `starting` state before a VMM is launched),
//! every path to a dead VMM goes through [`release`], and [`reconcile`] finishes or undoes
//! whatever a killed daemon left half-done.

pub(crate) mod agent;
pub mod cgroup;
mod console;
mod create;
pub mod driver;
pub mod exec;
pub mod helper_cgroup;
pub(crate) mod host_fit;
mod jailer;
mod lock;
pub mod logs;
pub mod names;
mod pause;
mod posture;
pub mod reconcile;
mod release;
mod remove;
pub mod ssh;
mod start;
mod stop;
mod strays;
mod watch;

#[cfg(test)]
mod chaos_tests;
#[cfg(test)]
mod console_tests;
#[cfg(test)]
mod deadline_tests;
#[cfg(test)]
mod lifecycle_tests;

use banger_api::{BootTimings, DiskView, VmView};
use banger_store::VmRecord;
use banger_vmm::VmRuntime;

use crate::error::{DaemonError, Result, quoted};
use crate::state::Daemon;

pub use agent::Backoff as AgentBackoff;
#[cfg(test)]
pub(crate) use agent::client_for;
pub use console::Capture as ConsoleCapture;
pub use create::create;
pub(crate) use create::{choose_name, exists};
pub use lock::{VmLock, lock_vm, lock_vm_forced};
pub use pause::{pause, resume};
pub use remove::remove;
pub(crate) use remove::remove_locked;
pub(crate) use start::boot;
pub use start::start;
pub use stop::stop;

pub fn list(daemon: &Daemon) -> Result<Vec<VmView>> {
    // Released before the per-VM reads below take the store again.
    let vms = user_vms(daemon)?;
    vms.iter()
        .map(|vm| {
            let mut view = view(vm);
            view.shares_down = crate::shares::down_paths(daemon, vm)?;
            Ok(view)
        })
        .collect()
}

/// One VM, with its disks and what each really costs the host.
pub fn get(daemon: &Daemon, name: &str) -> Result<VmView> {
    let vm = lookup(daemon, name)?;
    let mut view = view(&vm);
    view.disks = daemon
        .store()
        .vm_disks(&vm.id)?
        .into_iter()
        .map(|d| DiskView {
            used_bytes: banger_images::vmdisk::used_bytes(&d.path).ok(),
            role: d.role.as_str().to_string(),
            path: d.path.display().to_string(),
            format: d.format,
            backend: d.backend,
            size_bytes: d.size_bytes,
        })
        .collect();
    view.network = Some(crate::net::view(daemon, &vm)?);
    view.origin = crate::snapshots::origin_view(daemon, &vm.id)?;
    view.cold_reason = daemon.store().cold_reason(&vm.id)?;
    view.shares = crate::shares::views(daemon, &vm)?;
    view.shares_down = crate::shares::down_paths(daemon, &vm)?;
    view.limits = cgroup::view(daemon, &vm);
    view.sandbox = posture::view(&vm);
    Ok(view)
}

/// Every VM a user has: all but the waiting standbys (`warm::standby`).
pub fn user_vms(daemon: &Daemon) -> Result<Vec<VmRecord>> {
    let store = daemon.store();
    let hidden = store.waiting_standbys()?;
    Ok(store
        .list_vms()?
        .into_iter()
        .filter(|vm| !hidden.contains(&vm.id))
        .collect())
}

/// The VM called `name`, or with that id, or whose id starts with `name` when only one
/// does (as docker takes an id prefix); else a not-found (or, for a prefix of several
/// ids, a conflict) error that says what to do. A waiting standby answers only to its
/// exact id, which the daemon's own work uses and no user is shown.
pub fn lookup(daemon: &Daemon, name: &str) -> Result<VmRecord> {
    // Bound first: a store guard in an `if let` lives to the end of the block.
    let found = daemon.store().get_vm(name)?;
    if let Some(vm) = found {
        let hidden = vm.id != name && daemon.store().is_waiting_standby(&vm.id)?;
        if !hidden {
            return Ok(vm);
        }
    }
    let by_prefix: Vec<VmRecord> = if is_id_prefix(name) {
        user_vms(daemon)?
            .into_iter()
            .filter(|vm| vm.id.starts_with(name))
            .collect()
    } else {
        Vec::new()
    };
    match <[VmRecord; 1]>::try_from(by_prefix) {
        Ok([vm]) => Ok(vm),
        Err(many) if many.len() > 1 => Err(DaemonError::conflict(format!(
            "{} is the start of the ids of {} VMs ({}): give more of the id, or a name",
            quoted(name),
            many.len(),
            many.iter()
                .map(|vm| vm.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
        Err(_) => Err(
            DaemonError::not_found(format!("no VM named {}", quoted(name)))
                .with_hint("`banger vm ls` lists your VMs"),
        ),
    }
}

/// Ids are lowercase hex; a prefix must look like one to be taken as one.
fn is_id_prefix(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

pub fn runtime_of(vm: &VmRecord) -> Option<VmRuntime> {
    vm.runtime_json
        .as_deref()
        .and_then(|j| serde_json::from_str(j).ok())
}

pub fn view(vm: &VmRecord) -> VmView {
    let runtime = runtime_of(vm);
    VmView {
        id: vm.id.clone(),
        name: vm.name.clone(),
        image: vm.image_name.clone(),
        state: vm.state.to_string(),
        vcpu: vm.vcpu,
        memory_mib: vm.memory_mib,
        disk_bytes: vm.disk_bytes,
        driver: vm.driver.clone(),
        driver_reason: vm.driver_reason.clone(),
        accel: runtime.as_ref().map(|r| r.accel.to_string()),
        pid: runtime
            .as_ref()
            .filter(|_| vm.state.is_active())
            .map(|r| r.pid as i32),
        dir: vm.dir.display().to_string(),
        console_log: vm.dir.join(CONSOLE_LOG).display().to_string(),
        created_at: vm.created_at.clone(),
        started_at: vm.started_at.clone(),
        last_error: vm.last_error.clone(),
        boot: vm
            .boot_json
            .as_deref()
            .and_then(|j| serde_json::from_str::<BootTimings>(j).ok()),
        disks: Vec::new(),
        network: None,
        origin: None,
        cold_reason: None,
        shares: Vec::new(),
        shares_down: Vec::new(),
        limits: None,
        sandbox: None,
    }
}

/// File names inside a VM's directory.
pub const CONSOLE_LOG: &str = "console.log";
