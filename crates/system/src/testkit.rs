//! Test support (cargo feature `testkit`, for other crates' tests; never in a release
//! build): playing an unprivileged peer of a root test process.

use std::ffi::OsStr;
use std::os::unix::process::CommandExt;

/// The name libtest knows test `name` of module `module` by (pass `module_path!()`): the
/// module's path without the test binary's own crate, as `--exact` wants it.
pub fn test_name(module: &str, name: &str) -> String {
    match module.split_once("::") {
        Some((_, path)) => format!("{path}::{name}"),
        None => name.to_owned(),
    }
}

/// The running test binary, set to run test `name` (see [`test_name`]) alone: the caller
/// adds its environment, output and identity, and checks the test really ran (a name no
/// test has runs nothing and passes).
pub fn rerun_command(name: &str) -> std::process::Command {
    let exe = std::env::current_exe()
        .unwrap_or_else(|e| panic!("cannot find the running test binary: {e}"));
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["--exact", name, "--test-threads=1"]);
    cmd
}

/// Runs test `name` (see [`test_name`]) of the running test binary again, alone and with its output shown, as
/// uid and gid `uid`, with `env` set: how a root test plays the owner's side (a daemon or a
/// client) against the root side it serves in-process. The re-run test finds its inputs in
/// `env` and returns at once without them, so it passes in an ordinary run.
///
/// Panics, with the re-run's output, unless it passed; returns what it printed.
pub fn rerun_test_as(name: &str, uid: u32, env: &[(&str, &dyn AsRef<OsStr>)]) -> String {
    let out = rerun_command(name)
        .arg("--nocapture")
        .envs(env.iter().map(|(k, v)| (k, v.as_ref())))
        .uid(uid)
        .gid(uid)
        .output()
        .unwrap_or_else(|e| panic!("cannot run test {name} as uid {uid}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "test {name}, run as uid {uid}, failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // A name no test has runs nothing and passes: the re-run must have been that one test.
    assert!(
        stdout.contains("running 1 test\n"),
        "no test of this binary is named {name}:\n{stdout}"
    );
    stdout
}
