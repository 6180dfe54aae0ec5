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

fn no_kvm() -> KvmStatus {
    KvmStatus {
        device_present: false,
        openable: false,
        open_error: None,
        api_version: None,
        module: None,
        pvm: false,
        usable_for_guests: false,
        problem: Some("/dev/kvm does not exist".into()),
        reason: "(for humans)".into(),
    }
}

fn fc(version: &str) -> FirecrackerFound {
    FirecrackerFound {
        path: PathBuf::from("/usr/local/bin/firecracker"),
        version: SemVer::parse(version).map_err(|e| e.to_string()),
    }
}

fn qemu() -> Option<&'static Path> {
    Some(Path::new("/usr/bin/qemu-system-x86_64"))
}

fn select(
    pref: VmmPreference,
    kvm: &KvmStatus,
    firecracker: Option<&FirecrackerFound>,
    qemu_bin: Option<&Path>,
) -> Result<Selection, SelectError> {
    select_driver(
        pref,
        &HostVmms {
            kvm,
            firecracker,
            qemu: qemu_bin,
        },
    )
}

/// One row: inputs, then the expected (driver, accel) or `None` for an error.
type Row<'a> = (
    VmmPreference,
    &'a KvmStatus,
    Option<&'a str>,
    bool,
    Option<(DriverKind, Accel)>,
);

#[test]
fn selection_table() {
    use VmmPreference::*;
    let good = kvm(true, false);
    let pvm = kvm(false, true);
    let qemu_kvm = Some((DriverKind::Qemu, Accel::Kvm));
    let qemu_tcg = Some((DriverKind::Qemu, Accel::Tcg));
    let fc_kvm = Some((DriverKind::Firecracker, Accel::Kvm));
    let auto_fc = fc_kvm;
    let absent = no_kvm();
    // (preference, kvm, firecracker version installed, qemu installed, expected)
    let table: [Row<'_>; 16] = [
        (Auto, &good, Some("1.14.1"), true, auto_fc),
        (Auto, &good, Some("1.5.0"), false, fc_kvm),
        (Auto, &good, Some("1.4.0"), true, qemu_kvm),
        (Auto, &good, Some("1.15.0"), true, qemu_kvm),
        (Auto, &good, None, true, qemu_kvm),
        (Auto, &pvm, Some("1.14.1"), true, qemu_tcg),
        (Auto, &pvm, None, false, None),
        (Qemu, &good, Some("1.14.1"), true, qemu_kvm),
        (Qemu, &pvm, None, true, qemu_tcg),
        (Qemu, &good, Some("1.14.1"), false, None),
        (Firecracker, &good, Some("1.14.1"), true, fc_kvm),
        (Firecracker, &good, Some("1.15.0"), true, fc_kvm),
        (Firecracker, &pvm, Some("1.14.1"), true, fc_kvm),
        (Firecracker, &good, Some("1.4.9"), true, None),
        (Firecracker, &good, None, true, None),
        (Firecracker, &absent, Some("1.14.1"), true, None),
    ];
    for (pref, k, version, has_qemu, want) in table {
        let found = version.map(fc);
        let got = select(pref, k, found.as_ref(), has_qemu.then(qemu).flatten());
        let row = format!("{pref:?} pvm={} fc={version:?} qemu={has_qemu}", k.pvm);
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
    let s = select(VmmPreference::Auto, &kvm(false, true), None, qemu()).unwrap();
    assert!(
        s.reason.contains("TCG") && s.reason.contains("kvm_pvm"),
        "{}",
        s.reason
    );
    // The KVM problem is why Firecracker was passed over and why QEMU emulates: said once.
    assert_eq!(s.reason.matches("kvm_pvm").count(), 1, "{}", s.reason);
    let s = select(VmmPreference::Qemu, &kvm(false, true), None, qemu()).unwrap();
    assert_eq!(s.reason.matches("kvm_pvm").count(), 1, "{}", s.reason);

    let old = fc("1.4.0");
    let s = select(VmmPreference::Auto, &kvm(true, false), Some(&old), qemu()).unwrap();
    assert_eq!(s.driver, DriverKind::Qemu);
    assert!(
        s.reason.contains("older than the supported minimum v1.5.0"),
        "{}",
        s.reason
    );

    let e = select(VmmPreference::Firecracker, &kvm(false, true), None, qemu()).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("sudo banger firecracker install"), "{msg}");
    assert!(msg.contains("firecracker_bin"), "{msg}");
    assert!(msg.contains("vmm = \"auto\""), "{msg}");

    let e = select(VmmPreference::Auto, &kvm(true, false), None, None).unwrap_err();
    assert!(e.to_string().contains("apt install qemu-system-x86"), "{e}");
}

#[test]
fn explicit_firecracker_names_its_doubts_without_refusing() {
    let newer = fc("1.15.0");
    let s = select(
        VmmPreference::Firecracker,
        &kvm(false, true),
        Some(&newer),
        None,
    )
    .unwrap();
    let caveat = s.caveat.unwrap_or_default();
    assert!(caveat.contains("kvm_pvm"), "{caveat}");
    assert!(caveat.contains("newer than the tested v1.14.1"), "{caveat}");

    let broken = FirecrackerFound {
        path: PathBuf::from("/opt/fc"),
        version: Err("exited with code 1".into()),
    };
    let e = select(
        VmmPreference::Firecracker,
        &kvm(true, false),
        Some(&broken),
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("`/opt/fc --version` failed: exited with code 1"),
        "{e}"
    );
}
