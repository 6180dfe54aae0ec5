//! `/v1/images`: list, inspect, build from a recipe, remove; and `ensure`, which
//! builds a catalogued image the first time a VM needs it.

mod build;
mod import;
mod kernel;
mod pull;
mod recipe;
mod reclaim;
mod verify;

use build::{Recipe, build_locked};
pub use import::import;
pub use kernel::import as import_kernel;
pub use pull::pull_request as pull;
pub use reclaim::reclaim;
pub use verify::verify;

use banger_api::{BuildImageRequest, ImageView};
use banger_images::imagecat::Catalog;
use banger_store::ImageRecord;
use banger_system::progress::{Progress, ProgressEvent};

use crate::error::{DaemonError, Result, quoted};
use crate::state::Daemon;

pub fn list(daemon: &Daemon) -> Result<Vec<ImageView>> {
    Ok(daemon.store().list_images()?.iter().map(view).collect())
}

/// One image, with its warm state.
pub fn get(daemon: &Daemon, name: &str) -> Result<ImageView> {
    let image = daemon
        .store()
        .get_image(name)?
        .ok_or_else(|| not_found(name))?;
    let mut view = view(&image);
    view.warm = crate::warm::view(daemon, &image.name)?;
    Ok(view)
}

/// Build image `req.recipe` (as `req.name`); `progress` hears each phase.
pub async fn build(
    daemon: &Daemon,
    req: BuildImageRequest,
    progress: &dyn Progress,
) -> Result<ImageView> {
    let name = req.name.clone().unwrap_or_else(|| req.recipe.clone());
    validate_name(&name)?;
    // Checked first: the hint below repeats the recipe's name.
    let recipe = Recipe::from_request(&req)?;
    let _guard = daemon.image_lock.lock().await;
    if !req.force && daemon.store().get_image(&name)?.is_some() {
        // The command the caller ran, again with --force; `--name` too, or the recipe's
        // own image would be rebuilt instead of this one.
        let named = if name == req.recipe {
            String::new()
        } else {
            format!(" --name {name}")
        };
        return Err(
            DaemonError::conflict(format!("image {} already exists", quoted(&name))).with_hint(format!(
                "set force to replace it (`banger image build {}{named} --force`, with your other options)",
                req.recipe
            )),
        );
    }
    build_locked(daemon, &recipe, &name, progress)
        .await
        .map(|i| view(&i))
}

/// The image called `name`, obtaining it first (building a recipe, or pulling a download)
/// when it is missing but the catalog knows it, and saying so to `progress`.
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
        "image {name} is not here yet: getting it now as the catalog says \
         (first use only; later VMs reuse it)"
    ));
    pull::obtain_locked(daemon, name, progress).await
}

pub fn remove(daemon: &Daemon, name: &str) -> Result<ImageView> {
    let image = daemon
        .store()
        .get_image(name)?
        .ok_or_else(|| not_found(name))?;
    let users = daemon.store().vms_using_image(name)?;
    if !users.is_empty() {
        return Err(DaemonError::conflict(format!(
            "image {} is used by VM(s): {}",
            quoted(name),
            users.join(", ")
        ))
        .with_hint("remove those VMs first with `banger vm rm -f NAME`"));
    }
    let snapshots = snapshots_using(daemon, name)?;
    if !snapshots.is_empty() {
        return Err(DaemonError::conflict(format!(
            "image {} is used by snapshot(s): {}",
            quoted(name),
            snapshots.join(", ")
        ))
        .with_hint("remove those snapshots first with `banger snapshot rm NAME`"));
    }
    // Its warm states are its own: they go with it (no VM is built on them now).
    crate::warm::remove_for_image(daemon, name)?;
    daemon.store().delete_image(name)?;
    if let Err(e) = crate::trash::discard(daemon, &image.dir) {
        tracing::warn!(dir = %image.dir.display(), error = %e, "cannot delete image files");
    }
    Ok(view(&image))
}

/// The snapshots taken of VMs of image `name` (they keep its kernel and disks' bases).
pub(crate) fn snapshots_using(daemon: &Daemon, name: &str) -> Result<Vec<String>> {
    // Its warm states are not: they go with it (`remove`).
    Ok(crate::snapshots::user_snapshots(daemon)?
        .into_iter()
        .filter(|s| s.image_name == name)
        .map(|s| s.name)
        .collect())
}

/// The embedded catalog, with the entries of the file `BANGER_CATALOG` names added
/// (tests serve catalog downloads from 127.0.0.1 that way; so can a site mirror).
pub(crate) fn catalog() -> Result<Catalog> {
    let mut catalog = Catalog::embedded()
        .map_err(|e| DaemonError::internal(format!("the embedded image catalog is broken: {e}")))?;
    if let Some(path) = std::env::var_os("BANGER_CATALOG") {
        let text = std::fs::read_to_string(&path).map_err(|e| {
            DaemonError::invalid(format!(
                "cannot read the catalog BANGER_CATALOG names ({}): {e}",
                std::path::Path::new(&path).display()
            ))
        })?;
        let extra = Catalog::parse(&text).map_err(|e| {
            DaemonError::invalid(format!(
                "the catalog BANGER_CATALOG names ({}) is invalid: {e}",
                std::path::Path::new(&path).display()
            ))
        })?;
        catalog.merge(extra);
    }
    Ok(catalog)
}

