//! Serving one host: reading frames, dispatching them, resetting on `Hello` and on hang-up.

use std::collections::HashMap;
use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use banger_agent_proto::{
    BootTimings, Decoder, FEATURE_EXEC_USER, Hello, MAX_DATA_CHUNK, MIN_PROTO_VERSION, Message,
    PROTO_VERSION, Ready,
};

use crate::exec::{self, Route, StdinMsg};
use crate::files::{self, Upload};
use crate::transport::{Conn, Listener};
use crate::writer::FrameWriter;
use crate::{clock, log, power};

/// How long a session reset waits for the killed execs to be reaped. SIGKILL is quick; a
/// process stuck in the kernel (D state) must not hold the next session up for long.
mod execs;

use execs::RunningExec;

const RESET_WAIT: Duration = Duration::from_secs(2);

/// What every session needs to know about the agent.
pub struct Agent {
    pub writer: Arc<FrameWriter>,
    pub pid1: bool,
    /// A banger guest's agent run by systemd (`--init systemd` images): power-off is
    /// systemd's job, asked for with a signal. Never set outside a banger guest, so an
    /// agent a test runs on a host can never power that host off.
    pub systemd_unit: bool,
    pub kernel_release: String,
    /// Boot milestones; `now_us` is filled in per `Ready`.
    pub timings: BootTimings,
    /// Shared directories that could not be mounted at boot (`PATH: reason`), sent in
    /// every `Ready`.
    pub share_errors: Vec<String>,
    /// `--simulated-guest DIR`: a test harness's guest on a host; a restored clone's
    /// identity goes under DIR ([`crate::reidentify::apply_simulated`]).
    pub simulated_root: Option<std::path::PathBuf>,
}

/// Serves hosts one connection at a time, forever. A host that connects while another is
/// connected waits until the first one hangs up.
/// What this agent offers beyond the base protocol.
fn features(agent: &Agent) -> Vec<String> {
    let mut features = vec![FEATURE_EXEC_USER.to_owned()];
    if agent.pid1 || agent.systemd_unit || agent.simulated_root.is_some() {
        features.push(banger_agent_proto::FEATURE_REIDENTIFY.to_owned());
        features.push(banger_agent_proto::FEATURE_REIDENTIFY_NET.to_owned());
    }
    features
}

