//! Compute `BANGER_BUILD_ID`: a short digest of the workspace's sources and lock file.
//! The CLI and the daemon are the same binary; when a rebuilt CLI meets a daemon
//! started from an older build, their ids differ even though `CARGO_PKG_VERSION`
//! does not, and the CLI can say so. Two builds of the same sources share an id.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let root = manifest.join("../..");
    let crates = root.join("crates");
    let id = if crates.is_dir() {
        let mut files = Vec::new();
        collect(&crates, &mut files);
        for top in ["Cargo.toml", "Cargo.lock"] {
            files.push(root.join(top));
        }
        files.sort();
        let mut hash = Sha256::new();
        for file in &files {
            let rel = file.strip_prefix(&root).unwrap_or(file);
            hash.update(rel.to_string_lossy().as_bytes());
            hash.update([0]);
            hash.update(std::fs::read(file).unwrap_or_default());
            hash.update([0]);
        }
        hex::encode(&hash.finalize()[..6])
    } else {
        // Built outside the workspace (a packaged crate): the version is all we know.
        format!(
            "v{}",
            std::env::var("CARGO_PKG_VERSION").unwrap_or_default()
        )
    };
    println!("cargo:rustc-env=BANGER_BUILD_ID={id}");
    // A directory makes cargo rerun this when anything below it changes.
    println!("cargo:rerun-if-changed={}", crates.display());
    println!(
        "cargo:rerun-if-changed={}",
        root.join("Cargo.toml").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        root.join("Cargo.lock").display()
    );
}

/// What the binary is built from below `crates`: each crate's `src/`, manifest and
/// build script (tests and benchmarks do not change what it does).
fn collect(crates: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(crates) else {
        return;
    };
    for krate in entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()) {
        for file in ["Cargo.toml", "build.rs"] {
            if krate.join(file).is_file() {
                out.push(krate.join(file));
            }
        }
        walk(&krate.join("src"), out);
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for path in entries.flatten().map(|e| e.path()) {
        if path.is_dir() {
            walk(&path, out);
        } else {
            out.push(path);
        }
    }
}
