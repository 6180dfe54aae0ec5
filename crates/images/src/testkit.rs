//! Test support (cargo feature `testkit`, for other crates' tests; never in a release
//! build): a stand-in image directory that [`Manifest::load`] accepts, for tests that need
//! an image on disk but not a bootable one.

use std::path::Path;

use crate::manifest::{
    FileRecord, MANIFEST_FILE, MANIFEST_FORMAT, Manifest, ManifestDebian, ManifestFiles,
};
use crate::recipe::RecipeStamp;

/// Makes `dir` (which must exist) a stand-in image named `image`: small `vmlinux` and
/// `initrd.cpio` files, and a `manifest.json` recording them as its kernel, initrd and
/// agent, with `rootfs` (a file the caller put in `dir`) as its root filesystem.
pub fn stand_in_image(dir: &Path, image: &str, rootfs: Option<FileRecord>) -> std::io::Result<()> {
    write_manifest(dir, &stand_in_manifest(dir, image, rootfs)?)
}

/// The files of [`stand_in_image`] and the manifest it would write, for a test to change
/// (say, its recipe) before [`write_manifest`]. It records no recipe, like an image built
/// before manifests recorded one.
pub fn stand_in_manifest(
    dir: &Path,
    image: &str,
    rootfs: Option<FileRecord>,
) -> std::io::Result<Manifest> {
    std::fs::write(dir.join("vmlinux"), b"kernel")?;
    std::fs::write(dir.join("initrd.cpio"), b"initrd")?;
    let kernel = FileRecord::of(dir, "vmlinux")?;
    Ok(Manifest {
        format: MANIFEST_FORMAT,
        image: image.to_string(),
        source: "test".to_string(),
        recipe: None,
        kernel_release: "6.1.0-test".to_string(),
        has_pvh: true,
        kernel_codec: "none".to_string(),
        files: ManifestFiles {
            kernel: kernel.clone(),
            bzimage: None,
            initrd: FileRecord::of(dir, "initrd.cpio")?,
            rootfs,
        },
        packages: Vec::new(),
        modules: Vec::new(),
        agent: kernel,
        debian: ManifestDebian {
            mirror: String::new(),
            suite: String::new(),
            component: String::new(),
            arch: "amd64".to_string(),
        },
        init: None,
        include: Vec::new(),
        built_at: "2026-12-01T00:00:00Z".to_string(),
        banger_version: "test".to_string(),
    })
}

/// Makes `dir` (which must exist) a stand-in image registered from `source`
/// (`recipe:debian`, or an import's reference) whose manifest records `revision` of that
/// recipe (`None`: a manifest from before revisions were recorded), and returns the
/// manifest, for a test to change and write again.
pub fn stand_in_recipe_image(
    dir: &Path,
    image: &str,
    source: &str,
    revision: Option<u32>,
) -> std::io::Result<Manifest> {
    let mut manifest = stand_in_manifest(dir, image, None)?;
    manifest.source = source.to_string();
    manifest.recipe = revision.map(|revision| RecipeStamp {
        name: source.trim_start_matches("recipe:").to_string(),
        revision,
    });
    write_manifest(dir, &manifest)?;
    Ok(manifest)
}

/// Write `manifest` as `dir/manifest.json`.
pub fn write_manifest(dir: &Path, manifest: &Manifest) -> std::io::Result<()> {
    std::fs::write(dir.join(MANIFEST_FILE), serde_json::to_vec(manifest)?)
}
