//! `banger system install`: put the binaries, units and install.toml in place, then
//! (on the real system) have systemd start the two services and check their sockets.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use banger_paths::{DAEMON_SERVICE, HELPER_SERVICE};
use banger_system::CommandRunner;
use banger_system::fsperm::{FileFacts, FileKind, check_root_executable};

use crate::SysInstallError;
use crate::files::{Change, FileChange, check_root_chain, ensure_dir, put_file};
use crate::plan::InstallPlan;
use crate::render::{ManagedDir, managed_dir, render_all};
use crate::systemctl::systemctl;

/// The binaries to install: the running `banger` and its guest agent.
#[derive(Debug, Clone)]
pub struct Sources {
    pub banger: PathBuf,
    /// `None` when no agent was found beside banger; the install then says so.
    pub agent: Option<PathBuf>,
}

/// What an install did.
#[derive(Debug, Default)]
pub struct InstallReport {
    pub changes: Vec<FileChange>,
    /// Whether systemd was asked to (re)start the services (only on the real system).
    pub live: bool,
    /// Whether an install record existed before.
    pub upgrade: bool,
}

pub fn install(
    plan: &InstallPlan,
    sources: &Sources,
    runner: &dyn CommandRunner,
) -> Result<InstallReport, SysInstallError> {
    plan.validate()?;
    let existing = banger_config::load_install_meta(&plan.install_toml())?;
    if let Some(meta) = &existing
        && (meta.owner_user != plan.owner_user || meta.owner_uid != plan.owner_uid)
    {
        return Err(SysInstallError::OwnerMismatch {
            installed_user: meta.owner_user.clone(),
            installed_uid: meta.owner_uid,
            wanted: plan.owner_user.clone(),
            state_dir: meta.state_dir.clone().unwrap_or(plan.state_dir.clone()),
        });
    }
    // A dev-mode daemon (root's, in the same runtime directory) would hold the lock the
    // service's daemon needs, and its VMs would be root's, not the owner's.
    if existing.is_none()
        && plan.manage_services
        && std::os::unix::net::UnixStream::connect(plan.daemon_socket()).is_ok()
    {
        return Err(SysInstallError::DevDaemonRunning {
            socket: plan.daemon_socket(),
        });
    }
    let mut report = InstallReport {
        live: plan.manage_services,
        upgrade: existing.is_some(),
        ..InstallReport::default()
    };
    let mut note = |path: &Path, change: Option<Change>| {
        if let Some(change) = change {
            report.changes.push(FileChange {
                path: path.to_path_buf(),
                change,
            });
        }
    };

    // First what can fail for reasons outside this install (the owner's home must exist),
    // so that such a refusal leaves nothing behind.
    note(&plan.owner_config_dir, ensure_owner_dir(plan, runner)?);

    // Binaries: root will run them, so everything above them must be root's too.
    let mut binaries = vec![(sources.banger.as_path(), plan.banger_bin())];
    if let Some(agent) = &sources.agent {
        binaries.push((agent.as_path(), plan.agent_bin()));
    }
    for (source, target) in binaries {
        note(&target, place_binary(source, &target)?);
    }

    // Directories systemd does not create for us (a moved root), and the owner's config
    // directory, the one part of their home the daemon may write.
    for (kind, dir, mode, uid, gid) in [
        (
            "StateDirectory",
            &plan.state_dir,
            0o700,
            plan.owner_uid,
            plan.owner_gid,
        ),
        (
            "RuntimeDirectory",
            &plan.runtime_dir,
            0o700,
            plan.owner_uid,
            plan.owner_gid,
        ),
        ("RuntimeDirectory", &plan.helper_runtime_dir, 0o755, 0, 0),
    ] {
        if managed_dir(kind, dir) == ManagedDir::Installer {
            note(dir, ensure_dir(dir, mode, uid, gid)?);
        }
    }
    let mut units_changed = false;
    for file in render_all(plan)? {
        let change = put_file(&file.path, file.text.as_bytes(), 0o644, 0, 0)?;
        units_changed |= change.is_some() && file.path != plan.install_toml();
        note(&file.path, change);
    }

    if report.live {
        let services = [HELPER_SERVICE, DAEMON_SERVICE];
        if units_changed {
            systemctl(runner, &["daemon-reload"])?;
        }
        systemctl(runner, &["enable", "--now", services[0], services[1]])?;
        // New binaries or units reach running services only by a restart; the daemon's
        // VMs keep running through it (KillMode=process).
        if report.upgrade && !report.changes.is_empty() {
            systemctl(runner, &["restart", services[0], services[1]])?;
        }
        let deadline = Instant::now() + plan.socket_timeout;
        wait_for_socket(
            HELPER_SERVICE,
            &plan.helper_socket(),
            plan.owner_uid,
            deadline,
        )?;
        wait_for_socket(
            DAEMON_SERVICE,
            &plan.daemon_socket(),
            plan.owner_uid,
            deadline,
        )?;
    }
    Ok(report)
}

