//! How to install Firecracker on this host, when it is missing.
//!
//! A command is suggested only where Firecracker is really packaged for the detected
//! distribution; everyone else gets just the upstream releases page. A wrong guess
//! costs the user more time than no guess.

use std::path::Path;

use banger_system::CommandRunner;
use banger_system::osrelease::OsRelease;

/// Upstream static release binaries; always offered.
pub const RELEASES_URL: &str = "https://github.com/firecracker-microvm/firecracker/releases";

/// Detail lines: an install command when one is known, then the releases URL.
pub fn firecracker_install_lines(os_release: &Path, runner: &dyn CommandRunner) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(command) = install_command(os_release, runner) {
        lines.push(format!("install: {command}"));
    }
    lines.push(format!(
        "or download a static release binary: {RELEASES_URL}"
    ));
    lines
}

/// The install command for the distribution described by `os_release`, if any.
pub fn install_command(os_release: &Path, runner: &dyn CommandRunner) -> Option<String> {
    let release = OsRelease::read(os_release).ok()?;
    for id in release.ids() {
        match id {
            // Debian packages Firecracker only in newer releases (and backports), so
            // ask apt whether this host can actually install it.
            "debian" => {
                return apt_has_candidate(runner, "firecracker")
                    .then(|| "sudo apt install firecracker".to_string());
            }
            "arch" | "manjaro" | "endeavouros" => {
                return Some("paru -S firecracker (or your preferred AUR helper)".to_string());
            }
            "nixos" => {
                return Some(
                    "nix-env -iA nixos.firecracker (or add it to environment.systemPackages)"
                        .to_string(),
                );
            }
            _ => {}
        }
    }
    None
}

/// Whether `apt-cache policy <package>` offers an installable version. Read-only:
/// apt-cache never changes the system.
fn apt_has_candidate(runner: &dyn CommandRunner, package: &str) -> bool {
    let Ok(output) = runner.run_str("apt-cache", &["policy", package]) else {
        return false;
    };
    output.success() && candidate(&output.stdout_str()).is_some()
}

/// The `Candidate:` version from `apt-cache policy` output, unless it is `(none)`.
fn candidate(policy: &str) -> Option<&str> {
    policy
        .lines()
        .find_map(|line| line.trim().strip_prefix("Candidate:"))
        .map(str::trim)
        .filter(|version| !version.is_empty() && *version != "(none)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidate_parsing() {
        let available =
            "firecracker:\n  Installed: (none)\n  Candidate: 1.10.1+dfsg-1\n  Version table:\n";
        assert_eq!(candidate(available), Some("1.10.1+dfsg-1"));
        assert_eq!(
            candidate("firecracker:\n  Installed: (none)\n  Candidate: (none)\n"),
            None
        );
        assert_eq!(candidate(""), None);
    }
}
