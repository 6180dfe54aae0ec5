//! `/v1/images`: list, inspect, build from a recipe, remove; and `ensure`, which
//! builds a catalogued image the first time a VM needs it.

use banger_api::{BuildImageRequest, ImageView};
use banger_images::imagecat::{Catalog, EntrySource, Recipe};
use banger_store::ImageRecord;

use crate::error::{DaemonError, Result};
use crate::state::Daemon;

pub fn list(daemon: &Daemon) -> Result<Vec<ImageView>> {
    Ok(daemon.store().list_images()?.iter().map(view).collect())
}

pub fn get(daemon: &Daemon, name: &str) -> Result<ImageView> {
    daemon
        .store()
        .get_image(name)?
        .map(|i| view(&i))
        .ok_or_else(|| not_found(name))
}

pub async fn build(daemon: &Daemon, req: BuildImageRequest) -> Result<ImageView> {
    let name = req.name.clone().unwrap_or_else(|| req.recipe.clone());
    banger_config::validate_image_name(&name)
        .map_err(|e| DaemonError::invalid(format!("invalid image name {name:?}: {e}")))?;
    let _guard = daemon.image_lock.lock().await;
    if !req.force
        && let Some(existing) = daemon.store().get_image(&name)?
    {
        return Err(
            DaemonError::conflict(format!("image {name:?} already exists")).with_hint(format!(
                "rebuild it with `banger image build {} --force`",
                existing
                    .source
                    .strip_prefix("recipe:")
                    .unwrap_or(&existing.name)
            )),
        );
    }
    build_locked(daemon, &req.recipe, &name)
        .await
        .map(|i| view(&i))
}

/// The image called `name`, building it first when it is missing but the embedded
/// catalog knows how to make it.
pub async fn ensure(daemon: &Daemon, name: &str) -> Result<ImageRecord> {
    if let Some(image) = daemon.store().get_image(name)? {
        return Ok(image);
    }
    let catalog = catalog()?;
    if catalog.lookup(name).is_none() {
        return Err(not_found(name));
    }
    let _guard = daemon.image_lock.lock().await;
    // Another request may have built it while we waited for the lock.
    if let Some(image) = daemon.store().get_image(name)? {
        return Ok(image);
    }
    tracing::info!(
        image = name,
        "image not registered yet; building it from the catalog"
    );
    build_locked(daemon, name, name).await
}

pub fn remove(daemon: &Daemon, name: &str) -> Result<ImageView> {
    let image = daemon
        .store()
        .get_image(name)?
        .ok_or_else(|| not_found(name))?;
    let users = daemon.store().vms_using_image(name)?;
    if !users.is_empty() {
        return Err(DaemonError::conflict(format!(
            "image {name:?} is used by VM(s): {}",
            users.join(", ")
        ))
        .with_hint("remove those VMs first with `banger vm rm -f NAME`"));
    }
    daemon.store().delete_image(name)?;
    if let Err(e) = std::fs::remove_dir_all(&image.dir) {
        tracing::warn!(dir = %image.dir.display(), error = %e, "cannot delete image files");
    }
    Ok(view(&image))
}

