//! The unprivileged uids and gids sandboxed VMMs run as.
//!
//! A root daemon never runs a VMM as root: each VM gets its own uid and gid from a reserved
//! numeric range, so one compromised VMM cannot signal, ptrace or read another. No passwd or
//! group entries are created on the host — the numbers are only ever used as numbers. The
//! first id of the range is the *inputs group*: the group of the shared read-only files
//! (kernels, initrds, base images) every sandboxed VMM may read and other local users may not.

use std::collections::HashSet;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Start of the default range (`sandbox.vmm_id_base`): above systemd-nspawn's container
/// ranges (which end at 1879048191) and below 2³¹, which some tools mishandle.
pub const DEFAULT_ID_BASE: u32 = banger_config::BUILTIN_VMM_ID_BASE;
/// Ids in the default range (the first is the inputs group, the rest one per VM).
pub const DEFAULT_ID_COUNT: u32 = banger_config::BUILTIN_VMM_ID_COUNT;
/// The range must start above every uid a distribution hands out to users and services
/// (Debian: below 60000; systemd's dynamic users: 61184–65519).
pub const MIN_ID_BASE: u32 = banger_config::VMM_ID_BASE_RANGE.0 as u32;

/// A reserved range of numeric ids: `base` is the inputs group, `base + 1 ..` are VM ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    base: u32,
    count: u32,
}

impl Default for IdRange {
    fn default() -> Self {
        IdRange {
            base: DEFAULT_ID_BASE,
            count: DEFAULT_ID_COUNT,
        }
    }
}

impl IdRange {
    /// A range of `count` ids from `base`. Refused when it would overlap users' or system
    /// ids, cross 2³¹, or leave no id for a VM.
    pub fn new(base: u32, count: u32) -> Result<IdRange, String> {
        if base < MIN_ID_BASE {
            return Err(format!(
                "the VMM id range starts at {base}, among ordinary users' and system ids; \
                 start it at {MIN_ID_BASE} or above"
            ));
        }
        if count < 2 {
            return Err(format!(
                "the VMM id range has {count} ids; it needs at least 2 (the inputs group and one VM)"
            ));
        }
        if u64::from(base) + u64::from(count) > 1 << 31 {
            return Err(format!(
                "the VMM id range {base}+{count} ends above 2^31; tools mishandle such ids, \
                 so keep the range below 2147483648"
            ));
        }
        Ok(IdRange { base, count })
    }

    pub fn base(&self) -> u32 {
        self.base
    }

    pub fn count(&self) -> u32 {
        self.count
    }

    /// The group of shared read-only inputs; every sandboxed VMM has it as its one
    /// supplementary group.
    pub fn inputs_gid(&self) -> u32 {
        self.base
    }

    /// Whether `id` is one of this range's per-VM ids.
    pub fn is_vm_id(&self, id: u32) -> bool {
        id > self.base && u64::from(id) < u64::from(self.base) + u64::from(self.count)
    }

    /// The id for VM `vm_id`: its hash picks a starting slot (so a VM tends to keep its id
    /// across boots), and the first slot from there that no live process uses wins. `None`
    /// when every id of the range is in use.
    pub fn pick(&self, vm_id: &str, in_use: &HashSet<u32>) -> Option<u32> {
        let slots = self.count - 1;
        let start = fnv1a(vm_id.as_bytes()) % u64::from(slots);
        (0..u64::from(slots))
            .map(|i| self.base + 1 + ((start + i) % u64::from(slots)) as u32)
            .find(|id| !in_use.contains(id))
    }
}

