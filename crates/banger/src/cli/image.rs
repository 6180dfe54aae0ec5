//! `banger image …`: the image subcommands.

use clap::Subcommand;

use super::output::{DataArgs, ListArgs};

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// List registered images
    #[command(
        visible_alias = "list",
        long_about = "\
List registered images.

An image built by an older revision of its recipe than this banger's is marked in the SOURCE
column (`recipe:debian (outdated)`; `(maybe outdated)` when it was built before images recorded
their revision), with a warning on stderr saying what a rebuild changes and the command that
rebuilds it. `banger image inspect NAME` shows the same."
    )]
    Ls {
        #[command(flatten)]
        list: ListArgs,
    },
    /// Build an image from a recipe and register it
    #[command(long_about = "\
Build an image from a recipe and register it.

  banger image build debian                    the default image: Debian bookworm (minbase,
                                               openssh-server) on a root disk; the agent is
                                               a lean init that starts sshd
  banger image build debian --packages git,curl --name dev-tools
  banger image build debian --init systemd     systemd as init instead (slower to boot)
  banger image build minimal                   the fastest tiny image: Debian's cloud kernel
                                               and an initramfs (agent, busybox, modules)

Kernels and packages come from the Debian archive (BANGER_DEBIAN_MIRROR overrides the
mirror); downloads are verified against the archive's signed checksums. The debian recipe
runs mmdebstrap: as root directly, as an ordinary user in its unshare or fakechroot mode
(packages uidmap, or fakechroot and fakeroot), with the same owners in the image.")]
    Build {
        /// Recipe: `debian` or `minimal`
        recipe: String,
        /// Register under this name instead of the recipe's
        #[arg(long)]
        name: Option<String>,
        /// Rebuild and replace an existing image of that name
        #[arg(long)]
        force: bool,
        /// Debian suite (debian recipe), e.g. bookworm, trixie
        #[arg(long)]
        suite: Option<String>,
        /// Extra packages for the root filesystem (debian recipe), comma-separated
        #[arg(long, value_delimiter = ',')]
        packages: Vec<String>,
        /// The guest's init (debian recipe): `agent` (lean, default) or `systemd`
        #[arg(long)]
        init: Option<String>,
    },
    /// Fetch (or build) a catalogued image
    #[command(long_about = "\
Fetch a catalogued image: a download entry is fetched and verified against its pinned
SHA-256 (an interrupted download resumes where it stopped); a recipe entry is built. VMs
do this on first use; pull does it ahead of time.

  banger image pull debian
  banger image pull minimal --force      fetch or build it again")]
    Pull {
        /// Catalog entry
        name: String,
        /// Fetch again even if it is registered
        #[arg(long)]
        force: bool,
    },
    /// Import an OCI image (registry, OCI layout or docker-archive) as a VM image
    #[command(long_about = "\
Import an OCI image as a VM image. REF uses skopeo's transport syntax:

  banger image import docker://registry.example.com/team/app:1.2
  banger image import oci:./layout:v1          an OCI image layout directory
  banger image import docker-archive:app.tar   a `docker save` tarball

linux/amd64 is chosen from multi-platform images. Layers are verified against their
digests and cached, so images sharing base layers import quickly. banger adds its agent
as the guest's init (it starts sshd when the image has one) and pairs the root
filesystem with the kernel and initrd of --kernel (default: the minimal image).
`banger vm run --image NAME` with no command runs the image's Entrypoint/Cmd.
Registry credentials come from ~/.docker/config.json; plain HTTP is used only for
registries on localhost, or with --insecure.")]
    Import {
        /// The image: docker://REGISTRY/REPO:TAG, oci:DIR[:TAG] or docker-archive:FILE
        reference: String,
        /// Register under this name (default: from the reference)
        #[arg(long)]
        name: Option<String>,
        /// The image whose kernel and initrd to boot (default: minimal)
        #[arg(long)]
        kernel: Option<String>,
        /// Allow plain HTTP to a registry that is not on localhost
        #[arg(long)]
        insecure: bool,
        /// Replace an existing image of that name
        #[arg(long)]
        force: bool,
    },
    /// Import a kernel (ELF vmlinux or bzImage) as a kernel image
    #[command(long_about = "\
