//! Whether the installed helper jails Firecracker: the posture `banger system install`
//! chooses, and why.
//!
//! With Firecracker and its `jailer` installed (root-owned, as the helper's launch checks
//! demand), the helper unit passes `--jailer`/`--firecracker` and gets what the jailer needs
//! ([`crate::hardening::helper_hardening`], [`jail_needs`]); without them the helper keeps
//! its network-only hardening. The choice is made once, here, and recorded in install.toml,
//! where `banger doctor` reads which unit to expect.

use std::path::{Path, PathBuf};

use banger_system::cgroup::CgroupLayout;

/// The two binaries a jailing helper runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JailBinaries {
    pub jailer: PathBuf,
    pub firecracker: PathBuf,
}

/// What the command line asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JailRequest {
    /// Jail when the owner's Firecracker (`firecracker_bin`, else `firecracker` on PATH)
    /// has a usable `jailer` beside it.
    Auto,
    /// Never: the helper does network plumbing only.
    Off,
    /// These binaries (the jailer defaults to `jailer` beside Firecracker); refused when
    /// unusable.
    Explicit {
        firecracker: PathBuf,
        jailer: Option<PathBuf>,
    },
}

/// The helper's posture and the reason it was chosen (printed by install and `--dry-run`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelperPosture {
    pub jail: Option<JailBinaries>,
    pub why: String,
}

/// Why an explicitly requested jail cannot be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot jail Firecracker with {}: {problem}; fix it, or install without --firecracker (the helper then does not jail)", path.display())]
pub struct JailUnusable {
    pub path: PathBuf,
    pub problem: String,
}

/// What the helper's unit is rendered for: which hardening it carries and what doctor
/// expects of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HelperUnit {
    /// Network plumbing only.
    Network,
    /// Jailing Firecracker on a host whose memory and pids controllers are on v1
    /// hierarchies (or that mounts no cgroups at all): the jailer writes only below those,
    /// and the rest of the tree stays read-only (`ProtectControlGroups=yes`).
    JailV1,
    /// Jailing Firecracker on a pure cgroup v2 host: the jailer writes `+memory +pids` into
    /// the `cgroup.subtree_control` of every group from the unified mount's root down and
    /// makes `banger-<uid>` below the root, so the unit leaves the tree writable
    /// (`ProtectControlGroups=no`).
    JailV2,
}

impl HelperUnit {
    /// The unit for a helper that jails (`jails`) on a host of layout `cgroup`.
    pub fn new(jails: bool, cgroup: Option<CgroupLayout>) -> HelperUnit {
        match (jails, cgroup) {
            (false, _) => HelperUnit::Network,
            (true, Some(CgroupLayout::V2)) => HelperUnit::JailV2,
            (true, _) => HelperUnit::JailV1,
        }
    }

    /// Whether the helper runs the jailer.
    pub fn jails(self) -> bool {
        self != HelperUnit::Network
    }

    /// Whether the unit leaves the cgroup tree writable.
    pub fn writes_cgroup_tree(self) -> bool {
        self == HelperUnit::JailV2
    }
}

/// The line a [`HelperUnit::JailV2`] unit has in place of `ProtectControlGroups=yes`.
pub const CGROUP_TREE_WRITABLE: &str = "ProtectControlGroups=no";

/// What the posture line adds about the host's cgroup `layout` for a helper `unit`
/// (printed by install and `--dry-run`; install.toml records the layout as `cgroup`).
pub fn cgroup_note(unit: HelperUnit, layout: Option<CgroupLayout>) -> String {
    match (unit, layout) {
        (HelperUnit::Network, _) => String::new(),
        (HelperUnit::JailV2, _) => format!(
            "; cgroup layout {}: the unit leaves the cgroup tree writable \
             (ProtectControlGroups=no), since the jailer enables memory and pids in \
             cgroup.subtree_control from the tree's root down",
            CgroupLayout::V2.describe()
        ),
        (HelperUnit::JailV1, Some(layout)) => format!(
            "; cgroup layout {}: the rest of the cgroup tree stays read-only",
            layout.describe()
        ),
        (HelperUnit::JailV1, None) => "; this host mounts no cgroup hierarchy with memory \
             and pids, so the helper will refuse to start jailed Firecrackers until it does"
            .to_owned(),
    }
}

