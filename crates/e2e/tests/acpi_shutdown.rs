//! The ACPI power button ends a real guest cleanly: boot the `minimal` image with the QEMU
//! driver directly (no daemon), wait for the agent, press the power button over QMP
//! (`system_powerdown`, what `banger vm stop` does when the agent cannot be asked), and check
//! that QEMU exits because the guest powered itself off. On `-M microvm` (vmlinux via PVH)
//! and on `-M pc` (bzImage), whose power buttons are different input devices.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use banger_agent_client::AgentClient;
use banger_e2e::{Env, direct};
use banger_vmm::{MachinePreference, MachineType, QemuDriver, VmRuntime, VmmDriver, WaitOutcome};
use tokio::runtime::Runtime;

/// Boots take 2-3 s under TCG here; a loaded CI host may be far slower.
const BOOT_TIMEOUT: Duration = Duration::from_secs(180);
/// The agent gives other processes 2 s + 1 s before powering off; the rest is slack.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(60);

/// Kills QEMU when the test ends, passing or failing, so no guest outlives it.
struct KillOnDrop<'a> {
    runtime: &'a Runtime,
    driver: &'a QemuDriver,
    vm: VmRuntime,
}

impl Drop for KillOnDrop<'_> {
    fn drop(&mut self) {
        // Runs outside any `block_on` (the test's async steps are separate calls), so it may
        // block on the runtime itself.
        if let Err(err) = self.runtime.block_on(self.driver.kill(&self.vm)) {
            eprintln!("killing QEMU of {} failed: {err}", self.vm.vm_id);
        }
    }
}

#[test]
fn power_button_powers_off_a_microvm_guest() {
    power_button_powers_off("microvm", MachinePreference::Microvm, MachineType::Microvm);
}

#[test]
fn power_button_powers_off_a_pc_guest() {
    power_button_powers_off("pc", MachinePreference::Pc, MachineType::Pc);
}

fn power_button_powers_off(name: &str, machine: MachinePreference, expected: MachineType) {
    let env = Env::new().unwrap();
    let image = env.minimal_image().unwrap();
    let vm_dir = env.root.path().join(name);
    let spec =
        direct::launch_spec(&image, &vm_dir, &format!("acpi-{name}"), 1, 512, "256M").unwrap();
    let mut config = env.host_qemu_config().unwrap();
    config.machine = machine;
    let driver = QemuDriver::new(config).unwrap();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let vm = runtime.block_on(driver.launch(&spec)).unwrap();
    let guard = KillOnDrop {
        runtime: &runtime,
        driver: &driver,
        vm: vm.clone(),
    };
    assert_eq!(vm.machine, expected);
    // Capture the console as the daemon would (the agent's power-off lines are checked below).
    let capture = {
        let vm = vm.clone();
        let log = spec.console_log.clone();
        runtime.spawn(async move { banger_vmm::console::capture(&vm, &log, 1 << 20).await })
    };

    // Ready means PID 1 has loaded the modules and opened the input devices.
    let boot = Instant::now();
    let ready = runtime.block_on(wait_for_agent(&driver, &vm));
    if let Err(err) = ready {
        panic!("{err}\n{}", console(&spec.console_log));
    }
    eprintln!("{name}: agent ready {:.1} s after launch", secs(boot));

    let pressed = Instant::now();
    runtime.block_on(driver.request_shutdown(&vm)).unwrap();
    let outcome = runtime
        .block_on(driver.wait_exit(&vm, SHUTDOWN_TIMEOUT))
        .unwrap();
    let took = pressed.elapsed();
    // The capture ends with the VMM: then the log holds its last words.
    let _ = runtime.block_on(async { tokio::time::timeout(SHUTDOWN_TIMEOUT, capture).await });
    let log = console(&spec.console_log);
    assert_eq!(
        outcome,
        WaitOutcome::Exited,
        "QEMU still runs {SHUTDOWN_TIMEOUT:?} after the power button\n{log}"
    );
    eprintln!(
        "{name}: request_shutdown to QEMU exit {:.0} ms",
        took.as_secs_f64() * 1000.0
    );
    assert!(
        log.contains("banger-agent: power button pressed")
            && log.contains("banger-agent: powering off"),
        "QEMU exited, but not through the agent's power-off\n{log}"
    );
    // Nothing but the agent runs in this guest: the power-off must not sit out the SIGTERM
    // grace waiting for kernel threads.
    assert!(
        !log.contains("after SIGTERM; killing them"),
        "the power-off waited for processes in an idle guest\n{log}"
    );
    drop(guard);
}

/// Connects to the agent socket until the agent answers the handshake.
async fn wait_for_agent(driver: &QemuDriver, vm: &VmRuntime) -> Result<(), String> {
    let deadline = Instant::now() + BOOT_TIMEOUT;
    let mut last_error = String::from("never connected");
    while Instant::now() < deadline {
        match driver.connect_agent(vm).await {
            Ok(stream) => {
                let left = deadline.saturating_duration_since(Instant::now());
                match AgentClient::handshake(stream, left).await {
                    Ok(_) => return Ok(()),
                    Err(err) => last_error = err.to_string(),
                }
            }
            Err(err) => last_error = err.to_string(),
        }
        // Only paces the retries of a socket that refused; the handshake itself waits.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(format!(
        "the agent did not answer within {BOOT_TIMEOUT:?}: {last_error}"
    ))
}

fn console(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    format!("console log {}:\n{text}", path.display())
}

fn secs(since: Instant) -> f64 {
    since.elapsed().as_secs_f64()
}
