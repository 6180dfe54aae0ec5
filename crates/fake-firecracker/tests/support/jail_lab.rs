//! A root helper with a jail setup on this host, for the tests of `launch_jailed`: the fake
//! jailer and the fake Firecracker as root-owned binaries, and a state directory of the
//! owner's (`nobody`, which has a passwd entry: the jailer needs its group).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use banger_helper::{Executor, JailSetup};
use banger_system::RealRunner;

use super::support;

pub const JAILER: &str = env!("CARGO_BIN_EXE_fake-jailer");
/// The owner: `nobody`, which has a passwd entry (the jailer needs its group).
pub const OWNER: u32 = 65534;

pub struct Lab {
    pub dir: tempfile::TempDir,
    pub setup: JailSetup,
}

impl Lab {
    pub fn new() -> Lab {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let euid = unsafe { libc::geteuid() };
        assert_eq!(
            euid, 0,
            "the helper runs as root: run this test as root (CI does)"
        );
        let dir = tempfile::Builder::new()
            .prefix("helperjail")
            .tempdir_in("/tmp")
            .unwrap();
        std::fs::set_permissions(dir.path(), PermissionsExt::from_mode(0o755)).unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        std::fs::set_permissions(&bin, PermissionsExt::from_mode(0o755)).unwrap();
        let jailer = bin.join("jailer");
        let firecracker = bin.join("firecracker");
        let agent = support::agent_binary();
        let guest = bin.join("banger-agent");
        for (from, to) in [
            (Path::new(JAILER), &jailer),
            (Path::new(support::FAKE), &firecracker),
            (agent.as_path(), &guest),
        ] {
            // cp(1) in a child, not std::fs::copy: a write descriptor held by this multi-threaded
            // process could be inherited by another test's fork, and exec'ing the copy would then
            // fail with ETXTBSY.
            assert!(
                std::process::Command::new("cp")
                    .arg(from)
                    .arg(to)
                    .status()
                    .unwrap()
                    .success()
            );
            std::fs::set_permissions(to, PermissionsExt::from_mode(0o755)).unwrap();
        }
        let state = dir.path().join("state");
        std::fs::create_dir(&state).unwrap();
        std::os::unix::fs::chown(&state, Some(OWNER), Some(OWNER)).unwrap();
        Lab {
            setup: JailSetup {
                jailer,
                firecracker,
                jail_root: dir.path().join("jail"),
                state_dir: state,
            },
            dir,
        }
    }

    pub fn executor(&self) -> Executor {
        Executor::new(OWNER, Arc::new(RealRunner), None).with_jail(self.setup.clone())
    }

    /// A file of the owner's in its state directory.
    pub fn owned(&self, name: &str) -> PathBuf {
        let path = self.setup.state_dir.join(name);
        std::fs::write(&path, b"kernel").unwrap();
        std::os::unix::fs::chown(&path, Some(OWNER), Some(OWNER)).unwrap();
        path
    }

    pub fn fifo(&self, name: &str) -> PathBuf {
        let path = self.setup.state_dir.join(name);
        let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        // SAFETY: a valid path string and a mode.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        std::os::unix::fs::chown(&path, Some(OWNER), Some(OWNER)).unwrap();
        path
    }
}
