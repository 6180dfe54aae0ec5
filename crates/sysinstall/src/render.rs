//! The unit files and install.toml as pure functions of an [`InstallPlan`].

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::hardening::{Directive, daemon_hardening, helper_hardening};
use crate::jail::{CGROUP_TREE_WRITABLE, HelperUnit};
use crate::plan::InstallPlan;

/// One file the install consists of, rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub path: PathBuf,
    pub text: String,
}

/// Everything an install writes besides the binaries, in the order it is written:
/// install.toml last, since it is what marks the host as a system install.
pub fn render_all(plan: &InstallPlan) -> Result<Vec<Rendered>, crate::SysInstallError> {
    plan.validate()?;
    let meta = plan
        .meta()
        .to_toml()
        .map_err(|source| crate::SysInstallError::Serialize { source })?;
    Ok(vec![
        Rendered {
            path: plan.helper_unit(),
            text: helper_unit(plan),
        },
        Rendered {
            path: plan.daemon_unit(),
            text: daemon_unit(plan),
        },
        Rendered {
            path: plan.install_toml(),
            text: meta,
        },
    ])
}

/// A directory a unit writes to, and who creates it: systemd, when it lies under the
/// base it manages for that kind (`RuntimeDirectory=` under `/run`, `StateDirectory=`
/// under `/var/lib`); otherwise (a moved root) the installer, and the unit names it in
/// `ReadWritePaths=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManagedDir {
    /// `Kind=relative` plus `KindMode=`.
    Systemd {
        kind: &'static str,
        relative: String,
    },
    /// Created by the installer with this owner and mode.
    Installer,
}

pub fn managed_dir(kind: &'static str, path: &Path) -> ManagedDir {
    let base = match kind {
        "RuntimeDirectory" => "/run",
        _ => "/var/lib",
    };
    match path.strip_prefix(base) {
        Ok(rel) if !rel.as_os_str().is_empty() => ManagedDir::Systemd {
            kind,
            relative: rel.display().to_string(),
        },
        _ => ManagedDir::Installer,
    }
}

fn dir_lines(out: &mut String, kind: &'static str, path: &Path, mode: &str, preserve: bool) {
    match managed_dir(kind, path) {
        ManagedDir::Systemd { kind, relative } => {
            let _ = writeln!(out, "{kind}={relative}");
            let _ = writeln!(out, "{kind}Mode={mode}");
            if preserve {
                // A restart keeps the directory (the daemon's lock and socket are remade).
                let _ = writeln!(out, "{kind}Preserve=restart");
            }
        }
        ManagedDir::Installer => {
            let _ = writeln!(out, "ReadWritePaths={}", path.display());
        }
    }
}

fn hardening_lines(out: &mut String, list: &[Directive]) {
    out.push_str("\n# Hardening (banger doctor checks every line below)\n");
    for d in list {
        let _ = writeln!(out, "# {}\n{}", d.why, d.line());
    }
}

const HEADER: &str = "# Written by `banger system install`; the next install overwrites changes here.\n\
                      # What each part may do: docs/privileges.md, \"System install\".\n";

pub fn helper_unit(plan: &InstallPlan) -> String {
    let mut out = String::from(HEADER);
    let what = if plan.jail.is_some() {
        "network plumbing and jailed Firecrackers"
    } else {
        "network plumbing"
    };
    let jail_args = plan.jail.as_ref().map_or(String::new(), |j| {
        format!(
            " --jailer {} --firecracker {}",
            j.jailer.display(),
            j.firecracker.display()
        )
    });
    let _ = write!(
        out,
        "[Unit]\n\
         Description=banger root helper: {what} for {owner}'s VMs\n\
         After=network.target\n\
         \n\
         [Service]\n\
         # Posture: {why}\n\
         Type=notify\n\
         NotifyAccess=main\n\
         ExecStart={bin} helper --socket {socket}{jail_args}\n\
         # The helper takes its one admitted uid from install.toml here.\n\
         Environment=BANGER_ETC_DIR={etc}\n\
         Environment=HOME=/root\n\
         Restart=on-failure\n\
         RestartSec=1s\n",
        owner = plan.owner_user,
        why = plan.posture_why,
        bin = plan.banger_bin().display(),
        socket = plan.helper_socket().display(),
        etc = plan.etc_dir.display(),
    );
    // Root-owned and world-searchable: the socket inside is the owner's, mode 0600.
    dir_lines(
        &mut out,
        "RuntimeDirectory",
        &plan.helper_runtime_dir,
        "0755",
        false,
    );
    // ProtectControlGroups=yes keeps the rest of the tree read-only.
    out.push_str(
        "# Per-VM v1 cgroups below banger-<owner uid> (ensure_vm_cgroup, the jailer's), where\n\
         # the owner's daemon cannot make them (absent on a v2 host).\n",
    );
    for path in crate::jail::CGROUP_PATHS {
        let _ = writeln!(out, "ReadWritePaths={path}");
    }
    if plan.jail.is_some() {
        jail_lines(&mut out, plan);
    }
    hardening_lines(&mut out, &helper_hardening(plan.helper_kind()));
    out.push_str("\n[Install]\nWantedBy=multi-user.target\n");
    out
}

