//! The doctor report: a flat list of checks, each tagged with its group.
//!
//! The JSON form is a stable interface (documented in `docs/doctor.md`); bump
//! [`SCHEMA_VERSION`] when a field changes meaning or disappears. Adding fields is
//! not a breaking change.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Version of the JSON document produced by [`Report::to_json`].
pub const SCHEMA_VERSION: u32 = 1;

/// Outcome of one check. Ordered by severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The host is ready for this.
    Pass,
    /// Works, but something is degraded, unusual, or opt-in and not enabled.
    Warn,
    /// banger will not work until this is fixed.
    Fail,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// Section of the report ("host", "security", ...).
    pub group: String,
    /// What was checked, unique within its group.
    pub name: String,
    pub status: Status,
    /// One line: what was found.
    pub summary: String,
    /// Supporting facts, one per line.
    #[serde(default)]
    pub details: Vec<String>,
    /// What to do about a WARN or FAIL.
    #[serde(default)]
    pub hint: Option<String>,
    /// A FAIL that does not stop VMs from running here (Firecracker missing while QEMU
    /// runs them): it counts as a failure, but not against the verdict.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub advisory: bool,
}

impl Check {
    pub fn new(group: &str, name: &str, status: Status, summary: impl Into<String>) -> Check {
        Check {
            group: group.to_string(),
            name: name.to_string(),
            status,
            summary: summary.into(),
            details: Vec::new(),
            hint: None,
            advisory: false,
        }
    }

    pub fn pass(group: &str, name: &str, summary: impl Into<String>) -> Check {
        Check::new(group, name, Status::Pass, summary)
    }

    pub fn warn(group: &str, name: &str, summary: impl Into<String>) -> Check {
        Check::new(group, name, Status::Warn, summary)
    }

    pub fn fail(group: &str, name: &str, summary: impl Into<String>) -> Check {
        Check::new(group, name, Status::Fail, summary)
    }

    /// Append one detail line.
    pub fn detail(mut self, line: impl Into<String>) -> Check {
        self.details.push(line.into());
        self
    }

    /// Append several detail lines.
    pub fn details<I, S>(mut self, lines: I) -> Check
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.details.extend(lines.into_iter().map(Into::into));
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Check {
        self.hint = Some(hint.into());
        self
    }

    /// Mark a FAIL as not stopping VMs from running (see [`Check::advisory`]).
    pub fn advisory(mut self) -> Check {
        self.advisory = true;
        self
    }

    /// Whether this row stops VMs from running on this host.
    pub fn blocks_vms(&self) -> bool {
        self.status == Status::Fail && !self.advisory
    }

    /// Set the hint only if there is one.
    pub fn maybe_hint(mut self, hint: Option<String>) -> Check {
        self.hint = hint;
        self
    }
}

/// How many checks ended in each status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub pass: usize,
    pub warn: usize,
    pub fail: usize,
}

/// Every check of one doctor run, in the order they ran.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    checks: Vec<Check>,
    /// The VMM driver and accelerator VMs get here (`qemu (tcg)`), when one was found.
    driver: Option<String>,
}

/// Whether VMs can run on this host, apart from whether everything passed: a missing
/// Firecracker is a FAIL (banger's primary VMM) while VMs run fine under QEMU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub vms_can_run: bool,
    /// The driver and accelerator they run with, when one can be used.
    pub driver: Option<String>,
    /// The failed checks that stop VMs from running (`group: name`).
    pub blocking: Vec<String>,
}

/// The JSON document. Field order here is the order in the output.
#[derive(Debug, Serialize, Deserialize)]
struct JsonReport {
    schema_version: u32,
    ok: bool,
    verdict: Verdict,
    counts: Counts,
    groups: Vec<String>,
    checks: Vec<Check>,
}

impl Report {
    pub fn new() -> Report {
        Report::default()
    }

    /// Record the driver VMs would use (`qemu (tcg)`), or that none can be used.
    pub fn set_driver(&mut self, driver: Option<String>) {
        self.driver = driver;
    }

    /// Whether VMs can run here, with which driver, and what stops them if not.
    pub fn verdict(&self) -> Verdict {
        let blocking: Vec<String> = self
            .checks
            .iter()
            .filter(|c| c.blocks_vms())
            .map(|c| format!("{}: {}", c.group, c.name))
            .collect();
        Verdict {
            vms_can_run: self.driver.is_some() && blocking.is_empty(),
            driver: self.driver.clone(),
            blocking,
        }
    }

    pub fn push(&mut self, check: Check) {
        self.checks.push(check);
    }

    pub fn extend(&mut self, checks: impl IntoIterator<Item = Check>) {
        self.checks.extend(checks);
    }

    pub fn checks(&self) -> &[Check] {
        &self.checks
    }

