//! Execs against the real agent binary over a Unix socket.

use crate::common;

use banger_agent_client::{ExecEvent, ExecRequest};
use common::{LONG, RunningAgent, noise, sha256_hex};

#[tokio::test]
async fn exit_code_passes_through() {
    let agent = RunningAgent::start();
    let (client, ready) = agent.connect().await;
    assert!(!ready.pid1);
    assert_eq!(ready.agent_version, env!("CARGO_PKG_VERSION"));
    let output = client
        .exec(ExecRequest::new(["sh", "-c", "exit 3"]))
        .await
        .unwrap()
        .wait_with_output()
        .await
        .unwrap();
    assert_eq!(output.status.code, Some(3));
    assert!(!output.status.success());
}

#[tokio::test]
async fn stdout_and_stderr_stay_separate_and_env_and_cwd_apply() {
    let agent = RunningAgent::start();
    let (client, _) = agent.connect().await;
    let cwd = agent.dir.path().to_str().unwrap().to_owned();
    let request = ExecRequest::new(["sh", "-c", "pwd; echo $FOO $HOME; echo oops >&2"])
        .env("FOO", "bar")
        .cwd(&cwd);
    let output = client
        .exec(request)
        .await
        .unwrap()
        .wait_with_output()
        .await
        .unwrap();
    assert!(output.status.success(), "{:?}", output);
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        format!("{cwd}\nbar /root\n")
    );
    assert_eq!(output.stderr, b"oops\n");
}

#[tokio::test]
async fn stdin_is_piped_through_cat() {
    let agent = RunningAgent::start();
    let (client, _) = agent.connect().await;
    let mut session = client
        .exec(ExecRequest::new(["cat"]).stdin(true))
        .await
        .unwrap();
    let mut stdin = session.take_stdin().unwrap();
    stdin.write(b"hello ").await.unwrap();
    stdin.write(b"agent").await.unwrap();
    stdin.close().await.unwrap();
    let output = session.wait_with_output().await.unwrap();
    assert_eq!(output.stdout, b"hello agent");
    assert!(output.status.success());
}

#[tokio::test]
async fn ten_mebibytes_of_output_arrive_intact_and_in_order() {
    let agent = RunningAgent::start();
    let (client, _) = agent.connect().await;
    let file = agent.dir.path().join("random");
    let script = "head -c 10485760 /dev/urandom > \"$F\" && cat \"$F\" && sha256sum \"$F\" >&2";
    let request = ExecRequest::new(["sh", "-c", script]).env("F", file.to_str().unwrap());
    let output = client
        .exec(request)
        .await
        .unwrap()
        .wait_with_output()
        .await
        .unwrap();
    assert!(output.status.success(), "{:?}", output.errors);
    assert_eq!(output.stdout.len(), 10 * 1024 * 1024);
    let guest_hash = String::from_utf8(output.stderr).unwrap();
    assert_eq!(
        guest_hash.split_whitespace().next().unwrap(),
        sha256_hex(&output.stdout)
    );
}

#[tokio::test]
async fn ten_mebibytes_of_stdin_round_trip_through_cat() {
    let agent = RunningAgent::start();
    let (client, _) = agent.connect().await;
    let data = noise(10 * 1024 * 1024, 7);
    let mut session = client
        .exec(ExecRequest::new(["cat"]).stdin(true))
        .await
        .unwrap();
    let mut stdin = session.take_stdin().unwrap();
    let sent = data.clone();
    // Feeding and reading concurrently: cat's output must be drained while input flows.
    let feeder = tokio::spawn(async move {
        stdin.write(&sent).await.unwrap();
        stdin.close().await.unwrap();
    });
    let output = session.wait_with_output().await.unwrap();
    feeder.await.unwrap();
    assert!(output.status.success());
    assert_eq!(output.stdout.len(), data.len());
    assert_eq!(sha256_hex(&output.stdout), sha256_hex(&data));
}

