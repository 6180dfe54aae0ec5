//! The QEMU command line `render` builds: the machine, kernel, drives and devices, its
//! sandbox, and the specs it refuses; networking, restores and shares in the submodules.

use std::path::PathBuf;

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
        [
            "console=ttyS0 panic=-1 tsc_early_khz=2100000 root=/dev/vda ro cryptomgr.notests banger.hostname=dev"
        ]
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
        ["console=ttyS0 panic=-1 root=/dev/vda rw cryptomgr.notests banger.hostname=dev"]
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

mod network;
mod restore;
mod shares;
