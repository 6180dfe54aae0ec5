//! The cgroup hierarchies this host mounts, read from `/proc/self/mountinfo`: where each
//! one is mounted, which part of it the mount shows, and (v1) which controllers it holds.
//!
//! The one reader of the mount table for cgroup purposes, for everyone who asks:
//!
//! * the root helper: which `--cgroup-version` the jailer gets, and where its groups are;
//! * `banger system install`: whether the jailing helper's unit must leave the cgroup tree
//!   writable ([`CgroupLayout`], recorded in install.toml);
//! * `banger doctor`: whether the installed unit still fits the host;
//! * the daemon (`banger_vmm::sandbox::cgroup`): where its own VM groups go, and where a
//!   process's groups are when `vm inspect` and doctor read them back.
//!
//! [`CgroupMounts::parse`] takes the text, so tests use stand-in tables;
//! [`CgroupMounts::read`] reads this process's.

mod mountinfo;

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where this process's mount table is.
pub const MOUNTINFO: &str = "/proc/self/mountinfo";

/// The mount table could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the mount table {}", path.display())]
pub struct ReadError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// A mounted cgroup hierarchy: one cgroup or cgroup2 line of the mount table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupMount {
    /// The cgroup path the mount shows at its mount point: `/` for a whole hierarchy, a
    /// group's path for a bind mount of a subtree (a container's view).
    pub root: PathBuf,
    /// Where it is mounted.
    pub point: PathBuf,
    /// The v1 controllers it holds (from its super options; `name=systemd` and the like are
    /// not controllers); `None` for cgroup2, the unified hierarchy.
    pub controllers: Option<Vec<String>>,
}

impl CgroupMount {
    /// A v1 hierarchy holding `controller`.
    pub fn holds(&self, controller: &str) -> bool {
        self.controllers
            .as_ref()
            .is_some_and(|c| c.iter().any(|x| x == controller))
    }

    /// The directory of the group `path` (a path of `/proc/PID/cgroup`) below this mount,
    /// or `None` when the mount does not show it (a subtree that holds another part of
    /// the hierarchy, or a path climbing out with `..`).
    pub fn dir_of(&self, path: &str) -> Option<PathBuf> {
        let rel = Path::new(path).strip_prefix(&self.root).ok()?;
        if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            return None;
        }
        // `join("")` would add a trailing `/` to the mount point.
        Some(if rel.as_os_str().is_empty() {
            self.point.clone()
        } else {
            self.point.join(rel)
        })
    }
}

/// The cgroup mounts of a mount table, in its order (the first one of a kind is the one
/// used, as the kernel's own tools and the jailer do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupMounts(Vec<CgroupMount>);

impl CgroupMounts {
    /// The cgroup mounts `mountinfo` (the text of a `/proc/PID/mountinfo`) lists; other
    /// lines are skipped.
    pub fn parse(mountinfo: &str) -> CgroupMounts {
        CgroupMounts(
            mountinfo
                .lines()
                .filter_map(mountinfo::cgroup_mount)
                .collect(),
        )
    }

    /// The cgroup mounts of the mount table at `path` (a stand-in in tests).
    pub fn read_from(path: &Path) -> Result<CgroupMounts, ReadError> {
        std::fs::read_to_string(path)
            .map(|text| CgroupMounts::parse(&text))
            .map_err(|source| ReadError {
                path: path.to_path_buf(),
                source,
            })
    }

    /// This process's cgroup mounts ([`MOUNTINFO`]).
    pub fn read() -> Result<CgroupMounts, ReadError> {
        CgroupMounts::read_from(Path::new(MOUNTINFO))
    }

    /// Every cgroup mount, in the table's order.
    pub fn all(&self) -> &[CgroupMount] {
        &self.0
    }

    /// The first v1 hierarchy holding `controller`.
    pub fn v1(&self, controller: &str) -> Option<&CgroupMount> {
        self.0.iter().find(|m| m.holds(controller))
    }

    /// The first cgroup2 mount: the unified hierarchy, the one the jailer takes.
    pub fn unified(&self) -> Option<&CgroupMount> {
        self.0.iter().find(|m| m.controllers.is_none())
    }

    /// The v1 memory and pids hierarchies' mount points, when both exist.
    pub fn v1_memory_pids(&self) -> Option<(PathBuf, PathBuf)> {
        Some((
            self.v1("memory")?.point.clone(),
            self.v1("pids")?.point.clone(),
        ))
    }

    /// The unified hierarchy's mount point ([`CgroupMounts::unified`]).
    pub fn unified_mount(&self) -> Option<PathBuf> {
        self.unified().map(|m| m.point.clone())
    }
}

/// The hierarchies a jailed Firecracker's memory and pids limits go to on a host: the v1
/// ones when both controllers have one, else the unified hierarchy. The one statement of
/// that rule: the helper launches by it, and [`CgroupLayout`] (install, doctor) names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitHierarchy {
    /// The memory and pids controllers' v1 hierarchies' mount points.
    V1 { memory: PathBuf, pids: PathBuf },
    /// The unified hierarchy's mount point.
    V2 { root: PathBuf },
}

impl LimitHierarchy {
    /// Where a host with cgroup `mounts` puts the limits; `None` when it mounts neither.
    pub fn of(mounts: &CgroupMounts) -> Option<LimitHierarchy> {
        if let Some((memory, pids)) = mounts.v1_memory_pids() {
            return Some(LimitHierarchy::V1 { memory, pids });
        }
        mounts
            .unified_mount()
            .map(|root| LimitHierarchy::V2 { root })
    }

    /// Its layout, as recorded.
    pub fn layout(&self) -> CgroupLayout {
        match self {
            LimitHierarchy::V1 { .. } => CgroupLayout::V1,
            LimitHierarchy::V2 { .. } => CgroupLayout::V2,
        }
    }
}

/// Which hierarchy a jailed Firecracker's limits go to on a host: the layout a jailing
/// helper's unit is rendered for (recorded in install.toml as `cgroup = "v1"` or `"v2"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupLayout {
    /// The memory and pids controllers each have a v1 hierarchy (a v1 or hybrid host):
    /// the jailer writes only below those.
    V1,
    /// They do not, and a cgroup2 file system is mounted (a pure v2 host): the jailer
    /// enables the controllers in `cgroup.subtree_control` from the mount's root down.
    /// A host with only one of the two on v1 counts here too, and the helper refuses its
    /// jailed launches, naming the controller the unified hierarchy lacks (one bound to a
    /// v1 hierarchy is not available in v2).
    V2,
}

impl CgroupLayout {
    /// The layout of the host whose cgroup mounts are `mounts`, as the helper decides it
    /// ([`LimitHierarchy::of`]); `None` when it mounts neither.
    pub fn of(mounts: &CgroupMounts) -> Option<CgroupLayout> {
        LimitHierarchy::of(mounts).map(|h| h.layout())
    }

    /// This host's layout; `None` when it mounts neither or the table cannot be read.
    pub fn of_host() -> Option<CgroupLayout> {
        CgroupMounts::read()
            .ok()
            .as_ref()
            .and_then(CgroupLayout::of)
    }

    /// In words, for install output and doctor.
    pub fn describe(self) -> &'static str {
        match self {
            CgroupLayout::V1 => "v1 (memory and pids on v1 hierarchies: a v1 or hybrid host)",
            CgroupLayout::V2 => "v2 (memory and pids on the unified hierarchy: a pure v2 host)",
        }
    }
}

#[cfg(test)]
mod tests;
