//! Running the `banger` binary under test in an installation of its own.
#![allow(dead_code, clippy::unwrap_used)]

use std::process::{Command, Output, Stdio};

/// Run `banger args` with every banger directory inside `dir` and stdin closed.
pub fn banger(dir: &tempfile::TempDir, args: &[&str]) -> Output {
    banger_command(dir, args).output().unwrap()
}

/// `banger args` with every banger directory inside `dir` and stdin closed, to run.
pub fn banger_command(dir: &tempfile::TempDir, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_banger"));
    cmd.args(args)
        .env("BANGER_STATE_DIR", dir.path().join("state"))
        .env("BANGER_RUNTIME_DIR", dir.path().join("run"))
        .env("BANGER_CONFIG_DIR", dir.path().join("config"))
        .env("BANGER_ETC_DIR", dir.path().join("etc"))
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    cmd
}

/// Stops the daemon the CLI started (in dev mode, inside the test's directory), whatever
/// the test's outcome.
pub struct StopDaemon<'a>(pub &'a tempfile::TempDir);

impl Drop for StopDaemon<'_> {
    fn drop(&mut self) {
        let out = banger(self.0, &["daemon", "stop"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
}

pub fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

/// The state directory of `dir`'s installation, made as the daemon makes it (0700), for a
/// test that puts a store there before the daemon starts.
pub fn state_dir(dir: &tempfile::TempDir) -> std::path::PathBuf {
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::set_permissions(&state, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    state
}

/// Register `name` from `source` in `store`, a stand-in image whose manifest records
/// `revision` of `source`'s recipe (none: a manifest from before revisions).
pub fn image(
    store: &banger_store::Store,
    state: &std::path::Path,
    name: &str,
    source: &str,
    revision: Option<u32>,
) {
    let dir = state.join(format!("images/{name}-0001"));
    std::fs::create_dir_all(&dir).unwrap();
    banger_images::testkit::stand_in_recipe_image(&dir, name, source, revision).unwrap();
    store
        .insert_image(&banger_store::ImageRecord {
            name: name.into(),
            kernel_path: dir.join("vmlinux"),
            kernel_format: "elf-vmlinux".into(),
            bzimage_path: None,
            initrd_path: Some(dir.join("initrd.cpio")),
            rootfs_path: None,
            source: source.into(),
            kernel_release: Some("6.1.0-test".into()),
            dir,
            created_at: banger_store::now_rfc3339(),
            size_bytes: 12,
            kernel_pvh: Some(true),
            init: None,
            config_json: None,
            digest: None,
        })
        .unwrap();
}
