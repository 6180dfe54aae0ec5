//! The legacy iptables tables, which `nft` cannot see.
//!
//! Docker and older ufw set-ups may use iptables-legacy; their FORWARD policy of drop is
//! then invisible to `nft list ruleset`. The kernel lists the legacy tables that exist in
//! `/proc/thread-self/net/ip_tables_names` (readable by root only); when `filter` is
//! among them, `iptables-legacy -S` (a validated binary, see [`crate::exec`]) prints its
//! chains and rules, which [`parse`] reads. Nothing is loaded or created: reading the file
//! loads no module, and `-S` on a table that exists changes nothing.

use banger_helper_proto::{Backend, ForeignChain, LegacyScan};
use banger_system::CommandRunner;

use super::model::{Chain, Iface, Rule, Table, Verdict};
use crate::exec::Program;

/// Per-thread view, so a thread in another network namespace reads its own.
const TABLES_FILE: &str = "/proc/thread-self/net/ip_tables_names";
const BASE_CHAINS: [(&str, &str); 3] = [
    ("INPUT", "input"),
    ("FORWARD", "forward"),
    ("OUTPUT", "output"),
];

/// The legacy iptables tables that exist in this network namespace (root only). A kernel
/// without legacy iptables has none.
pub fn tables_in_use() -> std::io::Result<Vec<String>> {
    match std::fs::read_to_string(TABLES_FILE) {
        Ok(text) => Ok(text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Inspect the legacy `filter` table for chains that block guests on `bridge`.
/// `binary` overrides where `iptables-legacy` is looked up (tests).
pub fn scan(
    runner: &dyn CommandRunner,
    binary: Option<&std::path::Path>,
    bridge: &str,
) -> (LegacyScan, Vec<ForeignChain>) {
    let names = match tables_in_use() {
        Ok(names) => names,
        Err(e) => {
            return (
                LegacyScan::Unreadable {
                    reason: format!("cannot read {TABLES_FILE} ({e}); it takes root"),
                },
                Vec::new(),
            );
        }
    };
    if !names.iter().any(|t| t == "filter") {
        return (LegacyScan::NotInUse, Vec::new());
    }
    let program = match binary {
        Some(path) => Program::at(runner, "iptables-legacy", path),
        None => match Program::locate(runner, "iptables-legacy", "iptables") {
            Ok(p) => p,
            Err(e) => {
                return (
                    LegacyScan::Unreadable {
                        reason: format!(
                            "the legacy iptables filter table exists, but {}",
                            banger_system::error_chain(&e)
                        ),
                    },
                    Vec::new(),
                );
            }
        },
    };
    match program.run("-S", &["-w", "5", "-t", "filter", "-S"], None) {
        Ok(text) => {
            let table = parse(&text);
            (
                LegacyScan::Inspected,
                super::forward_blockers(&[table], bridge),
            )
        }
        Err(e) => (
            LegacyScan::Unreadable {
                reason: banger_system::error_chain(&e),
            },
            Vec::new(),
        ),
    }
}

/// `iptables -S` output of the `filter` table → a [`Table`].
pub fn parse(text: &str) -> Table {
    let mut table = Table {
        family: "ip".into(),
        name: "filter".into(),
        backend: Backend::IptablesLegacy,
        chains: Vec::new(),
    };
    for line in text.lines() {
        let words = split(line);
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        match words.as_slice() {
            ["-P", chain, policy, ..] => {
                let hook = BASE_CHAINS
                    .iter()
                    .find(|(name, _)| name == chain)
                    .map(|(_, hook)| hook.to_string());
                let c = chain_mut(&mut table, chain);
                c.hook = hook;
                c.policy = Some(policy.to_ascii_lowercase());
            }
            ["-N", chain] => {
                chain_mut(&mut table, chain);
            }
            ["-A", chain, spec @ ..] => {
                let rule = rule(spec);
                chain_mut(&mut table, chain).rules.push(rule);
            }
            _ => {}
        }
    }
    table
}

fn chain_mut<'t>(table: &'t mut Table, name: &str) -> &'t mut Chain {
    if let Some(i) = table.chains.iter().position(|c| c.name == name) {
        return &mut table.chains[i];
    }
    table.chains.push(Chain {
        name: name.to_string(),
        ..Chain::default()
    });
    let last = table.chains.len() - 1;
    &mut table.chains[last]
}

/// One `-A CHAIN …` rule spec. Options after `-j`/`-g` belong to the target
/// (`--reject-with …`), not conditions.
fn rule(spec: &[&str]) -> Rule {
    let mut out = Rule::default();
    let mut negate = false;
    let mut after_target = false;
    let mut i = 0;
    while i < spec.len() {
        let word = spec[i];
        // An option's value is the next word, unless that is the next option (`--syn`).
        let value = spec
            .get(i + 1)
            .filter(|v| !v.starts_with('-') || v.parse::<i64>().is_ok())
            .map(|v| v.to_string());
        let step = if value.is_some() { 2 } else { 1 };
        match (word, value) {
            ("!", _) => {
                negate = true;
                i += 1;
                continue;
            }
            ("-i" | "--in-interface", Some(name)) => {
                out.iif = Some(Iface {
                    names: vec![name],
                    negate,
                })
            }
            ("-o" | "--out-interface", Some(name)) => {
                out.oif = Some(Iface {
                    names: vec![name],
                    negate,
                })
            }
            ("-j" | "--jump", Some(target)) => {
                out.verdict = target_verdict(&target, false);
                after_target = true;
            }
            ("-g" | "--goto", Some(target)) => {
                out.verdict = target_verdict(&target, true);
                after_target = true;
            }
            // A comment is not a condition.
            ("-m", Some(module)) if module == "comment" => {}
            ("--comment", _) => {}
            _ if after_target => {}
            _ => out.other = true,
        }
        negate = false;
        i += step;
    }
    out
}

fn target_verdict(target: &str, goto: bool) -> Verdict {
    match target {
        "ACCEPT" => Verdict::Accept,
        "DROP" => Verdict::Drop,
        "REJECT" => Verdict::Reject,
        "RETURN" => Verdict::Return,
        // Targets that do not decide (LOG, MARK, …) are lower case or upper case module
        // names; a user chain is anything else that exists. Treat both as a jump: a
        // missing chain simply yields nothing.
        other if goto => Verdict::Goto(other.to_string()),
        other => Verdict::Jump(other.to_string()),
    }
}

/// Split an `iptables -S` line into words; double quotes group (comments).
fn split(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut any = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            '\\' if quoted => {
                if let Some(next) = chars.next() {
                    word.push(next);
                }
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    words.push(std::mem::take(&mut word));
                    any = false;
                }
            }
            c => {
                word.push(c);
                any = true;
            }
        }
    }
    if any {
        words.push(word);
    }
    words
}
