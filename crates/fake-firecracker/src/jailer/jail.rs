//! The fake jailer's process work, in the real jailer's order (see the module above).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::Args;

/// System directories the concession binds into the chroot for the dynamically linked fake.
const SYSTEM_DIRS: &[&str] = &["/usr", "/lib", "/lib64", "/bin", "/sbin"];

/// The device nodes the jailer makes in the chroot: path, major, minor.
const NODES: &[(&str, u32, u32)] = &[
    ("/dev/kvm", 10, 232),
    ("/dev/net/tun", 10, 200),
    ("/dev/urandom", 1, 9),
];

fn cstr(path: &Path) -> Result<CString, String> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| format!("{} holds a NUL byte", path.display()))
}

/// `what` failed with the last OS error.
fn os(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

fn check(rc: libc::c_int, what: &str) -> Result<(), String> {
    if rc == -1 { Err(os(what)) } else { Ok(()) }
}

pub(super) fn enter_and_exec(args: &Args) -> Result<i32, String> {
    let chroot = args.chroot_dir();
    std::fs::create_dir_all(&chroot)
        .map_err(|e| format!("Failed to create {}: {e}", chroot.display()))?;
    let exec_name = args.exec_name().to_owned();
    let inside = chroot.join(&exec_name);
    std::fs::copy(&args.exec_file, &inside).map_err(|e| {
        format!(
            "Failed to copy {} to {}: {e}",
            args.exec_file.display(),
            inside.display()
        )
    })?;
    // The concession's guest: a `banger-agent` beside the exec file goes beside its copy,
    // where the fake Firecracker looks for its guest's agent.
    let agent = args.exec_file.with_file_name("banger-agent");
    if agent.is_file() {
        std::fs::copy(&agent, chroot.join("banger-agent"))
            .map_err(|e| format!("Failed to copy {}: {e}", agent.display()))?;
    }
    super::cgroup::enter(args)?;
    // Opened before the jail, which has no /dev/null.
    let null = if args.daemonize {
        Some(
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")
                .map_err(|e| format!("open /dev/null: {e}"))?,
        )
    } else {
        None
    };
    pivot_into(&chroot)?;
    make_nodes(args)?;
    // SAFETY: chown of a path we own, with plain integers.
    let rc = unsafe { libc::chown(c"/".as_ptr(), args.uid, args.gid) };
    check(rc, "chown of the chroot")?;
    if let Some(netns) = &args.netns {
        join_netns(netns)?;
    }
    if let Some(null) = &null {
        daemonize(null)?;
    }
    // The real jailer clears the whole environment; the fake keeps its own personality.
    let keep: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with("FAKE_FIRECRACKER_"))
        .collect();
    if args.new_pid_ns {
        // SAFETY: unshare takes only flags; the next child is pid 1 of a new namespace.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWPID) };
        check(rc, "unshare(CLONE_NEWPID)")?;
        // SAFETY: this process is single-threaded (the fake jailer starts no threads), so
        // the child may run arbitrary code after fork.
        let pid = unsafe { libc::fork() };
        if pid == -1 {
            return Err(os("clone(CLONE_NEWPID)"));
        }
        if pid > 0 {
            let pid_file = format!("/{exec_name}.pid");
            std::fs::write(&pid_file, pid.to_string())
                .map_err(|e| format!("Failed to write {pid_file}: {e}"))?;
            return Ok(0);
        }
    }
    drop_privileges(args)?;
    let program = CString::new(format!("./{exec_name}")).map_err(|e| e.to_string())?;
    let mut argv = vec![
        program.clone(),
        CString::new(format!("--id={}", args.id)).map_err(|e| e.to_string())?,
        c"--start-time-us=0".to_owned(),
        c"--start-time-cpu-us=0".to_owned(),
    ];
    for a in &args.extra {
        argv.push(CString::new(a.as_str()).map_err(|e| e.to_string())?);
    }
    let env: Vec<CString> = keep
        .iter()
        .filter_map(|(k, v)| CString::new(format!("{k}={v}")).ok())
        .collect();
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut env_ptrs: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    env_ptrs.push(std::ptr::null());
    // SAFETY: every pointer is a NUL-terminated string kept alive by `argv`/`env`, and both
    // arrays end with a null pointer, as execve(2) requires.
    unsafe { libc::execve(program.as_ptr(), argv_ptrs.as_ptr(), env_ptrs.as_ptr()) };
    Err(os(&format!("Failed to exec into {exec_name}")))
}

