//! The **image recipes** rows: one WARN per image an older recipe revision built (or one
//! whose manifest predates revisions, when the recipe has changed since), with what a
//! rebuild changes and the command; one PASS when every recipe-built image is current;
//! nothing for imports or without a store. Read from real manifests in a real store, which
//! doctor leaves byte-for-byte unchanged.

use crate::common;

use banger_config::Config;
use banger_doctor::{Report, Status, groups};
use banger_images::imagecat::Recipe;
use banger_images::testkit;
use banger_store::{ImageRecord, Store, now_rfc3339};
use common::{FakeHost, ScriptedRunner};

/// Register `name` from `source`, a stand-in image whose manifest records `revision` of
/// `source`'s recipe (none: a manifest from before revisions).
fn image(host: &FakeHost, name: &str, source: &str, revision: Option<u32>) {
    let dir = host.path(&format!("state/images/{name}-0001"));
    std::fs::create_dir_all(&dir).unwrap();
    testkit::stand_in_recipe_image(&dir, name, source, revision).unwrap();
    Store::open(host.path("state/state.db"))
        .unwrap()
        .insert_image(&ImageRecord {
            name: name.into(),
            kernel_path: dir.join("vmlinux"),
            kernel_format: "elf-vmlinux".into(),
            bzimage_path: None,
            initrd_path: Some(dir.join("initrd.cpio")),
            rootfs_path: None,
            source: source.into(),
            kernel_release: None,
            dir,
            created_at: now_rfc3339(),
            size_bytes: 12,
            kernel_pvh: Some(true),
            init: None,
            config_json: None,
            digest: None,
        })
        .unwrap();
}

fn doctor(host: &FakeHost) -> Report {
    banger_doctor::run(&host.context(Config::default(), ScriptedRunner::new()))
}

fn rows(report: &Report) -> Vec<(String, Status)> {
    report
        .group(groups::RUNTIME)
        .filter(|c| c.name.starts_with("image recipe"))
        .map(|c| (c.name.clone(), c.status))
        .collect()
}

#[test]
fn each_outdated_image_gets_a_warning_with_why_and_how_to_rebuild() {
    let host = FakeHost::new();
    image(&host, "dev", "recipe:debian", Some(1));
    image(&host, "old", "recipe:debian", None);
    image(
        &host,
        "minimal",
        "recipe:minimal",
        Some(Recipe::Minimal.revision()),
    );
    image(&host, "app", "docker://registry.example.com/app:1", Some(1));
    let manifest = host.path("state/images/dev-0001/manifest.json");
    let before = std::fs::read(&manifest).unwrap();

    let report = doctor(&host);
    assert_eq!(
        rows(&report),
        [
            ("image recipe: dev".to_string(), Status::Warn),
            ("image recipe: old".to_string(), Status::Warn),
        ]
    );
    let dev = report.find(groups::RUNTIME, "image recipe: dev").unwrap();
    assert_eq!(
        dev.summary,
        "\"dev\" was built by revision 1 of the debian recipe, this banger's is 2"
    );
    assert_eq!(dev.details.len(), 1, "{:?}", dev.details);
    assert!(
        dev.details[0].starts_with("a rebuild brings: ssh sessions keep the guest's"),
        "{:?}",
        dev.details
    );
    assert_eq!(
        dev.hint.as_deref(),
        Some(
            "rebuild it with `banger image build debian --name dev --force` (VMs made from it keep their disks)"
        )
    );
    let old = report.find(groups::RUNTIME, "image recipe: old").unwrap();
    assert!(
        old.summary.contains("before images recorded its revision"),
        "{}",
        old.summary
    );
    assert!(
        old.details[0].starts_with("it may lack: "),
        "{:?}",
        old.details
    );
    // Warnings only: nothing here fails the report.
    assert!(
        report
            .checks()
            .iter()
            .all(|c| !(c.name.starts_with("image recipe") && c.status == Status::Fail))
    );
    assert_eq!(std::fs::read(&manifest).unwrap(), before);
}

#[test]
fn current_images_pass_and_imports_or_a_fresh_install_say_nothing() {
    let host = FakeHost::new();
    assert_eq!(rows(&doctor(&host)), []);

    image(&host, "app", "docker://registry.example.com/app:1", Some(1));
    assert_eq!(rows(&doctor(&host)), []);

    image(
        &host,
        "debian",
        "recipe:debian",
        Some(Recipe::Debian.revision()),
    );
    image(&host, "minimal", "recipe:minimal", None);
    let report = doctor(&host);
    assert_eq!(rows(&report), [("image recipes".to_string(), Status::Pass)]);
    let pass = report.find(groups::RUNTIME, "image recipes").unwrap();
    assert_eq!(
        pass.summary,
        "2 image(s) built by banger's recipes; none needs a rebuild"
    );
    assert_eq!(
        pass.details,
        [
            "debian: built by revision 2 of the debian recipe, the current one",
            "minimal: built by the minimal recipe before images recorded its revision, this banger's is 1",
        ]
    );
}
