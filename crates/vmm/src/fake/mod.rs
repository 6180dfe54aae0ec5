//! A VMM driver for tests: every lifecycle path runs in milliseconds, with no QEMU and no
//! guest kernel, against a *real* process that keeps the VMM contract the daemon relies on.
//!
//! Enabled by the `testkit` cargo feature only; release builds never contain it.
//!
//! The fake VMM is the test binary itself, started again (see [`fake_vmm_hook!`]):
//!
//! * launch works like QEMU's `-daemonize`: a launcher process starts the VMM detached
//!   (`setsid`), waits until it has written and locked its pid file and bound its agent
//!   socket, and exits; the VMM is not a child of the caller and outlives it.
//! * the VMM's command line names its VM directory, as QEMU's does, so
//!   [`crate::process::find_using_dir`] finds it without any record.
//! * it serves the **real guest agent** (`banger-agent`'s library, not PID 1) on
//!   `<vm_dir>/agent.sock`: execs run real processes on the host; `Poweroff` makes the VMM
//!   exit (a guest powering off); SIGTERM does too (the ACPI power button).
//! * its "serial console" (the agent's log, and anything written to the VMM's stderr, e.g.
//!   `/proc/<pid>/fd/2` from an exec) is offered on `<vm_dir>/console.sock` like QEMU's:
//!   discarded while nobody is connected, written to whoever is.
//! * a hung guest is a stopped process (`SIGSTOP`): the agent socket still accepts
//!   connections, nothing answers, and only SIGKILL ends it — like a QEMU whose guest is
//!   paused on an I/O error.
//!
//! Faults are set per driver with [`FakeFaults`] and apply to the next launches.

mod process;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use process::{ENV_MODE, maybe_run_fake_vmm};

use crate::driver::{RunState, VmmDriver, WaitOutcome};
use crate::error::VmmError;
use crate::runtime::{AgentEndpoint, MachineType, VmRuntime};
use crate::spec::{Accel, DriverKind, KernelFormat, LaunchSpec, SnapshotFiles};

/// File names in the VM directory, as the fake VMM uses them.
pub const PID_FILE: &str = "fake-vmm.pid";
pub const AGENT_SOCKET: &str = "agent.sock";
pub const CONSOLE_SOCKET: &str = "console.sock";
/// Where a [`FakeFaults::simulated_guest`] agent keeps its identity, in the VM directory.
pub const SIMULATED_GUEST_DIR: &str = "guest";

/// Faults the next launches suffer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FakeFaults {
    /// The launcher fails with this message on stderr (like QEMU refusing an option).
    pub refuse: Option<String>,
    /// The VMM exits right after writing its pid file (a guest that dies at once).
    pub exit_at_start: bool,
    /// The launcher never returns (QEMU stuck initialising).
    pub hang_launch: bool,
    /// The guest never answers: its agent socket accepts connections and reads nothing (a
    /// kernel that hangs before its agent starts).
    pub silent_guest: bool,
    /// The VMM's main thread ends once the VMM is up, and other threads run the guest: to
    /// `/proc` the process's main thread is a zombie while the VMM runs, holds its pid file
    /// lock and answers its agent — as a multi-threaded VMM looks while SIGKILL tears it down
    /// thread by thread. Whoever declares it gone on the main thread's word is wrong.
    pub main_thread_exits: bool,
    /// The guest's agent plays a guest (`--simulated-guest <vm dir>/guest`, as the fake
    /// Firecracker's does): a restored clone's Reidentify is applied under that directory
    /// instead of being refused, as an agent running on a host must refuse it.
    pub simulated_guest: bool,
}

/// How the fake driver runs.
#[derive(Debug, Clone)]
pub struct FakeConfig {
    /// The test binary that installed [`fake_vmm_hook!`]; `std::env::current_exe()`.
    pub program: PathBuf,
    /// The kind the fake reports (the daemon stores it with each VM).
    pub kind: DriverKind,
    pub launch_timeout: Duration,
    /// How long `kill` waits after SIGTERM before SIGKILL, and after SIGKILL.
    pub kill_grace: Duration,
}

impl FakeConfig {
    /// A fake VMM played by the running test binary.
    pub fn current_exe() -> std::io::Result<FakeConfig> {
        Ok(FakeConfig {
            program: std::env::current_exe()?,
            kind: DriverKind::Qemu,
            launch_timeout: Duration::from_secs(30),
            kill_grace: Duration::from_secs(5),
        })
    }
}

