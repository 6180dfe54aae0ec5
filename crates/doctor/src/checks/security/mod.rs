//! Security posture: does the running install match the trust model in
//! `docs/privileges.md`?
//!
//! Drift between that document and the host (a hand-edited unit that lost
//! `NoNewPrivileges`, a socket recreated world-readable, a VMM binary a user can
//! overwrite) silently weakens the model, so doctor checks each promise. Outside a
//! system install there is nothing to check, and a PASS would imply guarantees the
//! host does not have: one WARN explains the dev-mode trust model instead.

mod sandbox;
mod units;

use std::path::{Path, PathBuf};

use banger_paths::{DAEMON_SERVICE, HELPER_SERVICE};
use banger_sysinstall::hardening;
use banger_sysinstall::jail::{CGROUP_TREE_WRITABLE, HelperUnit, JailBinaries};
use banger_system::CommandRunner;
use banger_system::cgroup::{CgroupLayout, CgroupMounts};
use banger_system::fsperm::{FileFacts, FileKind, check_root_executable};

pub use banger_config::{InstallMeta, load_install_meta};
pub use sandbox::VmmSandbox;
pub use units::{effective, missing_directives, unit_assignments};

use crate::context::DoctorContext;
use crate::groups;
use crate::registry::CapabilityCheck;
use crate::report::Check;

/// Mode both sockets are created with.
const SOCKET_MODE: u32 = 0o600;

pub struct SecurityPosture;

impl CapabilityCheck for SecurityPosture {
    fn name(&self) -> &'static str {
        "security posture"
    }

    fn run(&self, ctx: &DoctorContext) -> Vec<Check> {
        posture(&PostureInputs {
            runner: ctx.runner.as_ref(),
            install_toml: &ctx.install_toml,
            systemd_dir: &ctx.systemd_dir,
            helper_socket: &ctx.layout.helper_socket(),
            daemon_socket: &ctx.layout.daemon_socket(),
            vmm_binaries: &ctx.vmm_binaries(),
            mountinfo: Path::new(banger_system::cgroup::MOUNTINFO),
        })
    }
}

/// Inputs of [`posture`]; every host path is explicit so tests build fake hosts.
pub struct PostureInputs<'a> {
    pub runner: &'a dyn CommandRunner,
    pub install_toml: &'a Path,
    /// Where the unit files live when install.toml does not say (`/etc/systemd/system`).
    pub systemd_dir: &'a Path,
    pub helper_socket: &'a Path,
    pub daemon_socket: &'a Path,
    /// VMM binaries the helper may launch: (check name, path).
    pub vmm_binaries: &'a [(String, PathBuf)],
    /// The mount table (`/proc/self/mountinfo`): the host's cgroup layout, which decides
    /// what a jailing helper's unit must hold.
    pub mountinfo: &'a Path,
}

/// Where the system install is described.
const SYSTEM_INSTALL_DOC: &str = "docs/privileges.md, \"System install\"";

