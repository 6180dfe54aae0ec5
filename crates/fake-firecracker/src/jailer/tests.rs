#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn args(dir: &Path, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "--id",
        "vm-1",
        "--exec-file",
        dir.join("firecracker").to_str().unwrap(),
        "--uid",
        "1000",
        "--gid",
        "1000",
        "--chroot-base-dir",
        dir.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

fn with_exec(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(name), b"#!/bin/true\n").unwrap();
    dir
}

/// A full command line parses; the chroot is `<base>/<exec name>/<id>/root`.
#[test]
fn the_contract_command_line_parses() {
    let dir = with_exec("firecracker");
    let a = parse(&args(
        dir.path(),
        &[
            "--cgroup-version",
            "1",
            "--cgroup",
            "pids.max=64",
            "--new-pid-ns",
            "--",
            "--api-sock",
            "/a",
        ],
    ))
    .unwrap();
    assert_eq!(a.chroot_dir(), dir.path().join("firecracker/vm-1/root"));
    assert_eq!(a.cgroups, vec![("pids.max".into(), "64".into())]);
    assert!(a.new_pid_ns && !a.daemonize);
    assert_eq!(a.extra, vec!["--api-sock", "/a"]);
}

/// Everything the real jailer refuses, refused with its reason.
#[test]
fn what_the_real_jailer_refuses_is_refused() {
    let dir = with_exec("firecracker");
    let d = dir.path();
    let refused = |argv: Vec<String>, needle: &str| {
        let e = parse(&argv).unwrap_err();
        assert!(e.contains(needle), "{argv:?}: {e}");
    };
    let mut bad_id = args(d, &[]);
    for id in ["", "a/b", "a b", "x.y", &"a".repeat(65)] {
        bad_id[1] = id.to_owned();
        refused(bad_id.clone(), "Invalid instance ID");
    }
    let mut relative = args(d, &[]);
    relative[3] = "firecracker".into();
    refused(relative, "not absolute");
    let mut missing = args(d, &[]);
    missing[3] = d.join("nope-firecracker").to_str().unwrap().into();
    refused(missing, "No such file");
    let other = with_exec("qemu");
    let mut wrong_name = args(other.path(), &[]);
    wrong_name[3] = other.path().join("qemu").to_str().unwrap().into();
    refused(wrong_name, "must contain \"firecracker\"");
    let mut base = args(d, &[]);
    base[9] = d.join("absent").to_str().unwrap().into();
    refused(base, "No such file");
    let mut base = args(d, &[]);
    base[9] = "relative/base".into();
    refused(base, "not absolute");
    refused(args(d, &["--netns", "/nonexistent/netns"]), "No such file");
    refused(
        args(d, &["--cgroup-version", "3"]),
        "Invalid cgroup version",
    );
    refused(
        args(d, &["--cgroup", "nonsense"]),
        "Invalid format for cgroups",
    );
    refused(
        args(d, &["--parent-cgroup", "../up"]),
        "Invalid parent cgroup",
    );
    refused(args(d, &["--bogus"]), "wasn't expected");
    refused(args(d, &[])[2..].to_vec(), "Missing mandatory argument: id");
}

/// The real jailer takes `<controller>.<property>` only: `memory.swap.max` is refused.
#[test]
fn a_cgroup_file_with_two_dots_is_refused() {
    let dir = with_exec("firecracker");
    let e = parse(&args(dir.path(), &["--cgroup", "memory.swap.max=0"])).unwrap_err();
    assert!(e.contains("Invalid cgroup file"), "{e}");
    parse(&args(dir.path(), &["--cgroup", "memory.max=1"])).unwrap();
}
