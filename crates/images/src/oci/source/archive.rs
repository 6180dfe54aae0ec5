//! `docker-archive:FILE[:REF]`: a `docker save` tarball. Its `manifest.json` names the
//! config and the layer files; layers are checked against the config's `diff_ids` (they
//! are stored uncompressed, so their digest is their diff id).

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use banger_system::progress::{Progress, Unit};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{Resolved, Source};
use crate::oci::OciError;
use crate::oci::cache::BlobCache;
use crate::oci::spec::{self, Descriptor, ImageConfig, MAX_JSON};

#[derive(Debug, Deserialize)]
struct Entry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

pub struct Archive {
    file: PathBuf,
    reference: Option<String>,
    /// Layer member names, in order, once resolved.
    members: Vec<String>,
}

impl Archive {
    pub fn open(file: &Path, reference: Option<String>) -> Result<Self, OciError> {
        if !file.is_file() {
            return Err(OciError::Invalid {
                what: file.display().to_string(),
                problem: "does not exist or is not a file (want a `docker save` tarball)".into(),
            });
        }
        Ok(Self {
            file: file.to_path_buf(),
            reference,
            members: Vec::new(),
        })
    }

    fn invalid(&self, problem: String) -> OciError {
        OciError::Invalid {
            what: self.file.display().to_string(),
            problem,
        }
    }

    /// Visit every member of the tarball (one sequential pass).
    fn each_member(
        &self,
        mut f: impl FnMut(&str, &mut dyn Read, u64) -> Result<(), OciError>,
    ) -> Result<(), OciError> {
        let file = File::open(&self.file).map_err(|e| OciError::Io {
            op: "open",
            path: self.file.clone(),
            source: e,
        })?;
        let mut tar = tar::Archive::new(file);
        // The tar reader's errors quote the header bytes they choked on: a text file's
        // lines, escapes and all. One short, escaped line of it is enough.
        let corrupt = |e: std::io::Error| {
            self.invalid(format!(
                "is not a readable tar archive (want a `docker save` tarball): {}",
                banger_system::text::sanitize(&e.to_string(), 60)
            ))
        };
        for entry in tar.entries().map_err(corrupt)? {
            let mut entry = entry.map_err(corrupt)?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let name = entry
                .path()
                .map_err(corrupt)?
                .to_string_lossy()
                .into_owned();
            let name = name.trim_start_matches("./").to_string();
            let size = entry.header().size().map_err(corrupt)?;
            f(&name, &mut entry, size)?;
        }
        Ok(())
    }
}

impl Source for Archive {
    fn resolve(&mut self, _progress: &dyn Progress) -> Result<Resolved, OciError> {
        // First pass: the small JSON members (manifest.json and configs).
        let mut jsons: std::collections::HashMap<String, Vec<u8>> = Default::default();
        self.each_member(|name, r, size| {
            if name.ends_with(".json") || name.starts_with("blobs/") && size <= MAX_JSON {
                if size > MAX_JSON {
                    return Ok(());
                }
                let mut bytes = Vec::with_capacity(size as usize);
                r.take(MAX_JSON)
                    .read_to_end(&mut bytes)
                    .map_err(|e| OciError::Io {
                        op: "read",
                        path: self.file.join(name),
                        source: e,
                    })?;
                jsons.insert(name.to_string(), bytes);
            }
            Ok(())
        })?;
        let manifest = jsons.get("manifest.json").ok_or_else(|| {
            self.invalid("has no manifest.json (is it a `docker save` archive?)".into())
        })?;
        let entries: Vec<Entry> = serde_json::from_slice(manifest)
            .map_err(|e| self.invalid(format!("has an invalid manifest.json: {e}")))?;
        let entry = match &self.reference {
            Some(r) => entries
                .into_iter()
                .find(|e| {
                    e.repo_tags
                        .as_ref()
                        .is_some_and(|t| t.iter().any(|t| t == r))
                })
                .ok_or_else(|| self.invalid(format!("has no image tagged {r:?}")))?,
            None => {
                let mut entries = entries;
                if entries.len() != 1 {
                    return Err(self.invalid(format!(
                        "holds {} images; name one as docker-archive:FILE:REPO:TAG",
                        entries.len()
                    )));
                }
                entries.remove(0)
            }
        };
        let config = jsons
            .get(entry.config.trim_start_matches("./"))
            .ok_or_else(|| self.invalid(format!("lacks its config {}", entry.config)))?
            .clone();
        let config_digest = format!("sha256:{}", hex::encode(Sha256::digest(&config)));
        // The config's name carries its digest in both archive formats.
        let named = entry
            .config
            .trim_start_matches("blobs/sha256/")
            .trim_end_matches(".json");
        if named.len() == 64 && format!("sha256:{named}") != config_digest {
            return Err(self.invalid(format!(
                "has a config {} that does not match its digest",
                entry.config
            )));
        }
        let parsed: ImageConfig = serde_json::from_slice(&config)
            .map_err(|e| self.invalid(format!("has an invalid image config: {e}")))?;
        if parsed.rootfs.diff_ids.len() != entry.layers.len() {
            return Err(self.invalid(format!(
                "lists {} layers but its config has {} diff ids",
                entry.layers.len(),
                parsed.rootfs.diff_ids.len()
            )));
        }
        let mut layers = Vec::new();
        for diff_id in &parsed.rootfs.diff_ids {
            spec::sha256_hex(diff_id).map_err(|p| self.invalid(p))?;
            layers.push(Descriptor {
                media_type: "application/vnd.docker.image.rootfs.diff.tar".into(),
                digest: diff_id.clone(),
                size: 0,
                platform: None,
                annotations: None,
            });
        }
        self.members = entry
            .layers
            .iter()
            .map(|l| l.trim_start_matches("./").to_string())
            .collect();
        Ok(Resolved {
            manifest_digest: None,
            config,
            config_digest,
            layers,
        })
    }

    fn fetch_layers(
        &mut self,
        resolved: &Resolved,
        cache: &BlobCache,
        progress: &dyn Progress,
    ) -> Result<(), OciError> {
        let mut wanted = std::collections::HashMap::new();
        for (member, layer) in self.members.iter().zip(&resolved.layers) {
            if cache.get(&layer.digest, None)?.is_none() {
                wanted.insert(member.clone(), layer.digest.clone());
            }
        }
        if wanted.is_empty() {
            return Ok(());
        }
        let mut stored = 0;
        self.each_member(|name, r, size| {
            if let Some(digest) = wanted.get(name) {
                progress.phase(
                    &format!("reading layer {name}"),
                    Some(size),
                    Some(Unit::Bytes),
                );
                cache.put(r, Some(digest), Some(size), &|n| progress.advance(n))?;
                stored += 1;
            }
            Ok(())
        })?;
        if stored < wanted.len() {
            return Err(
                self.invalid("lacks some of the layer files its manifest.json lists".into())
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A text file given as a docker-archive: the error is one short line, not the file's
    /// lines as the tar reader quotes them.
    #[test]
    fn a_file_that_is_not_tar_is_refused_in_one_short_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("passwd");
        let text = "root:x:0:0:root:/root:/bin/bash\n".repeat(40);
        std::fs::write(&file, &text).unwrap();
        let err = Archive::open(&file, None)
            .unwrap()
            .resolve(&banger_system::progress::NoProgress)
            .expect_err("a text file is no archive")
            .to_string();
        assert!(err.contains("is not a readable tar archive"), "{err}");
        assert!(!err.contains('\n'), "{err}");
        assert!(
            err.chars().count() < 300,
            "{} characters: {err}",
            err.chars().count()
        );
    }
}
