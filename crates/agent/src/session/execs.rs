//! A session's execs: starting one, feeding its stdin, signalling it.

use std::fs::File;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};

use banger_agent_proto::{Exec, Exited, Message, OUTPUT_WINDOW, Started};

use crate::exec::{self, OutputCredit, OutputSources, StdinMsg};
use crate::log;

use super::{Agent, Session};

pub(super) struct RunningExec {
    pub(super) pid: i32,
    pub(super) stdin: Option<Sender<StdinMsg>>,
    pub(super) pty: Option<File>,
    pub(super) finished: Arc<AtomicBool>,
    pub(super) credit: Arc<OutputCredit>,
}

impl Session {
    pub(super) fn running(&self, stream: u32) -> Result<Option<&RunningExec>, String> {
        match self.execs.get(&stream) {
            None => Err(format!("no exec on stream {stream}")),
            Some(running) if running.finished.load(Ordering::SeqCst) => Ok(None),
            Some(running) => Ok(Some(running)),
        }
    }

    pub(super) fn exec(&mut self, agent: &Agent, stream: u32, request: &Exec) {
        if self.running(stream).is_ok_and(|running| running.is_some()) {
            let message = format!("stream {stream} already runs an exec; use a new stream id");
            return self.reply(agent, stream, Message::error(message));
        }
        self.execs
            .retain(|_, running| !running.finished.load(Ordering::SeqCst));
        // A tunnel to a port with a pre-started server (sshd) adopts it: see
        // `init::prestart`. Only the plain `connect` tool qualifies, as the host sends it.
        let plain = request.stdin
            && request.tty.is_none()
            && request.user.is_none()
            && request.cwd.is_none()
            && request.env.is_empty();
        let adopted = plain
            .then(|| crate::init::prestart::take(&request.argv))
            .flatten();
        let spawned = match adopted.map_or_else(|| exec::spawn(request, exec::table()), Ok) {
            Ok(spawned) => spawned,
            Err(failure) => {
                self.reply(agent, stream, Message::error(failure.message));
                let exited = Exited {
                    code: Some(failure.code),
                    signal: None,
                };
                return self.reply(agent, stream, Message::Exited(exited));
            }
        };
        let pid = spawned.entry.pid;
        self.reply(
            agent,
            stream,
            Message::Started(Started {
                pid: u32::try_from(pid).unwrap_or(0),
            }),
        );
        let finished = Arc::new(AtomicBool::new(false));
        let v2 = self.version >= 2;
        let credit = match if v2 {
            OutputCredit::limited(OUTPUT_WINDOW)
        } else {
            OutputCredit::unlimited()
        } {
            Ok(credit) => credit,
            Err(err) => {
                let _ = exec::kill_group(pid, libc::SIGKILL);
                let message = format!("exec: cannot set up output flow control: {err}");
                self.reply(agent, stream, Message::error(message));
                let exited = Exited {
                    code: None,
                    signal: Some(libc::SIGKILL),
                };
                return self.reply(agent, stream, Message::Exited(exited));
            }
        };
        let stdin = spawned.stdin.and_then(|input| {
            let (tx, rx) = mpsc::channel();
            let tty = request.tty.is_some();
            match exec::start_stdin(input, rx, tty, self.route(agent, stream), v2) {
                Ok(()) => Some(tx),
                Err(err) => {
                    log!("exec on stream {stream}: cannot start its stdin thread: {err}");
                    None
                }
            }
        });
        let sources = OutputSources {
            stdout: spawned.stdout,
            stderr: spawned.stderr,
            done: spawned.done,
            entry: spawned.entry,
            finished: Arc::clone(&finished),
            credit: Arc::clone(&credit),
        };
        if let Err(err) = exec::start_output(self.route(agent, stream), sources) {
            // Without its output thread the exec can neither drain nor report: end it.
            let _ = exec::kill_group(pid, libc::SIGKILL);
            let message = format!("exec: cannot start the output thread: {err}");
            self.reply(agent, stream, Message::error(message));
            let exited = Exited {
                code: None,
                signal: Some(libc::SIGKILL),
            };
            self.reply(agent, stream, Message::Exited(exited));
            finished.store(true, Ordering::SeqCst);
        }
        self.execs.insert(
            stream,
            RunningExec {
                pid,
                stdin,
                pty: spawned.pty,
                finished,
                credit,
            },
        );
    }

    pub(super) fn stdin(&mut self, stream: u32, message: StdinMsg) -> Result<(), String> {
        if self.running(stream)?.is_none() {
            return Ok(());
        }
        let Some(running) = self.execs.get_mut(&stream) else {
            return Ok(());
        };
        let Some(tx) = &running.stdin else {
            return Err(format!(
                "the exec on stream {stream} was started without stdin (or its stdin is closed)"
            ));
        };
        let closing = matches!(message, StdinMsg::Close);
        // A send error means the stdin thread is gone (process dead): nothing to deliver.
        let _ = tx.send(message);
        if closing {
            running.stdin = None;
        }
        Ok(())
    }

    pub(super) fn signal(&self, stream: u32, signo: i32) -> Result<(), String> {
        let Some(running) = self.running(stream)? else {
            return Ok(());
        };
        match exec::kill_group(running.pid, signo) {
            Ok(()) => Ok(()),
            // Raced with its exit: the Exited frame is on its way.
            Err(err) if err.raw_os_error() == Some(libc::ESRCH) => Ok(()),
            Err(err) => Err(format!(
                "signal {signo} to the exec on stream {stream}: {err}"
            )),
        }
    }
}
