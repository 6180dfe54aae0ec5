//! Which networking an owner's VMs get, and why: decided here once, for doctor (which
//! reports it) and the daemon (which acts on it).
//!
//! | install | `network.mode` | helper | → |
//! |---|---|---|---|
//! | system | auto, bridge | (expected) | bridge through the helper's socket |
//! | dev, root | auto, bridge | — | bridge in-process (the helper's executor in the daemon) |
//! | dev, user | auto, bridge | answers | bridge through the helper started by hand |
//! | dev, user | auto | absent | user-mode networking |
//! | dev, user | bridge | absent | error: nothing falls back silently |
//! | any | user | — | user-mode networking |
//! | any | none | — | no network |
//!
//! User-mode networking exists only where the VMM has it (QEMU): elsewhere (Firecracker)
//! a VM that would get it gets no network, and the reason says so. In a system install a
//! helper that does not answer is not a reason to fall back: the install promises the
//! bridge, and the daemon's errors (and doctor) name the helper service instead.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use banger_config::{NetworkMode, Provenance, Resolved};
use banger_paths::Mode;
use banger_system::RealRunner;

use crate::{Executor, HelperClient, HelperError, InProcess, Privileged};

/// The networking in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Networking {
    /// Bridge and TAPs made by the root helper listening on `socket`.
    BridgeHelper { socket: PathBuf },
    /// Bridge and TAPs made in the daemon's own process (it runs as root).
    BridgeInProcess,
    /// QEMU user-mode networking (QEMU's NAT, `hostfwd` for published ports).
    User,
    /// No network device.
    None,
}

impl Networking {
    /// A short name for reports: `bridge (helper)`, `bridge (in-process)`, `user`, `none`.
    pub fn label(&self) -> &'static str {
        match self {
            Networking::BridgeHelper { .. } => "bridge (helper)",
            Networking::BridgeInProcess => "bridge (in-process)",
            Networking::User => "user-mode",
            Networking::None => "none",
        }
    }

    pub fn is_bridge(&self) -> bool {
        matches!(
            self,
            Networking::BridgeHelper { .. } | Networking::BridgeInProcess
        )
    }

    /// The privileged interface for bridge networking, for the owner `uid`.
    pub fn privileged(&self, uid: u32) -> Option<Box<dyn Privileged>> {
        match self {
            Networking::BridgeHelper { socket } => Some(Box::new(HelperClient::new(socket))),
            Networking::BridgeInProcess => Some(Box::new(InProcess::new(Arc::new(Executor::new(
                uid,
                Arc::new(RealRunner),
                None,
            ))))),
            Networking::User | Networking::None => None,
        }
    }
}

/// The decision and the sentence that explains it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModeSelection {
    pub networking: Networking,
    /// What the config asked for.
    pub preference: Resolved<NetworkMode>,
    pub reason: String,
}

/// What knocking on a helper socket found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HelperProbe {
    /// A helper answered and admits the caller.
    Answers,
    /// A helper answered but refused the caller (it serves another uid, or another
    /// protocol version); the message says why.
    Refuses(String),
    /// Nothing answered; the message says what was found.
    Absent(String),
}

/// Knock on the helper socket with `hello` (read-only: it changes nothing).
pub fn probe_helper(socket: &Path) -> HelperProbe {
    if std::fs::symlink_metadata(socket).is_err() {
        return HelperProbe::Absent(format!("no helper socket at {}", socket.display()));
    }
    match HelperClient::new(socket).hello() {
        Ok(_) => HelperProbe::Answers,
        // It answered: wrong uid, another protocol version.
        Err(e @ HelperError::Refused { .. }) => HelperProbe::Refuses(e.to_string()),
        // A stale socket, a socket we may not open, a helper that died mid-answer.
        Err(e) => HelperProbe::Absent(banger_system::error_chain(&e)),
    }
}

/// Knock on each candidate socket in turn; the first that answers, else the first
/// candidate and what was found at each.
pub fn probe_helpers(candidates: &[PathBuf]) -> (PathBuf, HelperProbe) {
    let mut found = Vec::new();
    for socket in candidates {
        match probe_helper(socket) {
            HelperProbe::Answers => return (socket.clone(), HelperProbe::Answers),
            other => found.push(other),
        }
    }
    let first = candidates.first().cloned().unwrap_or_default();
    // A refusal is news (a helper for someone else is running); absence is the default.
    let refusal = found
        .iter()
        .find(|p| matches!(p, HelperProbe::Refuses(_)))
        .cloned();
    let why = found
        .iter()
        .map(|p| match p {
            HelperProbe::Refuses(m) | HelperProbe::Absent(m) => m.as_str(),
            HelperProbe::Answers => "",
        })
        .collect::<Vec<_>>()
        .join("; ");
    (first, refusal.unwrap_or(HelperProbe::Absent(why)))
}

/// The inputs of [`select_network_mode`].
#[derive(Debug, Clone)]
pub struct ModeInputs<'a> {
    pub preference: Resolved<NetworkMode>,
    pub install: Mode,
    /// Where the helper listens (the layout's helper socket).
    pub helper_socket: &'a Path,
    /// What knocking on it found (only consulted in dev mode as an ordinary user).
    pub helper: &'a HelperProbe,
    /// Whether the selected VMM has user-mode networking, and its name.
    pub vmm_user_net: bool,
    pub vmm: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModeError {
    #[error(
        "network.mode = \"bridge\" needs the root helper, and none answers ({why}); start one with `sudo banger helper` (see docs/privileges.md), or set network.mode = \"auto\" or \"user\""
    )]
    BridgeUnavailable { why: String },
}