#[tokio::test]
async fn a_signal_kills_sleep() {
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
    session.signal(libc::SIGTERM).await.unwrap();
    let output = tokio::time::timeout(LONG, session.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(output.status.signal, Some(libc::SIGTERM));
    assert_eq!(output.status.code, None);
}

#[tokio::test]
async fn execs_run_concurrently() {
    let agent = RunningAgent::start();
    let (client, _) = agent.connect().await;
    // The first exec blocks on its stdin until the second one has finished.
    let mut first = client
        .exec(ExecRequest::new(["sh", "-c", "read line; echo first:$line"]).stdin(true))
        .await
        .unwrap();
    let second = client
        .exec(ExecRequest::new(["echo", "second"]))
        .await
        .unwrap();
    assert_ne!(first.stream_id(), second.stream_id());
    let second = second.wait_with_output().await.unwrap();
    assert_eq!(second.stdout, b"second\n");
    first.stdin_mut().unwrap().write(b"go\n").await.unwrap();
    let first = first.wait_with_output().await.unwrap();
    assert_eq!(first.stdout, b"first:go\n");
}

#[tokio::test]
async fn a_missing_program_reports_an_error_and_code_127() {
    let agent = RunningAgent::start();
    let (client, _) = agent.connect().await;
    let output = client
        .exec(ExecRequest::new(["definitely-not-a-program-xyz"]))
        .await
        .unwrap()
        .wait_with_output()
        .await
        .unwrap();
    assert_eq!(output.status.code, Some(127));
    assert_eq!(
        output.errors,
        ["exec: no such file or directory: definitely-not-a-program-xyz"]
    );
    let output = client
        .exec(ExecRequest::new(["true"]).cwd("/nonexistent-dir-xyz"))
        .await
        .unwrap()
        .wait_with_output()
        .await
        .unwrap();
    assert_eq!(output.status.code, Some(126));
    assert!(
        output.errors[0].contains("/nonexistent-dir-xyz"),
        "{:?}",
        output.errors
    );
}

#[tokio::test]
async fn a_tty_exec_sees_a_terminal_of_the_requested_size_and_resizes() {
    let agent = RunningAgent::start();
    let (client, _) = agent.connect().await;
    let output = client
        .exec(ExecRequest::new(["sh", "-c", "tty; stty size; echo $TERM"]).tty(24, 100))
        .await
        .unwrap()
        .wait_with_output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("/dev/pts/"), "{text}");
    assert!(text.contains("24 100"), "{text}");
    assert!(text.contains("xterm-256color"), "{text}");

    let mut session = client
        .exec(
            ExecRequest::new(["sh", "-c", "read line; stty size"])
                .tty(24, 80)
                .stdin(true),
        )
        .await
        .unwrap();
    // Frames are handled in order: the resize lands before the line that lets it run on.
    session.resize(30, 120).await.unwrap();
    session.stdin_mut().unwrap().write(b"\n").await.unwrap();
    let output = session.wait_with_output().await.unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("30 120"), "{text}");
}

#[tokio::test]
async fn execs_start_with_no_blocked_signals() {
    let agent = RunningAgent::start();
    let (client, _) = agent.connect().await;
    let output = client
        .exec(ExecRequest::new(["grep", "SigBlk", "/proc/self/status"]))
        .await
        .unwrap()
        .wait_with_output()
        .await
        .unwrap();
    assert_eq!(output.stdout, b"SigBlk:\t0000000000000000\n");
}

#[tokio::test]
async fn a_background_child_holding_the_output_does_not_hold_exited() {
    let agent = RunningAgent::start();
    let (client, _) = agent.connect().await;
    let output = tokio::time::timeout(
        LONG,
        client
            .exec(ExecRequest::new(["sh", "-c", "sleep 60 & echo $!"]))
            .await
            .unwrap()
            .wait_with_output(),
    )
    .await
    .expect("Exited must come although `sleep` keeps stdout open")
    .unwrap();
    assert!(output.status.success());
    let pid: i32 = String::from_utf8(output.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: signalling the test's own leftover child process.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}
