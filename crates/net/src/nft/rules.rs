//! The JSON commands for the owner's table (libnftables-json(5)).
//!
//! The table (family `ip`, named after the owner's bridge) holds:
//!
//! * `guard` (prerouting, raw priority): drop packets from the bridge to 127.0.0.0/8, so
//!   `route_localnet` on the bridge cannot expose the host's loopback services to guests;
//! * `prerouting` and `output` (nat, dstnat): connections to a local address jump to
//!   `publish`, the chain of DNAT rules for published ports (one rule each, named by its
//!   comment; removing one deletes it by handle);
//! * `postrouting` (nat, srcnat): masquerade the subnet out of any other interface, and
//!   connections DNAT'ed into the bridge from the host's loopback or from another guest
//!   (so replies come back the same way);
//! * `forward` (filter): accept what guests send and the replies to it, and published
//!   connections; drop any other new connection into the bridge.

use std::net::Ipv4Addr;

use banger_helper_proto::{Port, PortMapping, Protocol, Publish, Subnet};
use serde_json::{Value, json};

pub const FAMILY: &str = "ip";
pub const CHAIN_PUBLISH: &str = "publish";
const COMMENT_PREFIX: &str = "banger publish";

fn m(op: &str, left: Value, right: Value) -> Value {
    json!({ "match": { "op": op, "left": left, "right": right } })
}

fn meta(key: &str) -> Value {
    json!({ "meta": { "key": key } })
}

fn payload(protocol: &str, field: &str) -> Value {
    json!({ "payload": { "protocol": protocol, "field": field } })
}

fn prefix(addr: Ipv4Addr, len: u8) -> Value {
    json!({ "prefix": { "addr": addr.to_string(), "len": len } })
}

fn local_daddr() -> Value {
    m(
        "==",
        json!({ "fib": { "result": "type", "flags": ["daddr"] } }),
        json!("local"),
    )
}

fn ct_dnat() -> Value {
    m("in", json!({ "ct": { "key": "status" } }), json!("dnat"))
}

fn base_chain(table: &str, name: &str, kind: &str, hook: &str, prio: i32) -> Value {
    json!({ "add": { "chain": {
        "family": FAMILY, "table": table, "name": name,
        "type": kind, "hook": hook, "prio": prio, "policy": "accept"
    } } })
}

fn rule(table: &str, chain: &str, expr: Vec<Value>) -> Value {
    json!({ "add": { "rule": { "family": FAMILY, "table": table, "chain": chain, "expr": expr } } })
}

fn flush(table: &str, chain: &str) -> Value {
    json!({ "flush": { "chain": { "family": FAMILY, "table": table, "name": chain } } })
}

/// Create or refresh the table for `bridge` on `subnet`. Idempotent: the base chains are
/// flushed and refilled in the same transaction; the `publish` chain is left alone.
pub fn ensure_nat(table: &str, bridge: &str, subnet: &Subnet) -> Vec<Value> {
    let net = prefix(subnet.network(), subnet.prefix());
    let loopback = prefix(Ipv4Addr::new(127, 0, 0, 0), 8);
    let iif = |op| m(op, meta("iifname"), json!(bridge));
    let oif = |op| m(op, meta("oifname"), json!(bridge));
    let accept = json!({ "accept": null });
    let drop = json!({ "drop": null });
    let masquerade = json!({ "masquerade": null });
    let jump = json!({ "jump": { "target": CHAIN_PUBLISH } });

    let mut cmds = vec![json!({ "add": { "table": { "family": FAMILY, "name": table } } })];
    let chains = [
        ("guard", "filter", "prerouting", -300),
        ("prerouting", "nat", "prerouting", -100),
        ("output", "nat", "output", -100),
        ("postrouting", "nat", "postrouting", 100),
        ("forward", "filter", "forward", 0),
    ];
    for (name, kind, hook, prio) in chains {
        cmds.push(base_chain(table, name, kind, hook, prio));
        cmds.push(flush(table, name));
    }
    cmds.push(
        json!({ "add": { "chain": { "family": FAMILY, "table": table, "name": CHAIN_PUBLISH } } }),
    );

    cmds.push(rule(
        table,
        "guard",
        vec![
            iif("=="),
            m("==", payload("ip", "daddr"), loopback.clone()),
            drop.clone(),
        ],
    ));
    cmds.push(rule(table, "prerouting", vec![local_daddr(), jump.clone()]));
    cmds.push(rule(table, "output", vec![local_daddr(), jump]));
    cmds.push(rule(
        table,
        "postrouting",
        vec![
            m("==", payload("ip", "saddr"), net.clone()),
            oif("!="),
            masquerade.clone(),
        ],
    ));
    cmds.push(rule(
        table,
        "postrouting",
        vec![
            oif("=="),
            ct_dnat(),
            m("==", payload("ip", "saddr"), loopback),
            masquerade.clone(),
        ],
    ));
    cmds.push(rule(
        table,
        "postrouting",
        vec![
            oif("=="),
            ct_dnat(),
            m("==", payload("ip", "saddr"), net),
            masquerade,
        ],
    ));
    cmds.push(rule(table, "forward", vec![iif("=="), accept.clone()]));
    cmds.push(rule(
        table,
        "forward",
        vec![
            oif("=="),
            m(
                "in",
                json!({ "ct": { "key": "state" } }),
                json!(["established", "related"]),
            ),
            accept.clone(),
        ],
    ));
    cmds.push(rule(table, "forward", vec![oif("=="), ct_dnat(), accept]));
    cmds.push(rule(table, "forward", vec![oif("=="), drop]));
    cmds
}

