//! The embedded image catalog: which images banger knows by name, and which one
//! is the default. See `catalog.toml` beside this file for the format.

use std::collections::BTreeMap;

use serde::Deserialize;

const EMBEDDED: &str = include_str!("catalog.toml");
const FORMAT: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The TOML does not parse or has unknown keys.
    #[error("the image catalog is not valid TOML: {0}")]
    Toml(#[from] toml::de::Error),
    /// The TOML parses but describes something impossible.
    #[error("the image catalog is invalid: {0}")]
    Invalid(String),
}

/// How an image is obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntrySource {
    /// Built locally by a recipe.
    Recipe(Recipe),
    /// Downloaded and checked against pinned digests.
    Download(DownloadSpec),
}

/// Recipes banger knows how to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recipe {
    /// [`crate::build_minimal`].
    Minimal,
    /// [`crate::build_debian`].
    Debian,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadSpec {
    pub kernel: Artifact,
    pub initrd: Option<Artifact>,
    pub rootfs: Option<Artifact>,
}

/// A file to download, pinned by its SHA-256 (lowercase hex).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Artifact {
    pub url: String,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogEntry {
    pub name: String,
    pub description: String,
    pub source: EntrySource,
}

/// The parsed catalog.
#[derive(Debug, Clone)]
pub struct Catalog {
    default: String,
    entries: BTreeMap<String, CatalogEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    format: u32,
    default: String,
    images: BTreeMap<String, RawEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    kind: String,
    #[serde(default)]
    description: String,
    recipe: Option<String>,
    kernel: Option<Artifact>,
    initrd: Option<Artifact>,
    rootfs: Option<Artifact>,
}

impl Catalog {
    /// The catalog compiled into banger.
    pub fn embedded() -> Result<Catalog, CatalogError> {
        Self::parse(EMBEDDED)
    }

    /// Parse and validate catalog text.
    pub fn parse(text: &str) -> Result<Catalog, CatalogError> {
        let raw: RawCatalog = toml::from_str(text)?;
        if raw.format != FORMAT {
            return Err(CatalogError::Invalid(format!(
                "format = {} is not supported (this banger reads format {FORMAT})",
                raw.format
            )));
        }
        let mut entries = BTreeMap::new();
        for (name, entry) in raw.images {
            validate_name(&name)?;
            let entry = convert(&name, entry)
                .map_err(|e| CatalogError::Invalid(format!("image {name:?}: {e}")))?;
            entries.insert(name, entry);
        }
        if !entries.contains_key(&raw.default) {
            return Err(CatalogError::Invalid(format!(
                "default = {:?} names no image in the catalog",
                raw.default
            )));
        }
        Ok(Catalog {
            default: raw.default,
            entries,
        })
    }

    /// The name of the image used when none is given.
    pub fn default_image(&self) -> &str {
        &self.default
    }

    pub fn lookup(&self, name: &str) -> Option<&CatalogEntry> {
        self.entries.get(name)
    }

    /// All entries, sorted by name.
    /// Add `other`'s entries (replacing same-named ones); the default stays ours.
    pub fn merge(&mut self, other: Catalog) {
        self.entries.extend(other.entries);
    }

    pub fn entries(&self) -> impl Iterator<Item = &CatalogEntry> {
        self.entries.values()
    }
}

/// Image names become directory names: keep them plain.
fn validate_name(name: &str) -> Result<(), CatalogError> {
    let ok_start = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'));
    if ok_start && ok_chars && name.len() <= 64 {
        Ok(())
    } else {
        Err(CatalogError::Invalid(format!(
            "image name {name:?} must be 1-64 of a-z 0-9 . _ - and start with a letter or digit"
        )))
    }
}

fn convert(name: &str, raw: RawEntry) -> Result<CatalogEntry, String> {
    let source = match raw.kind.as_str() {
        "recipe" => {
            if raw.kernel.is_some() || raw.initrd.is_some() || raw.rootfs.is_some() {
                return Err("a recipe entry takes no kernel/initrd/rootfs URLs".into());
            }
            match raw.recipe.as_deref() {
                Some(name) => EntrySource::Recipe(Recipe::from_name(name).ok_or_else(|| {
                    let known: Vec<&str> = Recipe::ALL.iter().map(|r| r.name()).collect();
                    format!("unknown recipe {name:?} (known: {})", known.join(", "))
                })?),
                None => return Err("kind = \"recipe\" needs recipe = \"…\"".into()),
            }
        }
        "download" => {
            if raw.recipe.is_some() {
                return Err("a download entry takes no recipe".into());
            }
            let kernel = raw
                .kernel
                .ok_or("kind = \"download\" needs kernel = { url, sha256 }")?;
            for (what, artifact) in [
                ("kernel", Some(&kernel)),
                ("initrd", raw.initrd.as_ref()),
                ("rootfs", raw.rootfs.as_ref()),
            ] {
                if let Some(a) = artifact {
                    validate_artifact(what, a)?;
                }
            }
            EntrySource::Download(DownloadSpec {
                kernel,
                initrd: raw.initrd,
                rootfs: raw.rootfs,
            })
        }
        other => return Err(format!("unknown kind {other:?} (known: recipe, download)")),
    };
    Ok(CatalogEntry {
        name: name.to_string(),
        description: raw.description,
        source,
    })
}

fn validate_artifact(what: &str, a: &Artifact) -> Result<(), String> {
    let rest = a
        .url
        .strip_prefix("http://")
        .or_else(|| a.url.strip_prefix("https://"))
        .ok_or_else(|| format!("{what} url {:?} must start with http:// or https://", a.url))?;
    if rest.is_empty() || rest.starts_with('/') || a.url.chars().any(char::is_whitespace) {
        return Err(format!("{what} url {:?} is not a valid URL", a.url));
    }
    if a.sha256.len() != 64
        || !a
            .sha256
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(format!(
            "{what} sha256 {:?} must be 64 lowercase hex digits",
            a.sha256
        ));
    }
    Ok(())
}
