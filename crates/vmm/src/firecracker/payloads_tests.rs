use super::*;
use crate::spec::{DriveSpec, NicSpec};

fn spec() -> LaunchSpec {
    LaunchSpec {
        vm_id: "vm1".into(),
        vm_dir: "/vms/vm1".into(),
        kernel: "/images/minimal/vmlinux".into(),
        kernel_pvh: true,
        bzimage: None,
        initrd: Some("/images/minimal/initrd.img".into()),
        kernel_args: vec!["banger.hostname=dev".into()],
        drives: vec![
            DriveSpec {
                id: "work".into(),
                path: "/vms/vm1/work.ext4".into(),
                format: DriveFormat::Raw,
                read_only: false,
                root: false,
            },
            DriveSpec {
                id: "root".into(),
                path: "/vms/vm1/root.ext4".into(),
                format: DriveFormat::Raw,
                read_only: true,
                root: true,
            },
        ],
        nics: vec![NicSpec {
            id: "eth0".into(),
            tap: "bg-vm1".into(),
            mac: "06:00:ac:10:00:02".into(),
        }],
        user_net: None,
        vcpus: 2,
        memory_mib: 512,
        memory: Default::default(),
        restore: None,
        shares: Vec::new(),
        console_log: "/vms/vm1/console.log".into(),
    }
}

fn plan_for(spec: &LaunchSpec, version: &str) -> Result<Vec<ApiCall>, String> {
    let version = SemVer::parse(version).unwrap();
    let paths = FcPaths::in_dir(&spec.vm_dir);
    boot_plan(&PlanInput {
        spec,
        version: &version,
        paths: &paths,
        guest_cid: 3,
        agent_port: 1024,
    })
}

/// The fields each endpoint takes in 1.5.0 (notes, "Boot sequence"): every body banger sends
/// must stay inside them, because bodies reject unknown fields.
fn fields_of_1_5(path: &str) -> &'static [&'static str] {
    match path.split('/').nth(1).unwrap() {
        "logger" => &["log_path", "level", "show_level", "show_log_origin"],
        "metrics" => &["metrics_path"],
        "boot-source" => &["kernel_image_path", "boot_args", "initrd_path"],
        "drives" => &[
            "drive_id",
            "is_root_device",
            "path_on_host",
            "is_read_only",
            "partuuid",
            "cache_type",
            "io_engine",
            "rate_limiter",
        ],
        "machine-config" => &["vcpu_count", "mem_size_mib", "smt", "track_dirty_pages"],
        "network-interfaces" => &[
            "iface_id",
            "host_dev_name",
            "guest_mac",
            "rx_rate_limiter",
            "tx_rate_limiter",
        ],
        "vsock" => &["guest_cid", "uds_path"],
        "actions" => &["action_type"],
        other => panic!("unexpected endpoint {other}"),
    }
}

#[test]
fn the_plan_per_release() {
    for version in ["1.5.0", "1.12.1", "1.13.0", "1.14.1"] {
        let calls = plan_for(&spec(), version).unwrap();
        let endpoints: Vec<String> = calls.iter().map(ApiCall::endpoint).collect();
        // notes: "`PUT /serial` exists in 1.14.1 (204); 1.5.0 answers 400"; "Serial: guest
        // console goes to Firecracker's stdout unless `PUT /serial {serial_out_path}` (1.13+)".
        let serial = version != "1.5.0" && version != "1.12.1";
        let mut expected = vec!["PUT /logger", "PUT /metrics"];
        if serial {
            expected.push("PUT /serial");
        }
        expected.extend([
            "PUT /boot-source",
            "PUT /drives/root",
            "PUT /drives/work",
            "PUT /machine-config",
            "PUT /network-interfaces/eth0",
            "PUT /vsock",
            "PUT /actions",
        ]);
        assert_eq!(endpoints, expected, "{version}");
        for call in &calls {
            let body = call.body.as_ref().unwrap().as_object().unwrap();
            if call.path == "/serial" {
                // The console pipe the daemon drains, nothing else (the swagger's only field).
                assert_eq!(body.len(), 1, "{version}: {body:?}");
                assert_eq!(body["serial_out_path"], "/vms/vm1/console.fifo");
                continue;
            }
            let allowed = fields_of_1_5(&call.path);
            for key in body.keys() {
                assert!(
                    allowed.contains(&key.as_str()),
                    "{version}: {} sends {key}, which 1.5.0 rejects",
                    call.endpoint()
                );
            }
            if call.path.starts_with("/drives/") {
                // "always send path_on_host and is_read_only (required in 1.5)"
                assert!(body.contains_key("path_on_host") && body.contains_key("is_read_only"));
                assert_eq!(
                    call.path,
                    format!("/drives/{}", body["drive_id"].as_str().unwrap())
                );
            }
        }
        let at = |endpoint: &str| {
            calls
                .iter()
                .find(|c| c.endpoint() == endpoint)
                .and_then(|c| c.body.as_ref())
                .unwrap()
        };
        let root = at("PUT /drives/root");
        assert_eq!(root["is_root_device"], true);
        assert_eq!(root["is_read_only"], true);
        assert_eq!(
            at("PUT /logger")["log_path"],
            "/vms/vm1/firecracker.log.fifo"
        );
        let vsock = at("PUT /vsock");
        assert_eq!(vsock["guest_cid"], 3);
        assert_eq!(vsock["uds_path"], "firecracker.vsock");
        // Relative to the VM directory, so a restored clone opens its own disk.
        assert_eq!(root["path_on_host"], "fc-drives/root");
        assert_eq!(
            calls.last().unwrap().body.as_ref().unwrap()["action_type"],
            "InstanceStart"
        );
    }
}

