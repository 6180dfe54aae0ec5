//! What can go wrong installing, checking or removing a system install.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SysInstallError {
    /// `command` is the whole command, quoted.
    #[error("{command} must run as root (it writes {what}); run it with sudo")]
    NotRoot {
        command: &'static str,
        what: &'static str,
    },
    #[error(
        "--owner {name:?} is not a user name banger can write into a unit file; use a name of letters, digits, '.', '_' and '-'"
    )]
    BadOwnerName { name: String },
    #[error(
        "--owner {name} is root (uid 0): the system install runs the daemon as an ordinary user, so that only the helper holds privileges; pass the user who will run VMs"
    )]
    RootOwner { name: String },
    #[error("no user named {name:?} on this host; pass an existing user to --owner")]
    UnknownUser { name: String },
    #[error("cannot look up the user {name:?}")]
    LookupUser {
        name: String,
        #[source]
        source: nix::Error,
    },
    #[error(
        "{what} {} must be an absolute path without white space, quotes, '%', '$', '\\', ';' or '..', which a unit file would read specially; choose another",
        path.display()
    )]
    BadPath { what: &'static str, path: PathBuf },
    #[error("cannot work out where the system install goes")]
    Layout {
        #[source]
        source: banger_paths::PathsError,
    },
    #[error("cannot write the install record (a path that is not UTF-8?)")]
    Serialize {
        #[source]
        source: toml::ser::Error,
    },
    #[error(
        "banger is installed for {installed_user} (uid {installed_uid}), not {wanted}; to switch owners run `sudo banger system uninstall` and then `sudo banger system install --owner {wanted}` (images and VMs in {} are kept and become {wanted}'s)",
        state_dir.display()
    )]
    OwnerMismatch {
        installed_user: String,
        installed_uid: u32,
        wanted: String,
        state_dir: PathBuf,
    },
    #[error(
        "a dev-mode banger daemon answers on {}; stop it first with `sudo banger daemon stop` (its VMs keep running; remove them with `banger vm rm` if the owner's daemon should not find root's VMs)",
        socket.display()
    )]
    DevDaemonRunning { socket: PathBuf },
    #[error("cannot {action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{} {problem}: root would run a program other users can replace; {fix}",
        path.display()
    )]
    Unsafe {
        path: PathBuf,
        problem: String,
        fix: String,
    },
    #[error("there is no system install here ({} not found); nothing to remove", path.display())]
    NoInstall { path: PathBuf },
    #[error(transparent)]
    Meta(#[from] banger_config::InstallMetaError),
    #[error(transparent)]
    Jail(#[from] crate::jail::JailUnusable),
    #[error(
        "cannot read the owner's config to find Firecracker for the helper's jailer; fix it, or choose with --firecracker PATH or --no-jailer"
    )]
    OwnerConfig {
        #[source]
        source: banger_config::ConfigError,
    },
    #[error("`systemctl {args}` failed: {detail}; see `journalctl -xe`")]
    Systemctl { args: String, detail: String },
    #[error(
        "{service} started but its socket {} {problem}; see `journalctl -u {service}`",
        path.display()
    )]
    SocketNotReady {
        service: &'static str,
        path: PathBuf,
        problem: String,
    },
}

impl SysInstallError {
    pub(crate) fn io(action: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        SysInstallError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}
