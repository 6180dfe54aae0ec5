//! Is the owner's table intact?
//!
//! Doctor asks, because the table can be damaged behind banger's back: `nft flush
//! ruleset`, a firewall service reloading its own rules with a flush, or an admin editing
//! chains. The check compares a `nft -j list table` answer with what [`super::ensure_nat`]
//! installs: the base chains (type, hook, priority, policy), each rule by its role comment
//! and position, and each rule's content. Content is compared as the multiset of its
//! values (interface names, addresses, keys, verdicts) rather than as JSON trees, because
//! nft versions render the same rule with slightly different JSON shapes.

use std::collections::BTreeMap;

use banger_helper_proto::Subnet;
use serde_json::Value;

use super::json::items;
use super::publish::is_publish_rule;
use super::table::{BASE_CHAINS, CHAIN_PUBLISH, base_rules};

/// What is wrong with `table` in `listing`, one sentence each; empty when it is intact.
/// `listing` must be the table's own listing (`nft -j list table ip NAME`).
pub fn audit(listing: &Value, table: &str, bridge: &str, subnet: &Subnet) -> Vec<String> {
    let mut problems = Vec::new();
    let mut chains: BTreeMap<&str, &Value> = BTreeMap::new();
    let mut rules: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
    for item in items(listing) {
        if let Some(chain) = item.get("chain").filter(|c| in_table(c, table))
            && let Some(name) = chain.get("name").and_then(Value::as_str)
        {
            chains.insert(name, chain);
        }
        if let Some(rule) = item.get("rule").filter(|r| in_table(r, table))
            && let Some(chain) = rule.get("chain").and_then(Value::as_str)
        {
            rules.entry(chain).or_default().push(rule);
        }
    }

    for want in &BASE_CHAINS {
        let Some(have) = chains.get(want.name) else {
            problems.push(format!("chain {} is missing", want.name));
            continue;
        };
        let found = (
            str_of(have, "type"),
            str_of(have, "hook"),
            have.get("prio").and_then(Value::as_i64),
            str_of(have, "policy"),
        );
        let expected = (want.kind, want.hook, Some(i64::from(want.prio)), "accept");
        if (found.0, found.1, found.2, found.3) != (expected.0, expected.1, expected.2, expected.3)
        {
            problems.push(format!(
                "chain {} is type {} hook {} priority {} policy {}; banger installs type {} hook {} priority {} policy accept",
                want.name,
                found.0,
                found.1,
                found.2.map_or("?".into(), |p| p.to_string()),
                found.3,
                want.kind,
                want.hook,
                want.prio
            ));
        }
    }
    for (name, chain) in &chains {
        let known = BASE_CHAINS.iter().any(|c| c.name == *name) || *name == CHAIN_PUBLISH;
        if !known {
            let hook = chain
                .get("hook")
                .and_then(Value::as_str)
                .map(|h| format!(" (hook {h})"))
                .unwrap_or_default();
            problems.push(format!("chain {name}{hook} was not added by banger"));
        }
    }

    let expected = base_rules(bridge, subnet);
    for chain in BASE_CHAINS.iter().filter(|c| chains.contains_key(c.name)) {
        let want: Vec<_> = expected.iter().filter(|r| r.chain == chain.name).collect();
        let have = rules.get(chain.name).map(Vec::as_slice).unwrap_or_default();
        let want_comments: Vec<String> = want.iter().map(|r| r.comment()).collect();
        let have_comments: Vec<Option<&str>> = have.iter().map(|r| str_opt(r, "comment")).collect();
        for (rule, comment) in want.iter().zip(&want_comments) {
            match have.iter().find(|r| str_opt(r, "comment") == Some(comment)) {
                None => problems.push(format!(
                    "rule \"{}\" is missing from chain {}",
                    rule.role, chain.name
                )),
                Some(found) => {
                    let have_expr = found.get("expr").cloned().unwrap_or(Value::Null);
                    if signature(&have_expr) != signature(&Value::Array(rule.expr.clone())) {
                        problems.push(format!(
                            "rule \"{}\" in chain {} was changed",
                            rule.role, chain.name
                        ));
                    }
                }
            }
        }
        for (rule, comment) in have.iter().zip(&have_comments) {
            if !comment.is_some_and(|c| want_comments.iter().any(|w| w == c)) {
                problems.push(format!(
                    "chain {} has a rule banger did not add ({})",
                    chain.name,
                    describe(rule)
                ));
            }
        }
        let order: Vec<&str> = have_comments
            .iter()
            .flatten()
            .copied()
            .filter(|c| want_comments.iter().any(|w| w == c))
            .collect();
        let want_order: Vec<&str> = want_comments
            .iter()
            .map(String::as_str)
            .filter(|w| order.contains(w))
            .collect();
        if order != want_order {
            problems.push(format!(
                "the rules of chain {} are out of order",
                chain.name
            ));
        }
    }

    if !chains.contains_key(CHAIN_PUBLISH) {
        problems.push(format!("chain {CHAIN_PUBLISH} is missing"));
    }
    for rule in rules
        .get(CHAIN_PUBLISH)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        if !is_publish_rule(rule) {
            problems.push(format!(
                "chain {CHAIN_PUBLISH} has a rule banger did not add ({})",
                describe(rule)
            ));
        }
    }
    problems
}

