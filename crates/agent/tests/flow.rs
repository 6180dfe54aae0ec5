//! Protocol version 2 flow control against the real agent: a host that does not take an
//! exec's output stalls the process writing it (in the agent's pipe, not in any queue), and
//! a process that does not read its stdin stalls the host's writes.

use crate::common;

use std::time::Duration;

use banger_agent_client::{ExecEvent, ExecRequest};
use banger_agent_proto::{INPUT_WINDOW, OUTPUT_WINDOW, PROTO_VERSION};
use common::{LONG, RunningAgent};

/// How many 64 KiB blocks the script below managed to write.
fn progress(path: &std::path::Path) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn unread_output_stalls_the_writer_in_the_guest() {
    let agent = RunningAgent::start();
    let (client, ready) = agent.connect().await;
    assert_eq!(ready.proto_version, PROTO_VERSION);
    let counter = agent.dir.path().join("blocks");
    let script = format!(
        "i=0; while [ $i -lt 400 ]; do head -c 65536 /dev/zero; i=$((i+1)); echo $i > {}; done",
        counter.display()
    );
    let mut session = client
        .exec(ExecRequest::new(["sh", "-c", &script]))
        .await
        .unwrap();
    // Nobody takes the output for a while: the writer must stop.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stalled = progress(&counter);
    let written = stalled * 65536;
    // The window, the pipe (64 KiB) and one block in `head`'s hands.
    let bound = OUTPUT_WINDOW + 3 * 65536;
    assert!(
        written <= bound,
        "the guest wrote {written} bytes that nobody read (window {OUTPUT_WINDOW})"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(progress(&counter), stalled, "the writer was not stalled");

    // Taking the output lets the rest through, all of it.
    let mut received = 0usize;
    let status = loop {
        match tokio::time::timeout(LONG, session.next_event())
            .await
            .unwrap()
        {
            Some(ExecEvent::Stdout(data)) => received += data.len(),
            Some(ExecEvent::Exited(status)) => break status,
            Some(ExecEvent::Started { .. } | ExecEvent::Stderr(_)) => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    assert!(status.success(), "{status}");
    assert_eq!(received, 400 * 65536);
    assert_eq!(progress(&counter), 400);
}

#[tokio::test]
async fn stdin_nobody_reads_stalls_the_host() {
    let agent = RunningAgent::start();
    let (client, _) = agent.connect().await;
    let go = agent.dir.path().join("go");
    // Reads nothing until `go` exists, then counts its stdin.
    let script = format!(
        "while [ ! -e {} ]; do sleep 0.05; done; wc -c",
        go.display()
    );
    let mut session = client
        .exec(ExecRequest::new(["sh", "-c", &script]).stdin(true))
        .await
        .unwrap();
    let mut stdin = session.take_stdin().unwrap();
    let total = 8 * INPUT_WINDOW as usize;
    let data = vec![b'z'; total];
    let writer = tokio::spawn(async move {
        stdin.write(&data).await.unwrap();
        stdin.close().await.unwrap();
    });
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        !writer.is_finished(),
        "the host sent {total} bytes of stdin that nobody in the guest read"
    );
    std::fs::write(&go, b"").unwrap();
    tokio::time::timeout(LONG, writer).await.unwrap().unwrap();
    let output = tokio::time::timeout(LONG, session.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        total.to_string()
    );
}
