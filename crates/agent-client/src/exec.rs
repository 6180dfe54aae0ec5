//! Exec sessions: a program running in the guest, its stdin, its events.

use std::fmt;

use std::sync::Arc;

use banger_agent_proto::{Credit, MAX_DATA_CHUNK, Message, OUTPUT_WINDOW, Signal, TtySize};
use bytes::Bytes;

use crate::ClientError;
use crate::client::{AgentClient, MAX_GUEST_MESSAGE};
use crate::conn::{Delivery, Inbox, InputCredit, RouteGuard};

/// Output is granted back to the guest in batches of at least this much (a quarter of the
/// window keeps three quarters in flight: the guest never waits on a busy host).
const GRANT_BATCH: u64 = OUTPUT_WINDOW / 4;

/// What to run: the protocol's own [`Exec`] message (the guest starts from a default
/// environment — `PATH`, `HOME=/root`, `LANG=C.UTF-8`, and `TERM` on a terminal — and `env` is added on
/// top), built with its builder methods and sent as is.
pub use banger_agent_proto::Exec as ExecRequest;

/// How an exec ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitStatus {
    /// Exit code, when the program exited. 127: the program was not found; 126: it could not
    /// be started (both come with an [`ExecEvent::Error`] saying why).
    pub code: Option<i32>,
    /// The signal that killed it, when one did.
    pub signal: Option<i32>,
}

impl ExitStatus {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.code, self.signal) {
            (Some(code), _) => write!(f, "exit code {code}"),
            (None, Some(signal)) => write!(f, "killed by signal {signal}"),
            (None, None) => write!(f, "unknown exit status"),
        }
    }
}

/// Something that happened to an exec, in the order the agent reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecEvent {
    /// The process runs with this pid (in the guest).
    Started {
        pid: u32,
    },
    Stdout(Bytes),
    Stderr(Bytes),
    /// An error for this exec (e.g. the program was not found), or the connection closing.
    Error(String),
    /// The last event: the process ended and all its output was delivered.
    Exited(ExitStatus),
}

/// Everything an exec produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Error events the agent sent (e.g. "exec: no such file or directory: foo").
    pub errors: Vec<String>,
}

/// Signals and resizes an exec; cheap to clone and usable from other tasks.
#[derive(Clone)]
pub struct ExecControl {
    client: AgentClient,
    stream: u32,
}

impl ExecControl {
    /// Sends signal `signo` to the exec's process group.
    pub async fn signal(&self, signo: i32) -> Result<(), ClientError> {
        let message = Message::Signal(Signal { signo });
        self.client.send(self.stream, &message).await
    }

    /// Resizes the exec's terminal (only for execs started with a tty).
    pub async fn resize(&self, rows: u16, cols: u16) -> Result<(), ClientError> {
        let message = Message::Resize(TtySize { rows, cols });
        self.client.send(self.stream, &message).await
    }
}

/// The exec's stdin. Dropping it without [`ExecStdin::close`] closes stdin too.
pub struct ExecStdin {
    client: AgentClient,
    stream: u32,
    closed: bool,
    /// Version 2: what the guest still accepts; `None` without flow control.
    credit: Option<Arc<InputCredit>>,
}

impl ExecStdin {
    /// Sends `data` to the program's stdin, in chunks; waits while the guest has granted no
    /// stdin credit (version 2) or the connection's write queue is full.
    pub async fn write(&mut self, data: &[u8]) -> Result<(), ClientError> {
        let mut rest = data;
        while !rest.is_empty() {
            let want = rest.len().min(MAX_DATA_CHUNK);
            let n = match &self.credit {
                Some(credit) => {
                    let granted = credit.take(want as u64).await;
                    usize::try_from(granted).unwrap_or(want).min(want)
                }
                None => want,
            };
            let (chunk, tail) = rest.split_at(n);
            self.client
                .send(self.stream, &Message::Stdin(chunk.to_vec()))
                .await?;
            rest = tail;
        }
        Ok(())
    }

    /// Closes stdin: the program reads end-of-file (on a terminal: the EOF character).
    pub async fn close(mut self) -> Result<(), ClientError> {
        self.closed = true;
        self.client.send(self.stream, &Message::StdinClose).await
    }
}

impl Drop for ExecStdin {
    fn drop(&mut self) {
        if !self.closed {
            self.client.send_detached(self.stream, &Message::StdinClose);
        }
    }
}

/// A running exec. Events arrive through [`ExecSession::next_event`]; dropping the session
/// stops listening but does not stop the program (use [`ExecSession::signal`]).
pub struct ExecSession {
    events: Inbox,
    control: ExecControl,
    stdin: Option<ExecStdin>,
    // Declared after `events`: the route goes away only once nobody can read it.
    route: RouteGuard,
    finished: bool,
    connection_lost: bool,
    /// Version 2: output taken but not yet granted back to the guest.
    ungranted: Option<u64>,
}

