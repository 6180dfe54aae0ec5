//! `POST /v1/vms/{name}/exec`: start a command through the guest agent, then upgrade
//! the HTTP connection to the exec stream and pump frames both ways.

use std::sync::Arc;

use banger_agent_client::{ExecEvent, ExecSession};
use banger_api::stream::{StreamFrame, read_frame, write_frame};
use banger_api::{EXEC_UPGRADE, ExecRequest, ExitStatus};
use banger_store::VmState;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;

use super::{agent, lookup};
use crate::error::{DaemonError, Result};
use crate::http::{Body, full, read_json};
use crate::state::Daemon;

pub async fn exec(
    daemon: Arc<Daemon>,
    name: &str,
    mut req: Request<Incoming>,
) -> Result<Response<Body>> {
    let wants_upgrade = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case(EXEC_UPGRADE));
    if !wants_upgrade {
        return Err(DaemonError::invalid(format!(
            "exec needs `Connection: upgrade` and `Upgrade: {EXEC_UPGRADE}`"
        )));
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    let body: ExecRequest = read_json(req).await?;
    if body.argv.is_empty() || body.argv[0].is_empty() {
        return Err(DaemonError::invalid("exec needs a command to run"));
    }

    let vm = lookup(&daemon, name)?;
    if vm.state != VmState::Running {
        return Err(
            DaemonError::conflict(format!("VM {} is {}, not running", vm.name, vm.state))
                .with_hint(format!("start it with `banger vm start {}`", vm.name)),
        );
    }
    let client = agent::client_for(&daemon, &vm).await?;
    let session = client.exec(to_agent_request(body)).await.map_err(|e| {
        DaemonError::unavailable(format!("cannot run the command in VM {}: {e}", vm.name))
    })?;

    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => pump(TokioIo::new(upgraded), session).await,
            Err(e) => {
                tracing::debug!(error = %e, "exec upgrade failed");
                let _ = session.signal(libc::SIGKILL).await;
            }
        }
    });

    let mut resp = Response::new(full(Vec::new()));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    resp.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("upgrade"),
    );
    resp.headers_mut().insert(
        header::UPGRADE,
        header::HeaderValue::from_static(EXEC_UPGRADE),
    );
    Ok(resp)
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
    }
}

/// Shuttle frames until the command exits. If the client goes away first, the
/// command is killed: nobody is left to read its output.
async fn pump<S>(io: S, mut session: ExecSession)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
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
    loop {
        tokio::select! {
            event = session.next_event() => {
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
