//! `POST /v1/images/{name}/verify`: read every file of an image again and check it against
//! the size and digest its manifest recorded when it was made — the whole-file SHA-256, or
//! for an OCI import's root filesystem the chunked SHA-256 (`banger_images::chunked`),
//! which `sha256sum` alone does not check.

use banger_api::{ImageVerifyReport, VerifiedFile};
use banger_images::manifest::Manifest;

use super::not_found;
use crate::error::{DaemonError, Result, quoted};
use crate::state::Daemon;

pub async fn verify(daemon: &Daemon, name: &str) -> Result<ImageVerifyReport> {
    let image = daemon
        .store()
        .get_image(name)?
        .ok_or_else(|| not_found(name))?;
    let dir = image.dir.clone();
    let name = name.to_string();
    // Hashing a root filesystem takes a while: off the async runtime.
    tokio::task::spawn_blocking(move || {
        let manifest = Manifest::load(&dir).map_err(|e| {
            DaemonError::internal(format!("image {} cannot be verified: {e}", quoted(&name)))
                .with_hint(format!(
                    "rebuild or re-import it (`banger image rm {name}` first)"
                ))
        })?;
        let f = &manifest.files;
        let files: Vec<VerifiedFile> = [Some(&f.kernel), f.bzimage.as_ref(), Some(&f.initrd)]
            .into_iter()
            .chain([f.rootfs.as_ref()])
            .flatten()
            .map(|record| {
                let (digest, expected) = match &record.sha256_1m {
                    Some(chunked) => ("sha256_1m", chunked.clone()),
                    None => ("sha256", record.sha256.clone()),
                };
                let problem = match record.verify(&dir) {
                    Ok(problem) => problem,
                    Err(e) => Some(format!("cannot be read: {e}")),
                };
                VerifiedFile {
                    path: record.path.clone(),
                    digest: digest.to_string(),
                    expected,
                    problem,
                }
            })
            .collect();
        Ok(ImageVerifyReport {
            ok: files.iter().all(|f| f.problem.is_none()),
            name,
            files,
        })
    })
    .await
    .map_err(|e| DaemonError::internal(format!("verifying an image failed: {e}")))?
}
