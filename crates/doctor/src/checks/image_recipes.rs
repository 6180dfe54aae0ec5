//! Images an older revision of their recipe built. Such an image keeps that revision's
//! behaviour (say, ssh sessions taking the client's locale) until it is rebuilt, and
//! nothing else would tell its owner: one WARN per image, saying what a rebuild changes
//! and the command that rebuilds it as it was built. Never a FAIL: the image still works.
//!
//! The revision comes from each image's `manifest.json`, read and never written
//! (`banger_images::RecipeState`, the rule `image ls` uses too).

use banger_images::{Freshness, RecipeState};

use crate::context::{DoctorContext, StoreState};
use crate::groups;
use crate::registry::CapabilityCheck;
use crate::report::Check;

const NAME: &str = "image recipes";

pub struct ImageRecipes;

impl CapabilityCheck for ImageRecipes {
    fn name(&self) -> &'static str {
        NAME
    }

    /// No rows without a store (a fresh install has no images; an unreadable store is the
    /// state store row's to report) or without an image a recipe built.
    fn run(&self, ctx: &DoctorContext) -> Vec<Check> {
        let StoreState::Open(store) = ctx.store() else {
            return Vec::new();
        };
        let images = match store.list_images() {
            Ok(images) => images,
            Err(err) => {
                return vec![Check::warn(
                    groups::RUNTIME,
                    NAME,
                    format!("cannot list images: {}", crate::error_chain(&err)),
                )];
            }
        };
        let built: Vec<(String, RecipeState)> = images
            .iter()
            .filter_map(|image| {
                RecipeState::of_image(&image.name, &image.source, &image.dir)
                    .map(|state| (image.name.clone(), state))
            })
            .collect();
        if built.is_empty() {
            return Vec::new();
        }
        let outdated: Vec<Check> = built
            .iter()
            .filter(|(_, state)| state.needs_rebuild())
            .map(|(name, state)| outdated(name, state))
            .collect();
        if !outdated.is_empty() {
            return outdated;
        }
        let details = built
            .iter()
            .map(|(name, state)| format!("{name}: {}", state.revision_line()));
        vec![
            Check::pass(
                groups::RUNTIME,
                NAME,
                format!(
                    "{} image(s) built by banger's recipes; none needs a rebuild",
                    built.len()
                ),
            )
            .details(details),
        ]
    }
}

fn outdated(name: &str, state: &RecipeState) -> Check {
    let lead = match state.freshness {
        Freshness::Unknown => "it may lack",
        _ => "a rebuild brings",
    };
    Check::warn(
        groups::RUNTIME,
        &format!("image recipe: {name}"),
        format!("{name:?} was {}", state.revision_line()),
    )
    .details(
        state
            .changes
            .iter()
            .map(|c| format!("{lead}: {}", c.change)),
    )
    .hint(format!(
        "rebuild it with `{}` (VMs made from it keep their disks)",
        state.rebuild
    ))
}