pub fn serve(listener: &mut dyn Listener, agent: &Agent) -> io::Error {
    let mut failures = 0u32;
    loop {
        match listener.accept() {
            Ok(conn) => {
                failures = 0;
                serve_connection(conn, agent);
            }
            Err(err) => {
                failures += 1;
                if failures >= 100 {
                    return err;
                }
                log!(
                    "accepting a host connection on {} failed: {err}",
                    listener.describe()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

fn serve_connection(conn: Conn, agent: &Agent) {
    let Conn {
        mut reader,
        writer,
        closer,
    } = conn;
    let mut session = Session {
        generation: agent.writer.attach(writer),
        greeted: false,
        version: MIN_PROTO_VERSION,
        execs: HashMap::new(),
        uploads: HashMap::new(),
    };
    let mut decoder = Decoder::new();
    let mut buf = vec![0u8; MAX_DATA_CHUNK];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => {
                log!("reading from the host failed: {err}; ending the session");
                break;
            }
        };
        decoder.push(&buf[..n]);
        while let Some(item) = decoder.next_message() {
            match item {
                Ok((stream, message)) => session.handle(agent, stream, message),
                Err(err) => {
                    let stream = err.stream().unwrap_or(banger_agent_proto::CONTROL_STREAM);
                    session.reply(agent, stream, Message::error(err.to_string()));
                }
            }
        }
    }
    // The host is gone: nothing of this session may reach the next host, and its processes
    // must not outlive it.
    agent.writer.new_generation();
    session.reset();
    if let Some(close) = closer {
        close();
    }
}

enum UploadState {
    Writing(Upload),
    /// Failed and already answered with an Error: swallow the rest of its frames.
    Failed,
}

struct Session {
    generation: u64,
    greeted: bool,
    /// The protocol version agreed in the last `Hello`.
    version: u32,
    execs: HashMap<u32, RunningExec>,
    uploads: HashMap<u32, UploadState>,
}

impl Session {
    fn reply(&self, agent: &Agent, stream: u32, message: Message) {
        if let Err(err) = agent.writer.send(self.generation, stream, &message) {
            log!("sending {:?} to the host failed: {err}", message.kind());
        }
    }

    fn route(&self, agent: &Agent, stream: u32) -> Route {
        Route {
            writer: Arc::clone(&agent.writer),
            generation: self.generation,
            stream,
        }
    }

    /// Kills the session's running execs (and waits for them to be reaped) and forgets its
    /// uploads.
    fn reset(&mut self) {
        let pids: Vec<i32> = self
            .execs
            .values()
            .filter(|exec| !exec.finished.load(Ordering::SeqCst))
            .map(|exec| exec.pid)
            .collect();
        for pid in &pids {
            let _ = exec::kill_group(*pid, libc::SIGKILL);
        }
        // Nobody will grant output credit any more: let the output threads drain and end.
        for running in self.execs.values() {
            running.credit.unlimit();
        }
        self.execs.clear();
        self.uploads.clear();
        if !exec::table().wait_reaped(&pids, RESET_WAIT) {
            log!("some processes of the previous session did not die within {RESET_WAIT:?}");
        }
    }

    fn handle(&mut self, agent: &Agent, stream: u32, message: Message) {
        let message = match message {
            Message::Hello(hello) => return self.hello(agent, &hello),
            _ if !self.greeted => {
                return self.reply(
                    agent,
                    stream,
                    Message::error(
                        "send Hello first: the agent serves a connection only after the handshake",
                    ),
                );
            }
            _ if stream == banger_agent_proto::CONTROL_STREAM => {
                return self.reply(
                    agent,
                    stream,
                    Message::error(format!(
                        "{:?} on stream 0: stream 0 is for the handshake; send requests on a stream id above 0",
                        message.kind()
                    )),
                );
            }
            message => message,
        };
        let result = match message {
            Message::Exec(exec) => {
                self.exec(agent, stream, &exec);
                Ok(())
            }
            Message::Stdin(data) => self.stdin(stream, StdinMsg::Data(data)),
            Message::Credit(credit) => {
                // Late grants for an exec that ended are normal; unknown streams too.
                if let Some(running) = self.execs.get(&stream) {
                    running.credit.grant(credit.bytes);
                }
                Ok(())
            }
            Message::StdinClose => self.stdin(stream, StdinMsg::Close),
            Message::Signal(signal) => self.signal(stream, signal.signo),
            Message::Resize(size) => self.running(stream).and_then(|running| match running {
                Some(RunningExec { pty: Some(pty), .. }) => exec::resize(pty, size)
                    .map_err(|err| format!("resize on stream {stream}: {err}")),
                Some(_) => Err(format!(
                    "the exec on stream {stream} has no terminal to resize"
                )),
                None => Ok(()),
            }),
            Message::Poweroff => self.poweroff(agent, stream),
            Message::PutFile(put) => {
                self.put_begin(agent, stream, &put.path, put.mode);
                Ok(())
            }
            Message::PutFileChunk(data) => self.put_chunk(agent, stream, &data),
            Message::PutFileEnd => self.put_end(agent, stream),
            Message::GetFile(get) => files::start_download(self.route(agent, stream), get.path)
                .map_err(|err| format!("get: cannot start a thread: {err}")),
            Message::Ping => {
                self.reply(agent, stream, Message::Pong);
                Ok(())
            }
            Message::SetTime(time) => {
                let reply = match clock::set_realtime(time.unix_nanos) {
                    Ok(()) => Message::Ok,
                    Err(err) => Message::error(format!(
                        "set time to {} ns after the epoch: {err}",
                        time.unix_nanos
                    )),
                };
                self.reply(agent, stream, reply);
                Ok(())
            }
            Message::Reidentify(req) => {
                // Only a banger guest's agent changes its machine's identity: one a test
                // runs on a host must never reseed, re-clock or rename that host.
                let in_guest = agent.pid1 || agent.systemd_unit;
                let applied = match &agent.simulated_root {
                    _ if in_guest => crate::reidentify::apply(&req),
                    Some(root) => crate::reidentify::apply_simulated(&req, root),
                    None => {
                        Err("this agent does not run a banger guest; nothing was changed".into())
                    }
                };
                let reply = match applied {
                    Ok(()) => Message::Ok,
                    Err(why) => Message::error(format!("reidentify: {why}")),
                };
                self.reply(agent, stream, reply);
                Ok(())
            }
            other => Err(format!(
                "unexpected {:?} frame from the host: it is a guest-to-host message",
                other.kind()
            )),
        };
        if let Err(message) = result {
            self.reply(agent, stream, Message::error(message));
        }
    }

    fn hello(&mut self, agent: &Agent, hello: &Hello) {
        // The lower version of the two; a host older than anything this agent speaks is
        // answered with this agent's own version, and refuses it.
        let version = banger_agent_proto::negotiate(hello.proto_version, PROTO_VERSION);
        let version = if version < MIN_PROTO_VERSION {
            log!(
                "host speaks protocol version {}, this agent {MIN_PROTO_VERSION} to {PROTO_VERSION}; answering anyway",
                hello.proto_version
            );
            PROTO_VERSION
        } else {
            version
        };
        self.reset();
        self.generation = agent.writer.new_generation();
        self.greeted = true;
        self.version = version;
        let ready = Ready {
            nonce: hello.nonce,
            proto_version: version,
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            kernel_release: agent.kernel_release.clone(),
            pid1: agent.pid1,
            timings: BootTimings {
                now_us: clock::boottime_us(),
                ..agent.timings.clone()
            },
            features: features(agent),
            share_errors: agent.share_errors.clone(),
        };
        self.reply(
            agent,
            banger_agent_proto::CONTROL_STREAM,
            Message::Ready(ready),
        );
        // The host knows we are up: pre-started servers may now start (at idle priority).
        crate::init::prestart::release();
    }

    /// The exec on `stream`: `Ok(None)` if it already finished (late frames are ignored).
    fn put_begin(&mut self, agent: &Agent, stream: u32, path: &str, mode: u32) {
        if self.uploads.contains_key(&stream) {
            let message = format!("stream {stream} already receives a file; use a new stream id");
            return self.reply(agent, stream, Message::error(message));
        }
        let state = match Upload::begin(path, mode) {
            Ok(upload) => UploadState::Writing(upload),
            Err(message) => {
                self.reply(agent, stream, Message::error(message));
                UploadState::Failed
            }
        };
        self.uploads.insert(stream, state);
    }

    fn put_chunk(&mut self, agent: &Agent, stream: u32, data: &[u8]) -> Result<(), String> {
        match self.uploads.get_mut(&stream) {
            Some(UploadState::Writing(upload)) => {
                if let Err(message) = upload.write(data) {
                    self.uploads.insert(stream, UploadState::Failed);
                    self.reply(agent, stream, Message::error(message));
                }
                Ok(())
            }
            Some(UploadState::Failed) => Ok(()),
            None => Err(format!(
                "file chunk on stream {stream} without a PutFile first"
            )),
        }
    }

    fn put_end(&mut self, agent: &Agent, stream: u32) -> Result<(), String> {
        match self.uploads.remove(&stream) {
            Some(UploadState::Writing(upload)) => {
                let reply = match upload.commit() {
                    Ok(()) => Message::Ok,
                    Err(message) => Message::error(message),
                };
                self.reply(agent, stream, reply);
                Ok(())
            }
            Some(UploadState::Failed) => Ok(()),
            None => Err(format!(
                "end of file on stream {stream} without a PutFile first"
            )),
        }
    }

    fn poweroff(&mut self, agent: &Agent, stream: u32) -> Result<(), String> {
        if agent.pid1 {
            self.reply(agent, stream, Message::Ok);
            power::poweroff();
        }
        // Under systemd the agent is a unit: systemd stops it (and everything else) on
        // the way down, so it keeps serving until then.
        if agent.systemd_unit {
            power::ask_init_to_power_off()
                .map_err(|e| format!("poweroff: asking systemd failed: {e}"))?;
            self.reply(agent, stream, Message::Ok);
            return Ok(());
        }
        // Not init, no systemd: the VM is someone else's to stop; end this agent (tests, dev).
        self.reply(agent, stream, Message::Ok);
        log!("poweroff requested; not PID 1, so the agent exits instead");
        self.reset();
        std::process::exit(0);
    }
}
