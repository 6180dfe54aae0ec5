//! VM defaults show each value with its provenance; a broken config is reported,
//! not fatal.

use crate::common;

use banger_config::{Config, VmDefaultsConfig};
use banger_doctor::{DoctorContext, Status, groups};
use banger_paths::Mode;
use banger_system::HostResources;
use common::{FakeHost, ScriptedRunner};

const GIB: u64 = 1024 * 1024 * 1024;

fn defaults_details(ctx: &DoctorContext) -> Vec<String> {
    let report = banger_doctor::run(ctx);
    let c = report.find(groups::DEFAULTS, "vm defaults").unwrap();
    assert_eq!(c.status, Status::Pass);
    c.details.clone()
}

#[test]
fn shows_config_auto_and_builtin_sources() {
    let host = FakeHost::new();
    let config = Config {
        vm_defaults: VmDefaultsConfig {
            vcpu: Some(3),
            memory_mib: None,
            disk_bytes: None,
        },
        ..Config::default()
    };
    let mut ctx = host.context(config, ScriptedRunner::new());
    ctx.host_resources = Some(HostResources {
        cpus: 8,
        total_memory_bytes: 16 * GIB,
    });
    let details = defaults_details(&ctx);
    assert_eq!(details[0], "vcpu: 3 (config)");
    assert_eq!(details[1], "memory: 2048 MiB (auto)");
    assert_eq!(details[2], "disk: 8 GiB (builtin)");
    assert!(
        details.iter().any(|d| d.contains("8 CPUs and 16 GiB")),
        "{details:?}"
    );
    assert!(
        details.last().unwrap().contains("[vm_defaults]"),
        "{details:?}"
    );
}

#[test]
fn a_default_larger_than_the_host_is_a_warning() {
    let host = FakeHost::new();
    let config = Config {
        vm_defaults: VmDefaultsConfig {
            vcpu: None,
            memory_mib: Some(8192),
            disk_bytes: None,
        },
        ..Config::default()
    };
    let mut ctx = host.context(config, ScriptedRunner::new());
    ctx.host_resources = Some(HostResources {
        cpus: 2,
        total_memory_bytes: 4 * GIB,
    });
    let report = banger_doctor::run(&ctx);
    let c = report.find(groups::DEFAULTS, "vm defaults").unwrap();
    assert_eq!(c.status, Status::Warn, "{c:?}");
    assert!(
        c.summary.contains("8192 MiB (config)") && c.summary.contains("4096 MiB"),
        "{}",
        c.summary
    );
    assert!(
        c.hint
            .as_deref()
            .unwrap_or_default()
            .contains("at most 4096 MiB"),
        "{c:?}"
    );
}

#[test]
fn unreadable_host_falls_back_to_builtin() {
    let host = FakeHost::new();
    let mut ctx = host.context(Config::default(), ScriptedRunner::new());
    ctx.host_resources = None;
    let details = defaults_details(&ctx);
    assert!(details[0].ends_with("(builtin)"), "{details:?}");
    assert!(details[1].ends_with("(builtin)"), "{details:?}");
    assert!(
        details.iter().any(|d| d.contains("could not be read")),
        "{details:?}"
    );
}

#[test]
fn broken_config_is_a_fail_row_and_doctor_carries_on() {
    let host = FakeHost::new();
    let config_path = host.path("config/config.toml");
    std::fs::write(&config_path, "[vm_defaults]\nvcpu = \"many\"\n").unwrap();
    let loaded = banger_config::load(&config_path);
    assert!(loaded.is_err());
    let mut ctx = DoctorContext::from_host(host.layout(Mode::DevUser), loaded);
    ctx.search_path = Some(host.path("bin").into_os_string());
    ctx.install_toml = host.path("etc/install.toml");
    let report = banger_doctor::run(&ctx);
    let c = report.find(groups::CONFIG, "config file").unwrap();
    assert_eq!(c.status, Status::Fail);
    assert!(c.summary.contains("config.toml:2:"), "{}", c.summary);
    // Every other group still ran.
    for group in [
        groups::HOST,
        groups::STATE,
        groups::DEFAULTS,
        groups::VMM,
        groups::SECURITY,
    ] {
        assert!(report.group(group).next().is_some(), "{group} missing");
    }
}

#[test]
fn valid_config_file_is_named() {
    let host = FakeHost::new();
    let config_path = host.path("config/config.toml");
    std::fs::write(&config_path, "vmm = \"qemu\"\n").unwrap();
    let config = banger_config::load(&config_path).unwrap();
    let report = banger_doctor::run(&host.context(config, ScriptedRunner::new()));
    let c = report.find(groups::CONFIG, "config file").unwrap();
    assert_eq!(c.status, Status::Pass);
    assert!(c.summary.contains("config.toml"), "{}", c.summary);
}

#[test]
fn lifecycle_tools_name_their_debian_package() {
    let host = FakeHost::new();
    // Only ip is installed; QEMU is the configured driver and is present.
    host.script("ip", "exit 0");
    host.script("qemu-system-x86_64", "exit 0");
    let config = Config {
        vmm: banger_config::VmmPreference::Qemu,
        ..Config::default()
    };
    let report = banger_doctor::run(&host.context(config, ScriptedRunner::new()));
    let row = |name: &str| report.find(groups::LIFECYCLE, name).unwrap().clone();

    assert_eq!(row("ip").status, Status::Pass);
    assert_eq!(row("qemu-system-x86_64").status, Status::Pass);
    for (tool, package) in [("nft", "nftables"), ("mkfs.ext4", "e2fsprogs")] {
        let c = row(tool);
        assert_eq!(c.status, Status::Fail, "{c:?}");
        assert!(
            c.hint
                .unwrap()
                .contains(&format!("sudo apt install {package}"))
        );
    }
    // qemu-img only speeds up disks: a warning.
    let c = row("qemu-img");
    assert_eq!(c.status, Status::Warn, "{c:?}");
    assert!(c.hint.unwrap().contains("qemu-utils"));
}

#[test]
fn qemu_binary_is_only_required_when_qemu_is_the_driver() {
    let host = FakeHost::new();
    let config = Config {
        vmm: banger_config::VmmPreference::Firecracker,
        ..Config::default()
    };
    let report = banger_doctor::run(&host.context(config, ScriptedRunner::new()));
    assert!(
        report
            .find(groups::LIFECYCLE, "qemu-system-x86_64")
            .is_none()
    );
}
