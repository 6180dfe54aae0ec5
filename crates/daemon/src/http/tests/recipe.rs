//! `GET /v1/images` and `GET /v1/images/{name}` show each recipe-built image's recipe
//! revision against this banger's, read from the image's real `manifest.json`: an older
//! revision is outdated with what changed and the command that rebuilds it, a manifest
//! from before revisions is unknown, imports have no recipe at all.

use banger_images::imagecat::Recipe;

use super::*;

/// Register `name` from `source`, its directory a stand-in image whose manifest records
/// `revision` of that recipe (and, for a debian variant, what it was built with).
fn recipe_image(f: &Fixture, name: &str, source: &str, revision: Option<u32>) {
    let dir = f
        .daemon
        .layout
        .state_dir
        .join(format!("images/{name}-0001"));
    register_image(&f.daemon, name, dir.clone());
    let mut manifest =
        banger_images::testkit::stand_in_recipe_image(&dir, name, source, revision).unwrap();
    if name == "dev" {
        manifest.include = vec!["git".into(), "curl".into()];
        manifest.init = Some("systemd".into());
        banger_images::testkit::write_manifest(&dir, &manifest).unwrap();
    }
    let mut record = f.daemon.store().get_image(name).unwrap().unwrap();
    record.source = source.to_string();
    f.daemon.store().replace_image(&record).unwrap();
}

#[tokio::test]
async fn images_say_which_recipe_revision_built_them_and_how_to_rebuild() {
    let f = fixture();
    recipe_image(&f, "debian", "recipe:debian", Some(1));
    recipe_image(&f, "dev", "recipe:debian", None);
    recipe_image(
        &f,
        "minimal",
        "recipe:minimal",
        Some(Recipe::Minimal.revision()),
    );
    recipe_image(&f, "app", "docker://registry.example.com/app:1", Some(1));

    let a = send(&f, empty(Method::GET, "/v1/images")).await;
    assert_eq!(a.status, StatusCode::OK);
    let images: Vec<banger_api::ImageView> = serde_json::from_slice(&a.body).unwrap();
    let recipe = |name: &str| {
        images
            .iter()
            .find(|i| i.name == name)
            .unwrap_or_else(|| panic!("{name} is not listed: {images:?}"))
            .recipe
            .clone()
    };

    let debian = recipe("debian").expect("debian was built by a recipe");
    assert_eq!(
        (
            debian.name.as_str(),
            debian.revision,
            debian.current_revision,
            debian.status.as_str(),
            debian.outdated,
            debian.rebuild.as_str()
        ),
        (
            "debian",
            Some(1),
            2,
            "outdated",
            true,
            "banger image build debian --force"
        )
    );
    assert_eq!(debian.changes.len(), 1);
    assert!(debian.changes[0].contains("locale"), "{:?}", debian.changes);

    // Built before images recorded a revision: unknown, and it may lack the change.
    let dev = recipe("dev").expect("dev was built by a recipe");
    assert_eq!(
        (dev.revision, dev.status.as_str(), dev.outdated),
        (None, "unknown", true)
    );
    assert_eq!(
        dev.rebuild,
        "banger image build debian --name dev --packages git,curl --init systemd --force"
    );

    let minimal = recipe("minimal").expect("minimal was built by a recipe");
    assert_eq!(
        (
            minimal.status.as_str(),
            minimal.outdated,
            minimal.changes.len()
        ),
        ("current", false, 0)
    );

    // An import and an image registered without a recipe source have none.
    assert_eq!(recipe("app"), None);
    assert_eq!(recipe("fake"), None);
    let json = a.json();
    let fake = json
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "fake")
        .unwrap();
    assert!(fake.get("recipe").is_none(), "{fake}");

    // One image answers the same.
    let a = send(&f, empty(Method::GET, "/v1/images/debian")).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()["recipe"]["status"], "outdated");

    // A manifest that cannot be read leaves the revision unknown; the view still answers.
    let dir = f.daemon.store().get_image("minimal").unwrap().unwrap().dir;
    std::fs::write(dir.join("manifest.json"), b"{ not json").unwrap();
    let a = send(&f, empty(Method::GET, "/v1/images/minimal")).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()["recipe"]["status"], "unknown");
    // minimal has changed nothing since its first revision: nothing to rebuild for.
    assert_eq!(a.json()["recipe"]["outdated"], false);
}

/// Building over an existing image is refused with the command that replaces it: the
/// recipe and, for an image of another name, `--name` (without it `--force` would rebuild
/// the recipe's own image instead).
#[tokio::test]
async fn building_over_an_image_names_the_command_that_replaces_it() {
    let f = fixture();
    recipe_image(&f, "dev", "recipe:debian", Some(1));
    recipe_image(&f, "debian", "recipe:debian", Some(1));
    for (body, command) in [
        (
            r#"{"recipe":"debian","name":"dev"}"#,
            "`banger image build debian --name dev --force`",
        ),
        (
            r#"{"recipe":"debian"}"#,
            "`banger image build debian --force`",
        ),
    ] {
        let a = send(&f, json_req(Method::POST, "/v1/images/build", body)).await;
        assert_eq!(
            a.status,
            StatusCode::CONFLICT,
            "{}",
            String::from_utf8_lossy(&a.body)
        );
        let hint = a.json()["hint"].as_str().unwrap_or_default().to_string();
        assert!(hint.contains(command), "{body}: {hint}");
    }
    // An unknown recipe is named as such before any conflict.
    let a = send(
        &f,
        json_req(
            Method::POST,
            "/v1/images/build",
            r#"{"recipe":"gone","name":"dev"}"#,
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
}