/// A new mount namespace whose root is `chroot` (pivot_root, the old root detached).
fn pivot_into(chroot: &Path) -> Result<(), String> {
    // SAFETY: unshare takes only flags.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNS) };
    check(rc, "unshare(CLONE_NEWNS)")?;
    mount(None, Path::new("/"), libc::MS_PRIVATE | libc::MS_REC)?;
    mount(Some(chroot), chroot, libc::MS_BIND)?;
    // The concession: what the dynamically linked fake and its agent need, read-only.
    let mut dirs: Vec<PathBuf> = SYSTEM_DIRS.iter().map(PathBuf::from).collect();
    if let Some(agent) = std::env::var_os("FAKE_FIRECRACKER_AGENT")
        && let Some(dir) = Path::new(&agent).parent()
    {
        dirs.push(dir.to_path_buf());
    }
    for dir in dirs {
        let Ok(meta) = std::fs::symlink_metadata(&dir) else {
            continue;
        };
        let target = chroot.join(dir.strip_prefix("/").unwrap_or(&dir));
        if meta.file_type().is_symlink() {
            if let Ok(link) = std::fs::read_link(&dir)
                && std::fs::symlink_metadata(&target).is_err()
            {
                let _ = std::os::unix::fs::symlink(link, &target);
            }
            continue;
        }
        if dirs_bound_already(&dir) {
            continue;
        }
        std::fs::create_dir_all(&target).map_err(|e| e.to_string())?;
        mount(Some(&dir), &target, libc::MS_BIND | libc::MS_REC)?;
        mount(
            None,
            &target,
            libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
        )?;
    }
    std::env::set_current_dir(chroot).map_err(|e| e.to_string())?;
    let _ = std::fs::create_dir("old_root");
    // SAFETY: both arguments are NUL-terminated literals.
    let rc =
        unsafe { libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c"old_root".as_ptr()) as i32 }
            as i32;
    check(rc, "pivot_root")?;
    // SAFETY: as above.
    let rc = unsafe { libc::umount2(c"old_root".as_ptr(), libc::MNT_DETACH) };
    check(rc, "umount old_root")?;
    let _ = std::fs::remove_dir("old_root");
    // SAFETY: as above.
    check(unsafe { libc::chroot(c".".as_ptr()) }, "chroot")
}

/// The agent's directory under a system directory the jail holds already.
fn dirs_bound_already(dir: &Path) -> bool {
    !SYSTEM_DIRS.contains(&dir.to_str().unwrap_or_default())
        && SYSTEM_DIRS.iter().any(|d| dir.starts_with(d))
}

fn mount(source: Option<&Path>, target: &Path, flags: libc::c_ulong) -> Result<(), String> {
    let src = source.map(cstr).transpose()?;
    let tgt = cstr(target)?;
    // SAFETY: the strings outlive the call; a null source and fstype are allowed for binds
    // and propagation changes.
    let rc = unsafe {
        libc::mount(
            src.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
            tgt.as_ptr(),
            std::ptr::null(),
            flags,
            std::ptr::null(),
        )
    };
    check(rc, &format!("mount {}", target.display()))
}

fn make_nodes(args: &Args) -> Result<(), String> {
    std::fs::create_dir_all("/dev/net").map_err(|e| e.to_string())?;
    for (path, major, minor) in NODES {
        let c = cstr(Path::new(path))?;
        // SAFETY: `c` is a valid path; mode and device are plain integers.
        let rc = unsafe {
            libc::mknod(
                c.as_ptr(),
                libc::S_IFCHR | libc::S_IRUSR | libc::S_IWUSR,
                libc::makedev(*major, *minor),
            )
        };
        if rc == -1 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EEXIST) {
            return Err(os(&format!("mknod {path}")));
        }
        // SAFETY: as above.
        let rc = unsafe { libc::chown(c.as_ptr(), args.uid, args.gid) };
        check(rc, &format!("chown {path}"))?;
    }
    Ok(())
}

fn join_netns(path: &Path) -> Result<(), String> {
    let file = std::fs::File::open(path).map_err(|e| format!("open {}: {e}", path.display()))?;
    // SAFETY: the descriptor is open for the call's duration.
    let rc = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) };
    check(rc, "setns")
}

fn daemonize(null: &std::fs::File) -> Result<(), String> {
    // SAFETY: setsid takes no arguments.
    check(unsafe { libc::setsid() }, "setsid")?;
    for fd in 0..3 {
        // SAFETY: both descriptors are valid.
        let rc = unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(null), fd) };
        check(rc, "dup2")?;
    }
    Ok(())
}

fn drop_privileges(args: &Args) -> Result<(), String> {
    // SAFETY: setgroups with an empty list; setgid/setuid take plain integers.
    unsafe {
        check(libc::setgroups(0, std::ptr::null()), "setgroups")?;
        check(libc::setgid(args.gid), "setgid")?;
        check(libc::setuid(args.uid), "setuid")?;
    }
    Ok(())
}
