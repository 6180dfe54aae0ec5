//! What the network checks ask the host, behind a trait so tests can answer instead.
//!
//! Everything here is read-only. An ordinary user can list routes and knock on the helper
//! socket (`hello`); the privileged facts (the firewall, the owner's table) come from the
//! helper's read-only verbs, or — when doctor runs as root — from the helper's executor
//! called in-process for the owner, exactly as the helper would answer.

use std::path::PathBuf;
use std::sync::Arc;

use banger_helper::{Executor, HelperProbe, InProcess, Networking, Privileged, probe_helpers};
use banger_helper_proto::{FirewallReport, Inventory};
use banger_net::netlink::{Netlink, Route};
use banger_system::RealRunner;

pub trait NetworkProbe {
    /// Knock on the helper sockets in turn: the one that answers (else the first), and
    /// what was found.
    fn helper(&self, candidates: &[PathBuf]) -> (PathBuf, HelperProbe);

    /// The host's IPv4 routes (unprivileged).
    fn routes(&self) -> Result<Vec<Route>, String>;

    /// The owner's network objects and the firewall findings, read through `networking`'s
    /// privileged interface (or in-process when doctor is root). `Ok(None)` when doctor
    /// has no way to read them (an ordinary user without a helper).
    fn privileged(
        &self,
        networking: &Networking,
        owner_uid: u32,
        euid: u32,
    ) -> Result<Option<(Inventory, FirewallReport)>, String>;
}

/// The real host.
pub struct HostNetworkProbe;

impl NetworkProbe for HostNetworkProbe {
    fn helper(&self, candidates: &[PathBuf]) -> (PathBuf, HelperProbe) {
        probe_helpers(candidates)
    }

    fn routes(&self) -> Result<Vec<Route>, String> {
        Netlink::open()
            .and_then(|nl| nl.ipv4_routes())
            .map_err(|e| banger_system::error_chain(&e))
    }

    fn privileged(
        &self,
        networking: &Networking,
        owner_uid: u32,
        euid: u32,
    ) -> Result<Option<(Inventory, FirewallReport)>, String> {
        let reader: Box<dyn Privileged> = if euid == 0 {
            // Root reads for the owner directly: the same executor, read-only verbs.
            Box::new(InProcess::new(Arc::new(Executor::new(
                owner_uid,
                Arc::new(RealRunner),
                None,
            ))))
        } else {
            match networking.privileged(owner_uid) {
                Some(p) => p,
                None => return Ok(None),
            }
        };
        let read = || -> Result<_, banger_helper::HelperError> {
            Ok((reader.inventory()?, reader.firewall()?))
        };
        read().map(Some).map_err(|e| banger_system::error_chain(&e))
    }
}
