//! A fake root for the system install: the real banger installs into it, and its owner
//! (`nobody`, an existing unprivileged user) runs commands in it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use banger_doctor::Check;
use banger_doctor::checks::security::{PostureInputs, posture};
use banger_system::CommandRunner;

/// Every path under a root with its mode, owner, size and mtime.
pub type Snapshot = BTreeMap<PathBuf, (u32, u32, u64, i64, i64)>;

pub const OWNER: &str = "nobody";

pub struct FakeRoot {
    dir: tempfile::TempDir,
    pub owner_uid: u32,
    pub owner_gid: u32,
}

impl FakeRoot {
    pub fn new() -> FakeRoot {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let euid = unsafe { libc::geteuid() };
        assert_eq!(
            euid, 0,
            "this test needs root: it installs root-owned files and runs the daemon as {OWNER}"
        );
        assert!(
            banger_system::runner::lookup_executable("systemd-analyze").is_some(),
            "this test needs systemd-analyze (Debian package systemd; scripts/install-deps installs it)"
        );
        let pw = nix::unistd::User::from_name(OWNER)
            .unwrap()
            .expect("user nobody");
        let dir = tempfile::tempdir().unwrap();
        // The daemon, running as the owner, must reach its directories inside.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let home = dir.path().join("home").join(OWNER);
        std::fs::create_dir_all(&home).unwrap();
        std::os::unix::fs::chown(&home, Some(pw.uid.as_raw()), Some(pw.gid.as_raw())).unwrap();
        std::fs::create_dir(dir.path().join("work")).unwrap();
        // The hierarchy every host has, so that what the install leaves behind shows.
        for d in [
            "etc/systemd/system",
            "usr/local/bin",
            "usr/local/lib",
            "var/lib",
            "run",
        ] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        FakeRoot {
            dir,
            owner_uid: pw.uid.as_raw(),
            owner_gid: pw.gid.as_raw(),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn env(&self) -> Vec<(&'static str, PathBuf)> {
        vec![
            ("BANGER_ETC_DIR", self.path("etc/banger")),
            ("BANGER_STATE_DIR", self.path("var/lib/banger")),
            ("BANGER_RUNTIME_DIR", self.path("run/banger")),
            ("BANGER_SYSTEMD_DIR", self.path("etc/systemd/system")),
            ("BANGER_CONFIG_DIR", self.path("home/nobody/.config/banger")),
        ]
    }

    /// `banger ARGS` as root, under the fake root.
    pub fn banger(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_banger"));
        cmd.args(args).env("NO_COLOR", "1").stdin(Stdio::null());
        for (k, v) in self.env() {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    pub fn install(&self) -> Output {
        let prefix = self.path("usr/local");
        let out = self.banger(&[
            "system",
            "install",
            "--owner",
            OWNER,
            "--prefix",
            prefix.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "install failed: {}", text(&out));
        out
    }

    /// `banger ARGS` as the owner, knowing only where /etc/banger is (as a user's shell
    /// would on a real install): everything else must come from install.toml.
    pub fn banger_as_owner(&self, args: &[&str]) -> Output {
        Command::new(self.path("usr/local/bin/banger"))
            .args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", self.path("home/nobody"))
            .env("BANGER_ETC_DIR", self.path("etc/banger"))
            .env("NO_COLOR", "1")
            .uid(self.owner_uid)
            .gid(self.owner_gid)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Every path under the root with its kind, mode, owner, size and mtime.
    pub fn snapshot(&self) -> Snapshot {
        fn walk(dir: &Path, root: &Path, out: &mut Snapshot) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                let m = std::fs::symlink_metadata(&path).unwrap();
                let rel = path.strip_prefix(root).unwrap().to_path_buf();
                out.insert(rel, (m.mode(), m.uid(), m.len(), m.mtime(), m.mtime_nsec()));
                if m.is_dir() {
                    walk(&path, root, out);
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(self.dir.path(), self.dir.path(), &mut out);
        out.retain(|p, _| !p.starts_with("work"));
        out
    }

    pub fn posture(&self, runner: &dyn CommandRunner, vmm: &Path) -> Vec<Check> {
        posture(&PostureInputs {
            runner,
            install_toml: &self.path("etc/banger/install.toml"),
            // The real default: install.toml must be what points doctor at the fake units.
            systemd_dir: Path::new(banger_paths::SYSTEMD_SYSTEM_DIR),
            helper_socket: &self.path("run/banger-helper/helper.sock"),
            daemon_socket: &self.path("run/banger/bangerd.sock"),
            vmm_binaries: &[("firecracker binary".to_string(), vmm.to_path_buf())],
            // This host's own layout: the units were rendered for it.
            mountinfo: Path::new(banger_system::cgroup::MOUNTINFO),
        })
    }
}

pub fn text(out: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
