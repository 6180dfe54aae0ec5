//! SSH into guests, the daemon's part: at every boot the owner's public key is authorised
//! for the guest's root user and the guest's host keys are pinned in banger's known_hosts
//! under the VM's id (both through the agent's `ssh-setup` tool, so before anyone connects
//! and without any network); the per-VM `Host NAME.vm` / `HostKeyAlias` blocks are kept
//! current as VMs come and go. `banger ssh-proxy` and `banger vm ssh` do the rest.

use banger_agent_client::{AgentClient, ExecRequest};
use banger_agent_proto::tools;
use banger_ssh::config::PinnedVm;
use banger_store::VmRecord;

use crate::state::Daemon;

/// The user whose authorized_keys banger manages.
pub const GUEST_USER: &str = "root";

/// Authorise the key and pin the host keys of VM `vm`, whose agent is `client`. A guest
/// without sshd (the minimal image) reports no host keys; a failure is logged, not fatal:
/// the VM works, only `ssh NAME.vm` will not.
pub async fn prepare(daemon: &Daemon, vm: &VmRecord, client: &AgentClient) {
    match setup(daemon, vm, client).await {
        Ok(0) => tracing::debug!(vm = %vm.name, "no SSH host keys in the guest"),
        Ok(n) => tracing::debug!(vm = %vm.name, keys = n, "SSH host keys pinned"),
        Err(why) => {
            tracing::warn!(vm = %vm.name, %why, "SSH setup failed; ssh NAME.vm will not work")
        }
    }
}

async fn setup(daemon: &Daemon, vm: &VmRecord, client: &AgentClient) -> Result<usize, String> {
    let key = daemon.config.ssh_key_path_resolved(&daemon.layout).value;
    let runner = daemon.runner.clone();
    let public = tokio::task::spawn_blocking(move || -> Result<String, String> {
        banger_ssh::key::ensure_key(&key, runner.as_ref())
            .map_err(|e| banger_system::error_chain(&e))?;
        let public = key.with_extension("pub");
        std::fs::read_to_string(&public)
            .map_err(|e| format!("cannot read the public key {}: {e}", public.display()))
    })
    .await
    .map_err(|e| e.to_string())??;

    let request = ExecRequest::new(tools::ssh_setup_argv(GUEST_USER)).stdin(true);
    let mut session = client
        .exec(request)
        .await
        .map_err(|e| banger_system::error_chain(&e))?;
    if let Some(mut stdin) = session.take_stdin() {
        stdin
            .write(public.as_bytes())
            .await
            .map_err(|e| banger_system::error_chain(&e))?;
        stdin
            .close()
            .await
            .map_err(|e| banger_system::error_chain(&e))?;
    }
    let out = session
        .wait_with_output()
        .await
        .map_err(|e| banger_system::error_chain(&e))?;
    if !out.status.success() {
        return Err(banger_system::text::sanitize(
            String::from_utf8_lossy(&out.stderr).trim(),
            400,
        ));
    }
    let keys: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    if keys.is_empty() {
        return Ok(0);
    }
    let known_hosts = daemon.layout.known_hosts();
    let id = vm.id.clone();
    let pinned = keys.clone();
    tokio::task::spawn_blocking(move || banger_ssh::known_hosts::pin(&known_hosts, &id, &pinned))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| banger_system::error_chain(&e))?;
    refresh_blocks(daemon);
    Ok(keys.len())
}

/// VM `vm` is gone: unpin its host keys and drop its block.
pub fn forget(daemon: &Daemon, vm: &VmRecord) {
    if let Err(e) = banger_ssh::known_hosts::unpin(&daemon.layout.known_hosts(), &vm.id) {
        tracing::warn!(vm = %vm.name, error = %banger_system::error_chain(&e), "cannot unpin SSH host keys");
    }
    refresh_blocks(daemon);
}

/// Rewrite the per-VM blocks from the VMs in the store.
pub fn refresh_blocks(daemon: &Daemon) {
    // A waiting standby has no name a user may use: no block until it is taken.
    let vms = match super::user_vms(daemon) {
        Ok(vms) => vms,
        Err(e) => {
            tracing::warn!(error = %e.message, "cannot list VMs for ssh_config");
            return;
        }
    };
    let blocks: Vec<PinnedVm> = vms
        .into_iter()
        .map(|vm| PinnedVm {
            name: vm.name,
            host_key_alias: vm.id,
        })
        .collect();
    let written = banger_ssh::config::render_vms(&blocks)
        .and_then(|text| banger_ssh::config::write(&daemon.layout.ssh_config_vms(), &text));
    if let Err(e) = written {
        tracing::warn!(error = %banger_system::error_chain(&e), "cannot write the per-VM ssh_config");
    }
}
