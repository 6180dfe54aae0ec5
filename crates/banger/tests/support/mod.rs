//! Running the `banger` binary under test in an installation of its own.
#![allow(dead_code, clippy::unwrap_used)]

use std::process::{Command, Output, Stdio};

/// Run `banger args` with every banger directory inside `dir` and stdin closed.
pub fn banger(dir: &tempfile::TempDir, args: &[&str]) -> Output {
    banger_command(dir, args).output().unwrap()
}

/// `banger args` with every banger directory inside `dir` and stdin closed, to run.
pub fn banger_command(dir: &tempfile::TempDir, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_banger"));
    cmd.args(args)
        .env("BANGER_STATE_DIR", dir.path().join("state"))
        .env("BANGER_RUNTIME_DIR", dir.path().join("run"))
        .env("BANGER_CONFIG_DIR", dir.path().join("config"))
        .env("BANGER_ETC_DIR", dir.path().join("etc"))
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    cmd
}

/// Stops the daemon the CLI started (in dev mode, inside the test's directory), whatever
/// the test's outcome.
pub struct StopDaemon<'a>(pub &'a tempfile::TempDir);

impl Drop for StopDaemon<'_> {
    fn drop(&mut self) {
        let out = banger(self.0, &["daemon", "stop"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
}

pub fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}
