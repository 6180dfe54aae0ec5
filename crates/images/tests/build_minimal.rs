//! The whole minimal-image build, offline: a fake signed archive on 127.0.0.1
//! serving a synthesized kernel package (bzImage + modules) and a busybox-static
//! package wrapping the host's static busybox. The result is checked with the
//! real `cpio`.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use banger_images::imagecat::Recipe;
use banger_images::{
    BuildError, BuiltImage, Freshness, Manifest, MinimalOptions, RecipeState, build_minimal,
};
use banger_system::RealRunner;
use banger_system::progress::{ProgressEvent, Recorded, Unit};
use support::archive::FakeArchive;

const KVER: &str = "6.1.0-99-test";

struct Fixture {
    archive: FakeArchive,
    vmlinux: Vec<u8>,
    bzimage: Vec<u8>,
    virtio_blk: Vec<u8>,
    kernel_deb_path: String,
}

/// (path under lib/modules/KVER, name, depends, ship compressed)
const MODULES: &[(&str, &str, &[&str], bool)] = &[
    (
        "kernel/drivers/virtio/virtio_ring.ko",
        "virtio_ring",
        &[],
        false,
    ),
    (
        "kernel/drivers/virtio/virtio.ko",
        "virtio",
        &["virtio_ring"],
        false,
    ),
    (
        "kernel/drivers/virtio/virtio_mmio.ko",
        "virtio_mmio",
        &["virtio", "virtio_ring"],
        false,
    ),
    (
        "kernel/drivers/virtio/virtio_pci_modern_dev.ko",
        "virtio_pci_modern_dev",
        &[],
        false,
    ),
    (
        "kernel/drivers/virtio/virtio_pci.ko",
        "virtio_pci",
        &["virtio_pci_modern_dev", "virtio", "virtio_ring"],
        false,
    ),
    (
        "kernel/drivers/block/virtio_blk.ko.xz",
        "virtio_blk",
        &["virtio", "virtio_ring"],
        true,
    ),
    (
        "kernel/drivers/net/net_failover.ko",
        "net_failover",
        &[],
        false,
    ),
    (
        "kernel/drivers/net/virtio_net.ko",
        "virtio_net",
        &["net_failover", "virtio", "virtio_ring"],
        false,
    ),
    (
        "kernel/drivers/char/virtio_console.ko",
        "virtio_console",
        &["virtio", "virtio_ring"],
        false,
    ),
    (
        "kernel/drivers/char/hw_random/virtio-rng.ko",
        "virtio_rng",
        &["virtio", "virtio_ring"],
        false,
    ),
    ("kernel/net/vmw_vsock/vsock.ko", "vsock", &[], false),
    (
        "kernel/net/vmw_vsock/vmw_vsock_virtio_transport_common.ko",
        "vmw_vsock_virtio_transport_common",
        &["vsock"],
        false,
    ),
    (
        "kernel/net/vmw_vsock/vmw_vsock_virtio_transport.ko",
        "vmw_vsock_virtio_transport",
        &[
            "vmw_vsock_virtio_transport_common",
            "virtio",
            "virtio_ring",
            "vsock",
        ],
        false,
    ),
    ("kernel/drivers/acpi/button.ko", "button", &[], false),
    ("kernel/fs/fuse/virtiofs.ko", "virtiofs", &["fuse"], false),
    ("kernel/fs/fuse/fuse.ko", "fuse", &[], false),
    ("kernel/fs/ext4/unneeded.ko", "unneeded", &[], false),
];

