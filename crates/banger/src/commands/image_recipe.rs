//! How `image ls` and `image inspect` show the recipe revision that built an image
//! (`ImageView.recipe`): marked when a rebuild would change the image, with what changed
//! and the command that rebuilds it.

use banger_api::{ImageRecipeView, ImageView};

/// The SOURCE cell of `image ls`: the source, marked when a rebuild would change the image.
pub fn source_cell(image: &ImageView) -> String {
    match &image.recipe {
        Some(r) if r.outdated && r.revision.is_none() => {
            format!("{} (maybe outdated)", image.source)
        }
        Some(r) if r.outdated => format!("{} (outdated)", image.source),
        _ => image.source.clone(),
    }
}

/// The warning `image ls` prints for an image a rebuild would change: why, and how.
pub fn outdated_warning(image: &ImageView) -> Option<String> {
    let r = image.recipe.as_ref().filter(|r| r.outdated)?;
    let state = match r.revision {
        Some(built) => format!(
            "image {} is outdated (revision {built} of the {} recipe built it; this banger's is {})",
            image.name, r.name, r.current_revision
        ),
        None => format!(
            "image {} may be outdated (the {} recipe built it before images recorded their revision; this banger's is {})",
            image.name, r.name, r.current_revision
        ),
    };
    Some(format!(
        "{state}: {}. Rebuild it with `{}`",
        r.changes.join("; "),
        r.rebuild
    ))
}

/// The `recipe:` lines of `image inspect`, each ending in a newline. `text` escapes what
/// the image's maker controls (the rebuild command repeats its recorded packages).
pub fn describe(r: &ImageRecipeView, text: &dyn Fn(&str) -> String) -> String {
    let current = r.current_revision;
    let revision = match (r.status.as_str(), r.revision) {
        ("current", Some(built)) => format!("revision {built} (current)"),
        ("newer", Some(built)) => {
            format!("revision {built} (a newer banger's; this banger's is {current})")
        }
        (_, Some(built)) => format!("revision {built} (outdated: this banger's is {current})"),
        (_, None) => format!(
            "revision unknown (built before images recorded it; this banger's is {current})"
        ),
    };
    let mut out = format!("recipe:         {}, {revision}\n", text(&r.name));
    if r.outdated {
        let label = if r.revision.is_some() {
            "what changed:  "
        } else {
            "it may lack:   "
        };
        for change in &r.changes {
            out.push_str(&format!("{label} {change}\n"));
        }
        out.push_str(&format!("rebuild with:   {}\n", text(&r.rebuild)));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn recipe(revision: Option<u32>, status: &str, outdated: bool) -> ImageRecipeView {
        ImageRecipeView {
            name: "debian".into(),
            revision,
            current_revision: 2,
            status: status.into(),
            outdated,
            changes: if outdated {
                vec!["ssh sessions keep the guest's locale".into()]
            } else {
                Vec::new()
            },
            rebuild: "banger image build debian --name dev --force".into(),
        }
    }

    fn image(recipe: Option<ImageRecipeView>) -> ImageView {
        serde_json::from_value(serde_json::json!({
            "name": "dev", "source": "recipe:debian", "kernel_path": "/i/vmlinux",
            "kernel_format": "elf-vmlinux", "size_bytes": 1, "created_at": "2026-12-02T00:00:00Z",
            "recipe": recipe,
        }))
        .unwrap()
    }

    fn plain(t: &str) -> String {
        t.to_string()
    }

    #[test]
    fn an_outdated_image_is_marked_with_why_and_how_to_rebuild() {
        let outdated = image(Some(recipe(Some(1), "outdated", true)));
        assert_eq!(source_cell(&outdated), "recipe:debian (outdated)");
        assert_eq!(
            outdated_warning(&outdated).unwrap(),
            "image dev is outdated (revision 1 of the debian recipe built it; this banger's is 2): \
             ssh sessions keep the guest's locale. Rebuild it with \
             `banger image build debian --name dev --force`"
        );
        assert_eq!(
            describe(outdated.recipe.as_ref().unwrap(), &plain),
            "recipe:         debian, revision 1 (outdated: this banger's is 2)\n\
             what changed:   ssh sessions keep the guest's locale\n\
             rebuild with:   banger image build debian --name dev --force\n"
        );
    }

    #[test]
    fn an_unknown_revision_may_be_outdated() {
        let unknown = image(Some(recipe(None, "unknown", true)));
        assert_eq!(source_cell(&unknown), "recipe:debian (maybe outdated)");
        assert!(
            outdated_warning(&unknown)
                .unwrap()
                .contains("may be outdated")
        );
        let text = describe(unknown.recipe.as_ref().unwrap(), &plain);
        assert!(
            text.starts_with("recipe:         debian, revision unknown"),
            "{text}"
        );
        assert!(text.contains("it may lack:    ssh sessions"), "{text}");
    }

    #[test]
    fn a_current_image_or_one_no_recipe_built_is_left_unmarked() {
        for view in [image(Some(recipe(Some(2), "current", false))), image(None)] {
            assert_eq!(source_cell(&view), "recipe:debian");
            assert_eq!(outdated_warning(&view), None);
        }
        let current = recipe(Some(2), "current", false);
        assert_eq!(
            describe(&current, &plain),
            "recipe:         debian, revision 2 (current)\n"
        );
        let newer = recipe(Some(3), "newer", false);
        assert_eq!(
            describe(&newer, &plain),
            "recipe:         debian, revision 3 (a newer banger's; this banger's is 2)\n"
        );
    }
}
