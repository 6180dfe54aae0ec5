//! Building images from recipes: the request (or catalog entry) decides which recipe
//! runs, the build runs off the async runtime, and the image is registered last.

use std::path::PathBuf;

use banger_api::BuildImageRequest;
use banger_images::imagecat::{EntrySource, Recipe as CatalogRecipe};
use banger_images::{BuiltImage, DebianImageOptions, GuestInitKind, MinimalOptions};
use banger_store::{GuestInit, ImageRecord};

use banger_system::progress::Progress;

use super::{blocking, catalog, dir_size, share_identical_files};
use crate::error::{DaemonError, Result, quoted};
use crate::state::Daemon;

/// A recipe with its parameters.
#[derive(Debug, Clone)]
pub enum Recipe {
    Minimal,
    Debian {
        suite: Option<String>,
        packages: Vec<String>,
        init: GuestInitKind,
    },
}

impl Recipe {
    pub fn from_request(req: &BuildImageRequest) -> Result<Recipe> {
        let recipe = Self::for_catalog_entry(&req.recipe)?;
        match recipe {
            Recipe::Minimal => {
                if req.suite.is_some() || !req.packages.is_empty() || req.init.is_some() {
                    return Err(DaemonError::invalid(
                        "suite, packages and init apply to the debian recipe, not minimal",
                    ));
                }
                Ok(Recipe::Minimal)
            }
            Recipe::Debian { .. } => {
                let init = match req.init.as_deref() {
                    None => GuestInitKind::Agent,
                    Some(text) => GuestInitKind::parse(text).ok_or_else(|| {
                        DaemonError::invalid(format!("init {} is not known", quoted(text)))
                            .with_hint("use agent (the lean init, the default) or systemd")
                    })?,
                };
                Ok(Recipe::Debian {
                    suite: req.suite.clone(),
                    packages: req.packages.clone(),
                    init,
                })
            }
        }
    }

    /// The recipe of catalog entry `name`, with its defaults.
    pub fn for_catalog_entry(name: &str) -> Result<Recipe> {
        let catalog = catalog()?;
        let entry = catalog.lookup(name).ok_or_else(|| {
            DaemonError::invalid(format!("unknown image recipe {}", quoted(name)))
                .with_field("recipe")
                .with_hint(format!(
                    "known recipes: {}",
                    catalog
                        .entries()
                        .filter(|e| matches!(e.source, EntrySource::Recipe(_)))
                        .map(|e| e.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
        })?;
        match entry.source {
            EntrySource::Recipe(CatalogRecipe::Minimal) => Ok(Recipe::Minimal),
            EntrySource::Recipe(CatalogRecipe::Debian) => Ok(Recipe::Debian {
                suite: None,
                packages: Vec::new(),
                init: GuestInitKind::Agent,
            }),
            EntrySource::Download(_) => Err(DaemonError::invalid(format!(
                "catalog entry {} is a download, not a recipe",
                quoted(name)
            ))
            .with_hint(format!("fetch it with `banger image pull {name}`"))),
        }
    }

    fn source(&self) -> String {
        match self {
            Recipe::Minimal => CatalogRecipe::Minimal.source(),
            Recipe::Debian { .. } => CatalogRecipe::Debian.source(),
        }
    }
}

/// Build `recipe` and register it as `name`. The caller holds `image_lock`.
pub async fn build_locked(
    daemon: &Daemon,
    recipe: &Recipe,
    name: &str,
    progress: &dyn Progress,
) -> Result<ImageRecord> {
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
    let recipe_owned = recipe.clone();
    let out_dir: PathBuf = dir.clone();
    let built = blocking(name, progress, move |progress| {
        let mirror = std::env::var(banger_images::debian::ENV_MIRROR).ok();
        match recipe_owned {
            Recipe::Minimal => {
                let mut opts = MinimalOptions::new(out_dir, cache_dir, agent, runner.as_ref());
                opts.image_name = name_owned;
                opts.progress = progress;
                if let Some(mirror) = mirror {
                    opts.debian.mirror = mirror;
                }
                banger_images::build_minimal(&opts)
            }
            Recipe::Debian {
                suite,
                packages,
                init,
            } => {
                let mut opts =
                    DebianImageOptions::new(out_dir, cache_dir, agent, runner.as_ref());
                opts.image_name = name_owned;
                opts.progress = progress;
                opts.include = packages;
                opts.init = init;
                if let Some(suite) = suite {
                    opts.debian.suite = suite;
                }
                if let Some(mirror) = mirror {
                    opts.debian.mirror = mirror;
                }
                banger_images::build_debian(&opts)
            }
        }
    })
    .await?
    .map_err(|e| {
        let error = DaemonError::caused(
            crate::error::ErrorKind::Internal,
            format_args!("building image {name} failed"),
            &e,
        );
        match e {
            // A full disk or a broken package is not a network problem: only a failed
            // download gets the network hint (mmdebstrap's own message names the network).
            _ if error.is_no_space() || !e.is_network() => error,
            _ => error.with_hint(
                "check the network path to the Debian archive, or point BANGER_DEBIAN_MIRROR at a mirror",
            ),
        }
    })?;
    register(daemon, &recipe.source(), name, &built)
}

/// Record a built image (replacing an older one of that name, whose files then go).
fn register(daemon: &Daemon, source: &str, name: &str, built: &BuiltImage) -> Result<ImageRecord> {
    let init = built.init.parse::<GuestInit>().ok();
    share_identical_files(daemon, built);
    let record = ImageRecord {
        name: name.to_string(),
        kernel_path: built.kernel_path.clone(),
        kernel_format: "elf-vmlinux".into(),
        bzimage_path: built.bzimage_path.clone(),
        initrd_path: Some(built.initrd_path.clone()),
        rootfs_path: built.rootfs_path.clone(),
        source: source.to_string(),
        kernel_release: Some(built.kernel_release.clone()),
        dir: built.dir.clone(),
        created_at: banger_store::now_rfc3339(),
        size_bytes: dir_size(&built.dir),
        kernel_pvh: Some(built.has_pvh),
        init,
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
