//! banger-agent: the guest side of banger.
//!
//! As PID 1 of the minimal image it first does init's work ([`init`]), then serves the host
//! over one transport ([`transport`]) with the protocol of `banger-agent-proto`: execs with
//! streamed stdio ([`exec`]), file copies ([`files`]), clock setting and power-off.
//! Under another init it only serves. Plain threads, no async runtime: it must start fast.

pub mod cli;
pub mod clock;
pub mod console;
pub mod exec;
pub mod files;
pub mod init;
pub mod power;
pub mod reidentify;
pub mod session;
pub mod signals;
pub mod tools;
pub mod transport;
pub mod util;
pub mod writer;

use std::sync::Arc;

use banger_agent_proto::BootTimings;

use crate::cli::{Command, KernelCmdline, TransportSpec};
use crate::session::Agent;
use crate::writer::FrameWriter;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Runs the agent with the arguments after the program name; returns the exit code (never
/// returns as PID 1).
pub fn run(args: &[String]) -> i32 {
    let agent_start_us = clock::boottime_us();
    let pid1 = std::process::id() == 1;
    // Exec'd by the host as one of its tools (see `tools`): only that, nothing of an agent.
    if !pid1 && let Some(code) = tools::dispatch(args) {
        return code;
    }
    // Before any thread exists, so every thread inherits the mask.
    if let Err(err) = signals::block() {
        log!("blocking signals failed: {err}");
    }
    if pid1 {
        std::panic::set_hook(Box::new(|info| {
            log!("fatal: {info}");
            power::emergency_poweroff();
        }));
        init::early();
    }
    let (transport, simulated_root) = match cli::parse_args(args) {
        Ok(Command::Serve {
            transport,
            simulated_root,
        }) => (transport, simulated_root),
        // PID 1 must never exit; it has no one to print help to anyway.
        Ok(_) if pid1 => (None, None),
        Ok(Command::Version) => {
            println!("banger-agent {VERSION}");
            return 0;
        }
        Ok(Command::Help) => {
            print!("{}", cli::USAGE);
            return 0;
        }
        Err(message) if pid1 => {
            log!("{message}; ignoring the arguments");
            (None, None)
        }
        Err(message) => {
            eprintln!("banger-agent: {message}");
            return 2;
        }
    };
    let cmdline = KernelCmdline::read();
    let report = if pid1 {
        init::setup(&cmdline)
    } else {
        init::setup_as_service(&cmdline)
    };
    let spec = transport
        .or_else(|| {
            let value = cmdline.get("banger.agent")?;
            value
                .parse::<TransportSpec>()
                .map_err(|err| log!("kernel command line banger.agent: {err}; using auto"))
                .ok()
        })
        .unwrap_or(TransportSpec::Auto);
    if let Err(err) = signals::start(pid1) {
        return fatal(pid1, &format!("cannot start the signal thread: {err}"));
    }
    let kernel_release = clock::kernel_release();
    // `banger.vm=` is on the kernel command line of banger guests only.
    let systemd_unit = !pid1 && cmdline.get("banger.vm").is_some() && power::under_systemd();
    let mut ready_us = None;
    loop {
        let mut listener = match transport::open(&spec) {
            Ok(listener) => listener,
            Err(err) => return fatal(pid1, &format!("cannot open transport {spec}: {err}")),
        };
        let agent = Agent {
            writer: Arc::new(FrameWriter::new()),
            pid1,
            systemd_unit,
            kernel_release: kernel_release.clone(),
            timings: BootTimings {
                agent_start_us,
                modules_loaded_us: report.modules_loaded_us,
                disk_mounted_us: report.disk_mounted_us,
                ready_us: *ready_us.get_or_insert_with(clock::boottime_us),
                now_us: 0,
            },
            share_errors: report.share_errors.clone(),
            // A guest's PID 1 is never a harness's simulated guest.
            simulated_root: simulated_root.clone().filter(|_| !pid1),
        };
        log!("serving on {}", listener.describe());
        let err = session::serve(listener.as_mut(), &agent);
        // A transport that keeps failing (a vsock device reset, a vanished port) is opened
        // afresh rather than given up on: the guest is useless without its agent.
        log!(
            "serving on {} failed: {err}; opening the transport again",
            listener.describe()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Reports a fatal error; as PID 1 powers off instead of returning (init must not exit).
fn fatal(pid1: bool, message: &str) -> i32 {
    log!("fatal: {message}");
    if pid1 {
        power::emergency_poweroff();
    }
    1
}
