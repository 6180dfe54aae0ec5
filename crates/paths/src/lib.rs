//! Every location banger reads or writes, computed in one place.
//!
//! Two layouts exist:
//!
//! * **system** — a system install (`/etc/banger/install.toml` present) or dev mode run
//!   as root: state under `/var/lib/banger`, sockets under `/run/banger`.
//! * **user** — dev mode as an ordinary user: the XDG state dir
//!   (`~/.local/state/banger`) and runtime dir (`$XDG_RUNTIME_DIR/banger`).
//!
//! The per-user files (config, ssh_config, default SSH key) always live under the
//! user's config dir. Each root can be moved with exactly one environment variable —
//! `BANGER_STATE_DIR`, `BANGER_RUNTIME_DIR`, `BANGER_CONFIG_DIR`, `BANGER_ETC_DIR` —
//! so tests run in temp dirs, in parallel, without touching the real host.

use std::path::{Path, PathBuf};

pub const ENV_STATE_DIR: &str = "BANGER_STATE_DIR";
pub const ENV_RUNTIME_DIR: &str = "BANGER_RUNTIME_DIR";
pub const ENV_CONFIG_DIR: &str = "BANGER_CONFIG_DIR";
pub const ENV_ETC_DIR: &str = "BANGER_ETC_DIR";
/// Where `banger system install` writes its unit files (a fake root for tests and
/// packaging); the install records it, so nothing else reads this variable.
pub const ENV_SYSTEMD_DIR: &str = "BANGER_SYSTEMD_DIR";

/// Where a system install's unit files live.
pub const SYSTEMD_SYSTEM_DIR: &str = "/etc/systemd/system";

/// Name of the guest agent binary shipped beside `banger`.
pub const AGENT_BINARY_NAME: &str = "banger-agent";

/// A system install's state directory (the daemon's `StateDirectory=banger`).
pub const SYSTEM_STATE_DIR: &str = "/var/lib/banger";
/// The runtime directory of a system install and of root in dev mode.
pub const SYSTEM_RUNTIME_DIR: &str = "/run/banger";

/// systemd unit names of a system install.
pub const DAEMON_SERVICE: &str = "bangerd.service";
pub const HELPER_SERVICE: &str = "banger-helper.service";

#[derive(Debug, thiserror::Error)]
pub enum PathsError {
    /// The home directory is needed for a per-user path but `HOME` is unset or empty.
    #[error(
        "cannot find your home directory: HOME is not set; set HOME or point {ENV_CONFIG_DIR} / {ENV_STATE_DIR} at a directory"
    )]
    NoHome,
    /// An override variable holds a relative path.
    #[error("{var}={value:?} must be an absolute path")]
    RelativeOverride { var: &'static str, value: String },
}

/// How banger is running on this host: decides the state and runtime roots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `install.toml` exists: the hardened system install.
    SystemInstall,
    /// No system install, running as root: system paths, dev-mode trust.
    DevRoot,
    /// No system install, running as an ordinary user: XDG paths.
    DevUser,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::SystemInstall => "system",
            Mode::DevRoot => "dev (root)",
            Mode::DevUser => "dev (user)",
        }
    }

    pub fn is_system_install(self) -> bool {
        matches!(self, Mode::SystemInstall)
    }
}

/// Where the inputs to path resolution come from. Production reads the process;
/// tests pass a map so they never mutate the process environment.
pub trait EnvSource {
    fn var(&self, name: &str) -> Option<String>;
    fn uid(&self) -> u32;
    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
}

/// The real process environment.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }

    fn uid(&self) -> u32 {
        // SAFETY: getuid has no preconditions and cannot fail.
        unsafe { libc::getuid() }
    }
}

/// Markers in the names of temporary files and directories banger writes inside its state
/// directory (`.NAME.work-XXXX`, `.download-XXXX`, …): always a leading dot, then one of
/// these. Work is written under such a name and renamed into place when complete, so a name
/// with a marker is never a finished artefact, and one found when the daemon starts is the
/// leftover of interrupted work. New code picks one of these (`.tmp-` when none fits).
pub const TEMP_MARKERS: [&str; 5] = [".download-", ".work-", ".new-", ".old-", ".tmp-"];

/// Whether `name` (a file name, not a path) is a temporary name (see [`TEMP_MARKERS`]).
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && TEMP_MARKERS.iter().any(|m| name.contains(m))
}

/// The resolved set of roots. Every concrete path is a method on this type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub mode: Mode,
    pub state_dir: PathBuf,
    pub runtime_dir: PathBuf,
    pub config_dir: PathBuf,
    pub etc_dir: PathBuf,
    /// The user's home, when known (for `~/.ssh/config`).
    pub home_dir: Option<PathBuf>,
}

impl Layout {
    /// Resolve the layout for this process.
    pub fn resolve() -> Result<Layout, PathsError> {
        Self::resolve_with(&ProcessEnv)
    }

