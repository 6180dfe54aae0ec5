#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::spec::{DriveFormat, DriveSpec};

fn spec(restore: Option<SnapshotFiles>) -> LaunchSpec {
    LaunchSpec {
        vm_id: "vm1".into(),
        vm_dir: "/s/vms/vm1".into(),
        kernel: "/s/images/vmlinux".into(),
        kernel_pvh: false,
        bzimage: None,
        initrd: None,
        kernel_args: vec![],
        drives: vec![DriveSpec {
            id: "root".into(),
            path: "/s/vms/vm1/root.ext4".into(),
            format: DriveFormat::Raw,
            read_only: false,
            root: true,
        }],
        nics: vec![],
        user_net: None,
        vcpus: 1,
        memory_mib: 256,
        memory: Default::default(),
        restore,
        shares: Vec::new(),
        console_log: "/s/vms/vm1/console.log".into(),
    }
}

fn names(view: &JailView) -> Vec<(String, String)> {
    view.launch
        .files
        .iter()
        .map(|f| {
            (
                f.name.as_str().to_owned(),
                f.source.as_path().display().to_string(),
            )
        })
        .collect()
}

fn body<'a>(plan: &'a [ApiCall], path: &str) -> &'a serde_json::Value {
    plan.iter()
        .find(|c| c.path == path)
        .and_then(|c| c.body.as_ref())
        .unwrap_or_else(|| panic!("no {path} in the plan"))
}

/// A boot names the drive and the vsock by their relocatable names, which the jail holds
/// at the chroot's root (Firecracker's working directory): its snapshot is restorable.
#[test]
fn a_jailed_boot_keeps_the_relocatable_names() {
    // The helper makes exactly the directory the relocatable names lie in.
    assert_eq!(
        relocate::DRIVE_LINK_DIR,
        banger_helper_proto::JAIL_DRIVE_DIR
    );
    assert_eq!(relocate::VSOCK_NAME, JAIL_VSOCK);
    let s = spec(None);
    let host = FcPaths::in_dir(&s.vm_dir);
    let view = view(&s, &host, ConsoleOn::Stdin, Some(512 << 20), 512).unwrap();
    assert!(names(&view).contains(&("fc-drives/root".into(), "/s/vms/vm1/root.ext4".into())));
    assert!(view.restore.is_none());
    let version = SemVer::parse("1.14.1").unwrap();
    let config = FirecrackerConfig::new("/usr/bin/firecracker");
    let plan = plan(&config, &s, &version, &view, &[]).unwrap();
    assert_eq!(
        body(&plan, "/drives/root")["path_on_host"],
        "fc-drives/root"
    );
    assert_eq!(body(&plan, "/vsock")["uds_path"], JAIL_VSOCK);
    assert_eq!(body(&plan, "/boot-source")["kernel_image_path"], "/kernel");
}

/// A restore links the snapshot's files in and loads them at their chroot paths; the
/// clone's drive is at the name the snapshot recorded.
#[test]
fn a_jailed_restore_loads_the_linked_snapshot() {
    let files = SnapshotFiles {
        state: "/s/snaps/a/vmstate".into(),
        memory: Some("/s/snaps/a/memory".into()),
    };
    let s = spec(Some(files));
    let host = FcPaths::in_dir(&s.vm_dir);
    let view = view(&s, &host, ConsoleOn::Stdout, Some(512 << 20), 512).unwrap();
    let linked = names(&view);
    for pair in [
        ("fc-drives/root", "/s/vms/vm1/root.ext4"),
        (JAIL_SNAPSHOT_STATE, "/s/snaps/a/vmstate"),
        (JAIL_SNAPSHOT_MEMORY, "/s/snaps/a/memory"),
    ] {
        assert!(
            linked.contains(&(pair.0.into(), pair.1.into())),
            "{linked:?}"
        );
    }
    let version = SemVer::parse("1.14.1").unwrap();
    let config = FirecrackerConfig::new("/usr/bin/firecracker");
    let plan = plan(&config, &s, &version, &view, &[]).unwrap();
    let load = body(&plan, "/snapshot/load");
    assert_eq!(load["snapshot_path"], "/snapshot.vmstate");
    assert_eq!(load["mem_backend"]["backend_path"], "/snapshot.mem");
    assert_eq!(load["resume_vm"], false);
    assert!(plan.iter().all(|c| c.path != "/drives/root"));
}
