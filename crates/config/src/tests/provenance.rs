//! Provenance: where each resolved value came from (config.toml, sized from the host, or
//! banger's built-in fallback).

use super::*;

#[test]
fn provenance_of_path_and_name_fields() {
    let l = layout();
    let none = Config::default();
    assert_eq!(
        none.firecracker_bin_resolved(),
        Resolved::new("firecracker".into(), Provenance::Builtin)
    );
    assert_eq!(
        none.ssh_key_path_resolved(&l),
        Resolved::new(l.default_ssh_key(), Provenance::Builtin)
    );
    assert_eq!(
        none.default_image_name_resolved(),
        Resolved::new("debian".to_string(), Provenance::Builtin)
    );

    let set = p("firecracker_bin = \"/fc\"\nssh_key_path = \"/k\"\ndefault_image_name = \"dev\"")
        .unwrap();
    assert_eq!(
        set.firecracker_bin_resolved(),
        Resolved::new("/fc".into(), Provenance::Config)
    );
    assert_eq!(
        set.ssh_key_path_resolved(&l),
        Resolved::new("/k".into(), Provenance::Config)
    );
    assert_eq!(
        set.default_image_name_resolved(),
        Resolved::new("dev".to_string(), Provenance::Config)
    );
}

#[test]
fn provenance_of_vm_defaults_in_all_three_sources() {
    let cfg = p("[vm_defaults]\nvcpu = 3\nmemory = 1000\ndisk = \"20G\"").unwrap();
    let d = cfg.vm_defaults_resolved(Some(8), Some(16 * GIB));
    assert_eq!(
        (d.vcpu.source, d.memory_mib.source, d.disk_bytes.source),
        (Provenance::Config, Provenance::Config, Provenance::Config)
    );
    assert_eq!(
        (d.vcpu.value, d.memory_mib.value, d.disk_bytes.value),
        (3, 1000, 20 * GIB)
    );

    let d = p("").unwrap().vm_defaults_resolved(Some(8), Some(16 * GIB));
    assert_eq!(
        (d.vcpu.source, d.memory_mib.source),
        (Provenance::Auto, Provenance::Auto)
    );
    assert_eq!(d.disk_bytes.source, Provenance::Builtin);

    let d = p("").unwrap().vm_defaults_resolved(None, None);
    assert_eq!(
        (d.vcpu.source, d.memory_mib.source),
        (Provenance::Builtin, Provenance::Builtin)
    );
}
