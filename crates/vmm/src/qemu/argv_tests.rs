use std::path::{Path, PathBuf};

use super::*;
use crate::spec::{DriveFormat, DriveSpec, NicSpec};

fn spec() -> LaunchSpec {
    LaunchSpec {
        vm_id: "vm1".into(),
        vm_dir: PathBuf::from("/state/vms/vm1"),
        kernel: PathBuf::from("/img/vmlinux"),
        kernel_pvh: true,
        bzimage: Some(PathBuf::from("/img/bzImage")),
        initrd: Some(PathBuf::from("/img/initrd.cpio")),
        kernel_args: vec!["banger.hostname=dev".into()],
        drives: vec![
            DriveSpec {
                id: "work".into(),
                path: PathBuf::from("/state/vms/vm1/work.qcow2"),
                format: DriveFormat::Qcow2,
                read_only: false,
                root: false,
            },
            DriveSpec {
                id: "root".into(),
                path: PathBuf::from("/state/vms/vm1/root,1.ext4"),
                format: DriveFormat::Raw,
                read_only: true,
                root: true,
            },
        ],
        nics: vec![],
        user_net: None,
        vcpus: 2,
        memory_mib: 512,
        memory: Default::default(),
        restore: None,
        shares: Vec::new(),
        console_log: PathBuf::from("/state/vms/vm1/console.log"),
    }
}

fn render_with(
    spec: &LaunchSpec,
    accel: Accel,
    machine: MachineType,
) -> Result<Vec<String>, VmmError> {
    let paths = VmPaths::in_dir(&spec.vm_dir);
    let kernel = if machine == MachineType::Pc {
        spec.bzimage.clone().unwrap()
    } else {
        spec.kernel.clone()
    };
    render(&ArgvInput {
        spec,
        accel,
        machine,
        kernel: &kernel,
        tsc_khz: Some(2_100_000),
        paths: &paths,
        seccomp: true,
        daemonize: false,
        tap_fds: None,
        incoming_fd: None,
        restore_ram: None,
    })
}

/// The value following `flag`, for each occurrence.
fn values<'a>(args: &'a [String], flag: &str) -> Vec<&'a str> {
    args.windows(2)
        .filter(|w| w[0] == flag)
        .map(|w| w[1].as_str())
        .collect()
}

#[test]
fn microvm_tcg_command_line() {
    let args = render_with(&spec(), Accel::Tcg, MachineType::Microvm).unwrap();
    // RAM is always the backend `mem` (anonymous here), so streams load whatever backs it.
    assert_eq!(values(&args, "-M"), ["microvm,memory-backend=mem"]);
    assert!(values(&args, "-object").contains(&"memory-backend-ram,id=mem,size=512M"));
    assert_eq!(values(&args, "-accel"), ["tcg,thread=multi"]);
    assert!(values(&args, "-cpu").is_empty());
    assert_eq!(values(&args, "-smp"), ["2"]);
    assert_eq!(values(&args, "-m"), ["512M"]);
    assert_eq!(values(&args, "-kernel"), ["/img/vmlinux"]);
    assert_eq!(values(&args, "-initrd"), ["/img/initrd.cpio"]);
    assert_eq!(
        values(&args, "-append"),
        ["console=ttyS0 panic=-1 tsc_early_khz=2100000 root=/dev/vda ro banger.hostname=dev"]
    );
    assert!(
        !args.iter().any(|a| a == "-daemonize"),
        "seccomp's spawn=deny forbids -daemonize's fork"
    );
    for flag in ["-nodefaults", "-no-user-config", "-no-reboot"] {
        assert!(args.iter().any(|a| a == flag), "{flag} missing");
    }
    assert_eq!(values(&args, "-display"), ["none"]);
    assert_eq!(
        values(&args, "-sandbox"),
        ["on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"]
    );
    assert!(
        values(&args, "-runas").is_empty() && values(&args, "-chroot").is_empty(),
        "privileges are dropped before exec: -runas with -sandbox dies of SIGSYS"
    );
    assert_eq!(values(&args, "-pidfile"), ["/state/vms/vm1/qemu.pid"]);
    assert_eq!(values(&args, "-serial"), ["chardev:console0"]);
    assert_eq!(values(&args, "-mon"), ["chardev=qmp0,mode=control"]);
    assert_eq!(
        values(&args, "-chardev"),
        [
            "socket,id=console0,path=/state/vms/vm1/console.sock,server=on,wait=off",
            "socket,id=qmp0,path=/state/vms/vm1/qmp.sock,server=on,wait=off",
            "socket,id=agent0,path=/state/vms/vm1/agent.sock,server=on,wait=off",
        ]
    );
    assert_eq!(
        values(&args, "-device"),
        [
            "virtio-serial-device,id=vser0",
            "virtserialport,bus=vser0.0,chardev=agent0,name=agent",
            "virtio-blk-device,drive=drive-root",
            "virtio-blk-device,drive=drive-work",
            "virtio-rng-device,rng=rng0",
        ]
    );
}

