//! Request and response bodies of the image routes: views, build, import, pull, prune, verify.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A registered image.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ImageView {
    #[schema(example = "minimal")]
    pub name: String,
    /// Where it came from, e.g. `recipe:minimal`.
    #[schema(example = "recipe:minimal")]
    pub source: String,
    pub kernel_path: String,
    /// `elf-vmlinux` (an uncompressed kernel every driver boots).
    pub kernel_format: String,
    #[serde(default)]
    pub initrd_path: Option<String>,
    /// `null` for images that run from their initramfs.
    #[serde(default)]
    pub rootfs_path: Option<String>,
    #[serde(default)]
    pub kernel_release: Option<String>,
    /// The kernel carries the PVH entry note (direct ELF boot on QEMU microvm and Firecracker).
    #[serde(default)]
    pub kernel_pvh: Option<bool>,
    /// Bytes on disk.
    pub size_bytes: u64,
    pub created_at: String,
    /// How the guest starts: `initramfs`, `agent` (the lean init) or `systemd`.
    #[serde(default)]
    pub init: Option<String>,
    /// `sha256:…` of the image's manifest, when it came from one.
    #[serde(default)]
    pub digest: Option<String>,
    /// An imported image's Entrypoint/Cmd/Env/WorkingDir: what `vm run` runs when it is
    /// given no command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<ImageRunConfig>,
    /// Its warm state, when it has one (`banger image warm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm: Option<crate::snapshots::ImageWarmView>,
    /// The recipe that built it and how that compares with this banger's; absent for images
    /// no recipe built (OCI imports, catalog downloads, kernels), which are never outdated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipe: Option<ImageRecipeView>,
}

/// The recipe revision that built an image, measured against this banger's recipe
/// (docs/images.md, *Recipe revisions*).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ImageRecipeView {
    /// The recipe: `debian` or `minimal`.
    #[schema(example = "debian")]
    pub name: String,
    /// The revision that built the image; `null` when its manifest records none (built
    /// before images recorded it).
    #[schema(example = 1)]
    pub revision: Option<u32>,
    /// The revision this banger's recipe builds.
    #[schema(example = 2)]
    pub current_revision: u32,
    /// `current`, `outdated` (an older revision built it), `unknown` (no revision recorded)
    /// or `newer` (a newer banger built it).
    #[schema(example = "outdated")]
    pub status: String,
    /// Whether rebuilding would change the image: it is `outdated`, or `unknown` while the
    /// recipe has changed since its first revision (it may lack those changes).
    pub outdated: bool,
    /// What a rebuild would change, one entry per later revision, oldest first (every
    /// change when the revision is unknown).
    #[serde(default)]
    pub changes: Vec<String>,
    /// The command that rebuilds the image as it was built (the same name, suite, packages
    /// and init).
    #[schema(example = "banger image build debian --force")]
    pub rebuild: String,
}

/// How `vm run IMAGE` with no command runs an imported image.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct ImageRunConfig {
    #[serde(default)]
    pub entrypoint: Vec<String>,
    #[serde(default)]
    pub cmd: Vec<String>,
    /// `KEY=VALUE` strings.
    #[serde(default)]
    pub env: Vec<String>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
}

/// A catalog entry to fetch (download entries) or build (recipes).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PullImageRequest {
    /// A catalog entry (docs/images.md lists the embedded ones).
    pub name: String,
    /// Fetch again even if the image is registered.
    #[serde(default)]
    pub force: bool,
}

/// A kernel file to import as a kernel image.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportKernelRequest {
    /// Absolute path of an ELF vmlinux or a bzImage, readable by the daemon.
    pub path: String,
    /// Register under this name (default: `kernel-<file name>`).
    #[serde(default)]
    pub name: Option<String>,
    /// An initrd to boot with it (default: one holding only the agent; the kernel then
    /// needs its virtio drivers built in).
    #[serde(default)]
    pub initrd: Option<String>,
    #[serde(default)]
    pub force: bool,
}

/// An OCI image to import.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportImageRequest {
    /// skopeo transport syntax: `docker://REGISTRY/REPO:TAG`, `oci:DIR[:TAG]`,
    /// `docker-archive:FILE`.
    pub reference: String,
    /// Register under this name (default: derived from the reference).
    #[serde(default)]
    pub name: Option<String>,
    /// The image whose kernel and initrd the new image boots (default: `minimal`).
    #[serde(default)]
    pub kernel: Option<String>,
    /// Allow plain HTTP to a registry that is not on localhost.
    #[serde(default)]
    pub insecure: bool,
    /// Replace an existing image of that name.
    #[serde(default)]
    pub force: bool,
}

/// An image to build from a recipe of the embedded catalog.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BuildImageRequest {
    /// The recipe to build: `debian` or `minimal`.
    #[schema(example = "debian")]
    pub recipe: String,
    /// Register under this name (default: the recipe name).
    #[serde(default)]
    pub name: Option<String>,
    /// Rebuild even if an image of that name exists.
    #[serde(default)]
    pub force: bool,
    /// Debian suite (`debian` recipe); default `bookworm`.
    #[serde(default)]
    pub suite: Option<String>,
    /// Extra packages for the root filesystem (`debian` recipe).
    #[serde(default)]
    pub packages: Vec<String>,
    /// The guest's init (`debian` recipe): `agent` (default) or `systemd`.
    #[serde(default)]
    pub init: Option<String>,
}

/// What `POST /v1/images/prune` should reclaim.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PruneImagesRequest {
    /// Also remove the default image (`default_image_name`) when no VM uses it; without
    /// this it is kept, since `vm run` would have to rebuild it.
    #[serde(default)]
    pub all: bool,
    /// Report what would be removed and how much space that frees; remove nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// One thing a prune removed (or, in a dry run, would remove).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct PruneItem {
    /// `image` (an image no VM uses), `cache` (downloaded files), or `leftover` (files
    /// of an interrupted or replaced build that no image refers to).
    #[schema(example = "image")]
    pub kind: String,
    /// The image's name, or the file or directory's path.
    pub name: String,
    /// Bytes on disk it occupies (blocks actually allocated).
    pub bytes: u64,
}

/// The answer to a prune.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct PruneReport {
    /// Whether this was a dry run (nothing was removed).
    pub dry_run: bool,
    pub items: Vec<PruneItem>,
    /// Images left in place on purpose, and why (`minimal: the default image`).
    #[serde(default)]
    pub kept: Vec<String>,
    /// The sum of the items' bytes: what was (or would be) freed.
    pub reclaimable_bytes: u64,
}

/// One file of an image checked against its manifest (`POST /v1/images/{name}/verify`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct VerifiedFile {
    /// Its name in the image directory.
    #[schema(example = "rootfs.ext4")]
    pub path: String,
    /// Which digest the manifest records: `sha256` (of the whole file) or `sha256_1m` (the
    /// chunked SHA-256 that addresses an OCI import's root filesystem; docs/images.md).
    #[schema(example = "sha256_1m")]
    pub digest: String,
    /// The recorded digest (lowercase hex).
    pub expected: String,
    /// What is wrong with the file; absent when it matches its record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// The answer to `POST /v1/images/{name}/verify`: every file of the image read again and
/// checked against the size and digest its manifest recorded.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct ImageVerifyReport {
    pub name: String,
    /// Whether every file matches.
    pub ok: bool,
    pub files: Vec<VerifiedFile>,
}
