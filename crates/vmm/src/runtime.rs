//! [`VmRuntime`]: what the daemon stores (as JSON) to find a running VM again after it restarts.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::spec::{Accel, DriverKind};

/// How the host reaches the guest agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AgentEndpoint {
    /// A QEMU virtio-serial port exposed as a listening Unix socket: connecting is enough.
    VirtioSerial { socket: PathBuf },
    /// Firecracker's hybrid vsock: connect to `uds_path`, send `CONNECT <port>\n`, read `OK <n>\n`.
    HybridVsock { uds_path: PathBuf, port: u32 },
}

/// The emulated machine a VM runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MachineType {
    /// QEMU `-M microvm`: virtio-mmio devices, PVH boot of an ELF vmlinux.
    Microvm,
    /// QEMU `-M pc`: PCI devices, boots a bzImage (or a PVH vmlinux).
    Pc,
    /// Firecracker's own machine model.
    Firecracker,
}

impl MachineType {
    pub fn as_str(self) -> &'static str {
        match self {
            MachineType::Microvm => "microvm",
            MachineType::Pc => "pc",
            MachineType::Firecracker => "firecracker",
        }
    }
}

impl fmt::Display for MachineType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A launched VM, as the daemon must remember it.
///
/// The VMM process is not a child of the daemon (it outlives daemon restarts), so its identity
/// is the pair (`pid`, `pid_start_time`): a pid alone could be reused by an unrelated process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmRuntime {
    pub vm_id: String,
    /// The VM's private directory (sockets, pid file).
    pub vm_dir: PathBuf,
    pub driver: DriverKind,
    pub accel: Accel,
    pub machine: MachineType,
    /// Pid of the VMM process.
    pub pid: u32,
    /// Field 22 of `/proc/<pid>/stat` (clock ticks since boot) when the VM was launched.
    pub pid_start_time: u64,
    /// `/proc/sys/kernel/random/boot_id` at launch: after a host reboot the pid means nothing.
    pub boot_id: String,
    /// QMP socket (QEMU) or API socket (Firecracker).
    pub control_socket: PathBuf,
    pub agent: AgentEndpoint,
    /// The log the daemon keeps of the guest's serial console (capped, rotated).
    pub console_log: PathBuf,
    /// Where the VMM offers the serial console, for the daemon to drain into `console_log`:
    /// a listening Unix socket. `None` for VMs launched before banger captured consoles this
    /// way (their VMM appends to `console_log` itself).
    #[serde(default)]
    pub console_socket: Option<PathBuf>,
}
