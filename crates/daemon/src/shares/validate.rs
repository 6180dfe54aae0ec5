//! Checking the shares a create asks for, before anything is made.
//!
//! The host side: an existing directory (links resolved, so what is stored and served is
//! the real directory), readable and searchable by the daemon's user (the owner), and
//! neither inside nor around banger's own state and runtime directories — a guest must
//! never reach VM disks, keys, the store or sockets. The guest side: an absolute, plain
//! path that is not the root, not a kernel filesystem and not the work disk. How it
//! reaches the guest ([`delivery`]): live where the VMM can and the request allows, else a
//! copy when asked for or when `[shares] fallback` accepts one — never silently.

use std::path::{Path, PathBuf};

use banger_api::{ShareMode, ShareRequest};
use banger_config::ShareFallback;
use banger_store::{Delivery, VmShare};
use banger_vmm::DriverKind;

use super::MAX_SHARES;
use crate::error::{DaemonError, Result, quoted};
use crate::state::Daemon;

/// Longest guest path accepted (the kernel command line carries it).
const MAX_GUEST_PATH: usize = 200;

/// Where the guest's agent mounts the work disk.
const WORK_DIR: &str = "/work";

/// Guest trees a share may not cover: the kernel's and init's own.
const GUEST_RESERVED: &[&str] = &["/proc", "/sys", "/dev", "/run"];

/// Check `requests` for a VM run by `driver`; the shares to store, in order.
pub fn validate(
    daemon: &Daemon,
    requests: &[ShareRequest],
    driver: DriverKind,
) -> Result<Vec<VmShare>> {
    if requests.is_empty() {
        return Ok(Vec::new());
    }
    if requests.len() > MAX_SHARES {
        return Err(bad(format!(
            "{} shares asked; a VM shares at most {MAX_SHARES} host directories",
            requests.len()
        ))
        .with_hint("share a common parent directory instead"));
    }
    let settings = daemon.config.shares_resolved();
    let live_problem = super::live_problem(driver);
    let private = [&daemon.layout.state_dir, &daemon.layout.runtime_dir];
    let mut shares: Vec<VmShare> = Vec::new();
    for req in requests {
        let host_path = host_dir(&req.host, &private)?;
        let guest_path = guest_path(&req.guest)?;
        if let Some(twice) = shares.iter().find(|s| s.guest_path == guest_path) {
            return Err(bad(format!(
                "guest path {guest_path:?} is shared twice ({:?} and {:?})",
                twice.host_path, host_path
            ))
            .with_hint("give each share its own guest path"));
        }
        let delivery = delivery(
            req.mode,
            live_problem.as_deref(),
            settings.fallback.value,
            &guest_path,
        )?;
        if delivery == Delivery::VirtioFs && !req.read_only {
            writable_mount(&host_path)?;
        }
        if delivery == Delivery::Copy {
            // Refused now rather than at the first boot.
            super::copy::measure(&host_path, settings.copy_max_bytes.value)?;
        }
        shares.push(VmShare {
            host_path,
            guest_path,
            read_only: req.read_only,
            delivery,
        });
    }
    Ok(shares)
}

/// How a share asked for with `mode` reaches the guest, given why a live share is
/// impossible here (`None`: it is possible) and the configured fallback.
fn delivery(
    mode: ShareMode,
    live_problem: Option<&str>,
    fallback: ShareFallback,
    guest: &str,
) -> Result<Delivery> {
    match (mode, live_problem) {
        (ShareMode::Copy, _) => Ok(Delivery::Copy),
        (ShareMode::Auto | ShareMode::Live, None) => Ok(Delivery::VirtioFs),
        (ShareMode::Auto, Some(_)) if fallback == ShareFallback::Copy => Ok(Delivery::Copy),
        (ShareMode::Live, Some(why)) => Err(DaemonError::unavailable(format!(
            "cannot share {guest} live: {why}"
        ))
        .with_field("shares")
        .with_hint("or copy it in at boot instead: -v HOST:GUEST:copy")),
        (ShareMode::Auto, Some(why)) => Err(DaemonError::unavailable(format!(
            "cannot share {guest} live: {why}"
        ))
        .with_field("shares")
        .with_hint(
            "copy it in at boot instead (-v HOST:GUEST:copy), or accept copies for -v with \
             `fallback = \"copy\"` under [shares] in config.toml",
        )),
    }
}

