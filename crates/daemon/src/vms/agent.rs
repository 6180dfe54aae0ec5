//! The daemon's connection to each VM's guest agent: one multiplexed connection per
//! VM, made at boot (or lazily after a daemon restart) and shared by every exec.
//!
//! A connection the client cut off because the guest kept sending junk (see
//! `banger_agent_client`'s police) is made again only after a back-off that doubles with each
//! cut-off, so a hostile guest cannot make the daemon spin on reconnects.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use banger_agent_client::{AgentClient, CloseReason, ReadyInfo};
use banger_store::VmRecord;
use banger_vmm::VmRuntime;

use crate::error::{DaemonError, Result};
use crate::state::Daemon;

/// How long reconnecting to an already booted guest's agent may take.
const RECONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Back-off after the first cut-off; doubled for each one after, up to [`BACKOFF_MAX`].
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// A connection that stays clean this long forgets earlier cut-offs.
const BACKOFF_FORGIVE: Duration = Duration::from_secs(300);

/// Reconnect back-off of one VM's agent connection.
#[derive(Default)]
pub struct Backoff {
    inner: Mutex<BackoffState>,
}

#[derive(Default)]
struct BackoffState {
    strikes: u32,
    last: Option<Instant>,
    until: Option<Instant>,
}

impl Backoff {
    /// The connection was cut off for junk: wait longer before the next one.
    fn strike(&self, now: Instant) {
        let mut state = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if state
            .last
            .is_some_and(|last| now.duration_since(last) > BACKOFF_FORGIVE)
        {
            state.strikes = 0;
        }
        state.strikes += 1;
        state.last = Some(now);
        let factor = 1u32 << state.strikes.saturating_sub(1).min(6);
        state.until = Some(now + (BACKOFF_FIRST * factor).min(BACKOFF_MAX));
    }

    /// How long until a new connection may be made.
    fn remaining(&self, now: Instant) -> Option<Duration> {
        let state = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        state
            .until
            .map(|until| until.saturating_duration_since(now))
            .filter(|left| !left.is_zero())
    }
}

/// Connect to the agent of `runtime` and complete the handshake before `deadline`,
/// retrying while the VMM's channel is not yet accepting connections. Fails fast
/// when the VMM process dies.
pub async fn connect(
    daemon: &Daemon,
    name: &str,
    runtime: &VmRuntime,
    deadline: Instant,
) -> Result<(AgentClient, ReadyInfo)> {
    let label = format!("VM {name}");
    let mut last_error = String::from("no attempt made");
    while Instant::now() < deadline {
        if !daemon.driver.is_alive(runtime) {
            return Err(DaemonError::internal(format!(
                "the VMM process (pid {}) exited before the guest agent answered",
                runtime.pid
            )));
        }
        match daemon.driver.connect_agent(runtime).await {
            Ok(stream) => {
                let remaining = deadline.saturating_duration_since(Instant::now());
                match AgentClient::handshake_as(&label, stream, remaining).await {
                    Ok(pair) => return Ok(pair),
                    Err(e) => last_error = banger_system::error_chain(&e),
                }
            }
            Err(e) => last_error = banger_system::error_chain(&e),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(DaemonError::unavailable(format!(
        "the guest agent did not answer in time: {last_error}"
    )))
}

/// A live agent client for a running VM, reconnecting if needed.
pub async fn client_for(daemon: &Daemon, vm: &VmRecord) -> Result<AgentClient> {
    let slot = daemon.slot(&vm.id);
    let mut guard = slot.agent.lock().await;
    let now = Instant::now();
    if let Some(client) = guard.as_ref() {
        if !client.is_closed() {
            return Ok(client.clone());
        }
        if client.close_reason() == Some(CloseReason::Junk) {
            // The back-off runs from the cut-off, not from when we noticed it.
            slot.agent_backoff.strike(client.closed_at().unwrap_or(now));
        }
        *guard = None;
    }
    if let Some(left) = slot.agent_backoff.remaining(now) {
        return Err(DaemonError::unavailable(format!(
            "the guest agent of VM {} kept sending malformed data and was disconnected; the daemon reconnects in {}s",
            vm.name,
            left.as_secs().max(1)
        ))
        .with_hint(
            "the guest may be compromised, or its agent broken: see `banger vm logs`, or stop the VM",
        ));
    }
    let runtime = super::runtime_of(vm).ok_or_else(|| {
        DaemonError::internal(format!(
            "VM {} is marked running but has no runtime record",
            vm.name
        ))
    })?;
    let (client, _) = connect(
        daemon,
        &vm.name,
        &runtime,
        Instant::now() + RECONNECT_TIMEOUT,
    )
    .await
    .map_err(|e| {
        DaemonError::unavailable(format!(
            "cannot reach the agent of VM {}: {}",
            vm.name, e.message
        ))
        .with_hint(format!(
            "see `banger vm logs {}`; `banger vm stop {0}` and start it again if it is stuck",
            vm.name
        ))
    })?;
    *guard = Some(client.clone());
    Ok(client)
}

/// Drop the cached connection (VM stopped or gone).
pub async fn forget(daemon: &Daemon, vm_id: &str) {
    let slot = daemon.slot(vm_id);
    let mut guard = slot.agent.lock().await;
    *guard = None;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_is_capped_and_is_forgiven() {
        let backoff = Backoff::default();
        let t0 = Instant::now();
        assert_eq!(backoff.remaining(t0), None);
        backoff.strike(t0);
        assert_eq!(backoff.remaining(t0), Some(BACKOFF_FIRST));
        backoff.strike(t0);
        assert_eq!(backoff.remaining(t0), Some(BACKOFF_FIRST * 2));
        for _ in 0..20 {
            backoff.strike(t0);
        }
        assert_eq!(backoff.remaining(t0), Some(BACKOFF_MAX));
        assert_eq!(backoff.remaining(t0 + BACKOFF_MAX), None);
        // Long clean: the next cut-off counts as the first.
        let later = t0 + BACKOFF_FORGIVE + Duration::from_secs(1);
        backoff.strike(later);
        assert_eq!(backoff.remaining(later), Some(BACKOFF_FIRST));
    }
}
