//! Files, control requests, garbage and reconnects against the real agent binary.

use crate::common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;

use banger_agent_client::{ClientError, ExecEvent, ExecRequest};
use banger_agent_proto::{Decoder, Hello, Message, PROTO_VERSION};
use common::{LONG, RunningAgent, noise};

#[tokio::test]
async fn put_and_get_file_round_trip_with_mode() {
    let agent = RunningAgent::start();
    let (client, _) = agent.connect().await;
    let path = agent.dir.path().join("data.bin");
    let path_str = path.to_str().unwrap();
    let data = noise(3 * 1024 * 1024 + 17, 3);
    client.put_file(path_str, 0o640, &data).await.unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), data);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o640);
    assert_eq!(client.get_file(path_str).await.unwrap(), data);
    client.put_file(path_str, 0o600, b"").await.unwrap();
    assert_eq!(client.get_file(path_str).await.unwrap(), b"");

    let missing = agent.dir.path().join("missing");
    let err = client
        .get_file(missing.to_str().unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ClientError::Agent(m) if m.contains("no such file")),
        "{err}"
    );
    let nested = agent.dir.path().join("no/such/dir/f");
    let err = client
        .put_file(nested.to_str().unwrap(), 0o644, &data)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ClientError::Agent(m) if m.contains("does not exist")),
        "{err}"
    );
    // The connection still works after refused requests.
    client.ping().await.unwrap();
}

#[tokio::test]
async fn ping_and_invalid_set_time() {
    let agent = RunningAgent::start();
    let (client, _) = agent.connect().await;
    client.ping().await.unwrap();
    // A time before the epoch is refused by the kernel, so this proves the request path
    // without touching the host's clock.
    let err = client.set_time_at(-5_000_000_000).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Agent(m) if m.contains("set time")),
        "{err}"
    );
}

#[tokio::test]
async fn poweroff_outside_pid1_acknowledges_and_exits() {
    let mut agent = RunningAgent::start();
    let (client, _) = agent.connect().await;
    client.poweroff().await.unwrap();
    tokio::time::timeout(LONG, client.closed()).await.unwrap();
    let status = agent.child.wait().unwrap();
    assert!(status.success(), "{status}");
}

/// Reads frames from a raw socket until one matches.
fn read_until(
    sock: &mut UnixStream,
    decoder: &mut Decoder,
    want: impl Fn(u32, &Message) -> bool,
) -> Message {
    let mut buf = [0u8; 4096];
    loop {
        while let Some(item) = decoder.next_message() {
            let (stream, message) = item.unwrap();
            if want(stream, &message) {
                return message;
            }
        }
        let n = sock.read(&mut buf).unwrap();
        assert!(n > 0, "agent closed the connection");
        decoder.push(&buf[..n]);
    }
}

#[test]
fn garbage_gets_an_error_frame_and_the_connection_keeps_working() {
    let agent = RunningAgent::start();
    let mut sock = UnixStream::connect(&agent.socket).unwrap();
    sock.set_read_timeout(Some(LONG)).unwrap();
    let mut decoder = Decoder::new();
    let hello = Message::Hello(Hello {
        proto_version: PROTO_VERSION,
        nonce: 99,
    });
    // Garbage before the handshake too: the agent must still find the Hello.
    sock.write_all(b"\x01\x02junk").unwrap();
    sock.write_all(&hello.encode(0).unwrap()).unwrap();
    let ready = read_until(&mut sock, &mut decoder, |_, m| {
        matches!(m, Message::Ready(_))
    });
    let Message::Ready(ready) = ready else {
        unreachable!()
    };
    assert_eq!(ready.nonce, 99);

    sock.write_all(b"this is not a frame at all").unwrap();
    let error = read_until(&mut sock, &mut decoder, |stream, m| {
        stream == 0 && matches!(m, Message::Error(_))
    });
    assert!(
        matches!(&error, Message::Error(e) if e.message.contains("did not start a frame")),
        "{error:?}"
    );

    // A well-framed Exec with broken JSON: an error on its own stream.
    let mut bad = Vec::new();
    banger_agent_proto::encode_frame(banger_agent_proto::Kind::Exec, 5, b"{nope", &mut bad)
        .unwrap();
    sock.write_all(&bad).unwrap();
    let error = read_until(&mut sock, &mut decoder, |stream, m| {
        stream == 5 && matches!(m, Message::Error(_))
    });
    assert!(
        matches!(&error, Message::Error(e) if e.message.contains("malformed")),
        "{error:?}"
    );

    sock.write_all(&Message::Ping.encode(6).unwrap()).unwrap();
    let pong = read_until(&mut sock, &mut decoder, |stream, _| stream == 6);
    assert_eq!(pong, Message::Pong);
}

#[tokio::test]
async fn a_reconnect_gets_a_fresh_session_and_the_old_processes_die() {
    let agent = RunningAgent::start();
    let (client, _) = agent.connect().await;
    let mut session = client
        .exec(ExecRequest::new(["sleep", "100"]))
        .await
        .unwrap();
    let Some(ExecEvent::Started { pid }) = session.next_event().await else {
        panic!("no Started event");
    };
    assert!(common::process_exists(pid));
    drop(session);
    drop(client);
    // The agent kills and reaps the old session's processes before it takes the next
    // connection, so once the new handshake is done the old pid is gone.
    let (client, _) = agent.connect().await;
    assert!(
        !common::process_exists(pid),
        "pid {pid} survived the reconnect"
    );
    let output = client
        .exec(ExecRequest::new(["echo", "again"]))
        .await
        .unwrap()
        .wait_with_output()
        .await
        .unwrap();
    assert_eq!(output.stdout, b"again\n");
}

#[test]
fn version_flag_prints_the_version() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_banger-agent"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        format!("banger-agent {}\n", env!("CARGO_PKG_VERSION"))
    );
}
