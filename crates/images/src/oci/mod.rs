//! OCI image import: `docker://`, `oci:` and `docker-archive:` sources ([`source`]),
//! the layer cache ([`cache`]), layer application with whiteouts and containment
//! ([`apply`]) and the import itself ([`import`]). See docs/images.md.

pub mod apply;
mod bases;
pub mod cache;
mod import;
mod pax;
mod rootfs;
pub mod source;
pub mod spec;

use std::path::PathBuf;

pub use import::{ImportOptions, Imported, import};
pub use source::{ImageRef, SourceOptions};
pub use spec::RunConfig;

#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error("image reference {reference:?} {problem}")]
    Reference { reference: String, problem: String },
    #[error("{what} {problem}")]
    Invalid { what: String, problem: String },
    #[error("registry image {reference}: {problem}")]
    Registry { reference: String, problem: String },
    #[error(transparent)]
    Cache(#[from] cache::CacheError),
    #[error(transparent)]
    Layer(#[from] apply::LayerError),
    #[error("cannot {op} {path:?}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the guest agent cannot be added")]
    Agent(#[source] Box<crate::initramfs::InitramfsError>),
    #[error("the kernel image to pair the import with is not usable")]
    Kernel(#[source] Box<crate::manifest::ManifestError>),
    #[error("cannot make the root filesystem")]
    Rootfs(#[source] Box<crate::ext4::Ext4Error>),
    #[error("cannot write the image")]
    Build(#[source] Box<crate::build::BuildError>),
}
