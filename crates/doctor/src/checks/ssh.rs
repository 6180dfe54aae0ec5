//! SSH shortcut: is banger's rendered ssh_config included from `~/.ssh/config`?
//!
//! The shortcut (`ssh <name>.vm`) is opt-in convenience — `banger exec NAME -- CMD` works
//! without it — so a missing Include is a WARN, never a FAIL, and nothing is
//! reported until banger has rendered an ssh_config at all.

use std::path::Path;

use banger_ssh::includes;

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
                .hint("fix the file's permissions; `banger exec NAME -- CMD` works either way"),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Status;

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
