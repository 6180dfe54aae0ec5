//! SSH shortcut: is banger's rendered ssh_config included from `~/.ssh/config`?
//!
//! The shortcut (`ssh <name>.vm`) is opt-in convenience — `banger vm ssh` works
//! without it — so a missing Include is a WARN, never a FAIL, and nothing is
//! reported until banger has rendered an ssh_config at all.

use std::path::{Path, PathBuf};

use crate::context::DoctorContext;
use crate::groups;
use crate::registry::CapabilityCheck;
use crate::report::Check;

const NAME: &str = "ssh shortcut";

pub struct SshShortcut;

impl CapabilityCheck for SshShortcut {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(&self, ctx: &DoctorContext) -> Vec<Check> {
        let user_config = ctx.layout.user_ssh_config();
        check_ssh_shortcut(
            &ctx.layout.ssh_config(),
            user_config.as_deref(),
            ctx.layout.home_dir.as_deref(),
        )
        .into_iter()
        .collect()
    }
}

pub fn check_ssh_shortcut(
    banger_config: &Path,
    user_config: Option<&Path>,
    home: Option<&Path>,
) -> Option<Check> {
    if !banger_config.exists() {
        return None;
    }
    let not_enabled = || {
        Check::warn(groups::SSH, NAME, "`ssh <name>.vm` is not enabled (opt-in)").hint(format!(
            "run `banger ssh-config --install`, or add `Include {}` at the top of ~/.ssh/config",
            banger_config.display()
        ))
    };
    let Some(user_config) = user_config else {
        return Some(not_enabled().detail("HOME is not set, so ~/.ssh/config cannot be found"));
    };
    let text = match std::fs::read_to_string(user_config) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Some(not_enabled().detail(format!("{} does not exist", user_config.display())));
        }
        Err(err) => {
            return Some(
                Check::warn(
                    groups::SSH,
                    NAME,
                    format!("cannot read {}: {err}", user_config.display()),
                )
                .hint("fix the file's permissions; `banger vm ssh` works either way"),
            );
        }
    };
    if includes(&text, banger_config, home) {
        Some(Check::pass(
            groups::SSH,
            NAME,
            "enabled: `ssh <name>.vm` goes through banger",
        ))
    } else {
        Some(not_enabled().detail(format!(
            "{} has no Include of {}",
            user_config.display(),
            banger_config.display()
        )))
    }
}

/// Whether an ssh_config text has an `Include` that covers `target`.
///
/// Follows ssh_config(5): the keyword is case-insensitive and may be followed by
/// `=`; arguments may be quoted, start with `~`, be relative to `~/.ssh`, or be
/// globs (`*`, `?`).
pub fn includes(config: &str, target: &Path, home: Option<&Path>) -> bool {
    config.lines().any(|line| {
        let line = line.trim();
        let Some((keyword, rest)) = line.split_once(|c: char| c.is_whitespace() || c == '=') else {
            return false;
        };
        if !keyword.eq_ignore_ascii_case("include") {
            return false;
        }
        let rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '=');
        arguments(rest).iter().any(|arg| {
            let pattern = expand(arg, home);
            glob_match(&pattern.to_string_lossy(), &target.to_string_lossy())
        })
    })
}

/// Split on whitespace, honouring double quotes.
fn arguments(text: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !current.is_empty() {
                    args.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        args.push(current);
    }
    args
}

fn expand(arg: &str, home: Option<&Path>) -> PathBuf {
    let path = match (arg.strip_prefix("~/"), home) {
        (Some(rest), Some(home)) => home.join(rest),
        _ if arg.starts_with('/') => PathBuf::from(arg),
        // ssh resolves relative user Includes against ~/.ssh.
        (_, Some(home)) => home.join(".ssh").join(arg),
        (_, None) => PathBuf::from(arg),
    };
    normalize(&path)
}

/// Resolve `.` and `..` lexically, so `~/.ssh/../x` compares equal to `~/x`.
fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// `*` matches any run of characters, `?` any one character.
fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            backtrack = Some((pi, ti));
            pi += 1;
        } else if let Some((star, matched)) = backtrack {
            pi = star + 1;
            ti = matched + 1;
            backtrack = Some((star, matched + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Status;

    const HOME: &str = "/home/al";
    const TARGET: &str = "/home/al/.config/banger/ssh_config";

    fn inc(config: &str) -> bool {
        includes(config, Path::new(TARGET), Some(Path::new(HOME)))
    }

    #[test]
    fn include_forms_that_count() {
        assert!(inc("Include /home/al/.config/banger/ssh_config\n"));
        assert!(inc("  include=~/.config/banger/ssh_config\n"));
        assert!(inc("INCLUDE \"/home/al/.config/banger/ssh_config\"\n"));
        assert!(inc("Include /etc/ssh/other ~/.config/banger/*\n"));
        assert!(inc("Include ../.config/banger/ssh_confi?\n"));
    }

    #[test]
    fn include_forms_that_do_not_count() {
        assert!(!inc(""));
        assert!(!inc("# Include /home/al/.config/banger/ssh_config\n"));
        assert!(!inc("Host *.vm\n  ProxyCommand banger\n"));
        assert!(!inc("Include /home/al/.config/banger/ssh_config.bak\n"));
        assert!(!inc("Includes /home/al/.config/banger/ssh_config\n"));
    }

    #[test]
    fn glob() {
        assert!(glob_match("*", "anything"));
        assert!(glob_match("a*c", "abbbc"));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("a?c", "abbc"));
        assert!(glob_match("*.conf", "x.y.conf"));
        assert!(!glob_match("*.conf", "x.conf.bak"));
    }

    #[test]
    fn outcomes() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path();
        let banger = home.join("ssh_config");
        let user = home.join(".ssh/config");

        // Nothing rendered yet: nothing to say.
        assert!(check_ssh_shortcut(&banger, Some(&user), Some(home)).is_none());

        std::fs::write(&banger, "Host *.vm\n").unwrap();
        let c = check_ssh_shortcut(&banger, Some(&user), Some(home)).unwrap();
        assert_eq!(c.status, Status::Warn);
        assert!(c.hint.unwrap().contains("banger ssh-config --install"));

        std::fs::create_dir_all(user.parent().unwrap()).unwrap();
        std::fs::write(&user, "Host foo\n  User bar\n").unwrap();
        let c = check_ssh_shortcut(&banger, Some(&user), Some(home)).unwrap();
        assert_eq!(c.status, Status::Warn);
        assert!(c.details[0].contains("has no Include"), "{:?}", c.details);

        std::fs::write(&user, format!("Include {}\nHost foo\n", banger.display())).unwrap();
        let c = check_ssh_shortcut(&banger, Some(&user), Some(home)).unwrap();
        assert_eq!(c.status, Status::Pass);
    }
}
