//! A jailing helper's unit against a fake system install: what the jailer needs, on hybrid
//! and pure cgroup v2 hosts (stand-in mount tables).

use super::*;

/// Install a jailing helper in `host` (after [`install`]), rendered for `cgroup` as
/// `banger system install` does: its unit and install.toml; the binaries are stand-ins.
fn install_jailing(host: &FakeHost, cgroup: Option<CgroupLayout>) -> InstallPlan {
    let jail = banger_sysinstall::jail::JailBinaries {
        jailer: host.path("bin/jailer"),
        firecracker: host.path("bin/firecracker"),
    };
    for path in [&jail.jailer, &jail.firecracker] {
        std::fs::write(path, b"\x7fELF").unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let jail_plan = InstallPlan {
        jail: Some(jail),
        cgroup,
        ..plan("al")
    };
    let meta = banger_config::InstallMeta {
        owner_uid: uid(),
        unit_dir: None,
        state_dir: None,
        runtime_dir: None,
        ..jail_plan.meta()
    };
    std::fs::write(host.path("etc/install.toml"), meta.to_toml().unwrap()).unwrap();
    std::fs::write(
        host.path("systemd/banger-helper.service"),
        render::helper_unit(&jail_plan),
    )
    .unwrap();
    jail_plan
}

/// A helper installed to jail Firecracker: its unit passes with what the jailer needs, and
/// fails, naming what is missing, when a drop-in takes part of it away or the unit is the
/// network-only one while install.toml says it jails.
#[test]
fn a_jailing_helper_unit_is_checked_for_what_the_jailer_needs() {
    let host = FakeHost::new();
    let _sockets = install(&host);
    install_jailing(&host, layout(HYBRID));
    let unit = host.path("systemd/banger-helper.service");
    let checks = run(&host, &systemctl("active", "active"), &[]);
    let needs = find(&checks, "helper unit runs the jailer");
    assert_eq!(needs.status, Status::Pass, "{needs:#?}");
    assert_eq!(
        find(&checks, "helper unit hardening").status,
        Status::Pass,
        "{checks:#?}"
    );
    // Root-owned binaries only as root; otherwise the rows must fail.
    let want = if uid() == 0 {
        Status::Pass
    } else {
        Status::Fail
    };
    assert_eq!(find(&checks, "jailer binary ownership").status, want);

    // A drop-in that narrows the capabilities back to the network ones.
    let dropins = host.path("systemd/banger-helper.service.d");
    std::fs::create_dir(&dropins).unwrap();
    std::fs::write(
        dropins.join("narrow.conf"),
        "[Service]\nCapabilityBoundingSet=\nCapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW CAP_CHOWN CAP_DAC_OVERRIDE\n",
    )
    .unwrap();
    let checks = run(&host, &systemctl("active", "active"), &[]);
    let needs = find(&checks, "helper unit runs the jailer");
    assert_eq!(needs.status, Status::Fail);
    assert!(needs.summary.contains("CAP_SYS_ADMIN"), "{needs:#?}");
    assert!(!needs.summary.contains("CAP_CHOWN"), "{needs:#?}");
    std::fs::remove_dir_all(&dropins).unwrap();

    // The network-only unit while install.toml says the helper jails.
    std::fs::write(&unit, helper_unit()).unwrap();
    let checks = run(&host, &systemctl("active", "active"), &[]);
    let needs = find(&checks, "helper unit runs the jailer");
    assert_eq!(needs.status, Status::Fail);
    for word in ["--jailer", "KillMode=process", "RestrictNamespaces=mnt"] {
        assert!(needs.summary.contains(word), "{word}: {needs:#?}");
    }
    assert_eq!(find(&checks, "helper unit hardening").status, Status::Fail);
}

/// On a pure cgroup v2 host the jailing helper's unit must leave the cgroup tree writable:
/// the unit `banger system install` renders there passes both checks; a unit made on the
/// host when it was hybrid fails "runs the jailer", saying why and to install again; and a
/// v2 unit on a hybrid host fails the hardening check (it opens the tree for nothing).
#[test]
fn a_v2_host_needs_the_jailing_unit_that_leaves_the_cgroup_tree_writable() {
    let host = FakeHost::new();
    let _sockets = install(&host);
    let verdicts = |host: &FakeHost| {
        let checks = run(host, &systemctl("active", "active"), &[]);
        let needs = find(&checks, "helper unit runs the jailer").clone();
        let hardening = find(&checks, "helper unit hardening").clone();
        (needs, hardening)
    };

    // Rendered on the v2 host, for it.
    std::fs::write(host.path("mountinfo"), UNIFIED).unwrap();
    install_jailing(&host, layout(UNIFIED));
    let text = std::fs::read_to_string(host.path("etc/install.toml")).unwrap();
    assert!(text.lines().any(|l| l == "cgroup = \"v2\""), "{text}");
    let (needs, hardening) = verdicts(&host);
    assert_eq!(needs.status, Status::Pass, "{needs:#?}");
    assert!(
        needs.details.iter().any(|d| d.contains("pure v2")),
        "{needs:#?}"
    );
    assert_eq!(hardening.status, Status::Pass, "{hardening:#?}");

    // Rendered when the host was hybrid; the host has since moved to v2.
    install_jailing(&host, layout(HYBRID));
    let (needs, hardening) = verdicts(&host);
    assert_eq!(needs.status, Status::Fail, "{needs:#?}");
    assert!(
        needs.summary.contains("ProtectControlGroups=no"),
        "{needs:#?}"
    );
    let why = needs.details.join("\n");
    assert!(
        why.contains("pure v2") && why.contains("made for v1"),
        "{why}"
    );
    assert!(why.contains("cgroup.subtree_control"), "{why}");
    assert!(
        needs
            .hint
            .as_deref()
            .is_some_and(|h| h.contains("sudo banger system install --owner al")),
        "{needs:#?}"
    );
    // Its hardening is as installed: the jail check alone reports the layout.
    assert_eq!(hardening.status, Status::Pass, "{hardening:#?}");

    // An older install that recorded no layout says so.
    let meta = host.path("etc/install.toml");
    let text = std::fs::read_to_string(&meta).unwrap();
    std::fs::write(&meta, text.replace("cgroup = \"v1\"\n", "")).unwrap();
    let (needs, _) = verdicts(&host);
    assert!(
        needs.details.iter().any(|d| d.contains("older install")),
        "{needs:#?}"
    );

    // The v2 unit on a hybrid host: the tree is open for nothing.
    install_jailing(&host, layout(UNIFIED));
    std::fs::write(host.path("mountinfo"), HYBRID).unwrap();
    let (needs, hardening) = verdicts(&host);
    assert_eq!(needs.status, Status::Pass, "{needs:#?}");
    assert_eq!(hardening.status, Status::Fail, "{hardening:#?}");
    assert!(
        hardening.summary.contains("ProtectControlGroups=yes"),
        "{hardening:#?}"
    );

    // The network-only helper keeps the tree read-only on a v2 host too.
    std::fs::write(host.path("mountinfo"), UNIFIED).unwrap();
    std::fs::write(
        host.path("etc/install.toml"),
        format!("owner_user = \"al\"\nowner_uid = {}\n", uid()),
    )
    .unwrap();
    std::fs::write(host.path("systemd/banger-helper.service"), helper_unit()).unwrap();
    let checks = run(&host, &systemctl("active", "active"), &[]);
    let hardening = find(&checks, "helper unit hardening");
    assert_eq!(hardening.status, Status::Pass, "{hardening:#?}");
    assert!(
        helper_unit()
            .lines()
            .any(|l| l == "ProtectControlGroups=yes")
    );
    assert!(
        !checks
            .iter()
            .any(|c| c.name == "helper unit runs the jailer")
    );
}
