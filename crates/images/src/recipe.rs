//! Which revision of its recipe built an image, and what rebuilding it would change.
//!
//! Each recipe has a revision, bumped whenever what it writes into an image changes
//! (beyond the agent, which is fingerprinted on its own), and a table saying what each
//! revision changed: [`crate::debian_image::RECIPE_CHANGES`],
//! `minimal::RECIPE_CHANGES`. A change to the kernel half both share
//! (`kernel_bundle`) bumps both. A build records its recipe and revision in the manifest
//! ([`RecipeStamp`]); `image ls`, `image inspect` and doctor compare that with this
//! banger's revision ([`RecipeState`]) and say how to rebuild an outdated image.
//!
//! Images not built by a recipe (OCI imports, catalog downloads, imported kernels) have no
//! recipe revision and are never outdated.

use serde::{Deserialize, Serialize};

use crate::imagecat::Recipe;
use crate::manifest::Manifest;

/// What one revision of a recipe changed in the images it builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecipeChange {
    pub revision: u32,
    /// A short clause saying what an image of this revision does differently.
    pub change: &'static str,
}

/// The recipe and revision that built an image, as its manifest records them
/// ([`Manifest::recipe`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipeStamp {
    /// `debian` or `minimal`.
    pub name: String,
    pub revision: u32,
}

impl Recipe {
    /// Every recipe, in catalog order.
    pub const ALL: [Recipe; 2] = [Recipe::Debian, Recipe::Minimal];

    /// Its name in the catalog, in `recipe:NAME` sources and on `banger image build`.
    pub fn name(self) -> &'static str {
        match self {
            Recipe::Minimal => "minimal",
            Recipe::Debian => "debian",
        }
    }

    pub fn from_name(name: &str) -> Option<Recipe> {
        Self::ALL.into_iter().find(|r| r.name() == name)
    }

    /// How an image it built is registered and recorded: `recipe:NAME`.
    pub fn source(self) -> String {
        format!("recipe:{}", self.name())
    }

    /// The recipe of an image registered from `source`, if a recipe of this banger built it.
    pub fn from_source(source: &str) -> Option<Recipe> {
        Self::from_name(source.strip_prefix("recipe:")?)
    }

    /// The revision this banger's recipe builds.
    pub fn revision(self) -> u32 {
        match self {
            Recipe::Minimal => crate::minimal::RECIPE_REVISION,
            Recipe::Debian => crate::debian_image::RECIPE_REVISION,
        }
    }

    /// What each revision after the first changed, oldest first.
    pub fn changes(self) -> &'static [RecipeChange] {
        match self {
            Recipe::Minimal => crate::minimal::RECIPE_CHANGES,
            Recipe::Debian => crate::debian_image::RECIPE_CHANGES,
        }
    }

    /// What a build by this banger records in the manifest.
    pub fn stamp(self) -> RecipeStamp {
        RecipeStamp {
            name: self.name().to_string(),
            revision: self.revision(),
        }
    }
}

/// How an image's recipe revision compares with this banger's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Built by this banger's revision.
    Current,
    /// Built by an older revision: rebuilding changes what [`RecipeState::changes`] lists.
    Outdated,
    /// Its manifest records no revision (it was built before images recorded one, or the
    /// manifest cannot be read): it may lack any of the recipe's changes.
    Unknown,
    /// Built by a newer banger's recipe.
    Newer,
}

impl Freshness {
    /// `current`, `outdated`, `unknown` or `newer` (the API's `recipe.status`).
    pub fn as_str(self) -> &'static str {
        match self {
            Freshness::Current => "current",
            Freshness::Outdated => "outdated",
            Freshness::Unknown => "unknown",
            Freshness::Newer => "newer",
        }
    }
}

/// A recipe-built image measured against this banger's recipe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipeState {
    pub recipe: Recipe,
    /// The revision that built it, when its manifest says.
    pub built: Option<u32>,
    pub freshness: Freshness,
    /// What rebuilding would change: the revisions after `built` (all of them when it is
    /// unknown), oldest first.
    pub changes: Vec<RecipeChange>,
    /// The command that rebuilds it as it was built: the same name, suite, packages, init.
    pub rebuild: String,
}