/// The fake driver. Cheap to clone; clones share their faults.
#[derive(Debug, Clone)]
pub struct FakeDriver {
    config: FakeConfig,
    faults: Arc<Mutex<FakeFaults>>,
}

impl FakeDriver {
    pub fn new(config: FakeConfig) -> FakeDriver {
        FakeDriver {
            config,
            faults: Arc::default(),
        }
    }

    pub fn config(&self) -> &FakeConfig {
        &self.config
    }

    /// Replaces the faults applied to the next launches.
    pub fn set_faults(&self, faults: FakeFaults) {
        *self.faults.lock().unwrap_or_else(|p| p.into_inner()) = faults;
    }

    fn faults(&self) -> FakeFaults {
        self.faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    async fn signal_and_wait(&self, rt: &VmRuntime, signal: libc::c_int) -> Result<bool, VmmError> {
        crate::process::signal(rt.identity(), signal).map_err(|source| VmmError::Signal {
            vm_id: rt.vm_id.clone(),
            pid: rt.pid,
            source,
        })?;
        Ok(rt.wait_exit(self.config.kill_grace).await? == WaitOutcome::Exited)
    }
}

impl VmmDriver for FakeDriver {
    fn kind(&self) -> DriverKind {
        self.config.kind
    }

    fn kernel_format(&self) -> KernelFormat {
        KernelFormat::ElfVmlinux
    }

    async fn launch(&self, spec: &LaunchSpec) -> Result<VmRuntime, VmmError> {
        if let Some(files) = &spec.restore {
            check_snapshot(spec, files)?;
        }
        let faults = self.faults();
        let config = self.config.clone();
        let spec_owned = spec.clone();
        let task = tokio::task::spawn_blocking(move || {
            process::launch(&config.program, &spec_owned, &faults)
        });
        let launched = match tokio::time::timeout(self.config.launch_timeout, task).await {
            Err(_) => {
                return Err(VmmError::LaunchTimeout {
                    vm_id: spec.vm_id.clone(),
                    waited: self.config.launch_timeout,
                });
            }
            Ok(Err(join)) => {
                return Err(VmmError::Spawn {
                    binary: self.config.program.clone(),
                    source: std::io::Error::other(join),
                });
            }
            Ok(Ok(result)) => result?,
        };
        let rt = VmRuntime {
            vm_id: spec.vm_id.clone(),
            vm_dir: spec.vm_dir.clone(),
            driver: self.config.kind,
            accel: Accel::Tcg,
            machine: MachineType::Microvm,
            pid: launched.pid,
            pid_start_time: launched.start_time,
            boot_id: crate::process::boot_id()
                .map_err(|e| VmmError::io("read", "/proc/sys/kernel/random/boot_id", e))?,
            control_socket: spec.vm_dir.join(PID_FILE),
            agent: AgentEndpoint::VirtioSerial {
                socket: spec.vm_dir.join(AGENT_SOCKET),
            },
            console_log: spec.console_log.clone(),
            console: Some(crate::runtime::ConsoleSource::Socket(
                spec.vm_dir.join(CONSOLE_SOCKET),
            )),
            vmm_log: None,
            vmm_version: None,
            cgroup: Vec::new(),
        };
        if spec.restore.is_some() {
            // A restored guest comes back paused.
            self.pause(&rt).await?;
        }
        Ok(rt)
    }

    /// A record naming the VM, written only while it is paused (as QEMU and Firecracker
    /// refuse a running guest).
    async fn save_snapshot(&self, rt: &VmRuntime, dir: &Path) -> Result<SnapshotFiles, VmmError> {
        if self.run_state(rt).await? != RunState::Paused {
            return Err(VmmError::WrongState {
                vm_id: rt.vm_id.clone(),
                action: "save a snapshot",
                problem: "the guest runs; pause it first".into(),
            });
        }
        let state = dir.join(SNAPSHOT_FILE);
        let temp = dir.join(format!(".{SNAPSHOT_FILE}.tmp"));
        std::fs::write(&temp, format!("{SNAPSHOT_MAGIC} {}\n", rt.vm_id))
            .map_err(|e| VmmError::io("write snapshot", &temp, e))?;
        crate::fsutil::commit(&temp, &state)?;
        Ok(SnapshotFiles {
            state,
            memory: None,
        })
    }

