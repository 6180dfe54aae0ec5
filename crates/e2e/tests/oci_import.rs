//! End to end: OCI images made by real tools (umoci, GNU tar, skopeo), imported from an
//! OCI layout, a docker-archive and a registry on 127.0.0.1, boot on real guests and run
//! their Cmd; the layer cache serves a second image; a hostile layer is refused; a
//! daemon killed mid-import leaves nothing registered.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use banger_e2e::oci::{self, EXPECTED_OUTPUT, Registry};
use banger_e2e::{Env, stderr, stdout};

fn env() -> Env {
    Env::new().unwrap_or_else(|e| panic!("cannot set up an e2e environment: {e:#}"))
}

fn assert_fixture_output(text: &str) {
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines, EXPECTED_OUTPUT, "the image's Cmd printed {text:?}");
}

#[test]
fn images_from_a_layout_an_archive_and_a_registry_boot_and_run_their_cmd() {
    let env = env();
    let tmp = tempfile::tempdir().unwrap();
    let layout = oci::build_layout(tmp.path(), "v1").unwrap();
    let registry = Registry::start().unwrap();
    let pushed = registry.push(&layout, "v1", "banger/test").unwrap();
    let archive = tmp.path().join("test.tar");
    oci::docker_archive(&layout, "v1", &archive).unwrap();

    for (name, reference) in [
        ("fromreg", pushed.clone()),
        ("fromdir", format!("oci:{}:v1", layout.display())),
        ("fromtar", format!("docker-archive:{}", archive.display())),
    ] {
        env.ok(["image", "import", &reference, "--name", name]);
        let image: serde_json::Value =
            serde_json::from_str(&env.ok(["image", "inspect", name, "--json"])).unwrap();
        assert_eq!(image["init"], "agent");
        assert_eq!(image["run"]["working_dir"], "/data");
        assert_eq!(image["run"]["env"][0], "GREETING=oci");
        assert_eq!(image["run"]["user"], "app");
        assert!(image["rootfs_path"].is_string());
    }
    // The registry image boots and runs its own Cmd, Env, WorkingDir and User.
    let out = env.run(["vm", "run", "--rm", "--image", "fromreg"]);
    assert!(
        out.status.success(),
        "{}\n{}",
        stderr(&out),
        env.diagnostics()
    );
    assert_fixture_output(&stdout(&out));
    // So does the archive's (its layers were stored uncompressed).
    let out = env.run(["vm", "run", "--rm", "--image", "fromtar"]);
    assert!(
        out.status.success(),
        "{}\n{}",
        stderr(&out),
        env.diagnostics()
    );
    assert_fixture_output(&stdout(&out));
    // -u overrides the image's User for its own command.
    let out = env.run(["vm", "run", "--rm", "--image", "fromdir", "-u", "0"]);
    assert!(
        stdout(&out).starts_with("hello from oci in /data as 0:0 (root, /root)\n"),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    // An explicit command still wins.
    let out = env.run([
        "vm",
        "run",
        "--rm",
        "--image",
        "fromdir",
        "--",
        "cat",
        "/data/new.txt",
    ]);
    assert_eq!(stdout(&out), "new\n", "{}", stderr(&out));

    // A second image on the same base: only the new layer is fetched and unpacked.
    oci::add_layer(&layout, "v1", "v2", &[("data/v2.txt", b"two\n")]).unwrap();
    let v2 = registry.push(&layout, "v2", "banger/test").unwrap();
    env.ok(["image", "import", &v2, "--name", "fromreg2"]);
    let log = std::fs::read_to_string(env.state_dir().join("daemon.log")).unwrap();
    assert!(
        log.contains("reusing 3 of 4 layers already unpacked"),
        "the second import did not reuse the cached layers:\n{}",
        env.diagnostics()
    );
    // Nor is its root filesystem formatted again: the previous import's is copied and
    // changed where the trees differ (as root; the guest below reads the result).
    assert!(
        log.contains("root filesystem made from a recent import sharing 3 of 4 layers"),
        "the second import rebuilt its root filesystem in full:\n{}",
        env.diagnostics()
    );
    let out = env.run([
        "vm",
        "run",
        "--rm",
        "--image",
        "fromreg2",
        "--",
        "cat",
        "/data/v2.txt",
        "/data/new.txt",
    ]);
    assert_eq!(stdout(&out), "two\nnew\n", "{}", stderr(&out));
}

#[test]
fn a_hostile_layer_is_refused_and_nothing_is_registered() {
    let env = env();
    let tmp = tempfile::tempdir().unwrap();
    let layout = oci::build_layout(tmp.path(), "v1").unwrap();
    // GNU tar with -P keeps the `../` that would escape the image root.
    let evil_dir = tmp.path().join("evil/a");
    std::fs::create_dir_all(&evil_dir).unwrap();
    std::fs::write(tmp.path().join("evil/escaped"), "x").unwrap();
    let tar = tmp.path().join("evil.tar");
    oci::tool(
        "tar",
        &[
            "-C",
            evil_dir.to_str().unwrap(),
            "-P",
            "-cf",
            tar.to_str().unwrap(),
            "../escaped",
        ],
    )
    .unwrap();
    oci::add_raw_layer(&layout, "v1", &tar).unwrap();
    let out = env.run([
        "image",
        "import",
        &format!("oci:{}:v1", layout.display()),
        "--name",
        "evil",
    ]);
    assert!(!out.status.success(), "a hostile layer was accepted");
    let err = stderr(&out);
    assert!(
        err.contains("../escaped"),
        "the error does not name the entry: {err}"
    );
    assert!(
        err.contains("layer sha256:"),
        "the error does not name the layer: {err}"
    );
    assert!(err.contains("escape"), "{err}");
    let images = env.ok(["image", "ls", "--json"]);
    assert!(!images.contains("\"evil\""), "{images}");
    // Nothing was written beside the daemon's state.
    let state_parent = env.state_dir().parent().unwrap().join("escaped");
    assert!(!state_parent.exists());
}

#[test]
fn a_daemon_killed_mid_import_leaves_nothing_registered() {
    let env = env();
    let tmp = tempfile::tempdir().unwrap();
    let layout = oci::build_layout(tmp.path(), "v1").unwrap();
    // A big incompressible layer keeps the import busy long enough to kill it.
    let mut big = vec![0u8; 192 << 20];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for chunk in big.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    oci::add_layer(&layout, "v1", "big", &[("data/big.bin", &big)]).unwrap();
    drop(big);
    let mut child = env
        .cmd([
            "image",
            "import",
            &format!("oci:{}:big", layout.display()),
            "--name",
            "big",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the import is under way (its work directory exists), then kill -9.
    let images_dir = env.state_dir().join("images");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let busy = std::fs::read_dir(&images_dir)
            .map(|d| {
                d.flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with(".big-"))
            })
            .unwrap_or(false);
        if busy {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the import never started\n{}",
            env.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = env.daemon_pid().expect("daemon pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let _ = child.wait();
    // The next command starts a new daemon, which reclaims the leftovers.
    let images = env.ok(["image", "ls", "--json"]);
    assert!(
        !images.contains("\"big\""),
        "a half-imported image is registered: {images}"
    );
    let leftovers: Vec<String> = std::fs::read_dir(&images_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') || n.starts_with("big"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "leftovers were not reclaimed: {leftovers:?}"
    );
    // And the import works afterwards (the cached blobs are reused).
    env.ok([
        "image",
        "import",
        &format!("oci:{}:big", layout.display()),
        "--name",
        "big",
    ]);
}
