//! Where an OCI image comes from, in skopeo's transport syntax:
//! `docker://REGISTRY/REPO[:TAG|@DIGEST]` (a bare `REGISTRY/REPO:TAG` means the same),
//! `oci:DIR[:TAG]` and `docker-archive:FILE[:REF]`.

mod archive;
mod credentials;
mod layout;
mod registry;

use std::path::{Path, PathBuf};

use banger_system::progress::Progress;

use super::OciError;
use super::cache::BlobCache;
use super::spec::Descriptor;

pub use registry::RegistryAuthSource;

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    Registry {
        reference: String,
    },
    Layout {
        dir: PathBuf,
        tag: Option<String>,
    },
    Archive {
        file: PathBuf,
        reference: Option<String>,
    },
}

impl ImageRef {
    pub fn parse(text: &str) -> Result<ImageRef, OciError> {
        let bad = |problem: &str| OciError::Reference {
            reference: text.to_string(),
            problem: problem.to_string(),
        };
        if text.is_empty() || text.len() > 4096 || text.chars().any(char::is_control) {
            return Err(bad("is empty, too long or has control characters"));
        }
        if let Some(rest) = text.strip_prefix("docker://") {
            if rest.is_empty() {
                return Err(bad("names no repository"));
            }
            return registry(rest).map_err(|problem| bad(&problem));
        }
        if let Some(rest) = text.strip_prefix("oci:") {
            let (dir, tag) = split_suffix(rest);
            if dir.is_empty() {
                return Err(bad("names no directory (oci:DIR[:TAG])"));
            }
            return Ok(ImageRef::Layout {
                dir: PathBuf::from(dir),
                tag,
            });
        }
        if let Some(rest) = text.strip_prefix("docker-archive:") {
            let (file, reference) = split_suffix(rest);
            if file.is_empty() {
                return Err(bad("names no file (docker-archive:FILE)"));
            }
            return Ok(ImageRef::Archive {
                file: PathBuf::from(file),
                reference,
            });
        }
        if let Some((transport, _)) = text.split_once(':')
            && !transport.contains('/')
            && !transport.contains('.')
            && transport
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '-')
            && text.find('/').is_none_or(|slash| slash > transport.len())
            && ["oci-archive", "dir", "containers-storage", "docker-daemon"].contains(&transport)
        {
            return Err(bad(&format!(
                "uses the {transport}: transport, which banger does not read; use docker://, oci: or docker-archive:"
            )));
        }
        // `REGISTRY/REPO:TAG` without a transport: a registry reference.
        registry(text).map_err(|problem| {
            if text.starts_with(['.', '/', '~']) {
                bad(&format!(
                    "{problem}; for a directory or a file, name its transport: oci:{text} or docker-archive:{text}"
                ))
            } else {
                bad(&problem)
            }
        })
    }

    /// How it is shown and recorded.
    pub fn describe(&self) -> String {
        match self {
            ImageRef::Registry { reference } => format!("docker://{reference}"),
            ImageRef::Layout { dir, tag } => match tag {
                Some(t) => format!("oci:{}:{t}", dir.display()),
                None => format!("oci:{}", dir.display()),
            },
            ImageRef::Archive { file, reference } => match reference {
                Some(r) => format!("docker-archive:{}:{r}", file.display()),
                None => format!("docker-archive:{}", file.display()),
            },
        }
    }
}

/// A registry reference, checked whole now (an import then starts nothing, not even the
/// build of the kernel image it pairs with, for a reference that cannot name an image).
fn registry(reference: &str) -> Result<ImageRef, String> {
    reference
        .parse::<oci_client::Reference>()
        .map_err(|e| format!("is not a valid registry reference: {e}"))?;
    Ok(ImageRef::Registry {
        reference: reference.to_string(),
    })
}

/// `PATH:SUFFIX` → the suffix when it holds no `/` (a path's own colons stay).
fn split_suffix(rest: &str) -> (String, Option<String>) {
    match rest.rsplit_once(':') {
        Some((path, suffix)) if !suffix.is_empty() && !suffix.contains('/') => {
            (path.to_string(), Some(suffix.to_string()))
        }
        _ => (rest.to_string(), None),
    }
}

