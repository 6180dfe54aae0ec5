//! banger's images: the embedded catalog ([`imagecat`]) and the `minimal` image
//! build — a Debian cloud kernel plus an initramfs written in Rust, with the
//! guest agent as PID 1.
//!
//! The pieces, in the order [`build_minimal`] uses them:
//! [`debian`] (signed archive → verified, cached `.deb`s) → [`deb`] (read a
//! `.deb`) → [`kernel`] (bzImage → ELF vmlinux) → [`modules`] (which modules,
//! in which order) → [`initramfs`] written with [`cpio`] → `manifest.json`, which
//! records the [`recipe`] revision that built the image.

mod build;
pub mod chunked;
pub mod cpio;
pub mod deb;
pub mod debian;
pub mod debian_image;
pub mod download;
pub mod elf;
pub mod ext4;
mod fsutil;
pub mod http;
pub mod imagecat;
pub mod initramfs;
pub mod kernel;
mod kernel_bundle;
pub mod kernel_import;
mod kernel_package;
pub mod manifest;
mod minimal;
pub mod modules;
pub mod oci;
pub mod pull;
pub mod recipe;
pub mod share;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
pub mod vmdisk;

pub use debian_image::{DebianImageOptions, GuestInitKind, build_debian};
pub use imagecat::{Catalog, CatalogEntry, CatalogError};
pub use manifest::Manifest;
pub use minimal::{
    BUSYBOX_PACKAGE, BZIMAGE_FILE, BuildError, BuiltImage, DEFAULT_KERNEL_PACKAGE, INITRD_FILE,
    KERNEL_FILE, MinimalOptions, build_minimal,
};
pub use recipe::{Freshness, RecipeChange, RecipeStamp, RecipeState};
