//! Root disks on the filesystem the tests run on (ext4 here: no reflinks), with the real
//! qemu-img. The reflink path is exercised on a loop-mounted xfs by `make bench`.

use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use banger_images::vmdisk::{self, Backend, DiskOptions};
use banger_system::progress::{NoProgress, Progress, ProgressEvent};
use banger_system::{CommandRunner, RealRunner};

/// A 64 MiB sparse "image" with data at 0 and at 40 MiB.
fn base(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("rootfs.ext4");
    let mut f = std::fs::File::create(&path).unwrap();
    f.set_len(64 << 20).unwrap();
    f.write_all(&[0xAB; 8192]).unwrap();
    f.seek(SeekFrom::Start(40 << 20)).unwrap();
    f.write_all(&[0xCD; 4096]).unwrap();
    f.sync_all().unwrap();
    path
}

/// Keeps every progress event.
#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<ProgressEvent>>);

impl Progress for Recorder {
    fn report(&self, event: ProgressEvent) {
        self.0.lock().unwrap().push(event);
    }
}

fn reflinks_here(dir: &Path) -> bool {
    vmdisk::supports_reflink(dir).unwrap()
}

#[test]
fn sparse_copy_keeps_holes_and_content() {
    let tmp = tempfile::tempdir().unwrap();
    let base = base(tmp.path());
    let vm = tmp.path().join("vm");
    std::fs::create_dir(&vm).unwrap();
    let opts = DiskOptions {
        allow_qcow2: false,
        qemu_img: None,
        size_bytes: 0,
    };
    let events = Recorder::default();
    let disk = vmdisk::create_root_disk(&base, &vm, opts, &events).unwrap();
    let expected = if reflinks_here(tmp.path()) {
        Backend::Reflink
    } else {
        Backend::Copy
    };
    assert_eq!(disk.backend, expected);
    // The user sees which backend ran and, for a copy, how far it got, up to the whole.
    let events = events.0.lock().unwrap().clone();
    let phases: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            ProgressEvent::Phase { name, .. } => Some(name.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(phases[0], "clone the image's root filesystem (reflink)");
    if expected == Backend::Copy {
        assert!(events.contains(&ProgressEvent::Phase {
            name: "copy the image's root filesystem (sparse)".into(),
            total: Some(64 << 20),
            unit: Some(banger_system::progress::Unit::Bytes),
        }));
        let done: Vec<u64> = events
            .iter()
            .filter_map(|e| match e {
                ProgressEvent::Advance { done } => Some(*done),
                _ => None,
            })
            .collect();
        assert!(done.windows(2).all(|w| w[0] <= w[1]), "{done:?}");
        assert_eq!(done.last(), Some(&(64 << 20)));
    }
    assert_eq!(disk.size_bytes, 64 << 20);
    assert_eq!(
        std::fs::read(&disk.path).unwrap(),
        std::fs::read(&base).unwrap()
    );
    let meta = std::fs::metadata(&disk.path).unwrap();
    assert!(
        meta.blocks() * 512 <= 1 << 20,
        "the copy is not sparse: {} bytes allocated",
        meta.blocks() * 512
    );
    // A second disk in the same place is refused, never overwritten.
    assert!(vmdisk::create_root_disk(&base, &vm, opts, &NoProgress).is_err());
    assert!(vmdisk::used_bytes(&disk.path).unwrap() <= 1 << 20);
}

#[test]
fn qcow2_overlay_when_there_are_no_reflinks() {
    let tmp = tempfile::tempdir().unwrap();
    if reflinks_here(tmp.path()) {
        eprintln!("this filesystem reflinks: the reflink backend wins, nothing to test here");
        return;
    }
    let qemu_img = banger_system::runner::lookup_executable("qemu-img")
        .expect("qemu-img is missing: run scripts/install-deps (package qemu-utils)");
    let base = base(tmp.path());
    let vm = tmp.path().join("vm");
    std::fs::create_dir(&vm).unwrap();
    let opts = DiskOptions {
        allow_qcow2: true,
        qemu_img: Some(&qemu_img),
        size_bytes: 0,
    };
    let disk = vmdisk::create_root_disk(&base, &vm, opts, &NoProgress).unwrap();
    assert_eq!(disk.backend, Backend::Qcow2);
    assert_eq!(disk.path, vm.join("root.qcow2"));
    // The overlay reads through to a hard link of the image inside the VM directory.
    let info = RealRunner
        .run_str(
            qemu_img.to_str().unwrap(),
            &["info", "--output=json", disk.path.to_str().unwrap()],
        )
        .unwrap();
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(info["virtual-size"], 64 << 20);
    assert_eq!(
        info["backing-filename"].as_str().unwrap(),
        vm.join("root.base").to_str().unwrap()
    );
    assert_eq!(std::fs::metadata(&base).unwrap().nlink(), 2);
    assert!(vmdisk::used_bytes(&disk.path).unwrap() < 1 << 20);
}

/// Every backend gives the guest the VM's size: the image's bytes, then zeros (a sparse
/// tail for raw disks, the overlay's virtual size for qcow2), costing no host bytes.
#[test]
fn disks_have_the_vm_size_beyond_the_image() {
    let tmp = tempfile::tempdir().unwrap();
    let base = base(tmp.path());
    let qemu_img = banger_system::runner::lookup_executable("qemu-img")
        .expect("qemu-img is missing: run scripts/install-deps (package qemu-utils)");
    let want = 1u64 << 30;
    for (i, allow_qcow2) in [false, true].into_iter().enumerate() {
        let vm = tmp.path().join(format!("vm{i}"));
        std::fs::create_dir(&vm).unwrap();
        let opts = DiskOptions {
            allow_qcow2,
            qemu_img: Some(&qemu_img),
            size_bytes: want,
        };
        let disk = vmdisk::create_root_disk(&base, &vm, opts, &NoProgress).unwrap();
        assert_eq!(disk.size_bytes, want);
        if disk.backend == Backend::Qcow2 {
            let info = RealRunner
                .run_str(
                    qemu_img.to_str().unwrap(),
                    &["info", "--output=json", disk.path.to_str().unwrap()],
                )
                .unwrap();
            let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
            assert_eq!(info["virtual-size"], want);
        } else {
            let bytes = std::fs::read(&disk.path).unwrap();
            assert_eq!(bytes.len() as u64, want);
            let image = std::fs::read(&base).unwrap();
            assert_eq!(&bytes[..image.len()], &image[..]);
            assert!(bytes[image.len()..].iter().all(|b| *b == 0));
        }
        assert!(
            vmdisk::used_bytes(&disk.path).unwrap() <= 1 << 20,
            "{:?} costs host bytes beyond the image",
            disk.backend
        );
    }
    // A disk never shrinks below its image: an old image with headroom keeps its size.
    let vm = tmp.path().join("small");
    std::fs::create_dir(&vm).unwrap();
    let opts = DiskOptions {
        allow_qcow2: false,
        qemu_img: None,
        size_bytes: 1 << 20,
    };
    let disk = vmdisk::create_root_disk(&base, &vm, opts, &NoProgress).unwrap();
    assert_eq!(disk.size_bytes, 64 << 20);
    assert_eq!(std::fs::metadata(&disk.path).unwrap().len(), 64 << 20);
}

/// A VM disk copied for a snapshot or a warm state is named in the progress phase by its
/// own file name, not as "the image's root filesystem" (which it is not).
#[test]
fn a_sparse_clone_names_the_file_it_copies() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work.ext4");
    std::fs::rename(base(tmp.path()), &work).unwrap();
    if reflinks_here(tmp.path()) {
        return; // A reflink reports no copy.
    }
    let events = Recorder::default();
    let backend = vmdisk::clone_file(&work, &tmp.path().join("copy.ext4"), &events).unwrap();
    assert_eq!(backend, Backend::Copy);
    let phases: Vec<String> = events
        .0
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            ProgressEvent::Phase { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(phases, ["copy work.ext4 (sparse)"]);
}
