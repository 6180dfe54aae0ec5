//! The network group against canned answers: which mode and why, and each bridge row's
//! outcomes. (tests/network_netns.rs runs the same checks against a real namespace.)

use crate::common;

use std::net::Ipv4Addr;

use banger_config::{Config, NetworkMode};
use banger_doctor::{Check, DoctorContext, Report, Status, groups};
use banger_helper::{HelperProbe, Networking};
use banger_helper_proto::{
    Backend, Blocking, BridgeInfo, FirewallManager, FirewallReport, ForeignChain, Inventory,
    LegacyScan,
};
use banger_net::netlink::Route;
use banger_paths::Mode;
use common::{FakeHost, FakeNetwork, ScriptedRunner};

fn context(host: &FakeHost, mode: Mode, config: Config, net: FakeNetwork) -> DoctorContext {
    host.script("qemu-system-x86_64", "exit 0");
    let mut ctx = host.context(config, ScriptedRunner::new());
    ctx.layout = host.layout(mode);
    ctx.network = Box::new(net);
    ctx
}

fn network(ctx: &DoctorContext) -> Vec<Check> {
    let report: Report = banger_doctor::run(ctx);
    report.group(groups::NETWORK).cloned().collect()
}

fn row<'a>(rows: &'a [Check], name: &str) -> &'a Check {
    rows.iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no {name} row in {rows:#?}"))
}

fn with_mode(mode: NetworkMode) -> Config {
    let mut config = Config::default();
    config.network.mode = Some(mode);
    config
}

fn healthy() -> (Inventory, FirewallReport) {
    (
        Inventory {
            bridge: Some(BridgeInfo {
                name: "bgbr1000".into(),
                subnet: "10.213.0.0/24".parse().unwrap(),
                gateway: Ipv4Addr::new(10, 213, 0, 1),
            }),
            nat: true,
            ..Inventory::default()
        },
        FirewallReport {
            ip_forward: true,
            bridge: "bgbr1000".into(),
            nat_table: true,
            nat_problems: Vec::new(),
            forward_drop: Vec::new(),
            legacy: LegacyScan::NotInUse,
        },
    )
}

#[test]
fn an_ordinary_user_without_a_helper_gets_user_mode_as_a_warning() {
    let host = FakeHost::new();
    let rows = network(&context(
        &host,
        Mode::DevUser,
        Config::default(),
        FakeNetwork::default(),
    ));
    assert_eq!(rows.len(), 1, "user mode has no bridge rows: {rows:#?}");
    let mode = row(&rows, "networking mode");
    assert_eq!(mode.status, Status::Warn);
    assert_eq!(mode.summary, "QEMU user-mode networking");
    assert!(mode.details[0].contains("no root helper serves it (no helper socket (fake))"));
    assert!(mode.hint.as_ref().unwrap().contains("sudo banger helper"));

    // Chosen explicitly, it is a pass.
    let rows = network(&context(
        &host,
        Mode::DevUser,
        with_mode(NetworkMode::User),
        FakeNetwork::default(),
    ));
    assert_eq!(row(&rows, "networking mode").status, Status::Pass);
    let rows = network(&context(
        &host,
        Mode::DevRoot,
        with_mode(NetworkMode::None),
        FakeNetwork::default(),
    ));
    let mode = row(&rows, "networking mode");
    assert_eq!(
        (mode.status, mode.summary.as_str()),
        (Status::Pass, "none: VMs get no network device")
    );
}

#[test]
fn a_helper_started_by_hand_gives_an_ordinary_user_the_bridge() {
    let host = FakeHost::new();
    let net = FakeNetwork {
        helper: HelperProbe::Answers,
        privileged: Ok(Some(healthy())),
        ..FakeNetwork::default()
    };
    let asked = net.asked.clone();
    let rows = network(&context(&host, Mode::DevUser, Config::default(), net));
    let mode = row(&rows, "networking mode");
    assert_eq!(
        (mode.status, mode.summary.as_str()),
        (Status::Pass, "bridge and TAPs, made by the root helper")
    );
    for name in [
        "root helper",
        "bridge subnet",
        "guest dns",
        "ip forwarding",
        "nat rules",
        "forward policy",
    ] {
        assert_eq!(
            row(&rows, name).status,
            Status::Pass,
            "{:#?}",
            row(&rows, name)
        );
    }
    let asked = asked.lock().unwrap();
    assert!(matches!(asked[0].0, Networking::BridgeHelper { .. }));
    assert_eq!(
        (asked[0].1, asked[0].2),
        (1000, 1000),
        "the owner is the user"
    );
}

#[test]
fn bridge_insisted_on_without_a_helper_fails() {
    let host = FakeHost::new();
    let rows = network(&context(
        &host,
        Mode::DevUser,
        with_mode(NetworkMode::Bridge),
        FakeNetwork::default(),
    ));
    let mode = row(&rows, "networking mode");
    assert_eq!(mode.status, Status::Fail);
    assert!(mode.summary.contains("needs the root helper"), "{mode:?}");
    // (Firecracker, which has no user-mode networking, is covered by the selection's own
    // table in banger-helper: this build cannot select it yet.)
}