    /// Checks of one group, in order.
    pub fn group(&self, group: &str) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(move |c| c.group == group)
    }

    /// The check called `name` in `group`, if it ran.
    pub fn find(&self, group: &str, name: &str) -> Option<&Check> {
        self.group(group).find(|c| c.name == name)
    }

    /// Group names in order of first appearance.
    pub fn groups(&self) -> Vec<&str> {
        let mut groups: Vec<&str> = Vec::new();
        for check in &self.checks {
            if !groups.contains(&check.group.as_str()) {
                groups.push(&check.group);
            }
        }
        groups
    }

    pub fn counts(&self) -> Counts {
        let mut counts = Counts::default();
        for check in &self.checks {
            match check.status {
                Status::Pass => counts.pass += 1,
                Status::Warn => counts.warn += 1,
                Status::Fail => counts.fail += 1,
            }
        }
        counts
    }

    /// Whether any check failed; `banger doctor` exits non-zero exactly then.
    pub fn has_failures(&self) -> bool {
        self.checks.iter().any(|c| c.status == Status::Fail)
    }

    /// Process exit code for `banger doctor`: 0, or 1 when any check failed.
    pub fn exit_code(&self) -> i32 {
        i32::from(self.has_failures())
    }

    /// The report as pretty-printed JSON (see `docs/doctor.md` for the schema).
    pub fn to_json(&self) -> String {
        let doc = JsonReport {
            schema_version: SCHEMA_VERSION,
            ok: !self.has_failures(),
            verdict: self.verdict(),
            counts: self.counts(),
            groups: self.groups().into_iter().map(str::to_string).collect(),
            checks: self.checks.clone(),
        };
        // Cannot fail: the document holds only strings, integers, booleans and
        // unit enums (no maps with non-string keys, no custom serializers).
        serde_json::to_string_pretty(&doc).expect("doctor report serialises to JSON")
    }

    /// Read a report back from [`Report::to_json`] output (the CLI uses this when the
    /// report travels through the daemon).
    pub fn from_json(json: &str) -> Result<Report, serde_json::Error> {
        let doc: JsonReport = serde_json::from_str(json)?;
        Ok(Report {
            checks: doc.checks,
            driver: doc.verdict.driver,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        let mut r = Report::new();
        r.push(Check::pass("host", "architecture", "x86_64"));
        r.push(Check::warn("host", "kvm", "PVM").detail("d1").hint("h"));
        r.push(Check::fail("vmm", "driver", "none"));
        r
    }

    #[test]
    fn json_schema_is_stable() {
        let value: serde_json::Value = serde_json::from_str(&sample().to_json()).unwrap();
        assert_eq!(value["schema_version"], 1);
        assert_eq!(value["ok"], false);
        assert_eq!(
            value["counts"],
            serde_json::json!({"pass": 1, "warn": 1, "fail": 1})
        );
        assert_eq!(value["groups"], serde_json::json!(["host", "vmm"]));
        assert_eq!(
            value["checks"][1],
            serde_json::json!({
                "group": "host",
                "name": "kvm",
                "status": "warn",
                "summary": "PVM",
                "details": ["d1"],
                "hint": "h",
            })
        );
        assert_eq!(value["checks"][0]["hint"], serde_json::Value::Null);
        let keys: Vec<_> = value.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys.len(), 6, "{keys:?}");
        assert_eq!(
            value["verdict"],
            serde_json::json!({"vms_can_run": false, "driver": null, "blocking": ["vmm: driver"]})
        );
    }

    #[test]
    fn json_round_trips() {
        let r = sample();
        assert_eq!(Report::from_json(&r.to_json()).unwrap(), r);
    }

    #[test]
    fn the_verdict_separates_running_vms_from_failing_checks() {
        let mut r = Report::new();
        r.push(Check::pass("vmm", "driver", "qemu with tcg"));
        r.push(Check::fail("vmm", "firecracker binary", "not found").advisory());
        r.set_driver(Some("qemu (tcg)".into()));
        let v = r.verdict();
        assert!(v.vms_can_run && r.has_failures(), "{v:?}");
        assert_eq!(r.exit_code(), 1, "a missing firecracker is still a FAIL");
        assert!(r.to_json().contains("\"advisory\": true"));
        r.push(Check::fail("host", "architecture", "arm64"));
        let v = r.verdict();
        assert!(!v.vms_can_run);
        assert_eq!(v.blocking, vec!["host: architecture"]);
        // An advisory flag on a row that is not a FAIL changes nothing.
        assert!(!Check::warn("a", "b", "c").advisory().blocks_vms());
        // No usable driver: no VMs, even when nothing else failed.
        let mut r = Report::new();
        r.push(Check::pass("host", "architecture", "x86_64"));
        assert!(!r.verdict().vms_can_run);
        assert_eq!(Report::from_json(&r.to_json()).unwrap(), r);
    }

    #[test]
    fn exit_code_follows_failures() {
        let mut r = Report::new();
        assert_eq!(r.exit_code(), 0);
        r.push(Check::warn("ssh", "ssh shortcut", "not enabled"));
        assert!(!r.has_failures());
        assert_eq!(r.exit_code(), 0);
        r.push(Check::fail("vmm", "driver", "none"));
        assert!(r.has_failures());
        assert_eq!(r.exit_code(), 1);
    }

    #[test]
    fn groups_in_first_appearance_order() {
        let mut r = sample();
        r.push(Check::pass("host", "late", "x"));
        assert_eq!(r.groups(), ["host", "vmm"]);
        assert_eq!(r.group("host").count(), 3);
        assert!(r.find("vmm", "driver").is_some());
        assert!(r.find("host", "driver").is_none());
    }
}
