//! The simulated guest: instead of a kernel, a real `banger-agent` runs on the host in a
//! scratch directory, listening on a Unix socket; the hybrid-vsock muxer ([`vsock`]) bridges
//! `CONNECT <port>` to it. So a driver talking to the fake really reaches an agent, and
//! `exec` really runs commands (on the host).
//!
//! Lifecycle as a real microVM's: the console shows the "kernel" command line and then the
//! agent's log; when the agent exits (the guest powered off or rebooted) the fake exits, as
//! Firecracker does when its guest reboots with `reboot=k`; pausing stops every guest process;
//! `SendCtrlAltDel` reaches the agent as SIGINT, which is what the kernel makes of
//! Ctrl-Alt-Del for PID 1.

pub mod procs;
mod serial;
mod vsock;

pub use serial::Console;

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::vmm::{BootSource, FcLog, Vmm};
use serial::{Serial, SerialPort};

/// Environment variable naming the `banger-agent` binary the guest runs; default: the one
/// beside the fake's own executable.
pub const AGENT_ENV: &str = "FAKE_FIRECRACKER_AGENT";

/// Environment variable: how long the simulated kernel boots before the agent starts (ms).
pub const BOOT_DELAY_ENV: &str = "FAKE_FIRECRACKER_BOOT_MS";

/// The agent's default vsock port, used when the command line has no `banger.agent=vsock:P`
/// (the real agent's default).
const DEFAULT_AGENT_PORT: u32 = 1024;

/// What the guest is started with.
#[derive(Debug)]
pub struct GuestConfig {
    /// The kernel command line as the guest sees it (boot args plus what Firecracker adds).
    pub cmdline: String,
    pub console: Console,
    pub vsock: Option<UnixListener>,
    pub scratch_dir: PathBuf,
    pub boot_delay: Duration,
    /// Firecracker's log, where the serial reports the bytes it loses.
    pub log: FcLog,
}

impl GuestConfig {
    pub fn from_vmm(vmm: &Vmm, boot: &BootSource) -> GuestConfig {
        GuestConfig {
            cmdline: full_cmdline(vmm, boot),
            console: vmm
                .serial_out
                .clone()
                .map(Console::File)
                .unwrap_or(Console::Stdout),
            vsock: vmm.vsock.as_ref().and_then(|v| v.listener.try_clone().ok()),
            scratch_dir: vmm.guest_dir.clone(),
            boot_delay: std::env::var(BOOT_DELAY_ENV)
                .ok()
                .and_then(|v| v.parse().ok())
                .map(Duration::from_millis)
                .unwrap_or(Duration::from_millis(150)),
            log: vmm.log.try_clone(),
        }
    }
}

/// notes: "Default boot args when none are given (1.14.1): `reboot=k panic=1 nomodule
/// 8250.nr_uarts=0 i8042.noaux i8042.nomux i8042.dumbkbd swiotlb=noforce`"; "Firecracker
/// appends `root=/dev/vda rw|ro` (or PARTUUID) for the root drive, and the virtio-mmio device
/// list"; "Firecracker appends `pci=off root=/dev/vda rw virtio_mmio.device=…`".
fn full_cmdline(vmm: &Vmm, boot: &BootSource) -> String {
    let mut line = boot.boot_args.clone().unwrap_or_else(|| {
        "reboot=k panic=1 nomodule 8250.nr_uarts=0 i8042.noaux i8042.nomux i8042.dumbkbd \
         swiotlb=noforce"
            .to_owned()
    });
    line.push_str(" pci=off");
    if let Some(root) = vmm.drives.iter().find(|d| d.root) {
        let mode = if root.read_only { "ro" } else { "rw" };
        match &root.partuuid {
            Some(uuid) => line.push_str(&format!(" root=PARTUUID={uuid} {mode}")),
            None => line.push_str(&format!(" root=/dev/vda {mode}")),
        }
    }
    let devices = vmm.drives.len() + vmm.ifaces.len() + usize::from(vmm.vsock.is_some());
    for i in 0..devices {
        line.push_str(&format!(
            " virtio_mmio.device=4K@0x{:x}:{}",
            0xd000_0000u64 + 0x1000 * i as u64,
            5 + i
        ));
    }
    line
}