pub fn select_network_mode(inputs: &ModeInputs<'_>) -> Result<ModeSelection, ModeError> {
    let pref = inputs.preference.clone();
    let asked = match pref.source {
        Provenance::Config => format!("network.mode = \"{}\"", pref.value),
        _ => "network.mode is auto".to_string(),
    };
    let helper = || Networking::BridgeHelper {
        socket: inputs.helper_socket.to_path_buf(),
    };
    let user = |why: String| {
        if inputs.vmm_user_net {
            (Networking::User, why)
        } else {
            (
                Networking::None,
                format!(
                    "{why}; but {} has no user-mode networking, so VMs get no network",
                    inputs.vmm
                ),
            )
        }
    };
    let (networking, reason) = match (pref.value, inputs.install) {
        (NetworkMode::None, _) => (Networking::None, format!("{asked}: VMs get no network")),
        (NetworkMode::User, _) => user(asked.clone()),
        (NetworkMode::Auto | NetworkMode::Bridge, Mode::SystemInstall) => (
            helper(),
            format!(
                "{asked} and this is a system install: the root helper at {} makes the bridge and TAPs",
                inputs.helper_socket.display()
            ),
        ),
        (NetworkMode::Auto | NetworkMode::Bridge, Mode::DevRoot) => (
            Networking::BridgeInProcess,
            format!(
                "{asked} and the daemon runs as root (dev mode): it makes the bridge and TAPs itself"
            ),
        ),
        (pref_value, Mode::DevUser) => match (inputs.helper, pref_value) {
            (HelperProbe::Answers, _) => (
                helper(),
                format!(
                    "{asked} and a root helper answers at {} (dev mode)",
                    inputs.helper_socket.display()
                ),
            ),
            (HelperProbe::Refuses(why) | HelperProbe::Absent(why), NetworkMode::Bridge) => {
                return Err(ModeError::BridgeUnavailable { why: why.clone() });
            }
            (HelperProbe::Refuses(why) | HelperProbe::Absent(why), _) => user(format!(
                "{asked}, the daemon runs as an ordinary user and no root helper serves it ({why})"
            )),
        },
    };
    Ok(ModeSelection {
        networking,
        preference: pref,
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn select(
        value: NetworkMode,
        source: Provenance,
        install: Mode,
        helper: HelperProbe,
        vmm_user_net: bool,
    ) -> Result<ModeSelection, ModeError> {
        select_network_mode(&ModeInputs {
            preference: Resolved::new(value, source),
            install,
            helper_socket: Path::new("/run/banger/helper.sock"),
            helper: &helper,
            vmm_user_net,
            vmm: "firecracker",
        })
    }

    #[test]
    fn the_table_of_the_module_docs() {
        use NetworkMode::*;
        use Provenance::{Builtin, Config};
        let absent = || HelperProbe::Absent("no helper socket".into());
        let helper = Networking::BridgeHelper {
            socket: "/run/banger/helper.sock".into(),
        };
        let cases = [
            (Auto, Builtin, Mode::SystemInstall, absent(), helper.clone()),
            (
                Bridge,
                Config,
                Mode::SystemInstall,
                absent(),
                helper.clone(),
            ),
            (
                Auto,
                Builtin,
                Mode::DevRoot,
                absent(),
                Networking::BridgeInProcess,
            ),
            (
                Auto,
                Builtin,
                Mode::DevUser,
                HelperProbe::Answers,
                helper.clone(),
            ),
            (Bridge, Config, Mode::DevUser, HelperProbe::Answers, helper),
            (Auto, Builtin, Mode::DevUser, absent(), Networking::User),
            (
                Auto,
                Builtin,
                Mode::DevUser,
                HelperProbe::Refuses("serves uid 7".into()),
                Networking::User,
            ),
            (
                User,
                Config,
                Mode::SystemInstall,
                absent(),
                Networking::User,
            ),
            (User, Config, Mode::DevRoot, absent(), Networking::User),
            (
                None,
                Config,
                Mode::DevRoot,
                HelperProbe::Answers,
                Networking::None,
            ),
        ];
        for (value, source, install, probe, want) in cases {
            let got = select(value, source, install, probe.clone(), true).unwrap();
            assert_eq!(got.networking, want, "{value} {install:?} {probe:?}");
            assert!(!got.reason.is_empty());
        }
    }

    #[test]
    fn bridge_never_falls_back_and_says_how_to_get_it() {
        let err = select(
            NetworkMode::Bridge,
            Provenance::Config,
            Mode::DevUser,
            HelperProbe::Absent("no helper socket at /r/helper.sock".into()),
            true,
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("no helper socket at /r/helper.sock"),
            "{text}"
        );
        assert!(text.contains("sudo banger helper"), "{text}");
    }

    #[test]
    fn reasons_explain_and_firecracker_has_no_user_mode() {
        let got = select(
            NetworkMode::Auto,
            Provenance::Builtin,
            Mode::DevUser,
            HelperProbe::Absent("no helper socket at /r/h.sock".into()),
            false,
        )
        .unwrap();
        assert_eq!(got.networking, Networking::None);
        assert!(
            got.reason.contains("network.mode is auto")
                && got.reason.contains("no helper socket at /r/h.sock")
                && got
                    .reason
                    .contains("firecracker has no user-mode networking"),
            "{}",
            got.reason
        );
        let got = select(
            NetworkMode::User,
            Provenance::Config,
            Mode::DevRoot,
            HelperProbe::Answers,
            true,
        )
        .unwrap();
        assert_eq!(got.reason, "network.mode = \"user\"");
        assert!(Networking::User.privileged(0).is_none());
        assert!(Networking::BridgeInProcess.privileged(0).is_some());
    }
}
