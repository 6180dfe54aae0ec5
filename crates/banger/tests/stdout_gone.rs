//! A reader of banger's output that goes away (`banger vm create … | head -0`): banger
//! stops quietly with status 0, as docs/cli.md promises, instead of panicking on the
//! write (status 101 and a backtrace). Through a real daemon and store, with a stand-in
//! image (a create that does not boot needs only its record).

use crate::support;

use std::os::fd::OwnedFd;
use std::process::Stdio;

use banger_images::testkit;
use banger_store::{ImageRecord, Store};
use support::{StopDaemon, banger, banger_command, text};

#[test]
fn a_created_vm_said_to_a_closed_pipe_is_a_quiet_success() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::set_permissions(&state, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    {
        let store = Store::open(state.join("state.db")).unwrap();
        let image = state.join("images/stand-in-0001");
        std::fs::create_dir_all(&image).unwrap();
        testkit::stand_in_recipe_image(&image, "stand-in", "recipe:minimal", None).unwrap();
        store
            .insert_image(&ImageRecord {
                name: "stand-in".into(),
                kernel_path: image.join("vmlinux"),
                kernel_format: "elf-vmlinux".into(),
                bzimage_path: None,
                initrd_path: Some(image.join("initrd.cpio")),
                rootfs_path: None,
                source: "recipe:minimal".into(),
                kernel_release: Some("6.1.0-test".into()),
                dir: image,
                created_at: banger_store::now_rfc3339(),
                size_bytes: 12,
                kernel_pvh: Some(true),
                init: None,
                config_json: None,
                digest: None,
            })
            .unwrap();
    }
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