Import a kernel of your own: an ELF vmlinux, or a bzImage whose payload is gzip, xz,
zstd or lz4 (banger extracts the ELF form Firecracker and QEMU's microvm boot, and records
whether it has the PVH entry). Pair it with a root filesystem:

  banger image import-kernel ./vmlinux --name mykernel
  banger image import docker://registry.example.com/app:1 --kernel mykernel

Without --initrd the image gets an initramfs holding only the banger agent, so the
kernel needs its virtio drivers (virtio_blk, virtio_console or vsock) built in.")]
    ImportKernel {
        /// The kernel file
        file: std::path::PathBuf,
        /// Register under this name (default: kernel-<file name>)
        #[arg(long)]
        name: Option<String>,
        /// An initrd to boot it with
        #[arg(long)]
        initrd: Option<std::path::PathBuf>,
        /// Replace an existing image of that name
        #[arg(long)]
        force: bool,
    },
    /// Show one image
    #[command(long_about = "\
Show one image: its files, source, kernel and init, and for an image built by a recipe the
recipe's revision against this banger's; an outdated one also gets what a rebuild changes and
the command that rebuilds it as it was built (the same name, suite, packages and init).")]
    Inspect {
        /// Image name
        #[arg(add = super::complete::images())]
        name: String,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Check an image's files against the digests recorded when it was made
    #[command(long_about = "\
Read every file of an image again and check its size and digest against its manifest.

  banger image verify debian

Kernels, initrds and built root filesystems are addressed by the SHA-256 of the whole file
(`sha256sum` checks them too); an OCI import's root filesystem by its chunked SHA-256
(`sha256_1m`, the SHA-256 of each MiB's SHA-256; docs/images.md shows the coreutils line
that computes it). Exits 1 when a file changed.")]
    Verify {
        /// Image name
        #[arg(add = super::complete::images())]
        name: String,
        /// Print the result as JSON
        #[arg(long)]
        json: bool,
    },
    /// Boot an image once and keep the ready guest, so `vm run` of it restores instead of booting
    #[command(long_about = "\
Boot an image once and keep the ready guest as the image's warm state.

  banger image warm debian
  banger run --image debian --rm -- true      restores the warm state: no kernel boot
  banger run --image debian --cold --rm -- true   boots the kernel anyway

The image is booted with the default resources (vcpu, memory, disk from config.toml), saved
as soon as its agent answers, and that VM removed. A VM of the image with the same
resources, driver and network mode then resumes the saved guest and is given its own
identity at once (clock, RNG reseed, hostname, machine-id, SSH host key). Any other VM
boots cold; `banger vm inspect` says which and why. The state is dropped when the image,
its agent, the VMM or banger changes (the next VM boots cold), and goes with `image rm`.
It costs the saved memory and disk copies on disk (`image inspect` shows the size), no RAM
while no VM runs; the VMs restored from it map that memory copy-on-write and share one copy of
every page none of them has written. Needs QEMU and `[network] mode` user or none.")]
    Warm {
        /// Image name (a catalogued image is built first)
        #[arg(add = super::complete::images())]
        name: String,
        /// Print the image as JSON
        #[arg(long)]
        json: bool,
    },
    /// Remove images no VM uses
    Rm {
        /// Image names
        #[arg(required = true, add = super::complete::images())]
        names: Vec<String>,
    },
    /// Reclaim disk space: download caches, build leftovers, and images no VM uses
    #[command(long_about = "\
Reclaim disk space, and say how much.

  banger image prune --dry-run     what would go, and how much space it would free
  banger image prune --force       remove it without asking

Removes the download cache (Debian packages, kernels: fetched again when a build needs
them), leftovers of interrupted builds, and every image no VM uses except the default
image (`default_image_name`: `vm run` would rebuild it); --all removes that too when no VM
uses it. Images VMs use are never touched. Asks first on a terminal unless --force.")]
    Prune {
        /// Show what would be removed, remove nothing
        #[arg(long)]
        dry_run: bool,
        /// Also remove the default image when no VM uses it
        #[arg(short, long)]
        all: bool,
        /// Do not ask for confirmation
        #[arg(short, long)]
        force: bool,
        /// Print the result as JSON
        #[arg(long)]
        json: bool,
    },
}
