//! Running a program with a deadline: a hang is a failure that says what hung and what it
//! had printed, never a test that runs until CI's own timeout.
//!
//! The program runs in a process group of its own, and its output counts as finished only
//! when every holder of its pipes closed them: a helper it started (ssh's ProxyCommand)
//! that outlives it keeps the output open, and that is a hang too. On the deadline the whole
//! group is killed.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Run `cmd` (stdin from /dev/null unless the caller set it) to completion within `limit`;
/// panics, naming `what`, if it or anything holding its output is still running then.
pub fn output_within(cmd: &mut Command, limit: Duration, what: &str) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let deadline = Instant::now() + limit;
    let (tx, rx) = mpsc::channel();
    for (index, pipe) in [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .enumerate()
    {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut data = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut data);
            }
            let _ = tx.send((index, data));
        });
    }
    drop(tx);
    let mut streams = [None, None];
    let mut exited = false;
    while !exited || streams.iter().any(Option::is_none) {
        if let Ok((index, data)) = rx.recv_timeout(Duration::from_millis(50)) {
            streams[index] = Some(data);
        }
        if !exited {
            exited = child.try_wait().is_ok_and(|status| status.is_some());
        }
        if Instant::now() > deadline {
            let pgid = child.id() as libc::pid_t;
            // SAFETY: kill(2) on the process group this function created for the child.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
            let _ = child.wait();
            let mut printed = String::new();
            while let Ok((index, data)) = rx.recv_timeout(Duration::from_secs(5)) {
                let name = ["stdout", "stderr"][index];
                printed.push_str(&format!("\n{name}: {}", String::from_utf8_lossy(&data)));
            }
            let who = if exited {
                "a process it started (holding its output)"
            } else {
                "it"
            };
            panic!("{what}: {who} still ran after {limit:?}; killed{printed}");
        }
    }
    let [stdout, stderr] = streams.map(Option::unwrap_or_default);
    Output {
        status: child
            .wait()
            .expect("the exit status of a child that exited"),
        stdout,
        stderr,
    }
}
