//! The template installations: each [`Recipe`]'s image is built once per machine (and
//! agent) into a directory under `target/`, whose store every [`crate::Env`] copies.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, bail};
use nix::fcntl::{Flock, FlockArg};

use crate::{check_binaries, env_command, sha256_hex, workspace_root};

/// An image the e2e templates hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recipe {
    Minimal,
    Debian,
    DebianSystemd,
}

impl Recipe {
    pub fn name(self) -> &'static str {
        match self {
            Recipe::Minimal => "minimal",
            Recipe::Debian => "debian",
            Recipe::DebianSystemd => "debian-systemd",
        }
    }

    /// The `banger` arguments that build it.
    fn build_args(self) -> Vec<&'static str> {
        match self {
            Recipe::Minimal | Recipe::Debian => vec!["image", "build", self.name()],
            Recipe::DebianSystemd => vec![
                "image",
                "build",
                "debian",
                "--init",
                "systemd",
                "--name",
                self.name(),
            ],
        }
    }

    fn template_dir(self) -> &'static str {
        match self {
            Recipe::Minimal => "target/e2e-template",
            Recipe::Debian => "target/e2e-debian",
            Recipe::DebianSystemd => "target/e2e-debian-systemd",
        }
    }
}

/// The template installation holding a built image, built once per machine (and
/// rebuilt when the agent changes). Concurrent test binaries serialise on a lock file.
pub(crate) fn template(recipe: Recipe) -> anyhow::Result<PathBuf> {
    let bin = check_binaries()?;
    let dir = workspace_root().join(recipe.template_dir());
    std::fs::create_dir_all(&dir)?;
    let lock_file = File::create(dir.join(".lock"))?;
    let _lock = Flock::lock(lock_file, FlockArg::LockExclusive)
        .map_err(|(_, e)| anyhow::anyhow!("cannot lock the e2e template: {e}"))?;

    let stamp = dir.join(".built-by");
    // The store records absolute paths, so a template copied from another checkout
    // (its stamp names that checkout) must be rebuilt, never reused.
    let want = format!(
        "{}\n{}\nrecipe {}",
        binary_stamp(&bin)?,
        dir.display(),
        banger_images::debian_image::RECIPE_REVISION
    );
    // Installations made from the template share its image files (their stores hold the
    // template's paths), so a test that removes or re-pulls the image empties them for
    // everyone: rebuild then too, instead of failing every later test on a missing file.
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(want.as_str())
        && has_entries(&dir.join("state/images"))
    {
        return Ok(dir);
    }
    // Start over, but keep the download cache (state/cache): the Debian packages
    // are the same, only the agent inside the image changed.
    for stale in [
        "state/state.db",
        "state/state.db-wal",
        "state/state.db-shm",
        "state/images",
        "run",
    ] {
        let p = dir.join(stale);
        let _ = std::fs::remove_dir_all(&p).or_else(|_| std::fs::remove_file(&p));
    }
    let out = env_command(&bin, &dir, recipe.build_args())
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running banger image build {}", recipe.name()))?;
    let _ = env_command(&bin, &dir, ["daemon", "stop"]).output();
    if !out.status.success() {
        bail!(
            "`banger image build {}` failed for the e2e template:\n{}\n{}\n{}",
            recipe.name(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(dir.join("state/daemon.log")).unwrap_or_default()
        );
    }
    std::fs::write(&stamp, want)?;
    Ok(dir)
}

fn has_entries(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut entries| {
        entries.any(|e| e.is_ok_and(|e| !e.file_name().to_string_lossy().starts_with('.')))
    })
}

/// Identifies the agent a template image was built with: the image embeds it, so
/// a new agent means a new image.
fn binary_stamp(bin: &Path) -> anyhow::Result<String> {
    let agent = std::fs::read(bin.with_file_name("banger-agent"))?;
    Ok(sha256_hex(&agent))
}
