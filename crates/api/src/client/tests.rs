//! The client against real sockets: a missing daemon, and stand-in daemons that
//! answer progress streams.

use super::*;

#[test]
fn path_segments_are_percent_encoded() {
    assert_eq!(encode("dev-1_a.b~"), "dev-1_a.b~");
    assert_eq!(encode("a/b"), "a%2Fb");
    assert_eq!(encode("a b?c#d%"), "a%20b%3Fc%23d%25");
    assert_eq!(encode("ünï"), "%C3%BCn%C3%AF");
    assert_eq!(encode(".."), "..");
    assert_eq!(encode(""), "");
    for s in ["dev", "a b/c", "ünï", "%41", ""] {
        let encoded = encode(s);
        let back = percent_encoding::percent_decode_str(&encoded).decode_utf8();
        assert_eq!(back.unwrap(), s);
    }
}

/// Serve one connection on a fresh socket with `chunks` as a chunked NDJSON body
/// (or, without `ndjson`, as plain JSON); returns the client.
async fn serve_once(
    dir: &tempfile::TempDir,
    status: &str,
    ndjson: bool,
    chunks: Vec<&'static str>,
) -> Client {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let path = dir.path().join("d.sock");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {}\r\ntransfer-encoding: chunked\r\n\r\n",
        if ndjson { NDJSON } else { "application/json" }
    );
    tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut req = vec![0u8; 4096];
        let n = conn.read(&mut req).await.unwrap();
        let req = String::from_utf8_lossy(&req[..n]).to_lowercase();
        assert!(req.contains("accept: application/x-ndjson"), "{req}");
        conn.write_all(head.as_bytes()).await.unwrap();
        for chunk in chunks {
            let framed = format!("{:x}\r\n{chunk}\r\n", chunk.len());
            conn.write_all(framed.as_bytes()).await.unwrap();
            conn.flush().await.unwrap();
        }
        conn.write_all(b"0\r\n\r\n").await.unwrap();
    });
    Client::new(path)
}

#[tokio::test]
async fn progress_streams_deliver_events_and_the_result() {
    use banger_system::progress::{ProgressEvent, Recorded};
    let dir = tempfile::tempdir().unwrap();
    let client = serve_once(
        &dir,
        "200 OK",
        true,
        vec![
            "{\"event\":\"phase\",\"name\":\"boot\"}\n{\"event\":\"adv",
            "ance\",\"done\":3}\n\n{\"event\":\"from_the_future\"}\n",
            "{\"event\":\"result\",\"status\":201,\"value\":{\"recipe\":\"minimal\"}}\n",
        ],
    )
    .await;
    let sink = Recorded::default();
    let value: serde_json::Value = client
        .call_with_progress(Method::POST, "/x", None::<&()>, &sink)
        .await
        .unwrap();
    assert_eq!(value["recipe"], "minimal");
    let events = sink.0.lock().unwrap().clone();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[1], ProgressEvent::Advance { done: 3 });
}

#[tokio::test]
async fn progress_stream_errors_and_truncation() {
    use banger_system::progress::NoProgress;
    let dir = tempfile::tempdir().unwrap();
    let client = serve_once(
        &dir,
        "200 OK",
        true,
        vec!["{\"event\":\"error\",\"status\":409,\"error\":{\"kind\":\"conflict\",\"message\":\"taken\",\"field\":\"name\"}}\n"],
    )
    .await;
    let err = client
        .call_with_progress::<serde_json::Value>(Method::POST, "/x", None::<&()>, &NoProgress)
        .await
        .unwrap_err();
    match err {
        ClientError::Api { status, error } => {
            assert_eq!(status, 409);
            assert_eq!(error.field.as_deref(), Some("name"));
        }
        other => panic!("{other}"),
    }

    let dir = tempfile::tempdir().unwrap();
    let client = serve_once(
        &dir,
        "200 OK",
        true,
        vec!["{\"event\":\"note\",\"message\":\"m\"}\n"],
    )
    .await;
    let err = client
        .call_with_progress::<serde_json::Value>(Method::POST, "/x", None::<&()>, &NoProgress)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("ended before"), "{err}");

    // A daemon that ignores Accept and answers plain JSON still works.
    let dir = tempfile::tempdir().unwrap();
    let client = serve_once(&dir, "201 Created", false, vec!["{\"a\":1}"]).await;
    let value: serde_json::Value = client
        .call_with_progress(Method::POST, "/x", None::<&()>, &NoProgress)
        .await
        .unwrap();
    assert_eq!(value["a"], 1);
}

/// A daemon that dies mid-answer (SIGKILL during `vm run`): the error says the connection
/// broke and the hint says what to look at, not just "talking to the daemon failed".
#[tokio::test]
async fn a_daemon_dying_mid_answer_is_explained() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.sock");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut req = vec![0u8; 4096];
        let _ = conn.read(&mut req).await.unwrap();
        let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n4\r\n{\"a\"";
        conn.write_all(head.as_bytes()).await.unwrap();
        // Dropped here: the connection closes mid-chunk, as a killed daemon's does.
    });
    let err = Client::new(path).health().await.unwrap_err();
    assert!(err.is_connection_lost(), "{err}");
    assert!(
        err.to_string()
            .contains("connection to the banger daemon broke"),
        "{err}"
    );
    let hint = err.hint().unwrap_or_default();
    assert!(hint.contains("banger daemon status"), "{hint}");
    assert!(hint.contains("banger vm ls"), "{hint}");
}

#[tokio::test]
async fn unreachable_socket_is_a_connect_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = Client::new(dir.path().join("none.sock"))
        .health()
        .await
        .unwrap_err();
    assert!(err.is_unreachable(), "{err}");
    assert!(err.to_string().contains("none.sock"));
}
