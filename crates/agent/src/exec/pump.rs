//! Moving an exec's bytes: one thread forwards its output to the host (within the output
//! credit the host grants, protocol version 2), one feeds its stdin (granting the host stdin
//! credit as it goes).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::thread;

use banger_agent_proto::{Credit, Exited, Kind, MAX_DATA_CHUNK, Message};

use super::credit::OutputCredit;
use super::table::ExecEntry;
use crate::writer::FrameWriter;

/// After the process has exited, output is still forwarded while it keeps coming; once the
/// pipes have been idle this long, `Exited` is sent even if a background child of the exec
/// still holds them open (otherwise `sh -c 'daemon &'` would never finish).
pub const EXIT_DRAIN_IDLE_MS: i32 = 200;

const THREAD_STACK: usize = 128 * 1024;

/// Where an exec's frames go.
#[derive(Clone)]
pub struct Route {
    pub writer: Arc<FrameWriter>,
    pub generation: u64,
    pub stream: u32,
}

/// What the output thread watches.
pub struct OutputSources {
    pub stdout: File,
    pub stderr: Option<File>,
    pub done: OwnedFd,
    pub entry: Arc<ExecEntry>,
    /// Set once `Exited` has been sent.
    pub finished: Arc<AtomicBool>,
    /// How much output the host will take (unlimited in protocol version 1).
    pub credit: Arc<OutputCredit>,
}

/// Starts the thread that forwards output and finally sends `Exited`.
pub fn start_output(route: Route, sources: OutputSources) -> io::Result<()> {
    thread::Builder::new()
        .name(format!("out-{}", route.stream))
        .stack_size(THREAD_STACK)
        .spawn(move || forward_output(&route, sources))
        .map(drop)
}

fn forward_output(route: &Route, sources: OutputSources) {
    let OutputSources {
        stdout,
        stderr,
        done,
        entry,
        finished,
        credit,
    } = sources;
    let mut open: Vec<(File, Kind)> = vec![(stdout, Kind::Stdout)];
    open.extend(stderr.map(|file| (file, Kind::Stderr)));
    let mut done = Some(done);
    let mut buf = vec![0u8; MAX_DATA_CHUNK];
    while !open.is_empty() || done.is_some() {
        // Without credit the pipes are not read: they fill, and the process blocks in write
        // until the host takes more output.
        let allowed = credit.available();
        let watched = if allowed > 0 { open.len() } else { 0 };
        let mut fds: Vec<libc::pollfd> = open[..watched]
            .iter()
            .map(|(file, _)| file.as_raw_fd())
            .chain(done.as_ref().map(AsRawFd::as_raw_fd))
            .chain(std::iter::once(credit.wake_fd()))
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // Idle pipes after the exit end the exec; pipes we are not reading are not idle.
        let timeout = if done.is_some() || allowed == 0 {
            -1
        } else {
            EXIT_DRAIN_IDLE_MS
        };
        // SAFETY: `fds` is a valid array of `fds.len()` pollfds for the duration of the call.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if ready == -1 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            break;
        }
        if ready == 0 {
            break; // Exited and idle: see EXIT_DRAIN_IDLE_MS.
        }
        if fds.last().is_some_and(|fd| fd.revents != 0) {
            credit.clear_wake();
        }
        if done.is_some() && fds[watched].revents != 0 {
            done = None;
        }
        // Backwards, so removing an entry keeps the indices of the ones still to visit.
        for i in (0..watched).rev() {
            if fds[i].revents == 0 {
                continue;
            }
            let allowed = credit.available();
            if allowed == 0 {
                break;
            }
            let want = usize::try_from(allowed)
                .unwrap_or(usize::MAX)
                .min(buf.len());
            let (file, kind) = &mut open[i];
            match file.read(&mut buf[..want]) {
                Ok(0) => {
                    open.remove(i);
                }
                Ok(n) => {
                    credit.take(n as u64);
                    // A send failure means the host is gone; the session reset kills the
                    // process and lifts the credit limit, so its output drains and it cannot
                    // block.
                    let _ =
                        route
                            .writer
                            .send_data(route.generation, *kind, route.stream, &buf[..n]);
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                // EIO on a terminal's master: every slave side is closed.
                Err(_) => {
                    open.remove(i);
                }
            }
        }
    }
    let status = entry.status().unwrap_or(Exited {
        code: None,
        signal: None,
    });
    let _ = route
        .writer
        .send(route.generation, route.stream, &Message::Exited(status));
    finished.store(true, Ordering::SeqCst);
}

/// What the session hands to an exec's stdin thread.
pub enum StdinMsg {
    Data(Vec<u8>),
    Close,
}

/// Starts the thread that writes stdin data to the process. It may block on a full pipe;
/// that must not block the connection, hence a thread and a queue. In protocol version 2 the
/// queue is bounded by the host's stdin window: each chunk written (or discarded) is granted
/// back to the host with `InputCredit` (`credit_to`).
pub fn start_stdin(
    input: File,
    queue: Receiver<StdinMsg>,
    tty: bool,
    credit_to: Route,
    v2: bool,
) -> io::Result<()> {
    thread::Builder::new()
        .name(format!("in-{}", credit_to.stream))
        .stack_size(THREAD_STACK)
        .spawn(move || feed_stdin(input, &queue, tty, &credit_to, v2))
        .map(drop)
}

fn feed_stdin(mut input: File, queue: &Receiver<StdinMsg>, tty: bool, route: &Route, v2: bool) {
    let mut broken = false;
    for message in queue {
        match message {
            // After a write error (the process closed stdin or died) data is discarded.
            StdinMsg::Data(data) => {
                if !broken && input.write_all(&data).is_err() {
                    broken = true;
                }
                if v2 {
                    let credit = Message::InputCredit(Credit {
                        bytes: data.len() as u64,
                    });
                    let _ = route.writer.send(route.generation, route.stream, &credit);
                }
            }
            StdinMsg::Close => {
                if tty && !broken {
                    // End of input on a terminal is the EOF character (^D), not a close.
                    let _ = input.write_all(&[0x04]);
                }
                break;
            }
        }
    }
}