#[test]
fn the_console_pipe_is_sent_only_where_put_serial_exists() {
    let serial_of = |version: &str| {
        plan_for(&spec(), version)
            .unwrap()
            .into_iter()
            .find(|c| c.path == "/serial")
            .map(|c| c.body.unwrap()["serial_out_path"].clone())
    };
    assert_eq!(serial_of("1.5.0"), None);
    assert_eq!(serial_of("1.12.1"), None);
    for version in ["1.13.0", "1.13.1", "1.14.1", "2.0.0"] {
        assert_eq!(
            serial_of(version),
            Some("/vms/vm1/console.fifo".into()),
            "{version}"
        );
    }
}

#[test]
fn the_kernel_command_line() {
    let calls = plan_for(&spec(), "1.14.1").unwrap();
    let boot = calls
        .iter()
        .find(|c| c.path == "/boot-source")
        .and_then(|c| c.body.as_ref())
        .unwrap();
    assert_eq!(boot["kernel_image_path"], "/images/minimal/vmlinux");
    assert_eq!(boot["initrd_path"], "/images/minimal/initrd.img");
    assert_eq!(
        boot["boot_args"],
        "console=ttyS0 reboot=k panic=1 pci=off i8042.noaux i8042.nomux i8042.dumbkbd \
         banger.poweroff=reboot banger.agent=vsock:1024 cryptomgr.notests banger.hostname=dev"
    );
    let mut no_initrd = spec();
    no_initrd.initrd = None;
    let calls = plan_for(&no_initrd, "1.5.0").unwrap();
    assert!(calls[2].body.as_ref().unwrap().get("initrd_path").is_none());
}

#[test]
fn what_firecracker_cannot_take_is_refused_before_launch() {
    let refused = |change: &dyn Fn(&mut LaunchSpec), version: &str| {
        let mut s = spec();
        change(&mut s);
        plan_for(&s, version).unwrap_err()
    };
    assert!(refused(&|_| {}, "1.4.1").contains("older than the supported minimum v1.5.0"));
    assert!(refused(&|s| s.drives[0].format = DriveFormat::Qcow2, "1.14.1").contains("raw"));
    assert!(refused(&|s| s.drives[0].root = true, "1.14.1").contains("more than one"));
    assert!(refused(&|s| s.drives[0].id = "work-1".into(), "1.14.1").contains("letters, digits"));
    assert!(refused(&|s| s.vcpus = 0, "1.14.1").contains("1 to 32"));
    assert!(refused(&|s| s.vcpus = 33, "1.14.1").contains("1 to 32"));
    assert!(refused(&|s| s.memory_mib = 0, "1.14.1").contains("memory"));
    assert!(refused(&|s| s.kernel = "vmlinux".into(), "1.14.1").contains("absolute"));
    assert!(refused(&|s| s.kernel_args.push("a b".into()), "1.14.1").contains("whitespace"));
    assert!(refused(&|s| s.nics[0].tap = "x".repeat(16), "1.14.1").contains("TAP"));
    let user_net = |s: &mut LaunchSpec| {
        s.user_net = Some(crate::spec::UserNetSpec {
            mac: "52:54:00:12:34:56".into(),
            forwards: vec![],
        })
    };
    assert!(refused(&user_net, "1.14.1").contains("user-mode networking"));
    let shares = |s: &mut LaunchSpec| {
        s.shares = vec![crate::virtiofs::ShareSpec {
            tag: "bangerfs0".into(),
            host_dir: "/src".into(),
            read_only: false,
        }]
    };
    assert!(refused(&shares, "1.14.1").contains("virtio-fs"));
}

