//! Running the QEMU launcher and turning its pid file into a [`VmRuntime`].

use std::ffi::OsStr;
use std::os::fd::{OwnedFd, RawFd};
use std::path::Path;
use std::sync::Arc;

use banger_system::CommandRunner;

use super::{QemuConfig, QemuLaunchPlan, detached};
use crate::error::VmmError;
use crate::process::{self, ProcessIdentity};
use crate::runtime::{AgentEndpoint, ConsoleSource, VmRuntime};
use crate::sandbox::cgroup::VmCgroup;
use crate::sandbox::{self, SandboxPolicy, SandboxRequest};
use crate::spec::{DriverKind, LaunchSpec};
use crate::validate;

pub(super) async fn run(
    config: &QemuConfig,
    runner: &Arc<dyn CommandRunner>,
    spec: &LaunchSpec,
    plan: QemuLaunchPlan,
    inherit: &[RawFd],
    cgroup: Option<&VmCgroup>,
) -> Result<VmRuntime, VmmError> {
    let vm_id = spec.vm_id.clone();
    spec.check_vm_dir()?;
    ensure_not_in_use(&vm_id, &plan.paths.pid_file)?;
    // A pid file left by a VMM that was killed would be read as ours if QEMU failed early.
    match std::fs::remove_file(&plan.paths.pid_file) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(VmmError::io(
                "remove stale pid file",
                &plan.paths.pid_file,
                e,
            ));
        }
    }

    // The jail holds the binary's real path, not a bare name or a link to it
    // (/etc/alternatives…).
    let binary = match config.sandbox {
        SandboxPolicy::Off => config.binary.clone(),
        _ => sandbox::spawn::resolve_binary(&config.binary)?,
    };
    let sandbox = sandbox::prepare(
        config.sandbox,
        &sandbox_request(config, spec, &plan, &binary, cgroup),
    )
    .map_err(|source| VmmError::Sandbox {
        vm_id: vm_id.clone(),
        source,
    })?;
    tracing::info!(
        vm = %vm_id,
        machine = %plan.machine,
        accel = %config.accel,
        sandbox = ?config.sandbox,
        uid = ?sandbox.as_ref().and_then(|s| s.identity.as_ref()).map(|i| i.uid),
        "launching QEMU"
    );
    tracing::debug!(vm = %vm_id, args = ?plan.args, "QEMU command line");
    let pid = match &sandbox {
        Some(prepared) => {
            let launch = |confinement| {
                detached::launch(
                    config,
                    &binary,
                    &plan,
                    &vm_id,
                    &spec.vm_dir,
                    inherit,
                    confinement,
                )
            };
            match launch(Arc::clone(&prepared.confinement)).await {
                // A host whose policy refuses what user namespaces normally allow (an LSM
                // restricting them) still runs the owner's VMM, with seccomp, unjailed;
                // doctor then shows its root is the host's.
                Err(e @ VmmError::Confine { .. }) if prepared.userns_jail => {
                    tracing::warn!(
                        vm = %vm_id,
                        error = %banger_system::error_chain(&e),
                        "cannot jail QEMU in a user namespace; starting it without the jail"
                    );
                    let plain = sandbox::Confinement::new(None, None)
                        .map_err(|source| VmmError::Spawn {
                            binary: binary.clone(),
                            source,
                        })?
                        .in_cgroup(cgroup.map(|c| c.placement.clone()));
                    launch(Arc::new(plain)).await?.pid
                }
                other => other?.pid,
            }
        }
        None => daemonized(config, runner, &vm_id, &plan).await?,
    };
    let stat = process::read_stat(pid)
        .map_err(|e| VmmError::io("read process status", format!("/proc/{pid}/stat"), e))?;
    let Some(stat) = stat.filter(|s| !process::process_exited(pid, s)) else {
        return Err(VmmError::ExitedAtStart {
            vm_id,
            pid,
            console_log: spec.console_log.clone(),
        });
    };
    if let Some(expected) = sandbox.as_ref().and_then(|s| s.identity.as_ref()) {
        sandbox::spawn::check_identity(&vm_id, pid, stat.start_time, expected.uid)?;
    }
    let boot_id = match process::boot_id() {
        Ok(id) => id,
        Err(e) => {
            // Without a boot id the VM could not be found again: do not leave it running.
            let _ = process::signal(
                ProcessIdentity {
                    pid,
                    start_time: stat.start_time,
                },
                libc::SIGKILL,
            );
            return Err(VmmError::io("read", "/proc/sys/kernel/random/boot_id", e));
        }
    };

    Ok(VmRuntime {
        vm_id,
        vm_dir: spec.vm_dir.clone(),
        driver: DriverKind::Qemu,
        accel: config.accel,
        machine: plan.machine,
        pid,
        pid_start_time: stat.start_time,
        boot_id,
        control_socket: plan.paths.qmp_socket.clone(),
        agent: AgentEndpoint::VirtioSerial {
            socket: plan.paths.agent_socket.clone(),
        },
        console_log: spec.console_log.clone(),
        console: Some(ConsoleSource::Socket(plan.paths.console_socket.clone())),
        vmm_log: None,
        vmm_version: None,
        cgroup: cgroup.map(|c| c.dirs.clone()).unwrap_or_default(),
    })
}

