//! `/v1/images`: list, inspect, build from a recipe, remove; and `ensure`, which
//! builds a catalogued image the first time a VM needs it.

use banger_api::{BuildImageRequest, ImageView};
use banger_images::imagecat::{Catalog, EntrySource, Recipe};
use banger_store::ImageRecord;
use banger_system::progress::{Progress, ProgressEvent};

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

/// Build image `req.recipe` (as `req.name`); `progress` hears each phase.
pub async fn build(
    daemon: &Daemon,
    req: BuildImageRequest,
    progress: &dyn Progress,
) -> Result<ImageView> {
    let name = req.name.clone().unwrap_or_else(|| req.recipe.clone());
    banger_config::validate_image_name(&name).map_err(|e| {
        DaemonError::invalid(format!("invalid image name {name:?}: {e}")).with_field("name")
    })?;
    let _guard = daemon.image_lock.lock().await;
    if !req.force
        && let Some(existing) = daemon.store().get_image(&name)?
    {
        return Err(
            DaemonError::conflict(format!("image {name:?} already exists")).with_hint(format!(
                "set force to rebuild it (`banger image build {} --force`)",
                existing
                    .source
                    .strip_prefix("recipe:")
                    .unwrap_or(&existing.name)
            )),
        );
    }
    build_locked(daemon, &req.recipe, &name, progress)
        .await
        .map(|i| view(&i))
}

/// The image called `name`, building it first when it is missing but the embedded
/// catalog knows how to make it (and saying so to `progress`).
pub async fn ensure(daemon: &Daemon, name: &str, progress: &dyn Progress) -> Result<ImageRecord> {
    if let Some(image) = daemon.store().get_image(name)? {
        return Ok(image);
    }
    let catalog = catalog()?;
    if catalog.lookup(name).is_none() {
        return Err(not_found(name).with_field("image"));
    }
    let _guard = daemon.image_lock.lock().await;
    // Another request may have built it while we waited for the lock.
    if let Some(image) = daemon.store().get_image(name)? {
        return Ok(image);
    }
    progress.note(&format!(
        "image {name} is not built yet: building it now from its catalog recipe \
         (first use only; later VMs reuse it)"
    ));
    build_locked(daemon, name, name, progress).await
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
async fn build_locked(
    daemon: &Daemon,
    recipe: &str,
    name: &str,
    progress: &dyn Progress,
) -> Result<ImageRecord> {
    let catalog = catalog()?;
    let entry = catalog.lookup(recipe).ok_or_else(|| {
        DaemonError::invalid(format!("unknown image recipe {recipe:?}"))
            .with_field("recipe")
            .with_hint(format!(
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
    // The build blocks; it reports from its own thread through a channel that this
    // task drains into `progress` (which need not outlive this call).
    let (events, mut heard) = tokio::sync::mpsc::unbounded_channel::<ProgressEvent>();
    let build = tokio::task::spawn_blocking(move || {
        let progress = Logged {
            image: &name_owned,
            forward: events,
        };
        let mut opts =
            banger_images::MinimalOptions::new(out_dir, cache_dir, agent, runner.as_ref());
        opts.image_name = name_owned.clone();
        opts.progress = &progress;
        if let Ok(mirror) = std::env::var("BANGER_DEBIAN_MIRROR") {
            opts.debian.mirror = mirror;
        }
        banger_images::build_minimal(&opts)
    });
    while let Some(event) = heard.recv().await {
        progress.report(event);
    }
    let built = build
        .await
    .map_err(|e| DaemonError::internal(format!("image build task failed: {e}")))?
    .map_err(|e| {
        let error = DaemonError::caused(
            crate::error::ErrorKind::Internal,
            format_args!("building image {name} failed"),
            &e,
        );
        if error.is_no_space() || !e.is_network() {
            error
        } else {
            error.with_hint(
                "check the network path to the Debian archive, or point BANGER_DEBIAN_MIRROR at a mirror",
            )
        }
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

/// Logs an image build's phases and notes to the daemon log and forwards every event.
struct Logged<'a> {
    image: &'a str,
    forward: tokio::sync::mpsc::UnboundedSender<ProgressEvent>,
}

impl Progress for Logged<'_> {
    fn report(&self, event: ProgressEvent) {
        match &event {
            ProgressEvent::Phase { name, .. } => tracing::info!(image = self.image, "{name}"),
            ProgressEvent::Note { message } => tracing::info!(image = self.image, "{message}"),
            ProgressEvent::Advance { .. } => {}
        }
        let _ = self.forward.send(event);
    }
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
