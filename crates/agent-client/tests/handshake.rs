//! Client behaviour that a well-behaved agent cannot provoke: garbage and stale answers
//! before `Ready`, silence, a wrong protocol version, a connection dying mid-exec. The peer
//! here is a scripted agent speaking the real protocol over an in-memory pipe; the real
//! agent is exercised in `crates/agent/tests`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use banger_agent_client::{AgentClient, ClientError, ExecEvent, ExecRequest};
use banger_agent_proto::{BootTimings, Decoder, Hello, Message, PROTO_VERSION, Ready};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

const LONG: Duration = Duration::from_secs(20);

fn ready(nonce: u64, proto_version: u32) -> Message {
    Message::Ready(Ready {
        nonce,
        proto_version,
        agent_version: "test".into(),
        kernel_release: "test".into(),
        pid1: false,
        timings: BootTimings::default(),
        // An agent from before optional features were listed.
        features: Vec::new(),
        share_errors: Vec::new(),
    })
}

/// Reads frames from the host side until a message matches.
async fn read_until<T>(
    agent: &mut DuplexStream,
    decoder: &mut Decoder,
    mut want: impl FnMut(u32, Message) -> Option<T>,
) -> T {
    let mut buf = vec![0u8; 4096];
    loop {
        while let Some(item) = decoder.next_message() {
            if let Ok((stream, message)) = item
                && let Some(found) = want(stream, message)
            {
                return found;
            }
        }
        let n = agent.read(&mut buf).await.unwrap();
        assert!(n > 0, "host closed the stream");
        decoder.push(&buf[..n]);
    }
}

async fn read_hello(agent: &mut DuplexStream, decoder: &mut Decoder) -> Hello {
    read_until(agent, decoder, |_, message| match message {
        Message::Hello(hello) => Some(hello),
        _ => None,
    })
    .await
}

#[tokio::test]
async fn handshake_skips_garbage_and_stale_ready_frames() {
    let (host, mut agent) = tokio::io::duplex(1 << 16);
    let fake = tokio::spawn(async move {
        let mut decoder = Decoder::new();
        let hello = read_hello(&mut agent, &mut decoder).await;
        assert_eq!(hello.proto_version, PROTO_VERSION);
        let mut bytes = b"\x00stale tail of an old frame BNG".to_vec();
        bytes.extend(
            ready(hello.nonce.wrapping_add(1), PROTO_VERSION)
                .encode(0)
                .unwrap(),
        );
        bytes.extend(Message::Stdout(b"old session".to_vec()).encode(7).unwrap());
        bytes.extend(ready(hello.nonce, PROTO_VERSION).encode(0).unwrap());
        agent.write_all(&bytes).await.unwrap();
        // Serve one ping so the test proves the connection works after the handshake.
        let stream = read_until(&mut agent, &mut decoder, |stream, message| {
            (message == Message::Ping).then_some(stream)
        })
        .await;
        agent
            .write_all(&Message::Pong.encode(stream).unwrap())
            .await
            .unwrap();
        agent
    });
    let (client, info) = AgentClient::handshake(host, LONG).await.unwrap();
    assert_eq!(info.agent_version, "test");
    client.ping().await.unwrap();
    assert!(!client.is_closed());
    drop(fake.await.unwrap());
}

/// An agent that does not list `exec-user` would ignore the user and run the command as
/// root: the client refuses before sending anything.
#[tokio::test]
async fn an_exec_as_a_user_is_refused_by_an_agent_that_cannot_honour_it() {
    let (host, mut agent) = tokio::io::duplex(1 << 16);
    let fake = tokio::spawn(async move {
        let mut decoder = Decoder::new();
        let hello = read_hello(&mut agent, &mut decoder).await;
        let answer = ready(hello.nonce, PROTO_VERSION).encode(0).unwrap();
        agent.write_all(&answer).await.unwrap();
        // The next message must be the ping: no Exec got through.
        let stream = read_until(&mut agent, &mut decoder, |stream, message| match message {
            Message::Exec(_) => panic!("an Exec with a user reached an agent without exec-user"),
            Message::Ping => Some(stream),
            _ => None,
        })
        .await;
        agent
            .write_all(&Message::Pong.encode(stream).unwrap())
            .await
            .unwrap();
        agent
    });
    let (client, _) = AgentClient::handshake(host, LONG).await.unwrap();
    assert!(!client.supports(banger_agent_proto::FEATURE_EXEC_USER));
    let err = client
        .exec(ExecRequest::new(["id"]).user("app"))
        .await
        .err()
        .expect("refused");
    assert!(matches!(err, ClientError::Unsupported { .. }), "{err}");
    assert!(err.to_string().contains("rebuild or re-import"), "{err}");
    client.ping().await.unwrap();
    drop(fake.await.unwrap());
}

