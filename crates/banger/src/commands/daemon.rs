//! `banger daemon [run|stop|status]`

use banger_paths::Layout;

use crate::cli::{DaemonAction, DaemonArgs};
use crate::connect;
use crate::outln;
use crate::output::print_json;

pub fn run(layout: Layout, args: DaemonArgs) -> anyhow::Result<i32> {
    match args.action.unwrap_or(DaemonAction::Run) {
        DaemonAction::Run => match banger_daemon::run(layout, crate::BUILD_ID) {
            Ok(()) => Ok(0),
            Err(e) if e.is::<banger_daemon::AlreadyRunning>() => {
                crate::errln!("{e}");
                Ok(banger_daemon::EXIT_ALREADY_RUNNING)
            }
            Err(e) => Err(e),
        },
        DaemonAction::Stop => super::block_on(stop(layout)),
        DaemonAction::Status { json } => super::block_on(status(layout, json)),
    }
}

async fn stop(layout: Layout) -> anyhow::Result<i32> {
    let client = connect::existing(&layout);
    match client.shutdown_daemon().await {
        Ok(()) => {}
        Err(e) if e.is_unreachable() => {
            outln!("no banger daemon is running")?;
            return Ok(0);
        }
        Err(e) => return Err(e.into()),
    }
    // Wait until the socket stops answering so a following command starts afresh.
    for _ in 0..200 {
        if client.health().await.is_err() {
            outln!("banger daemon stopped; running VMs keep running")?;
            return Ok(0);
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    anyhow::bail!("the banger daemon did not stop within 5 s")
}

async fn status(layout: Layout, json: bool) -> anyhow::Result<i32> {
    match connect::existing(&layout).health().await {
        Ok(h) if json => print_json(&h).map(|_| 0),
        Ok(h) => {
            outln!(
                "running: pid {}, version {} (build {}), mode {}",
                h.pid,
                h.version,
                h.build,
                h.mode
            )?;
            outln!("state:   {}", h.state_dir)?;
            outln!("driver:  {} ({})", h.driver, h.driver_reason)?;
            Ok(0)
        }
        Err(e) if e.is_unreachable() => {
            if json {
                print_json(&serde_json::json!({ "running": false }))?;
            } else {
                outln!("not running (socket {})", layout.daemon_socket().display())?;
            }
            Ok(3)
        }
        Err(e) => Err(e.into()),
    }
}