/// Open the TAP queue of each of `spec`'s NICs, in order, for QEMU to inherit.
pub(super) fn open_taps(spec: &LaunchSpec) -> Result<Vec<OwnedFd>, VmmError> {
    spec.nics
        .iter()
        .map(|nic| {
            // The name reaches an ioctl: the same rule as on QEMU's command line.
            validate::tap_name(&nic.tap).map_err(|problem| VmmError::InvalidSpec {
                vm_id: spec.vm_id.clone(),
                problem,
            })?;
            banger_net::tap::open_queue(&nic.tap).map_err(|source| VmmError::OpenTap {
                vm_id: spec.vm_id.clone(),
                tap: nic.tap.clone(),
                source: Box::new(source),
            })
        })
        .collect()
}

/// Run QEMU with `-daemonize` through the runner (unsandboxed QEMU only); its launcher
/// returns once the VM has initialised (or failed), and the pid file names the VMM.
async fn daemonized(
    config: &QemuConfig,
    runner: &Arc<dyn CommandRunner>,
    vm_id: &str,
    plan: &QemuLaunchPlan,
) -> Result<u32, VmmError> {
    let task = {
        let runner = Arc::clone(runner);
        let binary = config.binary.clone();
        let args = plan.args.clone();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
            runner.run(&binary, &args)
        })
    };
    let output = match tokio::time::timeout(config.launch_timeout, task).await {
        Err(_) => {
            kill_half_started(&plan.paths.pid_file);
            return Err(VmmError::LaunchTimeout {
                vm_id: vm_id.to_owned(),
                waited: config.launch_timeout,
            });
        }
        Ok(Err(join)) => {
            return Err(VmmError::Spawn {
                binary: config.binary.clone(),
                source: std::io::Error::other(join),
            });
        }
        Ok(Ok(Err(source))) => {
            return Err(VmmError::Spawn {
                binary: config.binary.clone(),
                source,
            });
        }
        Ok(Ok(Ok(output))) => output,
    };

    let stderr = output
        .stderr_str()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    if !output.success() {
        let status = match output.code {
            Some(code) => code.to_string(),
            None => "killed by a signal".to_owned(),
        };
        let stderr = if stderr.is_empty() {
            "(QEMU printed no error)".to_owned()
        } else {
            stderr
        };
        return Err(VmmError::QemuRefused {
            vm_id: vm_id.to_owned(),
            status,
            stderr,
        });
    }
    if !stderr.is_empty() {
        tracing::warn!(vm = %vm_id, qemu_says = %stderr, "QEMU started with warnings");
    }
    read_pid_file(&plan.paths.pid_file).map_err(|problem| VmmError::PidFile {
        vm_id: vm_id.to_owned(),
        path: plan.paths.pid_file.clone(),
        problem,
    })
}