#[test]
fn drives_root_first_with_formats_readonly_and_escaped_commas() {
    let args = render_with(&spec(), Accel::Tcg, MachineType::Microvm).unwrap();
    assert_eq!(
        values(&args, "-drive"),
        [
            "if=none,id=drive-root,format=raw,file=/state/vms/vm1/root,,1.ext4,readonly=on",
            "if=none,id=drive-work,format=qcow2,file=/state/vms/vm1/work.qcow2",
        ]
    );
}

#[test]
fn pc_kvm_command_line_uses_pci_devices_and_no_tsc_hint() {
    let mut s = spec();
    s.drives[1].read_only = false;
    let args = render_with(&s, Accel::Kvm, MachineType::Pc).unwrap();
    assert_eq!(values(&args, "-M"), ["pc,memory-backend=mem"]);
    assert_eq!(values(&args, "-accel"), ["kvm"]);
    assert_eq!(values(&args, "-cpu"), ["host"]);
    assert_eq!(values(&args, "-kernel"), ["/img/bzImage"]);
    assert_eq!(
        values(&args, "-append"),
        ["console=ttyS0 panic=-1 root=/dev/vda rw banger.hostname=dev"]
    );
    let devices = values(&args, "-device");
    assert!(
        devices.contains(&"virtio-serial-pci,id=vser0"),
        "{devices:?}"
    );
    assert!(
        devices.contains(&"virtio-blk-pci,drive=drive-root"),
        "{devices:?}"
    );
    assert!(devices.contains(&"virtio-rng-pci,rng=rng0"), "{devices:?}");
    assert!(
        !devices
            .iter()
            .any(|d| d.ends_with("-device,") || d.starts_with("virtio-blk-device"))
    );
}

#[test]
fn microvm_kvm_needs_no_tsc_hint() {
    let args = render_with(&spec(), Accel::Kvm, MachineType::Microvm).unwrap();
    assert!(!values(&args, "-append")[0].contains("tsc_early_khz"));
}

#[test]
fn microvm_tcg_without_tsc_is_an_error() {
    let s = spec();
    let paths = VmPaths::in_dir(&s.vm_dir);
    let input = ArgvInput {
        spec: &s,
        accel: Accel::Tcg,
        machine: MachineType::Microvm,
        kernel: &s.kernel,
        tsc_khz: None,
        paths: &paths,
        seccomp: true,
        daemonize: false,
        tap_fds: None,
        incoming_fd: None,
        restore_ram: None,
    };
    assert!(render(&input).unwrap_err().to_string().contains("TSC"));
}

