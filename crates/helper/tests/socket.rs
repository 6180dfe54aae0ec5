//! The helper's socket against real peers: only its owner is admitted (a child re-run as
//! another uid is refused), malformed and foreign requests are refused over the wire, a
//! stale socket is replaced, and probing tells answers, refusals and absence apart. Needs
//! root.

use crate::support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use banger_helper::{Executor, HelperClient, Privileged, server};
use banger_helper_proto::FailureKind;
use banger_system::RealRunner;
use support::require_root;

/// When re-run as another uid by the test below: connect and report what the helper said.
#[test]
fn peer_child() {
    let Ok(socket) = std::env::var("BANGER_TEST_PEER_SOCKET") else {
        return;
    };
    let client = HelperClient::new(Path::new(&socket));
    match client.hello() {
        Ok(uid) => println!("PEER-ADMITTED {uid}"),
        Err(e) => println!(
            "PEER-REFUSED {:?} {}",
            e.kind(),
            banger_system::error_chain(&e)
        ),
    }
}

fn run_as(uid: u32, socket: &Path) -> String {
    banger_system::testkit::rerun_test_as(
        &banger_system::testkit::test_name(module_path!(), "peer_child"),
        uid,
        &[("BANGER_TEST_PEER_SOCKET", &socket)],
    )
}

#[test]
fn the_socket_admits_only_the_owner() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let socket = dir.path().join("helper.sock");
    let owner = 4243;
    let listener = server::bind(&socket, owner).unwrap();
    let facts = banger_system::fsperm::FileFacts::lstat(&socket).unwrap();
    assert_eq!((facts.mode, facts.uid), (0o600, owner));
    // A second helper on the same socket is refused while the first listens.
    assert!(
        server::bind(&socket, owner)
            .unwrap_err()
            .to_string()
            .contains("already listening")
    );

    let executor = Arc::new(Executor::new(owner, Arc::new(RealRunner), None));
    std::thread::spawn(move || server::serve(listener, executor));

    assert!(run_as(owner, &socket).contains(&format!("PEER-ADMITTED {owner}")));
    // Another uid: the file mode stops it first...
    let other = run_as(65534, &socket);
    assert!(
        other.contains("PEER-REFUSED None") && other.contains("Permission denied"),
        "{other}"
    );
    // ...and with the mode opened up, SO_PEERCRED still does.
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let other = run_as(65534, &socket);
    assert!(other.contains("PEER-REFUSED Some(NotPermitted)"), "{other}");
    assert!(
        other.contains("uid 65534 may not use this helper"),
        "{other}"
    );
    // Root is not the owner either.
    let err = HelperClient::new(&socket).hello().unwrap_err();
    assert_eq!(err.kind(), Some(FailureKind::NotPermitted));
}