/// What the sandbox needs to know about this launch.
fn sandbox_request<'a>(
    config: &QemuConfig,
    spec: &'a LaunchSpec,
    plan: &QemuLaunchPlan,
    binary: &'a Path,
    cgroup: Option<&VmCgroup>,
) -> SandboxRequest<'a> {
    let (read_only, writable) = spec.sandbox_files(&plan.kernel);
    SandboxRequest {
        vm_id: &spec.vm_id,
        binary,
        vm_dir: &spec.vm_dir,
        read_only,
        writable,
        // TAPs arrive as descriptors (`open_taps`): no /dev/net/tun in the jail.
        devices: Vec::new(),
        kvm: config.accel == crate::spec::Accel::Kvm,
        user_net: spec.user_net.is_some(),
        cgroup: cgroup.map(|c| c.placement.clone()),
        // A restore maps the sealed copy of its RAM file as `/proc/self/fd/N` (`qemu/ram.rs`).
        proc_self: spec.restore.as_ref().is_some_and(|f| f.memory.is_some()),
    }
}

/// Refuse to start a second QEMU in a directory whose VMM still runs: it would unlink and
/// rebind the first one's sockets. QEMU holds a POSIX lock on its pid file for its whole life,
/// so a lock test tells a live pid file from a stale one without trusting the pid in it.
pub(crate) fn ensure_not_in_use(vm_id: &str, pid_file: &Path) -> Result<(), VmmError> {
    use std::os::fd::AsRawFd;
    let file = match std::fs::File::open(pid_file) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(VmmError::io("check pid file", pid_file, e)),
    };
    // SAFETY: lockf(F_TEST) only queries locks on the open fd `file` owns; no memory is passed.
    if unsafe { libc::lockf(file.as_raw_fd(), libc::F_TEST, 0) } == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EACCES) => Err(VmmError::AlreadyRunning {
            vm_id: vm_id.to_owned(),
            pid_file: pid_file.to_path_buf(),
            pid: read_pid_file(pid_file).ok(),
        }),
        _ => Err(VmmError::io("check the lock on pid file", pid_file, err)),
    }
}

/// The pid QEMU wrote (a decimal number and a newline).
pub(crate) fn read_pid_file(path: &Path) -> Result<u32, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read it: {e}"))?;
    text.trim()
        .parse::<u32>()
        .ok()
        .filter(|pid| *pid > 1)
        .ok_or_else(|| format!("expected a pid, found {:?}", text.trim()))
}

