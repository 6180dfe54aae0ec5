//! End to end: copy-in shares (`-v HOST:GUEST:copy`, and every share of a Firecracker VM)
//! and `banger vm sync`. Under QEMU/TCG with the minimal image the copy is a real ext4
//! drive the real agent mounts: host content in the guest, guest writes back on the host
//! after a sync (owned by the owner), `:ro` enforced by a read-only drive against the
//! guest's root, hostile guest trees (a symlink out, a device node) refused without
//! touching the host. Under the fake Firecracker: `-v` becomes a copy and says so, the drive
//! is attached (read-only for `:ro`), `fallback = "refuse"` and `:live` refuse.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use banger_e2e::{Env, stderr, stdout};

/// Everything under `dir` (names and contents), sorted: what "untouched" compares.
fn listing(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            if m.is_dir() {
                out.push(format!("{rel}/"));
                stack.push(p);
            } else if m.file_type().is_symlink() {
                out.push(format!("{rel} -> {:?}", std::fs::read_link(&p).unwrap()));
            } else {
                out.push(format!("{rel} = {:?}", std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn copy_shares_reach_a_real_guest_and_sync_brings_changes_back() {
    let env = Env::new().unwrap_or_else(|e| panic!("cannot set up an e2e environment: {e:#}"));
    let host = tempfile::Builder::new()
        .prefix("bgcopy")
        .tempdir_in("/tmp")
        .unwrap();
    let project = host.path().join("my project");
    std::fs::create_dir_all(project.join("keep")).unwrap();
    std::fs::write(project.join("hello.txt"), "from the host\n").unwrap();
    std::fs::write(project.join("host-only.txt"), "stays\n").unwrap();
    let ro = host.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    std::fs::write(ro.join("keep.txt"), "untouched\n").unwrap();
    // A link out of the shared directory is copied as a link, never followed.
    std::os::unix::fs::symlink("/etc", project.join("etc-link")).unwrap();

    let out = env.run([
        "vm",
        "run",
        "-d",
        "--name",
        "cp",
        "-v",
        &format!("{}:/src:copy", project.display()),
        "--mount",
        &format!("type=copy,src={},dst=/ro,ro", ro.display()),
    ]);
    assert!(
        out.status.success(),
        "{}\n{}",
        stderr(&out),
        env.diagnostics()
    );
    // `vm run` says how each share reaches the guest.
    let said = stderr(&out);
    assert!(said.contains("-> /src: copy ("), "{said}");
    assert!(said.contains("-> /ro: copy, read-only"), "{said}");

    let vm = env.vm_json("cp");
    let shares = vm["shares"].as_array().unwrap();
    assert_eq!(shares[0]["mode"], "copy", "{vm}");
    assert!(
        shares[0]["note"]
            .as_str()
            .unwrap()
            .contains("banger vm sync cp")
    );
    let text = env.ok(["vm", "inspect", "cp"]);
    assert!(text.contains("/src (copy)"), "{text}");
    let guest = |script: &str| env.ok(["vm", "exec", "cp", "--", "sh", "-c", script]);

    // Host -> guest, as it was at boot.
    assert_eq!(guest("cat '/src/hello.txt'"), "from the host\n");
    assert_eq!(guest("readlink /src/etc-link"), "/etc\n");
    assert_eq!(guest("cat /ro/keep.txt"), "untouched\n");

    // :ro is a read-only drive: the guest's root cannot write, even after a remount.
    let refused = env.run([
        "vm",
        "exec",
        "cp",
        "--",
        "sh",
        "-c",
        "mount -o remount,rw /ro 2>/dev/null; echo evil > /ro/keep.txt || exit 3",
    ]);
    assert_eq!(refused.status.code(), Some(3), "{}", stderr(&refused));
    let out = env.run(["vm", "sync", "cp", "/ro"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("read-only"), "{}", stderr(&out));

    // Reading changes nothing: the copy is not "unsynced" (the guest mounts it noatime).
    assert_eq!(unsynced(&env), Some(false), "{}", env.vm_json("cp"));

    // Guest -> host with `vm sync`: changed and new files come back, owned by the owner;
    // what only the host has stays (no --delete).
    guest(
        "echo changed > /src/hello.txt && mkdir -p /src/sub && echo made > /src/sub/new.txt \
         && rm '/src/host-only.txt'",
    );
    wait_unsynced(&env, true, "after the guest wrote");
    assert_eq!(
        std::fs::read_to_string(project.join("hello.txt")).unwrap(),
        "from the host\n",
        "nothing reaches the host before a sync"
    );
    let synced = env.ok(["vm", "sync", "cp"]);
    assert!(synced.contains("/src -> "), "{synced}");
    assert_eq!(unsynced(&env), Some(false), "a whole sync clears it");
    assert_eq!(
        std::fs::read_to_string(project.join("hello.txt")).unwrap(),
        "changed\n"
    );
    assert_eq!(
        std::fs::read_to_string(project.join("sub/new.txt")).unwrap(),
        "made\n"
    );
    assert!(
        project.join("host-only.txt").exists(),
        "kept without --delete"
    );
    let me = nix::unistd::geteuid().as_raw();
    for path in [project.join("hello.txt"), project.join("sub/new.txt")] {
        assert_eq!(
            std::fs::metadata(&path).unwrap().uid(),
            me,
            "{}",
            path.display()
        );
    }
    assert_eq!(
        std::fs::read_link(project.join("etc-link")).unwrap(),
        Path::new("/etc")
    );
    env.ok(["vm", "sync", "--delete", "cp", "/src"]);
    assert!(!project.join("host-only.txt").exists(), "--delete");

    // A hostile guest: a symlink out of the share, then a device node. Each refuses the
    // whole sync, and nothing on the host changes.
    let before = listing(host.path());
    for (script, why) in [
        (
            "echo new > /src/innocent.txt && ln -s ../../../../../etc /src/sub/escape",
            "outside the shared directory",
        ),
        (
            "rm /src/sub/escape && mknod /src/disk b 8 0",
            "only files, directories and symlinks",
        ),
    ] {
        guest(script);
        let out = env.run(["vm", "sync", "cp"]);
        assert!(!out.status.success(), "{script}: accepted");
        assert!(stderr(&out).contains(why), "{script}: {}", stderr(&out));
        assert_eq!(listing(host.path()), before, "{script}: the host changed");
    }

    // The next start copies the host directory in afresh: a stop with changes nobody
    // synced back says so, naming the share and the sync command.
    guest("rm /src/disk");
    std::fs::write(project.join("hello.txt"), "edited on the host\n").unwrap();
    let stopped = env.run(["vm", "stop", "cp"]);
    assert!(stopped.status.success(), "{}", stderr(&stopped));
    let warned = stderr(&stopped);
    assert!(
        warned.contains("copy-in share /src") && warned.contains("banger vm sync cp"),
        "{warned}"
    );
    assert!(
        !warned.contains("/ro"),
        "read-only copies never warn: {warned}"
    );
    env.ok(["vm", "start", "cp"]);
    assert_eq!(unsynced(&env), Some(false), "a start is a fresh copy");
    assert_eq!(guest("cat /src/hello.txt"), "edited on the host\n");
    assert_eq!(guest("test -e /src/innocent.txt || echo gone"), "gone\n");
    // A stop after a clean sync does not warn.
    guest("echo again > /src/again.txt");
    env.ok(["vm", "sync", "cp"]);
    let stopped = env.run(["vm", "stop", "cp"]);
    assert!(
        !stderr(&stopped).contains("warning"),
        "{}",
        stderr(&stopped)
    );
    env.ok(["vm", "start", "cp"]);
    // rm of a VM whose copy the guest changed warns too.
    guest("echo late > /src/late.txt");
    wait_unsynced(&env, true, "before rm");
    let removed = env.run(["vm", "rm", "-f", "cp"]);
    assert!(removed.status.success(), "{}", stderr(&removed));
    assert!(
        stderr(&removed).contains("copy-in share /src"),
        "{}",
        stderr(&removed)
    );
    assert!(
        project.join("hello.txt").exists(),
        "rm never touches a share"
    );
    assert!(!project.join("late.txt").exists());

    // `vm run --rm --sync` brings the guest's changes back before removing the VM.
    let out = env.run([
        "vm",
        "run",
        "--rm",
        "--sync",
        "-v",
        &format!("{}:/src:copy", project.display()),
        "--",
        "sh",
        "-c",
        "echo from the run > /src/run.txt",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(project.join("run.txt")).unwrap(),
        "from the run\n"
    );
    assert_eq!(stdout(&env.run(["vm", "ls", "-q"])).trim(), "", "removed");
}

/// Whether VM `cp`'s first share (`/src`) is reported unsynced.
fn unsynced(env: &Env) -> Option<bool> {
    let vm = env.vm_json("cp");
    let share = &vm["shares"][0];
    (share["guest"] == "/src").then(|| share["unsynced"] == true)
}

/// Wait (the guest's kernel commits its journal every 5 seconds) until `/src`'s unsynced
/// flag is `want`.
fn wait_unsynced(env: &Env, want: bool, when: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while unsynced(env) != Some(want) {
        assert!(
            std::time::Instant::now() < deadline,
            "{when}: /src never became unsynced={want}: {}",
            env.vm_json("cp")
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

/// `GET /vm/config` from the (fake) Firecracker API socket `socket` (the server keeps the
/// connection open: read the head, then `Content-Length` bytes).
fn firecracker_config(socket: &Path) -> serde_json::Value {
    let mut s = std::os::unix::net::UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    s.write_all(b"GET /vm/config HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    while !answer.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).unwrap();
        answer.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&answer).to_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Content-Length: {head}"));
    let mut body = vec![0u8; length];
    s.read_exact(&mut body).unwrap();
    serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{e}: {head}"))
}

#[test]
fn firecracker_vms_get_copies_and_say_so() {
    let env = Env::new().unwrap_or_else(|e| panic!("cannot set up an e2e environment: {e:#}"));
    env.use_fake_firecracker("1.14.1")
        .unwrap_or_else(|e| panic!("cannot set up the fake Firecracker: {e:#}"));
    let host = tempfile::Builder::new()
        .prefix("bgcopy")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::write(host.path().join("a.txt"), "a\n").unwrap();
    let src = host.path().to_str().unwrap();

    // `-v` without a mode: a copy (the default fallback), and the output says why.
    let out = env.run([
        "vm",
        "create",
        "--name",
        "fc",
        "-v",
        &format!("{src}:/src"),
        "-v",
        &format!("{src}:/ro:ro"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("-> /src: copy ("), "{}", stderr(&out));
    env.ok(["vm", "start", "fc"]);
    let vm = env.vm_json("fc");
    let dir = Path::new(vm["dir"].as_str().unwrap());
    let config = firecracker_config(&dir.join("firecracker.sock"));
    let drives = config["drives"].as_array().unwrap();
    let drive = |id: &str| {
        drives
            .iter()
            .find(|d| d["drive_id"] == id)
            .unwrap_or_else(|| panic!("no drive {id}: {config}"))
    };
    assert_eq!(drive("share0")["is_read_only"], false, "{config}");
    assert_eq!(drive("share1")["is_read_only"], true, "{config}");
    // Relative to the VM's directory (Firecracker's working directory), where the link
    // resolves to the share's image: a restored clone would reopen its own.
    assert_eq!(drive("share1")["path_on_host"], "fc-drives/share1");
    assert_eq!(
        std::fs::read_link(dir.join("fc-drives/share1")).unwrap(),
        dir.join("share1.ext4")
    );
    let args = config["boot-source"]["boot_args"]
        .as_str()
        .unwrap_or_default();
    assert!(
        args.contains("banger.shares=bangercp0:copy-rw:/src,bangercp1:copy-ro:/ro"),
        "{args}"
    );
    env.ok(["vm", "rm", "-f", "fc"]);

    // Live sharing is impossible here: asked for, it is refused; `fallback = "refuse"`
    // refuses `-v` too. Nothing is created.
    let out = env.run([
        "vm",
        "create",
        "--name",
        "live",
        "-v",
        &format!("{src}:/src:live"),
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("Firecracker has neither"),
        "{}",
        stderr(&out)
    );
    let wrapper = env.config_dir().join("config.toml");
    let mut config = std::fs::read_to_string(&wrapper).unwrap();
    config.push_str("\n[shares]\nfallback = \"refuse\"\n");
    std::fs::write(&wrapper, config).unwrap();
    env.ok(["daemon", "stop"]);
    let out = env.run([
        "vm",
        "create",
        "--name",
        "refused",
        "-v",
        &format!("{src}:/src"),
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains(":copy"), "{}", stderr(&out));
    assert_eq!(env.ok(["vm", "ls", "-q"]).trim(), "");
}

#[test]
fn a_share_the_guest_cannot_mount_fails_the_start_with_its_reason() {
    let env = Env::new().unwrap_or_else(|e| panic!("cannot set up an e2e environment: {e:#}"));
    let host = tempfile::Builder::new()
        .prefix("bgcopy")
        .tempdir_in("/tmp")
        .unwrap();
    // `/data/sub` is mounted inside the read-only `/data`, which has no `sub`: the guest
    // cannot make the mountpoint, and the command must not run against nothing.
    let data = host.path().join("data");
    let sub = host.path().join("sub");
    std::fs::create_dir(&data).unwrap();
    std::fs::create_dir(&sub).unwrap();
    let out = env.run([
        "vm",
        "run",
        "--rm",
        "--name",
        "bad",
        "-v",
        &format!("{}:/data:ro,copy", data.display()),
        "-v",
        &format!("{}:/data/sub:copy", sub.display()),
        "--",
        "echo",
        "ran",
    ]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(!banger_e2e::stdout(&out).contains("ran"));
    let said = stderr(&out);
    assert!(
        said.contains("could not mount its shared directories") && said.contains("/data/sub"),
        "{said}"
    );
}
