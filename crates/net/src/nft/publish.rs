//! Published ports: one DNAT rule each in the table's `publish` chain, named by a comment
//! that [`publishes_in`] reads back (removing one deletes it by handle).

use std::net::Ipv4Addr;

use banger_helper_proto::{Port, PortMapping, Protocol, Publish};
use serde_json::{Value, json};

use super::json::{FAMILY, add_rule, items, m, meta, payload};
use super::table::CHAIN_PUBLISH;

const COMMENT_PREFIX: &str = "banger publish";

/// The comment that names a publish rule.
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
    vec![add_rule(table, CHAIN_PUBLISH, Some(&comment(p)), expr)]
}

pub fn delete_rule(table: &str, chain: &str, handle: u64) -> Vec<Value> {
    vec![
        json!({ "delete": { "rule": { "family": FAMILY, "table": table, "chain": chain, "handle": handle } } }),
    ]
}

/// Whether a rule of the publish chain is one banger added.
pub fn is_publish_rule(rule: &Value) -> bool {
    rule.get("comment")
        .and_then(Value::as_str)
        .and_then(parse_comment)
        .is_some()
}

/// The publishes (and rule handles) in a `nft -j list table` answer.
pub fn publishes_in(listing: &Value) -> Vec<(Publish, u64)> {
    items(listing)
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
}
