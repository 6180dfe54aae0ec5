//! Creating an exec's process: environment, working directory, pipes or a pseudo-terminal.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use banger_agent_proto::{Exec, TtySize};

use super::table::{ExecEntry, ExecTable};
use super::user::{self, Identity};

/// The environment every exec starts from; the request's `env` is added on top. `LANG` is
/// the locale every glibc has built in (and the debian image's ssh sessions get), so UTF-8
/// text works in `vm exec` as it does over `ssh NAME.vm`.
pub const DEFAULT_ENV: [(&str, &str); 3] = [
    (
        "PATH",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ),
    ("HOME", "/root"),
    ("LANG", "C.UTF-8"),
];

/// `TERM` for execs on a terminal, unless the request sets its own.
pub const DEFAULT_TERM: &str = "xterm-256color";

/// Working directory of an exec that names none.
pub const DEFAULT_CWD: &str = "/";

/// A running exec's process and the host side of its stdio.
pub struct Spawned {
    pub entry: Arc<ExecEntry>,
    /// Becomes readable (hang-up) once the process has been reaped.
    pub done: OwnedFd,
    pub stdin: Option<File>,
    /// Stdout pipe, or the terminal's master side.
    pub stdout: File,
    /// Stderr pipe; `None` on a terminal (merged into stdout).
    pub stderr: Option<File>,
    /// The terminal's master side, for resizing.
    pub pty: Option<File>,
}

/// Why an exec did not start, with the exit code reported for it: 127 when the program was
/// not found, 126 for every other failure to start (the shells' convention).
#[derive(Debug)]
pub struct SpawnFailure {
    pub message: String,
    pub code: i32,
}

fn failure(code: i32, message: String) -> SpawnFailure {
    SpawnFailure { message, code }
}

/// Starts `exec`'s process, registered in `table`.
pub fn spawn(exec: &Exec, table: &ExecTable) -> Result<Spawned, SpawnFailure> {
    let Some(program) = exec.argv.first() else {
        return Err(failure(
            126,
            "exec: empty argv; send the program to run as its first element".into(),
        ));
    };
    let cwd = exec.cwd.as_deref().unwrap_or(DEFAULT_CWD);
    if !Path::new(cwd).is_dir() {
        return Err(failure(
            126,
            format!("exec: working directory {cwd:?} does not exist or is not a directory"),
        ));
    }
    let identity = match exec.user.as_deref() {
        Some(spec) => Some(user::resolve(spec).map_err(|e| failure(126, format!("exec: {e}")))?),
        None => None,
    };
    let mut command = Command::new(program);
    command.args(&exec.argv[1..]).env_clear().current_dir(cwd);
    command.envs(DEFAULT_ENV);
    if let Some(id) = &identity {
        command.env("HOME", &id.home);
        if let Some(name) = &id.name {
            command.env("USER", name).env("LOGNAME", name);
        }
    }
    if exec.tty.is_some() {
        command.env("TERM", DEFAULT_TERM);
    }
    command.envs(&exec.env);
    unblock_signals_in_child(&mut command);
    if let Some(id) = &identity {
        become_user(&mut command, id);
    }
    let start = |err: io::Error| failure(126, format!("exec: cannot set up {program}: {err}"));
    let result = match exec.tty {
        Some(size) => {
            spawn_on_pty(command, size, exec.stdin, identity.as_ref(), table).map_err(start)?
        }
        None => spawn_with_pipes(command, exec.stdin, None, table).map_err(start)?,
    };
    result.map_err(|err| describe_spawn_error(program, &err))
}

fn describe_spawn_error(program: &str, err: &io::Error) -> SpawnFailure {
    match err.kind() {
        io::ErrorKind::NotFound => {
            failure(127, format!("exec: no such file or directory: {program}"))
        }
        io::ErrorKind::PermissionDenied => {
            failure(126, format!("exec: permission denied: {program}"))
        }
        _ => failure(126, format!("exec: cannot run {program}: {err}")),
    }
}

/// Outer error: setting up failed; inner error: the spawn itself failed.
type SpawnResult = io::Result<io::Result<Spawned>>;

/// Stderr goes to `log` when given, else to a pipe for the host.
fn spawn_with_pipes(
    mut command: Command,
    stdin: bool,
    log: Option<File>,
    table: &ExecTable,
) -> SpawnResult {
    command
        .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(log.map_or_else(Stdio::piped, Stdio::from))
        // Its own process group, so a signal or a session reset reaches its children too.
        .process_group(0);
    let spawned = table.spawn_registered(|| {
        let mut child = command.spawn()?;
        let pid = pid_of(&child);
        Ok((
            pid,
            (child.stdin.take(), child.stdout.take(), child.stderr.take()),
        ))
    });
    drop(command);
    Ok(spawned.and_then(|(entry, done, (stdin, stdout, stderr))| {
        let missing = || io::Error::other("the child's stdout pipe is missing");
        Ok(Spawned {
            entry,
            done,
            stdin: stdin.map(|s| File::from(OwnedFd::from(s))),
            stdout: File::from(OwnedFd::from(stdout.ok_or_else(missing)?)),
            stderr: stderr.map(|s| File::from(OwnedFd::from(s))),
            pty: None,
        })
    }))
}

