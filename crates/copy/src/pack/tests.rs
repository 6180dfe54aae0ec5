use std::fs;
use std::path::Path;

use crate::{CopyError, pack};

#[test]
fn the_root_and_nameless_paths_are_refused_with_what_to_name_instead() {
    // `vm cp dev:/ x`: the guest's whole filesystem, however it is spelt.
    for root in ["/", "/tmp/..", "/."] {
        let err = pack(Path::new(root), Vec::new()).unwrap_err();
        assert!(matches!(err, CopyError::Root { .. }), "{root}: {err}");
        let text = err.to_string();
        assert!(
            text.contains("whole filesystem") && text.contains("/etc"),
            "{text}"
        );
    }
    // A directory by `.` or `..`: its own name would do.
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("sub")).unwrap();
    let err = pack(&dir.path().join("sub/.."), Vec::new()).unwrap_err();
    assert!(matches!(err, CopyError::NoName { .. }), "{err}");
    assert!(err.to_string().contains("by its own name"), "{err}");
}
