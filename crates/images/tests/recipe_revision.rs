//! Manifests and recipe revisions: a manifest written before images recorded their
//! recipe's revision (the text an older banger wrote) still loads, and reads as an
//! unknown revision that may lack the recipe's changes; imported images have no recipe.
//! The minimal build's own manifest is checked in `build_minimal.rs`.

use banger_images::imagecat::Recipe;
use banger_images::manifest::MANIFEST_FILE;
use banger_images::{Freshness, Manifest, RecipeStamp, RecipeState};

/// A `debian` image's manifest as banger wrote it before recipe revisions (a template
/// image of the e2e tests, its lists shortened).
const OLD_DEBIAN_MANIFEST: &str = r#"{
  "format": 1,
  "image": "dev",
  "source": "recipe:debian",
  "kernel_release": "6.1.0-50-cloud-amd64",
  "has_pvh": true,
  "kernel_codec": "lz4",
  "files": {
    "kernel": { "path": "vmlinux", "size": 6, "sha256": "6b6b" },
    "bzimage": { "path": "bzImage", "size": 6, "sha256": "6b6b" },
    "initrd": { "path": "initrd.cpio", "size": 6, "sha256": "6b6b" },
    "rootfs": { "path": "rootfs.ext4", "size": 6, "sha256": "6b6b" }
  },
  "packages": [
    {
      "name": "linux-image-6.1.0-50-cloud-amd64",
      "version": "6.1.176-1",
      "sha256": "efe19f605b6f54a8352e68d85a629abb2d30b72a085faef603a9152590baa791",
      "filename": "pool/main/l/linux-signed-amd64/linux-image-6.1.0-50-cloud-amd64_6.1.176-1_amd64.deb"
    }
  ],
  "modules": ["kernel/drivers/virtio/virtio_ring.ko", "kernel/drivers/virtio/virtio.ko"],
  "agent": { "path": "/usr/lib/banger/banger-agent", "size": 1757296, "sha256": "16f6" },
  "debian": {
    "mirror": "http://deb.debian.org/debian",
    "suite": "trixie",
    "component": "main",
    "arch": "amd64"
  },
  "init": "systemd",
  "include": ["git"],
  "built_at": "2026-12-01T20:53:34.165067504Z",
  "banger_version": "0.1.0"
}"#;

#[test]
fn a_manifest_from_before_revisions_loads_with_an_unknown_revision() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(MANIFEST_FILE), OLD_DEBIAN_MANIFEST).unwrap();
    for file in ["vmlinux", "bzImage", "initrd.cpio", "rootfs.ext4"] {
        std::fs::write(dir.path().join(file), b"kernel").unwrap();
    }
    let m = Manifest::load(dir.path()).unwrap();
    assert_eq!(m.recipe, None);

    let state = RecipeState::of("dev", &m.source, Some(&m)).unwrap();
    assert_eq!((state.built, state.freshness), (None, Freshness::Unknown));
    // It may predate every change the recipe recorded, so a rebuild is suggested, with
    // the options it was built with.
    assert!(state.needs_rebuild());
    assert_eq!(state.changes, Recipe::Debian.changes());
    assert_eq!(
        state.rebuild,
        "banger image build debian --name dev --suite trixie --packages git --init systemd --force"
    );

    // Written again by this banger, it keeps the field it was given, and reads back.
    let mut stamped = m.clone();
    stamped.recipe = Some(RecipeStamp {
        name: "debian".into(),
        revision: 1,
    });
    let text = serde_json::to_string(&stamped).unwrap();
    assert!(
        text.contains(r#""recipe":{"name":"debian","revision":1}"#),
        "{text}"
    );
    std::fs::write(dir.path().join(MANIFEST_FILE), text).unwrap();
    let back = Manifest::read(dir.path()).unwrap();
    assert_eq!(back, stamped);
    let state = RecipeState::of("dev", &back.source, Some(&back)).unwrap();
    assert_eq!(state.freshness, Freshness::Outdated);
    // Without the field, nothing is written: an image no recipe built stays as it was.
    assert!(!serde_json::to_string(&m).unwrap().contains("recipe\":"));
}

#[test]
fn a_manifest_is_read_for_its_recipe_even_when_a_file_it_lists_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(MANIFEST_FILE), OLD_DEBIAN_MANIFEST).unwrap();
    assert!(Manifest::load(dir.path()).is_err());
    assert_eq!(Manifest::read(dir.path()).unwrap().image, "dev");
}

#[test]
fn an_imported_kernel_has_no_recipe_and_is_never_outdated() {
    let mut m: Manifest = serde_json::from_str(OLD_DEBIAN_MANIFEST).unwrap();
    m.source = "kernel:/boot/vmlinux".into();
    assert_eq!(RecipeState::of("k", &m.source, Some(&m)), None);
    // Nor does a catalog download or an OCI import, whatever its manifest says.
    m.recipe = Some(RecipeStamp {
        name: "debian".into(),
        revision: 1,
    });
    for source in ["catalog:debian", "docker://registry.example.com/app:1"] {
        assert_eq!(RecipeState::of("k", source, Some(&m)), None);
    }
}
