//! Booting a VM: launch the VMM, wait for the guest agent, record boot phases.

use std::time::{Duration, Instant};

use banger_api::{BootTimings, VmView};
use banger_store::{GuestInit, ImageRecord};
use banger_store::{VmRecord, VmState};
use banger_system::progress::Progress;
use banger_vmm::{DriveSpec, DriverKind, LaunchSpec};

use super::{CONSOLE_LOG, agent, console, lock_vm, lookup, release, strays, view, watch};
use crate::error::{DaemonError, Result};
use crate::state::Daemon;

/// Why a boot ended when a forced stop or rm took over.
const CANCELLED: &str = "the boot was cancelled by a forced stop or removal";

/// Boot VM `name` (or id); see [`boot`].
pub async fn start(daemon: &Daemon, name: &str, progress: &dyn Progress) -> Result<VmView> {
    let vm = lookup(daemon, name)?;
    boot(daemon, &vm.id, progress).await.map(|vm| view(&vm))
}

/// Boot VM `id` from `created`, `stopped` or `failed`; a running VM is returned as is.
/// `progress` hears each phase: the VMM launch, the guest boot, the agent's answer.
pub async fn boot(daemon: &Daemon, id: &str, progress: &dyn Progress) -> Result<VmRecord> {
    let t0 = Instant::now();
    let (mut op, vm) = lock_vm(daemon, id).await?;
    match vm.state {
        VmState::Running => return Ok(vm),
        VmState::Created | VmState::Stopped | VmState::Failed => {}
        VmState::Paused => {
            return Err(DaemonError::conflict(format!("VM {} is paused", vm.name))
                .with_hint(format!("resume it with `banger vm resume {}`", vm.name)));
        }
        other => {
            return Err(DaemonError::conflict(format!(
                "VM {} is {other}; try again when it settles",
                vm.name
            )));
        }
    }
    // A VM made on a larger host (its state directory moved here) would fail in the VMM.
    super::host_fit::check_memory(daemon, vm.memory_mib, super::host_fit::Asked::Vm(&vm.name))?;
    let image = daemon.store().get_image(&vm.image_name)?.ok_or_else(|| {
        DaemonError::not_found(format!(
            "VM {} uses image {:?}, which no longer exists",
            vm.name, vm.image_name
        ))
        .with_hint(format!(
            "rebuild it with `banger image build {}`, or remove the VM",
            vm.image_name
        ))
    })?;
    // A clone's first start resumes its snapshot instead of booting.
    let restore = crate::snapshots::restore::plan(daemon, &vm)?;
    // Nothing may use the directory of a VM that is not running: a VMM found there was
    // started by a daemon that died before recording it, and would make the launch fail.
    // A VM still `created` never had one: it is marked `starting` before any VMM exists and
    // never goes back, so its first start skips the scan of every process on the host.
    if vm.state != VmState::Created {
        strays::kill(daemon, &vm.dir, None).await?;
    }
    // Recorded before the VMM can exist: a daemon killed from here on leaves a `starting`
    // VM, whose directory reconciliation searches for the VMM it may have started.
    daemon
        .store()
        .update_vm_state(&vm.id, Some(vm.state), VmState::Starting, None)?;
    fault_point!(daemon, StartMarkedStarting);

    let kind = driver_of(daemon, &vm)?;
    // Networking is made before the VMM (which opens the TAP) and recorded as it is made:
    // a failure here, or later, is given back by the release of `fail`.
    let plumbing = daemon.net.plumbing(daemon, Some(kind));
    let attached = match plumbing {
        Ok(plumbing) => crate::net::attach::attach(daemon, &vm, &plumbing).await,
        Err(e) => Err(e),
    };
    let network = match attached {
        Ok(network) => network,
        Err(e) => {
            tracing::warn!(vm = %vm.name, error = %e.message, "cannot set up the network");
            return Err(refused(daemon, &vm, e).await);
        }
    };
    fault_point!(daemon, StartNetworkAttached);
    if let Some(plan) = &restore
        && let Err(e) = plan.check_devices(&vm.name, network.nics.len(), network.user_net.is_some())
    {
        return Err(refused(daemon, &vm, e).await);
    }

    let guest_net = network.guest.clone();
    let mut drives = crate::disks::drives(&daemon.store().vm_disks(&vm.id)?, &vm.dir);
    let mut kernel_args = guest_args(&vm, &image, &drives);
    kernel_args.extend(network.kernel_args);
    let shares = shares_plan(daemon, &vm, progress).await?;
    // After the VM's own disks, which keep their device names.
    drives.extend(shares.drives);
    kernel_args.extend(shares.kernel_arg);
    let shares = shares.live;
    let spec = LaunchSpec {
        vm_id: vm.id.clone(),
        vm_dir: vm.dir.clone(),
        kernel: image.kernel_path.clone(),
        kernel_pvh: crate::images::kernel_pvh(&image),
        bzimage: image.bzimage_path.clone(),
        initrd: image.initrd_path.clone(),
        kernel_args,
        drives,
        nics: network.nics,
        user_net: network.user_net,
        vcpus: vm.vcpu,
        memory_mib: vm.memory_mib,
        // Shares ask for shared memory themselves (`LaunchSpec::memory_backing`); a restore
        // gets what the snapshot had (its RAM file, if it has one); a warm-up's helper keeps
        // its RAM in a file for its snapshot (`warm::guest_memory`).
        memory: crate::warm::guest_memory(&vm.name),
        restore: restore.as_ref().map(|plan| plan.files.clone()),
        shares: shares.clone(),
        console_log: vm.dir.join(CONSOLE_LOG),
    };

    match &restore {
        Some(plan) => progress.phase(
            &format!("restore snapshot {} ({kind})", plan.snapshot),
            None,
            None,
        ),
        None => progress.phase(&format!("start the VMM ({kind})"), None, None),
    }
    let launched = op.unless_cancelled(daemon.driver.launch(kind, &spec)).await;
    let runtime = match launched {
        Some(Ok(rt)) => rt,
        None => {
            // One that survives is named when the next start refuses to launch.
            let _ = strays::kill(daemon, &vm.dir, None).await;
            return Err(cancelled(daemon, &vm).await);
        }
        Some(Err(e)) => {
            // A launch that timed out may have left its launcher or a half-started VMM.
            let _ = strays::kill(daemon, &vm.dir, None).await;
            let message = format!("cannot start the VMM: {}", banger_system::error_chain(&e));
            return Err(fail(daemon, &vm, message).await);
        }
    };
    fault_point!(daemon, StartLaunched);
    console::attach(daemon, &vm.id, &runtime);
    let vmm_spawned = t0.elapsed();
    progress.phase("boot the guest kernel", None, None);
    tracing::debug!(vm = %vm.name, pid = runtime.pid, "VMM launched; waiting for the guest agent");
    let runtime_json = serde_json::to_string(&runtime)
        .map_err(|e| DaemonError::internal(format!("cannot encode VM runtime: {e}")))?;
    daemon.store().set_vm_runtime(
        &vm.id,
        Some(runtime.driver.as_str()),
        Some(&runtime_json),
        None,
    )?;
    fault_point!(daemon, StartRecorded);
    // A restored guest waits paused until it is let go; its agent answers after that.
    if restore.is_some()
        && let Err(e) = daemon.driver.resume(&runtime).await
    {
        let _ = daemon.driver.kill(&runtime).await;
        let message = format!(
            "cannot resume the restored guest: {}",
            banger_system::error_chain(&e)
        );
        return Err(fail(daemon, &vm, message).await);
    }

    let deadline = t0 + daemon.boot_timeout;
    let connect = agent::connect(daemon, &vm.name, &runtime, deadline);
    let connected = op
        .unless_cancelled(report_kernel_start(connect, &spec.console_log, progress))
        .await;
    let (client, ready) = match connected {
        Some(Ok(pair)) => pair,
        None => {
            let _ = daemon.driver.kill(&runtime).await;
            return Err(cancelled(daemon, &vm).await);
        }
        Some(Err(e)) => {
            let _ = daemon.driver.kill(&runtime).await;
            // The guest's last words are what explains a failed boot: let them arrive.
            console::settle(daemon, &vm.id, Duration::from_secs(2)).await;
            let tail = console_tail(&spec.console_log, 15);
            let limit = match Instant::now() >= deadline {
                true => format!(
                    " (a boot may take {} s: on a slow or loaded host, raise {} in the \
                     daemon's environment)",
                    daemon.boot_timeout.as_secs(),
                    banger_config::env::BOOT_TIMEOUT_VAR
                ),
                false => String::new(),
            };
            let message = format!(
                "VM {} did not become ready: {}{limit}{tail}",
                vm.name, e.message
            );
            return Err(fail(daemon, &vm, message).await);
        }
    };
    if restore.is_some()
        && let Err(e) = crate::snapshots::restore::reidentify(&vm, &client, guest_net).await
    {
        // A clone must never run with its parent's identity.
        let _ = daemon.driver.kill(&runtime).await;
        return Err(fail(daemon, &vm, e.message).await);
    }
    if !ready.share_errors.is_empty() {
        // The user's command must never run against an empty mountpoint.
        let _ = daemon.driver.kill(&runtime).await;
        let message = format!(
            "VM {} could not mount its shared directories: {}",
            vm.name,
            ready.share_errors.join("; ")
        );
        return Err(fail(daemon, &vm, message).await);
    }
    let agent_ready = t0.elapsed();
    // Before the VM is reported running, so `ssh NAME.vm` works the moment `vm run -d`
    // returns. An image without a root disk (the initramfs-only minimal) has no sshd.
    if image.rootfs_path.is_some() {
        progress.phase("authorise the SSH key and pin the host keys", None, None);
        super::ssh::prepare(daemon, &vm, &client).await;
    }

    let mut timings = timings(vmm_spawned, agent_ready, &ready);
    if restore.is_some() {
        // The guest's uptime counters are its parent's: no kernel started here.
        timings.kernel_started_ms = None;
        timings.init_started_ms = None;
    }
    let boot_json = serde_json::to_string(&timings).ok();
    // One transaction: runtime, boot timings, start time, the shares' fresh run (this boot
    // serves every share afresh), a clone's restore, and the state.
    daemon.store().mark_running(
        &vm.id,
        VmState::Starting,
        &banger_store::Started {
            driver: runtime.driver.as_str(),
            runtime_json: &runtime_json,
            boot_json: boot_json.as_deref(),
            started_at: &banger_store::now_rfc3339(),
            restored: restore.is_some(),
        },
    )?;
    *daemon.slot(id).agent.lock().await = Some(client);
    watch::watch_exit(daemon, &vm.id, runtime);
    let started = lookup(daemon, id)?;
    crate::shares::watch::watch(daemon, &started);
    tracing::info!(vm = %vm.name, ready_ms = agent_ready.as_millis() as u64, "VM running");
    Ok(started)
}

