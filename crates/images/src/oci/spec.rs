//! The OCI image-spec (and Docker v2) documents banger reads, and choosing the
//! linux/amd64 image from an index.

use serde::{Deserialize, Serialize};

pub const MEDIA_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const MEDIA_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Every manifest kind banger accepts, for registry `Accept` headers.
pub const MANIFEST_TYPES: [&str; 4] = [
    MEDIA_OCI_INDEX,
    MEDIA_OCI_MANIFEST,
    MEDIA_DOCKER_LIST,
    MEDIA_DOCKER_MANIFEST,
];
/// Manifests and configs are small; a bigger one is refused before it is parsed.
pub const MAX_JSON: u64 = 4 << 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default)]
    pub variant: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub platform: Option<Platform>,
    #[serde(default)]
    pub annotations: Option<std::collections::BTreeMap<String, String>>,
}

/// An image index / manifest list.
#[derive(Debug, Clone, Deserialize)]
pub struct Index {
    #[serde(rename = "mediaType", default)]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
}

/// An image manifest.
#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    #[serde(rename = "mediaType", default)]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

/// What banger keeps of an image's configuration: how `vm run NAME` runs it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunConfig {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entrypoint: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cmd: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

impl RunConfig {
    /// Entrypoint followed by Cmd: the command `vm run NAME` runs.
    pub fn argv(&self) -> Vec<String> {
        self.entrypoint.iter().chain(&self.cmd).cloned().collect()
    }
}

/// The image configuration document (only what banger uses).
#[derive(Debug, Clone, Deserialize)]
pub struct ImageConfig {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub config: Option<ContainerConfig>,
    pub rootfs: RootFs,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ContainerConfig {
    #[serde(rename = "Entrypoint", default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(rename = "Cmd", default)]
    pub cmd: Option<Vec<String>>,
    #[serde(rename = "Env", default)]
    pub env: Option<Vec<String>>,
    #[serde(rename = "WorkingDir", default)]
    pub working_dir: Option<String>,
    #[serde(rename = "User", default)]
    pub user: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    pub diff_ids: Vec<String>,
}

impl ImageConfig {
    pub fn run_config(&self) -> RunConfig {
        let c = self.config.clone().unwrap_or_default();
        RunConfig {
            entrypoint: c.entrypoint.unwrap_or_default(),
            cmd: c.cmd.unwrap_or_default(),
            env: c.env.unwrap_or_default(),
            working_dir: c.working_dir.filter(|w| !w.is_empty()),
            user: c.user.filter(|u| !u.is_empty()),
        }
    }
}

/// A parsed top-level document: an index to choose from, or a manifest.
#[derive(Debug, Clone)]
pub enum Document {
    Index(Index),
    Manifest(Manifest),
}

/// Parse `bytes` as an index or a manifest, by media type where given, else by shape.
pub fn parse_document(bytes: &[u8], media_type: Option<&str>) -> Result<Document, String> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    let declared = media_type.map(str::to_string).or_else(|| {
        value
            .get("mediaType")
            .and_then(|m| m.as_str())
            .map(str::to_string)
    });
    let is_index = match declared.as_deref() {
        Some(MEDIA_OCI_INDEX | MEDIA_DOCKER_LIST) => true,
        Some(MEDIA_OCI_MANIFEST | MEDIA_DOCKER_MANIFEST) => false,
        Some(other) if !other.is_empty() => {
            return Err(format!("unsupported manifest media type {other:?}"));
        }
        _ => value.get("manifests").is_some(),
    };
    if is_index {
        serde_json::from_value(value)
            .map(Document::Index)
            .map_err(|e| format!("not a valid image index: {e}"))
    } else {
        serde_json::from_value(value)
            .map(Document::Manifest)
            .map_err(|e| format!("not a valid image manifest: {e}"))
    }
}

/// The linux/amd64 entry of an index.
pub fn pick_amd64(index: &Index) -> Result<&Descriptor, String> {
    index
        .manifests
        .iter()
        .find(|d| {
            d.platform
                .as_ref()
                .is_some_and(|p| p.os == "linux" && p.architecture == "amd64")
        })
        .ok_or_else(|| {
            let have: Vec<String> = index
                .manifests
                .iter()
                .filter_map(|d| d.platform.as_ref())
                .map(|p| format!("{}/{}", p.os, p.architecture))
                .collect();
            format!(
                "the index has no linux/amd64 image (it has: {}); banger guests are linux/amd64",
                if have.is_empty() {
                    "no platforms".to_string()
                } else {
                    have.join(", ")
                }
            )
        })
}

/// `sha256:<64 hex>` → the hex; anything else is refused (it becomes a file name).
pub fn sha256_hex(digest: &str) -> Result<&str, String> {
    let hex = digest.strip_prefix("sha256:").ok_or_else(|| {
        format!("digest {digest:?} is not sha256 (the only algorithm banger checks)")
    })?;
    if hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(hex)
    } else {
        Err(format!("digest {digest:?} is malformed"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_and_platforms() {
        let index = br#"{"schemaVersion":2,"manifests":[
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:aa","size":1,
             "platform":{"architecture":"arm64","os":"linux"}},
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:bb","size":2,
             "platform":{"architecture":"amd64","os":"linux"}}]}"#;
        let Document::Index(i) = parse_document(index, None).unwrap() else {
            panic!("not an index")
        };
        assert_eq!(pick_amd64(&i).unwrap().digest, "sha256:bb");
        let arm_only = Index {
            media_type: None,
            manifests: vec![i.manifests[0].clone()],
        };
        let err = pick_amd64(&arm_only).unwrap_err();
        assert!(err.contains("linux/arm64"), "{err}");
        assert!(parse_document(b"{\"mediaType\":\"text/plain\"}", None).is_err());
        assert!(sha256_hex("sha256:../../etc").is_err());
        assert!(sha256_hex(&format!("sha256:{}", "a".repeat(64))).is_ok());
        assert!(sha256_hex("md5:abc").is_err());
    }
}
