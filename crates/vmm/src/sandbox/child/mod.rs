//! Confining the VMM between fork and exec.
//!
//! [`Confinement::new`] turns a jail plan and an identity into C strings and numbers before
//! the fork; [`Confinement::in_child`] then only makes system calls on them (no allocation,
//! no locks: the forked copy of a multi-threaded daemon may hold the allocator's lock). The
//! order is the jailer's: a private mount namespace (propagation made private first, so the
//! host's mounts are never touched), a tmpfs root filled with binds, `pivot_root` and the
//! old root detached, the VM's directory entered, then the identity drop, then `exec`.
//!
//! Which step failed is written to a page shared with the parent (`mmap(MAP_SHARED)` before
//! the fork), because the only other thing that crosses back is an errno.
//!
//! The child's side is [`in_child`]; the shared page, [`page`].

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::Ordering;

use super::jail::Entry;
use page::StepPage;

mod in_child;
mod page;

pub(super) use in_child::write_file;

/// The unprivileged identity a root daemon's VMM runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    /// The only supplementary groups (the inputs group; `/dev/kvm`'s group under KVM).
    pub groups: Vec<u32>,
}

enum Op {
    Mkdir(CString),
    Symlink {
        target: CString,
        path: CString,
    },
    Bind {
        src: CString,
        dst: CString,
        dir: bool,
        /// Flags of the read-only/nosuid/nodev remount that follows the bind.
        flags: libc::c_ulong,
    },
    /// Make `dir` (`/proc`) and `own` (`/proc/self`) and bind this process's own `/proc`
    /// entry on `own` ([`Entry::Proc`]).
    Proc {
        dir: CString,
        own: CString,
    },
}

/// Everything the child does, prepared.
pub struct Confinement {
    /// A user namespace mapping only the caller's own uid and gid, entered first, so an
    /// ordinary user may build the jail.
    userns: Option<UserNs>,
    jail: Option<Jail>,
    identity: Option<Identity>,
    /// The VM's cgroup, entered first.
    cgroup: Option<super::cgroup::Placement>,
    step: StepPage,
}

struct UserNs {
    uid_map: CString,
    gid_map: CString,
}

struct Jail {
    root: CString,
    ops: Vec<Op>,
    entries: Vec<Entry>,
    /// The working directory inside the jail (a bound directory, at its host path).
    workdir: Option<CString>,
}

impl std::fmt::Debug for Confinement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Confinement")
            .field("jail", &self.jail.as_ref().map(|j| &j.entries))
            .field("identity", &self.identity)
            .field("cgroup", &self.cgroup)
            .finish()
    }
}

// Steps before the jail's entries; entry `i` is step `FIRST_ENTRY + i`.
const STEP_NAMESPACE: u32 = 1;
const STEP_PRIVATE: u32 = 2;
const STEP_TMPFS: u32 = 3;
const STEP_PIVOT: u32 = 4;
const STEP_READ_ONLY_ROOT: u32 = 5;
const STEP_NO_NEW_PRIVS: u32 = 6;
const STEP_IDENTITY: u32 = 7;
const STEP_USERNS: u32 = 8;
const STEP_ID_MAPS: u32 = 9;
const STEP_CGROUP: u32 = 10;
const STEP_WORKDIR: u32 = 11;
const FIRST_ENTRY: u32 = 100;

fn cstr(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{path:?} contains a NUL byte"),
        )
    })
}

impl Confinement {
    /// `jail`: mount the plan's entries in a tmpfs at `root` (an empty directory the
    /// caller made) and make it the root; `identity`: drop to it. With neither, the child
    /// still gets `no_new_privs`.
    pub fn new(
        jail: Option<(&Path, Vec<Entry>)>,
        identity: Option<Identity>,
    ) -> io::Result<Confinement> {
        Confinement::build(jail, identity, false)
    }

    /// A jail an ordinary user builds inside a user namespace that maps only their own
    /// uid and gid (they keep exactly their own access to every file).
    pub fn in_user_namespace(root: &Path, entries: Vec<Entry>) -> io::Result<Confinement> {
        Confinement::build(Some((root, entries)), None, true)
    }

    /// Inside the jail, work in `dir` (a directory the plan binds at its own path): the
    /// `pivot_root` leaves the child in the jail's `/`, whatever directory it was spawned
    /// in, and a VMM given paths relative to its VM directory (Firecracker's drives and
    /// vsock, `firecracker::relocate`) must resolve them there. Without a jail the
    /// spawner's own working directory stays.
    pub fn working_dir(mut self, dir: &Path) -> io::Result<Confinement> {
        if let Some(jail) = &mut self.jail {
            jail.workdir = Some(cstr(dir)?);
        }
        Ok(self)
    }