/// The VM's shares for this boot (copy-in shares are copied now); a failure releases what
/// the start made and fails the VM with the share's reason.
async fn shares_plan(
    daemon: &Daemon,
    vm: &VmRecord,
    progress: &dyn Progress,
) -> Result<crate::shares::Plan> {
    let stored = daemon.store().vm_shares(&vm.id)?;
    if stored
        .iter()
        .any(|s| s.delivery == banger_store::Delivery::Copy)
    {
        progress.phase("copy shared directories in", None, None);
    }
    match crate::shares::plan(daemon, vm, &stored) {
        Ok(plan) => Ok(plan),
        Err(e) => Err(refused(daemon, vm, e).await),
    }
}

/// What the guest's init reads from the kernel command line: its name and id, where the
/// work disk is (after the root disk, when there is one), and how to start.
fn guest_args(vm: &VmRecord, image: &ImageRecord, drives: &[DriveSpec]) -> Vec<String> {
    let work_index = drives.iter().position(|d| d.id == "work").unwrap_or(0);
    // virtio-blk names devices in attach order; the root drive is attached first.
    let work_dev = format!("/dev/vd{}", char::from(b'a' + work_index.min(25) as u8));
    let mut args = vec![
        format!("banger.hostname={}", vm.name),
        format!("banger.vm={}", vm.id),
        format!("banger.workdisk={work_dev}"),
    ];
    if drives.iter().any(|d| d.root) {
        let init = image.init.unwrap_or(GuestInit::Agent);
        args.push(format!("banger.init={init}"));
    }
    args
}

