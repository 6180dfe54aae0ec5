//! Helpers for the tests that treat the guest (or a local process) as an attacker: hostile
//! guest programs, configuration, and the daemon's memory and log as the host sees them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::{Env, workspace_root};

/// Build (if needed) the static guest program `name` of `crates/guest-tools` and return its
/// path. Built like the agent: static, for the guest, whose image has no shared libraries.
pub fn guest_tool(name: &str) -> anyhow::Result<PathBuf> {
    let root = workspace_root();
    let target = "x86_64-unknown-linux-gnu";
    let out = Command::new(env!("CARGO"))
        .current_dir(&root)
        .args([
            "build",
            "--profile",
            "agent",
            "--target",
            target,
            "-p",
            "banger-guest-tools",
            "--bin",
            name,
        ])
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .stdin(Stdio::null())
        .output()
        .context("running cargo to build the guest tools")?;
    if !out.status.success() {
        bail!(
            "building guest tool {name} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let path = root.join("target").join(target).join("agent").join(name);
    if !path.is_file() {
        bail!("cargo built {name}, but {} is missing", path.display());
    }
    Ok(path)
}

impl Env {
    /// Copy `local` to `guest_path` in VM `name`, executable.
    pub fn upload(&self, name: &str, local: &Path, guest_path: &str) -> anyhow::Result<()> {
        let bytes = std::fs::read(local)?;
        let script = format!("cat > {guest_path} && chmod 0755 {guest_path}");
        let out = self.run_with_stdin(
            ["vm", "exec", "-i", name, "--", "sh", "-c", &script],
            &bytes,
        );
        if !out.status.success() {
            bail!(
                "uploading {} to VM {name} failed: {}",
                local.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// The daemon's memory: `(VmRSS, VmHWM)` in KiB (current and peak resident size).
    pub fn daemon_memory_kib(&self) -> anyhow::Result<(u64, u64)> {
        let pid = self.daemon_pid().context("no daemon runs")?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let field = |name: &str| -> anyhow::Result<u64> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .with_context(|| format!("no {name} in /proc/{pid}/status"))
        };
        Ok((field("VmRSS:")?, field("VmHWM:")?))
    }

    /// Bytes in `daemon.log` and `daemon.log.1`.
    pub fn daemon_log_bytes(&self) -> u64 {
        let log = self.state_dir().join("daemon.log");
        let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
        size(&log) + size(&log.with_extension("log.1"))
    }

    /// Retry `banger ARGS` until it succeeds or `patience` runs out; its stdout.
    pub fn ok_within(&self, args: &[&str], patience: Duration) -> String {
        let deadline = Instant::now() + patience;
        loop {
            let out = self.run(args);
            if out.status.success() {
                return String::from_utf8_lossy(&out.stdout).into_owned();
            }
            assert!(
                Instant::now() < deadline,
                "banger {args:?} kept failing for {patience:?}: {}\n{}",
                String::from_utf8_lossy(&out.stderr),
                self.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// Connections to a Unix socket held open (and silent) by helper processes, so that more
/// can be held than one process's open-file limit allows. Dropping it closes them all.
pub struct HeldConnections {
    children: Vec<libc::pid_t>,
}

impl HeldConnections {
    /// Open `count` connections to `socket`, `per_process` in each helper. Returns once all
    /// are connected.
    pub fn open(
        socket: &Path,
        count: usize,
        per_process: usize,
    ) -> anyhow::Result<HeldConnections> {
        use std::os::unix::ffi::OsStrExt;
        let path = std::ffi::CString::new(socket.as_os_str().as_bytes())?;
        if path.as_bytes_with_nul().len() > 108 {
            bail!("socket path {} is too long", socket.display());
        }
        let mut held = HeldConnections {
            children: Vec::new(),
        };
        let mut left = count;
        while left > 0 {
            let n = left.min(per_process);
            left -= n;
            let mut fds = [0i32; 2];
            // SAFETY: pipe writes two fds into the array.
            if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
                bail!("pipe: {}", std::io::Error::last_os_error());
            }
            // SAFETY: the child makes only async-signal-safe system calls on memory prepared
            // before the fork (the parent is multi-threaded), and never returns.
            let pid = unsafe { libc::fork() };
            if pid < 0 {
                bail!("fork: {}", std::io::Error::last_os_error());
            }
            if pid == 0 {
                // SAFETY: (child) plain system calls; `_exit` on any failure.
                unsafe { hold_in_child(&path, n, fds[1]) }
            }
            held.children.push(pid);
            // SAFETY: closing our copy of the write end; the read end is ours.
            unsafe { libc::close(fds[1]) };
            let mut ok = [0u8; 1];
            // SAFETY: reads one byte into `ok` from the pipe we own.
            let got = unsafe { libc::read(fds[0], ok.as_mut_ptr().cast(), 1) };
            // SAFETY: closing the read end we own.
            unsafe { libc::close(fds[0]) };
            if got != 1 {
                bail!("a helper could not open its {n} connections");
            }
        }
        Ok(held)
    }
}

/// (In a forked child.) Connect `n` times to `path`, report on `done`, then wait forever.
///
/// # Safety
/// Only to be called in a freshly forked child; never returns.
unsafe fn hold_in_child(path: &std::ffi::CStr, n: usize, done: i32) -> ! {
    // SAFETY: zeroed sockaddr_un is valid; the path fits (checked by the parent).
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (i, b) in path.to_bytes_with_nul().iter().enumerate() {
        addr.sun_path[i] = *b as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    for _ in 0..n {
        // SAFETY: socket/connect with a valid address struct.
        unsafe {
            let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
            if fd < 0 || libc::connect(fd, (&raw const addr).cast(), len) != 0 {
                libc::_exit(2);
            }
        }
    }
    let one = [1u8];
    // SAFETY: writes one byte to the pipe, then sleeps until killed.
    unsafe {
        libc::write(done, one.as_ptr().cast(), 1);
        loop {
            libc::pause();
        }
    }
}

impl Drop for HeldConnections {
    fn drop(&mut self) {
        for pid in &self.children {
            // SAFETY: signalling and reaping the children this value forked.
            unsafe {
                libc::kill(*pid, libc::SIGKILL);
                libc::waitpid(*pid, std::ptr::null_mut(), 0);
            }
        }
    }
}
