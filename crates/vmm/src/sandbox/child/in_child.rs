//! The forked child's side: only system calls on what [`Confinement::new`] prepared.

use std::ffi::CStr;
use std::io;

use super::{
    Confinement, FIRST_ENTRY, Identity, Jail, Op, STEP_CGROUP, STEP_ID_MAPS, STEP_IDENTITY,
    STEP_NAMESPACE, STEP_NO_NEW_PRIVS, STEP_PIVOT, STEP_PRIVATE, STEP_READ_ONLY_ROOT, STEP_TMPFS,
    STEP_USERNS, STEP_WORKDIR,
};

/// Capabilities above this do not exist on any kernel banger supports; dropping a number
/// the kernel does not know fails with EINVAL, which is ignored.
const LAST_CAP: libc::c_ulong = 63;

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

/// Write `text` to the file `path` with nothing but system calls.
pub(in crate::sandbox) fn write_file(
    path: &std::ffi::CStr,
    text: &std::ffi::CStr,
) -> io::Result<()> {
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
