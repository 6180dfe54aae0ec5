//! An image's recipe revision as the API shows it (`ImageView.recipe`): read from the
//! image's `manifest.json` on each view, so the fact has one owner (the image directory)
//! and needs no store column.

use banger_api::ImageRecipeView;
use banger_images::RecipeState;
use banger_store::ImageRecord;

/// `None` for an image no recipe built. A manifest that cannot be read leaves the
/// revision unknown: the view of an image never fails over it.
pub(crate) fn view(image: &ImageRecord) -> Option<ImageRecipeView> {
    let state = RecipeState::of_image(&image.name, &image.source, &image.dir)?;
    Some(ImageRecipeView {
        name: state.recipe.name().to_string(),
        revision: state.built,
        current_revision: state.current(),
        status: state.freshness.as_str().to_string(),
        outdated: state.needs_rebuild(),
        changes: state.changes.iter().map(|c| c.change.to_string()).collect(),
        rebuild: state.rebuild,
    })
}