#[test]
fn nics_are_rendered_when_present() {
    let mut s = spec();
    s.nics.push(NicSpec {
        id: "eth0".into(),
        tap: "tap-vm1".into(),
        mac: "52:54:00:00:00:01".into(),
    });
    let args = render_with(&s, Accel::Tcg, MachineType::Microvm).unwrap();
    assert_eq!(
        values(&args, "-netdev"),
        ["tap,id=net-eth0,ifname=tap-vm1,script=no,downscript=no"]
    );
    assert!(
        values(&args, "-device")
            .contains(&"virtio-net-device,netdev=net-eth0,mac=52:54:00:00:00:01")
    );
    s.nics[0].mac = "zz".into();
    assert!(
        render_with(&s, Accel::Tcg, MachineType::Microvm)
            .unwrap_err()
            .to_string()
            .contains("MAC")
    );
}

#[test]
fn user_mode_networking_table() {
    use crate::spec::{HostForward, UserNetSpec};
    use std::net::Ipv4Addr;
    let fwd = |udp, host_addr, host_port, guest_port| HostForward {
        udp,
        host_addr,
        host_port,
        guest_port,
    };
    let cases: Vec<(Vec<HostForward>, MachineType, Result<&str, &str>)> = vec![
        (
            vec![],
            MachineType::Microvm,
            Ok("user,id=net-user,net=10.0.2.0/24"),
        ),
        (
            vec![
                fwd(false, None, 8080, 80),
                fwd(true, Some(Ipv4Addr::LOCALHOST), 5353, 53),
            ],
            MachineType::Pc,
            Ok(
                "user,id=net-user,net=10.0.2.0/24,hostfwd=tcp::8080-:80,hostfwd=udp:127.0.0.1:5353-:53",
            ),
        ),
        // The same host port on both protocols is fine; twice on one is not.
        (
            vec![fwd(false, None, 53, 53), fwd(true, None, 53, 53)],
            MachineType::Microvm,
            Ok("user,id=net-user,net=10.0.2.0/24,hostfwd=tcp::53-:53,hostfwd=udp::53-:53"),
        ),
        (
            vec![fwd(false, None, 80, 80), fwd(false, None, 80, 81)],
            MachineType::Microvm,
            Err("twice"),
        ),
        (
            vec![fwd(false, None, 0, 80)],
            MachineType::Microvm,
            Err("port 0"),
        ),
        (
            vec![fwd(false, None, 80, 0)],
            MachineType::Microvm,
            Err("port 0"),
        ),
    ];
    for (forwards, machine, want) in cases {
        let mut s = spec();
        s.user_net = Some(UserNetSpec {
            mac: "0a:62:0a:00:02:0f".into(),
            forwards: forwards.clone(),
        });
        match (render_with(&s, Accel::Tcg, machine), want) {
            (Ok(args), Ok(netdev)) => {
                assert_eq!(values(&args, "-netdev"), [netdev], "{forwards:?}");
                let suffix = if machine == MachineType::Pc {
                    "pci"
                } else {
                    "device"
                };
                assert!(
                    values(&args, "-device").contains(
                        &format!("virtio-net-{suffix},netdev=net-user,mac=0a:62:0a:00:02:0f")
                            .as_str()
                    ),
                    "{args:?}"
                );
            }
            (Err(e), Err(needle)) => assert!(e.to_string().contains(needle), "{e}"),
            (got, want) => panic!("{forwards:?}: got {got:?}, want {want:?}"),
        }
    }
    let mut s = spec();
    s.user_net = Some(UserNetSpec {
        mac: "nope".into(),
        forwards: vec![],
    });
    assert!(render_with(&s, Accel::Tcg, MachineType::Microvm).is_err());
}

#[test]
fn commas_in_socket_and_console_paths_are_escaped() {
    let mut s = spec();
    s.vm_dir = PathBuf::from("/state/a,b");
    s.console_log = PathBuf::from("/state/a,b/console.log");
    let args = render_with(&s, Accel::Tcg, MachineType::Microvm).unwrap();
    let chardevs = values(&args, "-chardev");
    assert_eq!(
        chardevs[0],
        "socket,id=console0,path=/state/a,,b/console.sock,server=on,wait=off"
    );
    assert_eq!(
        chardevs[1],
        "socket,id=qmp0,path=/state/a,,b/qmp.sock,server=on,wait=off"
    );
    // Bare-path options are not escaped: QEMU takes them verbatim.
    assert_eq!(values(&args, "-pidfile"), ["/state/a,b/qemu.pid"]);
}