impl ExecSession {
    pub(crate) fn new(
        client: AgentClient,
        route: RouteGuard,
        events: Inbox,
        wants_stdin: bool,
        input_credit: Option<Arc<InputCredit>>,
    ) -> ExecSession {
        let stream = route.stream;
        let flow_controlled = input_credit.is_some();
        let stdin = wants_stdin.then(|| ExecStdin {
            client: client.clone(),
            stream,
            closed: false,
            credit: input_credit,
        });
        ExecSession {
            events,
            control: ExecControl { client, stream },
            stdin,
            route,
            finished: false,
            connection_lost: false,
            ungranted: flow_controlled.then_some(0),
        }
    }

    /// Version 2: `n` bytes of output were taken; grant them back in batches. Output is
    /// granted only as it is taken, so the guest can never have more in flight than the
    /// window: a slow reader stalls the guest's writer.
    async fn taken(&mut self, n: usize) {
        let Some(ungranted) = self.ungranted.as_mut() else {
            return;
        };
        *ungranted += n as u64;
        if *ungranted >= GRANT_BATCH {
            let bytes = std::mem::take(ungranted);
            // A closed connection needs no credit; the next event says it closed.
            let _ = self
                .control
                .client
                .send(self.route.stream, &Message::Credit(Credit { bytes }))
                .await;
        }
    }

    /// The stream id this exec runs on.
    pub fn stream_id(&self) -> u32 {
        self.route.stream
    }

    /// The exec's stdin, if it was started with `stdin: true` and not taken yet.
    pub fn take_stdin(&mut self) -> Option<ExecStdin> {
        self.stdin.take()
    }

    pub fn stdin_mut(&mut self) -> Option<&mut ExecStdin> {
        self.stdin.as_mut()
    }

    /// A handle to signal or resize the exec from elsewhere.
    pub fn control(&self) -> ExecControl {
        self.control.clone()
    }

    pub async fn signal(&self, signo: i32) -> Result<(), ClientError> {
        self.control.signal(signo).await
    }

    pub async fn resize(&self, rows: u16, cols: u16) -> Result<(), ClientError> {
        self.control.resize(rows, cols).await
    }

    /// The next event; `None` after [`ExecEvent::Exited`], or after the
    /// [`ExecEvent::Error`] that reports a lost connection.
    pub async fn next_event(&mut self) -> Option<ExecEvent> {
        if self.finished {
            return None;
        }
        let message = match self.events.recv().await {
            Some(Delivery::Message { message, .. }) => message,
            Some(Delivery::Violation(why)) => {
                self.finished = true;
                self.connection_lost = true;
                // Nothing more is read for this exec: stop it too.
                let _ = self.control.signal(libc::SIGKILL).await;
                return Some(ExecEvent::Error(why));
            }
            None => {
                self.finished = true;
                self.connection_lost = true;
                return Some(ExecEvent::Error(
                    "the connection to the guest agent closed before the exec finished".into(),
                ));
            }
        };
        Some(match message {
            Message::Started(started) => ExecEvent::Started { pid: started.pid },
            Message::Stdout(data) => {
                self.taken(data.len()).await;
                ExecEvent::Stdout(Bytes::from(data))
            }
            Message::Stderr(data) => {
                self.taken(data.len()).await;
                ExecEvent::Stderr(Bytes::from(data))
            }
            Message::Error(err) => ExecEvent::Error(banger_system::text::sanitize(
                &err.message,
                MAX_GUEST_MESSAGE,
            )),
            Message::Exited(exited) => {
                self.finished = true;
                ExecEvent::Exited(ExitStatus {
                    code: exited.code,
                    signal: exited.signal,
                })
            }
            other => ExecEvent::Error(format!(
                "unexpected {:?} frame from the agent on exec stream {}",
                other.kind(),
                self.route.stream
            )),
        })
    }

    /// Closes stdin (if still held), then collects all output until the exec ends.
    pub async fn wait_with_output(mut self) -> Result<ExecOutput, ClientError> {
        if let Some(stdin) = self.stdin.take() {
            stdin.close().await?;
        }
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let mut errors = Vec::new();
        while let Some(event) = self.next_event().await {
            match event {
                ExecEvent::Started { .. } => {}
                ExecEvent::Stdout(data) => stdout.extend_from_slice(&data),
                ExecEvent::Stderr(data) => stderr.extend_from_slice(&data),
                ExecEvent::Error(_) if self.connection_lost => return Err(ClientError::Closed),
                ExecEvent::Error(message) => errors.push(message),
                ExecEvent::Exited(status) => {
                    return Ok(ExecOutput {
                        status,
                        stdout,
                        stderr,
                        errors,
                    });
                }
            }
        }
        Err(ClientError::Closed)
    }
}
