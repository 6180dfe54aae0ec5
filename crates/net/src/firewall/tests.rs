use banger_helper_proto::FirewallManager;
use serde_json::{Value, json};

use super::*;

const BR: &str = "bgbr1000";

fn chain(table: &str, name: &str, hook: Option<&str>, policy: &str) -> Value {
    let mut c = json!({ "family": "ip", "table": table, "name": name, "handle": 1 });
    if let Some(hook) = hook {
        c["type"] = json!("filter");
        c["hook"] = json!(hook);
        c["prio"] = json!(0);
        c["policy"] = json!(policy);
    }
    json!({ "chain": c })
}

fn iface(key: &str, name: &str) -> Value {
    json!({ "match": { "op": "==", "left": { "meta": { "key": key } }, "right": name } })
}

fn rule(table: &str, chain: &str, expr: Vec<Value>) -> Value {
    json!({ "rule": { "family": "ip", "table": table, "chain": chain, "handle": 9, "expr": expr } })
}

fn counter() -> Value {
    json!({ "counter": { "packets": 0, "bytes": 0 } })
}

/// What `nft -j list ruleset` shows with docker on iptables-nft: FORWARD drops, and
/// jumps to DOCKER-USER first.
fn docker(user_rules: Vec<Value>) -> Value {
    let mut items = vec![
        json!({ "metainfo": { "version": "1.0.6", "json_schema_version": 1 } }),
        json!({ "table": { "family": "ip", "name": "filter", "handle": 1 } }),
        chain("filter", "FORWARD", Some("forward"), "drop"),
        chain("filter", "DOCKER-USER", None, ""),
        chain("filter", "DOCKER", None, ""),
        chain("filter", "INPUT", Some("input"), "accept"),
        rule(
            "filter",
            "FORWARD",
            vec![counter(), json!({ "jump": { "target": "DOCKER-USER" } })],
        ),
        rule(
            "filter",
            "FORWARD",
            vec![
                iface("oifname", "docker0"),
                json!({ "xt": { "type": "match", "name": "conntrack" } }),
                counter(),
                json!({ "accept": null }),
            ],
        ),
        rule(
            "filter",
            "FORWARD",
            vec![iface("iifname", "docker0"), json!({ "accept": null })],
        ),
    ];
    items.extend(user_rules);
    items.push(rule(
        "filter",
        "DOCKER-USER",
        vec![counter(), json!({ "return": null })],
    ));
    items.push(json!({ "table": { "family": "ip", "name": "banger_bgbr1000", "handle": 5 } }));
    items.push(
        json!({ "chain": { "family": "ip", "table": "banger_bgbr1000", "name": "forward",
        "handle": 6, "type": "filter", "hook": "forward", "prio": 0, "policy": "drop" } }),
    );
    json!({ "nftables": items })
}

fn blockers(ruleset: &Value) -> Vec<ForeignChain> {
    forward_blockers(&tables_from_ruleset(ruleset), BR)
}

#[test]
fn dockers_forward_drop_is_found_and_ours_is_not() {
    let found = blockers(&docker(vec![]));
    assert_eq!(found.len(), 1, "{found:?}");
    let c = &found[0];
    assert_eq!(
        (c.family.as_str(), c.table.as_str(), c.chain.as_str()),
        ("ip", "filter", "FORWARD")
    );
    assert_eq!(c.manager, FirewallManager::Docker);
    assert_eq!(c.blocking, Blocking::PolicyDrop);
    assert!(!c.accepts_from_bridge && !c.accepts_to_bridge);
    assert_eq!(
        fix::commands(c, BR),
        [
            [
                "iptables-nft",
                "-I",
                "DOCKER-USER",
                "-i",
                BR,
                "-j",
                "ACCEPT"
            ],
            [
                "iptables-nft",
                "-I",
                "DOCKER-USER",
                "-o",
                BR,
                "-j",
                "ACCEPT"
            ],
        ]
    );
    let tables = tables_from_ruleset(&docker(vec![]));
    assert!(has_owner_table(&tables, "banger_bgbr1000"));
    assert!(!has_owner_table(&tables, "banger_bgbr0"));
    assert!(!has_owner_table(&tables, "filter"));
}