#[test]
fn a_reserved_guest_cid_is_refused() {
    let s = spec();
    let version = SemVer::parse("1.14.1").unwrap();
    let paths = FcPaths::in_dir(&s.vm_dir);
    let err = boot_plan(&PlanInput {
        spec: &s,
        version: &version,
        paths: &paths,
        guest_cid: 2,
        agent_port: 1024,
    })
    .unwrap_err();
    assert!(err.contains("reserved"), "{err}");
}

#[test]
fn a_restore_configures_only_logger_and_metrics_then_loads_paused() {
    use super::super::relocate::{Layout, LayoutDrive, LayoutNic, restore_plan};
    let mut spec = spec();
    spec.nics[0].tap = "bg-clone".into();
    let files = crate::spec::SnapshotFiles {
        state: "/snaps/s1/vmstate".into(),
        memory: Some("/snaps/s1/memory".into()),
    };
    let layout = Layout {
        layout: 1,
        firecracker: "1.14.1".into(),
        drives: spec
            .drives
            .iter()
            .map(|d| LayoutDrive {
                id: d.id.clone(),
                root: d.root,
                read_only: d.read_only,
            })
            .collect(),
        nics: vec![LayoutNic {
            id: "eth0".into(),
            tap: "bg-parent".into(),
        }],
    };
    let overrides = layout
        .overrides_for(&spec, &SemVer::parse("1.14.1").unwrap())
        .unwrap();
    assert_eq!(overrides.len(), 1, "the clone's TAP replaces the parent's");
    for version in ["1.12.0", "1.14.1"] {
        let v = SemVer::parse(version).unwrap();
        let paths = FcPaths::in_dir(&spec.vm_dir);
        let calls = restore_plan(
            &PlanInput {
                spec: &spec,
                version: &v,
                paths: &paths,
                guest_cid: 3,
                agent_port: 1024,
            },
            &files,
            &overrides,
        )
        .unwrap();
        let endpoints: Vec<_> = calls.iter().map(|c| c.endpoint()).collect();
        assert_eq!(
            endpoints,
            ["PUT /logger", "PUT /metrics", "PUT /snapshot/load"],
            "{version}"
        );
        let load = calls[2].body.as_ref().unwrap();
        assert_eq!(load["resume_vm"], false);
        assert!(load.get("version").is_none());
        assert_eq!(load["mem_backend"]["backend_type"], "File");
        assert_eq!(load["network_overrides"][0]["host_dev_name"], "bg-clone");
    }
    // Before 1.12 a clone cannot get its own TAP: refused, never restored onto the parent's.
    let old = SemVer::parse("1.11.0").unwrap();
    let paths = FcPaths::in_dir(&spec.vm_dir);
    let err = restore_plan(
        &PlanInput {
            spec: &spec,
            version: &old,
            paths: &paths,
            guest_cid: 3,
            agent_port: 1024,
        },
        &files,
        &overrides,
    )
    .unwrap_err();
    assert!(err.contains("network_overrides"), "{err}");
    // A clone with other drives than the snapshot is refused.
    let mut other = spec.clone();
    other.drives.pop();
    let v = SemVer::parse("1.14.1").unwrap();
    assert!(layout.overrides_for(&other, &v).is_err());
    // Nor is a snapshot another release wrote.
    let err = layout
        .overrides_for(&spec, &SemVer::parse("1.14.2").unwrap())
        .unwrap_err();
    assert!(err.contains("1.14.1"), "{err}");
}

/// The drive links: made as symlinks to each drive, and whatever a previous launch (or the
/// VMM's uid, which owns the VM directory) left at `fc-drives` is removed, never followed.
#[test]
fn drive_links_point_at_the_drives_and_a_planted_link_is_removed_not_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let vm_dir = tmp.path().join("vm");
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir_all(&vm_dir).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::write(elsewhere.join("keep"), "x").unwrap();
    std::os::unix::fs::symlink(&elsewhere, vm_dir.join(relocate::DRIVE_LINK_DIR)).unwrap();

    let mut spec = spec();
    spec.vm_dir = vm_dir.clone();
    spec.drives[0].path = vm_dir.join("work.ext4");
    spec.drives[1].path = tmp.path().join("base.ext4");
    relocate::clear_drive_links(&spec).unwrap();
    assert!(std::fs::symlink_metadata(vm_dir.join(relocate::DRIVE_LINK_DIR)).is_err());
    assert!(
        elsewhere.join("keep").exists(),
        "the link's target is untouched"
    );

    relocate::link_drives(&spec).unwrap();
    for drive in &spec.drives {
        let link = vm_dir.join(relocate::drive_link(&drive.id));
        assert_eq!(std::fs::read_link(&link).unwrap(), drive.path);
    }
    // Made again over the previous launch's.
    relocate::link_drives(&spec).unwrap();
    relocate::clear_drive_links(&spec).unwrap();
    assert!(!vm_dir.join(relocate::DRIVE_LINK_DIR).exists());
}
