//! banger's exit statuses (docs/cli.md lists them for users).
//!
//! `run` and `exec` pass the guest command's status through, so their own failures must
//! use statuses a command rarely returns, as docker's do: 125 when banger fails (before
//! the command ran, or losing it), while 126 (cannot be invoked) and 127 (not found)
//! come from the guest agent, which reports them the way a shell does. Every other
//! command exits 0, 1 when it fails, 2 for a command line that does not parse.

/// A command that is not `run`/`exec` failed.
pub const FAILURE: i32 = 1;
/// `run`/`exec`: banger itself failed (bad flags, no such VM, not running, no daemon,
/// the connection lost): the guest command did not run, or its fate is unknown.
pub const NOT_RUN: i32 = 125;
/// A reader of banger's output went away while `run`/`exec` streamed the command's
/// output: what a shell reports for a command killed by SIGPIPE.
pub const BROKEN_PIPE: i32 = 128 + libc::SIGPIPE;

/// The status for an error that reached `main`.
pub fn for_error(err: &anyhow::Error, runs_guest_command: bool) -> i32 {
    match (is_broken_pipe(err), runs_guest_command) {
        (true, true) => BROKEN_PIPE,
        // The reader has all it wanted (`banger vm logs dev | head -1`): success.
        (true, false) => 0,
        (false, true) => NOT_RUN,
        (false, false) => FAILURE,
    }
}

/// Whether `err` is (caused by) writing to a pipe nobody reads any more.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The status for a command line that does not parse: clap's (0 for `--help`, 2 for
/// a mistake), but 125 for `run`/`exec`, whose 2 could be the guest command's.
pub fn for_usage_error(err: &clap::Error, names_guest_command: bool) -> i32 {
    if err.use_stderr() && names_guest_command {
        NOT_RUN
    } else {
        err.exit_code()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn broken_pipes_are_quiet_and_guest_commands_use_125() {
        let pipe = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
            .context("writing output");
        assert!(is_broken_pipe(&pipe));
        assert_eq!(for_error(&pipe, false), 0);
        assert_eq!(for_error(&pipe, true), 141);
        let other: anyhow::Error = Err::<(), _>(std::io::Error::other("boom"))
            .context("x")
            .unwrap_err();
        assert_eq!(for_error(&other, false), 1);
        assert_eq!(for_error(&other, true), 125);
    }
}