fn bad(message: String) -> DaemonError {
    DaemonError::invalid(message).with_field("shares")
}

/// The real directory `text` names, checked.
fn host_dir(text: &str, private: &[&PathBuf]) -> Result<PathBuf> {
    let given = Path::new(text);
    if !given.is_absolute() {
        return Err(bad(format!("host path {} is not absolute", quoted(text)))
            .with_hint("give the full path, e.g. -v \"$PWD:/src\""));
    }
    let real = std::fs::canonicalize(given).map_err(|e| {
        bad(format!("host path {} cannot be shared: {e}", quoted(text)))
            .with_hint("share an existing directory")
    })?;
    let meta = std::fs::metadata(&real)
        .map_err(|e| bad(format!("host path {} cannot be shared: {e}", quoted(text))))?;
    if !meta.is_dir() {
        return Err(bad(format!(
            "host path {} is not a directory; only directories can be shared",
            quoted(text)
        ))
        .with_hint("share the directory that holds it, or copy it in with `banger vm cp`"));
    }
    if real.to_str().is_none() {
        return Err(bad(format!(
            "host path {} is not valid UTF-8; rename it",
            real.display()
        )));
    }
    if let Err(e) = nix::unistd::access(
        &real,
        nix::unistd::AccessFlags::R_OK | nix::unistd::AccessFlags::X_OK,
    ) {
        return Err(bad(format!(
            "host path {} is not readable by banger's user (uid {}): {e}",
            real.display(),
            nix::unistd::geteuid()
        ))
        .with_hint("share a directory you can read, or fix its permissions"));
    }
    for dir in private {
        // Compare real paths: the state dir may itself be reached through a link.
        let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        if real.starts_with(&dir) || dir.starts_with(&real) {
            return Err(bad(format!(
                "host path {} {} banger's own directory {} (VM disks, keys, the store, \
                 sockets), which a guest must never reach",
                real.display(),
                if real.starts_with(&dir) {
                    "is inside"
                } else {
                    "contains"
                },
                dir.display()
            ))
            .with_hint(
                "share a directory outside it (a subdirectory of your project, not your \
                 whole home), or move banger's state with BANGER_STATE_DIR",
            ));
        }
    }
    Ok(real)
}

/// Refuse a read-write live share of `dir` when it lies on a mount that is read-only as
/// the daemon sees it: its `virtiofsd` runs in the daemon's mount namespace, so every guest
/// write would fail. Under a system install that is the daemon unit's sandbox
/// (`ProtectSystem=strict`, `ProtectHome=read-only`), which leaves only banger's own
/// directories and the owner's home writable.
fn writable_mount(dir: &Path) -> Result<()> {
    let Ok(stat) = nix::sys::statvfs::statvfs(dir) else {
        // Unknown: the share is served, and a read-only mount shows as guest write errors.
        return Ok(());
    };
    if !stat.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY) {
        return Ok(());
    }
    Err(bad(format!(
        "host path {} is on a mount banger's daemon sees read-only, so the guest could \
         not write to the share",
        dir.display()
    ))
    .with_hint(
        "share it read-only (-v HOST:GUEST:ro) or copy it in (-v HOST:GUEST:copy); under a \
         system install the daemon's unit leaves only the owner's home writable \
         (ProtectSystem=strict, ProtectHome=read-only, ReadWritePaths=): share a directory \
         there",
    ))
}

