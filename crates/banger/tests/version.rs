//! The CLI compares its build with the daemon's on every connection: silent when they
//! match (a daemon it started itself), a warning that says what to do when not (a
//! stand-in daemon that claims another build answers on the socket).

use crate::support;

use support::{banger, text};

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;

/// Answer `/v1/health` as a daemon of build `build`, and `/v1/vms` with no VMs, one
/// request per connection, until the test ends.
fn stand_in_daemon(dir: &tempfile::TempDir, build: &'static str) {
    std::fs::create_dir_all(dir.path().join("run")).unwrap();
    let listener = UnixListener::bind(dir.path().join("run/bangerd.sock")).unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap() == 0 || header == "\r\n" {
                    break;
                }
            }
            let body = if request_line.contains("/v1/health") {
                serde_json::json!({
                    "version": env!("CARGO_PKG_VERSION"), "build": build, "pid": 4242,
                    "mode": "dev (user)", "state_dir": "/x", "driver": "qemu (tcg)",
                    "driver_reason": "test"
                })
                .to_string()
            } else {
                "[]".to_string()
            };
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
}

#[test]
fn a_daemon_of_another_build_gets_a_warning_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    stand_in_daemon(&dir, "000000000000");
    let out = banger(&dir, &["vm", "ls", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        "[]",
        "stdout stays clean for scripts"
    );
    let err = text(&out.stderr);
    assert!(err.contains("warning:"), "{err}");
    assert!(err.contains("pid 4242"), "{err}");
    assert!(err.contains("build 000000000000"), "{err}");
    assert!(err.contains("banger daemon stop"), "{err}");
}

#[test]
fn the_daemon_a_cli_starts_is_its_own_build() {
    let dir = tempfile::tempdir().unwrap();
    let out = banger(&dir, &["vm", "ls"]);
    let log = std::fs::read_to_string(dir.path().join("state/daemon.log")).unwrap_or_default();
    let status = banger(&dir, &["daemon", "status", "--json"]);
    let _ = banger(&dir, &["daemon", "stop"]);
    assert!(out.status.success(), "{}\n{log}", text(&out.stderr));
    assert!(
        !text(&out.stderr).contains("warning"),
        "{}",
        text(&out.stderr)
    );
    let health: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    let build = health["build"].as_str().unwrap();
    assert_eq!(build.len(), 12, "{health}");
    assert!(build.chars().all(|c| c.is_ascii_hexdigit()), "{health}");
}
