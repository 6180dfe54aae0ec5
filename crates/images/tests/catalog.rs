//! The embedded catalog and the catalog format's validation.

use banger_images::imagecat::{EntrySource, Recipe};
use banger_images::{Catalog, CatalogError};

const SHA: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

#[test]
fn embedded_catalog_defaults_to_debian() {
    let c = Catalog::embedded().unwrap();
    assert_eq!(c.default_image(), "debian");
    let debian = c.lookup("debian").unwrap();
    assert_eq!(debian.source, EntrySource::Recipe(Recipe::Debian));
    let minimal = c.lookup("minimal").unwrap();
    assert_eq!(minimal.source, EntrySource::Recipe(Recipe::Minimal));
    assert!(!minimal.description.is_empty());
    assert_eq!(c.entries().count(), 2);
    assert!(c.lookup("nope").is_none());
}

#[test]
fn download_entries_parse() {
    let text = format!(
        "format = 1\ndefault = \"deb\"\n[images.deb]\nkind = \"download\"\ndescription = \"d\"\nkernel = {{ url = \"http://x/vmlinux\", sha256 = \"{SHA}\" }}\nrootfs = {{ url = \"https://x/root.ext4\", sha256 = \"{SHA}\" }}\n[images.minimal]\nkind = \"recipe\"\nrecipe = \"minimal\"\n"
    );
    let c = Catalog::parse(&text).unwrap();
    let names: Vec<_> = c.entries().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["deb", "minimal"]);
    match &c.lookup("deb").unwrap().source {
        EntrySource::Download(d) => {
            assert_eq!(d.kernel.url, "http://x/vmlinux");
            assert!(d.initrd.is_none());
            assert_eq!(d.rootfs.as_ref().unwrap().sha256, SHA);
        }
        other => panic!("{other:?}"),
    }
}

fn invalid(text: &str, needle: &str) {
    let err = Catalog::parse(text).unwrap_err();
    assert!(
        err.to_string().contains(needle),
        "expected {needle:?} in: {err}"
    );
}

#[test]
fn bad_catalogs_are_rejected_with_reasons() {
    let head = "format = 1\ndefault = \"a\"\n[images.a]\n";
    invalid(
        "format = 1\ndefault = \"zzz\"\n[images.a]\nkind = \"recipe\"\nrecipe = \"minimal\"\n",
        "zzz",
    );
    invalid(
        "format = 2\ndefault = \"a\"\n[images.a]\nkind = \"recipe\"\nrecipe = \"minimal\"\n",
        "format = 2",
    );
    invalid(
        &format!("{head}kind = \"recipe\"\nrecipe = \"gentoo\"\n"),
        "gentoo",
    );
    invalid(&format!("{head}kind = \"recipe\"\n"), "needs recipe");
    invalid(&format!("{head}kind = \"magic\"\n"), "unknown kind");
    invalid(&format!("{head}kind = \"download\"\n"), "needs kernel");
    invalid(
        &format!(
            "{head}kind = \"download\"\nkernel = {{ url = \"ftp://x\", sha256 = \"{SHA}\" }}\n"
        ),
        "http://",
    );
    invalid(
        &format!(
            "{head}kind = \"download\"\nkernel = {{ url = \"http://x\", sha256 = \"ABC\" }}\n"
        ),
        "64 lowercase hex",
    );
    invalid(
        &format!(
            "{head}kind = \"recipe\"\nrecipe = \"minimal\"\nkernel = {{ url = \"http://x\", sha256 = \"{SHA}\" }}\n"
        ),
        "takes no kernel",
    );
    invalid(
        "format = 1\ndefault = \"A\"\n[images.A]\nkind = \"recipe\"\nrecipe = \"minimal\"\n",
        "image name",
    );
    // Unknown keys are errors, not silently ignored.
    let err = Catalog::parse(&format!(
        "{head}kind = \"recipe\"\nrecipe = \"minimal\"\ncolour = \"red\"\n"
    ))
    .unwrap_err();
    assert!(
        matches!(err, CatalogError::Toml(_)) && err.to_string().contains("colour"),
        "{err}"
    );
}