#[tokio::test]
async fn handshake_times_out_when_the_agent_is_silent() {
    let (host, _agent) = tokio::io::duplex(1 << 16);
    let err = AgentClient::handshake(host, Duration::from_millis(200))
        .await
        .err()
        .expect("a silent peer must not complete the handshake");
    assert!(matches!(err, ClientError::HandshakeTimeout(_)), "{err}");
}

#[tokio::test]
async fn handshake_fails_when_the_stream_closes() {
    let (host, agent) = tokio::io::duplex(1 << 16);
    drop(agent);
    let err = AgentClient::handshake(host, LONG).await.err().unwrap();
    assert!(
        matches!(err, ClientError::HandshakeClosed | ClientError::Io(_)),
        "{err}"
    );
}

#[tokio::test]
async fn handshake_refuses_another_protocol_version() {
    let (host, mut agent) = tokio::io::duplex(1 << 16);
    tokio::spawn(async move {
        let mut decoder = Decoder::new();
        let hello = read_hello(&mut agent, &mut decoder).await;
        let answer = ready(hello.nonce, PROTO_VERSION + 1).encode(0).unwrap();
        agent.write_all(&answer).await.unwrap();
        // Keep the stream open until the host gives up.
        let _ = agent.read(&mut [0u8; 1]).await;
    });
    let err = AgentClient::handshake(host, LONG).await.err().unwrap();
    assert!(
        matches!(err, ClientError::VersionMismatch { agent, host } if agent == PROTO_VERSION + 1 && host == PROTO_VERSION),
        "{err}"
    );
}

#[tokio::test]
async fn a_dying_connection_fails_pending_sessions_and_new_requests() {
    let (host, mut agent) = tokio::io::duplex(1 << 16);
    let (exec_seen_tx, exec_seen) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut decoder = Decoder::new();
        let hello = read_hello(&mut agent, &mut decoder).await;
        agent
            .write_all(&ready(hello.nonce, PROTO_VERSION).encode(0).unwrap())
            .await
            .unwrap();
        let stream = read_until(&mut agent, &mut decoder, |stream, message| {
            matches!(message, Message::Exec(_)).then_some(stream)
        })
        .await;
        agent
            .write_all(&Message::Stdout(b"partial".to_vec()).encode(stream).unwrap())
            .await
            .unwrap();
        exec_seen_tx.send(()).unwrap();
        // Dropping `agent` here is the connection dying mid-exec.
    });
    let (client, _) = AgentClient::handshake(host, LONG).await.unwrap();
    let mut session = client
        .exec(ExecRequest::new(["sleep", "100"]))
        .await
        .unwrap();
    exec_seen.await.unwrap();
    assert_eq!(
        session.next_event().await,
        Some(ExecEvent::Stdout(bytes::Bytes::from_static(b"partial")))
    );
    let lost = session.next_event().await;
    assert!(
        matches!(&lost, Some(ExecEvent::Error(message)) if message.contains("closed")),
        "{lost:?}"
    );
    assert_eq!(session.next_event().await, None);
    tokio::time::timeout(LONG, client.closed()).await.unwrap();
    assert!(client.is_closed());
    let err = client.ping().await.unwrap_err();
    assert!(matches!(err, ClientError::Closed), "{err}");
    let err = client.exec(ExecRequest::new(["true"])).await.err().unwrap();
    assert!(matches!(err, ClientError::Closed), "{err}");
}