/// Copy `source` to `target` root-owned 0755, or — when `source` already is `target` —
/// check that it is safe for root to run.
fn place_binary(source: &Path, target: &Path) -> Result<Option<Change>, SysInstallError> {
    let parent = target.parent().unwrap_or(Path::new("/"));
    if !parent.exists() {
        ensure_dir(parent, 0o755, 0, 0)?;
    }
    check_root_chain(target)?;
    let same = match (std::fs::metadata(source), std::fs::metadata(target)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    };
    if same {
        check_root_executable(target).map_err(|e| SysInstallError::Unsafe {
            path: target.to_path_buf(),
            problem: banger_system::error_chain(&e),
            fix: e.hint(),
        })?;
        return Ok(None);
    }
    let bytes = std::fs::read(source).map_err(|e| SysInstallError::io("read", source, e))?;
    put_file(target, &bytes, 0o755, 0, 0)
}

/// Create the owner's config directory as the owner (through `setpriv`), so that root
/// never creates or chowns anything inside a directory the owner controls.
fn ensure_owner_dir(
    plan: &InstallPlan,
    runner: &dyn CommandRunner,
) -> Result<Option<Change>, SysInstallError> {
    let dir = &plan.owner_config_dir;
    if FileFacts::stat(dir).is_ok_and(|f| f.kind == FileKind::Directory) {
        return Ok(None);
    }
    let uid = plan.owner_uid.to_string();
    let gid = plan.owner_gid.to_string();
    let path = dir.display().to_string();
    let args = [
        "--reuid",
        uid.as_str(),
        "--regid",
        gid.as_str(),
        "--clear-groups",
        "--",
        "mkdir",
        "-p",
        "-m",
        "0700",
        "--",
        path.as_str(),
    ];
    let out = runner
        .run_str("setpriv", &args)
        .map_err(|e| SysInstallError::io("create (as the owner)", dir, e))?;
    if !out.success() {
        return Err(SysInstallError::io(
            "create (as the owner)",
            dir,
            std::io::Error::other(out.stderr_str().trim().to_string()),
        ));
    }
    Ok(Some(Change::Created))
}

/// Wait until `path` is a socket, mode 0600, owned by the owner (a service may create it
/// and then set its owner, so a wrong one counts only at the deadline).
fn wait_for_socket(
    service: &'static str,
    path: &Path,
    owner: u32,
    deadline: Instant,
) -> Result<(), SysInstallError> {
    loop {
        let problem = match FileFacts::lstat(path) {
            Ok(f) if f.kind == FileKind::Socket && f.mode == 0o600 && f.uid == owner => {
                return Ok(());
            }
            Ok(f) => format!(
                "is {} with mode {:#o} owned by uid {}, not a socket 0600 owned by uid {owner}",
                f.kind, f.mode, f.uid
            ),
            Err(_) => "did not appear in time".to_string(),
        };
        if Instant::now() > deadline {
            return Err(SysInstallError::SocketNotReady {
                service,
                path: path.to_path_buf(),
                problem,
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