/// The v1 cgroup hierarchies the helper (`ensure_vm_cgroup`) and the jailer make a VM's
/// groups in (`-`: absent on a v2 host); writable in either posture.
pub const CGROUP_PATHS: [&str; 2] = ["-/sys/fs/cgroup/memory", "-/sys/fs/cgroup/pids"];

/// The device nodes the jailer makes in each chroot (and Firecracker then opens), with
/// the access the helper's device policy grants.
pub const JAIL_DEVICES: [&str; 4] = [
    "/dev/kvm rwm",
    "/dev/net/tun rwm",
    "/dev/urandom rwm",
    // Newer jailers make it when the host has it (snapshot restore by userfaultfd); systemd
    // ignores an entry for a node the host lacks.
    "/dev/userfaultfd rwm",
];

/// The mount the helper writes for the jail: the parent of the state directory, which
/// holds both the state (`/var/lib/banger`) and the chroots (`/var/lib/banger-jail`). The
/// helper hard-links a VM's files from one into the other, and a link across two mounts
/// fails (EXDEV), so the two cannot each be their own `ReadWritePaths=`. `None` when that
/// parent is `/`, which no unit should make writable.
pub fn jail_mount(state_dir: &Path) -> Option<PathBuf> {
    state_dir
        .parent()
        .filter(|p| p.components().count() > 1)
        .map(Path::to_path_buf)
}

/// The lines the helper unit must have in effect for its jailer to work on a host of layout
/// `cgroup`: doctor checks that every word of each is in the key's effective value (list
/// keys add up). On a v2 host that includes the writable cgroup tree.
pub fn jail_needs(
    jail: &JailBinaries,
    state_dir: &Path,
    cgroup: Option<CgroupLayout>,
) -> Vec<String> {
    let mut needs = vec![
        format!(
            "ExecStart=--jailer {} --firecracker {}",
            jail.jailer.display(),
            jail.firecracker.display()
        ),
        "KillMode=process".to_owned(),
        format!("CapabilityBoundingSet={JAILER_CAPS}"),
        "SystemCallFilter=@mount seccomp".to_owned(),
        "RestrictNamespaces=mnt pid".to_owned(),
        format!("DeviceAllow={}", JAIL_DEVICES.join(" ")),
    ];
    let mut writable: Vec<String> = jail_mount(state_dir)
        .map(|p| p.display().to_string())
        .into_iter()
        .collect();
    writable.extend(CGROUP_PATHS.map(String::from));
    needs.push(format!("ReadWritePaths={}", writable.join(" ")));
    if HelperUnit::new(true, cgroup).writes_cgroup_tree() {
        needs.push(CGROUP_TREE_WRITABLE.to_owned());
    }
    needs
}

/// The capabilities the jailer uses, on top of the helper's network ones: mounts, the
/// pivot and the namespaces (SYS_ADMIN), chroot (SYS_CHROOT), the device nodes (MKNOD),
/// dropping to the owner (SETUID, SETGID); reading the owner's 0700 state and linking their
/// files and FIFOs into the chroot, which `fs.protected_hardlinks` allows only to a file's
/// owner or CAP_FOWNER (DAC_OVERRIDE, FOWNER); giving the chroot to the owner (CHOWN).
pub const JAILER_CAPS: &str = "CAP_SYS_ADMIN CAP_SYS_CHROOT CAP_MKNOD CAP_SETUID CAP_SETGID CAP_DAC_OVERRIDE CAP_FOWNER CAP_CHOWN";

