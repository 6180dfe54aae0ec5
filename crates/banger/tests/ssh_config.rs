//! `banger ssh-config --install/--uninstall` against a ~/.ssh/config that is not banger's
//! own doing: the status, --install and --uninstall agree on what includes banger's
//! config, and a line banger did not write is never edited.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::{Command, Output, Stdio};

use support::text;

fn ssh_config(dir: &tempfile::TempDir, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_banger"))
        .arg("ssh-config")
        .args(args)
        .env("HOME", dir.path().join("home"))
        .env("BANGER_STATE_DIR", dir.path().join("state"))
        .env("BANGER_RUNTIME_DIR", dir.path().join("run"))
        .env("BANGER_CONFIG_DIR", dir.path().join("config"))
        .env("BANGER_ETC_DIR", dir.path().join("etc"))
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
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
