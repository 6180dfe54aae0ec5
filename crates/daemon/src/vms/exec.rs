//! Running a command in a VM: start it through the guest agent, then shuttle the
//! exec stream's frames between the client's connection and the agent session.

use std::time::Duration;

use banger_agent_client::{ExecEvent, ExecSession};
use banger_api::stream::{StreamFrame, read_frame, write_frame};
use banger_api::{ExecRequest, ExitStatus};
use banger_store::VmState;

use super::{agent, lookup};
use crate::error::{DaemonError, Result, quoted};
use crate::state::Daemon;

/// How long the agent gets to answer an exec (Started, or why it could not start).
const EXEC_START_TIMEOUT: Duration = Duration::from_secs(15);

/// A command the guest agent has answered for: its session, and that first answer.
pub struct Started {
    session: ExecSession,
    first: Option<ExecEvent>,
}

/// Start `req` in VM `name` through its guest agent and wait for the agent's first answer
/// (the command started, or why it could not). The caller connects it to its client with
/// [`pump`].
pub async fn start(daemon: &Daemon, name: &str, req: ExecRequest) -> Result<Started> {
    match req.argv.first() {
        None => {
            return Err(
                DaemonError::invalid("argv is empty: exec needs a command to run")
                    .with_field("argv"),
            );
        }
        Some(program) if program.is_empty() => {
            return Err(DaemonError::invalid(
                "argv's first element, the program to run, is an empty string",
            )
            .with_field("argv"));
        }
        Some(_) => {}
    }
    // The agent's own directory is no place to resolve a relative path against.
    if let Some(cwd) = &req.cwd
        && !cwd.starts_with('/')
    {
        return Err(DaemonError::invalid(format!(
            "cwd {} is not an absolute path: give the working directory in the guest from /, e.g. /root",
            quoted(cwd)
        ))
        .with_field("cwd"));
    }
    let vm = lookup(daemon, name)?;
    if vm.state == VmState::Paused {
        return Err(
            DaemonError::conflict(format!("VM {} is paused", vm.name)).with_hint(format!(
                "resume it with `banger vm resume {}`, then run the command",
                vm.name
            )),
        );
    }
    if vm.state != VmState::Running {
        return Err(
            DaemonError::conflict(format!("VM {} is {}, not running", vm.name, vm.state))
                .with_hint(format!("start it with `banger vm start {}`", vm.name)),
        );
    }
    let client = agent::client_for(daemon, &vm).await?;
    // The agent answers an exec at once (Started, or Error and Exited): a guest that does not
    // is frozen or overloaded, and the caller hears so instead of waiting forever.
    let started = tokio::time::timeout(EXEC_START_TIMEOUT, async {
        let mut session = client.exec(to_agent_request(req)).await?;
        let first = session.next_event().await;
        Ok::<_, banger_agent_client::ClientError>(Started { session, first })
    })
    .await;
    match started {
        Ok(Ok(started)) => Ok(started),
        // An agent too old for what was asked (e.g. a user): the request conflicts with
        // this VM's image, and the message says how to get a current agent.
        Ok(Err(e @ banger_agent_client::ClientError::Unsupported { .. })) => Err(
            DaemonError::conflict(format!("cannot run the command in VM {}: {e}", vm.name)),
        ),
        Ok(Err(e)) => Err(DaemonError::caused(
            crate::error::ErrorKind::Unavailable,
            format_args!("cannot run the command in VM {}", vm.name),
            &e,
        )),
        Err(_) => Err(DaemonError::unavailable(format!(
            "the guest agent of VM {} did not start the command within {}s; the guest may be hung or overloaded",
            vm.name,
            EXEC_START_TIMEOUT.as_secs()
        ))
        .with_hint(format!(
            "see `banger vm logs {0}`; `banger vm stop {0}` stops it even if it does not answer",
            vm.name
        ))),
    }
}

/// The client never took the stream: nobody will read the command's output.
pub async fn abandon(started: Started) {
    let _ = started.session.signal(libc::SIGKILL).await;
}

fn to_agent_request(req: ExecRequest) -> banger_agent_client::ExecRequest {
    banger_agent_client::ExecRequest {
        argv: req.argv,
        env: req.env.into_iter().collect(),
        cwd: req.cwd,
        stdin: req.stdin,
        tty: req.tty.map(|t| banger_agent_client::TtySize {
            rows: t.rows,
            cols: t.cols,
        }),
        user: req.user,
    }
}

/// Shuttle frames until the command exits. If the client goes away first, the
/// command is killed: nobody is left to read its output.
pub async fn pump<S>(io: S, started: Started)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let Started { mut session, first } = started;
    let (mut rd, mut wr) = tokio::io::split(io);
    let mut stdin = session.take_stdin();
    let control = session.control();
    let mut from_client = tokio::spawn(async move {
        loop {
            let frame = match read_frame(&mut rd).await {
                Ok(Some(frame)) => frame,
                Ok(None) | Err(_) => return false,
            };
            let sent = match frame {
                StreamFrame::Stdin(data) => match stdin.as_mut() {
                    Some(w) => w.write(&data).await,
                    None => Ok(()),
                },
                StreamFrame::StdinEof => match stdin.take() {
                    Some(w) => w.close().await,
                    None => Ok(()),
                },
                StreamFrame::Signal(signo) => control.signal(signo).await,
                StreamFrame::Resize(size) => control.resize(size.rows, size.cols).await,
                _ => Ok(()),
            };
            if sent.is_err() {
                return true;
            }
        }
    });

    let mut client_gone = false;
    let mut input_done = false;
    let mut first = Some(first);
    loop {
        tokio::select! {
            event = next(&mut session, &mut first) => {
                let frame = match event {
                    Some(ExecEvent::Started { .. }) => continue,
                    Some(ExecEvent::Stdout(data)) => StreamFrame::Stdout(data.to_vec()),
                    Some(ExecEvent::Stderr(data)) => StreamFrame::Stderr(data.to_vec()),
                    Some(ExecEvent::Exited(st)) => StreamFrame::Exit(ExitStatus { code: st.code, signal: st.signal }),
                    // The agent explains a failed start (e.g. no such program) and then
                    // reports exit code 127/126: show the reason on stderr.
                    Some(ExecEvent::Error(message)) => StreamFrame::Stderr(format!("banger: {message}\n").into_bytes()),
                    None => StreamFrame::Error("the connection to the guest agent was lost".into()),
                };
                let last = matches!(frame, StreamFrame::Exit(_) | StreamFrame::Error(_));
                if write_frame(&mut wr, &frame).await.is_err() {
                    client_gone = true;
                    break;
                }
                if last {
                    break;
                }
            }
            finished = &mut from_client, if !input_done => {
                input_done = true;
                // `false`: the client hung up. `true`: the agent refused input; the
                // session's events will say why.
                if !matches!(finished, Ok(true)) {
                    client_gone = true;
                    break;
                }
            }
        }
    }
    if client_gone {
        let _ = session.signal(libc::SIGKILL).await;
    }
    from_client.abort();
}

/// The event [`start`] already took (once), then the session's next ones.
async fn next(
    session: &mut ExecSession,
    first: &mut Option<Option<ExecEvent>>,
) -> Option<ExecEvent> {
    match first.take() {
        Some(event) => event,
        None => session.next_event().await,
    }
}