pub fn delete_table(table: &str) -> Vec<Value> {
    vec![json!({ "delete": { "table": { "family": FAMILY, "name": table } } })]
}

/// The comment that names a publish rule, and lets [`publishes_in`] read it back.
fn comment(p: &Publish) -> String {
    let host = p.mapping.host_addr.unwrap_or(Ipv4Addr::UNSPECIFIED);
    format!(
        "{COMMENT_PREFIX} {} {host} {} {} {}",
        p.mapping.protocol, p.mapping.host_port, p.guest_addr, p.mapping.guest_port
    )
}

fn parse_comment(text: &str) -> Option<Publish> {
    let rest = text.strip_prefix(COMMENT_PREFIX)?;
    let parts: Vec<&str> = rest.split_whitespace().collect();
    let [proto, host, host_port, guest, guest_port] = parts.as_slice() else {
        return None;
    };
    let protocol = match *proto {
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        _ => return None,
    };
    let host: Ipv4Addr = host.parse().ok()?;
    Some(Publish {
        mapping: PortMapping {
            protocol,
            host_addr: (!host.is_unspecified()).then_some(host),
            host_port: host_port.parse::<Port>().ok()?,
            guest_port: guest_port.parse::<Port>().ok()?,
        },
        guest_addr: guest.parse().ok()?,
    })
}

pub fn add_publish(table: &str, p: &Publish) -> Vec<Value> {
    let proto = p.mapping.protocol.as_str();
    let mut expr = Vec::new();
    if let Some(addr) = p.mapping.host_addr {
        expr.push(m("==", payload("ip", "daddr"), json!(addr.to_string())));
    }
    expr.push(m("==", meta("l4proto"), json!(proto)));
    expr.push(m(
        "==",
        payload(proto, "dport"),
        json!(p.mapping.host_port.get()),
    ));
    expr.push(
        json!({ "dnat": { "addr": p.guest_addr.to_string(), "port": p.mapping.guest_port.get() } }),
    );
    vec![json!({ "add": { "rule": {
        "family": FAMILY, "table": table, "chain": CHAIN_PUBLISH,
        "comment": comment(p), "expr": expr
    } } })]
}

pub fn delete_rule(table: &str, chain: &str, handle: u64) -> Vec<Value> {
    vec![
        json!({ "delete": { "rule": { "family": FAMILY, "table": table, "chain": chain, "handle": handle } } }),
    ]
}

/// The publishes (and rule handles) in a `nft -j list table` answer.
pub fn publishes_in(listing: &Value) -> Vec<(Publish, u64)> {
    let Some(items) = listing.get("nftables").and_then(Value::as_array) else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| item.get("rule"))
        .filter(|r| r.get("chain").and_then(Value::as_str) == Some(CHAIN_PUBLISH))
        .filter_map(|r| {
            let publish = parse_comment(r.get("comment")?.as_str()?)?;
            Some((publish, r.get("handle")?.as_u64()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publish(spec: &str) -> Publish {
        Publish {
            mapping: spec.parse().unwrap(),
            guest_addr: Ipv4Addr::new(10, 213, 0, 9),
        }
    }

    #[test]
    fn comments_round_trip() {
        for spec in ["8080:80", "127.0.0.1:5353:53/udp"] {
            let p = publish(spec);
            assert_eq!(parse_comment(&comment(&p)), Some(p), "{spec}");
        }
        assert_eq!(parse_comment("banger publish tcp x 1 2 3"), None);
        assert_eq!(parse_comment("something else"), None);
    }

    #[test]
    fn publishes_are_read_from_a_listing() {
        let p = publish("8080:80");
        let listing = json!({ "nftables": [
            { "metainfo": { "json_schema_version": 1 } },
            { "table": { "family": "ip", "name": "t", "handle": 1 } },
            { "rule": { "family": "ip", "table": "t", "chain": "publish", "handle": 7, "comment": comment(&p), "expr": [] } },
            { "rule": { "family": "ip", "table": "t", "chain": "forward", "handle": 8, "comment": comment(&p), "expr": [] } },
            { "rule": { "family": "ip", "table": "t", "chain": "publish", "handle": 9, "expr": [] } }
        ] });
        assert_eq!(publishes_in(&listing), vec![(p, 7)]);
    }

    #[test]
    fn the_table_is_refreshed_not_duplicated() {
        let subnet: Subnet = "10.213.0.0/24".parse().unwrap();
        let cmds = ensure_nat("banger_bgbr0", "bgbr0", &subnet);
        let flushed: Vec<&str> = cmds
            .iter()
            .filter_map(|c| c.pointer("/flush/chain/name")?.as_str())
            .collect();
        assert_eq!(
            flushed,
            ["guard", "prerouting", "output", "postrouting", "forward"],
            "every base chain is flushed before it is refilled; publish is kept"
        );
        let text = serde_json::to_string(&cmds).unwrap();
        assert!(text.contains(r#""addr":"10.213.0.0","len":24"#), "{text}");
    }
}