/// The load order the build must produce (failover and evdev are built in here).
const EXPECTED_ORDER: &[&str] = &[
    "kernel/drivers/virtio/virtio_ring.ko",
    "kernel/drivers/virtio/virtio.ko",
    "kernel/drivers/virtio/virtio_mmio.ko",
    "kernel/drivers/virtio/virtio_pci_modern_dev.ko",
    "kernel/drivers/virtio/virtio_pci.ko",
    "kernel/drivers/block/virtio_blk.ko",
    "kernel/drivers/net/net_failover.ko",
    "kernel/drivers/net/virtio_net.ko",
    "kernel/drivers/char/virtio_console.ko",
    "kernel/drivers/char/hw_random/virtio-rng.ko",
    "kernel/net/vmw_vsock/vsock.ko",
    "kernel/net/vmw_vsock/vmw_vsock_virtio_transport_common.ko",
    "kernel/net/vmw_vsock/vmw_vsock_virtio_transport.ko",
    "kernel/drivers/acpi/button.ko",
    "kernel/fs/fuse/fuse.ko",
    "kernel/fs/fuse/virtiofs.ko",
];

fn fixture(with_kernel: bool) -> Fixture {
    let work = tempfile::tempdir().unwrap();
    let vmlinux = support::fake_vmlinux(true, 1 << 20);
    let bzimage = support::bzimage(&support::lz4_legacy(&vmlinux), vmlinux.len(), 27);
    let mut files: Vec<(String, u32, Vec<u8>)> = Vec::new();
    if with_kernel {
        files.push((format!("boot/vmlinuz-{KVER}"), 0o644, bzimage.clone()));
    }
    files.push((
        format!("lib/modules/{KVER}/modules.builtin"),
        0o644,
        b"kernel/net/core/failover.ko\nkernel/drivers/input/evdev.ko\n".to_vec(),
    ));
    let mut virtio_blk = Vec::new();
    for (path, name, deps, compressed) in MODULES {
        let raw = support::fake_module(name, deps);
        let bytes = if *compressed {
            virtio_blk = raw.clone();
            support::xz(&raw)
        } else {
            raw
        };
        files.push((format!("lib/modules/{KVER}/{path}"), 0o644, bytes));
    }
    let refs: Vec<(&str, u32, &[u8])> = files
        .iter()
        .map(|(p, m, b)| (p.as_str(), *m, b.as_slice()))
        .collect();
    let kernel_name = format!("linux-image-{KVER}");
    let kernel_deb = support::build_deb(
        &work.path().join("k.deb"),
        &kernel_name,
        "xz",
        &refs,
        &[(
            &format!("lib/modules/{KVER}/build"),
            "/usr/src/linux-headers",
        )],
    );
    let busybox = std::fs::read(support::static_busybox()).unwrap();
    let busybox_deb = support::build_deb(
        &work.path().join("b.deb"),
        "busybox-static",
        "xz",
        &[("bin/busybox", 0o755, &busybox)],
        &[],
    );

    let mut archive = FakeArchive::new();
    archive.by_hash = true;
    archive.add(
        "linux-image-cloud-amd64",
        "6.1.1-1",
        b"meta".to_vec(),
        Some(&format!("{kernel_name} (= 6.1.1-1)")),
    );
    let kernel_deb_path = archive.add(
        &kernel_name,
        "6.1.1-1",
        std::fs::read(kernel_deb).unwrap(),
        None,
    );
    archive.add(
        "busybox-static",
        "1:1.35.0-4",
        std::fs::read(busybox_deb).unwrap(),
        None,
    );
    archive.publish();
    Fixture {
        archive,
        vmlinux,
        bzimage,
        virtio_blk,
        kernel_deb_path,
    }
}

fn options<'a>(
    f: &Fixture,
    root: &Path,
    agent: PathBuf,
    runner: &'a RealRunner,
) -> MinimalOptions<'a> {
    let mut opts = MinimalOptions::new(
        root.join("images/minimal"),
        root.join("cache"),
        agent,
        runner,
    );
    opts.debian = f.archive.options();
    opts
}