    /// Resolve from an explicit environment (tests).
    pub fn resolve_with(env: &dyn EnvSource) -> Result<Layout, PathsError> {
        let home = env.var("HOME").map(PathBuf::from);
        let etc_dir =
            override_dir(env, ENV_ETC_DIR)?.unwrap_or_else(|| PathBuf::from("/etc/banger"));
        let mode = if env.exists(&etc_dir.join("install.toml")) {
            Mode::SystemInstall
        } else if env.uid() == 0 {
            Mode::DevRoot
        } else {
            Mode::DevUser
        };

        let state_dir = match override_dir(env, ENV_STATE_DIR)? {
            Some(dir) => dir,
            None if mode == Mode::DevUser => match env.var("XDG_STATE_HOME") {
                Some(xdg) if Path::new(&xdg).is_absolute() => PathBuf::from(xdg).join("banger"),
                _ => home
                    .as_ref()
                    .ok_or(PathsError::NoHome)?
                    .join(".local/state/banger"),
            },
            None => PathBuf::from(SYSTEM_STATE_DIR),
        };

        let runtime_dir = match override_dir(env, ENV_RUNTIME_DIR)? {
            Some(dir) => dir,
            None if mode == Mode::DevUser => match env.var("XDG_RUNTIME_DIR") {
                Some(xdg) if Path::new(&xdg).is_absolute() => PathBuf::from(xdg).join("banger"),
                // No XDG runtime dir (e.g. a su shell): keep sockets inside the state dir,
                // which is private to the user.
                _ => state_dir.join("run"),
            },
            None => PathBuf::from(SYSTEM_RUNTIME_DIR),
        };

        let config_dir = match override_dir(env, ENV_CONFIG_DIR)? {
            Some(dir) => dir,
            None => match env.var("XDG_CONFIG_HOME") {
                Some(xdg) if Path::new(&xdg).is_absolute() => PathBuf::from(xdg).join("banger"),
                _ => home
                    .as_ref()
                    .ok_or(PathsError::NoHome)?
                    .join(".config/banger"),
            },
        };

        Ok(Layout {
            mode,
            state_dir,
            runtime_dir,
            config_dir,
            etc_dir,
            home_dir: home,
        })
    }

    // --- state -------------------------------------------------------------

    /// The SQLite state store.
    pub fn db_path(&self) -> PathBuf {
        self.state_dir.join("state.db")
    }

    /// Registered images live here, one directory per image.
    pub fn images_dir(&self) -> PathBuf {
        self.state_dir.join("images")
    }

    pub fn image_dir(&self, image_name: &str) -> PathBuf {
        self.images_dir().join(image_name)
    }

    /// Downloaded artefacts (Debian packages, catalog files), keyed by checksum.
    pub fn cache_dir(&self) -> PathBuf {
        self.state_dir.join("cache")
    }

    /// Per-VM directories (disks, console log, VMM sockets).
    pub fn vms_dir(&self) -> PathBuf {
        self.state_dir.join("vms")
    }

    pub fn vm_dir(&self, vm_id: &str) -> PathBuf {
        self.vms_dir().join(vm_id)
    }

    /// Removed VMs' directories on their way out: renamed here, then deleted in the
    /// background (on the state's file system, so the rename is atomic).
    pub fn trash_dir(&self) -> PathBuf {
        self.state_dir.join("trash")
    }

    /// Snapshots of VMs, one directory per snapshot id.
    pub fn snapshots_dir(&self) -> PathBuf {
        self.state_dir.join("snapshots")
    }

    pub fn snapshot_dir(&self, snapshot_id: &str) -> PathBuf {
        self.snapshots_dir().join(snapshot_id)
    }

    /// Log file of a daemon started by the CLI in dev mode.
    pub fn daemon_log(&self) -> PathBuf {
        self.state_dir.join("daemon.log")
    }

    // --- runtime -----------------------------------------------------------

    pub fn daemon_socket(&self) -> PathBuf {
        self.runtime_dir.join("bangerd.sock")
    }

    pub fn helper_socket(&self) -> PathBuf {
        self.helper_runtime_dir().join("helper.sock")
    }

    /// Where the helper's socket lives. A system install gives the helper a runtime
    /// directory of its own beside the daemon's (`/run/banger-helper`): the daemon's belongs
    /// to the owner, the helper holds no capability to write there, and root should not
    /// create files in a directory another user controls. In dev mode both share one.
    pub fn helper_runtime_dir(&self) -> PathBuf {
        match self.mode {
            Mode::SystemInstall => system_helper_runtime_dir(&self.runtime_dir),
            Mode::DevRoot | Mode::DevUser => self.runtime_dir.clone(),
        }
    }

    /// Where a helper serving this user may listen, in the order to try: this layout's
    /// socket, and for an ordinary user in dev mode also root's (`sudo banger helper`
    /// listens there, for the uid that ran sudo).
    pub fn helper_socket_candidates(&self) -> Vec<PathBuf> {
        let mut candidates = vec![self.helper_socket()];
        let root = Path::new(SYSTEM_RUNTIME_DIR).join("helper.sock");
        if self.mode == Mode::DevUser && !candidates.contains(&root) {
            candidates.push(root);
        }
        candidates
    }

