//! What `vm inspect` shows of a running VMM's confinement: its uid, seccomp, capabilities
//! and root read back from `/proc`, and which way it was started, by the same rule doctor
//! uses ([`StartedBy`]).

use banger_api::SandboxView;
use banger_store::VmRecord;
use banger_vmm::sandbox::posture::{self, StartedBy};

/// `None` when the VM's VMM is not running (or cannot be read).
pub fn view(vm: &VmRecord) -> Option<SandboxView> {
    let rt = super::runtime_of(vm).filter(|_| vm.state.is_active())?;
    if !rt.is_alive() {
        return None;
    }
    let seen = posture::read(rt.pid).ok()?;
    let by = StartedBy::of(&rt, &seen);
    // Effective uid; `u32::MAX` is what the parser leaves for a field it could not read.
    let uid = Some(seen.uids[1]).filter(|u| *u != u32::MAX);
    Some(SandboxView {
        started_by: by.kind().to_owned(),
        summary: by.describe(),
        uid,
        seccomp: seen.seccomp.map(|s| s == 2),
        no_new_privs: seen.no_new_privs,
        capabilities: seen.cap_eff.map(|c| format!("{c:#x}")),
        own_root: seen.own_root,
    })
}
