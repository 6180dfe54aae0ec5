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

use std::ffi::{CStr, CString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

use super::jail::Entry;

/// Capabilities above this do not exist on any kernel banger supports; dropping a number
/// the kernel does not know fails with EINVAL, which is ignored.
const LAST_CAP: libc::c_ulong = 63;

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

/// A page shared between the parent and the forked child: the step the child reached.
struct StepPage(*mut AtomicU32);

// SAFETY: the page is only accessed through the AtomicU32, which is Sync.
unsafe impl Send for StepPage {}
// SAFETY: as above.
unsafe impl Sync for StepPage {}

impl StepPage {
    fn new() -> io::Result<StepPage> {
        // SAFETY: an anonymous shared mapping of one page; the pointer is checked below and
        // unmapped in Drop.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(StepPage(p.cast()))
    }

    fn get(&self) -> &AtomicU32 {
        // SAFETY: the mapping is page-aligned, zero-filled (a valid AtomicU32) and lives
        // as long as self.
        unsafe { &*self.0 }
    }
}

impl Drop for StepPage {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the page mapped in new(); no reference outlives self.
        unsafe {
            libc::munmap(self.0.cast(), 4096);
        }
    }
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

    fn enter_jail(&self, jail: &Jail) -> io::Result<()> {
        self.mark(STEP_NAMESPACE);
        // SAFETY (every block in this function): plain system calls on NUL-terminated
        // strings prepared before the fork and alive for the whole call; they allocate
        // nothing and only change this (forked) process's namespaces.
        // SAFETY: see above.
        let rc =
            unsafe { libc::unshare(libc::CLONE_NEWNS | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS) };
        check(rc)?;
        self.mark(STEP_PRIVATE);
        // SAFETY: see above.
        check(unsafe {
            libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            )
        })?;
        self.mark(STEP_TMPFS);
        // SAFETY: see above.
        check(unsafe {
            libc::mount(
                c"tmpfs".as_ptr(),
                jail.root.as_ptr(),
                c"tmpfs".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                c"mode=0755,size=1m,nr_inodes=4096".as_ptr().cast(),
            )
        })?;
        for (i, op) in jail.ops.iter().enumerate() {
            self.mark(FIRST_ENTRY + i as u32);
            match op {
                // SAFETY: see above.
                Op::Mkdir(p) => check(unsafe { libc::mkdir(p.as_ptr(), 0o755) })?,
                Op::Proc { dir, own } => {
                    // SAFETY: see above.
                    check(unsafe { libc::mkdir(dir.as_ptr(), 0o555) })?;
                    // SAFETY: see above.
                    check(unsafe { libc::mkdir(own.as_ptr(), 0o555) })?;
                    // `/proc/self` resolves now, in this very process, which the VMM becomes
                    // at exec (same pid): only its own entry is bound, not the host's list.
                    bind(
                        c"/proc/self",
                        own,
                        libc::MS_BIND
                            | libc::MS_REMOUNT
                            | libc::MS_RDONLY
                            | libc::MS_NOSUID
                            | libc::MS_NODEV
                            | libc::MS_NOEXEC,
                    )?;
                }
                Op::Symlink { target, path } => {
                    // SAFETY: see above.
                    check(unsafe { libc::symlink(target.as_ptr(), path.as_ptr()) })?
                }
                Op::Bind {
                    src,
                    dst,
                    dir,
                    flags,
                } => {
                    if *dir {
                        // SAFETY: see above.
                        check(unsafe { libc::mkdir(dst.as_ptr(), 0o755) })?;
                    } else {
                        // SAFETY: see above; the descriptor is closed right away.
                        let fd = unsafe {
                            libc::open(
                                dst.as_ptr(),
                                libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_CLOEXEC,
                                0o600,
                            )
                        };
                        check(fd)?;
                        // SAFETY: closing the descriptor just opened.
                        unsafe { libc::close(fd) };
                    }
                    bind(src, dst, *flags)?;
                }
            }
        }
        self.mark(STEP_PIVOT);
        // pivot_root(".", ".") stacks the old root on the new one; detaching it leaves
        // only the jail (the runc idiom, which needs no directory for the old root).
        // SAFETY: see above.
        check(unsafe { libc::chdir(jail.root.as_ptr()) })?;
        // SAFETY: see above.
        let rc = unsafe { libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) };
        check(rc as libc::c_int)?;
        // SAFETY: see above.
        check(unsafe { libc::umount2(c".".as_ptr(), libc::MNT_DETACH) })?;
        // SAFETY: see above.
        check(unsafe { libc::chdir(c"/".as_ptr()) })?;
        self.mark(STEP_READ_ONLY_ROOT);
        // SAFETY: see above.
        check(unsafe {
            libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REMOUNT
                    | libc::MS_BIND
                    | libc::MS_RDONLY
                    | libc::MS_NOSUID
                    | libc::MS_NODEV
                    | libc::MS_NOEXEC,
                std::ptr::null(),
            )
        })?;
        if let Some(dir) = &jail.workdir {
            self.mark(STEP_WORKDIR);
            // SAFETY: see above.
            check(unsafe { libc::chdir(dir.as_ptr()) })?;
        }
        Ok(())
    }

    fn drop_identity(&self, id: &Identity) -> io::Result<()> {
        // While still root: empty the bounding set so nothing exec'd later can regain a
        // capability.
        for cap in 0..=LAST_CAP {
            // SAFETY: prctl with integer arguments only.
            let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) };
            if rc != 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL) {
                return Err(io::Error::last_os_error());
            }
        }
        self.mark(STEP_IDENTITY);
        // SAFETY: `groups` is a live slice of gid_t (u32) of the given length.
        check(unsafe { libc::setgroups(id.groups.len(), id.groups.as_ptr()) })?;
        // SAFETY: integer arguments only.
        check(unsafe { libc::setresgid(id.gid, id.gid, id.gid) })?;
        // Leaving uid 0 clears the permitted and effective capability sets (no
        // SECBIT_KEEP_CAPS is set).
        // SAFETY: integer arguments only.
        check(unsafe { libc::setresuid(id.uid, id.uid, id.uid) })?;
        // SAFETY: integer arguments only.
        check(unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
                0,
                0,
                0,
            )
        })?;
        Ok(())
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