/// Choose the posture for `request`. `configured` is the owner's `firecracker_bin` (`None`:
/// `firecracker` on PATH); `lookup` finds a bare command name on PATH; `check` says why a
/// binary is not one root may run (`Err(problem and fix)`).
pub fn choose(
    request: &JailRequest,
    configured: Option<&Path>,
    state_dir: &Path,
    lookup: &dyn Fn(&str) -> Option<PathBuf>,
    check: &dyn Fn(&Path) -> Result<(), String>,
) -> Result<HelperPosture, JailUnusable> {
    let network = |why: String| HelperPosture { jail: None, why };
    let (firecracker, jailer, explicit) = match request {
        JailRequest::Off => {
            return Ok(network(
                "network only (--no-jailer): Firecracker VMs run in banger's own sandbox".into(),
            ));
        }
        JailRequest::Explicit {
            firecracker,
            jailer,
        } => (
            firecracker.clone(),
            jailer
                .clone()
                .unwrap_or_else(|| firecracker.with_file_name("jailer")),
            true,
        ),
        JailRequest::Auto => {
            let found = match configured {
                Some(p) if p.is_absolute() => Some(p.to_path_buf()),
                Some(p) => lookup(&p.to_string_lossy()),
                None => lookup("firecracker"),
            };
            let Some(firecracker) = found else {
                return Ok(network(format!(
                    "network only: no Firecracker found ({}), so there is no jailer to run; \
                     after `sudo banger firecracker install`, install again",
                    configured.map_or("firecracker on PATH".into(), |p| format!(
                        "firecracker_bin {}",
                        p.display()
                    ))
                )));
            };
            let jailer = firecracker.with_file_name("jailer");
            (firecracker, jailer, false)
        }
    };
    let refuse = |path: &Path, problem: String| {
        if explicit {
            Err(JailUnusable {
                path: path.to_path_buf(),
                problem,
            })
        } else {
            Ok(network(format!(
                "network only: Firecracker {} cannot be jailed: {problem}; fix it and install again",
                firecracker.display()
            )))
        }
    };
    for path in [&firecracker, &jailer] {
        if let Err(problem) = check(path) {
            return refuse(path, problem);
        }
    }
    if jail_mount(state_dir).is_none() {
        return refuse(
            state_dir,
            "the state directory lies directly below /, and the helper would have to write all of / to link its files into the chroots".into(),
        );
    }
    Ok(HelperPosture {
        why: format!(
            "jailer: the helper starts Firecracker {} through its jailer {} (chroot, new \
             mount and pid namespaces, the owner's uid, cgroup limits), and holds the \
             capabilities, system calls, namespaces and devices that needs",
            firecracker.display(),
            jailer.display()
        ),
        jail: Some(JailBinaries {
            jailer,
            firecracker,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(_: &Path) -> Result<(), String> {
        Ok(())
    }

    fn on_path(name: &str) -> Option<PathBuf> {
        (name == "firecracker").then(|| PathBuf::from("/usr/local/bin/firecracker"))
    }

    fn nothing(_: &str) -> Option<PathBuf> {
        None
    }

    const STATE: &str = "/var/lib/banger";

    #[test]
    fn auto_jails_with_the_jailer_beside_the_firecracker_found() {
        let p = choose(&JailRequest::Auto, None, STATE.as_ref(), &on_path, &ok).unwrap();
        assert_eq!(
            p.jail,
            Some(JailBinaries {
                jailer: "/usr/local/bin/jailer".into(),
                firecracker: "/usr/local/bin/firecracker".into(),
            })
        );
        assert!(p.why.starts_with("jailer:"), "{}", p.why);
        let p = choose(
            &JailRequest::Auto,
            Some(Path::new("/opt/fc/firecracker")),
            STATE.as_ref(),
            &nothing,
            &ok,
        )
        .unwrap();
        assert_eq!(p.jail.unwrap().jailer, PathBuf::from("/opt/fc/jailer"));
    }

    #[test]
    fn auto_falls_back_to_network_only_saying_why() {
        let p = choose(&JailRequest::Auto, None, STATE.as_ref(), &nothing, &ok).unwrap();
        assert_eq!(p.jail, None);
        assert!(p.why.contains("no Firecracker found"), "{}", p.why);
        let bad_jailer = |p: &Path| {
            if p.ends_with("jailer") {
                Err("owned by uid 1000, not root".to_owned())
            } else {
                Ok(())
            }
        };
        let p = choose(
            &JailRequest::Auto,
            None,
            STATE.as_ref(),
            &on_path,
            &bad_jailer,
        )
        .unwrap();
        assert_eq!(p.jail, None);
        assert!(p.why.contains("uid 1000"), "{}", p.why);
        let p = choose(&JailRequest::Off, None, STATE.as_ref(), &on_path, &ok).unwrap();
        assert_eq!(p.jail, None);
        assert!(p.why.contains("--no-jailer"));
    }

    #[test]
    fn an_explicit_request_is_refused_loudly() {
        let request = JailRequest::Explicit {
            firecracker: "/opt/fc/firecracker".into(),
            jailer: None,
        };
        let missing = |p: &Path| {
            if p.ends_with("jailer") {
                Err("cannot inspect it".to_owned())
            } else {
                Ok(())
            }
        };
        let err = choose(&request, None, STATE.as_ref(), &nothing, &missing).unwrap_err();
        assert_eq!(err.path, PathBuf::from("/opt/fc/jailer"));
        assert!(err.to_string().contains("--firecracker"), "{err}");
        let err = choose(&request, None, "/banger".as_ref(), &nothing, &ok).unwrap_err();
        assert!(err.problem.contains("below /"), "{err}");
    }

    #[test]
    fn only_a_jailing_helper_on_a_v2_host_writes_the_cgroup_tree() {
        use HelperUnit::*;
        let cases = [
            (false, None, Network),
            (false, Some(CgroupLayout::V2), Network),
            (true, None, JailV1),
            (true, Some(CgroupLayout::V1), JailV1),
            (true, Some(CgroupLayout::V2), JailV2),
        ];
        for (jails, cgroup, want) in cases {
            let unit = HelperUnit::new(jails, cgroup);
            assert_eq!(unit, want, "{jails} {cgroup:?}");
            assert_eq!(unit.jails(), jails);
            assert_eq!(unit.writes_cgroup_tree(), want == JailV2);
        }
    }

    #[test]
    fn the_posture_says_which_layout_the_unit_was_made_for() {
        let v2 = cgroup_note(HelperUnit::JailV2, Some(CgroupLayout::V2));
        assert!(v2.contains("ProtectControlGroups=no"), "{v2}");
        assert!(v2.contains("pure v2"), "{v2}");
        let v1 = cgroup_note(HelperUnit::JailV1, Some(CgroupLayout::V1));
        assert!(v1.contains("hybrid") && v1.contains("read-only"), "{v1}");
        assert!(cgroup_note(HelperUnit::JailV1, None).contains("refuse"));
        assert_eq!(cgroup_note(HelperUnit::Network, Some(CgroupLayout::V2)), "");
    }

    #[test]
    fn needs_name_the_binaries_the_shared_mount_and_the_cgroups() {
        let jail = JailBinaries {
            jailer: "/usr/local/bin/jailer".into(),
            firecracker: "/usr/local/bin/firecracker".into(),
        };
        let needs = jail_needs(&jail, STATE.as_ref(), Some(CgroupLayout::V1));
        assert!(needs.contains(
            &"ExecStart=--jailer /usr/local/bin/jailer --firecracker /usr/local/bin/firecracker"
                .to_owned()
        ));
        assert!(needs.contains(
            &"ReadWritePaths=/var/lib -/sys/fs/cgroup/memory -/sys/fs/cgroup/pids".to_owned()
        ));
        assert!(!needs.iter().any(|n| n.starts_with("ProtectControlGroups")));
        assert_eq!(jail_needs(&jail, STATE.as_ref(), None), needs);
        // On a pure v2 host the jailer writes the tree's root.
        let v2 = jail_needs(&jail, STATE.as_ref(), Some(CgroupLayout::V2));
        assert_eq!(v2[..needs.len()], needs[..]);
        assert_eq!(v2[needs.len()..], [CGROUP_TREE_WRITABLE.to_owned()]);
        assert_eq!(jail_mount(Path::new("/banger")), None);
    }
}
