//! `banger system uninstall [--purge]`: stop and remove what the install put in place.
//! Images and VMs (the state directory) stay unless `--purge`; the owner's own config
//! directory (their SSH key, config.toml) always stays.

use std::path::{Path, PathBuf};

use banger_config::InstallMeta;
use banger_paths::{DAEMON_SERVICE, HELPER_SERVICE, SYSTEMD_SYSTEM_DIR};
use banger_system::CommandRunner;

use crate::SysInstallError;
use crate::files::{FileChange, remove_empty_dir, remove_file, remove_tree};
use crate::render::{ManagedDir, managed_dir};
use crate::systemctl::systemctl;

#[derive(Debug, Default)]
pub struct UninstallReport {
    pub owner_user: String,
    pub changes: Vec<FileChange>,
    pub live: bool,
    /// The state directory that was kept (without `--purge`).
    pub kept_state: Option<PathBuf>,
}

pub fn uninstall(
    etc_dir: &Path,
    purge: bool,
    runner: &dyn CommandRunner,
) -> Result<UninstallReport, SysInstallError> {
    let install_toml = etc_dir.join("install.toml");
    let meta: InstallMeta = banger_config::load_install_meta(&install_toml)?.ok_or_else(|| {
        SysInstallError::NoInstall {
            path: install_toml.clone(),
        }
    })?;
    let unit_dir = meta
        .unit_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(SYSTEMD_SYSTEM_DIR));
    let live = etc_dir == Path::new("/etc/banger") && unit_dir == Path::new(SYSTEMD_SYSTEM_DIR);
    let mut report = UninstallReport {
        owner_user: meta.owner_user.clone(),
        live,
        ..UninstallReport::default()
    };
    let mut note = |path: &Path, change| {
        if let Some(change) = change {
            report.changes.push(FileChange {
                path: path.to_path_buf(),
                change,
            });
        }
    };

    let units = [unit_dir.join(HELPER_SERVICE), unit_dir.join(DAEMON_SERVICE)];
    if live && units.iter().any(|u| u.exists()) {
        // The daemon's VMs keep running (KillMode=process); `banger vm rm` removes them.
        systemctl(
            runner,
            &["disable", "--now", DAEMON_SERVICE, HELPER_SERVICE],
        )?;
    }
    for unit in &units {
        note(unit, remove_file(unit)?);
    }
    if live {
        systemctl(runner, &["daemon-reload"])?;
    }
    for bin in [&meta.banger_bin, &meta.agent_bin].into_iter().flatten() {
        note(bin, remove_file(bin)?);
        // `PREFIX/lib/banger` is ours alone.
        if let Some(dir) = bin.parent().filter(|d| d.ends_with("lib/banger")) {
            note(dir, remove_empty_dir(dir));
        }
    }
    // The record goes last: until it is gone, this is still a (broken) system install
    // that a second uninstall can finish.
    note(&install_toml, remove_file(&install_toml)?);
    note(etc_dir, remove_empty_dir(etc_dir));

    // Runtime directories hold only sockets and locks. Under systemd they vanish with
    // the services; under a moved root the installer made them, so it removes them.
    if let Some(runtime) = &meta.runtime_dir {
        for dir in [
            runtime.clone(),
            banger_paths::system_helper_runtime_dir(runtime),
        ] {
            if managed_dir("RuntimeDirectory", &dir) == ManagedDir::Installer {
                note(&dir, remove_tree(&dir)?);
            }
        }
    }
    if let Some(state) = &meta.state_dir {
        if purge {
            note(state, remove_tree(state)?);
            // The helper's jails for it (chroots of VMs that are gone, or still running).
            let jails = banger_paths::jail_root(state);
            note(&jails, remove_tree(&jails)?);
        } else {
            report.kept_state = Some(state.clone());
        }
    }
    Ok(report)
}
