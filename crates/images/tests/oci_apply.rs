//! Layer application: whiteouts and opaque directories, and hostile layers refused or
//! contained, each error naming the layer and the entry. A sentinel directory beside the
//! tree proves nothing outside it is created, changed or deleted.

use std::path::Path;

use banger_images::oci::apply::{Applier, LayerError};

/// A tar with raw control over names (the tar crate's builder refuses `..`).
struct Tar(Vec<u8>);

impl Tar {
    fn new() -> Self {
        Tar(Vec::new())
    }

    fn raw(
        mut self,
        name: &[u8],
        kind: tar::EntryType,
        link: &[u8],
        data: &[u8],
        mode: u32,
    ) -> Self {
        let mut h = tar::Header::new_gnu();
        {
            let gnu = h.as_gnu_mut().unwrap();
            gnu.name[..name.len()].copy_from_slice(name);
            gnu.linkname[..link.len()].copy_from_slice(link);
        }
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        self.0.extend_from_slice(h.as_bytes());
        self.0.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.0.extend(std::iter::repeat_n(0u8, pad));
        self
    }

    fn dir(self, name: &str) -> Self {
        self.raw(name.as_bytes(), tar::EntryType::Directory, b"", b"", 0o755)
    }

    fn file(self, name: &str, data: &str) -> Self {
        self.raw(
            name.as_bytes(),
            tar::EntryType::Regular,
            b"",
            data.as_bytes(),
            0o644,
        )
    }

    fn symlink(self, name: &str, target: &str) -> Self {
        self.raw(
            name.as_bytes(),
            tar::EntryType::Symlink,
            target.as_bytes(),
            b"",
            0o777,
        )
    }

    fn hardlink(self, name: &str, target: &str) -> Self {
        self.raw(
            name.as_bytes(),
            tar::EntryType::Link,
            target.as_bytes(),
            b"",
            0o644,
        )
    }

    fn done(mut self) -> Vec<u8> {
        self.0.extend(std::iter::repeat_n(0u8, 1024));
        self.0
    }
}

struct Fixture {
    _tmp: tempfile::TempDir,
    root: std::path::PathBuf,
    sentinel: std::path::PathBuf,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("rootfs");
    std::fs::create_dir(&root).unwrap();
    let sentinel = tmp.path().join("outside");
    std::fs::create_dir(&sentinel).unwrap();
    std::fs::write(sentinel.join("keep"), "host data").unwrap();
    Fixture {
        _tmp: tmp,
        root,
        sentinel,
    }
}

impl Fixture {
    fn apply(&self, layer: &str, tar: Vec<u8>) -> Result<(), LayerError> {
        Applier::new(&self.root).apply(layer, &tar[..]).map(drop)
    }

    fn read(&self, rel: &str) -> Option<String> {
        std::fs::read_to_string(self.root.join(rel)).ok()
    }

    fn outside_untouched(&self) {
        let names: Vec<_> = std::fs::read_dir(&self.sentinel)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["keep"], "something was created outside the tree");
        assert_eq!(
            std::fs::read_to_string(self.sentinel.join("keep")).unwrap(),
            "host data"
        );
    }
}

fn refused(err: LayerError, layer: &str, entry: &str) -> String {
    let text = err.to_string();
    assert!(
        text.contains(layer),
        "error does not name the layer: {text}"
    );
    assert!(
        text.contains(entry),
        "error does not name the entry: {text}"
    );
    text
}

#[test]
fn layers_stack_with_whiteouts_and_opaque_directories() {
    let f = fixture();
    f.apply(
        "L1",
        Tar::new()
            .dir("etc/")
            .file("etc/a", "1")
            .file("etc/b", "1")
            .dir("opt/")
            .file("opt/old", "1")
            .dir("opt/sub/")
            .file("opt/sub/x", "1")
            .done(),
    )
    .unwrap();
    f.apply(
        "L2",
        Tar::new()
            .file("etc/.wh.a", "")
            .file("etc/b", "2")
            .dir("opt/")
            .file("opt/.wh..wh..opq", "")
            .file("opt/new", "2")
            .done(),
    )
    .unwrap();
    assert_eq!(f.read("etc/a"), None, "whiteout did not remove etc/a");
    assert_eq!(f.read("etc/b").as_deref(), Some("2"));
    assert_eq!(f.read("opt/old"), None, "opaque dir kept a lower file");
    assert!(
        !f.root.join("opt/sub").exists(),
        "opaque dir kept a lower dir"
    );
    assert_eq!(f.read("opt/new").as_deref(), Some("2"));
    assert!(
        !f.root.join("etc/.wh.a").exists(),
        "whiteout marker was created"
    );

    // The same layer's own entries survive its opaque marker, whatever the order.
    f.apply(
        "L3",
        Tar::new()
            .file("opt/mine", "3")
            .file("opt/.wh..wh..opq", "")
            .done(),
    )
    .unwrap();
    assert_eq!(f.read("opt/mine").as_deref(), Some("3"));
    assert_eq!(f.read("opt/new"), None);
    f.outside_untouched();
}

