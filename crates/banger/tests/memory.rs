//! `vm create` / `vm run` through a real daemon (started by the CLI in dev mode): a guest
//! larger than this host's memory is refused before anything is made, with `--memory` said
//! back as it was typed.

use crate::support;

use support::{StopDaemon, banger, text};

#[test]
fn memory_the_host_cannot_give_is_refused_in_the_units_typed() {
    let dir = tempfile::tempdir().unwrap();
    let _stop = StopDaemon(&dir);
    // No host this runs on has a tebibyte of memory (MEMORY_MIB_RANGE's ceiling).
    let out = banger(&dir, &["vm", "create", "--name", "huge", "--memory", "1T"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("--memory 1T is more than this host has ") && err.contains(" MiB"),
        "{err}"
    );
    assert!(err.contains("ask for at most "), "{err}");

    // Nothing was made.
    let out = banger(&dir, &["vm", "ls", "--format", "{{.name}}"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "");
}
