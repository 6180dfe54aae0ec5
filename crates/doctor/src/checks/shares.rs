//! How `-v` (host directories shared with VMs) works here: QEMU serves shares live over
//! virtio-fs with `virtiofsd`; Debian's cloud kernel has no 9p to fall back on, so without
//! `virtiofsd`, and on Firecracker (which has neither), shares are copied in at boot
//! (docs/shares.md). Under a system install, also whether the daemon's unit leaves room
//! for them: each `virtiofsd` runs inside the daemon's sandbox. Reads only: the filesystem.

use std::path::{Path, PathBuf};

use banger_vmm::DriverKind;
use banger_vmm::virtiofs;

use crate::checks::security::{effective, load_install_meta, unit_assignments};
use crate::context::DoctorContext;
use crate::groups;
use crate::registry::CapabilityCheck;
use crate::report::{Check, Status};

const NAME: &str = "shared directories";

pub struct SharedDirectories;

impl CapabilityCheck for SharedDirectories {
    fn name(&self) -> &'static str {
        "shared directories"
    }

    fn run(&self, ctx: &DoctorContext) -> Vec<Check> {
        let found = virtiofs::find_binary_in(ctx.search_path.as_deref());
        let check = match (ctx.selected_driver(), found) {
            (Some(DriverKind::Firecracker), _) => Check::new(
                groups::LIFECYCLE,
                NAME,
                Status::Warn,
                "Firecracker (this host's driver) has neither virtio-fs nor 9p: -v copies \
                 host directories in at every boot (`banger vm sync` copies changes back)"
                    .to_string(),
            )
            .hint("create VMs that need live sharing with `--vmm qemu` (and virtiofsd)"),
            (_, Some(path)) => Check::new(
                groups::LIFECYCLE,
                NAME,
                Status::Pass,
                format!(
                    "virtio-fs: QEMU VMs share host directories live (-v) through {}",
                    path.display()
                ),
            ),
            (_, None) => Check::new(
                groups::LIFECYCLE,
                NAME,
                Status::Warn,
                "virtiofsd not found: QEMU VMs cannot share host directories live; -v copies \
                 them in at every boot instead (Debian's cloud kernel has no 9p to fall back on)"
                    .to_string(),
            )
            .hint(virtiofs::INSTALL_HINT),
        };
        let mut checks = vec![check];
        checks.extend(system_install_check(ctx));
        checks
    }
}

const UNIT_NAME: &str = "shares under the daemon unit";

/// Under a system install: the daemon unit's settings that make shares impossible.
fn system_install_check(ctx: &DoctorContext) -> Option<Check> {
    let meta = load_install_meta(&ctx.install_toml).ok().flatten()?;
    let unit = meta
        .unit_dir
        .as_deref()
        .unwrap_or(&ctx.systemd_dir)
        .join(banger_paths::DAEMON_SERVICE);
    let home = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(meta.owner_uid))
        .ok()
        .flatten()
        .map(|u| u.dir);
    let reinstall = format!(
        "`sudo banger system install --owner {}` rewrites the unit; remove any drop-in that sets these",
        meta.owner_user
    );
    let check = match unit_assignments(&unit) {
        Err(err) => Check::warn(groups::LIFECYCLE, UNIT_NAME, err).hint(reinstall),
        Ok(assignments) => {
            let blockers = share_blockers(&assignments, home.as_deref());
            if blockers.is_empty() {
                Check::pass(
                    groups::LIFECYCLE,
                    UNIT_NAME,
                    format!(
                        "{} lets the owner's virtiofsd sandbox itself and write the owner's home",
                        unit.display()
                    ),
                )
            } else {
                Check::warn(
                    groups::LIFECYCLE,
                    UNIT_NAME,
                    format!("{} limits shared directories (-v)", unit.display()),
                )
                .details(blockers)
                .hint(reinstall)
            }
        }
    };
    Some(check)
}

/// The namespaces `virtiofsd --sandbox=namespace` creates.
const SANDBOX_NAMESPACES: [&str; 4] = ["user", "mnt", "pid", "net"];