/// What a jailing helper writes, and why its jailed VMMs outlive it.
fn jail_lines(out: &mut String, plan: &InstallPlan) {
    let state_dir = &plan.state_dir;
    out.push_str(
        "# Jailed Firecrackers are the helper's children: stopping or restarting it leaves\n\
         # them running (the owner's daemon drives and stops them).\n\
         KillMode=process\n",
    );
    if let Some(mount) = crate::jail::jail_mount(state_dir) {
        let _ = writeln!(
            out,
            "# The jailer's chroots ({jails}) and the owner's state, on one mount: the \n\
             # helper hard-links each VM's files into its chroot, which two mounts would refuse.\n\
             ReadWritePaths={mount}",
            jails = banger_paths::jail_root(state_dir).display(),
            mount = mount.display()
        );
    }
    match plan.cgroup {
        Some(layout) => {
            let _ = writeln!(out, "# Made for cgroup layout {}.", layout.describe());
        }
        None => out.push_str("# Made for a host that mounted no cgroup hierarchy.\n"),
    }
    if plan.helper_kind() == HelperUnit::JailV2 {
        let _ = writeln!(
            out,
            "# The jailer writes +memory +pids into cgroup.subtree_control of every group from\n\
             # the unified tree's root down and makes banger-<owner uid> below the root, so\n\
             # the tree cannot be read-only here. It grants little: CAP_SYS_ADMIN and @mount,\n\
             # which the jailer needs anyway, could remount it (docs/privileges.md).\n\
             {CGROUP_TREE_WRITABLE}"
        );
    }
}

