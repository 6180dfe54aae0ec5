//! Which driver and accelerator a VM gets, and why.
//!
//! * `auto`: Firecracker when its binary is inside the tested window
//!   and KVM runs ordinary guests; otherwise QEMU (with KVM when it can, TCG when it cannot).
//! * `firecracker`: the user asked for it, so it is used whenever it can start at all (a
//!   supported binary and an openable `/dev/kvm`); doubts (a PVM host, an untested release)
//!   are named in the reason instead of overriding the choice.
//! * `qemu`: QEMU, with the accelerator the host allows.

use std::path::{Path, PathBuf};

use banger_firecracker::{INSTALL_COMMAND, KNOWN_TESTED, SemVer, Support};
use serde::{Deserialize, Serialize};

pub use banger_config::VmmPreference;

use crate::host::kvm::KvmStatus;
use crate::spec::{Accel, DriverKind};

/// A Firecracker binary found on this host, with what `--version` said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirecrackerFound {
    pub path: PathBuf,
    /// The parsed version, or why `--version` could not be read.
    pub version: Result<SemVer, String>,
}

/// What the host offers, as selection needs it.
#[derive(Debug, Clone, Copy)]
pub struct HostVmms<'a> {
    pub kvm: &'a KvmStatus,
    pub firecracker: Option<&'a FirecrackerFound>,
    pub qemu: Option<&'a Path>,
}

/// The decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selection {
    pub driver: DriverKind,
    pub accel: Accel,
    /// One sentence for `doctor`, `vm inspect` and logs.
    pub reason: String,
    /// Something the user should know about this choice (it works, but is not ideal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caveat: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    /// Firecracker was requested explicitly but cannot be used.
    #[error(
        "the firecracker driver cannot be used: {why}; set vmm = \"auto\" or \"qemu\" in config.toml to run VMs under QEMU"
    )]
    FirecrackerUnusable { why: String },
    /// QEMU was requested (or is the only option) but its binary is missing.
    #[error(
        "qemu-system-x86_64 was not found{context}; install it (Debian/Ubuntu: `apt install \
         qemu-system-x86`, Fedora: `dnf install qemu-system-x86`)"
    )]
    QemuMissing { context: String },
}

/// Choose a driver for a new VM on this host.
pub fn select_driver(
    preference: VmmPreference,
    host: &HostVmms<'_>,
) -> Result<Selection, SelectError> {
    match preference {
        VmmPreference::Firecracker => match firecracker_verdict(host, Strictness::Explicit) {
            Ok(caveat) => Ok(firecracker_selection("vmm = firecracker", caveat)),
            Err(problems) => Err(SelectError::FirecrackerUnusable {
                why: problems.join("; "),
            }),
        },
        VmmPreference::Qemu => match host.qemu {
            Some(_) => Ok(qemu_selection(host.kvm, "vmm = qemu".into())),
            None => Err(SelectError::QemuMissing {
                context: " (vmm = qemu)".into(),
            }),
        },
        VmmPreference::Auto => match (firecracker_verdict(host, Strictness::Auto), host.qemu) {
            (Ok(caveat), _) => Ok(firecracker_selection(
                "vmm = auto: KVM runs guests and a tested firecracker is installed",
                caveat,
            )),
            (Err(problems), Some(_)) => Ok(qemu_selection(
                host.kvm,
                format!(
                    "vmm = auto: firecracker is not used because {}",
                    problems[0]
                ),
            )),
            (Err(problems), None) => Err(SelectError::QemuMissing {
                context: format!(" and firecracker cannot be used ({})", problems.join("; ")),
            }),
        },
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strictness {
    /// `auto`: only what is known to work well.
    Auto,
    /// `vmm = firecracker`: anything that can start.
    Explicit,
}

/// `Ok(caveat)` when Firecracker can be used here, else every reason it cannot (the most
/// fundamental first).
fn firecracker_verdict(
    host: &HostVmms<'_>,
    strictness: Strictness,
) -> Result<Option<String>, Vec<String>> {
    let mut problems = Vec::new();
    let mut caveats = Vec::new();
    let kvm = host.kvm;
    match strictness {
        Strictness::Auto => {
            if let Some(problem) = &kvm.problem {
                problems.push(format!("it needs KVM usable for guests, but {problem}"));
            }
        }
        Strictness::Explicit => {
            if !kvm.device_present || !kvm.openable {
                let problem = kvm
                    .problem
                    .as_deref()
                    .unwrap_or("/dev/kvm cannot be opened");
                problems.push(format!("it needs /dev/kvm, but {problem}"));
            } else if let Some(problem) = &kvm.problem {
                caveats.push(format!("guests may crawl or fail: {problem}"));
            }
        }
    }
    match host.firecracker {
        None => problems.push(format!(
            "no firecracker binary was found (install it with `{INSTALL_COMMAND}`, or set \
             firecracker_bin)"
        )),
        Some(found) => match &found.version {
            Err(why) => problems.push(format!(
                "`{} --version` failed: {why}",
                found.path.display()
            )),
            Ok(version) => match banger_firecracker::support(version) {
                Support::Tested => {}
                Support::TooOld => problems.push(
                    banger_firecracker::TooOld {
                        version: version.clone(),
                        path: found.path.clone(),
                    }
                    .to_string(),
                ),
                Support::Newer => {
                    let newer = format!(
                        "firecracker {version} at {} is newer than the tested v{KNOWN_TESTED}",
                        found.path.display()
                    );
                    match strictness {
                        Strictness::Auto => problems.push(format!(
                            "{newer} (auto picks only tested releases; set vmm = \"firecracker\" \
                             to use it)"
                        )),
                        Strictness::Explicit => caveats.push(newer),
                    }
                }
            },
        },
    }
    if problems.is_empty() {
        Ok((!caveats.is_empty()).then(|| caveats.join("; ")))
    } else {
        Err(problems)
    }
}

fn firecracker_selection(why: &str, caveat: Option<String>) -> Selection {
    Selection {
        driver: DriverKind::Firecracker,
        accel: Accel::Kvm,
        reason: format!("firecracker with KVM ({why})"),
        caveat,
    }
}

fn qemu_selection(kvm: &KvmStatus, why: String) -> Selection {
    match &kvm.problem {
        None => Selection {
            driver: DriverKind::Qemu,
            accel: Accel::Kvm,
            reason: format!("QEMU with KVM ({why})"),
            caveat: None,
        },
        // Under `auto` the reason Firecracker was passed over is often this same problem:
        // said once.
        Some(problem) if why.contains(problem.as_str()) => Selection {
            driver: DriverKind::Qemu,
            accel: Accel::Tcg,
            reason: format!("QEMU with TCG software emulation ({why})"),
            caveat: None,
        },
        Some(problem) => Selection {
            driver: DriverKind::Qemu,
            accel: Accel::Tcg,
            reason: format!(
                "QEMU with TCG software emulation ({why}): KVM is not usable for guests: {problem}"
            ),
            caveat: None,
        },
    }
}

#[cfg(test)]
#[path = "select_tests.rs"]
mod tests;