/// 64-bit FNV-1a: stable across builds and platforms (std's hasher is not).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Every uid and gid (real, effective, saved, filesystem) any live process holds, in one
/// pass over `/proc` that reads a process's `status` only when its ids may differ.
///
/// What this relies on (measured on Linux 6.18; `proc/base.c::task_dump_owner`):
///
/// * The owner of the *directory* `/proc/PID` is the process's effective uid and gid,
///   whatever its dumpability (per-process directories are exempt from the rule that makes a
///   non-dumpable process's files root's); kernel threads' are root's.
/// * Its files (`/proc/PID/stat`) are owned the same way only while the process is
///   dumpable; a non-dumpable one's are root's (or its user namespace's root's). The kernel
///   makes a process non-dumpable when its effective or filesystem ids change (`setuid`,
///   `setresuid`, `setfsuid`: `commit_creds`) or it execs with real ≠ effective ids or a
///   set-id binary. So an unprivileged process (which can only permute the ids it has) that
///   is dumpable holds no real, saved or filesystem id other than its effective ones.
///
/// A process is therefore read cheaply (two `stat`s, against one `status` that the kernel
/// formats in full: about 2 µs against 20 µs a process here) when its directory's owner is
/// not root and its `stat` file has the same owner; every other process's `status` is read
/// in full: root's (real and saved ids of anything), kernel threads, and the non-dumpable
/// (those that changed ids). What the cheap path cannot see is a process that changed only
/// its real or saved ids while keeping a non-root effective uid (which takes `CAP_SETUID`),
/// or that made itself dumpable again after changing ids (`prctl(PR_SET_DUMPABLE)`): both
/// are deliberate acts of privileged code, and banger's range is reserved for it alone.
pub fn ids_in_use() -> io::Result<HashSet<u32>> {
    let mut ids = HashSet::new();
    for pid in banger_system::procfs::pids()? {
        // A process may exit between the listing and the reads: skip it.
        let _ = ids_of(Path::new(&format!("/proc/{pid}")), &mut ids);
    }
    Ok(ids)
}

/// How [`ids_of`] learnt a process's ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Read {
    /// From the owner of its `/proc` directory: its effective ids, which are all it holds.
    Owner,
    /// From its `status` file: real, effective, saved and filesystem ids.
    Status,
}