/// Check the name a new image would get (asked for, or derived from what it is made from).
pub(crate) fn validate_name(name: &str) -> Result<()> {
    banger_config::validate_image_name(name).map_err(|e| {
        DaemonError::invalid(format!("invalid image name {}: {e}", quoted(name)))
            .with_field("name")
            .with_hint("name it with --name (`name` in the API)")
    })
}

/// No image `name` is registered; the hint says how to get one the catalog knows (`pull`
/// builds a recipe or downloads), or which images the catalog offers.
pub(crate) fn not_found(name: &str) -> DaemonError {
    with_catalog_hint(
        DaemonError::not_found(format!("no image named {}", quoted(name))),
        name,
    )
}

/// `image pull NAME` of a name neither registered nor in the catalog: what pull looks in
/// is the catalog, so the error says so, with the names it offers.
pub(crate) fn not_in_catalog(name: &str) -> DaemonError {
    with_catalog_hint(
        DaemonError::not_found(format!(
            "the image catalog has no image named {} (and none is registered here)",
            quoted(name)
        )),
        name,
    )
}

fn with_catalog_hint(error: DaemonError, name: &str) -> DaemonError {
    let Ok(catalog) = catalog() else {
        return error.with_hint("`banger image ls` lists registered images");
    };
    if catalog.lookup(name).is_some() {
        return error.with_hint(format!(
            "the catalog knows it: `banger image pull {name}` gets it"
        ));
    }
    let offered: Vec<&str> = catalog.entries().map(|e| e.name.as_str()).collect();
    error.with_hint(format!(
        "`banger image ls` lists registered images; `banger image pull NAME` gets one the catalog offers ({}), `banger image import` brings your own",
        offered.join(", ")
    ))
}

pub(crate) fn view(image: &ImageRecord) -> ImageView {
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
        init: image.init.map(|i| i.to_string()),
        digest: image.digest.clone(),
        run: image
            .config_json
            .as_deref()
            .and_then(|j| serde_json::from_str(j).ok()),
        warm: None,
        recipe: recipe::view(image),
    }
}

/// Store `built`'s kernel, bzImage and initrd once: each that is identical to a
/// registered image's becomes a hard link to it (`banger_images::share`). Best effort: a
/// failure only costs the space, so it is logged, never fatal. Call before registering.
pub(crate) fn share_identical_files(daemon: &Daemon, built: &banger_images::BuiltImage) {
    let Ok(images) = daemon.store().list_images() else {
        return;
    };
    let candidates: Vec<&std::path::Path> = images
        .iter()
        .filter(|i| i.dir != built.dir)
        .flat_map(|i| {
            [
                Some(&i.kernel_path),
                i.bzimage_path.as_ref(),
                i.initrd_path.as_ref(),
            ]
        })
        .flatten()
        .map(|p| p.as_path())
        .collect();
    let ours = [
        Some(&built.kernel_path),
        built.bzimage_path.as_ref(),
        Some(&built.initrd_path),
    ];
    let mut saved = 0;
    for file in ours.into_iter().flatten() {
        match banger_images::share::link_identical(file, &candidates) {
            Ok(bytes) => saved += bytes,
            Err(e) => {
                tracing::warn!(file = %file.display(), "cannot share an identical image file: {e}")
            }
        }
    }
    if saved > 0 {
        tracing::info!(dir = %built.dir.display(), saved, "image files shared with registered images");
    }
}

pub(crate) fn dir_size(dir: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    // Allocated bytes: root filesystems are sparse, their apparent size is mostly holes.
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.blocks() * 512)
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

/// Run blocking image work off the async runtime. It reports through a channel that
/// this task drains into `progress` (which need not outlive the call), and every phase and
/// note also goes to the daemon log.
pub(crate) async fn blocking<T: Send + 'static>(
    image: &str,
    progress: &dyn Progress,
    work: impl FnOnce(&dyn Progress) -> T + Send + 'static,
) -> Result<T> {
    let (events, mut heard) = tokio::sync::mpsc::unbounded_channel::<ProgressEvent>();
    let name = image.to_string();
    let task = tokio::task::spawn_blocking(move || {
        let logged = Logged {
            image: &name,
            forward: events,
        };
        work(&logged)
    });
    while let Some(event) = heard.recv().await {
        progress.report(event);
    }
    task.await
        .map_err(|e| DaemonError::internal(format!("image task for {image} failed: {e}")))
}

/// Logs an image operation's phases and notes to the daemon log and forwards every event.
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
