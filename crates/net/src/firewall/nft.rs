//! `nft -j list ruleset` → [`Table`]s.

use banger_helper_proto::Backend;
use serde_json::Value;

use super::model::{Chain, Iface, Rule, Table, Verdict};
use crate::nft::items;

/// Every table of the ruleset with its chains and rules, in listing order (nft lists a
/// chain's rules in evaluation order).
pub fn tables_from_ruleset(ruleset: &Value) -> Vec<Table> {
    let mut tables: Vec<Table> = Vec::new();
    let key = |v: &Value| (text(v, "family"), text(v, "table"));
    for item in items(ruleset) {
        if let Some(t) = item.get("table") {
            tables.push(Table {
                family: text(t, "family"),
                name: text(t, "name"),
                backend: Backend::Nftables,
                chains: Vec::new(),
            });
        } else if let Some(c) = item.get("chain") {
            let (family, table) = key(c);
            if let Some(t) = tables
                .iter_mut()
                .find(|t| t.family == family && t.name == table)
            {
                t.chains.push(Chain {
                    name: text(c, "name"),
                    hook: c.get("hook").and_then(Value::as_str).map(str::to_string),
                    policy: c.get("policy").and_then(Value::as_str).map(str::to_string),
                    rules: Vec::new(),
                });
            }
        } else if let Some(r) = item.get("rule") {
            let (family, table) = key(r);
            let chain = text(r, "chain");
            let target = tables
                .iter_mut()
                .find(|t| t.family == family && t.name == table)
                .and_then(|t| t.chains.iter_mut().find(|c| c.name == chain));
            if let Some(c) = target {
                c.rules.push(rule(r.get("expr").and_then(Value::as_array)));
            }
        }
    }
    tables
}

fn text(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// Statements that neither filter nor decide.
const NEUTRAL: [&str; 3] = ["counter", "log", "notrack"];

fn rule(expr: Option<&Vec<Value>>) -> Rule {
    let mut out = Rule::default();
    for stmt in expr.map(Vec::as_slice).unwrap_or_default() {
        let Some((name, body)) = stmt.as_object().and_then(|o| o.iter().next()) else {
            out.other = true;
            continue;
        };
        match name.as_str() {
            "match" => match iface_match(body) {
                Some(("iifname", iface)) => out.iif = Some(iface),
                Some(("oifname", iface)) => out.oif = Some(iface),
                _ => out.other = true,
            },
            "accept" => out.verdict = Verdict::Accept,
            "drop" => out.verdict = Verdict::Drop,
            "reject" => out.verdict = Verdict::Reject,
            "return" => out.verdict = Verdict::Return,
            "jump" | "goto" => {
                let target = body
                    .get("target")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                out.verdict = if name == "jump" {
                    Verdict::Jump(target)
                } else {
                    Verdict::Goto(target)
                };
            }
            n if NEUTRAL.contains(&n) => {}
            // "xt" (an iptables match nft cannot show), "limit", "ct", "meta" set, …
            _ => out.other = true,
        }
    }
    out
}

/// `meta iifname/oifname ==|!= NAME|{set}` → the key and the match.
fn iface_match(m: &Value) -> Option<(&'static str, Iface)> {
    let key = m.pointer("/left/meta/key")?.as_str()?;
    let key = match key {
        "iifname" => "iifname",
        "oifname" => "oifname",
        _ => return None,
    };
    let negate = match m.get("op")?.as_str()? {
        "==" | "in" => false,
        "!=" => true,
        _ => return None,
    };
    let right = m.get("right")?;
    let names = match right {
        Value::String(s) => vec![s.clone()],
        Value::Object(o) => o
            .get("set")?
            .as_array()?
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()?,
        _ => return None,
    };
    Some((key, Iface { names, negate }))
}