/// Build recipe `recipe` and register it as `name`. The caller holds `image_lock`.
async fn build_locked(daemon: &Daemon, recipe: &str, name: &str) -> Result<ImageRecord> {
    let catalog = catalog()?;
    let entry = catalog.lookup(recipe).ok_or_else(|| {
        DaemonError::invalid(format!("unknown image recipe {recipe:?}")).with_hint(format!(
            "known recipes: {}",
            catalog
                .entries()
                .map(|e| e.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    if !matches!(entry.source, EntrySource::Recipe(Recipe::Minimal)) {
        return Err(DaemonError::invalid(format!(
            "catalog entry {recipe:?} is a download, which this banger cannot fetch yet"
        )));
    }
    let agent = banger_paths::companion_binary(banger_paths::AGENT_BINARY_NAME).map_err(|e| {
        DaemonError::unavailable(format!(
            "cannot build image {name}: the guest agent is missing: {e}"
        ))
        .with_hint("build it with `make build` (it must be the static banger-agent)")
    })?;
    // Each build gets a fresh directory; the old image's files stay valid until the
    // store points at the new ones.
    let dir = daemon.layout.images_dir().join(format!(
        "{name}-{}",
        banger_store::new_vm_id()
            .map_err(|e| DaemonError::internal(format!("cannot draw a random id: {e}")))?
    ));
    let cache_dir = daemon.layout.cache_dir();
    let runner = daemon.runner.clone();
    let name_owned = name.to_string();
    let out_dir = dir.clone();
    let built = tokio::task::spawn_blocking(move || {
        let progress = LogProgress(name_owned.clone());
        let mut opts = banger_images::MinimalOptions::new(out_dir, cache_dir, agent, runner.as_ref());
        opts.image_name = name_owned.clone();
        opts.progress = &progress;
        if let Ok(mirror) = std::env::var("BANGER_DEBIAN_MIRROR") {
            opts.debian.mirror = mirror;
        }
        banger_images::build_minimal(&opts)
    })
    .await
    .map_err(|e| DaemonError::internal(format!("image build task failed: {e}")))?
    .map_err(|e| {
        DaemonError::internal(format!("building image {name} failed: {e}"))
            .with_hint("check the network path to the Debian archive, or point BANGER_DEBIAN_MIRROR at a mirror")
    })?;

    let record = ImageRecord {
        name: name.to_string(),
        kernel_path: built.kernel_path.clone(),
        kernel_format: "elf-vmlinux".into(),
        bzimage_path: Some(built.bzimage_path.clone()),
        initrd_path: Some(built.initrd_path.clone()),
        rootfs_path: built.rootfs_path.clone(),
        source: format!("recipe:{recipe}"),
        kernel_release: Some(built.kernel_release.clone()),
        dir: built.dir.clone(),
        created_at: banger_store::now_rfc3339(),
        size_bytes: dir_size(&built.dir),
        kernel_pvh: Some(built.has_pvh),
        init: Some(banger_store::GuestInit::Initramfs),
        config_json: None,
        digest: None,
    };
    let previous = daemon.store().get_image(name)?;
    daemon.store().replace_image(&record)?;
    if let Some(old) = previous
        && old.dir != record.dir
    {
        let _ = std::fs::remove_dir_all(&old.dir);
    }
    tracing::info!(image = name, kernel = %built.kernel_release, "image registered");
    Ok(record)
}

fn catalog() -> Result<Catalog> {
    Catalog::embedded()
        .map_err(|e| DaemonError::internal(format!("the embedded image catalog is broken: {e}")))
}

fn not_found(name: &str) -> DaemonError {
    DaemonError::not_found(format!("no image named {name:?}"))
        .with_hint("`banger image ls` lists registered images; `banger image build minimal` builds the default one")
}

fn view(image: &ImageRecord) -> ImageView {
    ImageView {
        name: image.name.clone(),
        source: image.source.clone(),
        kernel_path: image.kernel_path.display().to_string(),
        kernel_format: image.kernel_format.clone(),
        initrd_path: image.initrd_path.as_ref().map(|p| p.display().to_string()),
        rootfs_path: image.rootfs_path.as_ref().map(|p| p.display().to_string()),
        kernel_release: image.kernel_release.clone(),
        kernel_pvh: Some(kernel_pvh(image)),
        size_bytes: image.size_bytes,
        created_at: image.created_at.clone(),
    }
}

fn dir_size(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// The image's PVH fact. Images registered before the store recorded it carry it in
/// their `manifest.json`; a kernel with no record at all is assumed to lack the note
/// (QEMU then boots its bzImage on `-M pc`, which always works).
pub fn kernel_pvh(image: &ImageRecord) -> bool {
    image.kernel_pvh.unwrap_or_else(|| {
        banger_images::Manifest::load(&image.dir)
            .map(|m| m.has_pvh)
            .unwrap_or(false)
    })
}

/// Until the CLI is shown progress over the API, long work is reported in the daemon log.
pub struct LogProgress(pub String);

impl banger_system::progress::Progress for LogProgress {
    fn report(&self, event: banger_system::progress::ProgressEvent) {
        use banger_system::progress::ProgressEvent;
        match event {
            ProgressEvent::Phase { name, .. } => tracing::info!(image = %self.0, "{name}"),
            ProgressEvent::Note { message } => tracing::info!(image = %self.0, "{message}"),
            ProgressEvent::Advance { .. } => {}
        }
    }
}