#[test]
fn malformed_and_foreign_requests_are_refused_over_the_wire() {
    require_root();
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("helper.sock");
    let listener = server::bind(&socket, 0).unwrap();
    let executor = Arc::new(Executor::new(0, Arc::new(RealRunner), None));
    std::thread::spawn(move || server::serve(listener, executor));
    let ask = |payload: &[u8]| {
        let mut s = std::os::unix::net::UnixStream::connect(&socket).unwrap();
        s.write_all(&(payload.len() as u32).to_be_bytes()).unwrap();
        s.write_all(payload).unwrap();
        // No more requests: the helper answers, sees the end and closes.
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        String::from_utf8_lossy(&out).into_owned()
    };
    for (payload, want) in [
        (&br#"{"version":1,"verb":"launch_vmm"}"#[..], "bad_request"),
        (br#"{"version":1,"verb":{"delete_tap":{"tap":"eth0"}}}"#, "bad_request"),
        (br#"{"version":1,"verb":{"add_publish":{"publish":{"mapping":{"protocol":"tcp","host_port":70000,"guest_port":1},"guest_addr":"10.0.0.2"}}}}"#, "bad_request"),
        (br#"{"version":99,"verb":"hello"}"#, "version_mismatch"),
    ] {
        let out = ask(payload);
        assert!(out.contains(want), "{}: {out}", String::from_utf8_lossy(payload));
    }
    // An oversized length is refused without reading it.
    let mut s = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    s.write_all(&(1u32 << 30).to_be_bytes()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let out = String::from_utf8_lossy(&out);
    assert!(out.contains("larger than"), "{out}");
}

/// When re-run by [`stale_socket`]: bind a socket at the path and exit.
#[test]
fn stale_socket_child() {
    let Ok(path) = std::env::var("BANGER_TEST_STALE_SOCKET") else {
        return;
    };
    drop(std::os::unix::net::UnixListener::bind(path).unwrap());
}

/// A socket file nothing listens behind, bound by a process of its own. One bound and
/// dropped here is not stale at once: a process another thread is forking holds a copy of
/// every descriptor until its exec closes it, and meanwhile the listener accepts (and then
/// resets) connections — a probe then saw a helper that failed, not one that is absent.
fn stale_socket(path: &Path) {
    let name = banger_system::testkit::test_name(module_path!(), "stale_socket_child");
    let status = banger_system::testkit::rerun_command(&name)
        .env("BANGER_TEST_STALE_SOCKET", path)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(
        status.success() && path.exists(),
        "cannot make a stale socket"
    );
}

#[test]
fn probing_the_helper_socket_tells_answers_refusals_and_absence() {
    use banger_helper::{HelperProbe, probe_helper, probe_helpers};
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.sock");
    assert!(
        matches!(probe_helper(&missing), HelperProbe::Absent(m) if m.contains("no helper socket"))
    );

    // A stale socket file: nothing listens behind it — even while this process forks (as
    // the other tests here do, running commands), which once made one answer.
    use std::sync::atomic::{AtomicBool, Ordering};
    let forking = Arc::new(AtomicBool::new(true));
    let forker = {
        let forking = forking.clone();
        std::thread::spawn(move || {
            while forking.load(Ordering::Relaxed) {
                let _ = std::process::Command::new("true").status();
            }
        })
    };
    let mut stale = PathBuf::new();
    for i in 0..100 {
        stale = dir.path().join(format!("stale-{i}.sock"));
        stale_socket(&stale);
        let probe = probe_helper(&stale);
        assert!(
            matches!(&probe, HelperProbe::Absent(m) if m.contains("cannot reach")),
            "{probe:?}"
        );
    }
    forking.store(false, Ordering::Relaxed);
    forker.join().unwrap();

    let serve = |owner: u32, name: &str| {
        let socket = dir.path().join(name);
        let listener = server::bind(&socket, owner).unwrap();
        let executor = Arc::new(Executor::new(owner, Arc::new(RealRunner), None));
        std::thread::spawn(move || server::serve(listener, executor));
        socket
    };
    let ours = serve(0, "ours.sock");
    assert_eq!(probe_helper(&ours), HelperProbe::Answers);
    let theirs_socket = serve(4244, "theirs.sock");
    let theirs = probe_helper(&theirs_socket);
    assert!(
        matches!(&theirs, HelperProbe::Refuses(m) if m.contains("serves only uid 4244")),
        "{theirs:?}"
    );

    // Candidates in order: the first that answers; else the refusal is the news.
    let (at, found) = probe_helpers(&[missing.clone(), ours.clone()]);
    assert_eq!((at, found), (ours, HelperProbe::Answers));
    let (at, found) = probe_helpers(&[missing.clone(), theirs_socket]);
    assert_eq!(at, missing);
    assert!(matches!(found, HelperProbe::Refuses(_)), "{found:?}");
    let (_, found) = probe_helpers(&[missing, stale]);
    assert!(
        matches!(&found, HelperProbe::Absent(m) if m.contains("no helper socket") && m.contains("cannot reach")),
        "{found:?}"
    );
}
