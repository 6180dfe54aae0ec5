//! The VMM sandbox against the real qemu-system-x86_64 (as root, as CI runs): what the
//! kernel reports about a launched QEMU, its files, and a qcow2 overlay's shared base.

use crate::support;

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use banger_vmm::sandbox::{IdRange, SandboxPolicy, posture};
use banger_vmm::{DriveFormat, MachinePreference, VmmDriver};
use support::{KillOnDrop, driver, spec};

fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "the sandbox's uid drop and jail need root; run these tests as root (CI does)"
    );
}

#[tokio::test]
async fn a_root_launched_qemu_is_confined() {
    require_root();
    let (tmp, mut spec) = spec("vm");
    // A qcow2 overlay on a base outside the VM directory, as images are: the jail must hold
    // the base, the VMM must read it and must not own it.
    let base = tmp.path().join("base.raw");
    std::fs::File::create(&base)
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    std::fs::set_permissions(&base, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let overlay = spec.vm_dir.join("root.qcow2");
    let ok = std::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
        .arg(&base)
        .arg(&overlay)
        .status()
        .expect("qemu-img (qemu-utils) is installed by scripts/install-deps");
    assert!(ok.success());
    spec.drives[1].path = overlay.clone();
    spec.drives[1].format = DriveFormat::Qcow2;
    spec.drives[1].read_only = false;

    let driver = driver(MachinePreference::Auto);
    let rt = driver.launch(&spec).await.unwrap();
    let _guard = KillOnDrop(rt.clone());
    let p = posture::read(rt.pid).unwrap();
    let range = IdRange::default();
    assert!(p.unprivileged(), "{p:?}");
    assert!(
        range.is_vm_id(p.uids[0]),
        "uid {} is from the range",
        p.uids[0]
    );
    assert_eq!(p.uids, [p.uids[0]; 4]);
    assert_eq!(p.gids, [p.uids[0]; 4], "a gid of its own");
    assert_eq!(p.seccomp, Some(2), "QEMU's -sandbox filter is on");
    assert_eq!(p.no_new_privs, Some(true));
    assert_eq!(p.cap_eff, Some(0));
    assert_eq!(p.cap_bnd, Some(0), "the bounding set is empty");
    assert_eq!(p.own_root, Some(true), "its / is the jail");
    assert_eq!(p.own_mount_ns, Some(true));
    assert!(p.fully_confined());
    let status = std::fs::read_to_string(format!("/proc/{}/status", rt.pid)).unwrap();
    let groups = status.lines().find(|l| l.starts_with("Groups:")).unwrap();
    assert_eq!(
        groups.split_whitespace().skip(1).collect::<Vec<_>>(),
        [range.inputs_gid().to_string()],
        "only the inputs group"
    );

    // What the jail shows: the VM's directory and inputs, not the rest of the host.
    let root = format!("/proc/{}/root", rt.pid);
    let seen =
        |p: &std::path::Path| std::fs::symlink_metadata(format!("{root}{}", p.display())).is_ok();
    assert!(seen(&spec.vm_dir) && seen(&spec.kernel) && seen(&base));
    assert!(seen(std::path::Path::new("/usr/bin")));
    // It works in its VM directory (bound at its own path), not in the jail's `/`: paths
    // relative to the VM directory resolve as unjailed.
    let cwd = std::fs::metadata(format!("/proc/{}/cwd", rt.pid)).unwrap();
    let dir = std::fs::metadata(&spec.vm_dir).unwrap();
    assert_eq!(
        (cwd.dev(), cwd.ino()),
        (dir.dev(), dir.ino()),
        "the jailed VMM's working directory is its VM directory"
    );
    for hidden in [
        "/etc/shadow",
        "/root",
        "/home",
        "/var/lib",
        "/proc/1",
        "/sys/kernel",
    ] {
        assert!(
            !seen(std::path::Path::new(hidden)),
            "{hidden} is visible in the jail"
        );
    }
    assert!(!seen(&tmp.path().join("elsewhere")));
    std::fs::write(tmp.path().join("elsewhere"), "x").unwrap();
    assert!(
        !seen(&tmp.path().join("elsewhere")),
        "only listed files are bound"
    );

    // Ownership: the VM's files are its own; the shared base is readable, not its own.
    let vm_meta = std::fs::metadata(&spec.vm_dir).unwrap();
    assert_eq!(vm_meta.uid(), p.uids[0]);
    assert_eq!(vm_meta.mode() & 0o777, 0o700);
    assert_eq!(std::fs::metadata(&overlay).unwrap().uid(), p.uids[0]);
    let b = std::fs::metadata(&base).unwrap();
    assert_eq!((b.uid(), b.gid()), (0, range.inputs_gid()));
    assert_eq!(
        b.mode() & 0o777,
        0o640,
        "group read added, nothing for others"
    );

    // A second VM gets another uid; one VMM cannot signal the other.
    let (_tmp2, spec2) = support::spec("vm2");
    let mut spec2 = spec2;
    spec2.vm_id = "other-vm".into();
    let rt2 = driver.launch(&spec2).await.unwrap();
    let _guard2 = KillOnDrop(rt2.clone());
    let p2 = posture::read(rt2.pid).unwrap();
    assert!(range.is_vm_id(p2.uids[0]));
    assert_ne!(p.uids[0], p2.uids[0], "two VMs, two uids");

    driver.kill(&rt2).await.unwrap();
    driver.kill(&rt).await.unwrap();
    // Started again, the VM boots with its files handed over again.
    let rt = driver.launch(&spec).await.unwrap();
    let _guard3 = KillOnDrop(rt.clone());
    assert!(posture::read(rt.pid).unwrap().fully_confined());
    driver.kill(&rt).await.unwrap();
}

#[tokio::test]
async fn a_symlink_planted_in_the_vm_dir_stops_the_launch() {
    require_root();
    let (tmp, spec) = spec("vm");
    let victim = tmp.path().join("victim");
    std::fs::write(&victim, "host file").unwrap();
    std::os::unix::fs::symlink(&victim, spec.vm_dir.join("planted")).unwrap();
    let err = driver(MachinePreference::Auto)
        .launch(&spec)
        .await
        .unwrap_err();
    let chain = banger_system::error_chain(&err);
    assert!(
        chain.contains("planted") && chain.contains("symbolic link"),
        "{chain}"
    );
    assert_eq!(std::fs::metadata(&victim).unwrap().uid(), 0);
}

#[tokio::test]
async fn an_ordinary_policy_keeps_seccomp_without_a_jail() {
    let (_tmp, spec) = spec("vm");
    let mut config = banger_vmm::QemuConfig::new(
        support::qemu_binary(),
        banger_vmm::Accel::Tcg,
        Some(support::TSC_KHZ),
    );
    config.sandbox = SandboxPolicy::AsOwner;
    let driver = banger_vmm::QemuDriver::new(config).unwrap();
    let rt = driver.launch(&spec).await.unwrap();
    let _guard = KillOnDrop(rt.clone());
    let p = posture::read(rt.pid).unwrap();
    assert_eq!(p.seccomp, Some(2));
    assert_eq!(p.no_new_privs, Some(true));
    assert_eq!(p.own_root, Some(false), "no jail for the owner's own QEMU");
    driver.kill(&rt).await.unwrap();
}

#[tokio::test]
async fn user_networking_in_the_jail_sees_the_hosts_resolvers() {
    require_root();
    let (_tmp, mut spec) = spec("vm");
    spec.user_net = Some(banger_vmm::UserNetSpec {
        mac: "52:54:00:12:34:56".into(),
        forwards: vec![],
    });
    let driver = driver(MachinePreference::Auto);
    let rt = driver.launch(&spec).await.unwrap();
    let _guard = KillOnDrop(rt.clone());
    assert!(posture::read(rt.pid).unwrap().fully_confined());
    // What slirp's DNS forwarder reads, through the link if the host has one.
    let host = std::fs::read(Path::new("/etc/resolv.conf")).unwrap();
    let jailed = std::fs::read(format!("/proc/{}/root/etc/resolv.conf", rt.pid)).unwrap();
    assert_eq!(jailed, host);
    driver.kill(&rt).await.unwrap();
}
