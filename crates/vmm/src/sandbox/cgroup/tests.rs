//! The backend-independent logic and the v2 backend's file work, on directory trees.
//!
//! cgroup v2 CANNOT RUN on banger's CI hosts (hybrid: memory and pids are v1 hierarchies),
//! so the v2 backend's only checks are these, on plain directories standing in for
//! cgroupfs: which files it writes, with what. The v1 backend runs for real
//! (`tests/cgroup_v1.rs`, as root).

use super::*;

#[test]
fn limits_follow_the_vm_and_the_overhead() {
    let o = Overhead::default();
    let kvm = Limits::for_vm(512, false, o);
    assert_eq!(kvm.memory_max, (512 + DEFAULT_MEMORY_OVERHEAD_MIB) << 20);
    assert_eq!(kvm.pids_max, DEFAULT_PIDS_MAX);
    let tcg = Limits::for_vm(512, true, o);
    assert_eq!(tcg.memory_max, kvm.memory_max + (TCG_CACHE_MIB << 20));
    let tight = Limits::for_vm(
        256,
        false,
        Overhead {
            memory_mib: 0,
            pids_max: 64,
        },
    );
    assert_eq!(
        tight,
        Limits {
            memory_max: 256 << 20,
            pids_max: 64
        }
    );
    assert_eq!(Limits::for_vm(u64::MAX, true, o).memory_max, u64::MAX);
}

#[test]
fn instances_are_stable_and_distinct() {
    let a = instance_name(Path::new("/var/lib/banger"));
    assert_eq!(a, instance_name(Path::new("/var/lib/banger")));
    assert_ne!(a, instance_name(Path::new("/root/.local/state/banger")));
    assert_eq!(a.len(), 12);
    assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// v2 (tree only, see the module comment): the daemon moves into `daemon/`, controllers
/// are enabled on the way down, and a VM group gets memory.max, pids.max, oom.group.
#[test]
fn v2_setup_and_create_write_the_right_files() {
    let dir = tempfile::tempdir().unwrap();
    let group = dir.path().join("bangerd.service");
    std::fs::create_dir(&group).unwrap();
    let cgroups = Cgroups::setup(
        Layout::V2 {
            group: group.clone(),
            move_self: true,
        },
        "abc",
    )
    .unwrap();
    assert_eq!(
        read(&group.join("daemon/cgroup.procs")),
        std::process::id().to_string()
    );
    assert_eq!(read(&group.join("cgroup.subtree_control")), "+memory +pids");
    // No parent until a VM needs one: a daemon that runs none leaves nothing behind.
    assert!(!group.join("banger-abc").exists());
    let vm = cgroups
        .create(
            "0123456789ab",
            Limits::for_vm(512, true, Overhead::default()),
        )
        .unwrap();
    assert_eq!(
        read(&group.join("banger-abc/cgroup.subtree_control")),
        "+memory +pids"
    );
    let g = group.join("banger-abc/0123456789ab");
    assert_eq!(vm.dirs, vec![g.clone()]);
    assert_eq!(cgroups.dirs("0123456789ab"), vec![g.clone()]);
    assert_eq!(
        read(&g.join("memory.max")),
        ((512 + 256 + 1024) << 20).to_string()
    );
    assert_eq!(read(&g.join("pids.max")), "512");
    assert_eq!(read(&g.join("memory.oom.group")), "1");
    assert_eq!(
        vm.placement.procs,
        vec![CString::new(g.join("cgroup.procs").to_str().unwrap()).unwrap()]
    );
    assert!(
        cgroups.describe().starts_with("cgroup v2 "),
        "{}",
        cgroups.describe()
    );

    // At the hierarchy's root there is nothing to move.
    let root = tempfile::tempdir().unwrap();
    Cgroups::setup(
        Layout::V2 {
            group: root.path().to_path_buf(),
            move_self: false,
        },
        "abc",
    )
    .unwrap();
    assert!(!root.path().join("daemon").exists());
}

/// v1 on a tree: one group per hierarchy, the limits in each one's own file; the sweep
/// keeps the VMs it is told to keep.
#[test]
fn v1_layout_on_a_tree() {
    let dir = tempfile::tempdir().unwrap();
    let (memory, pids) = (dir.path().join("memory/x"), dir.path().join("pids"));
    std::fs::create_dir_all(&memory).unwrap();
    std::fs::create_dir_all(&pids).unwrap();
    let cgroups = Cgroups::setup(
        Layout::V1 {
            memory: memory.clone(),
            pids: pids.clone(),
        },
        "abc",
    )
    .unwrap();
    assert!(!memory.join("banger-abc").exists() && !pids.join("banger-abc").exists());
    let vm = cgroups
        .create(
            "0123456789ab",
            Limits {
                memory_max: 1 << 30,
                pids_max: 100,
            },
        )
        .unwrap();
    assert_eq!(
        vm.dirs,
        vec![
            memory.join("banger-abc/0123456789ab"),
            pids.join("banger-abc/0123456789ab")
        ]
    );
    assert_eq!(
        read(&vm.dirs[0].join("memory.limit_in_bytes")),
        "1073741824"
    );
    assert_eq!(read(&vm.dirs[1].join("pids.max")), "100");
    // Empty leftovers go, kept ones stay (a tree's directories are empty once the files
    // cgroupfs would not have are gone).
    std::fs::create_dir(memory.join("banger-abc/ffffffffffff")).unwrap();
    std::fs::create_dir(pids.join("banger-abc/ffffffffffff")).unwrap();
    assert_eq!(
        cgroups.sweep(&|id| id == "0123456789ab"),
        vec!["ffffffffffff"]
    );
    assert!(vm.dirs[0].exists() && !memory.join("banger-abc/ffffffffffff").exists());
}
