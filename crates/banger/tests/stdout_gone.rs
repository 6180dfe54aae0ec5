//! A reader of banger's output that goes away (`banger vm create … | head -0`): banger
//! stops quietly with status 0, as docs/cli.md promises, instead of panicking on the
//! write (status 101 and a backtrace). Through a real daemon and store, with a stand-in
//! image (a create that does not boot needs only its record). The same for stderr, whose
//! messages are dropped when nobody reads them.

use crate::support;

use std::os::fd::OwnedFd;
use std::process::Stdio;

use banger_store::Store;
use support::{StopDaemon, banger, banger_command, image, state_dir, text};

#[test]
fn a_created_vm_said_to_a_closed_pipe_is_a_quiet_success() {
    let dir = tempfile::tempdir().unwrap();
    let state = state_dir(&dir);
    image(
        &Store::open(state.join("state.db")).unwrap(),
        &state,
        "stand-in",
        "recipe:minimal",
        None,
    );
    let _stop = StopDaemon(&dir);
    // stdout is a pipe whose reading end is already closed.
    let (read, write): (OwnedFd, OwnedFd) = nix::unistd::pipe().unwrap();
    drop(read);
    let out = banger_command(
        &dir,
        &["vm", "create", "--name", "piped", "--image", "stand-in"],
    )
    .stdout(Stdio::from(write))
    .stderr(Stdio::piped())
    .output()
    .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // The VM was made all the same.
    let ls = banger(&dir, &["vm", "ls", "-q"]);
    assert_eq!(text(&ls.stdout).trim(), "piped", "{}", text(&ls.stderr));
}

/// stderr's reader gone too: what banger says there is dropped, never a panic. A second
/// `banger daemon run` says on stderr that one already runs, and exits 75 all the same.
#[test]
fn a_message_to_a_closed_stderr_is_dropped_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let _stop = StopDaemon(&dir);
    // The CLI starts the first daemon.
    let ls = banger(&dir, &["vm", "ls"]);
    assert!(ls.status.success(), "{}", text(&ls.stderr));
    let (read, write): (OwnedFd, OwnedFd) = nix::unistd::pipe().unwrap();
    drop(read);
    let out = banger_command(&dir, &["daemon", "run"])
        .stdout(Stdio::piped())
        .stderr(Stdio::from(write))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(75), "{out:?}");
}
