//! Small builders for libnftables-json(5) expressions.

use std::net::Ipv4Addr;

use serde_json::{Value, json};

pub const FAMILY: &str = "ip";

/// `LEFT OP RIGHT`.
pub fn m(op: &str, left: Value, right: Value) -> Value {
    json!({ "match": { "op": op, "left": left, "right": right } })
}

pub fn meta(key: &str) -> Value {
    json!({ "meta": { "key": key } })
}

pub fn payload(protocol: &str, field: &str) -> Value {
    json!({ "payload": { "protocol": protocol, "field": field } })
}

pub fn prefix(addr: Ipv4Addr, len: u8) -> Value {
    json!({ "prefix": { "addr": addr.to_string(), "len": len } })
}

/// The destination is one of this host's own addresses.
pub fn local_daddr() -> Value {
    m(
        "==",
        json!({ "fib": { "result": "type", "flags": ["daddr"] } }),
        json!("local"),
    )
}

/// The connection was DNAT'ed (a published port).
pub fn ct_dnat() -> Value {
    m("in", json!({ "ct": { "key": "status" } }), json!("dnat"))
}

pub fn verdict(name: &str) -> Value {
    json!({ name: null })
}

pub fn add_rule(table: &str, chain: &str, comment: Option<&str>, expr: Vec<Value>) -> Value {
    let mut rule = json!({ "family": FAMILY, "table": table, "chain": chain, "expr": expr });
    if let Some(comment) = comment {
        rule["comment"] = json!(comment);
    }
    json!({ "add": { "rule": rule } })
}

pub fn delete_table(table: &str) -> Value {
    json!({ "delete": { "table": { "family": FAMILY, "name": table } } })
}

/// The `nftables` array of a `nft -j list …` answer (empty when there is none).
pub fn items(listing: &Value) -> &[Value] {
    listing
        .get("nftables")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}
