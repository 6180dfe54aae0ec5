//! Shares through the lifecycle, against the fake driver: stored at create, listed by
//! inspect, kept across stop/start; refused before anything is made when wrong.

use banger_api::{CreateVmRequest, ShareRequest, StopVmRequest};
use banger_system::progress::NoProgress;

use crate::testing::{Harness, request};

fn share(host: &std::path::Path, guest: &str, read_only: bool) -> ShareRequest {
    ShareRequest {
        host: host.to_str().unwrap().to_string(),
        guest: guest.to_string(),
        read_only,
        mode: banger_api::ShareMode::Auto,
    }
}

/// [`share`] copied in at every start (`mode=copy`).
fn copy_share(host: &std::path::Path, guest: &str, read_only: bool) -> ShareRequest {
    ShareRequest {
        mode: banger_api::ShareMode::Copy,
        ..share(host, guest, read_only)
    }
}

/// A host directory to share, under /tmp (short paths: the share's socket lives beside it).
fn host_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/tmp")
        .unwrap()
}

#[test]
fn shares_are_stored_listed_and_kept_across_a_restart() {
    let harness = Harness::new();
    let inc = harness.start();
    let host = host_dir("bgsh");
    let link = host.path().join("link");
    std::os::unix::fs::symlink(host.path(), &link).unwrap();
    let req = CreateVmRequest {
        shares: vec![
            share(&link, "/src/", false),
            share(host.path(), "/ro", true),
        ],
        ..request("s", true)
    };
    inc.block_on(crate::vms::create(&inc.daemon, req, &NoProgress))
        .unwrap_or_else(|e| panic!("create: {} ({:?})", e.message, e.hint));
    let listed =
        |inc: &crate::testing::Incarnation| crate::vms::get(&inc.daemon, "s").unwrap().shares;
    let shares = listed(&inc);
    let real = std::fs::canonicalize(host.path()).unwrap();
    assert_eq!(shares.len(), 2);
    assert_eq!(shares[0].host, real.to_str().unwrap(), "links resolved");
    assert_eq!(shares[0].guest, "/src", "normalised");
    assert!(!shares[0].read_only && shares[1].read_only);
    assert_eq!(shares[0].mode, "virtio-fs");
    let id = crate::vms::lookup(&inc.daemon, "s").unwrap().id;
    assert!(inc.daemon.store().vm_has_shares(&id).unwrap());

    inc.block_on(crate::vms::stop(
        &inc.daemon,
        "s",
        StopVmRequest::default(),
        &NoProgress,
    ))
    .unwrap();
    drop(inc);
    let inc = harness.start();
    inc.block_on(crate::vms::start(&inc.daemon, "s", &NoProgress))
        .unwrap();
    assert_eq!(listed(&inc), shares);
}

#[test]
fn bad_shares_create_nothing() {
    let harness = Harness::new();
    let inc = harness.start();
    let host = host_dir("bgsh");
    for (shares, wanted) in [
        (vec![share(host.path(), "relative", false)], "not absolute"),
        (
            vec![share(&harness.layout.state_dir, "/s", false)],
            "banger's own directory",
        ),
        (
            vec![
                share(host.path(), "/a", false),
                share(host.path(), "/a/", true),
            ],
            "shared twice",
        ),
        (
            (0..9)
                .map(|i| share(host.path(), &format!("/s{i}"), false))
                .collect(),
            "at most 8",
        ),
    ] {
        let req = CreateVmRequest {
            shares,
            ..request("bad", false)
        };
        let err = inc
            .block_on(crate::vms::create(&inc.daemon, req, &NoProgress))
            .expect_err("refused");
        assert!(err.message.contains(wanted), "{wanted}: {}", err.message);
        assert_eq!(err.field.as_deref(), Some("shares"));
    }
    assert!(crate::vms::list(&inc.daemon).unwrap().is_empty());
}

