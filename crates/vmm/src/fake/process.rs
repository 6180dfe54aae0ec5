//! The fake VMM's processes: the launcher (QEMU's `-daemonize` parent) and the VMM itself.
//! Both are the test binary, told what to be by [`ENV_MODE`].

use std::ffi::OsStr;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{AGENT_SOCKET, CONSOLE_SOCKET, FakeFaults, PID_FILE};
use crate::error::VmmError;
use crate::spec::LaunchSpec;

/// `launch` or `run`: which part of the fake VMM this process plays.
pub const ENV_MODE: &str = "BANGER_FAKE_VMM";
const ENV_REFUSE: &str = "BANGER_FAKE_VMM_REFUSE";
const ENV_EXIT_AT_START: &str = "BANGER_FAKE_VMM_EXIT_AT_START";
const ENV_HANG: &str = "BANGER_FAKE_VMM_HANG";
const ENV_SILENT: &str = "BANGER_FAKE_VMM_SILENT";
const ENV_MAIN_EXITS: &str = "BANGER_FAKE_VMM_MAIN_EXITS";
const ENV_SIMULATED_GUEST: &str = "BANGER_FAKE_VMM_SIMULATED_GUEST";
/// The first argument, so a fake VMM is recognisable in `ps`.
const ARG0: &str = "banger-fake-vmm";
/// How long the launcher waits for the VMM to come up.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

pub(super) struct Launched {
    pub pid: u32,
    pub start_time: u64,
}