/// Write `text` to the file `path` with nothing but system calls.
pub(super) fn write_file(path: &std::ffi::CStr, text: &std::ffi::CStr) -> io::Result<()> {
    // SAFETY: `path` is NUL-terminated; the descriptor is closed below.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    check(fd)?;
    let bytes = text.to_bytes();
    // SAFETY: `bytes` is a live buffer of the given length.
    let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
    let result = if n == bytes.len() as isize {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    };
    // SAFETY: closing the descriptor opened above.
    unsafe { libc::close(fd) };
    result
}

/// Bind `src` onto `dst` (which exists), then remount the bind with `flags` (the caller's
/// `MS_BIND | MS_REMOUNT | …`: read-only, nosuid and so on apply only on a remount). Not
/// recursive: nothing mounted below a bound path (such as this very jail's tmpfs inside
/// the VM directory) comes along. Only system calls: safe between fork and exec.
fn bind(src: &CStr, dst: &CStr, flags: libc::c_ulong) -> io::Result<()> {
    // SAFETY: both paths are NUL-terminated C strings that outlive the call; the mount
    // changes only this process's private mount namespace.
    check(unsafe {
        libc::mount(
            src.as_ptr(),
            dst.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        )
    })?;
    // SAFETY: as above; a null source and type are what a remount takes.
    check(unsafe {
        libc::mount(
            std::ptr::null(),
            dst.as_ptr(),
            std::ptr::null(),
            flags,
            std::ptr::null(),
        )
    })
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

impl Confinement {
    /// Run in the forked child before `exec`. Async-signal-safe: it only makes system calls
    /// on what [`Confinement::new`] prepared (no allocation, no locks, no panics).
    pub fn in_child(&self) -> io::Result<()> {
        // First, while still root and in the daemon's namespaces: everything after, the
        // guest included, is charged to the VM's group.
        if let Some(cgroup) = &self.cgroup {
            self.mark(STEP_CGROUP);
            cgroup.enter()?;
        }
        if let Some(ns) = &self.userns {
            self.mark(STEP_USERNS);
            // SAFETY: unshare takes only flags.
            check(unsafe { libc::unshare(libc::CLONE_NEWUSER) })?;
            self.mark(STEP_ID_MAPS);
            // Without setgroups denied, an unprivileged process may not write gid_map.
            write_file(c"/proc/self/setgroups", c"deny")?;
            write_file(c"/proc/self/uid_map", ns.uid_map.as_c_str())?;
            write_file(c"/proc/self/gid_map", ns.gid_map.as_c_str())?;
        }
        if let Some(jail) = &self.jail {
            self.enter_jail(jail)?;
        }
        self.mark(STEP_NO_NEW_PRIVS);
        // SAFETY: prctl with integer arguments only.
        check(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) })?;
        if let Some(id) = &self.identity {
            self.drop_identity(id)?;
        }
        // Files the VMM creates (sockets, its pid file) are its own alone.
        // SAFETY: umask has no failure mode and touches no memory.
        unsafe { libc::umask(0o077) };
        self.mark(0);
        Ok(())
    }
}
