//! Which driver and accelerator a host gets, and why.
//!
//! Firecracker needs KVM that can run ordinary guests; QEMU runs with KVM when it can and
//! falls back to TCG software emulation. Until the Firecracker driver lands, `auto` always
//! picks QEMU and says so.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::host::kvm::KvmStatus;
use crate::spec::{Accel, DriverKind};

/// Whether this build contains a working Firecracker driver. Selection already handles both
/// answers, so landing the driver only flips this constant.
pub const FIRECRACKER_DRIVER_AVAILABLE: bool = false;

/// What the user asked for (config `vmm = "auto" | "qemu" | "firecracker"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriverPreference {
    #[default]
    Auto,
    Qemu,
    Firecracker,
}

/// The decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selection {
    pub driver: DriverKind,
    pub accel: Accel,
    /// One sentence for `doctor` and logs.
    pub reason: String,
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

/// Choose a driver for this host.
pub fn select_driver(
    preference: DriverPreference,
    kvm: &KvmStatus,
    firecracker_bin: Option<&Path>,
    qemu_bin: Option<&Path>,
) -> Result<Selection, SelectError> {
    let firecracker = firecracker_verdict(kvm, firecracker_bin);
    match preference {
        DriverPreference::Firecracker => match firecracker {
            Ok(()) => Ok(firecracker_selection("vmm = firecracker")),
            Err(missing) => Err(SelectError::FirecrackerUnusable {
                why: missing.join("; "),
            }),
        },
        DriverPreference::Qemu => match qemu_bin {
            Some(_) => Ok(qemu_selection(kvm, "vmm = qemu".into())),
            None => Err(SelectError::QemuMissing {
                context: " (vmm = qemu)".into(),
            }),
        },
        DriverPreference::Auto => match (firecracker, qemu_bin) {
            (Ok(()), _) => Ok(firecracker_selection(
                "KVM is usable and firecracker is installed",
            )),
            (Err(_), Some(_)) => Ok(qemu_selection(
                kvm,
                auto_why_not_firecracker(kvm, firecracker_bin),
            )),
            (Err(missing), None) => Err(SelectError::QemuMissing {
                context: format!(" and firecracker cannot be used ({})", missing.join("; ")),
            }),
        },
    }
}

/// Everything that keeps Firecracker from running here; empty means it can.
fn firecracker_verdict(kvm: &KvmStatus, firecracker_bin: Option<&Path>) -> Result<(), Vec<String>> {
    let mut missing = Vec::new();
    if !FIRECRACKER_DRIVER_AVAILABLE {
        missing.push("the firecracker driver is not yet available in this build".to_owned());
    }
    if let Some(problem) = &kvm.problem {
        missing.push(format!("it needs KVM usable for guests, but {problem}"));
    }
    if firecracker_bin.is_none() {
        missing.push("no firecracker binary was found (set firecracker_bin)".to_owned());
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(missing)
    }
}

/// Why `auto` did not pick Firecracker, when KVM's own problem is reported separately.
fn auto_why_not_firecracker(kvm: &KvmStatus, firecracker_bin: Option<&Path>) -> String {
    if !FIRECRACKER_DRIVER_AVAILABLE {
        "the firecracker driver is not yet available in this build".into()
    } else if !kvm.usable_for_guests {
        "firecracker needs KVM too".into()
    } else if firecracker_bin.is_none() {
        "no firecracker binary was found".into()
    } else {
        String::new()
    }
}

fn firecracker_selection(why: &str) -> Selection {
    Selection {
        driver: DriverKind::Firecracker,
        accel: Accel::Kvm,
        reason: format!("firecracker with KVM ({why})"),
    }
}

fn qemu_selection(kvm: &KvmStatus, why: String) -> Selection {
    match &kvm.problem {
        None => Selection {
            driver: DriverKind::Qemu,
            accel: Accel::Kvm,
            reason: format!("QEMU with KVM ({why})"),
        },
        Some(problem) => Selection {
            driver: DriverKind::Qemu,
            accel: Accel::Tcg,
            reason: format!(
                "QEMU with TCG software emulation ({why}): KVM is not usable for guests: {problem}"
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kvm(usable: bool, pvm: bool) -> KvmStatus {
        KvmStatus {
            device_present: true,
            openable: true,
            open_error: None,
            api_version: Some(12),
            module: Some(if pvm { "kvm_pvm" } else { "kvm_intel" }.into()),
            pvm,
            usable_for_guests: usable,
            problem: (!usable).then(|| "/dev/kvm is provided by kvm_pvm".into()),
            reason: "(for humans)".into(),
        }
    }

    fn fc() -> Option<&'static Path> {
        Some(Path::new("/usr/bin/firecracker"))
    }

    fn qemu() -> Option<&'static Path> {
        Some(Path::new("/usr/bin/qemu-system-x86_64"))
    }

    /// One row: inputs, then the expected (driver, accel) or `None` for an error.
    type Row<'a> = (
        DriverPreference,
        &'a KvmStatus,
        bool,
        bool,
        Option<(DriverKind, Accel)>,
    );

    #[test]
    fn selection_table() {
        use DriverPreference::*;
        let good = kvm(true, false);
        let pvm = kvm(false, true);
        let qemu_kvm = Some((DriverKind::Qemu, Accel::Kvm));
        let qemu_tcg = Some((DriverKind::Qemu, Accel::Tcg));
        // (preference, kvm, firecracker installed, qemu installed, expected)
        let table: [Row<'_>; 9] = [
            (Auto, &good, true, true, qemu_kvm),
            (Auto, &good, false, true, qemu_kvm),
            (Auto, &pvm, true, true, qemu_tcg),
            (Auto, &pvm, false, false, None),
            (Qemu, &good, true, true, qemu_kvm),
            (Qemu, &pvm, false, true, qemu_tcg),
            (Qemu, &good, true, false, None),
            (Firecracker, &good, true, true, None),
            (Firecracker, &pvm, true, true, None),
        ];
        for (pref, k, has_fc, has_qemu, want) in table {
            let got = select_driver(
                pref,
                k,
                has_fc.then(fc).flatten(),
                has_qemu.then(qemu).flatten(),
            );
            let row = format!("{pref:?} pvm={} fc={has_fc} qemu={has_qemu}", k.pvm);
            match want {
                Some(expected) => {
                    let s = got.unwrap_or_else(|e| panic!("{row}: {e}"));
                    assert_eq!((s.driver, s.accel), expected, "{row}");
                }
                None => assert!(got.is_err(), "{row} should fail: {got:?}"),
            }
        }
    }

    #[test]
    fn reasons_explain_the_choice() {
        let s = select_driver(DriverPreference::Auto, &kvm(false, true), None, qemu()).unwrap();
        assert!(
            s.reason.contains("TCG") && s.reason.contains("kvm_pvm"),
            "{}",
            s.reason
        );
        assert!(s.reason.contains("not yet available"), "{}", s.reason);

        let e = select_driver(
            DriverPreference::Firecracker,
            &kvm(false, true),
            None,
            qemu(),
        )
        .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("not yet available") && msg.contains("kvm_pvm"),
            "{msg}"
        );
        assert!(msg.contains("firecracker_bin"), "{msg}");

        let e = select_driver(DriverPreference::Auto, &kvm(true, false), None, None).unwrap_err();
        assert!(e.to_string().contains("apt install qemu-system-x86"), "{e}");
    }
}