fn extract_cpio(archive: &Path, dest: &Path) -> Vec<String> {
    std::fs::create_dir_all(dest).unwrap();
    let list = Command::new("cpio")
        .args(["-it", "--quiet"])
        .stdin(std::fs::File::open(archive).unwrap())
        .output()
        .unwrap();
    assert!(list.status.success());
    let status = Command::new("cpio")
        .args(["-idm", "--quiet", "--no-absolute-filenames"])
        .current_dir(dest)
        .stdin(std::fs::File::open(archive).unwrap())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    String::from_utf8(list.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Directories a build may leave behind next to the image (there must be none).
fn leftovers(images: &Path) -> Vec<String> {
    std::fs::read_dir(images)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "minimal")
        .collect()
}

#[test]
fn builds_a_complete_image_and_reuses_the_cache() {
    let f = fixture(true);
    let root = tempfile::tempdir().unwrap();
    let agent = support::static_busybox();
    let runner = RealRunner;
    let progress = Recorded::default();
    let mut opts = options(&f, root.path(), agent.clone(), &runner);
    opts.progress = &progress;

    let image = build_minimal(&opts).unwrap();
    let dir = root.path().join("images/minimal");
    assert_eq!(image.dir, dir);
    assert_eq!(image.kernel_release, KVER);
    assert!(image.has_pvh);
    assert_eq!(image.rootfs_path, None);
    assert_eq!(std::fs::read(&image.kernel_path).unwrap(), f.vmlinux);
    assert_eq!(
        std::fs::read(image.bzimage_path.as_ref().unwrap()).unwrap(),
        f.bzimage
    );
    let events = progress.0.lock().unwrap().clone();
    assert!(
        events.iter().any(|e| matches!(e,
            ProgressEvent::Note { message } if message.contains(&format!("linux-image-{KVER}")))),
        "{events:?}"
    );
    // Every download is a phase with its size, and its last count reaches that size.
    let mut downloads = 0;
    for (i, e) in events.iter().enumerate() {
        if let ProgressEvent::Phase {
            name,
            total: Some(total),
            unit: Some(Unit::Bytes),
        } = e
        {
            assert!(name.starts_with("download "), "{name}");
            let last = events[i + 1..]
                .iter()
                .take_while(|e| matches!(e, ProgressEvent::Advance { .. }))
                .last();
            assert_eq!(
                last,
                Some(&ProgressEvent::Advance { done: *total }),
                "{name}"
            );
            downloads += 1;
        }
    }
    assert_eq!(
        downloads, 3,
        "Packages.xz, the kernel and busybox: {events:?}"
    );
    let phases: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            ProgressEvent::Phase { name, .. } => Some(name.as_str()),
            _ => None,
        })
        .collect();
    for want in [
        "resolve kernel modules",
        "write the initramfs",
        "install the image",
    ] {
        assert!(phases.contains(&want), "{want} missing from {phases:?}");
    }
    assert_eq!(leftovers(&root.path().join("images")), Vec::<String>::new());

    // The initramfs, as the real cpio sees it.
    let x = root.path().join("x");
    let names = extract_cpio(&image.initrd_path, &x);
    for want in [
        "init",
        "bin/busybox",
        "bin/sh",
        "bin/cat",
        "bin/stty",
        "sbin",
        "dev/console",
        "etc/passwd",
        "etc/group",
        "etc/os-release",
        "etc/banger/modules",
        "tmp",
        "work",
        "run",
        "root",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from the initramfs"
        );
    }
    assert!(
        !names
            .iter()
            .any(|n| n.contains("unneeded")
                || n.contains("failover.ko") && !n.contains("net_failover")),
        "{names:?}"
    );
    assert_eq!(
        std::fs::read(x.join("init")).unwrap(),
        std::fs::read(&agent).unwrap()
    );
    assert_eq!(
        std::fs::read_link(x.join("bin/sh")).unwrap().to_str(),
        Some("busybox")
    );
    let order = std::fs::read_to_string(x.join("etc/banger/modules")).unwrap();
    assert_eq!(order.lines().collect::<Vec<_>>(), EXPECTED_ORDER);
    for m in EXPECTED_ORDER {
        assert!(
            x.join(format!("lib/modules/{KVER}/{m}")).is_file(),
            "{m} missing"
        );
    }
    // Shipped as .ko.xz, stored uncompressed.
    assert_eq!(
        std::fs::read(x.join(format!(
            "lib/modules/{KVER}/kernel/drivers/block/virtio_blk.ko"
        )))
        .unwrap(),
        f.virtio_blk
    );
    assert_eq!(
        std::fs::read_to_string(x.join("etc/passwd")).unwrap(),
        "root:x:0:0:root:/root:/bin/sh\n"
    );
    assert!(
        std::fs::read_to_string(x.join("etc/os-release"))
            .unwrap()
            .contains("NAME=\"banger minimal\"")
    );

    // The manifest describes it all, and loading it gives the same image.
    let m = Manifest::load(&dir).unwrap();
    assert_eq!(
        (
            m.image.as_str(),
            m.kernel_release.as_str(),
            m.has_pvh,
            m.kernel_codec.as_str()
        ),
        ("minimal", KVER, true, "lz4")
    );
    let pkgs: Vec<_> = m
        .packages
        .iter()
        .map(|p| (p.name.as_str(), p.version.as_str()))
        .collect();
    assert_eq!(
        pkgs,
        [
            (format!("linux-image-{KVER}").as_str(), "6.1.1-1"),
            ("busybox-static", "1:1.35.0-4")
        ]
    );
    assert_eq!(m.modules, EXPECTED_ORDER);
    assert_eq!(m.files.kernel.size, f.vmlinux.len() as u64);
    assert_eq!(m.banger_version, env!("CARGO_PKG_VERSION"));
    assert_eq!(BuiltImage::load(&dir).unwrap(), image);
    // It records the recipe revision that built it: current, as `image ls` would say.
    assert_eq!(m.recipe, Some(Recipe::Minimal.stamp()));
    let recipe = RecipeState::of("minimal", &m.source, Some(&m)).unwrap();
    assert_eq!(
        (recipe.built, recipe.freshness),
        (Some(Recipe::Minimal.revision()), Freshness::Current)
    );

    // A second build replaces the image and downloads no package again.
    let hits = f.archive.server.hits(&f.kernel_deb_path);
    let again = build_minimal(&opts).unwrap();
    assert_eq!(again, image);
    assert_eq!(
        f.archive.server.hits(&f.kernel_deb_path),
        hits,
        "the kernel package was downloaded twice"
    );
    assert_eq!(leftovers(&root.path().join("images")), Vec::<String>::new());
}

