//! `oci:DIR[:TAG]`: an OCI image layout on disk (what `skopeo copy … oci:DIR` and umoci
//! make). Every blob is checked against its digest before use.

use std::path::{Path, PathBuf};

use banger_system::progress::{Progress, Unit};
use sha2::{Digest, Sha256};

use super::{Resolved, Source, read_json_file};
use crate::oci::OciError;
use crate::oci::cache::BlobCache;
use crate::oci::spec::{self, Descriptor, Document};

const REF_NAME: &str = "org.opencontainers.image.ref.name";

pub struct Layout {
    dir: PathBuf,
    tag: Option<String>,
}

impl Layout {
    pub fn open(dir: &Path, tag: Option<String>) -> Result<Self, OciError> {
        if !dir.join("index.json").is_file() || !dir.join("oci-layout").is_file() {
            return Err(OciError::Invalid {
                what: dir.display().to_string(),
                problem: "is not an OCI image layout (no index.json and oci-layout); make one with `skopeo copy docker://… oci:DIR:TAG` or umoci".into(),
            });
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            tag,
        })
    }

    fn blob_path(&self, digest: &str) -> Result<PathBuf, OciError> {
        let hex = spec::sha256_hex(digest).map_err(|problem| OciError::Invalid {
            what: self.dir.display().to_string(),
            problem,
        })?;
        Ok(self.dir.join("blobs/sha256").join(hex))
    }

    /// A small blob (manifest, index, config), checked against its digest.
    fn small_blob(&self, desc: &Descriptor) -> Result<Vec<u8>, OciError> {
        let bytes = read_json_file(&self.blob_path(&desc.digest)?)?;
        let actual = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        if actual != desc.digest {
            return Err(OciError::Invalid {
                what: desc.digest.clone(),
                problem: format!("does not match its content ({actual})"),
            });
        }
        Ok(bytes)
    }
}

impl Source for Layout {
    fn resolve(&mut self, _progress: &dyn Progress) -> Result<Resolved, OciError> {
        let invalid = |problem: String| OciError::Invalid {
            what: self.dir.display().to_string(),
            problem,
        };
        let index_bytes = read_json_file(&self.dir.join("index.json"))?;
        let index = match spec::parse_document(&index_bytes, None).map_err(&invalid)? {
            Document::Index(i) => i,
            Document::Manifest(_) => return Err(invalid("index.json is not an index".into())),
        };
        let name = |d: &Descriptor| {
            d.annotations
                .as_ref()
                .and_then(|a| a.get(REF_NAME))
                .cloned()
        };
        let chosen = match &self.tag {
            Some(tag) => index
                .manifests
                .iter()
                .find(|d| name(d).as_deref() == Some(tag.as_str()))
                .ok_or_else(|| {
                    invalid(format!(
                        "has no image tagged {tag:?} (tags: {})",
                        index
                            .manifests
                            .iter()
                            .filter_map(name)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })?
                .clone(),
            None if index.manifests.len() == 1 => index.manifests[0].clone(),
            None => {
                return Err(invalid(format!(
                    "holds {} images; name one as oci:DIR:TAG (tags: {})",
                    index.manifests.len(),
                    index
                        .manifests
                        .iter()
                        .filter_map(name)
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        };
        let mut desc = chosen;
        for _ in 0..4 {
            let bytes = self.small_blob(&desc)?;
            let media = (!desc.media_type.is_empty()).then_some(desc.media_type.as_str());
            match spec::parse_document(&bytes, media).map_err(&invalid)? {
                Document::Index(i) => desc = spec::pick_amd64(&i).map_err(&invalid)?.clone(),
                Document::Manifest(m) => {
                    let config = self.small_blob(&m.config)?;
                    return Ok(Resolved {
                        manifest_digest: Some(desc.digest.clone()),
                        config,
                        config_digest: m.config.digest.clone(),
                        layers: m.layers,
                    });
                }
            }
        }
        Err(invalid("nests indexes too deeply".into()))
    }

    fn fetch_layers(
        &mut self,
        resolved: &Resolved,
        cache: &BlobCache,
        progress: &dyn Progress,
    ) -> Result<(), OciError> {
        for layer in &resolved.layers {
            if cache.get(&layer.digest, Some(layer.size))?.is_some() {
                continue;
            }
            let path = self.blob_path(&layer.digest)?;
            let file = std::fs::File::open(&path).map_err(|e| OciError::Io {
                op: "open layer",
                path: path.clone(),
                source: e,
            })?;
            progress.phase(
                &format!("copying layer {}", short(&layer.digest)),
                Some(layer.size),
                Some(Unit::Bytes),
            );
            cache.put(file, Some(&layer.digest), Some(layer.size), &|n| {
                progress.advance(n)
            })?;
        }
        Ok(())
    }
}

pub(crate) fn short(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    &hex[..hex.len().min(12)]
}
