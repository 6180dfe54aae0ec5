//! Restores on the command line: the inherited migration stream, and RAM files mapped
//! shared to save and privately to restore.

use std::path::Path;

use super::*;

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
