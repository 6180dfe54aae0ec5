//! The daemon's end of each VM's serial console: one task per running VMM copies the
//! console socket into `console.log` (capped by `[logs] console_max`, with `console.log.1`),
//! started right after launch and again when a restarted daemon adopts a running VM.
//! See `banger_vmm::console` for why the console is a socket.

use std::sync::Mutex;
use std::time::Duration;

use banger_vmm::VmRuntime;
use tokio::sync::watch;
use tokio::task::AbortHandle;

use super::CONSOLE_LOG;
use crate::state::Daemon;

/// The capture tasks of one VM: its console, and the VMM's own log where the VMM hands it
/// over too (Firecracker).
#[derive(Default)]
pub struct Capture {
    running: Mutex<Option<(AbortHandle, watch::Receiver<bool>)>>,
    vmm_log: Mutex<Option<AbortHandle>>,
}

/// Start capturing the console of VM `id` (whose VMM is `runtime`), replacing any earlier
/// capture of it.
pub fn attach(daemon: &Daemon, id: &str, runtime: &VmRuntime) {
    let Some(daemon_arc) = daemon.self_arc() else {
        return;
    };
    let slot = daemon.slot(id);
    let runtime = runtime.clone();
    let log_runtime = runtime.clone();
    let log = runtime.vm_dir.join(CONSOLE_LOG);
    let max = daemon.config.logs_resolved().console_max_bytes.value;
    let (done_tx, done) = watch::channel(false);
    let task = tokio::spawn(async move {
        let _daemon = daemon_arc;
        match banger_vmm::console::capture(&runtime, &log, max).await {
            Ok(bytes) => {
                tracing::debug!(vm = %runtime.vm_id, bytes, "console capture ended with the VMM")
            }
            Err(e) => {
                tracing::warn!(vm = %runtime.vm_id, error = %e, "cannot capture the VM's console")
            }
        }
        let _ = done_tx.send(true);
    });
    let mut running = slot
        .console
        .running
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some((previous, _)) = running.replace((task.abort_handle(), done)) {
        previous.abort();
    }
    drop(running);

    let vmm_log = tokio::spawn(async move {
        if let Err(e) = banger_vmm::console::capture_vmm_log(&log_runtime).await {
            tracing::warn!(vm = %log_runtime.vm_id, error = %e, "cannot capture the VMM's log");
        }
    });
    let mut running = slot
        .console
        .vmm_log
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(previous) = running.replace(vmm_log.abort_handle()) {
        previous.abort();
    }
}

/// Wait (up to `patience`) for the capture of VM `id` to reach the end of its console: after
/// the VMM exited, so an error message can quote its last lines.
pub async fn settle(daemon: &Daemon, id: &str, patience: Duration) {
    let done = {
        let slot = daemon.slot(id);
        let running = slot
            .console
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        running.as_ref().map(|(_, done)| done.clone())
    };
    if let Some(mut done) = done {
        let _ = tokio::time::timeout(patience, done.wait_for(|finished| *finished)).await;
    }
}
