//! The rows that read the helper's firewall report: IP forwarding, banger's NAT and
//! forward rules, and other firewalls' forward chains.

use banger_helper_proto::{
    Backend, Blocking, FirewallManager, FirewallReport, ForeignChain, Inventory, LegacyScan,
    nft_table_name,
};
use banger_net::firewall::fix;

use crate::groups;
use crate::report::Check;

const FORWARDING: &str = "ip forwarding";
const NAT: &str = "nat rules";
const FORWARD_POLICY: &str = "forward policy";

pub fn rows(inventory: &Inventory, report: &FirewallReport) -> Vec<Check> {
    vec![
        forwarding(inventory, report),
        nat(inventory, report),
        forward_policy(report),
    ]
}

fn forwarding(inventory: &Inventory, report: &FirewallReport) -> Check {
    if report.ip_forward {
        return Check::pass(groups::NETWORK, FORWARDING, "net.ipv4.ip_forward is on");
    }
    if !report.nat_table && inventory.bridge.is_none() {
        return Check::pass(
            groups::NETWORK,
            FORWARDING,
            "off; banger turns it on when the first VM starts",
        );
    }
    Check::fail(
        groups::NETWORK,
        FORWARDING,
        "net.ipv4.ip_forward is off while banger's network is up: guests cannot reach the outside, nor published ports reach guests",
    )
    .detail("banger turned it on; something turned it off since (a sysctl.d file with net.ipv4.ip_forward = 0 applied again, a network manager, a firewall reload)")
    .hint("sudo sysctl -w net.ipv4.ip_forward=1, and find what turns it off: grep -r ip_forward /etc/sysctl.conf /etc/sysctl.d")
}

fn nat(inventory: &Inventory, report: &FirewallReport) -> Check {
    let table = table_name(report);
    if !report.nat_table {
        return match &inventory.bridge {
            None => Check::pass(
                groups::NETWORK,
                NAT,
                format!("not created yet; {table} is created when the first VM starts"),
            ),
            Some(bridge) => Check::fail(
                groups::NETWORK,
                NAT,
                format!("{} is up but the nftables table {table} is gone: guests have no way out and published ports are dead", bridge.name),
            )
            .detail("something removed it: `nft flush ruleset` (a firewall service reloading its rules, an nftables.conf that starts with it)")
            .hint("start or restart a VM (banger recreates the table); if it disappears again, drop the `flush ruleset` from that firewall's configuration"),
        };
    }
    if report.nat_problems.is_empty() {
        let published = inventory.publishes.len();
        return Check::pass(groups::NETWORK, NAT, format!("{table} is intact")).detail(format!(
            "masquerade and forward rules for {}, {published} published port(s)",
            report.bridge
        ));
    }
    Check::fail(
        groups::NETWORK,
        NAT,
        format!("{table} was changed behind banger's back"),
    )
    .details(report.nat_problems.iter().cloned())
    .hint("start or restart a VM: banger rewrites the table's rules (published ports are kept); remove any rule you added to it by hand")
}

fn table_name(report: &FirewallReport) -> String {
    // The bridge is bgbr<uid>; the table is named after it.
    report
        .bridge
        .strip_prefix(banger_helper_proto::BRIDGE_PREFIX)
        .and_then(|uid| uid.parse::<u32>().ok())
        .map_or_else(|| format!("banger_{}", report.bridge), nft_table_name)
}

fn describe(c: &ForeignChain) -> String {
    let owner = match c.manager {
        FirewallManager::Docker => "docker's ",
        FirewallManager::Ufw => "ufw's ",
        FirewallManager::Firewalld => "firewalld's ",
        FirewallManager::Iptables | FirewallManager::Nftables => "",
    };
    let place = match c.backend {
        Backend::Nftables => format!("{} {} {}", c.family, c.table, c.chain),
        Backend::IptablesLegacy => format!("{} {} (legacy iptables)", c.table, c.chain),
    };
    let how = match c.blocking {
        Blocking::PolicyDrop => "has policy drop",
        Blocking::FinalRule => "ends by dropping everything else",
    };
    format!("{owner}{place} {how}")
}

fn forward_policy(report: &FirewallReport) -> Check {
    let bridge = &report.bridge;
    let blocking: Vec<&ForeignChain> = report
        .forward_drop
        .iter()
        .filter(|c| !c.lets_guests_through())
        .collect();
    let handled: Vec<String> = report
        .forward_drop
        .iter()
        .filter(|c| c.lets_guests_through())
        .map(|c| format!("{}, but accepts {bridge}'s traffic", describe(c)))
        .collect();
    let legacy = match &report.legacy {
        LegacyScan::NotInUse => Some("legacy iptables: not in use".to_string()),
        LegacyScan::Inspected => Some("legacy iptables: inspected".to_string()),
        LegacyScan::Unknown => {
            Some("legacy iptables: not reported (the helper predates this check)".to_string())
        }
        LegacyScan::Unreadable { .. } => None,
    };

    if !blocking.is_empty() {
        let mut check = Check::fail(
            groups::NETWORK,
            FORWARD_POLICY,
            format!(
                "forwarded traffic of {bridge} is dropped by another firewall: guests cannot reach the outside, nor published ports reach guests"
            ),
        );
        let mut commands = Vec::new();
        for c in &blocking {
            let partly = match (c.accepts_from_bridge, c.accepts_to_bridge) {
                (true, false) => " (it accepts traffic from the guests, not to them)",
                (false, true) => " (it accepts traffic to the guests, not from them)",
                _ => "",
            };
            check = check.detail(format!("{}{partly}", describe(c)));
            if let Some(note) = fix::lifetime_note(c) {
                check = check.detail(note);
            }
            commands.extend(
                fix::commands(c, bridge)
                    .iter()
                    .map(|argv| fix::shell_line(argv)),
            );
        }
        check = check
            .details(handled)
            .details(legacy)
            .detail("a drop in any table is final; accepting the bridge there is safe: banger's own table still drops unsolicited connections to guests");
        let sudo: Vec<String> = commands.iter().map(|c| format!("sudo {c}")).collect();
        return check.hint(format!("let {bridge} through: {}", sudo.join(" && ")));
    }
    if let LegacyScan::Unreadable { reason } = &report.legacy {
        return Check::warn(
            groups::NETWORK,
            FORWARD_POLICY,
            "nftables lets guests through; legacy iptables could not be inspected",
        )
        .detail(reason.clone())
        .details(handled)
        .hint("install the iptables package (iptables-legacy) so the helper can read the legacy tables, or check `sudo iptables-legacy -S FORWARD` yourself");
    }
    let summary = if handled.is_empty() {
        "no other firewall drops forwarded traffic".to_string()
    } else {
        format!("other firewalls drop forwarded traffic, but let {bridge} through")
    };
    Check::pass(groups::NETWORK, FORWARD_POLICY, summary)
        .details(handled)
        .details(legacy)
}