/// Await `connect`, telling `progress` when the guest kernel starts writing to its
/// console (the first sign of life a client can see before the agent answers).
async fn report_kernel_start<T>(
    connect: impl std::future::Future<Output = T>,
    console: &std::path::Path,
    progress: &dyn Progress,
) -> T {
    tokio::pin!(connect);
    let mut kernel_seen = false;
    loop {
        tokio::select! {
            done = &mut connect => return done,
            _ = tokio::time::sleep(Duration::from_millis(50)), if !kernel_seen => {
                if std::fs::metadata(console).is_ok_and(|m| m.len() > 0) {
                    kernel_seen = true;
                    progress.phase("guest kernel running: wait for the agent", None, None);
                }
            }
        }
    }
}

/// The driver VM `vm` was created with. Records from before drivers were recorded at
/// create time get what this host would choose now.
fn driver_of(daemon: &Daemon, vm: &VmRecord) -> Result<DriverKind> {
    match vm.driver.as_deref() {
        Some(kind) => kind.parse().map_err(|e: String| {
            DaemonError::internal(format!("VM {} has a bad driver record: {e}", vm.name))
        }),
        None => daemon
            .driver
            .select_for_request(daemon.config.vmm)
            .map(|selection| selection.driver),
    }
}

/// Release the VM (its VMM is gone) as failed with `message`, and return the error to report.
/// A start refused before the VMM exists: what was made is given back (the VM is marked
/// failed with the reason) and `e` goes to the caller as it is.
async fn refused(daemon: &Daemon, vm: &VmRecord, e: DaemonError) -> DaemonError {
    let _ = release::release(
        daemon,
        vm,
        VmState::Starting,
        VmState::Failed,
        Some(&e.message),
    )
    .await;
    e
}