/// After a launch timeout: a QEMU that got as far as writing its pid file is killed, so the
/// launcher (waiting on it) exits too and nothing is left running unaccounted for.
fn kill_half_started(pid_file: &Path) {
    let Ok(pid) = read_pid_file(pid_file) else {
        return;
    };
    if let Ok(Some(stat)) = process::read_stat(pid) {
        let id = ProcessIdentity {
            pid,
            start_time: stat.start_time,
        };
        if let Err(e) = process::signal(id, libc::SIGKILL) {
            tracing::warn!(pid, error = %e, "cannot kill QEMU after a launch timeout");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::VmmDriver;
    use crate::qemu::{MachinePreference, QemuDriver};
    use crate::spec::Accel;
    use banger_system::CommandOutput;
    use std::sync::Mutex;
    use std::time::Duration;

    /// Stands in for the QEMU launcher: optionally writes a pid file, optionally blocks until
    /// released, then returns a canned result.
    struct FakeLauncher {
        pid_to_write: Option<String>,
        release: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
        output: CommandOutput,
    }

    impl CommandRunner for FakeLauncher {
        fn run(&self, _program: &Path, args: &[&OsStr]) -> std::io::Result<CommandOutput> {
            if let Some(pid) = &self.pid_to_write {
                let at = args.iter().position(|a| *a == "-pidfile").unwrap() + 1;
                std::fs::write(args[at], pid).unwrap();
            }
            if let Some(rx) = self.release.lock().unwrap().take() {
                let _ = rx.recv();
            }
            Ok(self.output.clone())
        }
    }

    fn fake_driver(launcher: FakeLauncher) -> QemuDriver {
        let mut config =
            QemuConfig::new("/usr/bin/qemu-system-x86_64", Accel::Tcg, Some(2_100_000));
        config.machine = MachinePreference::Microvm;
        config.launch_timeout = Duration::from_millis(200);
        config.sandbox = crate::sandbox::SandboxPolicy::Off;
        QemuDriver::with_runner(config, Arc::new(launcher)).unwrap()
    }

    fn ok_output() -> CommandOutput {
        CommandOutput {
            code: Some(0),
            stdout: vec![],
            stderr: vec![],
        }
    }

    fn spec(dir: &Path) -> LaunchSpec {
        LaunchSpec {
            vm_id: "vm1".into(),
            vm_dir: dir.to_path_buf(),
            kernel: dir.join("vmlinux"),
            kernel_pvh: true,
            bzimage: None,
            initrd: None,
            kernel_args: vec![],
            drives: vec![],
            nics: vec![],
            user_net: None,
            vcpus: 1,
            memory_mib: 64,
            memory: Default::default(),
            restore: None,
            shares: Vec::new(),
            console_log: dir.join("console.log"),
        }
    }

    #[tokio::test]
    async fn qemu_failure_output_becomes_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let driver = fake_driver(FakeLauncher {
            pid_to_write: None,
            release: Mutex::new(None),
            output: CommandOutput {
                code: Some(1),
                stdout: vec![],
                stderr: b"qemu: first problem\n\nqemu: second problem\n".to_vec(),
            },
        });
        let err = driver
            .launch(&spec(dir.path()))
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "QEMU refused to start VM vm1 (exit status 1): qemu: first problem; qemu: second problem"
        );
    }

    #[tokio::test]
    async fn success_without_a_pid_file_or_with_a_dead_pid_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let no_pid = fake_driver(FakeLauncher {
            pid_to_write: None,
            release: Mutex::new(None),
            output: ok_output(),
        });
        let err = no_pid.launch(&spec(dir.path())).await.unwrap_err();
        assert!(matches!(err, VmmError::PidFile { .. }), "{err}");

        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead_pid = child.id();
        child.wait().unwrap();
        let dead = fake_driver(FakeLauncher {
            pid_to_write: Some(format!("{dead_pid}\n")),
            release: Mutex::new(None),
            output: ok_output(),
        });
        let err = dead.launch(&spec(dir.path())).await.unwrap_err();
        assert!(matches!(err, VmmError::ExitedAtStart { .. }), "{err}");
        assert!(err.to_string().contains("console.log"), "{err}");
    }

    #[tokio::test]
    async fn a_launcher_that_hangs_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let driver = fake_driver(FakeLauncher {
            pid_to_write: None,
            release: Mutex::new(Some(rx)),
            output: ok_output(),
        });
        let err = driver.launch(&spec(dir.path())).await.unwrap_err();
        assert!(matches!(err, VmmError::LaunchTimeout { .. }), "{err}");
        tx.send(()).unwrap();
    }

    #[test]
    fn pid_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("qemu.pid");
        std::fs::write(&p, "4242\n").unwrap();
        assert_eq!(read_pid_file(&p), Ok(4242));
        std::fs::write(&p, "").unwrap();
        assert!(read_pid_file(&p).unwrap_err().contains("expected a pid"));
        std::fs::write(&p, "1\n").unwrap();
        assert!(read_pid_file(&p).is_err());
        assert!(
            read_pid_file(&dir.path().join("none"))
                .unwrap_err()
                .contains("cannot read")
        );
    }
}
