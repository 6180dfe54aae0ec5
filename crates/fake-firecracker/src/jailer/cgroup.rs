//! The fake jailer's cgroups, as the real jailer makes them (its `src/jailer/src/cgroup.rs`):
//!
//! * every `--cgroup` file is `<controller>.<property>` (exactly one dot);
//! * **v1**: each controller's hierarchy is the first `cgroup` mount naming it in its
//!   options (none: "controller unavailable"); the group `<hierarchy>/<parent>/<id>` is
//!   made, the value written, the pid written to its `tasks`;
//! * **v2**: the hierarchy is the first `cgroup2` mount (none: "no hierarchy found"); every
//!   controller must be listed in that mount's `cgroup.controllers` — checked for all of
//!   them before anything is written — else "controller unavailable"; the group
//!   `<mount>/<parent>/<id>` is made, `+<controller>` is written to the
//!   `cgroup.subtree_control` of every ancestor from the top down to `<parent>` (stopping
//!   above at the first directory without that file), the value written, and the pid
//!   written to the group's `cgroup.procs`.
//!
//! The mount table is `/proc/mounts`, or the file `FAKE_JAILER_MOUNTS` names: a test hook,
//! the fake's counterpart of the real jailer's test-only mount table, so the v2 contract is
//! exercised on a stand-in tree on hosts whose memory and pids controllers are on v1.
//! `/proc/mounts`, not banger's mountinfo reader (`banger_system::cgroup`), on purpose: the
//! real jailer reads that table, with its own first-match rules, and the fake does what it
//! does (it lists the same mounts in the same order as mountinfo).

use std::path::{Path, PathBuf};

use super::Args;

/// The test hook naming a stand-in mount table.
pub const MOUNTS_ENV: &str = "FAKE_JAILER_MOUNTS";

/// `<controller>` of a `--cgroup` file, or the real jailer's refusal.
pub(super) fn controller_of(file: &str) -> Result<&str, String> {
    match file.split('.').collect::<Vec<_>>()[..] {
        [controller, property] if !controller.is_empty() && !property.is_empty() => Ok(controller),
        _ => Err(format!("Invalid cgroup file: {file}")),
    }
}

fn mount_table() -> Result<String, String> {
    let path =
        std::env::var_os(MOUNTS_ENV).map_or_else(|| PathBuf::from("/proc/mounts"), PathBuf::from);
    std::fs::read_to_string(&path).map_err(|e| format!("Failed to read {}: {e}", path.display()))
}

/// The first mount of type `fstype` whose options satisfy `options`.
fn find_mount(mounts: &str, fstype: &str, options: impl Fn(&str) -> bool) -> Option<PathBuf> {
    mounts.lines().find_map(|line| {
        let f: Vec<&str> = line.split(' ').collect();
        (f.get(2) == Some(&fstype) && f.get(3).is_some_and(|o| options(o)))
            .then(|| PathBuf::from(f[1]))
    })
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, format!("{text}\n")).map_err(|e| {
        format!(
            "Cgroup error: cannot write {text} to {}: {e}",
            path.display()
        )
    })
}

/// Make the groups `--cgroup` names below `--parent-cgroup` and move this process in.
pub(super) fn enter(args: &Args) -> Result<(), String> {
    if args.cgroups.is_empty() {
        return Ok(());
    }
    let parent = args
        .parent_cgroup
        .clone()
        .unwrap_or_else(|| PathBuf::from(args.exec_name()));
    let mounts = mount_table()?;
    let pid = std::process::id().to_string();
    // Every group is located (and every controller checked) before anything is written.
    let mut groups = Vec::new();
    for (file, value) in &args.cgroups {
        let controller = controller_of(file)?;
        let base = match args.cgroup_version {
            1 => find_mount(&mounts, "cgroup", |o| o.split(',').any(|o| o == controller))
                .ok_or_else(|| format!("Cgroup error: controller {controller} is unavailable"))?,
            _ => {
                let root = find_mount(&mounts, "cgroup2", |_| true).ok_or(
                    "Cgroup error: No hierarchy found for this cgroup version.".to_owned(),
                )?;
                let listed =
                    std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
                if !listed.split_whitespace().any(|c| c == controller) {
                    return Err(format!(
                        "Cgroup error: controller {controller} is unavailable"
                    ));
                }
                root
            }
        };
        groups.push((controller, base.join(&parent).join(&args.id), file, value));
    }
    for (controller, dir, file, value) in groups {
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("Cgroup error: cannot create {}: {e}", dir.display()))?;
        let procs = if args.cgroup_version == 1 {
            "tasks"
        } else {
            if let Some(parent) = dir.parent() {
                enable_down_to(parent, controller)?;
            }
            "cgroup.procs"
        };
        write(&dir.join(file), value)?;
        write(&dir.join(procs), &pid)?;
    }
    Ok(())
}

/// `+controller` into the `cgroup.subtree_control` of `dir` and of each ancestor above it
/// that has one, top down.
fn enable_down_to(dir: &Path, controller: &str) -> Result<(), String> {
    let control = dir.join("cgroup.subtree_control");
    if !control.exists() {
        return Ok(());
    }
    if let Some(up) = dir.parent() {
        enable_down_to(up, controller)?;
    }
    write(&control, &format!("+{controller}"))
}
