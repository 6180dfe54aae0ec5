//! A process's cgroups and their limits, read back from `/proc` and cgroupfs: what
//! `banger doctor`, `vm inspect` and the tests report. Read-only.

use std::path::{Path, PathBuf};

use banger_system::cgroup::CgroupMounts;

use super::detect::own_path;

/// The memory and pids groups a process is in, with their limits and use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessCgroups {
    /// `v1` or `v2`: the hierarchy its memory group is on.
    pub version: Option<&'static str>,
    pub memory_dir: Option<PathBuf>,
    pub pids_dir: Option<PathBuf>,
    /// `None`: no limit (or unreadable).
    pub memory_max: Option<u64>,
    pub memory_current: Option<u64>,
    pub pids_max: Option<u64>,
    pub pids_current: Option<u64>,
}

impl ProcessCgroups {
    /// Both a memory and a pids limit are set.
    pub fn limited(&self) -> bool {
        self.memory_max.is_some() && self.pids_max.is_some()
    }

    /// `memory ≤ 1.5 GiB (312 MiB used), tasks ≤ 512 (9)`, or what is unlimited.
    pub fn summary(&self) -> String {
        let mib = |b: u64| format!("{} MiB", b >> 20);
        let memory = match (self.memory_max, self.memory_current) {
            (Some(max), Some(cur)) => format!("memory ≤ {} ({} used)", mib(max), mib(cur)),
            (Some(max), None) => format!("memory ≤ {}", mib(max)),
            (None, _) => "memory unlimited".to_owned(),
        };
        let pids = match (self.pids_max, self.pids_current) {
            (Some(max), Some(cur)) => format!("tasks ≤ {max} ({cur})"),
            (Some(max), None) => format!("tasks ≤ {max}"),
            (None, _) => "tasks unlimited".to_owned(),
        };
        format!("{memory}, {pids}")
    }
}

/// The groups of process `pid`.
pub fn of_process(pid: u32) -> std::io::Result<ProcessCgroups> {
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
    let mounts = CgroupMounts::read().map_err(|e| e.source)?;
    Ok(resolve(&mounts, &own))
}

/// [`of_process`] on given cgroup `mounts` and `/proc/PID/cgroup` text.
pub fn resolve(mounts: &CgroupMounts, proc_cgroup: &str) -> ProcessCgroups {
    let mut out = ProcessCgroups::default();
    let v1 = |controller: &str| {
        mounts
            .v1(controller)?
            .dir_of(own_path(proc_cgroup, controller)?)
    };
    if let (Some(memory), Some(pids)) = (v1("memory"), v1("pids")) {
        out.version = Some("v1");
        out.memory_max = read_limit(&memory.join("memory.limit_in_bytes"));
        out.memory_current = read_limit(&memory.join("memory.usage_in_bytes"));
        out.pids_max = read_limit(&pids.join("pids.max"));
        out.pids_current = read_limit(&pids.join("pids.current"));
        out.memory_dir = Some(memory);
        out.pids_dir = Some(pids);
        return out;
    }
    let v2 = mounts
        .unified()
        .and_then(|m| m.dir_of(own_path(proc_cgroup, "")?));
    if let Some(dir) = v2
        && dir.join("memory.max").exists()
    {
        out.version = Some("v2");
        out.memory_max = read_limit(&dir.join("memory.max"));
        out.memory_current = read_limit(&dir.join("memory.current"));
        out.pids_max = read_limit(&dir.join("pids.max"));
        out.pids_current = read_limit(&dir.join("pids.current"));
        out.memory_dir = Some(dir.clone());
        out.pids_dir = Some(dir);
    }
    out
}

/// A limit file's value; `None` for `max`, v1's "no limit" (a page-rounded `i64::MAX`), or
/// an unreadable file.
fn read_limit(file: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(file).ok()?;
    let v: u64 = text.trim().parse().ok()?;
    (v < (1 << 62)).then_some(v)
}

/// The tasks (process ids) in the group `dir`.
pub fn tasks(dir: &Path) -> Vec<u32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// v2 read back from a directory tree (the v2 backend cannot run on banger's v1 CI hosts;
    /// this is its only check).
    #[test]
    fn v2_limits_from_a_tree() {
        let dir = tempfile::tempdir().unwrap();
        let g = dir.path().join("svc/banger-x/0123456789ab");
        std::fs::create_dir_all(&g).unwrap();
        for (f, v) in [
            ("memory.max", "1342177280\n"),
            ("memory.current", "10485760\n"),
            ("pids.max", "max\n"),
            ("pids.current", "7\n"),
        ] {
            std::fs::write(g.join(f), v).unwrap();
        }
        let info = CgroupMounts::parse(&format!(
            "41 31 0:38 / {} rw - cgroup2 cgroup2 rw\n",
            dir.path().display()
        ));
        let got = resolve(&info, "0::/svc/banger-x/0123456789ab\n");
        assert_eq!(got.version, Some("v2"));
        assert_eq!(got.memory_max, Some(1_342_177_280));
        assert_eq!(got.pids_max, None);
        assert!(!got.limited());
        assert_eq!(
            got.summary(),
            "memory ≤ 1280 MiB (10 MiB used), tasks unlimited"
        );
    }
}
