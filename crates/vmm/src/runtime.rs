//! [`VmRuntime`]: what the daemon stores (as JSON) to find a running VM again after it restarts.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::driver::WaitOutcome;
use crate::error::VmmError;
use crate::process::{self, ProcessIdentity};
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

/// Where a VMM offers the guest's serial console for the daemon to drain (`crate::console`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "path", rename_all = "snake_case")]
pub enum ConsoleSource {
    /// A listening Unix socket (QEMU's socket chardev): connect to read.
    Socket(PathBuf),
    /// A named pipe whose write end the VMM holds (Firecracker's serial): open to read.
    Fifo(PathBuf),
}

impl ConsoleSource {
    pub fn path(&self) -> &Path {
        match self {
            ConsoleSource::Socket(p) | ConsoleSource::Fifo(p) => p,
        }
    }

    /// `VmRuntime::console` as stored: a tagged source, or (records from before FIFOs) the
    /// bare path of a socket.
    fn deserialize_field<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<ConsoleSource>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Stored {
            LegacySocket(PathBuf),
            Source(ConsoleSource),
        }
        Ok(
            Option::<Stored>::deserialize(d)?.map(|stored| match stored {
                Stored::LegacySocket(path) => ConsoleSource::Socket(path),
                Stored::Source(source) => source,
            }),
        )
    }
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
    /// Where the VMM offers the serial console, for the daemon to drain into `console_log`
    /// (see `crate::console`). `None` for VMs launched before banger captured consoles this
    /// way (their VMM appends to `console_log` itself). Records written before FIFOs existed
    /// name a socket as `console_socket`: a bare path.
    #[serde(
        default,
        alias = "console_socket",
        deserialize_with = "ConsoleSource::deserialize_field"
    )]
    pub console: Option<ConsoleSource>,
    /// Where the VMM writes its own log for the daemon to drain into a capped file
    /// (Firecracker: `firecracker.log.fifo`, see `crate::console::capture_vmm_log`); `None`
    /// when the VMM keeps its own log (QEMU) or for VMs launched before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vmm_log: Option<ConsoleSource>,
    /// The VMM's release as it reported it at launch (Firecracker: `1.14.1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vmm_version: Option<String>,
    /// The VM's cgroup directories (one per hierarchy) its VMM was placed in; empty when
    /// no limits applied. Removed by the VM's release.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cgroup: Vec<PathBuf>,
}

impl VmRuntime {
    /// The VMM process, named so that pid reuse cannot fool us.
    pub fn identity(&self) -> ProcessIdentity {
        ProcessIdentity {
            pid: self.pid,
            start_time: self.pid_start_time,
        }
    }

    /// A record from an earlier boot of the host names no process of this boot.
    fn same_boot(&self) -> bool {
        process::boot_id().is_ok_and(|id| id == self.boot_id)
    }

    /// Whether the VMM process still runs: same host boot, same pid, same start time.
    pub fn is_alive(&self) -> bool {
        self.same_boot() && process::is_running(self.identity())
    }

    /// Wait up to `timeout` for the VMM process to exit.
    pub async fn wait_exit(&self, timeout: Duration) -> Result<WaitOutcome, VmmError> {
        if !self.same_boot() {
            return Ok(WaitOutcome::Exited);
        }
        let exited = process::wait_exit(self.identity(), timeout)
            .await
            .map_err(|source| {
                VmmError::io("watch VMM process", format!("/proc/{}", self.pid), source)
            })?;
        Ok(if exited {
            WaitOutcome::Exited
        } else {
            WaitOutcome::StillRunning
        })
    }

    /// Send `signal` to the VMM process if it still runs; `Ok(false)` when it had gone.
    pub fn signal(&self, signal: libc::c_int) -> Result<bool, VmmError> {
        process::signal(self.identity(), signal).map_err(|source| VmmError::Signal {
            vm_id: self.vm_id.clone(),
            pid: self.pid,
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Serialize)]
    struct Holder {
        #[serde(
            default,
            alias = "console_socket",
            deserialize_with = "ConsoleSource::deserialize_field"
        )]
        console: Option<ConsoleSource>,
    }

    #[test]
    fn console_sources_round_trip_and_old_records_still_read() {
        for source in [
            ConsoleSource::Socket("/vms/a/console.sock".into()),
            ConsoleSource::Fifo("/vms/a/console.fifo".into()),
        ] {
            let json = serde_json::to_string(&Holder {
                console: Some(source.clone()),
            })
            .unwrap();
            let back: Holder = serde_json::from_str(&json).unwrap();
            assert_eq!(back.console, Some(source));
        }
        // Written before FIFOs existed: a bare socket path, or null, or nothing.
        let old: Holder = serde_json::from_str(r#"{"console_socket":"/vms/a/c.sock"}"#).unwrap();
        assert_eq!(
            old.console,
            Some(ConsoleSource::Socket("/vms/a/c.sock".into()))
        );
        let none: Holder = serde_json::from_str(r#"{"console_socket":null}"#).unwrap();
        assert_eq!(none.console, None);
        let absent: Holder = serde_json::from_str("{}").unwrap();
        assert_eq!(absent.console, None);
    }
}
