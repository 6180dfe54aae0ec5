//! `ensure_vm_cgroup` and `remove_vm_cgroup`: per-VM limits for a system install on a
//! cgroup v1 (or hybrid) host, where the memory and pids hierarchies are root's and the
//! owner's daemon cannot make groups.
//!
//! The helper makes `banger-<owner uid>/<vm id>` in both hierarchies (the same parent its
//! jailed Firecrackers use), writes the bounded limits, and hands the group to the owner the
//! classic v1 way: only `cgroup.procs` and `tasks` become the owner's, so its VMM's child
//! can write itself in before `exec` (as it does in a group it made itself), while the limit
//! files stay root's and cannot be raised. Removal is the one release path: refused while a
//! task is in a group; the owner's parent goes with its last group.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use banger_helper_proto::{Failure, FailureKind, JailId, JailLimits};

use super::Executor;
use super::jail::cgroups::{remove_v1_dirs, v1_dirs, v1_mounts};
use super::jail::{fail, system};

/// The files a v1 group's members are moved in through.
const MEMBERSHIP_FILES: [&str; 2] = ["cgroup.procs", "tasks"];

impl Executor {
    pub(super) fn ensure_vm_cgroup(
        &self,
        id: &JailId,
        limits: JailLimits,
    ) -> Result<Vec<PathBuf>, Failure> {
        let Some(dirs) = v1_dirs(self.owner_uid, id) else {
            return Err(fail(
                FailureKind::Unsupported,
                "this host has no cgroup v1 memory and pids hierarchies: per-VM limits come \
                 from the daemon's own delegated cgroup v2 group instead",
            ));
        };
        let (memory, _) =
            v1_mounts().ok_or_else(|| fail(FailureKind::System, "v1 hierarchies vanished"))?;
        for dir in &dirs {
            let parent = dir.parent().unwrap_or(dir);
            for d in [parent, dir.as_path()] {
                match std::fs::create_dir(d) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => {
                        return Err(system(
                            format!("cannot create the cgroup {}", d.display()),
                            e,
                        ));
                    }
                }
                let meta = std::fs::symlink_metadata(d)
                    .map_err(|e| system(format!("cannot inspect {}", d.display()), e))?;
                if !meta.is_dir() || meta.uid() != 0 {
                    return Err(fail(
                        FailureKind::Conflict,
                        format!(
                            "{} is not a cgroup directory of root's: remove it",
                            d.display()
                        ),
                    ));
                }
            }
            let (file, value) = if dir.starts_with(&memory) {
                ("memory.limit_in_bytes", limits.memory_bytes().to_string())
            } else {
                ("pids.max", limits.pids_max().to_string())
            };
            std::fs::write(dir.join(file), &value).map_err(|e| {
                system(
                    format!("cannot write {value} to {}", dir.join(file).display()),
                    e,
                )
            })?;
            for name in MEMBERSHIP_FILES {
                let path = dir.join(name);
                std::os::unix::fs::lchown(&path, Some(self.owner_uid), None).map_err(|e| {
                    system(format!("cannot give {} to the owner", path.display()), e)
                })?;
            }
        }
        Ok(dirs.to_vec())
    }

    pub(super) fn remove_vm_cgroup(&self, id: &JailId) -> Result<(), Failure> {
        remove_v1_dirs(self.owner_uid, id, |dir| {
            format!(
                "VM {}'s cgroup {} still has tasks: stop its VMM first",
                id.as_str(),
                dir.display()
            )
        })
    }
}
