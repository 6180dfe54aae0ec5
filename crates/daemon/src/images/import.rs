//! `POST /v1/images/import`: an OCI image (registry, layout directory or docker-archive)
//! becomes an image, paired with a kernel image's kernel and initrd.

use banger_api::{ImageView, ImportImageRequest};
use banger_images::oci::{self, ImageRef, ImportOptions, SourceOptions};
use banger_store::{GuestInit, ImageRecord};

use banger_system::progress::Progress;

use super::{blocking, dir_size, ensure, view};
use crate::error::{DaemonError, ErrorKind, Result, quoted};
use crate::state::Daemon;

/// The kernel an import boots when none is named: the `minimal` image's (it is the
/// quickest to build, and holds the same cloud kernel and modules as `debian`).
pub const DEFAULT_KERNEL_IMAGE: &str = "minimal";

pub async fn import(
    daemon: &Daemon,
    req: ImportImageRequest,
    progress: &dyn Progress,
) -> Result<ImageView> {
    let reference = ImageRef::parse(req.reference.trim()).map_err(|e| {
        DaemonError::from_error(ErrorKind::Invalid, &e)
            .with_hint("use docker://REGISTRY/REPO:TAG, oci:DIR[:TAG] or docker-archive:FILE")
    })?;
    let name = match &req.name {
        Some(n) => n.clone(),
        None => name_from(&reference),
    };
    super::validate_name(&name)?;
    if !req.force && daemon.store().get_image(&name)?.is_some() {
        return Err(
            DaemonError::conflict(format!("image {} already exists", quoted(&name)))
                .with_hint("replace it with --force, or pick another --name"),
        );
    }
    check_local_source(&reference)?;
    let kernel_name = req.kernel.as_deref().unwrap_or(DEFAULT_KERNEL_IMAGE);
    let kernel = ensure(daemon, kernel_name, progress).await?;

    let _guard = daemon.image_lock.lock().await;
    let agent = banger_paths::companion_binary(banger_paths::AGENT_BINARY_NAME).map_err(|e| {
        DaemonError::unavailable(format!(
            "cannot import {name}: the guest agent is missing: {e}"
        ))
        .with_hint("build it with `make build` (it must be the static banger-agent)")
    })?;
    let dir = daemon.layout.images_dir().join(format!(
        "{name}-{}",
        banger_store::new_vm_id()
            .map_err(|e| DaemonError::internal(format!("cannot draw a random id: {e}")))?
    ));
    let source = SourceOptions {
        insecure: req.insecure,
        docker_config: std::env::var_os("DOCKER_CONFIG")
            .map(|d| std::path::PathBuf::from(d).join("config.json"))
            .or_else(|| {
                std::env::var_os("HOME")
                    .map(|h| std::path::PathBuf::from(h).join(".docker/config.json"))
            }),
    };
    let cache_dir = daemon.layout.cache_dir();
    let runner = daemon.runner.clone();
    let (name_owned, kernel_dir, reference_shown) =
        (name.clone(), kernel.dir.clone(), reference.describe());
    let imported = blocking(&name, progress, move |progress| {
        let mut opts = ImportOptions::new(
            reference,
            dir,
            cache_dir,
            agent,
            kernel_dir,
            runner.as_ref(),
        );
        opts.image_name = name_owned;
        opts.source = source;
        opts.progress = progress;
        oci::import(&opts)
    })
    .await?
    .map_err(|e| {
        DaemonError::invalid(format!(
            "importing {reference_shown} failed: {}",
            banger_system::error_chain(&e)
        ))
    })?;

    let run = &imported.run;
    let config_json = serde_json::to_string(&banger_api::ImageRunConfig {
        entrypoint: run.entrypoint.clone(),
        cmd: run.cmd.clone(),
        env: run.env.clone(),
        working_dir: run.working_dir.clone(),
        user: run.user.clone(),
    })
    .ok();
    let built = &imported.image;
    let record = ImageRecord {
        name: name.clone(),
        kernel_path: built.kernel_path.clone(),
        kernel_format: "elf-vmlinux".into(),
        bzimage_path: built.bzimage_path.clone(),
        initrd_path: Some(built.initrd_path.clone()),
        rootfs_path: built.rootfs_path.clone(),
        source: reference_shown,
        kernel_release: Some(built.kernel_release.clone()),
        dir: built.dir.clone(),
        created_at: banger_store::now_rfc3339(),
        size_bytes: dir_size(&built.dir),
        kernel_pvh: Some(built.has_pvh),
        init: Some(GuestInit::Agent),
        config_json,
        digest: imported.manifest_digest.clone(),
    };
    let previous = daemon.store().get_image(&name)?;
    daemon.store().replace_image(&record)?;
    if let Some(old) = previous
        && old.dir != record.dir
    {
        let _ = std::fs::remove_dir_all(&old.dir);
    }
    tracing::info!(image = %name, source = %record.source, "image imported");
    Ok(view(&record))
}

/// A layout directory or archive file that is not there is refused before anything is
/// made (the kernel image an import pairs with may have to be built first).
fn check_local_source(reference: &ImageRef) -> Result<()> {
    let (path, found, kind) = match reference {
        ImageRef::Registry { .. } => return Ok(()),
        ImageRef::Layout { dir, .. } => (dir, dir.is_dir(), "a directory"),
        ImageRef::Archive { file, .. } => (file, file.is_file(), "a file"),
    };
    if found {
        return Ok(());
    }
    Err(DaemonError::invalid(format!(
        "cannot import {}: {} is not {kind} this daemon can read",
        reference.describe(),
        quoted(&path.display().to_string())
    ))
    .with_field("reference")
    .with_hint("give the path of an existing OCI layout directory (oci:DIR) or docker-archive tar file (docker-archive:FILE)"))
}

/// `docker://reg/team/app:1.2` → `app`; `oci:/x/layout:v1` → `layout`.
fn name_from(reference: &ImageRef) -> String {
    let base = match reference {
        ImageRef::Registry { reference } => {
            let no_digest = reference.split('@').next().unwrap_or(reference);
            let last = no_digest.rsplit('/').next().unwrap_or(no_digest);
            last.split(':').next().unwrap_or(last).to_string()
        }
        ImageRef::Layout { dir, .. } => dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        ImageRef::Archive { file, .. } => file
            .file_stem()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    let cleaned: String = base
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = cleaned.trim_start_matches(|c: char| !c.is_ascii_alphanumeric());
    if trimmed.is_empty() {
        "imported".to_string()
    } else {
        trimmed.chars().take(64).collect()
    }
}
