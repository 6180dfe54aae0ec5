//! End to end: `banger vm cp` between the host and a real guest (minimal image: nothing in
//! the guest but busybox and the agent, which does the copying). Files and directories both
//! ways, modes kept, docker cp's naming rule, tar streams on stdin and stdout.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;

use banger_e2e::{Env, stdout};

#[test]
fn files_and_directories_both_ways_with_modes() {
    let env = Env::new().unwrap_or_else(|e| panic!("cannot set up an e2e environment: {e:#}"));
    env.ok(["vm", "run", "-d", "--name", "box"]);
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("proj");
    std::fs::create_dir_all(tree.join("bin")).unwrap();
    std::fs::write(tree.join("bin/run.sh"), "#!/bin/sh\necho ran\n").unwrap();
    std::fs::set_permissions(
        tree.join("bin/run.sh"),
        std::fs::Permissions::from_mode(0o750),
    )
    .unwrap();
    let big: Vec<u8> = (0..2_000_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(tree.join("big.bin"), &big).unwrap();

    // Into an existing directory, keeping the name; the mode survives.
    env.ok(["vm", "cp", tree.to_str().unwrap(), "box:/tmp"]);
    let guest = |script: &str| env.ok(["vm", "exec", "box", "--", "sh", "-c", script]);
    assert_eq!(guest("/tmp/proj/bin/run.sh"), "ran\n");
    assert_eq!(guest("stat -c %a /tmp/proj/bin/run.sh").trim(), "750");
    assert_eq!(guest("wc -c < /tmp/proj/big.bin").trim(), "2000000");
    // As a new name.
    env.ok([
        "vm",
        "cp",
        tree.join("big.bin").to_str().unwrap(),
        "box:/tmp/renamed.bin",
    ]);
    assert_eq!(
        guest("cmp /tmp/renamed.bin /tmp/proj/big.bin && echo same"),
        "same\n"
    );

    // Back to the host.
    let back = dir.path().join("back");
    env.ok(["vm", "cp", "box:/tmp/proj", back.to_str().unwrap()]);
    assert_eq!(std::fs::read(back.join("big.bin")).unwrap(), big);
    let mode = std::fs::metadata(back.join("bin/run.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o750);
    guest("hostname > /tmp/name");
    env.ok(["vm", "cp", "box:/tmp/name", dir.path().to_str().unwrap()]);
    let name = std::fs::read_to_string(dir.path().join("name")).unwrap();
    assert_eq!(name.trim(), "box");

    // Tar streams: `-` on either side.
    let out = env
        .cmd(["vm", "cp", "box:/tmp/proj/bin", "-"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success());
    let listed = tar_list(&out.stdout);
    assert!(
        listed.iter().any(|n| n.ends_with("bin/run.sh")),
        "{listed:?}"
    );
    let stream = env.run_with_stdin(["vm", "cp", "-", "box:/root"], &out.stdout);
    assert!(
        stream.status.success(),
        "{}",
        String::from_utf8_lossy(&stream.stderr)
    );
    assert_eq!(guest("/root/bin/run.sh"), "ran\n");

    // Errors name what is wrong.
    let missing = env.run([
        "vm",
        "cp",
        "box:/no/such/file",
        dir.path().to_str().unwrap(),
    ]);
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("/no/such/file"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
    let relative = env.run(["vm", "cp", "box:etc", dir.path().to_str().unwrap()]);
    assert!(!relative.status.success());
    let _ = stdout(&relative);
}

/// What real tools and real guests hand `vm cp` besides a packed tree: GNU tar's stream of a
/// directory's contents, procfs files (size 0, content after), a file appended to while it
/// is copied, a destination ending in `/`, directory modification times, a file with holes,
/// the guest's `/`.
#[test]
fn tool_streams_pseudo_files_and_growing_files() {
    let env = Env::new().unwrap_or_else(|e| panic!("cannot set up an e2e environment: {e:#}"));
    env.ok(["vm", "run", "-d", "--name", "box"]);
    let guest = |script: &str| env.ok(["vm", "exec", "box", "--", "sh", "-c", script]);
    let dir = tempfile::tempdir().unwrap();

    // `tar -C src -c .` into an existing guest directory: its contents land there.
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("sub/f"), "x").unwrap();
    let tar = std::process::Command::new("tar")
        .arg("-C")
        .arg(&src)
        .args(["-cf", "-", "."])
        .output()
        .unwrap();
    assert!(tar.status.success());
    guest("mkdir -p /srv/app");
    let put = env.run_with_stdin(["vm", "cp", "-", "box:/srv/app"], &tar.stdout);
    assert!(
        put.status.success(),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
    assert_eq!(guest("cat /srv/app/sub/f"), "x");

    // procfs: packed as read, not as stat says.
    env.ok([
        "vm",
        "cp",
        "box:/proc/cpuinfo",
        dir.path().to_str().unwrap(),
    ]);
    let cpuinfo = std::fs::read_to_string(dir.path().join("cpuinfo")).unwrap();
    assert!(cpuinfo.contains("processor"), "{cpuinfo:?}");

    // A log written to all through the copy.
    guest(
        "head -c 200000 /dev/urandom > /tmp/log; (while :; do echo line >> /tmp/log; done) >/dev/null 2>&1 &",
    );
    env.ok(["vm", "cp", "box:/tmp/log", dir.path().to_str().unwrap()]);
    assert!(std::fs::metadata(dir.path().join("log")).unwrap().len() >= 200_000);

    // A directory keeps its modification time.
    guest(
        "mkdir -p /tmp/old/in && touch /tmp/old/in/f && touch -d '2001-02-03 04:05:06' /tmp/old/in /tmp/old",
    );
    env.ok(["vm", "cp", "box:/tmp/old", dir.path().to_str().unwrap()]);
    use std::os::unix::fs::MetadataExt;
    for d in ["old", "old/in"] {
        let mtime = std::fs::metadata(dir.path().join(d)).unwrap().mtime();
        assert_eq!(mtime, 981_173_106, "{d}");
    }

    // A file with holes keeps them both ways (`truncate -s 64M f; echo x >> f`), and
    // crosses as its data.
    let disk = dir.path().join("disk.img");
    let size = 64u64 << 20;
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::create(&disk).unwrap();
        f.set_len(size).unwrap();
        f.write_at(b"x\n", size).unwrap();
    }
    env.ok(["vm", "cp", disk.to_str().unwrap(), "box:/tmp/disk.img"]);
    let kib = |du: String| {
        du.split_whitespace()
            .next()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    assert_eq!(
        guest("wc -c < /tmp/disk.img").trim(),
        (size + 2).to_string()
    );
    assert_eq!(guest("tail -c 2 /tmp/disk.img"), "x\n");
    assert!(kib(guest("du -k /tmp/disk.img")) < 1024);
    let back = dir.path().join("disk-back.img");
    env.ok(["vm", "cp", "box:/tmp/disk.img", back.to_str().unwrap()]);
    assert_eq!(std::fs::read(&back).unwrap(), std::fs::read(&disk).unwrap());
    assert!(std::fs::metadata(&back).unwrap().blocks() * 512 < 1 << 20);

    // The guest's whole filesystem is refused, saying what to copy instead.
    let root = env.run(["vm", "cp", "box:/", dir.path().to_str().unwrap()]);
    assert!(!root.status.success());
    let said = String::from_utf8_lossy(&root.stderr);
    assert!(
        said.contains("whole filesystem") && said.contains("/etc"),
        "{said}"
    );

    // A file to a missing `name/` is refused, in both directions; nothing is made.
    let to_host = dir.path().join("newdir/");
    let out = env.run(["vm", "cp", "box:/etc/hostname", to_host.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(!dir.path().join("newdir").exists());
    let file = src.join("sub/f");
    let out = env.run(["vm", "cp", file.to_str().unwrap(), "box:/tmp/newdir/"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not exist"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        guest("test -e /tmp/newdir && echo made || echo none"),
        "none\n"
    );
}

fn tar_list(stream: &[u8]) -> Vec<String> {
    let mut archive = tar::Archive::new(stream);
    archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect()
}