#[test]
fn long_vm_dirs_fail_with_the_socket_limit() {
    let mut s = spec();
    s.vm_dir = PathBuf::from(format!("/{}", "d".repeat(100)));
    let err = render_with(&s, Accel::Tcg, MachineType::Microvm).unwrap_err();
    assert!(
        matches!(err, VmmError::SocketPathTooLong { len: 114, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("BANGER_STATE_DIR"), "{err}");
}

#[test]
fn bad_specs_are_rejected_with_the_reason() {
    type Mutation = Box<dyn Fn(&mut LaunchSpec)>;
    let cases: Vec<(Mutation, &str)> = vec![
        (
            Box::new(|s| s.kernel = PathBuf::from("vmlinux")),
            "absolute",
        ),
        (
            Box::new(|s| s.drives[0].path = PathBuf::from("/a\nb")),
            "control character",
        ),
        (Box::new(|s| s.drives[0].id = "root".into()), "used twice"),
        (
            Box::new(|s| s.drives[0].id = "bad id".into()),
            "must start with a letter",
        ),
        (Box::new(|s| s.drives[0].root = true), "marked root"),
        (Box::new(|s| s.kernel_args.push("a b".into())), "whitespace"),
        (
            Box::new(|s| s.kernel_args.push("x".repeat(3000))),
            "2047-byte",
        ),
        (Box::new(|s| s.vcpus = 0), "vCPUs"),
        (Box::new(|s| s.memory_mib = 1), "memory"),
        (
            Box::new(|s| s.console_log = PathBuf::from("rel.log")),
            "absolute",
        ),
    ];
    for (mutate, needle) in cases {
        let mut s = spec();
        mutate(&mut s);
        let err = render_with(&s, Accel::Tcg, MachineType::Microvm)
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "expected {needle:?} in {err}");
        assert!(err.contains("vm1"), "error should name the VM: {err}");
    }
}

#[test]
fn seccomp_off_leaves_no_sandbox_flag() {
    let s = spec();
    let paths = VmPaths::in_dir(&s.vm_dir);
    let args = render(&ArgvInput {
        spec: &s,
        accel: Accel::Kvm,
        machine: MachineType::Microvm,
        kernel: &s.kernel,
        tsc_khz: None,
        paths: &paths,
        seccomp: false,
        daemonize: true,
        tap_fds: None,
        incoming_fd: None,
        restore_ram: None,
    })
    .unwrap();
    assert!(values(&args, "-sandbox").is_empty());
    assert!(args.iter().any(|a| a == "-daemonize"));
}

#[test]
fn inherited_tap_descriptors_replace_ifname_and_must_match_the_nics() {
    let mut s = spec();
    for (id, tap) in [("eth0", "tap-vm1"), ("eth1", "tap-vm2")] {
        s.nics.push(NicSpec {
            id: id.into(),
            tap: tap.into(),
            mac: "52:54:00:00:00:01".into(),
        });
    }
    let paths = VmPaths::in_dir(&s.vm_dir);
    let input = |fds: &'static [i32]| ArgvInput {
        spec: &s,
        accel: Accel::Tcg,
        machine: MachineType::Microvm,
        kernel: &s.kernel,
        tsc_khz: Some(2_100_000),
        paths: &paths,
        seccomp: true,
        daemonize: false,
        tap_fds: Some(fds),
        incoming_fd: None,
        restore_ram: None,
    };
    let args = render(&input(&[37, 41])).unwrap();
    // No ifname=, script= or vnet_hdr= beside fd=: QEMU refuses them together.
    assert_eq!(
        values(&args, "-netdev"),
        ["tap,id=net-eth0,fd=37", "tap,id=net-eth1,fd=41"]
    );
    let err = render(&input(&[37])).unwrap_err().to_string();
    assert!(
        err.contains("1 TAP descriptors") && err.contains("2 network"),
        "{err}"
    );
    // The TAP name is still checked: it is what the descriptor was opened on.
    s.nics[1].tap = "tap/../x".into();
    let paths = VmPaths::in_dir(&s.vm_dir);
    let bad = render(&ArgvInput {
        spec: &s,
        accel: Accel::Tcg,
        machine: MachineType::Microvm,
        kernel: &s.kernel,
        tsc_khz: Some(2_100_000),
        paths: &paths,
        seccomp: true,
        daemonize: false,
        tap_fds: Some(&[37, 41]),
        incoming_fd: None,
        restore_ram: None,
    });
    assert!(bad.is_err());
}

