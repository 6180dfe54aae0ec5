//! The host side against a guest that does not play by the rules: one that ignores flow
//! control, floods junk after the handshake, reports hostile strings, or speaks version 1
//! (no flow control: the host must bound its memory with backpressure instead).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use banger_agent_client::{
    AgentClient, BACKPRESSURE_BUDGET, CloseReason, ExecEvent, ExecRequest, JUNK_LIMIT,
};
use banger_agent_proto::{
    BootTimings, Credit, Decoder, Message, OUTPUT_WINDOW, PROTO_VERSION, Ready, Signal,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

const LONG: Duration = Duration::from_secs(20);

fn ready(nonce: u64, proto_version: u32, kernel_release: &str) -> Message {
    Message::Ready(Ready {
        nonce,
        proto_version,
        agent_version: "test".into(),
        kernel_release: kernel_release.into(),
        pid1: false,
        timings: BootTimings::default(),
        features: Vec::new(),
        share_errors: Vec::new(),
    })
}

/// A scripted agent: reads the host's frames, answers the handshake with `version`.
struct Peer {
    io: DuplexStream,
    decoder: Decoder,
}

impl Peer {
    async fn read_until<T>(&mut self, mut want: impl FnMut(u32, Message) -> Option<T>) -> T {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            while let Some(item) = self.decoder.next_message() {
                if let Ok((stream, message)) = item
                    && let Some(found) = want(stream, message)
                {
                    return found;
                }
            }
            let n = self.io.read(&mut buf).await.unwrap();
            assert!(n > 0, "host closed the stream");
            self.decoder.push(&buf[..n]);
        }
    }

    async fn greet(&mut self, version: u32, kernel_release: &str) {
        let nonce = self
            .read_until(|_, m| match m {
                Message::Hello(h) => Some(h.nonce),
                _ => None,
            })
            .await;
        let answer = ready(nonce, version, kernel_release).encode(0).unwrap();
        self.io.write_all(&answer).await.unwrap();
    }

    async fn exec_stream(&mut self) -> u32 {
        self.read_until(|stream, m| matches!(m, Message::Exec(_)).then_some(stream))
            .await
    }
}

fn pair() -> (DuplexStream, Peer) {
    let (host, agent) = tokio::io::duplex(64 * 1024);
    (
        host,
        Peer {
            io: agent,
            decoder: Decoder::new(),
        },
    )
}

#[tokio::test]
async fn versions_are_negotiated_down_to_one_and_refused_above() {
    for (answer, ok) in [
        (1, true),
        (PROTO_VERSION, true),
        (PROTO_VERSION + 1, false),
        (0, false),
    ] {
        let (host, mut peer) = pair();
        tokio::spawn(async move {
            peer.greet(answer, "k").await;
            let _ = peer.io.read(&mut [0u8; 1]).await;
        });
        let result = AgentClient::handshake(host, LONG).await;
        assert_eq!(result.is_ok(), ok, "agent version {answer}");
        if let Ok((client, _)) = result {
            assert_eq!(client.proto_version(), answer);
        }
    }
}

#[tokio::test]
async fn guest_strings_in_ready_are_escaped_and_capped() {
    let (host, mut peer) = pair();
    let hostile = format!(
        "6.1\n2026-01-01 INFO forged line\x1b]0;owned\x07{}",
        "A".repeat(5000)
    );
    let release = hostile.clone();
    tokio::spawn(async move {
        peer.greet(PROTO_VERSION, &release).await;
        let _ = peer.io.read(&mut [0u8; 1]).await;
    });
    let (_client, info) = AgentClient::handshake(host, LONG).await.unwrap();
    assert!(
        !info.kernel_release.contains(['\n', '\x1b', '\x07']),
        "{}",
        info.kernel_release
    );
    assert!(
        info.kernel_release.starts_with("6.1\\n2026"),
        "{}",
        info.kernel_release
    );
    assert!(
        info.kernel_release.len() < 200,
        "{}",
        info.kernel_release.len()
    );
}

/// Version 2: a guest that sends more output than it was granted is cut off on that exec
/// (the host holds at most the window), and the connection keeps serving others.
#[tokio::test]
async fn output_beyond_the_granted_window_is_cut_off() {
    let (host, mut peer) = pair();
    let (client, _) = {
        let handshake = tokio::spawn(AgentClient::handshake(host, LONG));
        peer.greet(PROTO_VERSION, "k").await;
        handshake.await.unwrap().unwrap()
    };
    let mut session = client
        .exec(ExecRequest::new(["cat", "/dev/zero"]))
        .await
        .unwrap();
    let stream = peer.exec_stream().await;
    let flood = tokio::spawn(async move {
        let chunk = Message::Stdout(vec![0; 64 * 1024]).encode(stream).unwrap();
        // Twice the window, never waiting for credit.
        for _ in 0..(2 * OUTPUT_WINDOW / (64 * 1024)) {
            peer.io.write_all(&chunk).await.unwrap();
        }
        // The host signals the exec to stop, and still answers pings on other streams.
        let signal = peer
            .read_until(|s, m| match m {
                Message::Signal(Signal { signo }) if s == stream => Some(signo),
                _ => None,
            })
            .await;
        let ping = peer
            .read_until(|s, m| (m == Message::Ping).then_some(s))
            .await;
        peer.io
            .write_all(&Message::Pong.encode(ping).unwrap())
            .await
            .unwrap();
        (signal, peer)
    });
    // Wait until the flood is in, without reading a byte of it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut received = 0u64;
    let end = loop {
        match tokio::time::timeout(LONG, session.next_event())
            .await
            .unwrap()
        {
            Some(ExecEvent::Stdout(data)) => received += data.len() as u64,
            other => break other,
        }
    };
    assert!(
        matches!(&end, Some(ExecEvent::Error(why)) if why.contains("granted")),
        "{end:?}"
    );
    assert!(
        received <= OUTPUT_WINDOW,
        "{received} bytes queued past the window"
    );
    client.ping().await.unwrap();
    let (signal, _peer) = flood.await.unwrap();
    assert_eq!(signal, libc::SIGKILL);
}

