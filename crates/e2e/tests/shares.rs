//! End to end: host directories shared with a real guest over virtio-fs (`-v`), under
//! QEMU/TCG with the minimal image. Both directions live, ownership on the host, `:ro`
//! enforced by the host even against the guest's root, paths with spaces and symlinked
//! directories, shares kept across stop/start and a daemon restart, a `virtiofsd` killed
//! mid-run reported as down, and no `virtiofsd` left behind by stop, rm or a killed daemon.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use banger_e2e::{Env, stderr, stdout};

/// Pids of the `virtiofsd` processes serving the VM whose directory is `vm_dir`.
fn file_servers(vm_dir: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let zombie = std::fs::read_to_string(entry.path().join("stat")).is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'))
        });
        if !zombie
            && args.first().is_some_and(|a| a.ends_with("virtiofsd"))
            && args.iter().any(|a| a.contains(vm_dir))
        {
            pids.push(pid);
        }
    }
    pids
}

/// Wait (generously: TCG hosts are slow and shared) until no `virtiofsd` serves `vm_dir`.
fn assert_no_file_servers(vm_dir: &str, when: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = file_servers(vm_dir);
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{when}: virtiofsd still running for {vm_dir}: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn live_shares_both_ways_read_only_enforced_and_never_orphaned() {
    let env = Env::new().unwrap_or_else(|e| panic!("cannot set up an e2e environment: {e:#}"));
    let host = tempfile::Builder::new()
        .prefix("bgshare")
        .tempdir_in("/tmp")
        .unwrap();
    let project = host.path().join("my project");
    std::fs::create_dir(&project).unwrap();
    std::fs::write(project.join("hello.txt"), "from the host\n").unwrap();
    let ro_real = host.path().join("read only");
    std::fs::create_dir(&ro_real).unwrap();
    std::fs::write(ro_real.join("keep.txt"), "untouched\n").unwrap();
    let ro_link = host.path().join("link");
    std::os::unix::fs::symlink(&ro_real, &ro_link).unwrap();

    env.ok([
        "vm",
        "run",
        "-d",
        "--name",
        "box",
        "-v",
        &format!("{}:/src", project.display()),
        "--mount",
        &format!("type=bind,src={},dst=/ro dir,ro", ro_link.display()),
    ]);
    let guest = |script: &str| env.ok(["vm", "exec", "box", "--", "sh", "-c", script]);

    // What inspect says: the real directory behind the link, the mode.
    let vm = env.vm_json("box");
    let vm_dir = vm["dir"].as_str().unwrap().to_string();
    let shares = vm["shares"].as_array().expect("shares in inspect --json");
    assert_eq!(shares.len(), 2, "{vm}");
    assert_eq!(shares[0]["host"], project.to_str().unwrap());
    assert_eq!(shares[0]["guest"], "/src");
    assert_eq!(shares[0]["mode"], "virtio-fs");
    assert_eq!(
        shares[1]["host"],
        ro_real.to_str().unwrap(),
        "links resolved"
    );
    assert_eq!(shares[1]["read_only"], true);
    let text = env.ok(["vm", "inspect", "box"]);
    assert!(text.contains("/src (virtio-fs)"), "{text}");
    assert!(
        !file_servers(&vm_dir).is_empty(),
        "a virtiofsd serves the VM"
    );

    // Host -> guest, including a file made after boot.
    assert_eq!(guest("cat /src/hello.txt"), "from the host\n");
    std::fs::write(project.join("later.txt"), "made after boot\n").unwrap();
    assert_eq!(guest("cat /src/later.txt"), "made after boot\n");

    // Guest -> host: what the guest's root writes belongs to the owner (this test's user).
    guest("echo from the guest > /src/out.txt && mkdir /src/sub && echo x > /src/sub/y");
    assert_eq!(
        std::fs::read_to_string(project.join("out.txt")).unwrap(),
        "from the guest\n"
    );
    let me = nix::unistd::geteuid().as_raw();
    for path in [project.join("out.txt"), project.join("sub/y")] {
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.uid(), me, "{} owned by the owner", path.display());
    }

    // :ro holds against the guest's root, even after it remounts the share read-write.
    assert_eq!(guest("cat '/ro dir/keep.txt'"), "untouched\n");
    let refused = env.run([
        "vm",
        "exec",
        "box",
        "--",
        "sh",
        "-c",
        "mount -o remount,rw '/ro dir' 2>/dev/null; echo evil > '/ro dir/keep.txt' || exit 3; \
         touch '/ro dir/new' || exit 4",
    ]);
    assert_eq!(refused.status.code(), Some(3), "{}", stderr(&refused));
    assert_eq!(
        std::fs::read_to_string(ro_real.join("keep.txt")).unwrap(),
        "untouched\n"
    );
    assert!(!ro_real.join("new").exists());

    // Stop gives the virtiofsd processes back; start brings the shares again.
    env.ok(["vm", "stop", "box"]);
    assert_no_file_servers(&vm_dir, "after vm stop");
    env.ok(["vm", "start", "box"]);
    assert_eq!(guest("cat /src/out.txt"), "from the guest\n");
    // A stop reaps the file servers on purpose: that is no share going down.
    let vm = env.vm_json("box");
    assert!(vm.get("shares_down").is_none(), "{vm}");
    assert_eq!(vm["shares"][0]["mode"], "virtio-fs", "{vm}");

    // A killed daemon: the next one finds the VM and its shares still serving.
    env.kill_daemon();
    assert_eq!(env.vm_json("box")["state"], "running");
    assert_eq!(guest("cat /src/sub/y"), "x\n");

    // A virtiofsd that dies mid-run is noticed: inspect says the share is down, with its
    // last words and the way back (a restart of the VM).
    for pid in file_servers(&vm_dir) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    assert_no_file_servers(&vm_dir, "after killing them");
    // Noticed at once, by the daemon's watcher (re-armed by the daemon that adopted the
    // VM), not by an inspect: `vm ls` reads only what the daemon recorded.
    let deadline = Instant::now() + Duration::from_secs(60);
    let listed = loop {
        let list: serde_json::Value =
            serde_json::from_str(&env.ok(["vm", "ls", "--json"])).unwrap();
        let down = list[0]["shares_down"].clone();
        if down.as_array().is_some_and(|d| d.len() == 2) {
            break down;
        }
        assert!(
            Instant::now() < deadline,
            "vm ls never showed the shares down: {list}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(listed, serde_json::json!(["/src", "/ro dir"]));
    let table = env.run(["vm", "ls"]);
    assert!(
        stdout(&table).contains("running (2 shares down)"),
        "{}",
        stdout(&table)
    );
    assert!(
        stderr(&table).contains("banger vm stop box"),
        "{}",
        stderr(&table)
    );
    let vm = env.vm_json("box");
    assert_eq!(vm["shares"][0]["mode"], "down", "{vm}");
    let problem = vm["shares"][0]["problem"].as_str().unwrap_or_default();
    assert!(problem.contains("virtiofsd exited"), "{problem}");
    assert!(problem.contains("banger vm start box"), "{problem}");

    env.ok(["vm", "rm", "-f", "box"]);
    assert_no_file_servers(&vm_dir, "after vm rm");
    assert!(project.join("out.txt").exists(), "rm never touches a share");
}

#[test]
fn bad_shares_are_refused_by_name_and_nothing_is_created() {
    let env = Env::new().unwrap_or_else(|e| panic!("cannot set up an e2e environment: {e:#}"));
    let host = tempfile::Builder::new()
        .prefix("bgshare")
        .tempdir_in("/tmp")
        .unwrap();
    let file = host.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let state = env.state_dir();
    std::fs::create_dir_all(state.join("x")).unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "-v".into(),
                format!("{}:/src", host.path().join("missing").display()),
            ],
            "cannot be shared",
        ),
        (
            vec!["-v".into(), format!("{}:/src", file.display())],
            "not a directory",
        ),
        (
            vec!["-v".into(), format!("{}:/", host.path().display())],
            "own root",
        ),
        (
            vec!["-v".into(), format!("{}:/src", state.join("x").display())],
            "banger's own directory",
        ),
        (
            vec![
                "-v".into(),
                format!("{}:/a", host.path().display()),
                "-v".into(),
                format!("{}:/a", host.path().display()),
            ],
            "shared twice",
        ),
        (vec!["-v".into(), "/nowhere".into()], "HOST:GUEST"),
        (
            vec!["--mount".into(), "type=volume,src=a,dst=/b".into()],
            "type=bind",
        ),
    ];
    for (flags, wanted) in cases {
        let mut args = vec![
            "vm".to_string(),
            "create".into(),
            "--name".into(),
            "bad".into(),
        ];
        args.extend(flags.clone());
        let out = env.run(&args);
        assert!(!out.status.success(), "{flags:?} was accepted");
        assert!(stderr(&out).contains(wanted), "{flags:?}: {}", stderr(&out));
    }
    assert_eq!(
        stdout(&env.run(["vm", "ls", "-q"])).trim(),
        "",
        "nothing was created"
    );
    assert!(Path::new(&state).exists());
}