fn in_table(item: &Value, table: &str) -> bool {
    item.get("table").and_then(Value::as_str) == Some(table)
        && item.get("family").and_then(Value::as_str) == Some(super::FAMILY)
}

fn str_opt<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    str_opt(v, key).unwrap_or("?")
}

fn describe(rule: &Value) -> String {
    let handle = rule
        .get("handle")
        .and_then(Value::as_u64)
        .map_or("?".into(), |h| h.to_string());
    match str_opt(rule, "comment") {
        Some(c) => format!("handle {handle}, comment {c:?}"),
        None => format!("handle {handle}"),
    }
}

/// The sorted values of an expression: scalars, and the names of keys whose value is
/// null (verdicts such as `{"accept": null}`). `in` counts as `==`: nft prints either for a
/// single-value match.
fn signature(expr: &Value) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Null => {}
            Value::Bool(b) => out.push(b.to_string()),
            Value::Number(n) => out.push(n.to_string()),
            Value::String(s) if s == "in" => out.push("==".into()),
            Value::String(s) => out.push(s.clone()),
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            Value::Object(o) => {
                for (k, x) in o {
                    if x.is_null() {
                        out.push(k.clone());
                    } else {
                        walk(x, out);
                    }
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(expr, &mut out);
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::nft::ensure_nat;

    const TABLE: &str = "banger_bgbr0";

    fn subnet() -> Subnet {
        "10.213.0.0/24".parse().unwrap()
    }

    /// A listing as nft prints it after applying `ensure_nat`: the same objects, with
    /// handles, and the chains before the rules.
    fn listing() -> Value {
        let mut chains = Vec::new();
        let mut rules = Vec::new();
        let mut handle = 1;
        for cmd in ensure_nat(TABLE, "bgbr0", &subnet()) {
            let Some(add) = cmd.get("add") else { continue };
            let (kind, obj) = add.as_object().unwrap().iter().next().unwrap();
            let mut obj = obj.clone();
            obj["handle"] = json!(handle);
            handle += 1;
            match kind.as_str() {
                "chain" => chains.push(json!({ "chain": obj })),
                "rule" => rules.push(json!({ "rule": obj })),
                _ => {}
            }
        }
        let mut all = vec![json!({ "table": { "family": "ip", "name": TABLE, "handle": 0 } })];
        all.extend(chains);
        all.extend(rules);
        json!({ "nftables": all })
    }

    fn rules_mut(listing: &mut Value) -> &mut Vec<Value> {
        listing["nftables"].as_array_mut().unwrap()
    }

    #[test]
    fn a_fresh_table_is_intact() {
        assert_eq!(
            audit(&listing(), TABLE, "bgbr0", &subnet()),
            Vec::<String>::new()
        );
    }

    #[test]
    fn damage_is_named() {
        // A deleted rule.
        let mut l = listing();
        rules_mut(&mut l).retain(|i| {
            i.pointer("/rule/comment").and_then(Value::as_str)
                != Some("banger: guests reach the outside through NAT")
        });
        assert_eq!(
            audit(&l, TABLE, "bgbr0", &subnet()),
            ["rule \"guests reach the outside through NAT\" is missing from chain postrouting"]
        );

        // A flushed chain.
        let mut l = listing();
        rules_mut(&mut l)
            .retain(|i| i.pointer("/rule/chain").and_then(Value::as_str) != Some("forward"));
        assert_eq!(audit(&l, TABLE, "bgbr0", &subnet()).len(), 4);

        // A rule pointed at another subnet or bridge; a foreign rule; a dropped chain policy.
        let mut l = listing();
        for item in rules_mut(&mut l) {
            if let Some(rule) = item.get_mut("rule") {
                if rule["comment"] == "banger: guests send only from their subnet" {
                    rule["expr"][1]["match"]["right"]["prefix"]["addr"] = json!("10.9.0.0");
                }
                if rule["chain"] == "forward"
                    && rule["comment"] == "banger: guests reach the outside"
                {
                    rule["expr"][0]["match"]["right"] = json!("eth0");
                }
            }
            if let Some(chain) = item.get_mut("chain")
                && chain["name"] == "forward"
            {
                chain["policy"] = json!("drop");
            }
        }
        rules_mut(&mut l).push(json!({ "rule": { "family": "ip", "table": TABLE, "chain": "publish", "handle": 99, "expr": [] } }));
        let problems = audit(&l, TABLE, "bgbr0", &subnet());
        assert_eq!(problems.len(), 4, "{problems:#?}");
        assert!(
            problems[0]
                .contains("chain forward is type filter hook forward priority 0 policy drop")
        );
        assert!(problems.iter().any(|p| {
            p.contains("\"guests send only from their subnet\" in chain guard was changed")
        }));
        assert!(
            problems
                .iter()
                .any(|p| p.contains("\"guests reach the outside\" in chain forward was changed"))
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("chain publish has a rule banger did not add (handle 99)"))
        );

        // Expected for another subnet: every subnet-bearing rule differs.
        let other: Subnet = "10.213.1.0/24".parse().unwrap();
        assert_eq!(audit(&listing(), TABLE, "bgbr0", &other).len(), 3);
        // No table at all.
        assert!(audit(&json!({}), TABLE, "bgbr0", &subnet()).len() >= 6);
    }
}