pub fn posture(inputs: &PostureInputs<'_>) -> Vec<Check> {
    let meta = match load_install_meta(inputs.install_toml) {
        Ok(Some(meta)) => meta,
        Ok(None) => return vec![dev_mode_warning(inputs.install_toml)],
        Err(err) => {
            return vec![
                Check::fail(
                    groups::SECURITY,
                    "install metadata",
                    crate::error_chain(&err),
                )
                .hint(format!(
                    "repair or remove {} (see {SYSTEM_INSTALL_DOC})",
                    inputs.install_toml.display()
                )),
            ];
        }
    };
    // The install records where it wrote its units; older records did not.
    let unit_dir = meta.unit_dir.as_deref().unwrap_or(inputs.systemd_dir);
    // The layout the host has now, not the one recorded: a host moved from a hybrid to a
    // pure v2 layout needs its jailing helper's unit rendered again.
    let cgroup = CgroupMounts::read_from(inputs.mountinfo)
        .ok()
        .as_ref()
        .and_then(CgroupLayout::of);
    let helper_kind = HelperUnit::new(meta.jailer.is_some(), cgroup);
    let mut checks = vec![
        Check::pass(
            groups::SECURITY,
            "install metadata",
            format!(
                "system install owned by {} (uid {})",
                meta.owner_user, meta.owner_uid
            ),
        )
        .detail(inputs.install_toml.display().to_string()),
        service_active(inputs.runner, "helper service", HELPER_SERVICE),
        service_active(inputs.runner, "daemon service", DAEMON_SERVICE),
        socket_perms(
            "helper socket",
            inputs.helper_socket,
            meta.owner_uid,
            HELPER_SERVICE,
        ),
        socket_perms(
            "daemon socket",
            inputs.daemon_socket,
            meta.owner_uid,
            DAEMON_SERVICE,
        ),
        unit_hardening(
            "helper unit hardening",
            &unit_dir.join(HELPER_SERVICE),
            &hardening::helper_required(helper_kind),
            &meta.owner_user,
        ),
        unit_hardening(
            "daemon unit hardening",
            &unit_dir.join(DAEMON_SERVICE),
            &hardening::daemon_required(&meta.owner_user),
            &meta.owner_user,
        ),
    ];
    if let (Some(jailer), Some(firecracker)) = (&meta.jailer, &meta.firecracker) {
        let jail = JailBinaries {
            jailer: jailer.clone(),
            firecracker: firecracker.clone(),
        };
        let state_dir = meta
            .state_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(banger_paths::SYSTEM_STATE_DIR));
        checks.push(jail_needs(
            &unit_dir.join(HELPER_SERVICE),
            &jail,
            &state_dir,
            &meta,
            cgroup,
        ));
        checks.push(binary_ownership("jailer binary ownership", jailer));
        if !inputs.vmm_binaries.iter().any(|(_, p)| p == firecracker) {
            checks.push(binary_ownership(
                "jailed firecracker ownership",
                firecracker,
            ));
        }
    }
    for (name, path) in inputs.vmm_binaries {
        checks.push(binary_ownership(name, path));
    }
    checks
}

/// The install chose a jailing helper: its unit must still run the jailer with what the
/// jailer needs on this host's cgroup layout `cgroup` (a drop-in or hand edit that takes any
/// of it away, or a host moved from a hybrid to a pure v2 layout since the install, breaks
/// every Firecracker start, or silently stops jailing).
fn jail_needs(
    unit: &Path,
    jail: &JailBinaries,
    state_dir: &Path,
    meta: &InstallMeta,
    cgroup: Option<CgroupLayout>,
) -> Check {
    const NAME: &str = "helper unit runs the jailer";
    let owner = &meta.owner_user;
    let needs = banger_sysinstall::jail::jail_needs(jail, state_dir, cgroup);
    let reinstall = format!(
        "`sudo banger system install --owner {owner}` rewrites the helper unit for this host (remove any drop-in that takes these away), or install with --no-jailer"
    );
    let layout = cgroup.map_or("no cgroup hierarchy mounted", CgroupLayout::describe);
    match units::lacking(unit, &needs) {
        Err(err) => Check::fail(groups::SECURITY, NAME, err).hint(reinstall),
        Ok(lacking) if lacking.is_empty() => Check::pass(
            groups::SECURITY,
            NAME,
            format!(
                "{} starts Firecracker {} through {} with what the jailer needs",
                unit.display(),
                jail.firecracker.display(),
                jail.jailer.display()
            ),
        )
        .detail(format!("cgroup layout {layout}")),
        Ok(lacking) => {
            let mut check = Check::fail(
                groups::SECURITY,
                NAME,
                format!(
                    "install.toml says the helper jails Firecracker, but {} lacks {}",
                    unit.display(),
                    lacking.join(", ")
                ),
            )
            .detail("without them the jailer fails, and every Firecracker VM fails to start");
            if lacking.iter().any(|l| l == CGROUP_TREE_WRITABLE) {
                let made_for = meta.cgroup.map_or(
                    "a layout it did not record (an older install)",
                    CgroupLayout::describe,
                );
                check = check
                    .detail(format!(
                        "this host's cgroup layout is {layout}, but the unit was made for {made_for}: it keeps the cgroup tree read-only, and the jailer cannot enable memory and pids in the cgroup.subtree_control of its root"
                    ));
            }
            check.hint(reinstall)
        }
    }
}