async fn fail(daemon: &Daemon, vm: &VmRecord, message: String) -> DaemonError {
    tracing::warn!(vm = %vm.name, %message, "boot failed");
    let _ = release::release(
        daemon,
        vm,
        VmState::Starting,
        VmState::Failed,
        Some(&message),
    )
    .await;
    DaemonError::internal(message).with_hint(format!(
        "`banger vm logs {}` shows the guest console; `banger doctor` checks the host",
        vm.name
    ))
}

/// The boot was ended by a forced stop or removal of the VM: released as failed like any
/// failed boot, but reported as the conflict it is, with a hint that fits a VM that may
/// be gone (not its console log, nor the host's health).
async fn cancelled(daemon: &Daemon, vm: &VmRecord) -> DaemonError {
    let failed = fail(daemon, vm, CANCELLED.to_string()).await;
    DaemonError::conflict(failed.message).with_hint(format!(
        "another request (`banger vm stop -f` or `banger vm rm -f`) ended the boot of {}; `banger vm ls` shows whether it is still there, and `banger vm start {}` boots it again if so",
        vm.name, vm.name
    ))
}

/// Boot phases from the host's clock and the guest's uptime counters. The guest
/// reports how long its kernel had been running at each step, so the moment the
/// kernel took control is the ready time minus the guest uptime at ready.
fn timings(
    vmm_spawned: Duration,
    agent_ready: Duration,
    ready: &banger_agent_client::ReadyInfo,
) -> BootTimings {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let t = &ready.timings;
    let ready_ms = ms(agent_ready);
    // `now_us` is the guest's uptime when it sent Ready, which is when we received it.
    let kernel_started = ready_ms - t.now_us as f64 / 1000.0;
    BootTimings {
        vmm_spawned_ms: ms(vmm_spawned),
        kernel_started_ms: (kernel_started > 0.0).then_some(kernel_started),
        init_started_ms: Some(kernel_started.max(0.0) + t.agent_start_us as f64 / 1000.0),
        agent_ready_ms: ready_ms,
        kernel_release: Some(ready.kernel_release.clone()),
    }
}

/// Longest console line kept in an error message.
const TAIL_LINE_CHARS: usize = 200;

/// The last lines of the console log, formatted for an error message (and the VM's
/// `last_error`). They are the guest's words: each is escaped and capped.
pub fn console_tail(path: &std::path::Path, lines: usize) -> String {
    let tail = banger_system::tail::tail_lines_rotated(path, lines);
    if tail.is_empty() {
        return "\n(the guest console is empty)".to_string();
    }
    let tail: Vec<String> = tail
        .iter()
        .map(|line| banger_system::text::sanitize(line, TAIL_LINE_CHARS))
        .collect();
    format!("\nlast console lines:\n  {}", tail.join("\n  "))
}