    /// Enter `placement` (the VM's cgroup) before anything else.
    pub fn in_cgroup(mut self, placement: Option<super::cgroup::Placement>) -> Confinement {
        self.cgroup = placement;
        self
    }

    fn build(
        jail: Option<(&Path, Vec<Entry>)>,
        identity: Option<Identity>,
        userns: bool,
    ) -> io::Result<Confinement> {
        // SAFETY: getuid/getgid have no preconditions and touch no memory.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let userns = if userns {
            Some(UserNs {
                uid_map: CString::new(format!("{uid} {uid} 1"))?,
                gid_map: CString::new(format!("{gid} {gid} 1"))?,
            })
        } else {
            None
        };
        let jail = match jail {
            None => None,
            Some((root, entries)) => {
                let under = |p: &Path| cstr(&root.join(p.strip_prefix("/").unwrap_or(p)));
                let mut ops = Vec::with_capacity(entries.len());
                for e in &entries {
                    ops.push(match e {
                        Entry::Dir(p) => Op::Mkdir(under(p)?),
                        Entry::Symlink { path, target } => Op::Symlink {
                            target: cstr(target)?,
                            path: under(path)?,
                        },
                        Entry::Bind {
                            path,
                            dir,
                            writable,
                            device,
                        } => {
                            let mut flags = libc::MS_BIND
                                | libc::MS_REMOUNT
                                | libc::MS_NOSUID
                                | source_flags(path);
                            if !writable {
                                flags |= libc::MS_RDONLY;
                            }
                            if !device {
                                flags |= libc::MS_NODEV;
                            }
                            Op::Bind {
                                src: cstr(path)?,
                                dst: under(path)?,
                                dir: *dir,
                                flags,
                            }
                        }
                        Entry::Proc => Op::Proc {
                            dir: under(Path::new("/proc"))?,
                            own: under(Path::new("/proc/self"))?,
                        },
                    });
                }
                Some(Jail {
                    root: cstr(root)?,
                    ops,
                    entries,
                    workdir: None,
                })
            }
        };
        Ok(Confinement {
            userns,
            jail,
            identity,
            cgroup: None,
            step: StepPage::new()?,
        })
    }

    /// What the child was doing when it failed (after a spawn error).
    pub fn failed_step(&self) -> String {
        let step = self.step.get().load(Ordering::SeqCst);
        match step {
            STEP_NAMESPACE => "create a private mount namespace".into(),
            STEP_PRIVATE => "make the mount namespace's propagation private".into(),
            STEP_TMPFS => "mount the jail's tmpfs root".into(),
            STEP_PIVOT => "pivot into the jail's root".into(),
            STEP_READ_ONLY_ROOT => "make the jail's root read-only".into(),
            STEP_NO_NEW_PRIVS => "set no_new_privs and drop capabilities".into(),
            STEP_IDENTITY => "drop to the VM's uid and gid".into(),
            STEP_USERNS => "create a user namespace".into(),
            STEP_ID_MAPS => "map its own uid and gid in the user namespace".into(),
            STEP_CGROUP => "enter the VM's cgroup".into(),
            STEP_WORKDIR => match self.jail.as_ref().and_then(|j| j.workdir.as_ref()) {
                Some(dir) => format!("enter {dir:?} in the jail"),
                None => "enter the working directory in the jail".into(),
            },
            n if n >= FIRST_ENTRY => {
                let entry = self
                    .jail
                    .as_ref()
                    .and_then(|j| j.entries.get((n - FIRST_ENTRY) as usize));
                match entry {
                    Some(Entry::Dir(p)) => format!("create {p:?} in the jail"),
                    Some(Entry::Symlink { path, .. }) => format!("link {path:?} in the jail"),
                    Some(Entry::Bind { path, .. }) => format!("bind {path:?} into the jail"),
                    Some(Entry::Proc) => "bind its own /proc entry into the jail".into(),
                    None => format!("step {n}"),
                }
            }
            _ => "start the VMM".into(),
        }
    }

    fn mark(&self, step: u32) {
        self.step.get().store(step, Ordering::SeqCst);
    }
}

/// The per-mount flags of the mount `path` is on, as `mount(2)` flags: a bind remount
/// must keep them (the kernel refuses to clear the atime, noexec, nosuid or read-only
/// flags of a mount from a less privileged namespace).
fn source_flags(path: &Path) -> libc::c_ulong {
    let Ok(c) = cstr(path) else { return 0 };
    // SAFETY: an all-zero statvfs is a valid value of this plain C struct.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is NUL-terminated and `st` a valid, writable buffer.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return 0;
    }
    let f = st.f_flag;
    [
        (libc::ST_RDONLY, libc::MS_RDONLY),
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ]
    .into_iter()
    .filter(|(st_flag, _)| f & *st_flag != 0)
    .fold(0, |acc, (_, ms)| acc | ms)
}