/// What in the daemon unit's `assignments` breaks shares, one line per setting naming it
/// and what it breaks. `home` is the owner's home directory.
pub fn share_blockers(assignments: &[(String, String)], home: Option<&Path>) -> Vec<String> {
    let mut out = Vec::new();
    let value = |key: &str| effective(assignments, key);
    if let Some(v) = value("ProtectHome").filter(|v| matches!(v.as_str(), "yes" | "tmpfs" | "true"))
    {
        out.push(format!(
            "ProtectHome={v}: the owner's home is hidden from the daemon and its virtiofsd, so \
             no directory in it can be shared"
        ));
    }
    if let Some(v) = value("RestrictNamespaces").filter(|v| !namespaces_allowed(v)) {
        out.push(format!(
            "RestrictNamespaces={v}: virtiofsd sandboxes each share in new {} namespaces, \
             so no live share can start",
            SANDBOX_NAMESPACES.join(", ")
        ));
    }
    if let Some(v) = value("SystemCallFilter").filter(|v| {
        !v.is_empty() && !v.starts_with('~') && !v.split_whitespace().any(|w| w == "@mount")
    }) {
        out.push(format!(
            "SystemCallFilter={v}: virtiofsd's sandbox needs mount, pivot_root and unshare \
             (@mount), so no live share can start"
        ));
    }
    if value("PrivateUsers").is_some_and(|v| matches!(v.as_str(), "yes" | "true" | "self")) {
        out.push(
            "PrivateUsers=yes: the daemon sees every other user as nobody, so files the guest \
             writes cannot be given to the owner"
                .to_string(),
        );
    }
    let home_ro = value("ProtectHome").is_some_and(|v| v == "read-only")
        || value("ProtectSystem").is_some_and(|v| v == "strict");
    if let Some(home) = home.filter(|_| home_ro) {
        let writable: Vec<PathBuf> = assignments
            .iter()
            .filter(|(k, _)| k == "ReadWritePaths")
            .flat_map(|(_, v)| v.split_whitespace())
            .map(|p| PathBuf::from(p.trim_start_matches(['-', '+'])))
            .collect();
        if !writable.iter().any(|w| home.starts_with(w)) {
            out.push(format!(
                "no ReadWritePaths= covers the owner's home {}: the unit mounts it read-only \
                 (ProtectHome=read-only / ProtectSystem=strict), so only read-only shares \
                 (-v HOST:GUEST:ro) and copies work",
                home.display()
            ));
        }
    }
    out
}

/// Whether `RestrictNamespaces=value` lets virtiofsd create its sandbox's namespaces.
fn namespaces_allowed(value: &str) -> bool {
    match value {
        "" | "no" | "false" => true,
        "yes" | "true" => false,
        list => match list.strip_prefix('~') {
            Some(denied) => !denied
                .split_whitespace()
                .any(|ns| SANDBOX_NAMESPACES.contains(&ns)),
            None => SANDBOX_NAMESPACES
                .iter()
                .all(|ns| list.split_whitespace().any(|w| w == *ns)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(lines: &[&str]) -> Vec<(String, String)> {
        lines
            .iter()
            .map(|l| {
                let (k, v) = l.split_once('=').unwrap_or((l, ""));
                (k.to_string(), v.to_string())
            })
            .collect()
    }

    #[test]
    fn the_installed_daemon_unit_blocks_nothing() {
        let plan = banger_sysinstall::InstallPlan {
            owner_user: "al".into(),
            owner_uid: 1000,
            owner_gid: 1000,
            version: "0".into(),
            build: "0".into(),
            prefix: "/usr/local".into(),
            etc_dir: "/etc/banger".into(),
            unit_dir: "/etc/systemd/system".into(),
            state_dir: "/var/lib/banger".into(),
            runtime_dir: "/run/banger".into(),
            helper_runtime_dir: "/run/banger-helper".into(),
            owner_config_dir: "/home/al/.config/banger".into(),
            owner_home: Some("/home/al".into()),
            manage_services: true,
            socket_timeout: std::time::Duration::from_secs(1),
            jail: None,
            posture_why: String::new(),
            cgroup: None,
        };
        let text = banger_sysinstall::render::daemon_unit(&plan);
        let assignments: Vec<(String, String)> = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.starts_with('['))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(
            share_blockers(&assignments, Some(Path::new("/home/al"))),
            Vec::<String>::new()
        );
    }

    #[test]
    fn each_setting_that_breaks_shares_is_named() {
        let home = Some(Path::new("/home/al"));
        for (lines, wanted) in [
            (vec!["ProtectHome=yes"], "ProtectHome=yes"),
            (vec!["ProtectHome=tmpfs"], "ProtectHome=tmpfs"),
            (vec!["RestrictNamespaces=yes"], "RestrictNamespaces=yes"),
            (vec!["RestrictNamespaces=~user"], "RestrictNamespaces=~user"),
            (
                vec!["RestrictNamespaces=mnt pid"],
                "RestrictNamespaces=mnt pid",
            ),
            (vec!["SystemCallFilter=@system-service"], "SystemCallFilter"),
            (vec!["PrivateUsers=yes"], "PrivateUsers"),
            (
                vec![
                    "ProtectHome=read-only",
                    "ReadWritePaths=-/home/al/.config/banger",
                ],
                "no ReadWritePaths= covers the owner's home /home/al",
            ),
        ] {
            let got = share_blockers(&unit(&lines), home);
            assert_eq!(got.len(), 1, "{lines:?}: {got:?}");
            assert!(got[0].contains(wanted), "{lines:?}: {got:?}");
        }
        for ok in [
            vec!["RestrictNamespaces=no"],
            vec!["RestrictNamespaces=~ipc"],
            vec!["RestrictNamespaces=user mnt pid net ipc"],
            vec!["SystemCallFilter=@system-service @mount"],
            vec!["ProtectHome=read-only", "ReadWritePaths=-/home/al"],
            vec!["ProtectHome=read-only", "ReadWritePaths=/home"],
        ] {
            assert_eq!(
                share_blockers(&unit(&ok), home),
                Vec::<String>::new(),
                "{ok:?}"
            );
        }
    }
}
