//! KVM usability, driver selection and the agent channel, on fake hosts built
//! from the real KVM probe run against fake device files.

use crate::common;

use banger_config::{Config, VmmPreference};
use banger_doctor::{Report, Status, groups};
use common::{FakeHost, ScriptedRunner, good_kvm, pvm_kvm};

fn doctor(host: &FakeHost, config: Config, kvm: banger_vmm::KvmStatus) -> Report {
    let mut ctx = host.context(config, ScriptedRunner::new());
    ctx.kvm = kvm;
    banger_doctor::run(&ctx)
}

#[test]
fn usable_kvm_passes_and_qemu_uses_it() {
    let host = FakeHost::new();
    host.script("qemu-system-x86_64", "exit 0");
    let report = doctor(&host, Config::default(), good_kvm());
    assert_eq!(
        report.find(groups::HOST, "kvm").unwrap().status,
        Status::Pass
    );
    let driver = report.find(groups::VMM, "driver").unwrap();
    assert_eq!(driver.status, Status::Pass);
    assert_eq!(driver.summary, "qemu with kvm");
}

#[test]
fn pvm_host_warns_and_runs_guests_under_tcg() {
    let host = FakeHost::new();
    host.script("qemu-system-x86_64", "exit 0");
    let report = doctor(&host, Config::default(), pvm_kvm());
    let kvm = report.find(groups::HOST, "kvm").unwrap();
    assert_eq!(kvm.status, Status::Warn);
    assert!(kvm.summary.contains("TCG"), "{}", kvm.summary);
    assert!(kvm.details.iter().any(|d| d.contains("kvm_pvm")), "{kvm:?}");
    assert_eq!(
        report.find(groups::VMM, "driver").unwrap().summary,
        "qemu with tcg"
    );
    let channel = report.find(groups::AGENT, "agent channel").unwrap();
    assert_eq!(channel.status, Status::Pass);
    assert!(
        channel.summary.contains("virtio-serial"),
        "{}",
        channel.summary
    );
    assert!(channel.details[0].contains("not needed"), "{channel:?}");
}

#[test]
fn unopenable_kvm_suggests_the_kvm_group() {
    let host = FakeHost::new();
    host.script("qemu-system-x86_64", "exit 0");
    let mut kvm = good_kvm();
    kvm.openable = false;
    kvm.usable_for_guests = false;
    kvm.reason = "cannot open /dev/kvm".into();
    let c = doctor(&host, Config::default(), kvm)
        .find(groups::HOST, "kvm")
        .unwrap()
        .clone();
    assert_eq!(c.status, Status::Warn);
    assert!(c.hint.unwrap().contains("usermod -aG kvm"));
}

#[test]
fn no_usable_driver_fails_with_an_install_hint() {
    let host = FakeHost::new();
    let report = doctor(&host, Config::default(), pvm_kvm());
    let driver = report.find(groups::VMM, "driver").unwrap();
    assert_eq!(driver.status, Status::Fail);
    assert!(
        driver.hint.as_ref().unwrap().contains("qemu-system-x86"),
        "{driver:?}"
    );
    assert_eq!(
        report.find(groups::AGENT, "agent channel").unwrap().status,
        Status::Warn
    );
}

#[test]
fn explicit_firecracker_preference_explains_why_it_cannot_be_used() {
    let host = FakeHost::new();
    host.script("qemu-system-x86_64", "exit 0");
    let config = Config {
        vmm: VmmPreference::Firecracker,
        ..Config::default()
    };
    let report = doctor(&host, config, pvm_kvm());
    let driver = report.find(groups::VMM, "driver").unwrap();
    assert_eq!(driver.status, Status::Fail);
    assert!(driver.summary.contains("firecracker"), "{}", driver.summary);
    assert!(
        driver.hint.as_ref().unwrap().contains("vmm = \"auto\""),
        "{driver:?}"
    );
}
