//! Networking: which mode is in force and why; with the bridge, whether the host will
//! carry guest traffic (the subnet, IP forwarding, banger's NAT and forward rules, and
//! other firewalls' forward chains that drop it — the most common failure in peer tools).
//!
//! Read-only, and useful as an ordinary user: the mode and the subnet need no privilege;
//! the firewall facts come from the helper's read-only verbs (or its executor, in-process,
//! when doctor runs as root). What cannot be read is said, not guessed.

mod firewall;
pub mod probe;

use banger_config::{NetworkMode, Provenance};
use banger_helper::{HelperProbe, ModeInputs, ModeSelection, Networking, select_network_mode};
use banger_helper_proto::Inventory;
use banger_paths::Mode;
use banger_vmm::DriverKind;

use crate::context::DoctorContext;
use crate::groups;
use crate::registry::CapabilityCheck;
use crate::report::{Check, Status};

pub use probe::{HostNetworkProbe, NetworkProbe};

const MODE: &str = "networking mode";
const HELPER: &str = "root helper";
const FIREWALL: &str = "firewall";
const SUBNET: &str = "bridge subnet";
const DNS: &str = "guest dns";

pub struct Network;

impl CapabilityCheck for Network {
    fn name(&self) -> &'static str {
        "network"
    }

    fn run(&self, ctx: &DoctorContext) -> Vec<Check> {
        // Only a dev-mode user's choice depends on a helper answering; elsewhere do not knock.
        let (socket, probe) = match ctx.layout.mode {
            Mode::DevUser => ctx.network.helper(&ctx.layout.helper_socket_candidates()),
            _ => (
                ctx.layout.helper_socket(),
                HelperProbe::Absent("not consulted".into()),
            ),
        };
        let driver = ctx.selected_driver();
        let vmm = driver.map_or("the VMM".to_string(), |d| d.to_string());
        let selection = select_network_mode(&ModeInputs {
            preference: ctx.config.network_mode_resolved(),
            install: ctx.layout.mode,
            helper_socket: &socket,
            helper: &probe,
            vmm_user_net: driver != Some(DriverKind::Firecracker),
            vmm: &vmm,
        });
        let selection = match selection {
            Ok(selection) => selection,
            Err(err) => {
                return vec![
                    Check::fail(groups::NETWORK, MODE, crate::error_chain(&err))
                        .detail(preference_line(ctx))
                        .hint(format!(
                            "start the helper (sudo banger helper), or set network.mode = \"auto\" in {}",
                            ctx.layout.config_file().display()
                        )),
                ];
            }
        };
        let mut checks = vec![mode_row(ctx, &selection)];
        if selection.networking.is_bridge() {
            checks.extend(bridge_rows(ctx, &selection.networking));
        }
        checks
    }
}

fn preference_line(ctx: &DoctorContext) -> String {
    let pref = ctx.config.network_mode_resolved();
    format!("network.mode: {} ({})", pref.value, pref.source)
}

fn mode_row(ctx: &DoctorContext, selection: &ModeSelection) -> Check {
    let summary = match &selection.networking {
        Networking::BridgeHelper { .. } => "bridge and TAPs, made by the root helper",
        Networking::BridgeInProcess => "bridge and TAPs, made by the daemon itself (root)",
        Networking::User => "QEMU user-mode networking",
        Networking::None => "none: VMs get no network device",
    };
    let check = Check::pass(groups::NETWORK, MODE, summary)
        .detail(selection.reason.clone())
        .detail(preference_line(ctx));
    let chosen = selection.preference.source == Provenance::Config;
    match (&selection.networking, selection.preference.value) {
        (Networking::User, _) => {
            let check = check
                .detail("guests reach the outside through QEMU's NAT (the guest is 10.0.2.15, the host 10.0.2.2); -p ports are forwarded by QEMU")
                .detail("the host cannot reach a guest by address; `banger vm exec` and `ssh NAME.vm` use the agent channel");
            if chosen {
                check
            } else {
                demote(check).hint(
                    "for bridge networking (guests reachable by address, faster): run `sudo banger helper` (see docs/privileges.md)",
                )
            }
        }
        (Networking::None, NetworkMode::None) => check,
        (Networking::None, _) => demote(check).hint(format!(
            "use QEMU (vmm = \"qemu\" in {}) for user-mode networking, or run `sudo banger helper` for the bridge",
            ctx.layout.config_file().display()
        )),
        _ => check,
    }
}

/// The same row as a WARN: it works, but less than it could.
fn demote(mut check: Check) -> Check {
    check.status = Status::Warn;
    check
}

/// The owner whose network doctor checks: the system install's, else whoever runs it.
fn owner_uid(ctx: &DoctorContext) -> u32 {
    match ctx.layout.mode {
        Mode::SystemInstall => banger_config::load_install_meta(&ctx.install_toml)
            .ok()
            .flatten()
            .map_or(ctx.euid, |meta| meta.owner_uid),
        _ => ctx.euid,
    }
}

