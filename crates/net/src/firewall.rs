//! What in a host's nftables ruleset stops guest traffic.
//!
//! A `drop` verdict is final in nftables: if another table's forward chain (docker's or
//! ufw's `FORWARD`, through iptables-nft) has policy drop, guests cannot reach the
//! outside whatever banger's table accepts. Doctor reports such chains with the fix.

use banger_helper_proto::ForeignChain;
use serde_json::Value;

/// Base chains on `hook` with policy drop, in tables other than `own_table`.
pub fn drop_policy_chains(ruleset: &Value, hook: &str, own_table: &str) -> Vec<ForeignChain> {
    let Some(items) = ruleset.get("nftables").and_then(Value::as_array) else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| item.get("chain"))
        .filter(|c| c.get("hook").and_then(Value::as_str) == Some(hook))
        .filter(|c| c.get("policy").and_then(Value::as_str) == Some("drop"))
        .filter_map(|c| {
            let table = c.get("table")?.as_str()?;
            (table != own_table).then(|| ForeignChain {
                family: c
                    .get("family")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_string(),
                table: table.to_string(),
                chain: c
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_string(),
            })
        })
        .collect()
}

/// Whether the ruleset has `table` (family `ip`).
pub fn has_table(ruleset: &Value, table: &str) -> bool {
    ruleset
        .get("nftables")
        .and_then(Value::as_array)
        .is_some_and(|items| {
            items.iter().filter_map(|i| i.get("table")).any(|t| {
                t.get("name").and_then(Value::as_str) == Some(table)
                    && t.get("family").and_then(Value::as_str) == Some("ip")
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// What `nft -j list ruleset` shows on a host with docker (iptables-nft).
    fn docker_ruleset() -> Value {
        json!({ "nftables": [
            { "metainfo": { "version": "1.0.6", "json_schema_version": 1 } },
            { "table": { "family": "ip", "name": "filter", "handle": 1 } },
            { "chain": { "family": "ip", "table": "filter", "name": "FORWARD", "handle": 2,
                         "type": "filter", "hook": "forward", "prio": 0, "policy": "drop" } },
            { "chain": { "family": "ip", "table": "filter", "name": "DOCKER-USER", "handle": 3 } },
            { "chain": { "family": "ip", "table": "filter", "name": "INPUT", "handle": 4,
                         "type": "filter", "hook": "input", "prio": 0, "policy": "accept" } },
            { "table": { "family": "ip", "name": "banger_bgbr0", "handle": 5 } },
            { "chain": { "family": "ip", "table": "banger_bgbr0", "name": "forward", "handle": 6,
                         "type": "filter", "hook": "forward", "prio": 0, "policy": "drop" } }
        ] })
    }

    #[test]
    fn finds_dockers_forward_drop_but_not_our_own() {
        let found = drop_policy_chains(&docker_ruleset(), "forward", "banger_bgbr0");
        assert_eq!(
            found,
            vec![ForeignChain {
                family: "ip".into(),
                table: "filter".into(),
                chain: "FORWARD".into()
            }]
        );
        assert!(drop_policy_chains(&docker_ruleset(), "input", "banger_bgbr0").is_empty());
        assert!(has_table(&docker_ruleset(), "banger_bgbr0"));
        assert!(!has_table(&docker_ruleset(), "banger_bgbr1000"));
        assert!(drop_policy_chains(&json!({}), "forward", "x").is_empty());
    }
}