#[test]
fn escaping_names_are_refused() {
    for name in [
        "../outside/evil",
        "a/../../outside/evil",
        "/outside/evil",
        "/etc/passwd",
    ] {
        let f = fixture();
        let err = f
            .apply("sha256:bad", Tar::new().file(name, "x").done())
            .unwrap_err();
        let text = refused(err, "sha256:bad", name);
        assert!(text.contains("escape"), "{text}");
        f.outside_untouched();
    }
}

#[test]
fn symlinks_are_contained_to_the_tree() {
    let f = fixture();
    let outside = f.sentinel.to_str().unwrap().to_string();
    // A symlink to the host directory, then writes through it: they land inside the tree.
    f.apply(
        "L1",
        Tar::new()
            .symlink("escape", &outside)
            .symlink("up", "../../../../..")
            .done(),
    )
    .unwrap();
    f.apply(
        "L2",
        Tar::new()
            .file("escape/keep", "pwned")
            .file("escape/new", "x")
            .file("up/rootfile", "y")
            .done(),
    )
    .unwrap();
    f.outside_untouched();
    let inside = f.root.join(outside.trim_start_matches('/'));
    assert_eq!(
        std::fs::read_to_string(inside.join("keep")).unwrap(),
        "pwned",
        "the write through an absolute symlink must land in the tree's own copy of the path"
    );
    assert_eq!(
        f.read("rootfile").as_deref(),
        Some("y"),
        "`..` must stop at the tree root"
    );
    // A file entry replacing a symlink replaces the link, never writes through it.
    std::fs::write(f.sentinel.join("target"), "host").unwrap();
    let f2 = fixture();
    let t = f2.sentinel.join("keep");
    f2.apply("L1", Tar::new().symlink("link", t.to_str().unwrap()).done())
        .unwrap();
    f2.apply("L2", Tar::new().file("link", "new").done())
        .unwrap();
    assert_eq!(f2.read("link").as_deref(), Some("new"));
    f2.outside_untouched();
}

#[test]
fn hardlinks_must_point_inside() {
    let f = fixture();
    let keep = f.sentinel.join("keep");
    for target in [keep.to_str().unwrap(), "../outside/keep", "missing/file"] {
        let err = f
            .apply("sha256:hl", Tar::new().hardlink("h", target).done())
            .unwrap_err();
        refused(err, "sha256:hl", "h");
    }
    f.apply(
        "L1",
        Tar::new()
            .file("real", "data")
            .hardlink("alias", "real")
            .done(),
    )
    .unwrap();
    assert_eq!(f.read("alias").as_deref(), Some("data"));
    f.outside_untouched();
}

#[test]
fn devices_oversized_headers_and_corrupt_streams_are_refused() {
    let f = fixture();
    let err = f
        .apply(
            "sha256:dev",
            Tar::new()
                .raw(b"dev/sda", tar::EntryType::Block, b"", b"", 0o600)
                .done(),
        )
        .unwrap_err();
    let text = refused(err, "sha256:dev", "dev/sda");
    assert!(text.contains("device"), "{text}");

    // A GNU long-name header claiming 2 MiB.
    let mut h = tar::Header::new_gnu();
    h.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
    h.set_entry_type(tar::EntryType::GNULongName);
    h.set_size(2 << 20);
    h.set_cksum();
    let mut bomb = h.as_bytes().to_vec();
    bomb.extend(vec![b'a'; 2 << 20]);
    let err = f.apply("sha256:big", bomb).unwrap_err();
    assert!(err.to_string().contains("oversized header"), "{err}");

    // Truncated in the middle of a file's data.
    let mut cut = Tar::new().file("f", &"x".repeat(4096)).done();
    cut.truncate(1024);
    let err = f.apply("sha256:cut", cut).unwrap_err();
    assert!(matches!(err, LayerError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("sha256:cut"), "{err}");
    f.outside_untouched();
}

#[test]
fn modes_and_file_types_survive() {
    let f = fixture();
    f.apply(
        "L1",
        Tar::new()
            .raw(b"bin/tool", tar::EntryType::Regular, b"", b"#!", 0o4755)
            .dir("ro/")
            .raw(b"ro/", tar::EntryType::Directory, b"", b"", 0o555)
            .file("ro/inside", "ok")
            .raw(b"pipe", tar::EntryType::Fifo, b"", b"", 0o600)
            .done(),
    )
    .unwrap();
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let mode = |p: &str| {
        std::fs::symlink_metadata(f.root.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode("bin/tool"), 0o4755);
    assert_eq!(mode("ro"), 0o555);
    assert_eq!(f.read("ro/inside").as_deref(), Some("ok"));
    assert!(
        std::fs::symlink_metadata(f.root.join("pipe"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
    let _ = Path::new("unused");
}
