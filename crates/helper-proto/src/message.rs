//! Requests and replies.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::{JailId, JailLaunch, JailLimits, Jailed, PROTOCOL_VERSION, Publish, Subnet, TapName};

/// One request: the protocol version and one verb.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub version: u32,
    pub verb: Verb,
}

impl Request {
    pub fn new(verb: Verb) -> Request {
        Request {
            version: PROTOCOL_VERSION,
            verb,
        }
    }
}

/// Everything the helper can be asked to do (docs/privileges.md describes each).
/// The owner is never an argument: it is the admitted caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Verb {
    /// Handshake: answered with [`Reply::Hello`].
    Hello,
    /// Create or confirm the owner's bridge on `subnet`, with its gateway address, up.
    EnsureBridge { subnet: Subnet },
    /// Delete the owner's bridge (its TAPs are detached by the kernel).
    RemoveBridge,
    /// Create or refresh the owner's NAT and forward rules; needs the bridge.
    EnsureNat,
    /// Delete the owner's nftables table, publishes included.
    RemoveNat,
    /// Create a persistent TAP owned by the owner, attached to the owner's bridge.
    CreateTap { tap: TapName },
    /// Delete one of the owner's TAPs.
    DeleteTap { tap: TapName },
    /// Forward a host port to a guest on the owner's bridge.
    AddPublish { publish: Publish },
    /// Stop forwarding it.
    RemovePublish { publish: Publish },
    /// What exists for the owner now.
    Inventory,
    /// Read-only firewall findings for doctor.
    Firewall,
    /// Start the owner's Firecracker through its `jailer`: validated binaries, the
    /// owner's uid and gid, a chroot under the helper's jail root holding the given files
    /// of the owner's, a new pid namespace, the given cgroup limits.
    LaunchJailed { launch: JailLaunch },
    /// Remove a jail's chroot and cgroups once its Firecracker is gone.
    ReleaseJail { id: JailId },
    /// On a cgroup v1 host: make VM `id`'s groups in the memory and pids hierarchies below
    /// `banger-<owner uid>`, with `limits`, and let the owner move its VMM in (its
    /// `cgroup.procs` and `tasks` are the owner's; the limit files stay root's).
    EnsureVmCgroup { id: JailId, limits: JailLimits },
    /// Remove VM `id`'s groups (refused while a task is in them).
    RemoveVmCgroup { id: JailId },
}

impl Verb {
    /// The verb's wire name, for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Verb::Hello => "hello",
            Verb::EnsureBridge { .. } => "ensure_bridge",
            Verb::RemoveBridge => "remove_bridge",
            Verb::EnsureNat => "ensure_nat",
            Verb::RemoveNat => "remove_nat",
            Verb::CreateTap { .. } => "create_tap",
            Verb::DeleteTap { .. } => "delete_tap",
            Verb::AddPublish { .. } => "add_publish",
            Verb::RemovePublish { .. } => "remove_publish",
            Verb::Inventory => "inventory",
            Verb::Firewall => "firewall",
            Verb::LaunchJailed { .. } => "launch_jailed",
            Verb::ReleaseJail { .. } => "release_jail",
            Verb::EnsureVmCgroup { .. } => "ensure_vm_cgroup",
            Verb::RemoveVmCgroup { .. } => "remove_vm_cgroup",
        }
    }
}

/// The owner's bridge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgeInfo {
    pub name: String,
    pub subnet: Subnet,
    pub gateway: Ipv4Addr,
}

/// A TAP the helper made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TapInfo {
    pub name: TapName,
    pub bridge: String,
    pub owner_uid: u32,
}

/// What exists for the owner.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    pub bridge: Option<BridgeInfo>,
    /// The owner's TAPs, sorted.
    pub taps: Vec<TapName>,
    /// Whether the owner's nftables table exists.
    pub nat: bool,
    pub publishes: Vec<Publish>,
}

