//! How the QEMU driver runs VMs on this host: its binary, acceleration, machine type,
//! deadlines and confinement.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::sandbox::cgroup::CgroupPolicy;
use crate::sandbox::{IdRange, SandboxPolicy};
use crate::spec::Accel;

/// Which QEMU machine type to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MachinePreference {
    /// microvm when the vmlinux has a PVH note, else pc with the bzImage.
    #[default]
    Auto,
    Microvm,
    Pc,
}

/// How the QEMU driver runs VMs on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuConfig {
    /// `qemu-system-x86_64`.
    pub binary: PathBuf,
    pub accel: Accel,
    pub machine: MachinePreference,
    /// Host TSC frequency in kHz: required for microvm under TCG (see [`crate::host::tsc`]).
    pub tsc_khz: Option<u64>,
    /// Upper bound for QEMU to initialise (not for the guest to boot).
    pub launch_timeout: Duration,
    /// Upper bound for each QMP step.
    pub qmp_timeout: Duration,
    /// How long `kill` waits after each of quit, SIGTERM and SIGKILL.
    pub kill_grace: Duration,
    /// How QEMU is confined ([`crate::sandbox`]); by default what this process's
    /// privileges call for, with the default id range.
    pub sandbox: SandboxPolicy,
    /// `virtiofsd`, for VMs that share host directories ([`crate::virtiofs`]); `None` when
    /// this host has none (such VMs then fail to start, saying what to install).
    pub virtiofsd: Option<PathBuf>,
    /// Per-VM cgroup limits ([`crate::sandbox::cgroup`]); the daemon sets them up once.
    /// Only sandboxed launches are placed (an unsandboxed QEMU daemonizes itself).
    pub cgroups: CgroupPolicy,
}

impl QemuConfig {
    pub fn new(binary: impl Into<PathBuf>, accel: Accel, tsc_khz: Option<u64>) -> QemuConfig {
        QemuConfig {
            binary: binary.into(),
            accel,
            machine: MachinePreference::Auto,
            tsc_khz,
            launch_timeout: Duration::from_secs(30),
            qmp_timeout: Duration::from_secs(5),
            kill_grace: Duration::from_secs(5),
            sandbox: SandboxPolicy::for_this_process(IdRange::default()),
            virtiofsd: crate::virtiofs::find_binary(),
            cgroups: CgroupPolicy::Unavailable {
                reason: "this driver was configured without cgroup limits".into(),
            },
        }
    }
}
