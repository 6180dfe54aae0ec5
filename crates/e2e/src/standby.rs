//! Warm standbys seen from outside: how many an image has ready (the daemon's own word,
//! `image inspect`), and which processes still run for an installation.

use std::time::{Duration, Instant};

use crate::Env;

/// How long a standby may take to be restored and warmed on a loaded TCG host.
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// Image `image`'s warm state as `image inspect` shows it, once it has exactly `count`
/// standbys ready; panics with the daemon's log when that does not happen in time.
pub fn wait_standbys(env: &Env, image: &str, count: u64) -> serde_json::Value {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let view: serde_json::Value =
            serde_json::from_str(&env.ok(["image", "inspect", image, "--json"]))
                .unwrap_or_else(|e| panic!("image inspect {image}: {e}"));
        if view["warm"]["standbys"].as_u64() == Some(count) {
            return view["warm"].clone();
        }
        assert!(
            Instant::now() < deadline,
            "image {image} did not get {count} standby(s) in {READY_TIMEOUT:?}: {view}\n{}",
            env.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A warm state's view without what changes as standbys come and go.
pub fn without_standbys(warm: &serde_json::Value) -> serde_json::Value {
    let mut warm = warm.clone();
    if let Some(map) = warm.as_object_mut() {
        map.remove("standbys");
    }
    warm
}

/// The pids of the processes whose command line names a path under `dir` (a VMM is given
/// its VM directory's files).
pub fn processes_under(dir: &std::path::Path) -> Vec<i32> {
    let needle = dir.to_string_lossy().into_owned();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != std::process::id() as i32)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&needle))
        })
        .collect()
}

/// Wait until this installation's daemon process is gone (after `daemon stop`, which
/// returns once the socket stops answering).
pub fn wait_daemon_gone(env: &Env, pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z ")) {
        assert!(
            Instant::now() < deadline,
            "daemon {pid} did not exit\n{}",
            env.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