#[cfg(test)]
mod tests {
    use banger_helper_proto::BridgeInfo;

    use super::*;
    use crate::report::Status;

    fn report() -> FirewallReport {
        FirewallReport {
            ip_forward: true,
            bridge: "bgbr1000".into(),
            nat_table: true,
            nat_problems: Vec::new(),
            forward_drop: Vec::new(),
            legacy: LegacyScan::NotInUse,
        }
    }

    fn up() -> Inventory {
        Inventory {
            bridge: Some(BridgeInfo {
                name: "bgbr1000".into(),
                subnet: "10.213.0.0/24".parse().unwrap(),
                gateway: "10.213.0.1".parse().unwrap(),
            }),
            ..Inventory::default()
        }
    }

    fn docker(from: bool, to: bool) -> ForeignChain {
        ForeignChain {
            family: "ip".into(),
            table: "filter".into(),
            chain: "FORWARD".into(),
            backend: Backend::Nftables,
            blocking: Blocking::PolicyDrop,
            manager: FirewallManager::Docker,
            accepts_from_bridge: from,
            accepts_to_bridge: to,
        }
    }

    fn find<'a>(rows: &'a [Check], name: &str) -> &'a Check {
        rows.iter().find(|c| c.name == name).unwrap()
    }

    #[test]
    fn a_healthy_bridge_passes_every_row() {
        let rows = rows(&up(), &report());
        assert!(rows.iter().all(|c| c.status == Status::Pass), "{rows:#?}");
        assert_eq!(find(&rows, NAT).summary, "banger_bgbr1000 is intact");
    }

    #[test]
    fn nothing_created_yet_is_fine() {
        let mut r = report();
        r.ip_forward = false;
        r.nat_table = false;
        let rows = rows(&Inventory::default(), &r);
        assert!(rows.iter().all(|c| c.status == Status::Pass), "{rows:#?}");
        assert!(find(&rows, FORWARDING).summary.contains("turns it on"));
        assert!(find(&rows, NAT).summary.contains("not created yet"));
    }

    #[test]
    fn damage_and_drift_fail_with_the_fix() {
        let mut r = report();
        r.ip_forward = false;
        r.nat_table = false;
        let rows = rows(&up(), &r);
        assert_eq!(find(&rows, FORWARDING).status, Status::Fail);
        let nat = find(&rows, NAT);
        assert_eq!(nat.status, Status::Fail);
        assert!(nat.summary.contains("banger_bgbr1000 is gone"), "{nat:?}");

        let mut r = report();
        r.nat_problems = vec!["rule \"replies to guests\" is missing from chain forward".into()];
        let nat = find(&rows_of(&r), NAT).clone();
        assert_eq!(nat.status, Status::Fail);
        assert_eq!(nat.details, r.nat_problems);
    }

    fn rows_of(r: &FirewallReport) -> Vec<Check> {
        rows(&up(), r)
    }

    #[test]
    fn a_forward_drop_fails_with_the_exact_commands() {
        let mut r = report();
        r.forward_drop = vec![docker(false, false)];
        let row = find(&rows_of(&r), FORWARD_POLICY).clone();
        assert_eq!(row.status, Status::Fail);
        assert!(row.details[0].starts_with("docker's ip filter FORWARD has policy drop"));
        assert_eq!(
            row.hint.as_deref(),
            Some(
                "let bgbr1000 through: sudo iptables-nft -I DOCKER-USER -i bgbr1000 -j ACCEPT && sudo iptables-nft -I DOCKER-USER -o bgbr1000 -j ACCEPT"
            )
        );

        // Half-open: only the missing direction is suggested, and said.
        r.forward_drop = vec![docker(true, false)];
        let row = find(&rows_of(&r), FORWARD_POLICY).clone();
        assert!(row.details[0].contains("not to them"), "{row:?}");
        assert_eq!(row.hint.unwrap().matches("sudo ").count(), 1);

        // Let through: a pass that says why.
        r.forward_drop = vec![docker(true, true)];
        let row = find(&rows_of(&r), FORWARD_POLICY).clone();
        assert_eq!(row.status, Status::Pass);
        assert!(row.details[0].contains("accepts bgbr1000's traffic"));
    }

    #[test]
    fn unreadable_legacy_tables_are_said_not_guessed() {
        let mut r = report();
        r.legacy = LegacyScan::Unreadable {
            reason: "iptables-legacy is not installed".into(),
        };
        let row = find(&rows_of(&r), FORWARD_POLICY).clone();
        assert_eq!(row.status, Status::Warn);
        assert_eq!(row.details[0], "iptables-legacy is not installed");
    }
}
