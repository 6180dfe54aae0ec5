//! Running the QEMU launcher and turning its pid file into a [`VmRuntime`].

use std::ffi::OsStr;
use std::path::Path;
use std::sync::Arc;

use banger_system::CommandRunner;

use super::{QemuConfig, QemuLaunchPlan};
use crate::error::VmmError;
use crate::process::{self, ProcessIdentity};
use crate::runtime::{AgentEndpoint, ConsoleSource, VmRuntime};
use crate::spec::{DriverKind, LaunchSpec};

pub(super) async fn run(
    config: &QemuConfig,
    runner: &Arc<dyn CommandRunner>,
    spec: &LaunchSpec,
    plan: QemuLaunchPlan,
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

    tracing::info!(vm = %vm_id, machine = %plan.machine, accel = %config.accel, "launching QEMU");
    tracing::debug!(vm = %vm_id, args = ?plan.args, "QEMU command line");
    let task = {
        let runner = Arc::clone(runner);
        let binary = config.binary.clone();
        let args = plan.args.clone();
        // The launcher returns once the daemonized QEMU has initialised (or failed).
        tokio::task::spawn_blocking(move || {
            let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
            runner.run(&binary, &args)
        })
    };
    let output = match tokio::time::timeout(config.launch_timeout, task).await {
        Err(_) => {
            kill_half_started(&plan.paths.pid_file);
            return Err(VmmError::LaunchTimeout {
                vm_id,
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
            vm_id,
            status,
            stderr,
        });
    }
    if !stderr.is_empty() {
        tracing::warn!(vm = %vm_id, qemu_says = %stderr, "QEMU started with warnings");
    }

    let pid = read_pid_file(&plan.paths.pid_file).map_err(|problem| VmmError::PidFile {
        vm_id: vm_id.clone(),
        path: plan.paths.pid_file.clone(),
        problem,
    })?;
    let stat = process::read_stat(pid)
        .map_err(|e| VmmError::io("read process status", format!("/proc/{pid}/stat"), e))?;
    let Some(stat) = stat.filter(|s| !process::process_exited(pid, s)) else {
        return Err(VmmError::ExitedAtStart {
            vm_id,
            pid,
            console_log: spec.console_log.clone(),
        });
    };
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
    })
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
