//! The Firecracker binary: present, and inside the supported version window.

use std::ffi::OsStr;
use std::path::Path;

use banger_firecracker::{INSTALL_COMMAND, KNOWN_TESTED, MIN_SUPPORTED, must_parse, query_version};
use banger_system::CommandRunner;
use banger_system::fsperm::check_root_executable;
use banger_system::preflight::find_executable;

use super::install_hint::{RELEASES_URL, firecracker_install_lines};
use crate::context::DoctorContext;
use crate::registry::CapabilityCheck;
use crate::report::{Check, Status};
use crate::{error_chain, groups};

pub const NAME: &str = "firecracker binary";

pub struct FirecrackerBinary;

impl CapabilityCheck for FirecrackerBinary {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(&self, ctx: &DoctorContext) -> Vec<Check> {
        vec![check_firecracker(&FirecrackerProbe {
            runner: ctx.runner.as_ref(),
            bin: &ctx.firecracker_bin(),
            search_path: ctx.search_path.as_deref(),
            os_release: &ctx.os_release_path,
            required: ctx.firecracker_required(),
        })]
    }
}

/// Inputs of [`check_firecracker`].
pub struct FirecrackerProbe<'a> {
    pub runner: &'a dyn CommandRunner,
    /// `firecracker_bin` from the config: a path or a name searched in the PATH.
    pub bin: &'a str,
    pub search_path: Option<&'a OsStr>,
    pub os_release: &'a Path,
    /// Whether Firecracker is the selected or configured driver. It changes what the
    /// report says, not the verdict: a missing binary is a FAIL either way (as the
    /// seed has it), because Firecracker is banger's primary VMM.
    pub required: bool,
}

/// PASS inside [MIN_SUPPORTED, KNOWN_TESTED], WARN above it, FAIL below it, when
/// `--version` fails, or when the binary is missing. A binary banger's root helper would
/// refuse to launch (a symlink, group/world-writable, not root-owned) turns a PASS into a
/// WARN in any mode; the system install's security posture FAILs it too. While another
/// driver runs VMs (Firecracker is not `required`), a FAIL here is advisory: it does not
/// stop them.
pub fn check_firecracker(probe: &FirecrackerProbe<'_>) -> Check {
    let check = probe_binary(probe);
    if check.status == Status::Fail && !probe.required {
        check.advisory()
    } else {
        check
    }
}

fn probe_binary(probe: &FirecrackerProbe<'_>) -> Check {
    let check = check_version_window(probe);
    let Some(path) = find_executable(probe.bin, probe.search_path) else {
        return check;
    };
    match check_root_executable(&path) {
        Ok(_) => check,
        Err(problem) => {
            let mut check = check.detail(format!("not launchable by the root helper: {problem}"));
            if check.status == Status::Pass {
                check.status = Status::Warn;
                check.hint = Some(format!(
                    "reinstall it root-owned and not writable by others: {INSTALL_COMMAND}"
                ));
            }
            check
        }
    }
}

fn check_version_window(probe: &FirecrackerProbe<'_>) -> Check {
    let Some(path) = find_executable(probe.bin, probe.search_path) else {
        let hint = format!(
            "install it with `{INSTALL_COMMAND}`, or set firecracker_bin in config.toml to its \
             full path"
        );
        let lines = firecracker_install_lines(probe.os_release, probe.runner);
        let mut check = Check::fail(groups::VMM, NAME, format!("not found: {}", probe.bin));
        if !probe.required {
            check =
                check.detail("until it is installed, VMs run under QEMU (see the driver check)");
        }
        return check.details(lines).hint(hint);
    };
    let version = match query_version(probe.runner, &path) {
        Ok(version) => version,
        Err(err) => {
            return Check::fail(
                groups::VMM,
                NAME,
                format!("`{} --version` failed", path.display()),
            )
            .detail(error_chain(&err))
            .hint(format!("reinstall Firecracker: {INSTALL_COMMAND}"));
        }
    };
    let min = must_parse(MIN_SUPPORTED);
    let tested = must_parse(KNOWN_TESTED);
    let at = path.display();
    if version < min {
        Check::fail(
            groups::VMM,
            NAME,
            format!("{version} at {at} is older than the supported minimum {min}"),
        )
        .hint(format!(
            "upgrade Firecracker: {INSTALL_COMMAND} (or {RELEASES_URL})"
        ))
    } else if version > tested {
        Check::warn(
            groups::VMM,
            NAME,
            format!("{version} at {at} is newer than the tested {tested}; it usually works"),
        )
        .detail(format!(
            "banger is tested against {tested} and supports {min} and later"
        ))
        .hint(format!(
            "if VMs misbehave, install the tested release: {INSTALL_COMMAND}"
        ))
    } else {
        Check::pass(
            groups::VMM,
            NAME,
            format!("{version} at {at} (supported: {min} or later; tested: {tested})"),
        )
    }
}