/// Where a firewall rule lives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// nftables (native, or iptables-nft, which writes nftables tables).
    #[default]
    Nftables,
    /// The legacy iptables (x_tables) kernel tables, invisible to `nft`.
    IptablesLegacy,
}

/// What makes a chain stop forwarded traffic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Blocking {
    /// The chain's policy is drop.
    #[default]
    PolicyDrop,
    /// The chain ends with a rule that drops or rejects everything left.
    FinalRule,
}

/// Which software manages a table, as far as its names tell (it decides the fix).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FirewallManager {
    /// Docker (its `DOCKER-USER` chain is where user rules belong).
    Docker,
    /// ufw (`ufw route allow …`).
    Ufw,
    /// firewalld (zones).
    Firewalld,
    /// Plain iptables rules (`filter` table, `FORWARD` chain).
    Iptables,
    /// A native nftables table.
    #[default]
    Nftables,
}

/// A base chain of another table on the forward hook that drops what it does not accept.
/// A drop there is final whatever banger's table says, unless the chain (or a chain it
/// jumps to) accepts the owner's bridge first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignChain {
    pub family: String,
    pub table: String,
    pub chain: String,
    #[serde(default)]
    pub backend: Backend,
    #[serde(default)]
    pub blocking: Blocking,
    #[serde(default)]
    pub manager: FirewallManager,
    /// A rule reachable from the chain accepts everything arriving from the bridge.
    #[serde(default)]
    pub accepts_from_bridge: bool,
    /// A rule reachable from the chain accepts everything leaving through the bridge.
    #[serde(default)]
    pub accepts_to_bridge: bool,
}

impl ForeignChain {
    /// Whether guest traffic gets through this chain in both directions.
    pub fn lets_guests_through(&self) -> bool {
        self.accepts_from_bridge && self.accepts_to_bridge
    }
}

/// Whether the legacy iptables tables were inspected.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LegacyScan {
    /// Not reported (a helper from before this field existed).
    #[default]
    Unknown,
    /// No legacy iptables table exists: nothing can hide there.
    NotInUse,
    /// The legacy `filter` table was read; its findings are in `forward_drop`.
    Inspected,
    /// Legacy tables exist but could not be read; the reason says why.
    Unreadable { reason: String },
}

/// Firewall facts doctor reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirewallReport {
    /// `net.ipv4.ip_forward`.
    pub ip_forward: bool,
    pub bridge: String,
    /// Whether the owner's table exists.
    pub nat_table: bool,
    /// What is wrong with the owner's table (empty when it is intact or absent).
    #[serde(default)]
    pub nat_problems: Vec<String>,
    /// Other tables' forward-hook chains that drop by default (docker, ufw, firewalld,
    /// a hand-written ruleset), in nftables and in the legacy iptables tables.
    pub forward_drop: Vec<ForeignChain>,
    #[serde(default)]
    pub legacy: LegacyScan,
}

/// A successful answer; which variant depends on the verb.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Reply {
    Hello {
        version: u32,
        owner_uid: u32,
    },
    Bridge(BridgeInfo),
    Tap(TapInfo),
    Inventory(Inventory),
    Firewall(FirewallReport),
    Jailed(Jailed),
    /// A VM's group directories, one per hierarchy.
    VmCgroup {
        dirs: Vec<std::path::PathBuf>,
    },
    /// The verb was carried out (or there was nothing to do).
    Done,
}

/// Why a verb was refused or failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The request is malformed or an argument is out of range.
    BadRequest,
    /// The client speaks another protocol version.
    VersionMismatch,
    /// The caller may not do this (wrong uid, another owner's device, a port the owner
    /// could not bind).
    NotPermitted,
    /// It clashes with something that exists (a route, a published port, a device).
    Conflict,
    /// What it names does not exist (the bridge for `ensure_nat`).
    NotFound,
    /// The host failed: netlink, nft, a sysctl.
    System,
    /// This helper does not offer the verb as it was started (`launch_jailed` without
    /// `--jailer`): the caller does the work its own way.
    Unsupported,
}

