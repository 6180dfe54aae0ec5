//! `banger image ls` and `banger image inspect` through a real daemon (started by the CLI
//! in dev mode) and a real store: an image an older recipe revision built is marked
//! outdated, with why and the command that rebuilds it; a current one and an import are
//! not.

use crate::support;

use banger_images::imagecat::Recipe;
use banger_store::Store;
use support::{StopDaemon, banger, image, state_dir, text};

#[test]
fn image_ls_and_inspect_mark_an_image_an_older_recipe_built() {
    let dir = tempfile::tempdir().unwrap();
    let state = state_dir(&dir);
    {
        let store = Store::open(state.join("state.db")).unwrap();
        image(&store, &state, "dev", "recipe:debian", Some(1));
        let current = Recipe::Minimal.revision();
        image(&store, &state, "minimal", "recipe:minimal", Some(current));
        image(
            &store,
            &state,
            "app",
            "docker://registry.example.com/app:1",
            Some(1),
        );
    }
    let _stop = StopDaemon(&dir);

    let out = banger(&dir, &["image", "ls"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let row = |name: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no row for {name}:\n{stdout}"))
            .to_string()
    };
    assert!(row("dev").contains("recipe:debian (outdated)"), "{stdout}");
    assert!(!row("minimal").contains("outdated"), "{stdout}");
    assert!(!row("app").contains("outdated"), "{stdout}");
    let stderr = text(&out.stderr);
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .collect();
    assert_eq!(
        warnings.len(),
        1,
        "one warning, for the outdated image:\n{stderr}"
    );
    assert!(
        warnings[0].contains("image dev is outdated")
            && warnings[0].contains("locale")
            && warnings[0].contains("`banger image build debian --name dev --force`"),
        "{stderr}"
    );

    let out = banger(&dir, &["image", "inspect", "dev"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("recipe:         debian, revision 1 (outdated: this banger's is 2)\n"),
        "{stdout}"
    );
    assert!(stdout.contains("what changed:   ssh sessions"), "{stdout}");
    assert!(
        stdout.contains("rebuild with:   banger image build debian --name dev --force\n"),
        "{stdout}"
    );

    let out = banger(&dir, &["image", "inspect", "minimal"]);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "recipe:         minimal, revision {} (current)\n",
            Recipe::Minimal.revision()
        )),
        "{stdout}"
    );
    assert!(!stdout.contains("rebuild with"), "{stdout}");
    let out = banger(&dir, &["image", "inspect", "app", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["name"], "app");
    assert!(json.get("recipe").is_none(), "{json}");
}
