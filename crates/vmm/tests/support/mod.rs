//! Shared setup for the tests that run the real qemu-system-x86_64.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use banger_vmm::process::{ProcessIdentity, signal};
use banger_vmm::{
    Accel, DriveFormat, DriveSpec, LaunchSpec, MachinePreference, QemuConfig, QemuDriver,
    VmRuntime, testkit,
};

/// Any plausible value: the test kernel never reads its clock.
pub const TSC_KHZ: u64 = 2_100_000;

pub fn qemu_binary() -> PathBuf {
    banger_system::runner::lookup_executable("qemu-system-x86_64").expect(
        "qemu-system-x86_64 must be installed for these tests (apt install qemu-system-x86)",
    )
}

pub fn driver(machine: MachinePreference) -> QemuDriver {
    QemuDriver::new(config(machine)).unwrap()
}

/// The configuration [`driver`] uses, for tests that change more of it.
pub fn config(machine: MachinePreference) -> QemuConfig {
    let mut config = QemuConfig::new(qemu_binary(), Accel::Tcg, Some(TSC_KHZ));
    config.machine = machine;
    config
}

/// A driver with short timeouts, for the kill-escalation test.
pub fn impatient_driver() -> QemuDriver {
    let mut config = QemuConfig::new(qemu_binary(), Accel::Tcg, Some(TSC_KHZ));
    config.qmp_timeout = Duration::from_millis(500);
    config.kill_grace = Duration::from_secs(2);
    QemuDriver::new(config).unwrap()
}

/// A temp dir holding the test kernel, a VM dir named `vm_dir_name`, a raw root disk and a
/// qcow2 work disk.
pub fn spec(vm_dir_name: &str) -> (tempfile::TempDir, LaunchSpec) {
    let tmp = tempfile::tempdir().unwrap();
    let kernel = tmp.path().join("vmlinux");
    std::fs::write(&kernel, testkit::minimal_pvh_kernel()).unwrap();
    let vm_dir = tmp.path().join(vm_dir_name);
    std::fs::create_dir(&vm_dir).unwrap();
    let root = vm_dir.join("root.ext4");
    std::fs::File::create(&root)
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    let work = vm_dir.join("work.qcow2");
    write_empty_qcow2(&work, 4 << 20);
    let spec = LaunchSpec {
        vm_id: "test-vm".into(),
        console_log: vm_dir.join("console.log"),
        vm_dir,
        kernel,
        kernel_pvh: true,
        bzimage: None,
        initrd: None,
        kernel_args: vec!["banger.hostname=test".into()],
        drives: vec![
            DriveSpec {
                id: "work".into(),
                path: work,
                format: DriveFormat::Qcow2,
                read_only: false,
                root: false,
            },
            DriveSpec {
                id: "root".into(),
                path: root,
                format: DriveFormat::Raw,
                read_only: true,
                root: true,
            },
        ],
        nics: vec![],
        user_net: None,
        vcpus: 1,
        memory_mib: 64,
        memory: Default::default(),
        restore: None,
        shares: Vec::new(),
    };
    (tmp, spec)
}

/// Kills the VM when a test ends, even by panicking, so no QEMU outlives the test run.
pub struct KillOnDrop(pub VmRuntime);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let id = ProcessIdentity {
            pid: self.0.pid,
            start_time: self.0.pid_start_time,
        };
        let _ = signal(id, libc::SIGKILL);
    }
}

/// An empty qcow2 (version 2, 64 KiB clusters): header, refcount table, one refcount block,
/// an all-zero L1 table. Written by hand because qemu-img is not installed on every host.
pub fn write_empty_qcow2(path: &Path, size: u64) {
    const CLUSTER: u64 = 1 << 16;
    let l2_covers = CLUSTER / 8 * CLUSTER; // bytes one L2 table maps
    let l1_size = size.div_ceil(l2_covers) as u32;
    let mut img = vec![0u8; 4 * CLUSTER as usize];
    let mut put = |at: usize, bytes: &[u8]| img[at..at + bytes.len()].copy_from_slice(bytes);
    put(0, b"QFI\xfb");
    put(4, &2u32.to_be_bytes()); // version
    put(20, &16u32.to_be_bytes()); // cluster_bits
    put(24, &size.to_be_bytes());
    put(36, &l1_size.to_be_bytes());
    put(40, &(3 * CLUSTER).to_be_bytes()); // l1_table_offset
    put(48, &CLUSTER.to_be_bytes()); // refcount_table_offset
    put(56, &1u32.to_be_bytes()); // refcount_table_clusters
    put(CLUSTER as usize, &(2 * CLUSTER).to_be_bytes()); // refcount table -> block
    for cluster in 0..4 {
        put(2 * CLUSTER as usize + cluster * 2, &1u16.to_be_bytes()); // clusters 0-3 in use
    }
    std::fs::write(path, img).unwrap();
}
