//! `POST /v1/images/import-kernel`: a user's kernel (ELF vmlinux or bzImage) becomes a
//! kernel image that `image import --kernel NAME` pairs root filesystems with.

use banger_api::{ImageView, ImportKernelRequest};
use banger_images::kernel_import::{KernelImportOptions, import_kernel};
use banger_store::{GuestInit, ImageRecord};

use banger_system::progress::Progress;

use super::{blocking, dir_size, view};
use crate::error::{DaemonError, Result, quoted};
use crate::state::Daemon;

pub async fn import(
    daemon: &Daemon,
    req: ImportKernelRequest,
    progress: &dyn Progress,
) -> Result<ImageView> {
    let path = std::path::PathBuf::from(&req.path);
    if !path.is_absolute() {
        return Err(DaemonError::invalid(format!(
            "kernel path {} must be absolute",
            quoted(&req.path)
        )));
    }
    let name = req.name.clone().unwrap_or_else(|| {
        let stem = path
            .file_name()
            .map(|n| n.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        let cleaned: String = stem
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        format!("kernel-{}", cleaned.trim_matches('-'))
            .chars()
            .take(64)
            .collect()
    });
    super::validate_name(&name)?;
    let _guard = daemon.image_lock.lock().await;
    if !req.force && daemon.store().get_image(&name)?.is_some() {
        return Err(
            DaemonError::conflict(format!("image {} already exists", quoted(&name)))
                .with_hint("replace it with --force, or pick another --name"),
        );
    }
    let agent = banger_paths::companion_binary(banger_paths::AGENT_BINARY_NAME).map_err(|e| {
        DaemonError::unavailable(format!("the guest agent is missing: {e}"))
            .with_hint("build it with `make build`")
    })?;
    let dir = daemon.layout.images_dir().join(format!(
        "{name}-{}",
        banger_store::new_vm_id()
            .map_err(|e| DaemonError::internal(format!("cannot draw a random id: {e}")))?
    ));
    let initrd = req.initrd.clone().map(std::path::PathBuf::from);
    let name_owned = name.clone();
    let built = blocking(&name, progress, move |progress| {
        let mut opts = KernelImportOptions::new(path, dir, agent);
        opts.initrd = initrd;
        opts.image_name = name_owned;
        opts.progress = progress;
        import_kernel(&opts)
    })
    .await?
    .map_err(|e| DaemonError::invalid(banger_system::error_chain(&e)))?;
    let record = ImageRecord {
        name: name.clone(),
        kernel_path: built.kernel_path.clone(),
        kernel_format: "elf-vmlinux".into(),
        bzimage_path: built.bzimage_path.clone(),
        initrd_path: Some(built.initrd_path.clone()),
        rootfs_path: None,
        source: format!("kernel:{}", req.path),
        kernel_release: Some(built.kernel_release.clone()),
        dir: built.dir.clone(),
        created_at: banger_store::now_rfc3339(),
        size_bytes: dir_size(&built.dir),
        kernel_pvh: Some(built.has_pvh),
        init: Some(GuestInit::Initramfs),
        config_json: None,
        digest: None,
    };
    let previous = daemon.store().get_image(&name)?;
    daemon.store().replace_image(&record)?;
    if let Some(old) = previous
        && old.dir != record.dir
    {
        let _ = std::fs::remove_dir_all(&old.dir);
    }
    Ok(view(&record))
}