/// Starts `command` with pipes for stdin and stdout and `log` as its stderr, in its own
/// process group, registered in `table`: a process an exec adopts later (a pre-started
/// server, `init::prestart`), whose stderr is its log rather than the host's.
pub fn spawn_piped(mut command: Command, log: File, table: &ExecTable) -> io::Result<Spawned> {
    unblock_signals_in_child(&mut command);
    spawn_with_pipes(command, true, Some(log), table).and_then(|spawned| spawned)
}

fn spawn_on_pty(
    mut command: Command,
    size: TtySize,
    stdin: bool,
    identity: Option<&Identity>,
    table: &ExecTable,
) -> SpawnResult {
    let winsize = nix::pty::Winsize {
        ws_row: size.rows,
        ws_col: size.cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = nix::pty::openpty(&winsize, None)?;
    set_cloexec(&pty.master)?;
    set_cloexec(&pty.slave)?;
    // The terminal belongs to whoever runs on it (as login does), so programs that reopen
    // it (`tty`, `ssh`, `sudo`) can.
    if let Some(id) = identity {
        nix::unistd::fchown(
            pty.slave.as_raw_fd(),
            Some(nix::unistd::Uid::from_raw(id.uid)),
            None,
        )?;
    }
    command
        .stdin(Stdio::from(pty.slave.try_clone()?))
        .stdout(Stdio::from(pty.slave.try_clone()?))
        .stderr(Stdio::from(pty.slave));
    // SAFETY: the closure runs in the child between fork and exec and only makes two
    // async-signal-safe syscalls on fd 0, which std has already pointed at the terminal.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() == -1 || libc::ioctl(0, libc::TIOCSCTTY, 0) == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let spawned = table.spawn_registered(|| {
        let child = command.spawn()?;
        Ok((pid_of(&child), ()))
    });
    // Dropping the command closes the agent's copies of the terminal's slave side, so reads
    // on the master end (EIO) once the exec's session is gone.
    drop(command);
    let master = File::from(pty.master);
    let stdout = master.try_clone()?;
    let stdin = if stdin {
        Some(master.try_clone()?)
    } else {
        None
    };
    Ok(spawned.map(|(entry, done, ())| Spawned {
        entry,
        done,
        stdin,
        stdout,
        stderr: None,
        pty: Some(master),
    }))
}

/// The agent blocks SIGCHLD, SIGTERM and SIGINT in all its threads (see `signals`), and
/// std's spawn does not reset the mask on every path: without this a guest program could not
/// be stopped with SIGTERM or Ctrl-C.
fn unblock_signals_in_child(command: &mut Command) {
    // SAFETY: the closure runs in the child between fork and exec and makes only
    // async-signal-safe calls on a local sigset.
    unsafe {
        command.pre_exec(|| {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            if libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()) == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Drop root for `id` in the child: supplementary groups, then the group, then the user
/// (the order that keeps the right to make each call). Done in one `pre_exec` rather than
/// with std's `uid`/`gid`, which would clear the supplementary groups.
fn become_user(command: &mut Command, id: &Identity) {
    let (uid, gid) = (id.uid, id.gid);
    let groups: Vec<libc::gid_t> = id.groups.clone();
    // SAFETY: the closure runs in the child between fork and exec and makes only
    // async-signal-safe syscalls on memory captured before the fork.
    unsafe {
        command.pre_exec(move || {
            if libc::setgroups(groups.len(), groups.as_ptr()) == -1
                || libc::setgid(gid) == -1
                || libc::setuid(uid) == -1
            {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

fn pid_of(child: &std::process::Child) -> i32 {
    // Linux pids fit in i32 (pid_max ≤ 2^22).
    i32::try_from(child.id()).unwrap_or(i32::MAX)
}

fn set_cloexec(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: F_SETFD on an fd we own has no memory effects.
    let ret = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
    crate::util::check(ret).map(drop)
}

/// Applies a new terminal size to the exec's terminal (the kernel sends SIGWINCH).
pub fn resize(pty: &File, size: TtySize) -> io::Result<()> {
    let winsize = libc::winsize {
        ws_row: size.rows,
        ws_col: size.cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize from the valid pointer we pass.
    let ret = unsafe { libc::ioctl(pty.as_raw_fd(), libc::TIOCSWINSZ, &winsize) };
    crate::util::check(ret).map(drop)
}