/// Add the ids the process at `proc_dir` (`/proc/PID`) holds to `ids` (see [`ids_in_use`]);
/// `None` when it is gone.
fn ids_of(proc_dir: &Path, ids: &mut HashSet<u32>) -> Option<Read> {
    let owner = std::fs::metadata(proc_dir).ok()?;
    let (euid, egid) = (owner.uid(), owner.gid());
    if euid != 0
        && egid != 0
        && std::fs::metadata(proc_dir.join("stat"))
            .is_ok_and(|file| (file.uid(), file.gid()) == (euid, egid))
    {
        ids.insert(euid);
        ids.insert(egid);
        return Some(Read::Owner);
    }
    let status = std::fs::read_to_string(proc_dir.join("status")).ok()?;
    for line in status.lines() {
        if let Some(rest) = line
            .strip_prefix("Uid:")
            .or_else(|| line.strip_prefix("Gid:"))
        {
            ids.extend(
                rest.split_whitespace()
                    .filter_map(|s| s.parse::<u32>().ok()),
            );
        }
    }
    Some(Read::Status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_overlapping_users_or_crossing_2_31_are_refused() {
        assert!(IdRange::new(1000, 100).unwrap_err().contains("65536"));
        assert!(IdRange::new(100_000, 1).unwrap_err().contains("at least 2"));
        assert!(
            IdRange::new(2_147_483_000, 1000)
                .unwrap_err()
                .contains("2^31")
        );
        let r = IdRange::new(100_000, 10).unwrap();
        assert_eq!(r.inputs_gid(), 100_000);
        assert!(!r.is_vm_id(100_000));
        assert!(r.is_vm_id(100_001) && r.is_vm_id(100_009));
        assert!(!r.is_vm_id(100_010));
        let d = IdRange::default();
        assert!(IdRange::new(d.base(), d.count()).is_ok());
    }

    #[test]
    fn picks_are_stable_distinct_and_skip_ids_in_use() {
        let r = IdRange::new(100_000, 10).unwrap();
        let none = HashSet::new();
        let a = r.pick("vm-a", &none).unwrap();
        assert_eq!(r.pick("vm-a", &none), Some(a), "a VM keeps its slot");
        assert!(r.is_vm_id(a));
        let busy: HashSet<u32> = [a].into();
        let b = r.pick("vm-a", &busy).unwrap();
        assert_ne!(a, b);
        assert!(r.is_vm_id(b));
        let all: HashSet<u32> = (100_001..100_010).collect();
        assert_eq!(r.pick("vm-a", &all), None);
        // The last free id is found whatever the start.
        let all_but_one: HashSet<u32> = (100_001..100_009).collect();
        assert_eq!(r.pick("anything", &all_but_one), Some(100_009));
    }

    /// A `cat` started by `setpriv` with `ids` (its options), once it runs with them. Not a
    /// shell: dash and bash set their effective ids to the real ones when they differ.
    struct Holder(std::process::Child);

    impl Holder {
        fn spawn(ids: &[&str]) -> Holder {
            use std::io::{BufRead, Write};
            let mut child = std::process::Command::new("setpriv")
                .args(ids)
                .args(["--clear-groups", "cat"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("run setpriv (util-linux)");
            // `cat` echoes once setpriv has changed the ids and exec'd it.
            child.stdin.as_mut().unwrap().write_all(b"ready\n").unwrap();
            let mut line = String::new();
            std::io::BufReader::new(child.stdout.as_mut().unwrap())
                .read_line(&mut line)
                .unwrap();
            assert_eq!(line, "ready\n");
            Holder(child)
        }

        fn dir(&self) -> std::path::PathBuf {
            format!("/proc/{}", self.0.id()).into()
        }
    }

    impl Drop for Holder {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn is_root() -> bool {
        // SAFETY: geteuid has no preconditions and touches no memory.
        unsafe { libc::geteuid() == 0 }
    }

    #[test]
    fn ids_held_only_as_real_or_saved_ids_are_found() {
        assert!(
            is_root(),
            "this test starts processes with other ids and must run as root (CI does)"
        );
        let (b1, b2, b3, b4, g4) = (
            "1900000101",
            "1900000102",
            "1900000103",
            "1900000104",
            "1900000105",
        );
        // Real uid in the range, effective root: the directory says root.
        let rooted = Holder::spawn(&["--ruid", b1, "--euid", "0", "--regid", "0"]);
        // Real uid in the range, effective another one: exec made it non-dumpable.
        let hidden = Holder::spawn(&["--ruid", b2, "--euid", b3, "--regid", b3]);
        // All ids the same: dumpable, read from the directory's owner alone.
        let plain = Holder::spawn(&["--reuid", b4, "--regid", g4]);
        let id = |s: &str| s.parse::<u32>().unwrap();
        for (holder, want, read) in [
            (&rooted, vec![id(b1), 0], Read::Status),
            (&hidden, vec![id(b2), id(b3)], Read::Status),
            (&plain, vec![id(b4), id(g4)], Read::Owner),
        ] {
            let mut ids = HashSet::new();
            assert_eq!(ids_of(&holder.dir(), &mut ids), Some(read), "{want:?}");
            assert!(want.iter().all(|w| ids.contains(w)), "{want:?} in {ids:?}");
        }
        let all = ids_in_use().unwrap();
        for want in [b1, b2, b3, b4, g4] {
            assert!(all.contains(&id(want)), "{want}");
        }
    }

    #[test]
    fn the_cheap_read_misses_no_id_a_live_process_holds() {
        let mut checked = 0;
        for pid in banger_system::procfs::pids().unwrap() {
            let dir = std::path::PathBuf::from(format!("/proc/{pid}"));
            let Ok(status) = std::fs::read_to_string(dir.join("status")) else {
                continue;
            };
            let mut full = HashSet::new();
            for line in status.lines() {
                if let Some(rest) = line.strip_prefix("Uid:").or(line.strip_prefix("Gid:")) {
                    full.extend(rest.split_whitespace().map(|s| s.parse::<u32>().unwrap()));
                }
            }
            let mut cheap = HashSet::new();
            if ids_of(&dir, &mut cheap).is_some() {
                assert!(cheap.is_superset(&full), "pid {pid}: {cheap:?} ⊉ {full:?}");
                checked += 1;
            }
        }
        assert!(checked > 1, "only {checked} processes were read");
    }

    #[test]
    fn live_ids_include_our_own() {
        let ids = ids_in_use().unwrap();
        // SAFETY: getuid has no preconditions and touches no memory.
        let uid = unsafe { libc::getuid() };
        assert!(ids.contains(&uid));
    }
}