/// The input of a sandboxed microvm launch of `s` under TCG, restoring as asked.
fn restoring<'a>(
    s: &'a LaunchSpec,
    paths: &'a VmPaths,
    incoming_fd: Option<i32>,
    restore_ram: Option<&'a Path>,
) -> ArgvInput<'a> {
    ArgvInput {
        spec: s,
        accel: Accel::Tcg,
        machine: MachineType::Microvm,
        kernel: &s.kernel,
        tsc_khz: Some(2_100_000),
        paths,
        seccomp: true,
        daemonize: false,
        tap_fds: None,
        incoming_fd,
        restore_ram,
    }
}

/// A restore names the inherited stream once, after every device, and changes nothing else.
#[test]
fn restore_loads_the_inherited_stream() {
    let s = spec();
    let paths = VmPaths::in_dir(&s.vm_dir);
    let input = |incoming_fd| restoring(&s, &paths, incoming_fd, None);
    let cold = render(&input(None)).unwrap();
    assert!(values(&cold, "-incoming").is_empty());
    let warm = render(&input(Some(9))).unwrap();
    assert_eq!(values(&warm, "-incoming"), ["fd:9"]);
    let without: Vec<_> = warm
        .iter()
        .filter(|a| *a != "-incoming" && *a != "fd:9")
        .cloned()
        .collect();
    assert_eq!(without, cold, "the device set must be the snapshot's");
}

/// A warm-up boot maps its RAM file shared; a restore from it maps the snapshot's file
/// copy-on-write, waits for the state over QMP, and keeps every device of the save.
#[test]
fn ram_files_are_mapped_shared_to_save_and_privately_to_restore() {
    use crate::spec::GuestMemory;
    let mut s = spec();
    s.memory = GuestMemory::SharedFile;
    let paths = VmPaths::in_dir(&s.vm_dir);
    let input = |restore_ram| restoring(&s, &paths, None, restore_ram);
    let saved = render(&input(None)).unwrap();
    assert_eq!(values(&saved, "-M"), ["microvm,memory-backend=mem"]);
    assert!(
        values(&saved, "-object")
            .contains(&"memory-backend-file,id=mem,size=512M,mem-path=/state/vms/vm1/ram,share=on")
    );
    assert!(values(&saved, "-incoming").is_empty());

    let ram = PathBuf::from("/proc/self/fd/7");
    let restored = render(&input(Some(&ram))).unwrap();
    assert_eq!(values(&restored, "-M"), ["microvm,memory-backend=mem"]);
    assert!(
        values(&restored, "-object")
            .contains(&"memory-backend-file,id=mem,size=512M,mem-path=/proc/self/fd/7,share=off")
    );
    assert_eq!(values(&restored, "-incoming"), ["defer"]);
    let strip = |args: &[String]| -> Vec<String> {
        args.iter()
            .filter(|a| !a.starts_with("memory-backend-file") && *a != "-incoming" && *a != "defer")
            .cloned()
            .collect()
    };
    assert_eq!(
        strip(&restored),
        strip(&saved),
        "the device set must be the snapshot's"
    );

    // A path QEMU would split at a comma is escaped; a relative one is refused.
    let odd = PathBuf::from("/snaps/a,b/ram");
    let args = render(&input(Some(&odd))).unwrap();
    assert!(
        values(&args, "-object")
            .iter()
            .any(|o| o.contains("mem-path=/snaps/a,,b/ram,"))
    );
    let relative = PathBuf::from("snaps/ram");
    assert!(render(&input(Some(&relative))).is_err());
}

