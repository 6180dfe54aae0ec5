//! Whether a guest's memory fits this host, refused before anything is made or launched:
//! a VM that asks for more than the host's physical memory (`MemTotal`) would otherwise get
//! as far as the VMM, whose error ("cannot set up guest memory") names neither the request
//! nor the host.
//!
//! The host is the one the daemon was given ([`Daemon::host`]): read from `/proc/meminfo`
//! at start, or chosen by a test. When it is unknown nothing is refused.
//!
//! vCPUs are not held to the host's CPU count: more vCPUs than host CPUs is overcommit that
//! QEMU (KVM or TCG) and Firecracker both run, only slower; `VCPU_RANGE` is their bound.

use banger_config::{MIB, Provenance};

use crate::error::{DaemonError, Result, quoted};
use crate::state::Daemon;

/// Where the memory size being checked came from, for the error to name it.
#[derive(Debug, Clone, Copy)]
pub enum Asked<'a> {
    /// The request's `memory_mib`.
    Request,
    /// The daemon's default (`[vm_defaults] memory`, or sized from the host).
    Default(Provenance),
    /// The snapshot a clone is made from (its name).
    Snapshot(&'a str),
    /// An existing VM about to start (its name).
    Vm(&'a str),
}

/// Refuse `memory_mib` of guest memory when it is more than this host has.
pub fn check_memory(daemon: &Daemon, memory_mib: u64, asked: Asked<'_>) -> Result<()> {
    let Some(host) = daemon.host else {
        return Ok(());
    };
    let host_mib = host.total_memory_bytes / MIB;
    if memory_mib.saturating_mul(MIB) <= host.total_memory_bytes {
        return Ok(());
    }
    let has = format!("this host has {} of memory in all", mib_text(host_mib));
    let fewer = format!("at most {host_mib} MiB");
    Err(match asked {
        Asked::Request => {
            DaemonError::invalid(format!("memory_mib {memory_mib} MiB is more than {has}"))
                .with_field("memory_mib")
                .with_hint(format!(
                    "ask for {fewer}; a guest's memory comes out of the host's"
                ))
        }
        Asked::Default(source) => DaemonError::invalid(format!(
            "the default memory ({memory_mib} MiB, {}) is more than {has}",
            match source {
                Provenance::Config => "`[vm_defaults] memory` in config.toml",
                Provenance::Auto => "sized from the host",
                Provenance::Builtin => "banger's builtin",
            }
        ))
        .with_hint(format!(
            "ask for {fewer} with memory_mib (--memory), or lower `[vm_defaults] memory` \
             in config.toml (`banger doctor` shows the effective defaults)"
        )),
        Asked::Snapshot(name) => DaemonError::invalid(format!(
            "snapshot {} holds a guest of {memory_mib} MiB, more than {has}",
            quoted(name)
        ))
        .with_field("from")
        .with_hint("restore it on a host with more memory; a snapshot's memory size cannot change"),
        Asked::Vm(name) => DaemonError::conflict(format!(
            "VM {name} has {memory_mib} MiB of memory, more than {has}"
        ))
        .with_hint(format!(
            "it was made on a larger host: remove it (`banger vm rm {name}`) and create it \
             again with {fewer}"
        )),
    })
}

/// `3911 MiB (3.8 GiB)`: the MiB the API speaks, and a size a person reads at a glance.
fn mib_text(mib: u64) -> String {
    if mib >= 1024 {
        format!("{mib} MiB ({:.1} GiB)", mib as f64 / 1024.0)
    } else {
        format!("{mib} MiB")
    }
}

#[cfg(test)]
mod tests {
    use super::mib_text;

    #[test]
    fn host_memory_reads_in_mib_and_gib() {
        assert_eq!(mib_text(512), "512 MiB");
        assert_eq!(mib_text(3911), "3911 MiB (3.8 GiB)");
    }
}
