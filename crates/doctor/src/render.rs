//! Human-readable rendering of a [`Report`].
//!
//! ```text
//! host
//!   PASS  architecture   x86_64
//!   WARN  kvm            /dev/kvm is a PVM device; guests run under QEMU (TCG)
//!                        hint: ...
//! ```

use std::io::{self, Write};

use anstyle::{AnsiColor, Effects, Style};

use crate::report::{Report, Status};

const GROUP: Style = Style::new().effects(Effects::BOLD);
const DETAIL: Style = Style::new().effects(Effects::DIMMED);

/// Names longer than this do not widen the column for everyone else.
const MAX_NAME_COLUMN: usize = 28;

fn status_style(status: Status) -> Style {
    match status {
        Status::Pass => AnsiColor::Green.on_default(),
        Status::Warn => AnsiColor::Yellow.on_default(),
        Status::Fail => AnsiColor::Red.on_default().bold(),
    }
}

impl Report {
    /// Write the report for people, grouped by group, with a closing tally. `color`
    /// adds ANSI styles; whether to is the caller's decision (the CLI has one rule for
    /// all its output).
    pub fn render_human(&self, out: &mut impl Write, color: bool) -> io::Result<()> {
        let on = |style: Style| if color { style } else { Style::new() };
        let width = self
            .checks()
            .iter()
            .map(|c| c.name.chars().count())
            .filter(|&n| n <= MAX_NAME_COLUMN)
            .max()
            .unwrap_or(0);
        // "  PASS  " + name column + two spaces.
        let indent = " ".repeat(8 + width + 2);

        for (i, group) in self.groups().into_iter().enumerate() {
            if i > 0 {
                writeln!(out)?;
            }
            let bold = on(GROUP);
            writeln!(out, "{bold}{group}{bold:#}")?;
            for check in self.group(group) {
                let status = on(status_style(check.status));
                writeln!(
                    out,
                    "  {status}{}{status:#}  {:<width$}  {}",
                    check.status.label(),
                    check.name,
                    check.summary,
                )?;
                let dim = on(DETAIL);
                for line in &check.details {
                    writeln!(out, "{indent}{dim}{line}{dim:#}")?;
                }
                if let Some(hint) = &check.hint {
                    writeln!(out, "{indent}hint: {hint}")?;
                }
            }
        }

        let counts = self.counts();
        writeln!(out)?;
        writeln!(
            out,
            "{} passed, {} warning{}, {} failed",
            counts.pass,
            counts.warn,
            if counts.warn == 1 { "" } else { "s" },
            counts.fail
        )?;
        let verdict = self.verdict();
        let fix = "fix the FAIL items above and run `banger doctor` again";
        if verdict.vms_can_run {
            let good = on(status_style(Status::Pass));
            let driver = verdict.driver.as_deref().unwrap_or("?");
            writeln!(out, "{good}VMs can run here{good:#}, with {driver}.")?;
            if self.has_failures() {
                let failed: Vec<&str> = self
                    .checks()
                    .iter()
                    .filter(|c| c.status == Status::Fail)
                    .map(|c| c.name.as_str())
                    .collect();
                writeln!(out, "Not ready yet for: {}; {fix}.", failed.join(", "))?;
            }
        } else {
            let bad = on(status_style(Status::Fail));
            let why = if verdict.blocking.is_empty() {
                "no VMM driver can be used".to_string()
            } else {
                verdict.blocking.join(", ")
            };
            writeln!(out, "{bad}VMs cannot run here yet{bad:#}: {why}.")?;
            let mut fix = fix.to_string();
            if let Some(first) = fix.get_mut(..1) {
                first.make_ascii_uppercase();
            }
            writeln!(out, "{fix}.")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Check;

    fn sample() -> Report {
        let mut r = Report::new();
        r.push(Check::pass("host", "architecture", "x86_64"));
        r.push(
            Check::warn("host", "kvm", "no KVM")
                .detail("guests run under TCG")
                .hint("enable virtualization"),
        );
        r.push(Check::fail("vmm", "firecracker binary", "not found").detail("url"));
        r
    }

    fn render(r: &Report, color: bool) -> String {
        let mut buf = Vec::new();
        r.render_human(&mut buf, color).unwrap();
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn groups_markers_details_and_tally() {
        let text = render(&sample(), false);
        assert!(!text.contains('\x1b'), "no colour requested:\n{text}");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "host");
        assert_eq!(lines[1], "  PASS  architecture        x86_64");
        assert_eq!(lines[2], "  WARN  kvm                 no KVM");
        assert_eq!(lines[3], "                            guests run under TCG");
        assert_eq!(
            lines[4],
            "                            hint: enable virtualization"
        );
        assert_eq!(lines[5], "");
        assert_eq!(lines[6], "vmm");
        assert!(lines[7].starts_with("  FAIL  firecracker binary"));
        assert!(text.contains("1 passed, 1 warning, 1 failed"), "{text}");
        assert!(
            text.contains("VMs cannot run here yet: vmm: firecracker binary."),
            "{text}"
        );
    }

    #[test]
    fn colour_only_when_asked() {
        let text = render(&sample(), true);
        assert!(text.contains("\x1b[32mPASS\x1b[0m"), "{text:?}");
        assert!(text.contains("31mFAIL\x1b[0m"), "{text:?}");
    }

    #[test]
    fn clean_report_has_no_failure_line() {
        let mut r = Report::new();
        r.push(Check::pass("host", "architecture", "x86_64"));
        r.set_driver(Some("qemu (kvm)".into()));
        let text = render(&r, false);
        assert!(text.contains("1 passed, 0 warnings, 0 failed"), "{text}");
        assert!(
            text.ends_with("VMs can run here, with qemu (kvm).\n"),
            "{text}"
        );
    }

    #[test]
    fn vms_that_run_despite_a_failure_say_both() {
        let mut r = sample();
        r.set_driver(Some("qemu (tcg)".into()));
        let mut checks = r.checks().to_vec();
        checks[2] = checks[2].clone().advisory();
        let mut r2 = Report::new();
        r2.extend(checks);
        r2.set_driver(Some("qemu (tcg)".into()));
        let text = render(&r2, false);
        assert!(
            text.contains("VMs can run here, with qemu (tcg)."),
            "{text}"
        );
        assert!(
            text.contains("Not ready yet for: firecracker binary;"),
            "{text}"
        );
    }
}