#[test]
fn rules_that_accept_the_bridge_are_followed_through_jumps() {
    let user = |key, name: &str| {
        rule(
            "filter",
            "DOCKER-USER",
            vec![iface(key, name), counter(), json!({ "accept": null })],
        )
    };
    // Only inbound accepted: outbound (replies, published ports) still blocked.
    let c = &blockers(&docker(vec![user("iifname", BR)]))[0];
    assert!(c.accepts_from_bridge && !c.accepts_to_bridge && !c.lets_guests_through());
    assert_eq!(fix::commands(c, BR).len(), 1, "only the missing direction");
    // Both: let through, nothing to fix.
    let c = &blockers(&docker(vec![user("iifname", BR), user("oifname", BR)]))[0];
    assert!(c.lets_guests_through());
    assert!(fix::commands(c, BR).is_empty());
    // Another bridge's rules do not count; a wildcard does.
    let other = docker(vec![user("iifname", "bgbr1"), user("oifname", "bgbr1")]);
    assert!(!blockers(&other)[0].accepts_from_bridge);
    let wild = docker(vec![user("iifname", "bgbr*"), user("oifname", "bgbr*")]);
    assert!(blockers(&wild)[0].lets_guests_through());
    // A rule with more conditions than the interface does not count.
    let restricted = rule(
        "filter",
        "DOCKER-USER",
        vec![
            iface("oifname", BR),
            json!({ "match": { "op": "in", "left": { "ct": { "key": "state" } }, "right": ["established", "related"] } }),
            json!({ "accept": null }),
        ],
    );
    assert!(!blockers(&docker(vec![user("iifname", BR), restricted]))[0].accepts_to_bridge);
    // A drop of the bridge before the accept wins.
    let dropped = rule(
        "filter",
        "DOCKER-USER",
        vec![iface("iifname", BR), json!({ "drop": null })],
    );
    assert!(!blockers(&docker(vec![dropped, user("iifname", BR)]))[0].accepts_from_bridge);
}

#[test]
fn a_final_reject_rule_blocks_like_a_drop_policy_and_goto_zones_are_followed() {
    // firewalld's shape: policy accept, zone dispatch by interface, a final reject.
    let fw = |zone_rules: Vec<Value>| {
        let mut items = vec![
            json!({ "table": { "family": "inet", "name": "firewalld", "handle": 1 } }),
            json!({ "chain": { "family": "inet", "table": "firewalld", "name": "filter_FORWARD",
                "handle": 2, "type": "filter", "hook": "forward", "prio": 10, "policy": "accept" } }),
            json!({ "chain": { "family": "inet", "table": "firewalld", "name": "filter_FWD_trusted", "handle": 3 } }),
        ];
        items.extend(zone_rules);
        items.push(json!({ "rule": { "family": "inet", "table": "firewalld", "chain": "filter_FORWARD",
            "handle": 10, "expr": [ { "reject": { "type": "icmpx", "expr": "admin-prohibited" } } ] } }));
        items.push(
            json!({ "rule": { "family": "inet", "table": "firewalld", "chain": "filter_FWD_trusted",
            "handle": 11, "expr": [ { "accept": null } ] } }),
        );
        json!({ "nftables": items })
    };
    let c = &blockers(&fw(vec![]))[0];
    assert_eq!(c.blocking, Blocking::FinalRule);
    assert_eq!(c.manager, FirewallManager::Firewalld);
    assert_eq!(
        fix::commands(c, BR)[0],
        [
            "firewall-cmd",
            "--permanent",
            "--zone=trusted",
            "--add-interface=bgbr1000"
        ]
    );
    let dispatch = |key| {
        json!({ "rule": { "family": "inet", "table": "firewalld", "chain": "filter_FORWARD",
            "handle": 4, "expr": [ iface(key, BR), { "goto": { "target": "filter_FWD_trusted" } } ] } })
    };
    let c = &blockers(&fw(vec![dispatch("iifname"), dispatch("oifname")]))[0];
    assert!(c.lets_guests_through(), "{c:?}");
}