fn dev_mode_warning(install_toml: &Path) -> Check {
    Check::warn(
        groups::SECURITY,
        "security posture",
        format!(
            "dev mode: no system install ({} not found)",
            install_toml.display()
        ),
    )
    .detail("without the system install there is no separate root helper checking callers with SO_PEERCRED")
    .detail("and no systemd hardening (narrow CapabilityBoundingSet, NoNewPrivileges, ProtectSystem=strict)")
    .detail("fine on a single-user development machine; see docs/privileges.md, \"Running outside the system install\"")
    .hint(format!(
        "the supported trust model is the system install: `sudo banger system install --owner $USER` (see {SYSTEM_INSTALL_DOC})"
    ))
}

/// `systemctl is-active` prints the state even when it exits non-zero (which it
/// does for every state but active), so only stdout is read.
fn service_active(runner: &dyn CommandRunner, name: &str, service: &str) -> Check {
    let state = match runner.run_str("systemctl", &["is-active", service]) {
        Ok(output) => {
            let state = output.stdout_str().trim().to_string();
            if state.is_empty() {
                "unknown".to_string()
            } else {
                state
            }
        }
        Err(err) => format!("unknown (systemctl could not run: {err})"),
    };
    if state == "active" {
        return Check::pass(groups::SECURITY, name, format!("{service} is active"));
    }
    Check::fail(
        groups::SECURITY,
        name,
        format!("{service} is {state}, not active"),
    )
    .hint(format!(
        "sudo systemctl restart {service}; if it keeps failing: journalctl -u {service}"
    ))
}

fn socket_perms(name: &str, path: &Path, owner_uid: u32, service: &str) -> Check {
    let restart = format!("sudo systemctl restart {service} (it recreates the socket)");
    let facts = match FileFacts::lstat(path) {
        Ok(facts) => facts,
        Err(err) => {
            return Check::fail(groups::SECURITY, name, format!("{}: {err}", path.display()))
                .hint(format!("is {service} running? {restart}"));
        }
    };
    let mut problems = Vec::new();
    if facts.kind != FileKind::Socket {
        problems.push(format!("is {}, not a socket", facts.kind));
    }
    if facts.mode != SOCKET_MODE {
        problems.push(format!("mode is {:#o}, want {SOCKET_MODE:#o}", facts.mode));
    }
    if facts.uid != owner_uid {
        problems.push(format!("owner uid is {}, want {owner_uid}", facts.uid));
    }
    if problems.is_empty() {
        return Check::pass(
            groups::SECURITY,
            name,
            format!(
                "{}: mode {:#o}, owner uid {owner_uid}",
                path.display(),
                facts.mode
            ),
        );
    }
    Check::fail(
        groups::SECURITY,
        name,
        format!("{}: {}", path.display(), problems.join("; ")),
    )
    .hint(restart)
}

fn unit_hardening(name: &str, unit: &Path, required: &[String], owner: &str) -> Check {
    let reinstall = format!(
        "`sudo banger system install --owner {owner}` rewrites the units (and remove any drop-in that weakens them)"
    );
    match missing_directives(unit, required) {
        Err(err) => Check::fail(groups::SECURITY, name, err).hint(reinstall),
        Ok(missing) if missing.is_empty() => Check::pass(
            groups::SECURITY,
            name,
            format!(
                "{}: all {} hardening directives in effect",
                unit.display(),
                required.len()
            ),
        ),
        Ok(missing) => Check::fail(
            groups::SECURITY,
            name,
            format!("{} is missing {}", unit.display(), missing.join(", ")),
        )
        .hint(reinstall),
    }
}

fn binary_ownership(name: &str, path: &Path) -> Check {
    match check_root_executable(path) {
        Ok(facts) => Check::pass(
            groups::SECURITY,
            name,
            format!(
                "{}: regular file, owned by root, mode {:#o}",
                path.display(),
                facts.mode
            ),
        ),
        Err(err) => {
            let hint = err.hint();
            Check::fail(groups::SECURITY, name, crate::error_chain(&err))
                .detail("the root helper refuses to launch a VMM binary that fails this check")
                .hint(hint)
        }
    }
}