/// Version 2: output taken by the host is granted back, so an exec within its credit
/// streams any amount.
#[tokio::test]
async fn taken_output_is_granted_back() {
    let (host, mut peer) = pair();
    let (client, _) = {
        let handshake = tokio::spawn(AgentClient::handshake(host, LONG));
        peer.greet(PROTO_VERSION, "k").await;
        handshake.await.unwrap().unwrap()
    };
    let session = client.exec(ExecRequest::new(["yes"])).await.unwrap();
    let stream = peer.exec_stream().await;
    let total = 8 * OUTPUT_WINDOW;
    let agent = tokio::spawn(async move {
        let mut credit = OUTPUT_WINDOW;
        let mut sent = 0u64;
        let chunk = 16 * 1024u64;
        while sent < total {
            while credit < chunk {
                credit += peer
                    .read_until(|s, m| match m {
                        Message::Credit(Credit { bytes }) if s == stream => Some(bytes),
                        _ => None,
                    })
                    .await;
            }
            let frame = Message::Stdout(vec![b'y'; chunk as usize])
                .encode(stream)
                .unwrap();
            peer.io.write_all(&frame).await.unwrap();
            credit -= chunk;
            sent += chunk;
        }
        let exited = Message::Exited(banger_agent_proto::Exited {
            code: Some(0),
            signal: None,
        });
        peer.io
            .write_all(&exited.encode(stream).unwrap())
            .await
            .unwrap();
        peer
    });
    let output = tokio::time::timeout(LONG, session.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(output.stdout.len() as u64, total);
    drop(agent.await.unwrap());
}

/// Version 1 has no credit: a guest flooding an exec whose output nobody takes is held back
/// by backpressure — the host queues a bounded amount and the guest's writes stall.
#[tokio::test]
async fn a_version_1_guest_is_held_back_not_buffered() {
    let (host, mut peer) = pair();
    let (client, _) = {
        let handshake = tokio::spawn(AgentClient::handshake(host, LONG));
        peer.greet(1, "k").await;
        handshake.await.unwrap().unwrap()
    };
    let session = client
        .exec(ExecRequest::new(["cat", "/dev/zero"]))
        .await
        .unwrap();
    let stream = peer.exec_stream().await;
    let written = Arc::new(AtomicU64::new(0));
    let total = 16 * 1024 * 1024u64;
    let counter = written.clone();
    let agent = tokio::spawn(async move {
        let chunk = Message::Stdout(vec![7; 64 * 1024]).encode(stream).unwrap();
        while counter.load(Ordering::SeqCst) < total {
            peer.io.write_all(&chunk).await.unwrap();
            counter.fetch_add(64 * 1024, Ordering::SeqCst);
        }
        let exited = Message::Exited(banger_agent_proto::Exited {
            code: Some(0),
            signal: None,
        });
        peer.io
            .write_all(&exited.encode(stream).unwrap())
            .await
            .unwrap();
        peer
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stalled_at = written.load(Ordering::SeqCst);
    // What the host holds, the pipe between, and a frame in hand.
    let bound = BACKPRESSURE_BUDGET + 64 * 1024 + 3 * 64 * 1024;
    assert!(
        stalled_at <= bound,
        "the guest wrote {stalled_at} bytes nobody read"
    );
    // Taking the output lets it all through, intact.
    let output = tokio::time::timeout(LONG, session.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(output.stdout.len() as u64, total);
    assert!(output.stdout.iter().all(|b| *b == 7));
    drop(agent.await.unwrap());
    drop(client);
}

/// Junk after the handshake is counted, not logged per frame, and a connection that keeps
/// sending it is closed with that reason.
#[tokio::test]
async fn a_connection_that_keeps_sending_junk_is_closed() {
    let (host, mut peer) = pair();
    let (client, _) = {
        let handshake = tokio::spawn(AgentClient::handshake(host, LONG));
        peer.greet(PROTO_VERSION, "k").await;
        handshake.await.unwrap().unwrap()
    };
    // A few offences are tolerated: the connection still works.
    let mut junk = Vec::new();
    for _ in 0..10 {
        junk.extend_from_slice(b"BNGR\xff\0\0\0\0\0\0\0\0");
    }
    peer.io.write_all(&junk).await.unwrap();
    let pinger = client.clone();
    let ping = tokio::spawn(async move { pinger.ping().await });
    let stream = peer
        .read_until(|s, m| (m == Message::Ping).then_some(s))
        .await;
    peer.io
        .write_all(&Message::Pong.encode(stream).unwrap())
        .await
        .unwrap();
    ping.await.unwrap().unwrap();
    assert!(!client.is_closed());
    // A flood is not.
    let mut flood = Vec::new();
    for i in 0..(JUNK_LIMIT * 4) {
        flood.extend(Message::error(format!("junk {i}\n")).encode(0).unwrap());
        flood.extend_from_slice(b"garbage!");
    }
    let _ = peer.io.write_all(&flood).await;
    tokio::time::timeout(LONG, client.closed()).await.unwrap();
    assert_eq!(client.close_reason(), Some(CloseReason::Junk));
}