#[test]
fn shares_need_shared_memory_and_one_vhost_user_device_each() {
    use crate::spec::GuestMemory;
    use crate::virtiofs::ShareSpec;
    let share = |i: usize, ro: bool| ShareSpec {
        tag: ShareSpec::tag_for(i),
        host_dir: PathBuf::from(format!("/home/me/dir {i}")),
        read_only: ro,
    };
    // (machine, shares, asked memory) -> (-M, -object memory, fs devices)
    type Case = (
        MachineType,
        Vec<ShareSpec>,
        GuestMemory,
        &'static str,
        bool,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            MachineType::Microvm,
            vec![],
            GuestMemory::Private,
            "microvm,memory-backend=mem",
            false,
            "",
        ),
        (
            MachineType::Microvm,
            vec![share(0, false), share(1, true)],
            GuestMemory::Private,
            "microvm,memory-backend=mem",
            true,
            "vhost-user-fs-device",
        ),
        (
            MachineType::Pc,
            vec![share(0, false)],
            GuestMemory::Private,
            "pc,memory-backend=mem",
            true,
            "vhost-user-fs-pci",
        ),
        (
            MachineType::Microvm,
            vec![],
            GuestMemory::SharedMemfd,
            "microvm,memory-backend=mem",
            true,
            "",
        ),
    ];
    for (machine, shares, memory, want_m, want_memfd, device) in cases {
        let mut s = spec();
        s.shares = shares.clone();
        s.memory = memory;
        let args = render_with(&s, Accel::Tcg, machine).unwrap();
        assert_eq!(values(&args, "-M"), [want_m], "{shares:?}");
        let memfd: Vec<&str> = values(&args, "-object")
            .into_iter()
            .filter(|o| o.starts_with("memory-backend-memfd"))
            .collect();
        match want_memfd {
            true => assert_eq!(memfd, ["memory-backend-memfd,id=mem,size=512M,share=on"]),
            false => assert!(memfd.is_empty(), "{memfd:?}"),
        }
        let devices: Vec<&str> = values(&args, "-device")
            .into_iter()
            .filter(|d| d.starts_with("vhost-user-fs"))
            .collect();
        let want: Vec<String> = shares
            .iter()
            .map(|sh| format!("{device},chardev=fs-{},tag={}", sh.tag, sh.tag))
            .collect();
        assert_eq!(devices, want);
        for sh in &shares {
            let chardev = format!(
                "socket,id=fs-{},path=/state/vms/vm1/{}.sock",
                sh.tag, sh.tag
            );
            assert!(
                values(&args, "-chardev").contains(&chardev.as_str()),
                "{args:?}"
            );
        }
    }
}

#[test]
fn bad_or_duplicate_share_tags_are_refused() {
    use crate::virtiofs::ShareSpec;
    for tags in [
        vec!["bangerfs0", "bangerfs0"],
        vec!["bad tag"],
        vec![&"x".repeat(37)[..]],
    ] {
        let mut s = spec();
        s.shares = tags
            .iter()
            .map(|t| ShareSpec {
                tag: (*t).to_string(),
                host_dir: PathBuf::from("/src"),
                read_only: false,
            })
            .collect();
        let err = render_with(&s, Accel::Tcg, MachineType::Microvm).unwrap_err();
        assert!(err.to_string().contains("tag"), "{tags:?}: {err}");
    }
}