impl RecipeState {
    /// [`RecipeState::of`] image `name`, registered with `source`, whose directory is `dir`:
    /// its `manifest.json` is read only when a recipe built it (imports and downloads need no
    /// reading), and one that cannot be read leaves the revision unknown.
    pub fn of_image(name: &str, source: &str, dir: &std::path::Path) -> Option<RecipeState> {
        Recipe::from_source(source)?;
        let manifest = Manifest::read(dir).ok();
        RecipeState::of(name, source, manifest.as_ref())
    }

    /// The state of image `name`, registered with `source` (`recipe:debian`), whose
    /// manifest is `manifest` (`None` when it cannot be read). `None` for an image no
    /// recipe of this banger built: imports, downloads and kernels are never outdated.
    pub fn of(name: &str, source: &str, manifest: Option<&Manifest>) -> Option<RecipeState> {
        let recipe = Recipe::from_source(source)?;
        let current = recipe.revision();
        let built = manifest
            .and_then(|m| m.recipe.as_ref())
            .filter(|stamp| stamp.name == recipe.name())
            .map(|stamp| stamp.revision);
        let freshness = match built {
            None => Freshness::Unknown,
            Some(b) if b < current => Freshness::Outdated,
            Some(b) if b > current => Freshness::Newer,
            Some(_) => Freshness::Current,
        };
        let since = built.unwrap_or(0);
        let changes = recipe
            .changes()
            .iter()
            .filter(|c| c.revision > since && c.revision <= current)
            .copied()
            .collect();
        Some(RecipeState {
            recipe,
            built,
            freshness,
            changes,
            rebuild: rebuild_command(recipe, name, manifest),
        })
    }

    /// This banger's revision of the recipe.
    pub fn current(&self) -> u32 {
        self.recipe.revision()
    }

    /// Whether rebuilding would change the image: it is outdated, or its revision is
    /// unknown and the recipe has changed since its first revision.
    pub fn needs_rebuild(&self) -> bool {
        match self.freshness {
            Freshness::Outdated => true,
            Freshness::Unknown => !self.changes.is_empty(),
            Freshness::Current | Freshness::Newer => false,
        }
    }

    /// One clause on its revision: "built by revision 1 of the debian recipe, this
    /// banger's is 2".
    pub fn revision_line(&self) -> String {
        let (recipe, current) = (self.recipe.name(), self.current());
        match self.built {
            Some(built) if built == current => {
                format!("built by revision {built} of the {recipe} recipe, the current one")
            }
            Some(built) => format!(
                "built by revision {built} of the {recipe} recipe, this banger's is {current}"
            ),
            None => format!(
                "built by the {recipe} recipe before images recorded its revision, this banger's is {current}"
            ),
        }
    }
}