#[test]
fn a_failed_build_leaves_the_previous_image_untouched() {
    let good = fixture(true);
    let root = tempfile::tempdir().unwrap();
    let runner = RealRunner;
    build_minimal(&options(
        &good,
        root.path(),
        support::static_busybox(),
        &runner,
    ))
    .unwrap();
    let manifest = std::fs::read(root.path().join("images/minimal/manifest.json")).unwrap();

    let broken = fixture(false);
    let err = build_minimal(&options(
        &broken,
        root.path(),
        support::static_busybox(),
        &runner,
    ))
    .unwrap_err();
    assert!(matches!(err, BuildError::NoKernel { .. }), "{err}");
    assert!(err.to_string().contains("vmlinuz"), "{err}");
    assert_eq!(
        std::fs::read(root.path().join("images/minimal/manifest.json")).unwrap(),
        manifest
    );
    assert_eq!(leftovers(&root.path().join("images")), Vec::<String>::new());
}

#[test]
fn a_dynamic_agent_is_refused_before_any_download() {
    let f = fixture(true);
    let root = tempfile::tempdir().unwrap();
    let runner = RealRunner;
    let err = build_minimal(&options(
        &f,
        root.path(),
        support::dynamic_program(),
        &runner,
    ))
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("dynamically linked") && text.contains("make agent"),
        "{text}"
    );
    assert_eq!(f.archive.server.total_hits(), 0);
    assert!(!root.path().join("images").exists());

    let err = build_minimal(&options(
        &f,
        root.path(),
        root.path().join("missing-agent"),
        &runner,
    ))
    .unwrap_err();
    assert!(err.to_string().contains("missing-agent"), "{err}");
}
