//! `POST /v1/images/pull` and the automatic pull on first use: catalog entries of kind
//! `download`, verified against their pinned SHA-256 before anything is registered.

use banger_api::{ImageView, PullImageRequest};
use banger_images::imagecat::EntrySource;
use banger_images::pull::{PullOptions, pull};
use banger_store::{GuestInit, ImageRecord};

use super::build::{Recipe, build_locked};
use banger_system::progress::Progress;

use super::{blocking, catalog, dir_size, not_found, not_in_catalog, share_identical_files, view};
use crate::error::{DaemonError, Result};
use crate::state::Daemon;

/// `image pull NAME`: fetch a download entry, or build a recipe entry (the same thing a
/// first `vm run` would do), replacing a registered image only with `force`; an image
/// already registered is answered as it is.
pub async fn pull_request(
    daemon: &Daemon,
    req: PullImageRequest,
    progress: &dyn Progress,
) -> Result<ImageView> {
    // An image neither here nor in the catalog is refused at once, not after waiting for
    // a build that holds the image lock.
    if daemon.store().get_image(&req.name)?.is_none() && catalog()?.lookup(&req.name).is_none() {
        return Err(not_in_catalog(&req.name).with_field("name"));
    }
    let _guard = daemon.image_lock.lock().await;
    if !req.force {
        // Like `docker pull` of an image already present: nothing to do, and not an error.
        if let Some(existing) = daemon.store().get_image(&req.name)? {
            progress.note(&format!(
                "image {:?} is already here; `banger image pull {} --force` fetches it again",
                req.name, req.name
            ));
            return Ok(view(&existing));
        }
    }
    obtain_locked(daemon, &req.name, progress)
        .await
        .map(|i| view(&i))
}

/// Make catalog entry `name` available, however the catalog says. The caller holds
/// `image_lock`.
pub async fn obtain_locked(
    daemon: &Daemon,
    name: &str,
    progress: &dyn Progress,
) -> Result<ImageRecord> {
    let catalog = catalog()?;
    let entry = catalog.lookup(name).ok_or_else(|| not_found(name))?;
    let EntrySource::Download(spec) = entry.source.clone() else {
        let recipe = Recipe::for_catalog_entry(name)?;
        return build_locked(daemon, &recipe, name, progress).await;
    };
    let agent = banger_paths::companion_binary(banger_paths::AGENT_BINARY_NAME).map_err(|e| {
        DaemonError::unavailable(format!(
            "cannot pull {name}: the guest agent is missing: {e}"
        ))
        .with_hint("build it with `make build`")
    })?;
    let dir = daemon.layout.images_dir().join(format!(
        "{name}-{}",
        banger_store::new_vm_id()
            .map_err(|e| DaemonError::internal(format!("cannot draw a random id: {e}")))?
    ));
    let cache_dir = daemon.layout.cache_dir();
    let name_owned = name.to_string();
    let built = blocking(name, progress, move |progress| {
        let mut opts = PullOptions::new(name_owned, spec, dir, cache_dir, agent);
        opts.progress = progress;
        pull(&opts)
    })
    .await?
    .map_err(|e| {
        DaemonError::unavailable(format!(
            "pulling image {name} failed: {}",
            banger_system::error_chain(&e)
        ))
        .with_hint("an interrupted download resumes when you run the command again")
    })?;
    share_identical_files(daemon, &built);
    let record = ImageRecord {
        name: name.to_string(),
        kernel_path: built.kernel_path.clone(),
        kernel_format: "elf-vmlinux".into(),
        bzimage_path: built.bzimage_path.clone(),
        initrd_path: Some(built.initrd_path.clone()),
        rootfs_path: built.rootfs_path.clone(),
        source: format!("catalog:{name}"),
        kernel_release: Some(built.kernel_release.clone()),
        dir: built.dir.clone(),
        created_at: banger_store::now_rfc3339(),
        size_bytes: dir_size(&built.dir),
        kernel_pvh: Some(built.has_pvh),
        init: built.init.parse::<GuestInit>().ok(),
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
    tracing::info!(image = name, "image pulled and registered");
    Ok(record)
}
