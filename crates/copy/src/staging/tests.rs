//! Staging directories left by killed copies, with real processes: a copy runs in a child
//! (this test binary again, in `a_copy_that_waits`), blocked reading its stream, while
//! copies run beside it; then it is killed with SIGKILL, as `kill -9` or the OOM killer
//! would.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

use super::*;
use crate::{SyncOptions, pack, sync, unpack_to};

const WAIT_IN: &str = "BANGER_COPY_TEST_WAIT_IN";
const WAIT_KIND: &str = "BANGER_COPY_TEST_WAIT_KIND";

/// Stdin, saying `STAGED` on stdout when it is first read: the copy has made (and locked)
/// its staging directory by then.
struct Announcing {
    said: bool,
}

impl Read for Announcing {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if !self.said {
            self.said = true;
            let mut out = std::io::stdout().lock();
            out.write_all(b"STAGED\n")?;
            out.flush()?;
        }
        std::io::stdin().read(buf)
    }
}

/// Not a test of its own: the child of [`waiting_copy`], a copy into `$WAIT_IN` whose
/// stream (stdin) never ends.
#[test]
#[ignore = "run by the staging tests as a child process"]
fn a_copy_that_waits() {
    let (Some(dest), Some(kind)) = (std::env::var_os(WAIT_IN), std::env::var_os(WAIT_KIND)) else {
        return;
    };
    let dest = PathBuf::from(dest);
    let input = Announcing { said: false };
    let _ = if kind == "cp" {
        unpack_to(input, &dest.join("arriving")).map(drop)
    } else {
        sync::receive(input, &dest, &opts()).map(drop)
    };
}

fn opts() -> SyncOptions {
    SyncOptions {
        delete: false,
        max_bytes: 1 << 20,
    }
}

/// A copy of `kind` (`cp` or `sync`) into `dest` in a child process, once it has made its
/// staging directory; its stdin stays open (the stream goes on) until dropped.
fn waiting_copy(kind: &str, dest: &Path) -> (Child, ChildStdin) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "staging::tests::a_copy_that_waits"])
        .args(["--ignored", "--nocapture", "--test-threads=1"])
        .env(WAIT_IN, dest)
        .env(WAIT_KIND, kind)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        let line = lines.next().expect("the copy ended before it staged");
        // After libtest's own `test NAME ... `, on the same line.
        if line.unwrap().ends_with("STAGED") {
            break;
        }
    }
    (child, stdin)
}

/// A whole copy of `kind` into `dest`: under the new name `name` for `cp`, into `dest`
/// itself (as `tree`) for `cp-into`.
fn copy(kind: &str, dest: &Path, name: &str) {
    let src = tempfile::tempdir().unwrap();
    let tree = src.path().join("tree");
    fs::create_dir(&tree).unwrap();
    fs::write(tree.join("f"), name).unwrap();
    let mut stream = Vec::new();
    pack(&tree, &mut stream).unwrap();
    if kind == "cp" {
        unpack_to(&stream[..], &dest.join(name)).unwrap();
        assert_eq!(fs::read_to_string(dest.join(name).join("f")).unwrap(), name);
    } else if kind == "cp-into" {
        unpack_to(&stream[..], dest).unwrap();
        assert_eq!(fs::read_to_string(dest.join("tree/f")).unwrap(), name);
    } else {
        sync::receive(&stream[..], dest, &opts()).unwrap();
        assert_eq!(fs::read_to_string(dest.join("f")).unwrap(), name);
    }
}

/// The entries of `dest` whose names start with `prefix`.
fn named(dest: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(dest)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with(prefix))
        .collect();
    found.sort();
    found
}