    /// Pid file of a dev-mode daemon (used by `banger daemon stop`).
    pub fn daemon_pid_file(&self) -> PathBuf {
        self.runtime_dir.join("bangerd.pid")
    }

    // --- etc ---------------------------------------------------------------

    pub fn install_toml(&self) -> PathBuf {
        self.etc_dir.join("install.toml")
    }

    // --- per user ----------------------------------------------------------

    pub fn config_file(&self) -> PathBuf {
        self.config_dir.join("config.toml")
    }

    /// The ssh_config banger renders for `ssh <name>.vm`.
    pub fn ssh_config(&self) -> PathBuf {
        self.config_dir.join("ssh_config")
    }

    /// The per-VM `Host NAME.vm` blocks the daemon keeps current; `ssh_config` includes it.
    pub fn ssh_config_vms(&self) -> PathBuf {
        self.config_dir.join("ssh_config.vms")
    }

    /// The guests' pinned SSH host keys (banger-managed; the rendered ssh_config points here).
    pub fn known_hosts(&self) -> PathBuf {
        self.config_dir.join("known_hosts")
    }

    /// The key banger creates when `ssh_key_path` is not configured.
    pub fn default_ssh_key(&self) -> PathBuf {
        self.config_dir.join("ssh").join("id_ed25519")
    }

    /// The user's own `~/.ssh/config`, where `banger ssh-config --install` adds an Include.
    pub fn user_ssh_config(&self) -> Option<PathBuf> {
        self.home_dir
            .as_ref()
            .map(|h| h.join(".ssh").join("config"))
    }
}

/// The roots of a system install on this host, whether or not one exists yet (for
/// `banger system install`, which creates it), with the overrides applied. Unlike a
/// [`Layout`] it needs no home directory: root's own config plays no part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemRoots {
    pub etc_dir: PathBuf,
    pub state_dir: PathBuf,
    pub runtime_dir: PathBuf,
}

impl SystemRoots {
    pub fn resolve_with(env: &dyn EnvSource) -> Result<SystemRoots, PathsError> {
        Ok(SystemRoots {
            etc_dir: override_dir(env, ENV_ETC_DIR)?
                .unwrap_or_else(|| PathBuf::from("/etc/banger")),
            state_dir: override_dir(env, ENV_STATE_DIR)?
                .unwrap_or_else(|| PathBuf::from(SYSTEM_STATE_DIR)),
            runtime_dir: override_dir(env, ENV_RUNTIME_DIR)?
                .unwrap_or_else(|| PathBuf::from(SYSTEM_RUNTIME_DIR)),
        })
    }

    pub fn helper_runtime_dir(&self) -> PathBuf {
        system_helper_runtime_dir(&self.runtime_dir)
    }
}

/// Where the root helper builds Firecracker's jails for the state in `state_dir`: its
/// sibling with `-jail` appended (`/var/lib/banger` → `/var/lib/banger-jail`), on the same
/// file system (the helper hard-links the owner's files into the chroots) and outside the
/// owner's directory (root-owned, so the owner cannot redirect what root writes there).
pub fn jail_root(state_dir: &Path) -> PathBuf {
    let mut name = state_dir
        .file_name()
        .map_or_else(|| "banger".into(), |n| n.to_os_string());
    name.push("-jail");
    state_dir.with_file_name(name)
}

/// The helper's runtime directory of a system install whose daemon uses `runtime_dir`:
/// its sibling with `-helper` appended (`/run/banger` → `/run/banger-helper`).
pub fn system_helper_runtime_dir(runtime_dir: &Path) -> PathBuf {
    match runtime_dir.file_name() {
        Some(name) => {
            let mut sibling = name.to_os_string();
            sibling.push("-helper");
            runtime_dir.with_file_name(sibling)
        }
        None => runtime_dir.join("helper"),
    }
}

fn override_dir(env: &dyn EnvSource, var: &'static str) -> Result<Option<PathBuf>, PathsError> {
    match env.var(var) {
        None => Ok(None),
        Some(value) if Path::new(&value).is_absolute() => Ok(Some(PathBuf::from(value))),
        Some(value) => Err(PathsError::RelativeOverride { var, value }),
    }
}

/// Find a companion binary shipped with banger (the guest agent): next to the running
/// executable first, then in `../lib/banger/` relative to it (a packaged layout).
pub fn companion_binary(name: &str) -> Result<PathBuf, String> {
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot locate the banger executable: {e}"))?;
    let dir = exe
        .parent()
        .ok_or_else(|| format!("executable path {} has no parent directory", exe.display()))?;
    companion_binary_in(dir, name)
}

/// The search rule of [`companion_binary`], starting from `exe_dir`.
pub fn companion_binary_in(exe_dir: &Path, name: &str) -> Result<PathBuf, String> {
    let candidates = [exe_dir.join(name), exe_dir.join("../lib/banger").join(name)];
    for candidate in &candidates {
        if candidate.is_file() {
            return Ok(candidate.clone());
        }
    }
    Err(format!(
        "{name} not found next to banger ({}) or in {}",
        candidates[0].display(),
        candidates[1].display()
    ))
}

#[cfg(test)]
mod tests;