/// A refusal or failure: the kind, and a sentence saying what failed and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
}

impl Failure {
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Failure {
        Failure {
            kind,
            message: message.into(),
        }
    }
}

/// The answer to one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Response {
    Ok(Reply),
    Error(Failure),
}

impl From<Result<Reply, Failure>> for Response {
    fn from(r: Result<Reply, Failure>) -> Response {
        match r {
            Ok(reply) => Response::Ok(reply),
            Err(failure) => Response::Error(failure),
        }
    }
}

impl From<Response> for Result<Reply, Failure> {
    fn from(r: Response) -> Result<Reply, Failure> {
        match r {
            Response::Ok(reply) => Ok(reply),
            Response::Error(failure) => Err(failure),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Request, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn wire_shape() {
        let req = Request::new(Verb::CreateTap {
            tap: TapName::new("bgt1").unwrap(),
        });
        assert_eq!(
            serde_json::to_string(&req).unwrap(),
            r#"{"version":1,"verb":{"create_tap":{"tap":"bgt1"}}}"#
        );
        assert_eq!(
            serde_json::to_string(&Request::new(Verb::Inventory)).unwrap(),
            r#"{"version":1,"verb":"inventory"}"#
        );
    }

    #[test]
    fn the_verb_set_is_closed_and_arguments_validated() {
        assert!(parse(r#"{"version":1,"verb":"hello"}"#).is_ok());
        for bad in [
            r#"{"version":1,"verb":"launch_vmm"}"#,
            r#"{"version":1,"verb":{"run":{"argv":["sh"]}}}"#,
            r#"{"version":1,"verb":"hello","extra":1}"#,
            r#"{"version":1,"verb":{"create_tap":{"tap":"eth0"}}}"#,
            r#"{"version":1,"verb":{"create_tap":{"tap":"bgt1","owner":0}}}"#,
            r#"{"version":1,"verb":{"delete_tap":{"tap":"bgt1;rm"}}}"#,
            r#"{"version":1,"verb":{"ensure_bridge":{"subnet":"0.0.0.0/0"}}}"#,
            r#"{"version":1,"verb":{"ensure_bridge":{"subnet":"10.0.0.1/24"}}}"#,
            r#"{"version":1,"verb":{"add_publish":{"publish":{"mapping":{"protocol":"tcp","host_port":0,"guest_port":80},"guest_addr":"10.213.0.2"}}}}"#,
            r#"{"version":1,"verb":{"add_publish":{"publish":{"mapping":{"protocol":"sctp","host_port":1,"guest_port":80},"guest_addr":"10.213.0.2"}}}}"#,
            r#"{"verb":"hello"}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad} must be refused");
        }
    }

    #[test]
    fn a_firewall_report_from_an_older_helper_still_reads() {
        let old = r#"{"ip_forward":true,"bridge":"bgbr0","nat_table":true,
            "forward_drop":[{"family":"ip","table":"filter","chain":"FORWARD"}]}"#;
        let report: FirewallReport = serde_json::from_str(old).unwrap();
        assert_eq!(report.legacy, LegacyScan::Unknown);
        assert!(report.nat_problems.is_empty());
        let chain = &report.forward_drop[0];
        assert_eq!(chain.blocking, Blocking::PolicyDrop);
        assert!(!chain.lets_guests_through(), "unknown means blocked");
    }

    #[test]
    fn responses_round_trip() {
        let ok: Response = Ok(Reply::Done).into();
        let text = serde_json::to_string(&ok).unwrap();
        assert_eq!(text, r#"{"ok":"done"}"#);
        let err: Response = Err(Failure::new(FailureKind::NotPermitted, "no")).into();
        let back: Response = serde_json::from_str(&serde_json::to_string(&err).unwrap()).unwrap();
        let back: Result<Reply, Failure> = back.into();
        assert_eq!(back.unwrap_err().kind, FailureKind::NotPermitted);
    }
}