#[test]
fn only_ipv4_forwarding_families_count_and_plain_nft_gets_nft_fixes() {
    let ruleset = |family: &str| {
        json!({ "nftables": [
            { "table": { "family": family, "name": "filter", "handle": 1 } },
            { "chain": { "family": family, "table": "filter", "name": "forward", "handle": 2,
                "type": "filter", "hook": "forward", "prio": 0, "policy": "drop" } }
        ] })
    };
    assert!(blockers(&ruleset("bridge")).is_empty());
    assert!(blockers(&ruleset("ip6")).is_empty());
    let c = &blockers(&ruleset("inet"))[0];
    assert_eq!(c.manager, FirewallManager::Nftables);
    assert_eq!(
        fix::commands(c, BR),
        [
            [
                "nft", "insert", "rule", "inet", "filter", "forward", "iifname", BR, "accept"
            ],
            [
                "nft", "insert", "rule", "inet", "filter", "forward", "oifname", BR, "accept"
            ],
        ]
    );
    assert!(blockers(&json!({})).is_empty());
}

#[test]
fn legacy_iptables_output_is_read() {
    let text = r#"-P INPUT ACCEPT
-P FORWARD DROP
-P OUTPUT ACCEPT
-N DOCKER
-N DOCKER-USER
-A FORWARD -j DOCKER-USER
-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -p tcp --syn -j DROP
-A DOCKER-USER -i bgbr1000 -m comment --comment "banger guests" -j ACCEPT
-A DOCKER-USER -j RETURN
"#;
    let table = legacy::parse(text);
    assert_eq!(table.backend, Backend::IptablesLegacy);
    let forward = table.chain("FORWARD").unwrap();
    assert_eq!(forward.hook.as_deref(), Some("forward"));
    assert_eq!(forward.policy.as_deref(), Some("drop"));
    assert_eq!(
        forward.rules[0].verdict,
        Verdict::Jump("DOCKER-USER".into())
    );
    assert!(forward.rules[1].other, "conntrack is a condition");
    assert_eq!(
        forward.rules[2].verdict,
        Verdict::Drop,
        "--syn takes no value"
    );
    let user = table.chain("DOCKER-USER").unwrap();
    assert!(!user.rules[0].other, "a comment is not a condition");

    let found = forward_blockers(&[table], BR);
    let c = &found[0];
    assert_eq!(c.manager, FirewallManager::Docker);
    assert!(c.accepts_from_bridge && !c.accepts_to_bridge);
    assert_eq!(
        fix::commands(c, BR),
        [[
            "iptables-legacy",
            "-I",
            "DOCKER-USER",
            "-o",
            BR,
            "-j",
            "ACCEPT"
        ]]
    );

    // Target options are not conditions: a final REJECT still counts.
    let t = legacy::parse(
        "-P FORWARD ACCEPT\n-A FORWARD -j REJECT --reject-with icmp-host-prohibited\n",
    );
    let c = &forward_blockers(&[t], BR)[0];
    assert_eq!(c.blocking, Blocking::FinalRule);
    assert_eq!(c.manager, FirewallManager::Iptables);
    assert_eq!(
        fix::commands(c, BR)[0],
        ["iptables-legacy", "-I", "FORWARD", "-i", BR, "-j", "ACCEPT"]
    );
}

#[test]
fn shell_lines_quote_what_needs_it() {
    let argv = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        fix::shell_line(&argv(&["ufw", "route", "allow", "in", "on", "bgbr0"])),
        "ufw route allow in on bgbr0"
    );
    assert_eq!(
        fix::shell_line(&argv(&[
            "nft", "insert", "rule", "inet", "my table", "it's"
        ])),
        r"nft insert rule inet 'my table' 'it'\''s'"
    );
}
