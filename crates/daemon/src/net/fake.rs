//! A privileged interface for the daemon's tests: it keeps the host's side (bridge, NAT
//! table, TAPs, port forwards) in memory, enforcing the helper's contract where the daemon
//! could get it wrong — a TAP needs the bridge, a forward needs the NAT table and a guest
//! address on the bridge's subnet, a host port is forwarded once. It outlives the daemons
//! of a test as the host outlives a killed daemon, so a test can assert nothing is left.

use std::sync::Mutex;

use banger_helper::{HelperError, Privileged};
use banger_helper_proto::{
    BridgeInfo, Failure, FailureKind, FirewallReport, Inventory, Reply, TapInfo, Verb,
};

#[derive(Default)]
pub struct FakePrivileged {
    state: Mutex<Inventory>,
}

impl FakePrivileged {
    /// What exists on the fake host now.
    pub fn inventory_now(&self) -> Inventory {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

fn refuse(verb: &'static str, kind: FailureKind, message: String) -> HelperError {
    HelperError::Refused {
        verb,
        failure: Failure::new(kind, message),
    }
}

impl Privileged for FakePrivileged {
    fn call(&self, verb: Verb) -> Result<Reply, HelperError> {
        let name = verb.name();
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match verb {
            Verb::Hello => Ok(Reply::Hello {
                version: banger_helper_proto::PROTOCOL_VERSION,
                owner_uid: 0,
            }),
            Verb::EnsureBridge { subnet } => {
                let info = BridgeInfo {
                    name: "bgtest".into(),
                    subnet,
                    gateway: subnet.gateway(),
                };
                if let Some(existing) = &s.bridge
                    && existing.subnet != subnet
                {
                    return Err(refuse(
                        name,
                        FailureKind::Conflict,
                        "bridge on another subnet".into(),
                    ));
                }
                s.bridge = Some(info.clone());
                Ok(Reply::Bridge(info))
            }
            Verb::RemoveBridge => {
                s.bridge = None;
                // The kernel detaches a bridge's TAPs; they stay.
                Ok(Reply::Done)
            }
            Verb::EnsureNat => {
                if s.bridge.is_none() {
                    return Err(refuse(name, FailureKind::NotFound, "no bridge".into()));
                }
                s.nat = true;
                Ok(Reply::Done)
            }
            Verb::RemoveNat => {
                s.nat = false;
                s.publishes.clear();
                Ok(Reply::Done)
            }
            Verb::CreateTap { tap } => {
                let Some(bridge) = &s.bridge else {
                    return Err(refuse(name, FailureKind::NotFound, "no bridge".into()));
                };
                let bridge = bridge.name.clone();
                if !s.taps.contains(&tap) {
                    s.taps.push(tap.clone());
                    s.taps.sort();
                }
                Ok(Reply::Tap(TapInfo {
                    name: tap,
                    bridge,
                    owner_uid: 0,
                }))
            }
            Verb::DeleteTap { tap } => {
                s.taps.retain(|t| *t != tap);
                Ok(Reply::Done)
            }
            Verb::AddPublish { publish } => {
                let on_bridge = s
                    .bridge
                    .as_ref()
                    .is_some_and(|b| b.subnet.is_guest_address(publish.guest_addr));
                if !s.nat || !on_bridge {
                    return Err(refuse(
                        name,
                        FailureKind::BadRequest,
                        format!("{publish}: no NAT or not a guest"),
                    ));
                }
                let m = publish.mapping;
                if s.publishes.iter().any(|p| {
                    p.mapping.protocol == m.protocol
                        && p.mapping.host_port == m.host_port
                        && *p != publish
                }) {
                    return Err(refuse(
                        name,
                        FailureKind::Conflict,
                        format!("host port {} is taken", m.host_port),
                    ));
                }
                if !s.publishes.contains(&publish) {
                    s.publishes.push(publish);
                }
                Ok(Reply::Done)
            }
            Verb::RemovePublish { publish } => {
                s.publishes.retain(|p| *p != publish);
                Ok(Reply::Done)
            }
            Verb::Inventory => Ok(Reply::Inventory(s.clone())),
            Verb::Firewall => Ok(Reply::Firewall(FirewallReport {
                ip_forward: true,
                bridge: "bgtest".into(),
                nat_table: s.nat,
                nat_problems: Vec::new(),
                forward_drop: Vec::new(),
                legacy: Default::default(),
            })),
            // Network plumbing only: like a helper started without a jailer.
            Verb::LaunchJailed { .. }
            | Verb::ReleaseJail { .. }
            | Verb::EnsureVmCgroup { .. }
            | Verb::RemoveVmCgroup { .. } => Err(refuse(
                name,
                FailureKind::Unsupported,
                "the fake helper has no jailer and makes no cgroups".into(),
            )),
        }
    }
}