/// The `banger.agent=vsock:P` port the guest's agent listens on.
fn agent_port(cmdline: &str) -> u32 {
    cmdline
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("banger.agent=vsock:"))
        .filter_map(|p| p.parse().ok())
        .next_back()
        .unwrap_or(DEFAULT_AGENT_PORT)
}

/// State shared by the guest's threads.
#[derive(Debug)]
pub(crate) struct Shared {
    paused: Mutex<bool>,
    resumed: Condvar,
    /// The agent's pid once it runs.
    agent_pid: Mutex<Option<u32>>,
    pub(crate) agent_socket: PathBuf,
    pub(crate) agent_port: u32,
    /// When the guest's vsock driver comes up: before it, `CONNECT` gets no answer at all.
    pub(crate) vsock_up_at: Instant,
}

impl Shared {
    /// Block while the VM is paused.
    pub(crate) fn wait_running(&self) {
        let mut paused = self.paused.lock().unwrap_or_else(|p| p.into_inner());
        while *paused {
            paused = self.resumed.wait(paused).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn agent_tree(&self) -> Vec<u32> {
        match *self.agent_pid.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(pid) => procs::tree(pid),
            None => Vec::new(),
        }
    }
}

/// A running guest.
#[derive(Debug)]
pub struct Guest {
    shared: Arc<Shared>,
}

impl Guest {
    /// Boot: print the kernel's first lines, then (after the boot delay) start the agent.
    pub fn start(config: GuestConfig, instance_id: String) -> Result<Guest, String> {
        let agent_bin = agent_binary()?;
        if config.scratch_dir.exists() {
            let _ = std::fs::remove_dir_all(&config.scratch_dir);
        }
        std::fs::create_dir_all(&config.scratch_dir).map_err(|e| {
            format!(
                "cannot create the guest directory {}: {e}",
                config.scratch_dir.display()
            )
        })?;
        let console = Serial::open(&config.console, config.log)?;
        serial::relay_tty(&config.scratch_dir, console.clone())?;
        let shared = Arc::new(Shared {
            paused: Mutex::new(false),
            resumed: Condvar::new(),
            agent_pid: Mutex::new(None),
            agent_socket: config.scratch_dir.join("agent.sock"),
            agent_port: agent_port(&config.cmdline),
            vsock_up_at: Instant::now() + config.boot_delay,
        });
        {
            let mut out = console.lock().unwrap_or_else(|p| p.into_inner());
            out.line(&format!(
                "[    0.000000] Linux version fake-firecracker guest (banger-agent on the host, \
                 instance {instance_id})"
            ));
            out.line(&format!("[    0.000000] Command line: {}", config.cmdline));
        }
        if let Some(listener) = config.vsock {
            vsock::serve(listener, shared.clone());
        }
        let thread_shared = shared.clone();
        let scratch = config.scratch_dir.clone();
        std::thread::Builder::new()
            .name("guest".into())
            .spawn(move || {
                run_guest(
                    &agent_bin,
                    &scratch,
                    config.boot_delay,
                    &thread_shared,
                    console,
                )
            })
            .map_err(|e| format!("cannot start the guest thread: {e}"))?;
        Ok(Guest { shared })
    }

    /// notes: "Pause/resume: `PATCH /vm {"state":"Paused"|"Resumed"}`". Nothing in the guest
    /// runs while it is paused.
    pub fn pause(&self) {
        *self.shared.paused.lock().unwrap_or_else(|p| p.into_inner()) = true;
        procs::signal_all(&self.shared.agent_tree(), libc::SIGSTOP);
    }