/// An image, resolved to its configuration and layers.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The manifest's digest, when the source has one (registries and layouts).
    pub manifest_digest: Option<String>,
    pub config: Vec<u8>,
    pub config_digest: String,
    pub layers: Vec<Descriptor>,
}

/// Options for a source.
#[derive(Debug, Clone, Default)]
pub struct SourceOptions {
    /// Allow plain HTTP to a registry that is not on localhost.
    pub insecure: bool,
    /// `~/.docker/config.json` (or another) for registry credentials.
    pub docker_config: Option<PathBuf>,
}

pub trait Source {
    fn resolve(&mut self, progress: &dyn Progress) -> Result<Resolved, OciError>;
    /// Put every layer not yet cached into `cache`.
    fn fetch_layers(
        &mut self,
        resolved: &Resolved,
        cache: &BlobCache,
        progress: &dyn Progress,
    ) -> Result<(), OciError>;
}

pub fn open(image: &ImageRef, opts: &SourceOptions) -> Result<Box<dyn Source>, OciError> {
    Ok(match image {
        ImageRef::Layout { dir, tag } => Box::new(layout::Layout::open(dir, tag.clone())?),
        ImageRef::Archive { file, reference } => {
            Box::new(archive::Archive::open(file, reference.clone())?)
        }
        ImageRef::Registry { reference } => Box::new(registry::Registry::open(reference, opts)?),
    })
}

/// Reads a JSON document of at most `MAX_JSON` bytes.
pub(super) fn read_json_file(path: &Path) -> Result<Vec<u8>, OciError> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| OciError::Io {
        op: "open",
        path: path.to_path_buf(),
        source: e,
    })?;
    let mut bytes = Vec::new();
    file.take(super::spec::MAX_JSON + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| OciError::Io {
            op: "read",
            path: path.to_path_buf(),
            source: e,
        })?;
    if bytes.len() as u64 > super::spec::MAX_JSON {
        return Err(OciError::Invalid {
            what: path.display().to_string(),
            problem: "is larger than any manifest or config should be".into(),
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_follow_skopeo() {
        assert_eq!(
            ImageRef::parse("oci:/tmp/layout:v1").unwrap(),
            ImageRef::Layout {
                dir: "/tmp/layout".into(),
                tag: Some("v1".into())
            }
        );
        assert_eq!(
            ImageRef::parse("oci:/tmp/lay:out/dir").unwrap(),
            ImageRef::Layout {
                dir: "/tmp/lay:out/dir".into(),
                tag: None
            }
        );
        assert_eq!(
            ImageRef::parse("docker://127.0.0.1:5000/app:1").unwrap(),
            ImageRef::Registry {
                reference: "127.0.0.1:5000/app:1".into()
            }
        );
        assert_eq!(
            ImageRef::parse("127.0.0.1:5000/app:1").unwrap(),
            ImageRef::Registry {
                reference: "127.0.0.1:5000/app:1".into()
            }
        );
        assert!(matches!(
            ImageRef::parse("docker-archive:/x.tar").unwrap(),
            ImageRef::Archive {
                reference: None,
                ..
            }
        ));
        assert!(ImageRef::parse("oci-archive:/x.tar").is_err());
        // A registry reference is checked whole at once, before an import starts anything.
        for bad in [
            "docker://:tag",
            "docker://x@sha256:zz",
            "http://x",
            "docker://a b",
        ] {
            let e = ImageRef::parse(bad).expect_err(bad).to_string();
            assert!(e.contains("not a valid registry reference"), "{bad}: {e}");
        }
        let e = ImageRef::parse("../layout")
            .expect_err("a path")
            .to_string();
        assert!(e.contains("oci:../layout"), "{e}");
        assert!(ImageRef::parse("oci:").is_err());
        assert!(ImageRef::parse("").is_err());
    }
}