/// The caller's side of a launch: run the launcher, then read the pid file it left.
pub(super) fn launch(
    program: &Path,
    spec: &LaunchSpec,
    faults: &FakeFaults,
) -> Result<Launched, VmmError> {
    let vm_id = spec.vm_id.clone();
    if !spec.vm_dir.is_dir() {
        return Err(VmmError::io(
            "open VM directory",
            &spec.vm_dir,
            std::io::Error::from(std::io::ErrorKind::NotFound),
        ));
    }
    let pid_file = spec.vm_dir.join(PID_FILE);
    crate::qemu::launch::ensure_not_in_use(&vm_id, &pid_file)?;
    match std::fs::remove_file(&pid_file) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(VmmError::io("remove stale pid file", &pid_file, e));
        }
        _ => {}
    }
    let mut launcher = Command::new(program);
    launcher
        .args([OsStr::new(ARG0), spec.vm_dir.as_os_str()])
        .env(ENV_MODE, "launch")
        .stdin(Stdio::null());
    if let Some(message) = &faults.refuse {
        launcher.env(ENV_REFUSE, message);
    }
    if faults.exit_at_start {
        launcher.env(ENV_EXIT_AT_START, "1");
    }
    if faults.hang_launch {
        launcher.env(ENV_HANG, "1");
    }
    if faults.silent_guest {
        launcher.env(ENV_SILENT, "1");
    }
    if faults.main_thread_exits {
        launcher.env(ENV_MAIN_EXITS, "1");
    }
    if faults.simulated_guest {
        launcher.env(ENV_SIMULATED_GUEST, "1");
    }
    let output = launcher.output().map_err(|source| VmmError::Spawn {
        binary: program.to_path_buf(),
        source,
    })?;
    if !output.status.success() {
        return Err(VmmError::QemuRefused {
            vm_id,
            status: output
                .status
                .code()
                .map_or_else(|| "killed by a signal".into(), |c| c.to_string()),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    let pid =
        crate::qemu::launch::read_pid_file(&pid_file).map_err(|problem| VmmError::PidFile {
            vm_id: vm_id.clone(),
            path: pid_file.clone(),
            problem,
        })?;
    match crate::process::read_stat(pid) {
        Ok(Some(stat)) if !crate::process::process_exited(pid, &stat) => Ok(Launched {
            pid,
            start_time: stat.start_time,
        }),
        _ => Err(VmmError::ExitedAtStart {
            vm_id,
            pid,
            console_log: spec.console_log.clone(),
        }),
    }
}

/// Runs the fake VMM part this process was started as, and exits; returns at once in any
/// other process. Called before `main` by [`crate::fake_vmm_hook!`].
pub fn maybe_run_fake_vmm() {
    let Ok(mode) = std::env::var(ENV_MODE) else {
        return;
    };
    // From /proc rather than std::env::args: this runs from `.init_array`, possibly before
    // the standard library has captured the arguments.
    let args: Vec<String> = std::fs::read("/proc/self/cmdline")
        .unwrap_or_default()
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let Some(vm_dir) = args
        .get(2)
        .filter(|_| args.get(1).map(String::as_str) == Some(ARG0))
    else {
        eprintln!("banger-fake-vmm: usage: PROGRAM {ARG0} VM_DIR (with {ENV_MODE}=launch|run)");
        std::process::exit(2);
    };
    let vm_dir = PathBuf::from(vm_dir);
    let code = match mode.as_str() {
        "launch" => run_launcher(&vm_dir),
        "run" => run_vmm(&vm_dir),
        other => {
            eprintln!("banger-fake-vmm: unknown {ENV_MODE}={other:?}");
            2
        }
    };
    std::process::exit(code);
}

/// QEMU's `-daemonize` parent: start the VMM detached, wait for it to be up, exit.
fn run_launcher(vm_dir: &Path) -> i32 {
    if let Ok(message) = std::env::var(ENV_REFUSE) {
        eprintln!("{message}");
        return 1;
    }
    if std::env::var_os(ENV_HANG).is_some() {
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("banger-fake-vmm: cannot find its own executable: {e}");
            return 1;
        }
    };
    let mut vmm = Command::new(exe);
    vmm.args([OsStr::new(ARG0), vm_dir.as_os_str()])
        .env(ENV_MODE, "run")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: setsid is async-signal-safe and touches no memory of this process; it detaches
    // the VMM from the caller's session, as QEMU's -daemonize does.
    unsafe {
        vmm.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = match vmm.spawn() {
        Ok(child) => child,
        Err(e) => {
            eprintln!("banger-fake-vmm: cannot start the VMM: {e}");
            return 1;
        }
    };
    let deadline = Instant::now() + READY_TIMEOUT;
    let pid_file = vm_dir.join(PID_FILE);
    let socket = vm_dir.join(AGENT_SOCKET);
    loop {
        // Exited early: QEMU's launcher also reports success and leaves a dead pid behind.
        if matches!(child.try_wait(), Ok(Some(_))) {
            return 0;
        }
        let written = crate::qemu::launch::read_pid_file(&pid_file).is_ok_and(|p| p == child.id());
        if written && socket.exists() {
            return 0;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            eprintln!("banger-fake-vmm: the VMM did not come up within {READY_TIMEOUT:?}");
            return 1;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The VMM: lock and write the pid file, then serve the real agent until powered off.
fn run_vmm(vm_dir: &Path) -> i32 {
    // Before any thread exists (the console's below): the agent waits for SIGCHLD on a thread
    // of its own, and every thread must have it blocked, or a child's exit goes unnoticed.
    if let Err(e) = banger_agent::signals::block() {
        eprintln!("banger-fake-vmm: cannot block signals: {e}");
        return 1;
    }
    let pid_path = vm_dir.join(PID_FILE);
    let mut pid_file = match OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .mode(0o600)
        .open(&pid_path)
    {
        Ok(file) => file,
        Err(e) => {
            eprintln!("banger-fake-vmm: cannot open {}: {e}", pid_path.display());
            return 1;
        }
    };
    // Held for the process's whole life, like QEMU's lock on its pid file.
    // SAFETY: lockf on an fd this function owns; no memory is passed.
    if unsafe { libc::lockf(pid_file.as_raw_fd(), libc::F_TLOCK, 0) } != 0 {
        eprintln!(
            "banger-fake-vmm: {} is locked by another VMM",
            pid_path.display()
        );
        return 1;
    }
    let written = pid_file
        .set_len(0)
        .and_then(|()| writeln!(pid_file, "{}", std::process::id()));
    if let Err(e) = written {
        eprintln!("banger-fake-vmm: cannot write {}: {e}", pid_path.display());
        return 1;
    }
    if std::env::var_os(ENV_EXIT_AT_START).is_some() {
        return 1;
    }
    if std::env::var_os(ENV_MAIN_EXITS).is_some() {
        let vm_dir = vm_dir.to_path_buf();
        // The VMM goes on in a thread of its own, which inherits the blocked signals and
        // ends the whole process when the guest powers off.
        std::thread::spawn(move || std::process::exit(serve(&vm_dir, pid_file)));
        // SAFETY: SYS_exit ends only the calling (main) thread; the process lives on in the
        // thread spawned above, which owns everything it uses. Nothing of this thread's stack
        // is shared with it.
        unsafe { libc::syscall(libc::SYS_exit, 0) };
        // SYS_exit does not return.
        unreachable!("the main thread outlived SYS_exit");
    }
    serve(vm_dir, pid_file)
}

/// The VMM once its pid file is written and locked: offer the console and serve the agent
/// until the guest powers off; the exit code.
fn serve(vm_dir: &Path, pid_file: std::fs::File) -> i32 {
    if let Err(e) = serve_console(&vm_dir.join(CONSOLE_SOCKET)) {
        eprintln!("banger-fake-vmm: cannot offer its console: {e}");
        return 1;
    }
    eprintln!("banger-fake-vmm: booting the guest of {}", vm_dir.display());
    if std::env::var_os(ENV_SILENT).is_some() {
        // Connections queue in the backlog and are never read: a guest that hangs.
        let _listener = match std::os::unix::net::UnixListener::bind(vm_dir.join(AGENT_SOCKET)) {
            Ok(listener) => listener,
            Err(e) => {
                eprintln!("banger-fake-vmm: cannot bind the agent socket: {e}");
                return 1;
            }
        };
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    let listen = format!("unix:{}", vm_dir.join(AGENT_SOCKET).display());
    let mut args = vec!["--listen".to_owned(), listen];
    if std::env::var_os(ENV_SIMULATED_GUEST).is_some() {
        args.push("--simulated-guest".to_owned());
        args.push(
            vm_dir
                .join(super::SIMULATED_GUEST_DIR)
                .to_string_lossy()
                .into_owned(),
        );
    }
    let code = banger_agent::run(&args);
    // The lock must outlive the agent.
    drop(pid_file);
    code
}

/// Make stdout and stderr the "serial console": a pipe whose bytes go to whoever is connected
/// to `socket`, and nowhere while nobody is (QEMU's `socket,server=on,wait=off` chardev).
fn serve_console(socket: &Path) -> std::io::Result<()> {
    use std::io::Read;
    use std::os::fd::FromRawFd;
    use std::os::unix::net::{UnixListener, UnixStream};
    use std::sync::{Arc, Mutex};

    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two new fds into the array we pass.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: dup2 makes fds 1 and 2 refer to the pipe's write end (without CLOEXEC), then our
    // own copy of the write end is closed; the read end becomes a File we own.
    let mut reader = unsafe {
        libc::dup2(fds[1], libc::STDOUT_FILENO);
        libc::dup2(fds[1], libc::STDERR_FILENO);
        libc::close(fds[1]);
        std::fs::File::from_raw_fd(fds[0])
    };
    // A socket file left by an earlier VMM of this directory (QEMU unlinks its own too).
    let _ = std::fs::remove_file(socket);
    let listener = UnixListener::bind(socket)?;
    let client: Arc<Mutex<Option<UnixStream>>> = Arc::default();
    let accepted = client.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            *accepted.lock().unwrap_or_else(|p| p.into_inner()) = Some(stream);
        }
    });
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let mut current = client.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(stream) = current.as_mut()
                && stream.write_all(&buf[..n]).is_err()
            {
                *current = None;
            }
        }
    });
    Ok(())
}
