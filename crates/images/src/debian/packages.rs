//! The `Packages` index: which version of each package the suite ships, where its
//! `.deb` lives in the pool, and its SHA-256.

use std::collections::HashMap;
use std::io::BufRead;

use super::deb822;
use super::release::is_sha256_hex;

/// One binary package as listed in `Packages`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    pub name: String,
    pub version: String,
    pub architecture: String,
    /// Path of the `.deb` relative to the mirror root (`pool/main/...`).
    pub filename: String,
    pub size: u64,
    pub sha256: String,
    pub depends: Option<String>,
}

impl Package {
    /// The package named first in `Depends` (first alternative, no version or
    /// architecture qualifier): how a metapackage such as
    /// `linux-image-cloud-amd64` points at the real kernel package.
    pub fn first_dependency(&self) -> Option<String> {
        let first = self
            .depends
            .as_deref()?
            .split(',')
            .next()?
            .split('|')
            .next()?
            .trim();
        let name = first
            .split(|c: char| c.is_whitespace() || c == '(')
            .next()?;
        let name = name.split(':').next()?;
        (!name.is_empty()).then(|| name.to_string())
    }
}

const FIELDS: [&str; 7] = [
    "Package",
    "Version",
    "Architecture",
    "Filename",
    "Size",
    "SHA256",
    "Depends",
];

/// Every package of one `Packages` file, by name.
#[derive(Debug, Default, Clone)]
pub struct PackageIndex {
    packages: HashMap<String, Package>,
}

impl PackageIndex {
    /// Parse a (decompressed) `Packages` file. Stanzas lacking the fields a
    /// download needs are errors: the index is signed, so a gap means corruption.
    pub fn parse<R: BufRead>(reader: R) -> Result<Self, String> {
        let mut packages = HashMap::new();
        let mut first_error = None;
        deb822::parse(
            reader,
            |key| FIELDS.iter().any(|f| f.eq_ignore_ascii_case(key)),
            |p| {
                if first_error.is_some() {
                    return;
                }
                match package_from(&p) {
                    // A suite lists one version per package and architecture; if a
                    // mirror ever lists two, the first wins, as in the file order.
                    Ok(pkg) => {
                        packages.entry(pkg.name.clone()).or_insert(pkg);
                    }
                    Err(e) => first_error = Some(e),
                }
            },
        )
        .map_err(|e| e.to_string())?;
        if let Some(e) = first_error {
            return Err(e);
        }
        Ok(Self { packages })
    }

    pub fn get(&self, name: &str) -> Option<&Package> {
        self.packages.get(name)
    }

    pub fn len(&self) -> usize {
        self.packages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.packages.is_empty()
    }
}

fn package_from(p: &deb822::Paragraph) -> Result<Package, String> {
    let name = p
        .get("Package")
        .ok_or("a stanza has no Package field")?
        .to_string();
    let field = |key: &str| {
        p.get(key)
            .map(str::to_string)
            .ok_or_else(|| format!("package {name} has no {key} field"))
    };
    let filename = field("Filename")?;
    if filename.starts_with('/')
        || filename
            .split('/')
            .any(|part| part == ".." || part.is_empty())
    {
        return Err(format!(
            "package {name} has an unsafe Filename {filename:?}"
        ));
    }
    let sha256 = field("SHA256")?.to_ascii_lowercase();
    if !is_sha256_hex(&sha256) {
        return Err(format!("package {name} has a malformed SHA256"));
    }
    let size = field("Size")?
        .parse()
        .map_err(|_| format!("package {name} has a malformed Size"))?;
    Ok(Package {
        version: field("Version")?,
        architecture: field("Architecture")?,
        filename,
        size,
        sha256,
        depends: p.get("Depends").map(str::to_string),
        name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    fn stanza(name: &str, depends: &str) -> String {
        format!(
            "Package: {name}\nVersion: 1\nArchitecture: amd64\nDepends: {depends}\nDescription: x\n long\nFilename: pool/main/{name}.deb\nSize: 3\nSHA256: {SHA}\n\n"
        )
    }

    #[test]
    fn first_dependency_strips_versions_and_alternatives() {
        let text = stanza(
            "linux-image-cloud-amd64",
            "linux-image-6.1.0-28-cloud-amd64 (= 6.1.119-1) | other, x",
        );
        let idx = PackageIndex::parse(text.as_bytes()).unwrap();
        let meta = idx.get("linux-image-cloud-amd64").unwrap();
        assert_eq!(
            meta.first_dependency().as_deref(),
            Some("linux-image-6.1.0-28-cloud-amd64")
        );
        assert_eq!(meta.size, 3);
    }

    #[test]
    fn unsafe_filenames_are_rejected() {
        let text = stanza("evil", "x").replace("pool/main/evil.deb", "../../etc/passwd");
        assert!(
            PackageIndex::parse(text.as_bytes())
                .unwrap_err()
                .contains("unsafe Filename")
        );
    }
}