/// `text` as a plain absolute guest path.
fn guest_path(text: &str) -> Result<String> {
    let hint = "give an absolute directory path in the guest, e.g. /src";
    if !text.starts_with('/') {
        return Err(bad(format!("guest path {} is not absolute", quoted(text))).with_hint(hint));
    }
    if text.len() > MAX_GUEST_PATH || text.chars().any(char::is_control) {
        return Err(bad(format!(
            "guest path {} is longer than {MAX_GUEST_PATH} bytes or has control characters",
            quoted(text)
        ))
        .with_hint(hint));
    }
    // By text: `Path::components` silently drops a `.` in the middle.
    if text.split('/').any(|c| c == "." || c == "..") {
        return Err(bad(format!("guest path {} has . or .. in it", quoted(text))).with_hint(hint));
    }
    // Normalised: no doubled or trailing slashes.
    let normal = Path::new(text).components().collect::<PathBuf>();
    let normal = normal.to_str().unwrap_or(text).to_string();
    if normal == "/" {
        return Err(bad("guest path \"/\" would hide the guest's own root".into()).with_hint(hint));
    }
    if normal == WORK_DIR {
        return Err(bad(format!(
            "guest path {normal} is the VM's work disk; mount the share elsewhere or below it"
        ))
        .with_hint("e.g. /src or /work/src"));
    }
    if let Some(tree) = GUEST_RESERVED
        .iter()
        .find(|t| Path::new(&normal).starts_with(t))
    {
        return Err(bad(format!(
            "guest path {normal} is inside {tree}, which the guest's kernel and init own"
        ))
        .with_hint(hint));
    }
    Ok(normal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_is_live_where_possible_and_never_silently_a_copy() {
        use ShareFallback::{Copy, Refuse};
        let why = Some("no virtiofsd");
        for (mode, problem, fallback, want) in [
            (ShareMode::Auto, None, Refuse, Some(Delivery::VirtioFs)),
            (ShareMode::Live, None, Copy, Some(Delivery::VirtioFs)),
            (ShareMode::Copy, None, Refuse, Some(Delivery::Copy)),
            (ShareMode::Copy, why, Refuse, Some(Delivery::Copy)),
            (ShareMode::Auto, why, Copy, Some(Delivery::Copy)),
            (ShareMode::Auto, why, Refuse, None),
            (ShareMode::Live, why, Copy, None),
        ] {
            let got = delivery(mode, problem, fallback, "/src");
            assert_eq!(
                got.as_ref().ok(),
                want.as_ref(),
                "{mode:?} {problem:?} {fallback:?}"
            );
            if let Err(e) = got {
                assert!(e.message.contains("no virtiofsd"), "{}", e.message);
                assert!(e.hint.unwrap_or_default().contains(":copy"));
            }
        }
    }

    #[test]
    fn guest_paths_are_plain_absolute_and_not_reserved() {
        for (given, want) in [
            ("/src", Some("/src")),
            ("/src/", Some("/src")),
            ("//a//b", Some("/a/b")),
            ("/my project", Some("/my project")),
            ("/work/src", Some("/work/src")),
            ("src", None),
            ("/", None),
            ("/a/../etc", None),
            ("/./a", None),
            ("/proc/x", None),
            ("/dev", None),
            ("/work", None),
            ("/a\nb", None),
        ] {
            assert_eq!(guest_path(given).ok().as_deref(), want, "{given:?}");
        }
    }

    #[test]
    fn host_dirs_must_exist_be_directories_and_stay_out_of_banger_state() {
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("state");
        let project = tmp.path().join("my project");
        std::fs::create_dir_all(state.join("vms")).unwrap();
        std::fs::create_dir_all(&project).unwrap();
        std::fs::write(project.join("file"), b"x").unwrap();
        std::os::unix::fs::symlink(&project, tmp.path().join("link")).unwrap();
        let private = [&state];
        let s = |p: &Path| p.to_str().unwrap().to_string();
        let real = std::fs::canonicalize(&project).unwrap();
        assert_eq!(host_dir(&s(&project), &private).unwrap(), real);
        assert_eq!(
            host_dir(&s(&tmp.path().join("link")), &private).unwrap(),
            real
        );
        for (bad_path, why) in [
            (s(&project.join("file")), "not a directory"),
            (s(&tmp.path().join("missing")), "cannot be shared"),
            ("relative".to_string(), "not absolute"),
            (s(&state.join("vms")), "is inside"),
            (s(tmp.path()), "contains"),
        ] {
            let err = host_dir(&bad_path, &private).unwrap_err();
            assert!(err.message.contains(why), "{bad_path}: {}", err.message);
        }
    }
}