    /// The ACPI power button: SIGTERM, which the agent (not PID 1) answers by ending its
    /// execs and exiting. A stopped (hung) fake VMM keeps it pending, as a frozen guest
    /// ignores the button.
    async fn request_shutdown(&self, rt: &VmRuntime) -> Result<(), VmmError> {
        if rt.is_alive() {
            crate::process::signal(rt.identity(), libc::SIGTERM).map_err(|source| {
                VmmError::Signal {
                    vm_id: rt.vm_id.clone(),
                    pid: rt.pid,
                    source,
                }
            })?;
        }
        Ok(())
    }

    async fn kill(&self, rt: &VmRuntime) -> Result<(), VmmError> {
        if rt.is_alive()
            && !self.signal_and_wait(rt, libc::SIGTERM).await?
            && !self.signal_and_wait(rt, libc::SIGKILL).await?
        {
            return Err(VmmError::Unkillable {
                vm_id: rt.vm_id.clone(),
                pid: rt.pid,
                waited: self.config.kill_grace * 2,
            });
        }
        for leftover in [PID_FILE, AGENT_SOCKET, CONSOLE_SOCKET] {
            let _ = std::fs::remove_file(rt.vm_dir.join(leftover));
        }
        Ok(())
    }

    /// A paused guest is a stopped process (SIGSTOP), as QMP `stop` halts the vCPUs.
    async fn pause(&self, rt: &VmRuntime) -> Result<(), VmmError> {
        rt.signal(libc::SIGSTOP)?;
        // A signal is delivered asynchronously; QMP `stop` returns once the vCPUs halted.
        for _ in 0..200 {
            if self.run_state(rt).await? == RunState::Paused {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }

    async fn resume(&self, rt: &VmRuntime) -> Result<(), VmmError> {
        rt.signal(libc::SIGCONT).map(drop)
    }

    /// A stopped process is a paused guest; the fake's guest runs from launch on.
    async fn run_state(&self, rt: &VmRuntime) -> Result<RunState, VmmError> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", rt.pid))
            .map_err(|e| VmmError::io("read", format!("/proc/{}/stat", rt.pid), e))?;
        // The state follows the command name, which is in parentheses and may hold any byte.
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next());
        Ok(if state == Some("T") {
            RunState::Paused
        } else {
            RunState::Running
        })
    }

    fn stray_marks(&self, _vm_dir: &Path) -> crate::process::Marks {
        crate::process::Marks {
            binaries: vec![self.config.program.clone()],
            roots: Vec::new(),
        }
    }
}

/// The fake's snapshot file and its first word.
pub const SNAPSHOT_FILE: &str = "fake-vmstate";
const SNAPSHOT_MAGIC: &str = "banger-fake-vmm-snapshot";

/// A restore must name a snapshot the fake wrote, as a real VMM refuses any other stream.
fn check_snapshot(spec: &LaunchSpec, files: &SnapshotFiles) -> Result<(), VmmError> {
    let text = std::fs::read_to_string(&files.state)
        .map_err(|e| VmmError::io("open snapshot state file", &files.state, e))?;
    if text.split_whitespace().next() != Some(SNAPSHOT_MAGIC) {
        return Err(VmmError::RestoreFailed {
            vm_id: spec.vm_id.clone(),
            state: files.state.clone(),
            reason: "not a fake VMM snapshot".into(),
        });
    }
    Ok(())
}

/// Installs the fake VMM's entry point in a test binary. Expand it once, at the top level
/// of the crate whose tests use [`FakeDriver`] (under `#[cfg(test)]`).
///
/// The entry runs from the ELF `.init_array`, before the test harness's `main`: a fake VMM
/// process must own its main thread (the agent blocks signals there and waits for them on a
/// thread of its own), and must not run the harness at all.
#[macro_export]
macro_rules! fake_vmm_hook {
    () => {
        // SAFETY: the function placed in `.init_array` takes no arguments and returns
        // nothing, as the loader calls it; it only reads the environment and, in a fake VMM
        // process, never returns to the harness.
        #[used]
        #[unsafe(link_section = ".init_array")]
        static BANGER_FAKE_VMM_HOOK: extern "C" fn() = {
            extern "C" fn banger_fake_vmm_hook() {
                $crate::fake::maybe_run_fake_vmm();
            }
            banger_fake_vmm_hook
        };
    };
}
