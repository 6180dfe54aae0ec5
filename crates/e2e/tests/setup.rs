//! Setting banger up: `make deps` says how to get a Rust toolchain when there is none or
//! it is too old, and `make install` puts the release binaries, a man page per
//! subcommand and the shell completions under a PREFIX, where they work.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use banger_e2e::{banger_bin, stderr, stdout, workspace_root};

fn fake_tool(dir: &Path, name: &str, output: &str) {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\necho '{output}'\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn check_rust(path: &str) -> std::process::Output {
    // An absolute bash: a PATH set for the child is also where Command looks it up.
    Command::new("/bin/bash")
        .arg(workspace_root().join("scripts/check-rust"))
        .env("PATH", path)
        .output()
        .unwrap()
}

#[test]
fn make_deps_says_how_to_get_a_new_enough_rust() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().to_str().unwrap();
    let path = format!("{bin}:/usr/bin:/bin");

    // None at all: a PATH with only the tools the script itself uses.
    let bare = tempfile::tempdir().unwrap();
    for tool in ["sed", "head", "dirname", "cat"] {
        let real = ["/usr/bin", "/bin"]
            .iter()
            .map(|d| Path::new(d).join(tool))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("{tool} is not installed"));
        std::os::unix::fs::symlink(real, bare.path().join(tool)).unwrap();
    }
    let out = check_rust(bare.path().to_str().unwrap());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no Rust toolchain"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("rustup"), "{}", stderr(&out));

    // Debian 12's own: too old for edition 2024, and the message says what to do.
    fake_tool(dir.path(), "cargo", "cargo 1.65.0");
    fake_tool(dir.path(), "rustc", "rustc 1.63.0");
    let out = check_rust(&path);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("Rust 1.63.0") && err.contains("1.85"), "{err}");
    assert!(
        err.contains("sh.rustup.rs") && err.contains("rustup update stable"),
        "{err}"
    );

    for good in [
        "rustc 1.85.0 (4d91de4e4 2025-02-17)",
        "rustc 1.92.0-nightly (abc 2025-10-01)",
        "rustc 2.0.0",
    ] {
        fake_tool(dir.path(), "rustc", good);
        let out = check_rust(&path);
        assert!(out.status.success(), "{good}: {}", stderr(&out));
    }
    fake_tool(dir.path(), "rustc", "something else");
    assert_eq!(check_rust(&path).status.code(), Some(1));
}

#[test]
fn make_install_puts_binaries_man_pages_and_completions_under_prefix() {
    let bin = banger_bin();
    assert!(
        bin.is_file(),
        "the e2e tests need the release binaries: run `make build`"
    );
    let prefix = tempfile::tempdir().unwrap();
    let make = |target: &str| {
        Command::new("make")
            .arg("-C")
            .arg(workspace_root())
            .arg(target)
            .arg(format!("PREFIX={}", prefix.path().display()))
            .arg(format!("BANGER={}", bin.display()))
            .arg(format!("RELEASE_DIR={}", bin.parent().unwrap().display()))
            .output()
            .unwrap()
    };
    let out = make("install");
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));

    let p = prefix.path();
    let installed = p.join("bin/banger");
    let agent = p.join("lib/banger/banger-agent");
    assert!(installed.is_file() && agent.is_file());
    for page in [
        "banger.1",
        "banger-vm-run.1",
        "banger-exec.1",
        "banger-image-prune.1",
    ] {
        let page = p.join("share/man/man1").join(page);
        let meta = std::fs::metadata(&page).unwrap_or_else(|e| panic!("{}: {e}", page.display()));
        assert_eq!(meta.permissions().mode() & 0o777, 0o644);
    }
    let man = Command::new("man")
        .arg("-l")
        .arg(p.join("share/man/man1/banger-vm-run.1"))
        .env("MANPAGER", "cat")
        .output()
        .unwrap();
    assert!(stdout(&man).contains("--memory"), "{}", stderr(&man));

    // The installed banger finds its agent under PREFIX/lib/banger.
    let state = tempfile::tempdir().unwrap();
    let doctor = Command::new(&installed)
        .args(["doctor", "--json"])
        .env("BANGER_STATE_DIR", state.path().join("s"))
        .env("BANGER_RUNTIME_DIR", state.path().join("r"))
        .env("BANGER_CONFIG_DIR", state.path().join("c"))
        .env("BANGER_ETC_DIR", state.path().join("e"))
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&doctor.stdout).unwrap();
    let agent_row = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "agent binary")
        .unwrap()
        .clone();
    assert_eq!(agent_row["status"], "pass", "{agent_row}");
    assert!(
        agent_row["summary"]
            .as_str()
            .unwrap()
            .contains("lib/banger/banger-agent")
    );

    // The bash completion script registers a completer that calls banger back.
    let bash = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {} && complete -p banger",
            p.join("share/bash-completion/completions/banger").display()
        ))
        .output()
        .unwrap();
    assert!(bash.status.success(), "{}", stderr(&bash));
    assert!(stdout(&bash).contains("banger"), "{}", stdout(&bash));
    for script in [
        "share/zsh/site-functions/_banger",
        "share/fish/vendor_completions.d/banger.fish",
    ] {
        assert!(p.join(script).is_file(), "{script}");
    }

    let out = make("uninstall");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!installed.exists() && !agent.exists());
    assert!(!p.join("share/man/man1/banger-vm-run.1").exists());
}