    pub fn resume(&self) {
        procs::signal_all(&self.shared.agent_tree(), libc::SIGCONT);
        *self.shared.paused.lock().unwrap_or_else(|p| p.into_inner()) = false;
        self.shared.resumed.notify_all();
    }

    /// The kernel turns Ctrl-Alt-Del into SIGINT for PID 1 (the agent powers off on it).
    pub fn ctrl_alt_del(&self) {
        if let Some(pid) = *self
            .shared
            .agent_pid
            .lock()
            .unwrap_or_else(|p| p.into_inner())
        {
            procs::signal_all(&[pid], libc::SIGINT);
        }
    }

    /// Destroy the guest at once: every guest process is killed (stopped ones too).
    pub fn destroy(&self) {
        let tree = self.shared.agent_tree();
        procs::signal_all(&tree, libc::SIGKILL);
        procs::signal_all(&tree, libc::SIGCONT);
    }
}

fn agent_binary() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os(AGENT_ENV) {
        return Ok(PathBuf::from(path));
    }
    // In a jail without /proc (the jailer's chroot) `current_exe` fails: argv[0] then,
    // which the jailer makes `./firecracker`.
    let beside = std::env::current_exe()
        .ok()
        .or_else(|| {
            let argv0 = PathBuf::from(std::env::args_os().next()?);
            // Absolute: the agent runs in another working directory.
            Some(std::env::current_dir().ok()?.join(argv0))
        })
        .and_then(|exe| exe.parent().map(|dir| dir.join("banger-agent")));
    match beside {
        Some(path) if path.is_file() => Ok(path),
        _ => Err(format!(
            "no banger-agent to run as the guest: set {AGENT_ENV} or put banger-agent beside \
             the fake-firecracker executable"
        )),
    }
}

/// The guest thread: it spawns the agent (so the agent's parent-death signal is tied to a
/// thread that lives as long as the agent), relays its log to the console, and ends the
/// process when the agent exits: the guest powered off.
fn run_guest(
    agent_bin: &Path,
    scratch: &Path,
    boot_delay: Duration,
    shared: &Arc<Shared>,
    console: SerialPort,
) {
    let mut command = Command::new(agent_bin);
    command
        .arg("--listen")
        .arg(format!("unix:{}", shared.agent_socket.display()))
        // A restored clone's Reidentify lands in the scratch directory (its `etc/hostname`,
        // `etc/machine-id`, `network`), never on the host running the fake.
        .arg("--simulated-guest")
        .arg(scratch)
        .current_dir(scratch)
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("HOME", scratch)
        // A pipe closed at once, not /dev/null: the jailer's chroot has no /dev/null.
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: prctl(PR_SET_PDEATHSIG) only sets a flag of the child; it is async-signal-safe
    // and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    // InstanceStart has answered; the "kernel" boots for a while before init runs.
    std::thread::sleep(boot_delay);
    shared.wait_running();
    let mut child = match command.spawn() {
        Ok(mut child) => {
            drop(child.stdin.take());
            child
        }
        Err(e) => {
            let mut out = console.lock().unwrap_or_else(|p| p.into_inner());
            out.line(&format!(
                "Kernel panic - not syncing: fake-firecracker: cannot run the guest agent {}: {e}",
                agent_bin.display()
            ));
            drop(out);
            crate::server::guest_exited(None);
            return;
        }
    };
    *shared.agent_pid.lock().unwrap_or_else(|p| p.into_inner()) = Some(child.id());

    let relays: Vec<_> = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|stream| {
        let console = console.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                console
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .line(&line);
            }
        })
    })
    .collect();
    let status = child.wait();
    for relay in relays {
        let _ = relay.join();
    }
    {
        console
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .line("reboot: Restarting system");
    }
    crate::server::guest_exited(status.ok().and_then(|s| s.code()));
}