#[test]
fn a_system_install_reads_through_the_helper_for_its_owner() {
    let host = FakeHost::new();
    std::fs::write(
        host.path("etc/install.toml"),
        "owner_user = \"al\"\nowner_uid = 1234\n",
    )
    .unwrap();
    let net = FakeNetwork {
        privileged: Err(
            "cannot reach the root helper at /run/banger/helper.sock: Connection refused".into(),
        ),
        ..FakeNetwork::default()
    };
    let asked = net.asked.clone();
    let rows = network(&context(&host, Mode::SystemInstall, Config::default(), net));
    assert_eq!(row(&rows, "networking mode").status, Status::Pass);
    let helper = row(&rows, "root helper");
    assert_eq!(helper.status, Status::Fail);
    assert!(helper.summary.contains("Connection refused"));
    // Doctor runs as 1000 here, not the owner 1234: the hint says who can read it.
    assert!(
        helper
            .hint
            .as_ref()
            .unwrap()
            .contains("as the owner (uid 1234)"),
        "{helper:?}"
    );
    assert_eq!(asked.lock().unwrap()[0].1, 1234);
    // The rows that need no privilege are still there.
    assert_eq!(row(&rows, "bridge subnet").status, Status::Pass);
}

#[test]
fn subnet_clashes_and_drift_are_reported() {
    let host = FakeHost::new();
    let mut config = Config::default();
    config.network.subnet = Some("192.168.0.0/16".parse().unwrap());
    let route = Route {
        destination: Ipv4Addr::new(192, 168, 1, 0),
        prefix: 24,
        oif: Some(2),
        table: 254,
    };
    let net = FakeNetwork {
        helper: HelperProbe::Answers,
        routes: Ok(vec![route]),
        ..FakeNetwork::default()
    };
    let rows = network(&context(&host, Mode::DevUser, config.clone(), net));
    let subnet = row(&rows, "bridge subnet");
    assert_eq!(subnet.status, Status::Fail);
    assert_eq!(
        subnet.summary,
        "192.168.0.0/16 overlaps the host's route(s) 192.168.1.0/24"
    );
    assert!(subnet.hint.as_ref().unwrap().contains("network.subnet"));

    // The bridge exists on another subnet than configured: a warning, not a failure.
    let net = FakeNetwork {
        helper: HelperProbe::Answers,
        privileged: Ok(Some(healthy())),
        ..FakeNetwork::default()
    };
    let rows = network(&context(&host, Mode::DevUser, config, net));
    let subnet = row(&rows, "bridge subnet");
    assert_eq!(subnet.status, Status::Warn, "{subnet:#?}");
    assert_eq!(subnet.summary, "bgbr1000 is on 10.213.0.0/24");
}

#[test]
fn a_forward_drop_fails_with_its_fix_and_dns_comes_from_the_host() {
    let host = FakeHost::new();
    std::fs::write(host.path("etc/resolv.conf"), "nameserver 127.0.0.53\n").unwrap();
    std::fs::write(
        host.path("run/resolved-upstream.conf"),
        "nameserver 10.9.8.7\n",
    )
    .unwrap();
    let (inventory, mut report) = healthy();
    report.forward_drop.push(ForeignChain {
        family: "inet".into(),
        table: "filter".into(),
        chain: "forward".into(),
        backend: Backend::Nftables,
        blocking: Blocking::PolicyDrop,
        manager: FirewallManager::Nftables,
        accepts_from_bridge: false,
        accepts_to_bridge: false,
    });
    let net = FakeNetwork {
        helper: HelperProbe::Answers,
        privileged: Ok(Some((inventory, report))),
        ..FakeNetwork::default()
    };
    let rows = network(&context(&host, Mode::DevUser, Config::default(), net));
    let policy = row(&rows, "forward policy");
    assert_eq!(policy.status, Status::Fail);
    assert_eq!(
        policy.hint.as_deref(),
        Some(
            "let bgbr1000 through: sudo nft insert rule inet filter forward iifname bgbr1000 accept && sudo nft insert rule inet filter forward oifname bgbr1000 accept"
        )
    );
    let dns = row(&rows, "guest dns");
    assert_eq!(dns.summary, "guests resolve names with 10.9.8.7");
    assert_eq!(dns.details[0], "dns: 10.9.8.7 (auto)");
}

#[test]
fn root_in_a_system_install_checks_the_helper_and_reads_the_firewall_itself() {
    let host = FakeHost::new();
    std::fs::write(
        host.path("etc/install.toml"),
        "owner_user = \"al\"\nowner_uid = 1234\n",
    )
    .unwrap();
    let net = FakeNetwork {
        // Root is not the owner: the helper refuses it, which proves it is up.
        helper: HelperProbe::Refuses("uid 0 may not use this helper".into()),
        privileged: Ok(Some(healthy())),
        ..FakeNetwork::default()
    };
    let asked = net.asked.clone();
    let mut ctx = context(&host, Mode::SystemInstall, Config::default(), net);
    ctx.euid = 0;
    let rows = network(&ctx);
    let helper = row(&rows, "root helper");
    assert_eq!(helper.status, Status::Pass, "{helper:#?}");
    assert!(helper.details[0].contains("as root, read the firewall directly"));
    assert_eq!(rows.iter().filter(|c| c.name == "root helper").count(), 1);
    assert_eq!(asked.lock().unwrap()[0].1, 1234, "read for the owner");

    let net = FakeNetwork {
        helper: HelperProbe::Absent("cannot reach the root helper".into()),
        privileged: Err("nft is not installed".into()),
        ..FakeNetwork::default()
    };
    let mut ctx = context(&host, Mode::SystemInstall, Config::default(), net);
    ctx.euid = 0;
    let rows = network(&ctx);
    let helper = row(&rows, "root helper");
    assert_eq!(helper.status, Status::Fail);
    assert!(
        helper
            .hint
            .as_ref()
            .unwrap()
            .contains("systemctl restart banger-helper.service")
    );
    assert_eq!(row(&rows, "firewall").status, Status::Fail);
}