pub fn daemon_unit(plan: &InstallPlan) -> String {
    let mut out = String::from(HEADER);
    let _ = write!(
        out,
        "[Unit]\n\
         Description=banger owner daemon: {owner}'s VMs\n\
         Wants={helper}\n\
         After={helper} network.target\n\
         \n\
         [Service]\n\
         Type=notify\n\
         NotifyAccess=main\n\
         User={owner}\n\
         ExecStart={bin} daemon run\n\
         Environment=BANGER_ETC_DIR={etc}\n\
         Environment=BANGER_STATE_DIR={state}\n\
         Environment=BANGER_RUNTIME_DIR={runtime}\n\
         Environment=BANGER_CONFIG_DIR={config}\n\
         UMask=0077\n\
         # VMs outlive the daemon: stopping or restarting it leaves the VMMs running, and the\n\
         # next daemon finds them again.\n\
         KillMode=process\n\
         Restart=on-failure\n\
         RestartSec=1s\n",
        owner = plan.owner_user,
        helper = banger_paths::HELPER_SERVICE,
        bin = plan.banger_bin().display(),
        etc = plan.etc_dir.display(),
        state = plan.state_dir.display(),
        runtime = plan.runtime_dir.display(),
        config = plan.owner_config_dir.display(),
    );
    dir_lines(&mut out, "StateDirectory", &plan.state_dir, "0700", false);
    dir_lines(
        &mut out,
        "RuntimeDirectory",
        &plan.runtime_dir,
        "0700",
        true,
    );
    // The owner's config directory; `-`: it need not exist yet.
    let _ = writeln!(out, "ReadWritePaths=-{}", plan.owner_config_dir.display());
    if let Some(home) = &plan.owner_home {
        // Read-write shares of the owner's projects: each virtiofsd runs in this unit's
        // mount namespace, where ProtectHome=read-only would fail every guest write.
        out.push_str("# The owner's home: read-write shares (-v) write to it.\n");
        let _ = writeln!(out, "ReadWritePaths=-{}", home.display());
    }
    hardening_lines(&mut out, &daemon_hardening());
    out.push_str("\n[Install]\nWantedBy=multi-user.target\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::tests::plan;

    fn has(text: &str, line: &str) -> bool {
        text.lines().any(|l| l == line)
    }

    #[test]
    fn units_carry_exactly_the_planned_lines() {
        let p = plan();
        let helper = helper_unit(&p);
        let daemon = daemon_unit(&p);
        let cases: &[(&str, &str, bool)] = &[
            (&helper, "Type=notify", true),
            (
                &helper,
                "ExecStart=/usr/local/bin/banger helper --socket /run/banger-helper/helper.sock",
                true,
            ),
            (&helper, "RuntimeDirectory=banger-helper", true),
            (&helper, "RuntimeDirectoryMode=0755", true),
            (
                &helper,
                "CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW CAP_CHOWN CAP_DAC_OVERRIDE",
                true,
            ),
            (&helper, "ProtectHome=yes", true),
            (&helper, "User=al", false),
            (&daemon, "Type=notify", true),
            (&daemon, "User=al", true),
            (&daemon, "ExecStart=/usr/local/bin/banger daemon run", true),
            (&daemon, "StateDirectory=banger", true),
            (&daemon, "StateDirectoryMode=0700", true),
            (&daemon, "RuntimeDirectory=banger", true),
            (&daemon, "RuntimeDirectoryPreserve=restart", true),
            (&daemon, "ReadWritePaths=-/home/al/.config/banger", true),
            (&daemon, "ReadWritePaths=-/home/al", true),
            (&daemon, "KillMode=process", true),
            (&daemon, "ProtectHome=read-only", true),
            (&daemon, "CapabilityBoundingSet=", true),
            (&daemon, "MemoryDenyWriteExecute=yes", false),
        ];
        for (text, line, want) in cases {
            assert_eq!(has(text, line), *want, "{line}");
        }
        for d in helper_hardening(HelperUnit::Network) {
            assert!(has(&helper, &d.line()), "{}", d.line());
        }
        for absent in [
            "KillMode=process",
            "DevicePolicy=closed",
            "ReadWritePaths=/var/lib",
        ] {
            assert!(!has(&helper, absent), "{absent}");
        }
        assert!(!helper.contains("--jailer"));
        for d in daemon_hardening() {
            assert!(has(&daemon, &d.line()), "{}", d.line());
        }
    }

    /// A jailing helper runs the jailer with what it needs, and every line doctor checks.
    #[test]
    fn a_jailing_helper_unit_has_what_the_jailer_needs() {
        let helper = helper_unit(&crate::plan::tests::jail_plan());
        for line in [
            "ExecStart=/usr/local/bin/banger helper --socket /run/banger-helper/helper.sock \
             --jailer /usr/local/bin/jailer --firecracker /usr/local/bin/firecracker",
            "KillMode=process",
            "ReadWritePaths=/var/lib",
            "ReadWritePaths=-/sys/fs/cgroup/memory",
            "ReadWritePaths=-/sys/fs/cgroup/pids",
            "DevicePolicy=closed",
            "DeviceAllow=/dev/kvm rwm",
            "DeviceAllow=/dev/net/tun rwm",
            "DeviceAllow=/dev/urandom rwm",
            "RestrictNamespaces=mnt pid",
            "SystemCallFilter=@system-service @mount seccomp",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
        ] {
            assert!(has(&helper, line), "{line}\n{helper}");
        }
        for line in ["RestrictNamespaces=yes", "SystemCallFilter=@system-service"] {
            assert!(!has(&helper, line), "{line}");
        }
        for d in helper_hardening(HelperUnit::JailV1) {
            assert!(has(&helper, &d.line()), "{}", d.line());
        }
        assert!(has(&helper, "ProtectControlGroups=yes"));
        assert!(!has(&helper, "ProtectControlGroups=no"));
        assert!(helper.contains("# Made for cgroup layout v1 ("), "{helper}");
        assert_needs_met(&helper, &crate::plan::tests::jail_plan());
    }

    /// Every line doctor's "helper unit runs the jailer" needs is in `helper`, word for word.
    fn assert_needs_met(helper: &str, plan: &InstallPlan) {
        let jail = plan.jail.clone().unwrap();
        for need in crate::jail::jail_needs(&jail, &plan.state_dir, plan.cgroup) {
            let (key, words) = need.split_once('=').unwrap();
            let values: Vec<&str> = helper
                .lines()
                .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                .flat_map(str::split_whitespace)
                .collect();
            for word in words.split_whitespace() {
                assert!(values.contains(&word), "{key}: {word}");
            }
        }
    }

    /// On a pure v2 host (a stand-in mount table) the jailing helper's unit leaves the
    /// cgroup tree writable, once, saying why; everything else is the hybrid host's unit.
    #[test]
    fn a_jailing_helper_on_a_v2_host_leaves_the_cgroup_tree_writable() {
        let p = crate::plan::tests::unified_jail_plan();
        let helper = helper_unit(&p);
        let assignments: Vec<&str> = helper
            .lines()
            .filter(|l| l.starts_with("ProtectControlGroups="))
            .collect();
        assert_eq!(assignments, ["ProtectControlGroups=no"], "{helper}");
        assert!(helper.contains("# Made for cgroup layout v2 ("), "{helper}");
        assert!(helper.contains("cgroup.subtree_control"), "{helper}");
        for d in helper_hardening(HelperUnit::JailV2) {
            assert!(has(&helper, &d.line()), "{}", d.line());
        }
        assert_needs_met(&helper, &p);
        // Only that line (and comments) differ from the hybrid host's unit.
        let lines = |text: &str| -> Vec<String> {
            text.lines()
                .filter(|l| !l.starts_with('#'))
                .map(String::from)
                .collect()
        };
        let hybrid = lines(&helper_unit(&crate::plan::tests::jail_plan()));
        let unified = lines(&helper);
        let gone: Vec<&String> = hybrid.iter().filter(|l| !unified.contains(l)).collect();
        let added: Vec<&String> = unified.iter().filter(|l| !hybrid.contains(l)).collect();
        assert_eq!(gone, ["ProtectControlGroups=yes"]);
        assert_eq!(added, ["ProtectControlGroups=no"]);
        // The network-only helper keeps the tree read-only on a v2 host too.
        let network = InstallPlan {
            jail: None,
            ..p.clone()
        };
        assert!(has(&helper_unit(&network), "ProtectControlGroups=yes"));
        // install.toml records the layout the unit was made for.
        let files = render_all(&p).unwrap();
        assert!(
            files[2].text.lines().any(|l| l == "cgroup = \"v2\""),
            "{}",
            files[2].text
        );
    }

    #[test]
    fn a_moved_root_names_its_directories_instead() {
        let mut p = plan();
        p.state_dir = "/srv/x/state".into();
        p.runtime_dir = "/srv/x/run/banger".into();
        p.helper_runtime_dir = "/srv/x/run/banger-helper".into();
        let daemon = daemon_unit(&p);
        assert!(has(&daemon, "ReadWritePaths=/srv/x/state"));
        assert!(has(&daemon, "ReadWritePaths=/srv/x/run/banger"));
        assert!(!daemon.contains("StateDirectory="));
        assert!(has(
            &helper_unit(&p),
            "ReadWritePaths=/srv/x/run/banger-helper"
        ));
        assert_eq!(
            managed_dir("StateDirectory", Path::new("/var/lib")),
            ManagedDir::Installer
        );
    }

    #[test]
    fn install_toml_is_written_last_and_reads_back() {
        let files = render_all(&plan()).unwrap();
        assert_eq!(
            files.last().unwrap().path,
            PathBuf::from("/etc/banger/install.toml")
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("install.toml");
        std::fs::write(&path, &files[2].text).unwrap();
        let meta = banger_config::load_install_meta(&path).unwrap().unwrap();
        assert_eq!(meta, plan().meta());
    }

    #[test]
    fn rendering_refuses_a_plan_it_cannot_write_verbatim() {
        let mut p = plan();
        p.owner_config_dir = "/home/a b/.config/banger".into();
        assert!(render_all(&p).is_err());
    }
}
