//! Images built by an ordinary user get the owners the image asks for: the builder's own
//! files are root's inside the image (mkfs in a user namespace mapping the caller to
//! root) and the entries the layers gave other owners get those, set with debugfs.
//!
//! Each test runs its build half as uid 65534 — this test binary, copied where that uid
//! can read it, re-run with `setpriv` — exactly as an ordinary user's daemon would build,
//! and reads the image back as root with `debugfs` (e2fsprogs). They need root to drop
//! privileges and say so when run without it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use banger_images::ext4::{self, OwnerFix, Owners};
use banger_images::oci::apply::Applier;
use banger_system::RealRunner;

const NOBODY: u32 = 65534;
/// Set for the half that runs as 65534: the shared work directory.
const WORK_ENV: &str = "BANGER_TEST_OWNERS_DIR";

/// Run the `#[ignore]`d test `inner` of this binary as uid/gid 65534 with `work` shared.
fn build_as_nobody(inner: &str) -> tempfile::TempDir {
    // SAFETY: geteuid has no memory effects.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "these tests drop to uid 65534 with setpriv to build as an ordinary user would: run them as root (CI does)"
    );
    let work = world_writable_dir();
    let exe = test_binary_copy();
    let out = Command::new("setpriv")
        .args([
            "--reuid",
            &NOBODY.to_string(),
            "--regid",
            &NOBODY.to_string(),
        ])
        .args(["--clear-groups", "--"])
        .arg(exe)
        .args([
            "--exact",
            &banger_system::testkit::test_name(module_path!(), inner),
        ])
        .args(["--ignored", "--nocapture", "--test-threads=1"])
        .env(WORK_ENV, work.path())
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .output()
        .expect("setpriv (util-linux) runs");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("1 passed"),
        "the build as uid {NOBODY} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    work
}

fn world_writable_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("bgown")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    dir
}

/// The directory holding [`test_binary_copy`]'s copy; removed when this process exits.
static COPY: std::sync::OnceLock<(PathBuf, PathBuf)> = std::sync::OnceLock::new();

extern "C" fn remove_binary_copy() {
    if let Some((dir, _)) = COPY.get() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// This binary, copied once where uid 65534 can run it. Once per process, under a lock:
/// a copy written while another test thread forks would leave that child holding the
/// file open for writing, and exec of it then fails with ETXTBSY. A `TempDir` in a static
/// is never dropped, so the copy is removed at exit instead.
fn test_binary_copy() -> &'static Path {
    let (_, exe) = COPY.get_or_init(|| {
        let dir = world_writable_dir().keep();
        // SAFETY: atexit only records the function; remove_binary_copy reads a OnceLock
        // that is set by then and touches nothing else.
        unsafe { libc::atexit(remove_binary_copy) };
        let exe = dir.join("test-binary");
        // cp(1) in a child, not std::fs::copy: a write descriptor held by this multi-threaded
        // process could be inherited by another test's fork, and exec'ing the copy would then
        // fail with ETXTBSY.
        assert!(
            std::process::Command::new("cp")
                .arg(std::env::current_exe().unwrap())
                .arg(&exe)
                .status()
                .unwrap()
                .success()
        );
        (dir, exe)
    });
    exe
}

/// The shared work directory, in the half that runs as 65534.
fn inner_work() -> PathBuf {
    let dir = std::env::var_os(WORK_ENV)
        .expect("this half is run as uid 65534 by its outer test, not on its own");
    // SAFETY: geteuid has no memory effects.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(euid, NOBODY);
    PathBuf::from(dir)
}

