//! The owner daemon: one per owner user. It owns the state store and every VM's
//! lifecycle, and answers the CLI over HTTP/JSON on a `0600` Unix socket.
//!
//! VMM processes are not its children: they keep running when the daemon stops,
//! and a new daemon finds them again (see [`vms::reconcile`]).

/// A point where lifecycle tests can cut an operation short (see `faults.rs`); nothing at
/// all outside tests.
macro_rules! fault_point {
    ($daemon:expr, $point:ident) => {
        #[cfg(test)]
        $daemon.faults.hit($crate::faults::FaultPoint::$point).await;
    };
}

mod disks;
mod error;
#[cfg(test)]
mod faults;
mod http;
mod images;
mod logfile;
pub mod net;
mod prune;
mod server;
mod shares;
mod snapshots;
mod state;
#[cfg(test)]
mod testing;
mod trash;
pub mod vms;
pub(crate) mod warm;

use anyhow::Context;
use banger_paths::Layout;

pub use error::{DaemonError, ErrorKind};
pub use server::AlreadyRunning;
pub use state::Daemon;

/// Exit status of `banger daemon run` when another daemon already runs
/// (`EX_TEMPFAIL`): the CLI that spawned it keeps waiting for the other one.
pub const EXIT_ALREADY_RUNNING: i32 = 75;

/// The API's OpenAPI document as served at `/v1/openapi.json` and checked in as
/// `docs/openapi.json`.
pub fn openapi_json() -> String {
    http::openapi::to_json()
}

/// Run the daemon in the foreground until it is asked to stop. `build` identifies the
/// sources it was built from (reported by `/v1/health`, compared by the CLI).
pub fn run(layout: Layout, build: &'static str) -> anyhow::Result<()> {
    let config = banger_config::load(&layout.config_file())?;
    init_logging(&layout, config.logs_resolved().daemon_max_bytes.value);
    state::set_build_id(build);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        server::raise_fd_limit();
        banger_system::fsperm::create_private_dir(&layout.state_dir)?;
        let mut bound = server::bind(
            &layout.runtime_dir,
            &layout.daemon_socket(),
            &layout.daemon_pid_file(),
        )?;
        let daemon = Daemon::open(layout, config)?;
        tracing::info!(
            pid = std::process::id(),
            build,
            socket = %daemon.layout.daemon_socket().display(),
            driver = %daemon.selection_summary(),
            "banger daemon started"
        );
        vms::reconcile::reconcile(&daemon).await;
        // A daemon that died left standbys nobody will take; the pool is made afresh.
        warm::standby::drain(&daemon, false).await;
        net::release::sweep(&daemon).await;
        vms::cgroup::sweep(&daemon);
        // Under systemd (`Type=notify`): the socket listens and the store agrees with the
        // host, so clients may come.
        if let Err(e) = banger_system::notify::notify_ready() {
            tracing::warn!("cannot tell systemd the daemon is ready: {e}");
        }
        warm::standby::refill_all(&daemon);
        let served = server::serve(daemon.clone(), &mut bound, server::Limits::default()).await;
        // User VMs keep running; standbys are the daemon's own and go with it.
        warm::standby::drain(&daemon, true).await;
        vms::cgroup::retire(&daemon);
        daemon.trash.settle().await;
        served
    })
}

fn init_logging(layout: &Layout, max_bytes: u64) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BANGER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let log = logfile::DaemonLog::for_stderr(&layout.daemon_log(), max_bytes);
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(move || log.writer())
        .with_ansi(false)
        .try_init();
}