/// `banger image build RECIPE` with the options `manifest` recorded, and `--force` (the
/// image exists). Names, suites and packages were validated when the image was built.
fn rebuild_command(recipe: Recipe, name: &str, manifest: Option<&Manifest>) -> String {
    let mut command = format!("banger image build {}", recipe.name());
    if name != recipe.name() {
        command.push_str(&format!(" --name {name}"));
    }
    if let (Recipe::Debian, Some(m)) = (recipe, manifest) {
        if !m.debian.suite.is_empty() && m.debian.suite != crate::debian_image::DEFAULT_SUITE {
            command.push_str(&format!(" --suite {}", m.debian.suite));
        }
        if !m.include.is_empty() {
            command.push_str(&format!(" --packages {}", m.include.join(",")));
        }
        if let Some(init) = m.init.as_deref().filter(|i| *i != "agent") {
            command.push_str(&format!(" --init {init}"));
        }
    }
    command.push_str(" --force");
    command
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn manifest(stamp: Option<RecipeStamp>) -> Manifest {
        let dir = tempfile::tempdir().unwrap();
        let mut m = crate::testkit::stand_in_manifest(dir.path(), "image", None).unwrap();
        m.recipe = stamp;
        m
    }

    #[test]
    fn every_recipe_has_a_revision_and_a_change_for_each_later_one() {
        for recipe in Recipe::ALL {
            assert_eq!(Recipe::from_name(recipe.name()), Some(recipe));
            let revisions: Vec<u32> = recipe.changes().iter().map(|c| c.revision).collect();
            let want: Vec<u32> = (2..=recipe.revision()).collect();
            assert_eq!(revisions, want, "{}", recipe.name());
        }
        assert_eq!(Recipe::Debian.stamp().revision, 2);
        assert_eq!(Recipe::Minimal.stamp().name, "minimal");
    }

    #[test]
    fn an_older_revision_is_outdated_and_says_what_changed() {
        let m = manifest(Some(RecipeStamp {
            name: "debian".into(),
            revision: 1,
        }));
        let state = RecipeState::of("debian", "recipe:debian", Some(&m)).unwrap();
        assert_eq!(state.freshness, Freshness::Outdated);
        assert!(state.needs_rebuild());
        assert_eq!(state.changes, Recipe::Debian.changes());
        assert!(state.changes[0].change.contains("locale"));
        assert_eq!(state.rebuild, "banger image build debian --force");
        assert_eq!(
            state.revision_line(),
            "built by revision 1 of the debian recipe, this banger's is 2"
        );
    }

    #[test]
    fn the_current_revision_is_current_and_a_newer_one_is_not_outdated() {
        for (revision, freshness) in [(2, Freshness::Current), (3, Freshness::Newer)] {
            let m = manifest(Some(Recipe::Debian.stamp()).map(|mut s| {
                s.revision = revision;
                s
            }));
            let state = RecipeState::of("debian", "recipe:debian", Some(&m)).unwrap();
            assert_eq!(state.freshness, freshness);
            assert!(!state.needs_rebuild());
            assert!(state.changes.is_empty());
        }
    }

    #[test]
    fn a_manifest_without_a_revision_is_unknown_and_may_lack_every_change() {
        let m = manifest(None);
        let state = RecipeState::of("debian", "recipe:debian", Some(&m)).unwrap();
        assert_eq!(state.freshness, Freshness::Unknown);
        assert_eq!(state.changes, Recipe::Debian.changes());
        assert!(state.needs_rebuild());
        // No manifest at all reads the same.
        let unread = RecipeState::of("debian", "recipe:debian", None).unwrap();
        assert_eq!(unread.freshness, Freshness::Unknown);
        // minimal has changed nothing since its first revision: nothing to rebuild for.
        let minimal = RecipeState::of("minimal", "recipe:minimal", Some(&m)).unwrap();
        assert_eq!(minimal.freshness, Freshness::Unknown);
        assert!(!minimal.needs_rebuild());
    }

    #[test]
    fn images_no_recipe_built_have_no_recipe_state() {
        let m = manifest(Some(Recipe::Debian.stamp()));
        for source in [
            "catalog:debian",
            "oci:docker://x/y:1",
            "kernel:/vmlinux",
            "recipe:gone",
        ] {
            assert_eq!(RecipeState::of("x", source, Some(&m)), None, "{source}");
        }
    }

    #[test]
    fn the_rebuild_command_repeats_the_build_options() {
        let mut m = manifest(Some(RecipeStamp {
            name: "debian".into(),
            revision: 1,
        }));
        m.debian.suite = "trixie".into();
        m.include = vec!["git".into(), "curl".into()];
        m.init = Some("systemd".into());
        let state = RecipeState::of("dev", "recipe:debian", Some(&m)).unwrap();
        assert_eq!(
            state.rebuild,
            "banger image build debian --name dev --suite trixie --packages git,curl --init systemd --force"
        );
        m.debian.suite = "bookworm".into();
        m.init = Some("agent".into());
        m.include.clear();
        let state = RecipeState::of("dev", "recipe:debian", Some(&m)).unwrap();
        assert_eq!(
            state.rebuild,
            "banger image build debian --name dev --force"
        );
        let state = RecipeState::of("tiny", "recipe:minimal", Some(&m)).unwrap();
        assert_eq!(
            state.rebuild,
            "banger image build minimal --name tiny --force"
        );
    }
}
