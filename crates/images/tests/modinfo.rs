//! Module dependency resolution from `.modinfo` of synthesized ELF modules.

use crate::support;

use std::path::{Path, PathBuf};

use banger_images::modules::{ModuleError, ModuleInfo, ModuleSet, decompress_module};
use support::{fake_module, xz};

fn module(set: &mut ModuleSet, path: &str, name: &str, deps: &[&str]) {
    let info = ModuleInfo::parse(Path::new(path), &fake_module(name, deps)).unwrap();
    set.add(info).unwrap();
}

fn names(list: &[&ModuleInfo]) -> Vec<String> {
    list.iter().map(|m| m.name.clone()).collect()
}

/// Shaped like bookworm's cloud kernel, where virtio and virtio_ring are modules.
fn cloud_like() -> ModuleSet {
    let mut s = ModuleSet::new();
    module(
        &mut s,
        "kernel/drivers/virtio/virtio_ring.ko",
        "virtio_ring",
        &[],
    );
    module(
        &mut s,
        "kernel/drivers/virtio/virtio.ko",
        "virtio",
        &["virtio_ring"],
    );
    module(
        &mut s,
        "kernel/drivers/virtio/virtio_mmio.ko",
        "virtio_mmio",
        &["virtio", "virtio_ring"],
    );
    module(
        &mut s,
        "kernel/drivers/virtio/virtio_pci_legacy_dev.ko",
        "virtio_pci_legacy_dev",
        &["virtio"],
    );
    module(
        &mut s,
        "kernel/drivers/virtio/virtio_pci_modern_dev.ko",
        "virtio_pci_modern_dev",
        &[],
    );
    module(
        &mut s,
        "kernel/drivers/virtio/virtio_pci.ko",
        "virtio_pci",
        &[
            "virtio_pci_modern_dev",
            "virtio_pci_legacy_dev",
            "virtio",
            "virtio_ring",
        ],
    );
    module(&mut s, "kernel/net/core/failover.ko", "failover", &[]);
    module(
        &mut s,
        "kernel/drivers/net/net_failover.ko",
        "net_failover",
        &["failover"],
    );
    module(
        &mut s,
        "kernel/drivers/net/virtio_net.ko",
        "virtio_net",
        &["net_failover", "virtio", "virtio_ring"],
    );
    // The file name uses a dash, the module name an underscore.
    module(
        &mut s,
        "kernel/drivers/char/hw_random/virtio-rng.ko",
        "virtio_rng",
        &["virtio", "virtio_ring"],
    );
    s
}

#[test]
fn dependencies_load_first_in_a_stable_order() {
    let s = cloud_like();
    let order = s
        .resolve(&["virtio_net", "virtio-rng", "virtio_pci"])
        .unwrap();
    assert_eq!(
        names(&order),
        // Depends are followed in the order .modinfo lists them.
        [
            "failover",
            "net_failover",
            "virtio_ring",
            "virtio",
            "virtio_net",
            "virtio_rng",
            "virtio_pci_modern_dev",
            "virtio_pci_legacy_dev",
            "virtio_pci"
        ]
    );
    assert_eq!(
        order[5].path,
        PathBuf::from("kernel/drivers/char/hw_random/virtio-rng.ko")
    );
    // Every module comes after all of its dependencies.
    for (i, m) in order.iter().enumerate() {
        for d in &m.depends {
            assert!(
                order[..i].iter().any(|x| &x.name == d),
                "{} before its dependency {d}",
                m.name
            );
        }
    }
}

#[test]
fn builtin_modules_are_skipped() {
    let mut s = ModuleSet::new();
    module(
        &mut s,
        "kernel/drivers/net/virtio_net.ko",
        "virtio_net",
        &["virtio", "net_failover"],
    );
    module(
        &mut s,
        "kernel/drivers/net/net_failover.ko",
        "net_failover",
        &["failover"],
    );
    s.add_builtin_list("kernel/drivers/virtio/virtio.ko\nkernel/drivers/virtio/virtio_ring.ko\nkernel/net/core/failover.ko\n");
    assert!(s.is_builtin("virtio-ring"));
    let order = s.resolve(&["virtio_ring", "virtio", "virtio_net"]).unwrap();
    assert_eq!(names(&order), ["net_failover", "virtio_net"]);
}

#[test]
fn missing_dependency_names_who_needs_it() {
    let mut s = ModuleSet::new();
    module(&mut s, "kernel/a.ko", "a", &["b"]);
    let err = s.resolve(&["a"]).unwrap_err();
    match &err {
        ModuleError::Missing { name, required_by } => {
            assert_eq!((name.as_str(), required_by.as_str()), ("b", "a"))
        }
        other => panic!("expected Missing, got {other}"),
    }
    let err = s.resolve(&["vsock"]).unwrap_err();
    assert!(
        err.to_string().contains("vsock") && err.to_string().contains("the guest"),
        "{err}"
    );
}

#[test]
fn cycles_are_reported_with_their_chain() {
    let mut s = ModuleSet::new();
    module(&mut s, "kernel/a.ko", "a", &["b"]);
    module(&mut s, "kernel/b.ko", "b", &["c"]);
    module(&mut s, "kernel/c.ko", "c", &["a"]);
    let err = s.resolve(&["a"]).unwrap_err();
    match &err {
        ModuleError::Cycle { chain } => assert_eq!(chain, &["a", "b", "c", "a"]),
        other => panic!("expected Cycle, got {other}"),
    }
    assert!(err.to_string().contains("a -> b -> c -> a"));
}

#[test]
fn duplicate_and_unreadable_modules_are_errors() {
    let mut s = ModuleSet::new();
    module(&mut s, "kernel/a.ko", "a", &[]);
    let dup = ModuleInfo::parse(Path::new("updates/a.ko"), &fake_module("a", &[])).unwrap();
    assert!(matches!(s.add(dup), Err(ModuleError::Duplicate { .. })));
    let err = ModuleInfo::parse(Path::new("kernel/x.ko"), b"not an elf").unwrap_err();
    assert!(
        matches!(err, ModuleError::BadModule { .. }) && err.to_string().contains("kernel/x.ko"),
        "{err}"
    );
}

#[test]
fn compressed_modules_are_decompressed_and_renamed() {
    let raw = fake_module("virtio_blk", &["virtio", "virtio_ring"]);
    let (path, bytes) =
        decompress_module(Path::new("kernel/drivers/block/virtio_blk.ko.xz"), xz(&raw)).unwrap();
    assert_eq!(path, PathBuf::from("kernel/drivers/block/virtio_blk.ko"));
    assert_eq!(bytes, raw);
    let info = ModuleInfo::parse(&path, &bytes).unwrap();
    assert_eq!(info.depends, ["virtio", "virtio_ring"]);
    let (path, bytes) =
        decompress_module(Path::new("kernel/x.ko.zst"), support::zstd(&raw)).unwrap();
    assert_eq!((path, bytes), (PathBuf::from("kernel/x.ko"), raw.clone()));
    let err = decompress_module(Path::new("kernel/x.ko.xz"), raw).unwrap_err();
    assert!(matches!(err, ModuleError::BadModule { .. }));
}