#[test]
fn copy_shares_are_copied_into_a_drive_at_every_start() {
    let harness = Harness::new();
    let inc = harness.start();
    let host = host_dir("bgcp");
    std::fs::write(host.path().join("hello.txt"), b"from the host\n").unwrap();
    let req = CreateVmRequest {
        shares: vec![copy_share(host.path(), "/src", true)],
        ..request("c", true)
    };
    let created = inc
        .block_on(crate::vms::create(&inc.daemon, req, &NoProgress))
        .unwrap_or_else(|e| panic!("create: {} ({:?})", e.message, e.hint));
    assert_eq!(
        created.shares.len(),
        1,
        "create says how each share is served"
    );
    assert_eq!(created.shares[0].mode, "copy");
    assert!(
        created.shares[0]
            .note
            .as_deref()
            .unwrap()
            .contains("read-only")
    );
    let vm = crate::vms::lookup(&inc.daemon, "c").unwrap();
    let image = super::copy::image_path(&vm.dir, 0);
    let listing = std::process::Command::new("debugfs")
        .args(["-R", "cat /hello.txt"])
        .arg(&image)
        .output()
        .expect("debugfs (e2fsprogs) is installed");
    assert_eq!(String::from_utf8_lossy(&listing.stdout), "from the host\n");
    assert!(!vm.dir.join("share0.ext4.tmp").exists());

    // A host edit reaches the next boot's copy.
    std::fs::write(host.path().join("hello.txt"), b"edited\n").unwrap();
    inc.block_on(crate::vms::stop(
        &inc.daemon,
        "c",
        StopVmRequest::default(),
        &NoProgress,
    ))
    .unwrap();
    inc.block_on(crate::vms::start(&inc.daemon, "c", &NoProgress))
        .unwrap();
    let listing = std::process::Command::new("debugfs")
        .args(["-R", "cat /hello.txt"])
        .arg(&image)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&listing.stdout), "edited\n");
}

#[test]
fn copies_over_the_cap_are_refused_naming_the_directory() {
    let config = banger_config::Config {
        shares: banger_config::SharesConfig {
            copy_max_bytes: Some(1 << 20),
            fallback: None,
        },
        ..Default::default()
    };
    let harness = Harness::with_config(config);
    let inc = harness.start();
    let host = host_dir("bgcp");
    std::fs::write(host.path().join("big"), vec![1u8; 2 << 20]).unwrap();
    let req = CreateVmRequest {
        shares: vec![copy_share(host.path(), "/src", false)],
        ..request("big", false)
    };
    let err = inc
        .block_on(crate::vms::create(&inc.daemon, req, &NoProgress))
        .expect_err("refused");
    assert!(
        err.message.contains("over the copy-in limit"),
        "{}",
        err.message
    );
    assert!(
        err.message.contains(host.path().to_str().unwrap()),
        "{}",
        err.message
    );
    assert!(crate::vms::list(&inc.daemon).unwrap().is_empty());
}

/// A fresh copy is not unsynced (its journal is where mkfs left it); only read-write
/// copies can be marked synced, and a mark sticks until the next start.
#[test]
fn sync_marks_apply_to_read_write_copies_only() {
    let harness = Harness::new();
    let inc = harness.start();
    let host = host_dir("bgsy");
    let req = CreateVmRequest {
        shares: vec![
            copy_share(host.path(), "/src", false),
            copy_share(host.path(), "/ro", true),
            share(host.path(), "/live", false),
        ],
        ..request("y", true)
    };
    inc.block_on(crate::vms::create(&inc.daemon, req, &NoProgress))
        .unwrap_or_else(|e| panic!("create: {} ({:?})", e.message, e.hint));
    let shares = crate::vms::get(&inc.daemon, "y").unwrap().shares;
    assert!(shares.iter().all(|s| !s.unsynced), "{shares:?}");
    let vm = crate::vms::lookup(&inc.daemon, "y").unwrap();
    for bad in ["/ro", "/live", "/nowhere"] {
        let err = super::unsynced::mark_synced(&inc.daemon, &vm, &[bad.to_string()]).unwrap_err();
        assert!(
            err.message.contains("no read-write copy-in share"),
            "{bad}: {}",
            err.message
        );
    }
    super::unsynced::mark_synced(&inc.daemon, &vm, &["/src".to_string()]).unwrap();
    assert_eq!(
        inc.daemon.store().shares_synced(&vm.id).unwrap(),
        vec![(0, banger_images::ext4::journal::FRESH)]
    );
    inc.block_on(crate::vms::stop(
        &inc.daemon,
        "y",
        StopVmRequest::default(),
        &NoProgress,
    ))
    .unwrap();
    inc.block_on(crate::vms::start(&inc.daemon, "y", &NoProgress))
        .unwrap();
    assert!(inc.daemon.store().shares_synced(&vm.id).unwrap().is_empty());
}
