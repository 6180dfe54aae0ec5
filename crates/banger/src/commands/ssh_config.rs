//! `banger ssh-config [--install | --uninstall | --print]`

use anyhow::Context;
use banger_paths::Layout;
use banger_ssh::config::{SshConfigInputs, render};
use banger_ssh::include::{self, Change};
use banger_ssh::key::{KeyStatus, ensure_key};
use banger_system::RealRunner;

use crate::cli::SshConfigArgs;
use crate::outln;

/// The configured key and banger's ssh_config for it, rendered.
fn rendered(layout: &Layout) -> anyhow::Result<(std::path::PathBuf, String)> {
    let config = banger_config::load(&layout.config_file())?;
    let key = config.ssh_key_path_resolved(layout).value;
    let exe = std::env::current_exe().context("cannot locate the banger executable")?;
    let rendered = render(&SshConfigInputs {
        banger_exe: &exe,
        identity_file: &key,
        known_hosts: &layout.known_hosts(),
        vm_blocks: &layout.ssh_config_vms(),
    })?;
    Ok((key, rendered))
}

/// Make sure the key exists and the rendered config is current (without touching
/// ~/.ssh/config); returns the config's path, for `ssh -F`.
pub fn ensure_rendered(layout: &Layout) -> anyhow::Result<std::path::PathBuf> {
    let (key, rendered) = rendered(layout)?;
    ensure_key(&key, &RealRunner)?;
    let target = layout.ssh_config();
    if std::fs::read_to_string(&target).ok().as_deref() != Some(rendered.as_str()) {
        banger_ssh::config::write(&target, &rendered)?;
    }
    Ok(target)
}

pub fn run(layout: &Layout, args: SshConfigArgs) -> anyhow::Result<i32> {
    let (key, rendered) = rendered(layout)?;
    let target = layout.ssh_config();
    let home = layout.home_dir.as_deref();
    let user_config = || {
        layout
            .user_ssh_config()
            .context("HOME is not set, so ~/.ssh/config cannot be found")
    };
    if args.print {
        std::io::Write::write_all(&mut std::io::stdout(), rendered.as_bytes())?;
        return Ok(0);
    }
    if args.install {
        if ensure_key(&key, &RealRunner)? == KeyStatus::Created {
            outln!("created SSH key {}", key.display())?;
        }
        banger_ssh::config::write(&target, &rendered)?;
        let user = user_config()?;
        match include::install(&user, &target, home)? {
            Change::Added { backup } => {
                outln!(
                    "added `{}` to {}",
                    include::include_line(&target),
                    user.display()
                )?;
                if let Some(backup) = backup {
                    outln!("the previous file is saved as {}", backup.display())?;
                }
            }
            _ => outln!("{} already includes {}", user.display(), target.display())?,
        }
        outln!("`ssh NAME.vm` now goes through banger")?;
        if let Some(theirs) = ssh_home_differs(home) {
            crate::output::warn(&format!(
                "ssh reads {}/.ssh/config (your home in the user database), not this one under HOME ({}): \
                 until HOME is that directory, `ssh NAME.vm` will not see the Include; \
                 `banger vm ssh NAME` works either way",
                theirs.display(),
                home.map_or_else(String::new, |h| h.display().to_string())
            ));
        }
        return Ok(0);
    }
    if args.uninstall {
        let user = user_config()?;
        match include::uninstall(&user, &target, home)? {
            Change::Removed { backup, .. } => outln!(
                "removed the Include of {} from {} (previous file: {})",
                target.display(),
                user.display(),
                backup.display()
            )?,
            _ if still_included(&user, &target, home) => {
                // A glob, or a line naming other files too: not banger's to edit.
                anyhow::bail!(
                    "{} includes {} through a line banger did not write (a glob, or several files on one line); edit that line by hand",
                    user.display(),
                    target.display()
                );
            }
            _ => outln!("{} does not include {}", user.display(), target.display())?,
        }
        return Ok(0);
    }
    let user = user_config()?;
    let enabled = still_included(&user, &target, home);
    outln!("rendered config: {}", target.display())?;
    if enabled {
        outln!("enabled: {} includes it", user.display())?;
    } else {
        outln!(
            "not enabled: run `banger ssh-config --install` to add one Include line to {}",
            user.display()
        )?;
    }
    Ok(0)
}

/// OpenSSH finds ~/.ssh/config from the user database (getpwuid), never from HOME: the
/// home ssh reads when it is not the directory HOME names (sudo keeping HOME, CI runners,
/// a HOME set by hand), else None.
fn ssh_home_differs(home: Option<&std::path::Path>) -> Option<std::path::PathBuf> {
    let theirs = nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()?
        .dir;
    let same = |a: &std::path::Path, b: &std::path::Path| match (a.canonicalize(), b.canonicalize())
    {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    };
    match home {
        Some(home) if same(home, &theirs) => None,
        _ => Some(theirs),
    }
}

/// Whether `user` (~/.ssh/config) has an Include that covers `target`.
fn still_included(
    user: &std::path::Path,
    target: &std::path::Path,
    home: Option<&std::path::Path>,
) -> bool {
    std::fs::read_to_string(user)
        .map(|text| banger_ssh::includes(&text, target, home))
        .unwrap_or(false)
}
