//! The daemon's connection to each VM's guest agent: one multiplexed connection per
//! VM, made at boot (or lazily after a daemon restart) and shared by every exec.

use std::time::{Duration, Instant};

use banger_agent_client::{AgentClient, ReadyInfo};
use banger_store::VmRecord;
use banger_vmm::{VmRuntime, VmmDriver};

use crate::error::{DaemonError, Result};
use crate::state::Daemon;

/// How long reconnecting to an already booted guest's agent may take.
const RECONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Connect to the agent of `runtime` and complete the handshake before `deadline`,
/// retrying while the VMM's channel is not yet accepting connections. Fails fast
/// when the VMM process dies.
pub async fn connect(
    daemon: &Daemon,
    runtime: &VmRuntime,
    deadline: Instant,
) -> Result<(AgentClient, ReadyInfo)> {
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
                match AgentClient::handshake(stream, remaining).await {
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
    if let Some(client) = guard.as_ref()
        && !client.is_closed()
    {
        return Ok(client.clone());
    }
    let runtime = super::runtime_of(vm).ok_or_else(|| {
        DaemonError::internal(format!(
            "VM {} is marked running but has no runtime record",
            vm.name
        ))
    })?;
    let (client, _) = connect(daemon, &runtime, Instant::now() + RECONNECT_TIMEOUT)
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