#[test]
fn a_killed_copys_staging_goes_with_the_next_copy_a_live_ones_stays() {
    for (kind, prefix) in [("cp", ".banger-cp."), ("sync", ".banger-sync.")] {
        let dest = tempfile::tempdir().unwrap();
        let (mut child, stdin) = waiting_copy(kind, dest.path());
        let staged = named(dest.path(), prefix);
        assert_eq!(staged.len(), 1, "{kind}: {staged:?}");
        fs::write(staged[0].join("half-written"), "x").unwrap();

        // A copy beside a running one leaves its staging directory alone.
        copy(kind, dest.path(), "first");
        assert!(staged[0].join("half-written").is_file(), "{kind}");
        if kind == "cp" {
            copy("cp-into", dest.path(), "first");
            assert!(staged[0].join("half-written").is_file());
        }

        // Killed, the copy leaves it behind...
        child.kill().unwrap();
        child.wait().unwrap();
        drop(stdin);
        assert!(staged[0].is_dir(), "{kind}");
        // ...and the next copy into that directory removes it (for `vm cp`, one into the
        // directory itself too, which makes no staging directory of its own).
        let next = if kind == "cp" { "cp-into" } else { kind };
        copy(next, dest.path(), "second");
        assert_eq!(named(dest.path(), prefix), Vec::<PathBuf>::new(), "{kind}");
    }
}

#[test]
fn only_directories_named_as_banger_names_them_are_swept() {
    let dest = tempfile::tempdir().unwrap();
    let d = dest.path();
    // Left by a copy no longer running (or by a banger from before the locks).
    fs::create_dir_all(d.join(".banger-cp.12.34/tree/sub")).unwrap();
    fs::write(d.join(".banger-cp.12.34/tree/sub/f"), "x").unwrap();
    // Not banger's names, another kind's, not directories: kept.
    let kept = [
        ".banger-cp.12",
        ".banger-cp.12.34.56",
        ".banger-cp.x.34",
        ".banger-cp.12.",
        ".banger-cpx.1.2",
        "banger-cp.1.2",
        ".banger-sync.1.2",
    ];
    for name in kept {
        fs::create_dir(d.join(name)).unwrap();
    }
    fs::write(d.join(".banger-cp.5.6"), "a file").unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    fs::write(elsewhere.path().join("precious"), "x").unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), d.join(".banger-cp.7.8")).unwrap();

    copy("cp", d, "new");
    assert!(!d.join(".banger-cp.12.34").exists());
    for name in kept {
        assert!(d.join(name).is_dir(), "{name}");
    }
    assert_eq!(
        fs::read_to_string(d.join(".banger-cp.5.6")).unwrap(),
        "a file"
    );
    assert!(fs::symlink_metadata(d.join(".banger-cp.7.8")).is_ok());
    assert!(elsewhere.path().join("precious").is_file());
    assert!(is_staging_name(".banger-sync.1.2", ".banger-sync"));
    assert!(!is_staging_name(".banger-sync.1.2", ".banger-cp"));
}

#[test]
fn a_sync_with_delete_spares_other_copies_staging_directories() {
    let dest = tempfile::tempdir().unwrap();
    let d = dest.path();
    fs::write(d.join("only-on-the-host"), "x").unwrap();
    // A live sync's (locked, as a running copy holds it) and a `vm cp`'s: not in the
    // guest's tree, yet not the host's files to delete.
    fs::create_dir(d.join(".banger-sync.3.4")).unwrap();
    let held = open_dir(&d.join(".banger-sync.3.4")).unwrap();
    // SAFETY: flock takes an open descriptor (`held` lives across the call).
    let locked = unsafe { libc::flock(held.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    assert_eq!(locked, 0);
    fs::create_dir(d.join(".banger-cp.5.6")).unwrap();
    let delete = SyncOptions {
        delete: true,
        ..opts()
    };
    let src = tempfile::tempdir().unwrap();
    fs::create_dir(src.path().join("tree")).unwrap();
    let mut stream = Vec::new();
    pack(&src.path().join("tree"), &mut stream).unwrap();
    let report = sync::receive(&stream[..], d, &delete).unwrap();
    assert_eq!(report.deleted, 1);
    assert!(!d.join("only-on-the-host").exists());
    assert!(d.join(".banger-sync.3.4").is_dir());
    assert!(d.join(".banger-cp.5.6").is_dir());
    drop(held);
}
