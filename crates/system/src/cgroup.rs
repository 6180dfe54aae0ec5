//! The cgroup hierarchies this host mounts, read from its mount table: where the memory
//! and pids controllers a jailed Firecracker's limits need live.
//!
//! One reader for everyone who asks: the root helper (which `--cgroup-version` the jailer
//! gets, and where its groups are), `banger system install` (whether the jailing helper's
//! unit must leave the cgroup tree writable) and `banger doctor` (whether the installed
//! unit still fits the host). Each reads the text of `/proc/self/mounts` ([`read_mounts`])
//! and passes it in, so tests use stand-in tables.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Where `/proc/self/mounts` is.
pub const MOUNTS: &str = "/proc/self/mounts";

/// The text of this process's mount table.
pub fn read_mounts() -> std::io::Result<String> {
    std::fs::read_to_string(MOUNTS)
}

/// The mount points of `mounts` (the text of `/proc/self/mounts`) whose file system type is
/// `fstype` and, when `controller` is given (v1), whose options name it.
pub fn mount_points<'a>(
    mounts: &'a str,
    fstype: &'a str,
    controller: Option<&'a str>,
) -> impl Iterator<Item = PathBuf> + 'a {
    mounts.lines().filter_map(move |line| {
        let f: Vec<&str> = line.split(' ').collect();
        let options_match =
            controller.is_none_or(|c| f.get(3).is_some_and(|o| o.split(',').any(|o| o == c)));
        (f.get(2) == Some(&fstype) && options_match)
            .then(|| PathBuf::from(f[1].replace("\\040", " ")))
    })
}

/// The v1 memory and pids hierarchies' mount points in `mounts`, when both exist.
pub fn v1_memory_pids(mounts: &str) -> Option<(PathBuf, PathBuf)> {
    let find = |c| mount_points(mounts, "cgroup", Some(c)).next();
    Some((find("memory")?, find("pids")?))
}

/// The first cgroup2 mount in `mounts`: the one the jailer takes.
pub fn unified_mount(mounts: &str) -> Option<PathBuf> {
    mount_points(mounts, "cgroup2", None).next()
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
    V2,
}

impl CgroupLayout {
    /// The layout of the host whose mount table is `mounts`, as the helper decides it
    /// (v1 hierarchies first); `None` when it mounts neither.
    pub fn of(mounts: &str) -> Option<CgroupLayout> {
        if v1_memory_pids(mounts).is_some() {
            Some(CgroupLayout::V1)
        } else {
            unified_mount(mounts).map(|_| CgroupLayout::V2)
        }
    }

    /// This host's layout; `None` when it mounts neither or the table cannot be read.
    pub fn of_host() -> Option<CgroupLayout> {
        read_mounts().ok().as_deref().and_then(CgroupLayout::of)
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
mod tests {
    use super::*;

    /// Debian 11 with systemd's hybrid layout.
    const HYBRID: &str = "sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0\n\
        tmpfs /sys/fs/cgroup tmpfs ro,nosuid,nodev,noexec,mode=755 0 0\n\
        cgroup2 /sys/fs/cgroup/unified cgroup2 rw,nosuid,nodev,noexec,relatime,nsdelegate 0 0\n\
        cgroup /sys/fs/cgroup/memory cgroup rw,nosuid,nodev,noexec,relatime,memory 0 0\n\
        cgroup /sys/fs/cgroup/pids cgroup rw,nosuid,nodev,noexec,relatime,pids 0 0\n";

    /// Debian 12: the unified hierarchy only.
    const UNIFIED: &str = "sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0\n\
        cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime,nsdelegate,memory_recursiveprot 0 0\n";

    #[test]
    fn layouts_from_stand_in_mount_tables() {
        assert_eq!(CgroupLayout::of(HYBRID), Some(CgroupLayout::V1));
        assert_eq!(CgroupLayout::of(UNIFIED), Some(CgroupLayout::V2));
        assert_eq!(CgroupLayout::of("proc /proc proc rw 0 0\n"), None);
        // Memory on v1 but pids not: the helper looks to v2 (and refuses there).
        let memory_only = UNIFIED.to_owned()
            + "cgroup /sys/fs/cgroup/memory cgroup rw,nosuid,nodev,noexec,relatime,memory 0 0\n";
        assert_eq!(CgroupLayout::of(&memory_only), Some(CgroupLayout::V2));
        assert_eq!(
            v1_memory_pids(HYBRID),
            Some(("/sys/fs/cgroup/memory".into(), "/sys/fs/cgroup/pids".into()))
        );
        assert_eq!(unified_mount(HYBRID), Some("/sys/fs/cgroup/unified".into()));
        let spaced = "cgroup2 /mnt/my\\040cg cgroup2 rw 0 0\n";
        assert_eq!(unified_mount(spaced), Some("/mnt/my cg".into()));
    }

    #[test]
    fn the_layout_is_recorded_as_v1_or_v2() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct R {
            cgroup: CgroupLayout,
        }
        let text = serde_json::to_string(&R {
            cgroup: CgroupLayout::V2,
        })
        .unwrap();
        assert_eq!(text, r#"{"cgroup":"v2"}"#);
        let back: R = serde_json::from_str(r#"{"cgroup":"v1"}"#).unwrap();
        assert_eq!(back.cgroup, CgroupLayout::V1);
    }
}
