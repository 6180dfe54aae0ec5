//! A small async QMP client: connect, negotiate, run commands by id, collect async events.
//!
//! QMP is line-delimited JSON over the QEMU monitor socket. The server greets with
//! `{"QMP": …}`, leaves "capabilities negotiation" mode after `qmp_capabilities`, then answers
//! each `{"execute": …, "id": N}` with `{"return": …, "id": N}` or `{"error": …, "id": N}`.
//! Asynchronous events (`{"event": …}`) may arrive at any time, even before the answer to the
//! command that caused them (`quit` emits SHUTDOWN first); they are kept in [`QmpClient::events`].
//!
//! The snapshot work needs `stop`, `cont`, `migrate`, `query-migrate`, `migrate-incoming`:
//! all are plain [`QmpClient::execute`] calls.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::Path;
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

/// Longest line accepted from QEMU; answers are small, this only bounds a broken peer.
const MAX_LINE: usize = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    /// The monitor socket refused the connection.
    #[error("cannot connect: {0}")]
    Connect(#[source] std::io::Error),
    /// Reading or writing the socket failed.
    #[error("socket error: {0}")]
    Io(#[source] std::io::Error),
    /// QEMU closed the connection (it exited or another client holds the monitor).
    #[error("QEMU closed the connection while waiting for {waiting_for}")]
    Closed { waiting_for: String },
    /// QEMU sent something that is not QMP.
    #[error("unexpected QMP message: {0}")]
    Protocol(String),
    /// QEMU answered a command with an error.
    #[error("{command} failed: {class}: {desc}")]
    Command {
        command: String,
        class: String,
        desc: String,
    },
    /// No answer in time.
    #[error("no answer to {waiting_for} within {waited:?}")]
    Timeout {
        waiting_for: String,
        waited: Duration,
    },
}

/// One QMP connection in command mode.
#[derive(Debug)]
pub struct QmpClient {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    next_id: u64,
    timeout: Duration,
    greeting: Value,
    events: Vec<Value>,
}

impl QmpClient {
    /// Connect to `socket`, read the greeting and negotiate capabilities. `timeout` bounds
    /// each step and later each command.
    pub async fn connect(socket: &Path, timeout: Duration) -> Result<QmpClient, QmpError> {
        let stream = tokio::time::timeout(timeout, UnixStream::connect(socket))
            .await
            .map_err(|_| QmpError::Timeout {
                waiting_for: "connect".into(),
                waited: timeout,
            })?
            .map_err(QmpError::Connect)?;
        let (read, writer) = stream.into_split();
        let mut client = QmpClient {
            reader: BufReader::new(read),
            writer,
            next_id: 1,
            timeout,
            greeting: Value::Null,
            events: Vec::new(),
        };
        let greeting = client.read_message("the QMP greeting").await?;
        if greeting.get("QMP").is_none() {
            return Err(QmpError::Protocol(format!(
                "expected a greeting, got {greeting}"
            )));
        }
        client.greeting = greeting;
        client.execute("qmp_capabilities", None).await?;
        Ok(client)
    }

    /// The server's greeting (QEMU version and capabilities).
    pub fn greeting(&self) -> &Value {
        &self.greeting
    }

    /// Change the per-command timeout (e.g. for a long `migrate`).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Events received so far, oldest first; they are removed from the client.
    pub fn take_events(&mut self) -> Vec<Value> {
        std::mem::take(&mut self.events)
    }

    /// Run `command` with optional `arguments` and return its `return` value.
    pub async fn execute(
        &mut self,
        command: &str,
        arguments: Option<Value>,
    ) -> Result<Value, QmpError> {
        self.execute_passing(command, arguments, None).await
    }

    /// Hand QEMU the descriptor `fd` under `name` (`getfd`: SCM_RIGHTS on the monitor
    /// socket), for a later `fd:NAME` URI. QEMU gets its own copy; the caller keeps `fd`.
    /// This is how a sandboxed QEMU (no `open` outside its jail, no `exec:` children under
    /// `spawn=deny`) writes a file the daemon chose.
    pub async fn pass_fd(&mut self, name: &str, fd: BorrowedFd<'_>) -> Result<(), QmpError> {
        self.execute_passing("getfd", Some(json!({ "fdname": name })), Some(fd))
            .await
            .map(drop)
    }

    async fn execute_passing(
        &mut self,
        command: &str,
        arguments: Option<Value>,
        fd: Option<BorrowedFd<'_>>,
    ) -> Result<Value, QmpError> {
        let id = self.next_id;
        self.next_id += 1;
        let mut request = Map::new();
        request.insert("execute".into(), json!(command));
        if let Some(arguments) = arguments {
            request.insert("arguments".into(), arguments);
        }
        request.insert("id".into(), json!(id));
        let mut line = Value::Object(request).to_string();
        line.push('\n');
        match fd {
            None => self
                .writer
                .write_all(line.as_bytes())
                .await
                .map_err(QmpError::Io)?,
            Some(fd) => send_with_fd(&self.writer, line.as_bytes(), fd)
                .await
                .map_err(QmpError::Io)?,
        }

        loop {
            let message = self.read_message(command).await?;
            if message.get("event").is_some() {
                self.events.push(message);
                continue;
            }
            if message.get("id") != Some(&json!(id)) {
                // An answer to nothing we asked (e.g. a late reply after a timeout): skip it.
                tracing::debug!(%message, "ignoring QMP message with a foreign id");
                continue;
            }
            if let Some(ret) = message.get("return") {
                return Ok(ret.clone());
            }
            if let Some(err) = message.get("error") {
                let field = |k: &str| err.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
                return Err(QmpError::Command {
                    command: command.to_owned(),
                    class: field("class"),
                    desc: field("desc"),
                });
            }
            return Err(QmpError::Protocol(format!(
                "answer without return or error: {message}"
            )));
        }
    }

    /// Poll `query-migrate` until the migration (in or out) ends; `Ok` once it completed,
    /// the error QEMU reports when it failed or was cancelled. `within` bounds the whole wait.
    pub async fn wait_migration(&mut self, within: Duration) -> Result<(), QmpError> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let info = self.execute("query-migrate", None).await?;
            match info.get("status").and_then(Value::as_str).unwrap_or("none") {
                "completed" => return Ok(()),
                status @ ("failed" | "cancelled") => {
                    let desc = info
                        .get("error-desc")
                        .and_then(Value::as_str)
                        .unwrap_or("QEMU gave no reason");
                    return Err(QmpError::Command {
                        command: "migrate".into(),
                        class: status.to_owned(),
                        desc: desc.to_owned(),
                    });
                }
                _ => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(QmpError::Timeout {
                    waiting_for: "the migration to complete".into(),
                    waited: within,
                });
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// `query-status`'s `status` field: "running", "paused", "shutdown", "inmigrate", …
    pub async fn query_status(&mut self) -> Result<String, QmpError> {
        let ret = self.execute("query-status", None).await?;
        ret.get("status")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| QmpError::Protocol(format!("query-status without status: {ret}")))
    }

    /// Ask QEMU to exit. QEMU may close the socket right after (or instead of) answering, so
    /// a closed connection counts as success.
    pub async fn quit(&mut self) -> Result<(), QmpError> {
        match self.execute("quit", None).await {
            Ok(_) | Err(QmpError::Closed { .. }) => Ok(()),
            Err(QmpError::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn read_message(&mut self, waiting_for: &str) -> Result<Value, QmpError> {
        let mut line = String::new();
        let read = tokio::time::timeout(self.timeout, self.read_line(&mut line))
            .await
            .map_err(|_| QmpError::Timeout {
                waiting_for: waiting_for.to_owned(),
                waited: self.timeout,
            })?
            .map_err(QmpError::Io)?;
        if read == 0 {
            return Err(QmpError::Closed {
                waiting_for: waiting_for.to_owned(),
            });
        }
        serde_json::from_str(line.trim_end())
            .map_err(|e| QmpError::Protocol(format!("{e} in {:?}", line.trim_end())))
    }

    async fn read_line(&mut self, line: &mut String) -> std::io::Result<usize> {
        let read = (&mut self.reader)
            .take(MAX_LINE as u64)
            .read_line(line)
            .await?;
        if read > 0 && !line.ends_with('\n') && read >= MAX_LINE {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "QMP line too long",
            ));
        }
        Ok(read)
    }
}

/// Write `bytes` with `fd` attached as SCM_RIGHTS ancillary data. QEMU reads the descriptor
/// with the first bytes of the command, so everything goes in one `sendmsg` (the command is
/// a short line; a partial write is finished without the descriptor).
async fn send_with_fd(
    writer: &OwnedWriteHalf,
    bytes: &[u8],
    fd: BorrowedFd<'_>,
) -> std::io::Result<()> {
    let stream: &UnixStream = writer.as_ref();
    let sent = loop {
        stream.writable().await?;
        match stream.try_io(tokio::io::Interest::WRITABLE, || {
            sendmsg_fd(stream.as_raw_fd(), bytes, fd.as_raw_fd())
        }) {
            Ok(n) => break n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    };
    let mut rest = &bytes[sent..];
    while !rest.is_empty() {
        stream.writable().await?;
        match stream.try_write(rest) {
            Ok(n) => rest = &rest[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// One `sendmsg(2)` of `bytes` carrying `fd`.
fn sendmsg_fd(socket: i32, bytes: &[u8], fd: i32) -> std::io::Result<usize> {
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<i32>() as u32) } as usize;
    // u64 elements keep the control buffer aligned for cmsghdr.
    let mut control = vec![0u64; space.div_ceil(8)];
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    // SAFETY: msghdr is plain old data; all-zero is valid before the fields are set.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space;
    // SAFETY: `msg` points at `control`, which is CMSG_SPACE(sizeof(int)) bytes and
    // aligned, so CMSG_FIRSTHDR is non-null and its data has room for one int.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<i32>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<i32>(), fd);
    }
    // SAFETY: `msg` and everything it points to (iov over `bytes`, `control`) outlive the
    // call; MSG_NOSIGNAL turns a closed peer into EPIPE instead of a signal.
    let n = unsafe { libc::sendmsg(socket, &msg, libc::MSG_NOSIGNAL) };
    if n < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncBufReadExt;
    use tokio::net::UnixListener;

    /// A scripted QMP server: for each request line it receives, it sends the listed lines
    /// (with `ID` replaced by the request's id).
    async fn serve(listener: UnixListener, script: Vec<Vec<&'static str>>) -> Vec<Value> {
        let (stream, _) = listener.accept().await.unwrap();
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        write
            .write_all(b"{\"QMP\": {\"version\": {}, \"capabilities\": []}}\n")
            .await
            .unwrap();
        let mut requests = Vec::new();
        for answers in script {
            let Some(line) = lines.next_line().await.unwrap() else {
                break;
            };
            let request: Value = serde_json::from_str(&line).unwrap();
            let id = request
                .get("id")
                .cloned()
                .unwrap_or(Value::Null)
                .to_string();
            requests.push(request);
            for answer in answers {
                write
                    .write_all(answer.replace("ID", &id).as_bytes())
                    .await
                    .unwrap();
                write.write_all(b"\n").await.unwrap();
            }
        }
        requests
    }

    #[tokio::test]
    async fn negotiates_runs_commands_and_keeps_events() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qmp.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let server = tokio::spawn(serve(
            listener,
            vec![
                vec![r#"{"return": {}, "id": ID}"#],
                vec![
                    r#"{"event": "STOP", "timestamp": {}}"#,
                    r#"{"return": {}, "id": 999}"#,
                    r#"{"return": {"status": "paused", "running": false}, "id": ID}"#,
                ],
                vec![r#"{"error": {"class": "GenericError", "desc": "no such thing"}, "id": ID}"#],
                vec![r#"{"event": "SHUTDOWN", "timestamp": {}}"#],
            ],
        ));
        let mut qmp = QmpClient::connect(&path, Duration::from_secs(10))
            .await
            .unwrap();
        assert!(qmp.greeting().get("QMP").is_some());
        assert_eq!(qmp.query_status().await.unwrap(), "paused");
        let err = qmp
            .execute("migrate", Some(json!({"uri": "exec:cat"})))
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "migrate failed: GenericError: no such thing"
        );
        // The server emits an event then hangs up without answering: quit counts that as done.
        qmp.quit().await.unwrap();
        let events: Vec<String> = qmp
            .take_events()
            .iter()
            .map(|e| e["event"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(events, ["STOP", "SHUTDOWN"]);

        let requests = server.await.unwrap();
        assert_eq!(requests[0]["execute"], "qmp_capabilities");
        assert_eq!(requests[2]["arguments"]["uri"], "exec:cat");
        let ids: Vec<&Value> = requests.iter().map(|r| &r["id"]).collect();
        assert_eq!(ids, [&json!(1), &json!(2), &json!(3), &json!(4)]);
    }

    #[tokio::test]
    async fn silence_is_a_timeout_and_garbage_a_protocol_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qmp.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let (_silent, _) = listener.accept().await.unwrap();
            let (mut garbage, _) = listener.accept().await.unwrap();
            garbage.write_all(b"hello\n").await.unwrap();
            let _ = rx.await;
        });
        let err = QmpClient::connect(&path, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(matches!(err, QmpError::Timeout { .. }), "{err}");
        let err = QmpClient::connect(&path, Duration::from_secs(10))
            .await
            .unwrap_err();
        assert!(matches!(err, QmpError::Protocol(_)), "{err}");
        drop(tx);
        server.await.unwrap();
        let err = QmpClient::connect(&dir.path().join("none"), Duration::from_secs(1)).await;
        assert!(matches!(err, Err(QmpError::Connect(_))));
    }
}