fn bridge_rows(ctx: &DoctorContext, networking: &Networking) -> Vec<Check> {
    let owner = owner_uid(ctx);
    let mut checks = Vec::new();
    // As root, doctor reads the firewall itself, so whether the helper is up is a
    // question of its own: a refusal (root is not the owner) still proves it listens.
    if let (Networking::BridgeHelper { socket }, 0) = (networking, ctx.euid) {
        checks.push(match ctx.network.helper(std::slice::from_ref(socket)).1 {
            HelperProbe::Answers | HelperProbe::Refuses(_) => Check::pass(
                groups::NETWORK,
                HELPER,
                format!("answers at {}", socket.display()),
            )
            .detail(format!(
                "it serves uid {owner}; doctor, as root, read the firewall directly"
            )),
            HelperProbe::Absent(why) => helper_down(ctx, why),
        });
    }
    let facts = ctx.network.privileged(networking, owner, ctx.euid);
    let (inventory, report) = match facts {
        Ok(Some(facts)) => {
            if let (Networking::BridgeHelper { socket }, false) = (networking, ctx.euid == 0) {
                checks.push(Check::pass(
                    groups::NETWORK,
                    HELPER,
                    format!("answers at {}", socket.display()),
                ));
            }
            (Some(facts.0), Some(facts.1))
        }
        Ok(None) => (None, None),
        Err(err) => {
            checks.push(unreadable(ctx, networking, owner, err));
            (None, None)
        }
    };
    checks.push(subnet_row(ctx, inventory.as_ref()));
    checks.push(dns_row(ctx));
    if let (Some(inventory), Some(report)) = (&inventory, &report) {
        checks.extend(firewall::rows(inventory, report));
    }
    checks
}

fn helper_down(ctx: &DoctorContext, why: String) -> Check {
    let check = Check::fail(groups::NETWORK, HELPER, format!("does not answer: {why}"))
        .detail("VMs cannot get a TAP device or NAT rules until it does");
    match ctx.layout.mode {
        Mode::SystemInstall => check.hint(
            "sudo systemctl restart banger-helper.service; if it keeps failing: journalctl -u banger-helper.service",
        ),
        _ => check.hint("start the helper again: sudo banger helper"),
    }
}

/// The privileged facts could not be read: say why, and what follows.
fn unreadable(ctx: &DoctorContext, networking: &Networking, owner: u32, err: String) -> Check {
    // As root the helper has its own row; this one is about reading the firewall.
    let name = if ctx.euid == 0 { FIREWALL } else { HELPER };
    let check = Check::fail(
        groups::NETWORK,
        name,
        format!("cannot read the firewall: {err}"),
    )
    .detail("without it doctor cannot check IP forwarding, banger's NAT rules or other firewalls");
    match networking {
        Networking::BridgeHelper { .. } if ctx.euid != owner && ctx.euid != 0 => check
            .hint(format!("run banger doctor as the owner (uid {owner}), or as root")),
        Networking::BridgeHelper { .. } if ctx.layout.mode == Mode::SystemInstall => check.hint(
            "sudo systemctl restart banger-helper.service; if it keeps failing: journalctl -u banger-helper.service",
        ),
        Networking::BridgeHelper { .. } => {
            check.hint("start the helper again: sudo banger helper")
        }
        _ => check.hint("install the missing tool named above (sudo apt install nftables)"),
    }
}

fn subnet_row(ctx: &DoctorContext, inventory: Option<&Inventory>) -> Check {
    let bridge = inventory.and_then(|i| i.bridge.as_ref());
    let routes = ctx.network.routes();
    let resolved = banger_helper::subnet::resolve_subnet(
        &ctx.config,
        bridge.map(|b| b.subnet),
        routes.as_ref().ok().map(Vec::as_slice),
        None,
    );
    let subnet = match resolved {
        Ok(subnet) => subnet,
        Err(err) => {
            return Check::fail(groups::NETWORK, SUBNET, crate::error_chain(&err)).hint(format!(
                "set network.subnet in {} to a private subnet no route of this host uses",
                ctx.layout.config_file().display()
            ));
        }
    };
    let line = format!("subnet: {} ({})", subnet.value, subnet.source);
    if let Some(bridge) = bridge {
        let check = Check::pass(
            groups::NETWORK,
            SUBNET,
            format!("{} is on {}", bridge.name, bridge.subnet),
        )
        .detail(line);
        return match ctx.config.network.subnet {
            Some(configured) if configured != bridge.subnet => demote(check)
                .detail(format!("network.subnet = {configured} (config)"))
                .hint("network.subnet takes effect when the bridge is next created: stop the owner's VMs (banger removes the bridge with the last one)"),
            _ => check,
        };
    }
    let Ok(routes) = routes else {
        return Check::pass(
            groups::NETWORK,
            SUBNET,
            format!("{} (the host's routes could not be read)", subnet.value),
        )
        .detail(line);
    };
    let clashes = banger_helper::subnet::clashes(&subnet.value, &routes, None);
    if clashes.is_empty() {
        return Check::pass(
            groups::NETWORK,
            SUBNET,
            format!("{}; the bridge is created with the first VM", subnet.value),
        )
        .detail(line);
    }
    Check::fail(
        groups::NETWORK,
        SUBNET,
        format!(
            "{} overlaps the host's route(s) {}",
            subnet.value,
            clashes.join(", ")
        ),
    )
    .detail(line)
    .hint(format!(
        "set network.subnet in {} to a private subnet no route of this host uses",
        ctx.layout.config_file().display()
    ))
}

fn dns_row(ctx: &DoctorContext) -> Check {
    let read = |p: &std::path::Path| std::fs::read_to_string(p).ok();
    let resolv = read(&ctx.resolv_conf);
    let upstream = read(&ctx.resolved_upstream);
    let dns = ctx
        .config
        .dns_resolved(resolv.as_deref(), upstream.as_deref());
    let list: Vec<String> = dns.value.iter().map(|a| a.to_string()).collect();
    let check = Check::pass(
        groups::NETWORK,
        DNS,
        format!("guests resolve names with {}", list.join(", ")),
    )
    .detail(format!("dns: {} ({})", list.join(", "), dns.source));
    match dns.source {
        Provenance::Builtin => check.detail(format!(
            "{} names no resolver a guest can reach; set network.dns to use your own",
            ctx.resolv_conf.display()
        )),
        _ => check,
    }
}
