//! `banger ssh-config --install/--uninstall` against a ~/.ssh/config that is not banger's
//! own doing: the status, --install and --uninstall agree on what includes banger's
//! config, and a line banger did not write is never edited.

use crate::support;

use std::process::Output;

use support::{banger_command, text};

/// `banger ssh-config args` with its own HOME beside banger's directories.
fn ssh_config(dir: &tempfile::TempDir, args: &[&str]) -> Output {
    let args: Vec<&str> = std::iter::once("ssh-config")
        .chain(args.iter().copied())
        .collect();
    banger_command(dir, &args)
        .env("HOME", dir.path().join("home"))
        .output()
        .unwrap()
}

#[test]
fn an_include_banger_did_not_write_is_reported_not_left_silently() {
    let dir = tempfile::tempdir().unwrap();
    let user = dir.path().join("home/.ssh/config");
    std::fs::create_dir_all(user.parent().unwrap()).unwrap();
    // A glob covering banger's file, with a trailing comment (OpenSSH ignores it).
    let theirs = format!(
        "Include {}/config/ssh_conf* # mine\nHost x\n",
        dir.path().display()
    );
    std::fs::write(&user, &theirs).unwrap();
    let status = ssh_config(&dir, &[]);
    assert!(text(&status.stdout).contains("enabled:"), "{status:?}");
    let out = ssh_config(&dir, &["--uninstall"]);
    assert!(!out.status.success(), "{out:?}");
    let err = text(&out.stderr);
    assert!(
        err.contains("did not write") && err.contains("by hand"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&user).unwrap(), theirs);
}

/// ssh reads ~/.ssh/config from the user database's home, not from HOME: an install into
/// another HOME works for `ssh -F` only, and says so instead of promising `ssh NAME.vm`.
#[test]
fn an_install_under_a_home_ssh_does_not_read_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let out = ssh_config(&dir, &["--install"]);
    assert!(out.status.success(), "{out:?}");
    let err = text(&out.stderr);
    let theirs = nix::unistd::User::from_uid(nix::unistd::getuid())
        .unwrap()
        .unwrap()
        .dir;
    assert!(
        err.contains(&format!("ssh reads {}/.ssh/config", theirs.display())),
        "{err}"
    );
    assert!(err.contains("banger vm ssh"), "{err}");
}
