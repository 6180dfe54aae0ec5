//! Dev mode as an ordinary user: no root, no BANGER_* overrides, only HOME and
//! XDG_RUNTIME_DIR. The first `vm run` builds the default image on demand, and host
//! tools outside the user's PATH (mkfs.ext4 lives in /sbin) are still found.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const NOBODY: u32 = 65534;

fn as_nobody(home: &Path, bin: &Path, args: &[&str]) -> Output {
    Command::new("setpriv")
        .args([
            "--reuid",
            &NOBODY.to_string(),
            "--regid",
            &NOBODY.to_string(),
            "--clear-groups",
            "--",
        ])
        .arg(bin)
        .args(args)
        .env_clear()
        .env("HOME", home)
        .env("XDG_RUNTIME_DIR", home.join("run"))
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("setpriv (util-linux) runs")
}

#[test]
fn an_ordinary_user_runs_a_vm_in_dev_mode() {
    let bin = banger_e2e::banger_bin();
    let root = tempfile::Builder::new()
        .prefix("bgu")
        .tempdir_in("/tmp")
        .unwrap();
    let home = root.path();
    std::fs::create_dir_all(home.join("run")).unwrap();
    // The user gets private copies of the binaries: the build tree may not be
    // reachable by other users.
    for name in ["banger", "banger-agent"] {
        std::fs::copy(bin.with_file_name(name), home.join(name)).unwrap();
    }
    for path in [
        home.to_path_buf(),
        home.join("run"),
        home.join("banger"),
        home.join("banger-agent"),
    ] {
        std::os::unix::fs::chown(&path, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    std::fs::set_permissions(home.join("run"), std::fs::Permissions::from_mode(0o700)).unwrap();
    let banger = home.join("banger");
    let _stop = StopDaemon {
        home,
        banger: &banger,
    };

    let out = as_nobody(
        home,
        &banger,
        // `minimal`: the default debian image needs root to build (mmdebstrap), and an
        // ordinary user is told so; minimal builds unprivileged.
        &[
            "vm",
            "run",
            "--rm",
            "--image",
            "minimal",
            "--",
            "sh",
            "-c",
            "echo guest-root=$(id -u)",
        ],
    );
    let log =
        std::fs::read_to_string(home.join(".local/state/banger/daemon.log")).unwrap_or_default();
    assert!(
        out.status.success(),
        "stderr: {}\ndaemon log:\n{log}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "guest-root=0\n");

    // XDG layout, owned by the user, private.
    let state = home.join(".local/state/banger");
    assert!(
        state.join("state.db").is_file(),
        "no store under {}",
        state.display()
    );
    let socket = home.join("run/banger/bangerd.sock");
    let meta = std::fs::metadata(&socket).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    use std::os::unix::fs::MetadataExt;
    assert_eq!(meta.uid(), NOBODY);
}

/// Stops the user's daemon when the test ends, passing or failing.
struct StopDaemon<'a> {
    home: &'a Path,
    banger: &'a Path,
}

impl Drop for StopDaemon<'_> {
    fn drop(&mut self) {
        let _ = as_nobody(self.home, self.banger, &["daemon", "stop"]);
    }
}
