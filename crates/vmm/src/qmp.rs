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
        self.writer
            .write_all(line.as_bytes())
            .await
            .map_err(QmpError::Io)?;

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