/// `(uid, gid, permission bits)` of `path` inside `image`, read with debugfs.
fn stat_in(image: &Path, path: &str) -> (u32, u32, u32) {
    let out = Command::new("debugfs")
        .arg("-R")
        .arg(format!("stat \"{path}\""))
        .arg(image)
        .output()
        .expect("debugfs (e2fsprogs) runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| -> u32 {
        let at = text.find(name).unwrap_or_else(|| {
            panic!(
                "no {name} for {path} in:\n{text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        let word: String = text[at + name.len()..]
            .trim_start()
            .chars()
            .take_while(char::is_ascii_alphanumeric)
            .collect();
        if name == "Mode:" {
            u32::from_str_radix(&word, 8).unwrap() & 0o7777
        } else {
            word.parse().unwrap()
        }
    };
    (field("User:"), field("Group:"), field("Mode:"))
}

fn owner(image: &Path, path: &str) -> (u32, u32) {
    let (uid, gid, _) = stat_in(image, path);
    (uid, gid)
}

#[test]
fn an_ordinary_users_files_are_roots_in_the_image_and_foreign_owners_are_kept() {
    let work = build_as_nobody("build_a_tree_with_foreign_owners");
    let image = work.path().join("rootfs.ext4");
    let report = std::fs::read_to_string(work.path().join("report")).unwrap();
    assert_eq!(report, "mapped restored=3 skipped=1");
    assert_eq!(
        owner(&image, "/"),
        (0, 0),
        "the image's root directory is root's"
    );
    assert_eq!(owner(&image, "/etc/passwd"), (0, 0));
    assert_eq!(
        stat_in(&image, "/usr/bin/sudo"),
        (0, 0, 0o4755),
        "set-uid root kept"
    );
    assert_eq!(owner(&image, "/home/node"), (1000, 1000));
    assert_eq!(owner(&image, "/home/node/.profile"), (1000, 1001));
    assert_eq!(owner(&image, "/var/lib/my service"), (101, 102));
}

#[test]
#[ignore = "half of an_ordinary_users_files_are_roots_in_the_image…: runs as uid 65534"]
fn build_a_tree_with_foreign_owners() {
    let work = inner_work();
    let tree = work.join("tree");
    for d in ["etc", "home/node", "var/lib/my service", "usr/bin"] {
        std::fs::create_dir_all(tree.join(d)).unwrap();
    }
    std::fs::write(tree.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
    std::fs::write(tree.join("home/node/.profile"), "").unwrap();
    std::fs::write(tree.join("usr/bin/sudo"), "").unwrap();
    std::fs::set_permissions(
        tree.join("usr/bin/sudo"),
        std::fs::Permissions::from_mode(0o4755),
    )
    .unwrap();
    std::fs::write(tree.join("evil\nname"), "").unwrap();
    let fix = |path: &str, uid, gid| OwnerFix {
        path: path.into(),
        uid,
        gid,
    };
    let fixes = vec![
        fix("home/node", 1000, 1000),
        fix("home/node/.profile", 1000, 1001),
        fix("var/lib/my service", 101, 102),
        fix("evil\nname", 5, 5),
    ];
    let report = ext4::make_image(
        &RealRunner,
        &tree,
        &work.join("rootfs.ext4"),
        64 << 20,
        100,
        "root",
        &Owners::CallerIsRoot { fixes },
    )
    .unwrap();
    let mapped = if report.not_mapped.is_none() {
        "mapped"
    } else {
        "unmapped"
    };
    std::fs::write(
        work.join("report"),
        format!(
            "{mapped} restored={} skipped={}",
            report.restored, report.skipped
        ),
    )
    .unwrap();
}

#[test]
fn layers_applied_without_privilege_keep_their_owners_in_the_image() {
    let work = build_as_nobody("apply_layers_and_make_the_image");
    let image = work.path().join("rootfs.ext4");
    assert_eq!(
        std::fs::read_to_string(work.path().join("fixes")).unwrap(),
        "srv 33:33\n",
        "only what is still in the tree, as the last layer left it"
    );
    assert_eq!(owner(&image, "/srv"), (33, 33));
    assert_eq!(owner(&image, "/srv/old"), (0, 0));
    assert_eq!(owner(&image, "/etc/hostname"), (0, 0));
}

fn entry(b: &mut tar::Builder<Vec<u8>>, name: &str, dir: bool, uid: u64, gid: u64) {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(if dir {
        tar::EntryType::Directory
    } else {
        tar::EntryType::Regular
    });
    h.set_mode(if dir { 0o755 } else { 0o644 });
    h.set_uid(uid);
    h.set_gid(gid);
    h.set_size(0);
    b.append_data(&mut h, name, std::io::empty()).unwrap();
}

#[test]
#[ignore = "half of layers_applied_without_privilege_keep_their_owners_in_the_image: runs as uid 65534"]
fn apply_layers_and_make_the_image() {
    let work = inner_work();
    let tree = work.join("tree");
    std::fs::create_dir(&tree).unwrap();
    let mut base = tar::Builder::new(Vec::new());
    entry(&mut base, "etc/", true, 0, 0);
    entry(&mut base, "etc/hostname", false, 0, 0);
    entry(&mut base, "srv/", true, 33, 33);
    entry(&mut base, "srv/old", false, 33, 33);
    entry(&mut base, "tmpfile", false, 7, 7);
    let base = base.into_inner().unwrap();
    // The upper layer gives /srv/old back to root and whites out /tmpfile.
    let mut upper = tar::Builder::new(Vec::new());
    entry(&mut upper, "srv/old", false, 0, 0);
    entry(&mut upper, ".wh.tmpfile", false, 0, 0);
    let upper = upper.into_inner().unwrap();

    let applier = Applier::new(&tree);
    applier.apply("base", &base[..]).unwrap();
    applier.apply("upper", &upper[..]).unwrap();
    let owners = applier.owners();
    let Owners::CallerIsRoot { fixes } = &owners else {
        panic!("an ordinary user's applier lists foreign owners, got {owners:?}");
    };
    let listed: String = fixes
        .iter()
        .map(|f| format!("{} {}:{}\n", f.path.display(), f.uid, f.gid))
        .collect();
    std::fs::write(work.join("fixes"), listed).unwrap();
    let report = ext4::make_image(
        &RealRunner,
        &tree,
        &work.join("rootfs.ext4"),
        64 << 20,
        100,
        "root",
        &owners,
    )
    .unwrap();
    assert_eq!(report.restored, 1);
}
