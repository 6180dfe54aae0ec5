//! `launch_jailed` and `release_jail`: the owner's Firecracker through its `jailer`.
//!
//! The helper decides everything the jailer is run with; the request only names a VM id,
//! the owner's files to link into the chroot, where the console pipe goes, and bounded
//! cgroup limits ([`banger_helper_proto::JailLaunch`]):
//!
//! * the `jailer` and `firecracker` binaries are the helper's own configuration
//!   ([`JailSetup`]), each opened without following links and refused unless a regular,
//!   root-owned, executable file nobody else may write (the jailer is executed through the
//!   descriptor that was checked);
//! * `--uid`/`--gid` are the owner's; the chroot base is `<jail root>/<owner uid>`, made by
//!   the helper, root-owned, so the owner cannot redirect what root writes there;
//! * each file is opened without following links, must be a regular file or a FIFO the
//!   owner owns, lying below the owner's banger state, and is hard-linked (never copied)
//!   into the chroot by descriptor, at its top or in `fc-drives/` (made by the helper, for
//!   the drives' relocatable names a snapshot records and its restore reopens); what
//!   Firecracker only reads (the protocol's `JAIL_READ_ONLY_FILES`: kernel, initrd, a
//!   snapshot's state and memory) is sealed first ([`seal`]: root's, 0444), so the jailed
//!   Firecracker, which runs as the owner, cannot write what later VMs boot or restore from;
//! * `--new-pid-ns` always; the limits become the jailer's `--cgroup` values below
//!   `banger-<owner uid>`: in the v1 memory and pids hierarchies where the host has them,
//!   else in the cgroup v2 hierarchy when it offers both controllers, else the launch is
//!   refused ([`cgroups`]): requested limits are never silently dropped.
//!
//! The reply is Firecracker's host pid (the jailer's `firecracker.pid`), checked to run as
//! the owner, and its API socket's host path: the daemon then drives, stops and kills it as
//! the owner, exactly as an unjailed one. [`Executor::release_jail`] is the one release
//! path: cgroups removed (refused while anything runs in them), the chroot removed.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use banger_helper_proto::{ConsoleOn, Failure, FailureKind, JailFile, JailId, JailLaunch, Jailed};
use banger_system::fsperm::open_root_executable;

use super::Executor;

pub(super) mod cgroups;
pub(super) mod host;

use cgroups::cgroup_args;
pub use cgroups::jail_parent_cgroup;
use host::{DROP_TIMEOUT, check_owner_process, clear_nonblock, owner_gid, read_pid, tail};

use banger_helper_proto::{
    JAIL_API_SOCKET as API_SOCKET, JAIL_DRIVE_DIR, JAIL_EXEC_NAME as EXEC_NAME,
    JAIL_STDERR as STDERR_FILE,
};
/// How long the jailer may take to set up and fork.
const JAILER_TIMEOUT: Duration = Duration::from_secs(30);

/// How this helper jails the owner's Firecracker (its own configuration, never the
/// daemon's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JailSetup {
    pub jailer: PathBuf,
    pub firecracker: PathBuf,
    /// Where chroots are built: a root-owned directory (made when missing), one
    /// root-owned directory per owner below it.
    pub jail_root: PathBuf,
    /// The owner's banger state: every file given to a jail lies below it.
    pub state_dir: PathBuf,
}

pub(super) fn fail(kind: FailureKind, message: impl Into<String>) -> Failure {
    Failure::new(kind, message)
}

pub(super) fn system(what: String, e: std::io::Error) -> Failure {
    fail(FailureKind::System, format!("{what}: {e}"))
}

impl Executor {
    fn jail_setup(&self) -> Result<&JailSetup, Failure> {
        self.jail.as_ref().ok_or_else(|| {
            fail(
                FailureKind::Unsupported,
                "this helper was started without a jailer (banger helper --jailer PATH \
                 --firecracker PATH); Firecracker cannot be jailed through it",
            )
        })
    }

    /// `<jail root>/<owner uid>`, made root-owned and checked not to be a link.
    fn chroot_base(&self, setup: &JailSetup) -> Result<PathBuf, Failure> {
        let base = setup.jail_root.join(self.owner_uid.to_string());
        for dir in [&setup.jail_root, &base] {
            match std::fs::create_dir(dir) {
                Ok(()) => std::fs::set_permissions(
                    dir,
                    std::os::unix::fs::PermissionsExt::from_mode(0o711),
                )
                .map_err(|e| system(format!("cannot set the mode of {}", dir.display()), e))?,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(system(format!("cannot create {}", dir.display()), e)),
            }
            let meta = std::fs::symlink_metadata(dir)
                .map_err(|e| system(format!("cannot inspect {}", dir.display()), e))?;
            if !meta.is_dir() || meta.uid() != 0 || meta.mode() & 0o022 != 0 {
                return Err(fail(
                    FailureKind::Conflict,
                    format!(
                        "the jail directory {} must be a directory owned by root that nobody \
                         else may write (it is a link, another user's, or writable): fix or \
                         remove it",
                        dir.display()
                    ),
                ));
            }
        }
        Ok(base)
    }

    pub(super) fn launch_jailed(&self, launch: &JailLaunch) -> Result<Jailed, Failure> {
        let setup = self.jail_setup()?;
        // Every binary failure is refused with its reason, before anything is made.
        let refused = |what: &str, e: banger_system::fsperm::RootExecutableError| {
            fail(
                FailureKind::NotPermitted,
                format!(
                    "refusing to run {what} as root: {}; {}",
                    banger_system::error_chain(&e),
                    e.hint()
                ),
            )
        };
        let jailer = open_root_executable(&setup.jailer).map_err(|e| refused("the jailer", e))?;
        drop(open_root_executable(&setup.firecracker).map_err(|e| refused("Firecracker", e))?);
        let gid = owner_gid(self.owner_uid)?;
        // Limits that cannot be set are refused before anything is made too.
        let mut cgroup_argv = Vec::new();
        let groups = match launch.limits {
            Some(limits) => cgroup_args(self.owner_uid, &launch.id, limits, &mut cgroup_argv)?,
            None => Vec::new(),
        };
        let base = self.chroot_base(setup)?;
        let jail_dir = base.join(EXEC_NAME).join(launch.id.as_str());
        let root = jail_dir.join("root");
        if std::fs::symlink_metadata(&jail_dir).is_ok() {
            return Err(fail(
                FailureKind::Conflict,
                format!(
                    "the jail {} exists already: release it (release_jail) before launching \
                     VM {} again",
                    jail_dir.display(),
                    launch.id.as_str()
                ),
            ));
        }
        std::fs::create_dir_all(&root)
            .map_err(|e| system(format!("cannot create {}", root.display()), e))?;
        let made = self.populate(setup, launch, &root, gid).and_then(|stdio| {
            let cgroups = (cgroup_argv, groups);
            self.run_jailer(setup, launch, &jailer, &base, &root, gid, cgroups, stdio)
        });
        if made.is_err() {
            // A process killed on the way out leaves its cgroups a moment later.
            let deadline = Instant::now() + DROP_TIMEOUT;
            while let Err(e) = self.remove_jail(&launch.id) {
                if e.kind != FailureKind::Conflict || Instant::now() >= deadline {
                    tracing::warn!(jail = launch.id.as_str(), error = %e, "cannot remove a failed jail");
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        made
    }

    /// Link the files in, make `run/` and the stderr file the owner's; the console's
    /// descriptor and the stderr file, for the jailer's stdio.
    fn populate(
        &self,
        setup: &JailSetup,
        launch: &JailLaunch,
        root: &Path,
        gid: u32,
    ) -> Result<(Stdio, Stdio, Stdio), Failure> {
        let root_fd =
            File::open(root).map_err(|e| system(format!("cannot open {}", root.display()), e))?;
        if launch.files.iter().any(|f| f.name.in_drive_dir()) {
            // Root's, like the chroot it is made in before the jailer gives that away: what
            // is linked into it is exactly what was checked.
            let drives = root.join(JAIL_DRIVE_DIR);
            std::fs::create_dir(&drives)
                .and_then(|()| {
                    std::fs::set_permissions(
                        &drives,
                        std::os::unix::fs::PermissionsExt::from_mode(0o755),
                    )
                })
                .map_err(|e| system(format!("cannot create {}", drives.display()), e))?;
        }
        for file in &launch.files {
            self.link_in(setup, file, &root_fd, root)?;
        }
        let run = root.join("run");
        std::fs::create_dir(&run)
            .map_err(|e| system(format!("cannot create {}", run.display()), e))?;
        std::os::unix::fs::lchown(&run, Some(self.owner_uid), Some(gid))
            .map_err(|e| system(format!("cannot give {} to the owner", run.display()), e))?;
        let stderr_path = root.join(STDERR_FILE);
        let stderr = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(0o600)
            .open(&stderr_path)
            .map_err(|e| system(format!("cannot create {}", stderr_path.display()), e))?;
        std::os::unix::fs::fchown(&stderr, Some(self.owner_uid), Some(gid)).map_err(|e| {
            system(
                format!("cannot give {} to the owner", stderr_path.display()),
                e,
            )
        })?;
        let dup = |f: &File| {
            f.try_clone()
                .map_err(|e| system(format!("cannot duplicate {}", stderr_path.display()), e))
        };
        let console = match &launch.console {
            None => None,
            Some((name, on)) => {
                let path = root.join(name.as_str());
                let fifo = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
                    .open(&path)
                    .map_err(|e| {
                        system(
                            format!("cannot open the console pipe {}", path.display()),
                            e,
                        )
                    })?;
                let is_fifo = fifo
                    .metadata()
                    .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_fifo(&m.file_type()));
                if !is_fifo {
                    return Err(fail(
                        FailureKind::BadRequest,
                        format!("the console {} is not a FIFO", name.as_str()),
                    ));
                }
                clear_nonblock(&fifo)?;
                Some((fifo, *on))
            }
        };
        Ok(match console {
            Some((fifo, ConsoleOn::Stdin)) => (fifo.into(), dup(&stderr)?.into(), stderr.into()),
            Some((fifo, ConsoleOn::Stdout)) => (Stdio::null(), fifo.into(), stderr.into()),
            None => (Stdio::null(), dup(&stderr)?.into(), stderr.into()),
        })
    }

    /// Hard-link one of the owner's files into the chroot, by descriptor.
    fn link_in(
        &self,
        setup: &JailSetup,
        file: &JailFile,
        root_fd: &File,
        root: &Path,
    ) -> Result<(), Failure> {
        let source = file.source.as_path();
        let refuse = |why: &str| {
            fail(
                FailureKind::NotPermitted,
                format!("refusing to link {} into the jail: {why}", source.display()),
            )
        };
        if !source.starts_with(&setup.state_dir) {
            return Err(refuse(&format!(
                "it is not below banger's state directory {}",
                setup.state_dir.display()
            )));
        }
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_NOFOLLOW)
            .open(source)
            .map_err(|e| system(format!("cannot open {}", source.display()), e))?;
        let meta = opened
            .metadata()
            .map_err(|e| system(format!("cannot inspect {}", source.display()), e))?;
        let kind = meta.file_type();
        if !(kind.is_file() || std::os::unix::fs::FileTypeExt::is_fifo(&kind)) {
            return Err(refuse(
                "it is not a regular file or a FIFO (a link, a directory or a device)",
            ));
        }
        if file.name.read_only() {
            seal(&opened, &meta, self.owner_uid, source).map_err(|why| refuse(&why))?;
        } else if meta.uid() != self.owner_uid {
            return Err(refuse(&format!(
                "it belongs to uid {}, not to the owner",
                meta.uid()
            )));
        }
        // What was opened is what is linked: through the descriptor, not the path.
        let from = CString::new(format!("/proc/self/fd/{}", opened.as_raw_fd()))
            .map_err(|_| refuse("bad descriptor path"))?;
        let to = CString::new(file.name.as_str().as_bytes()).map_err(|_| refuse("bad name"))?;
        // SAFETY: both strings are NUL-terminated and outlive the call; the descriptors are
        // open.
        let rc = unsafe {
            libc::linkat(
                libc::AT_FDCWD,
                from.as_ptr(),
                root_fd.as_raw_fd(),
                to.as_ptr(),
                libc::AT_SYMLINK_FOLLOW,
            )
        };
        if rc == -1 {
            let e = std::io::Error::last_os_error();
            let hint = if e.raw_os_error() == Some(libc::EXDEV) {
                " (the jail root must be on the same file system as banger's state)"
            } else {
                ""
            };
            return Err(system(
                format!(
                    "cannot link {} into {}{hint}",
                    source.display(),
                    root.display()
                ),
                e,
            ));
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn run_jailer(
        &self,
        setup: &JailSetup,
        launch: &JailLaunch,
        jailer: &File,
        base: &Path,
        root: &Path,
        gid: u32,
        (cgroup_argv, cgroups): (Vec<std::ffi::OsString>, Vec<PathBuf>),
        (stdin, stdout, stderr): (Stdio, Stdio, Stdio),
    ) -> Result<Jailed, Failure> {
        let uid = self.owner_uid.to_string();
        let mut argv: Vec<std::ffi::OsString> = vec![
            "--id".into(),
            launch.id.as_str().into(),
            "--exec-file".into(),
            setup.firecracker.clone().into(),
            "--uid".into(),
            uid.clone().into(),
            "--gid".into(),
            gid.to_string().into(),
            "--chroot-base-dir".into(),
            base.into(),
            "--new-pid-ns".into(),
        ];
        argv.extend(cgroup_argv);
        let mut command = Command::new(format!("/proc/self/fd/{}", jailer.as_raw_fd()));
        command
            .args(&argv)
            .stdin(stdin)
            .stdout(stdout)
            .stderr(stderr);
        // SAFETY: setsid(2) is async-signal-safe and changes only the child's session: the
        // jailed Firecracker is nobody's terminal job and outlives the helper's requests.
        unsafe {
            command.pre_exec(|| {
                if libc::setsid() == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = command.spawn().map_err(|e| {
            system(
                format!("cannot run the jailer {}", setup.jailer.display()),
                e,
            )
        })?;
        let deadline = Instant::now() + JAILER_TIMEOUT;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(fail(
                        FailureKind::System,
                        format!("the jailer did not finish within {JAILER_TIMEOUT:?}"),
                    ));
                }
            }
        };
        if !status.success() {
            return Err(fail(
                FailureKind::System,
                format!(
                    "the jailer refused VM {} ({status}): {}",
                    launch.id.as_str(),
                    tail(&root.join(STDERR_FILE))
                ),
            ));
        }
        let pid = read_pid(&root.join(format!("{EXEC_NAME}.pid")))?;
        let start_time = check_owner_process(pid, self.owner_uid)?;
        Ok(Jailed {
            pid,
            start_time,
            root: root.to_path_buf(),
            api_socket: root.join(API_SOCKET),
            cgroups,
        })
    }

    pub(super) fn release_jail(&self, id: &JailId) -> Result<(), Failure> {
        self.jail_setup()?;
        self.remove_jail(id)
    }

    /// Cgroups first (a live Firecracker keeps them busy: refused), then the chroot.
    fn remove_jail(&self, id: &JailId) -> Result<(), Failure> {
        let setup = self.jail_setup()?;
        cgroups::remove_dirs(&cgroups::jail_dirs(self.owner_uid, id), |dir| {
            format!(
                "VM {}'s jailed Firecracker still runs (its cgroup {} is in use): \
                 stop it first",
                id.as_str(),
                dir.display()
            )
        })?;
        let jail_dir = setup
            .jail_root
            .join(self.owner_uid.to_string())
            .join(EXEC_NAME)
            .join(id.as_str());
        // remove_dir_all never follows links: what the owner planted in the chroot goes,
        // what it points at stays.
        match std::fs::remove_dir_all(&jail_dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(system(format!("cannot remove {}", jail_dir.display()), e)),
        }
    }
}

/// Seal a file the jailed Firecracker only reads (`JailFileName::read_only`): the owner's
/// becomes root's, mode 0444, so a compromised Firecracker, which runs as the owner, cannot
/// write what later VMs boot or restore from (a kernel, a warm state's memory). One sealed
/// earlier (root's, writable by nobody else) is taken as it is. Done through `opened` (an
/// `O_PATH` descriptor of the checked file), never the path. The owner keeps reading it and
/// can still remove it (its directory is the owner's); a descriptor the owner opened for
/// writing before the seal is not revoked.
fn seal(
    opened: &File,
    meta: &std::fs::Metadata,
    owner_uid: u32,
    source: &Path,
) -> Result<(), String> {
    if meta.uid() == 0 {
        return if !meta.is_file() || meta.mode() & 0o6000 != 0 {
            Err(format!(
                "it is root's but not a plain file (mode {:o})",
                meta.mode() & 0o7777
            ))
        } else if meta.mode() & 0o022 != 0 {
            Err(format!(
                "it is root's but others may write it (mode {:o})",
                meta.mode() & 0o7777
            ))
        } else {
            Ok(())
        };
    }
    if meta.uid() != owner_uid {
        return Err(format!(
            "it belongs to uid {}, not to the owner",
            meta.uid()
        ));
    }
    if !meta.is_file() {
        return Err("only a regular file can be sealed".into());
    }
    let empty = c"";
    // SAFETY: `opened` is an open descriptor and `empty` a NUL-terminated string;
    // AT_EMPTY_PATH makes the call act on the descriptor itself.
    let rc = unsafe {
        libc::fchownat(
            opened.as_raw_fd(),
            empty.as_ptr(),
            0,
            0,
            libc::AT_EMPTY_PATH,
        )
    };
    if rc == -1 {
        return Err(format!(
            "cannot make it root's: {}",
            std::io::Error::last_os_error()
        ));
    }
    // An O_PATH descriptor cannot be fchmod'ed; its /proc link names the same inode.
    let by_fd = format!("/proc/self/fd/{}", opened.as_raw_fd());
    std::fs::set_permissions(&by_fd, std::os::unix::fs::PermissionsExt::from_mode(0o444))
        .map_err(|e| format!("cannot make it read-only: {e}"))?;
    let now = opened
        .metadata()
        .map_err(|e| format!("cannot inspect it after sealing: {e}"))?;
    if now.uid() != 0 || now.mode() & 0o7777 != 0o444 {
        return Err(format!(
            "it changed while being sealed (uid {}, mode {:o})",
            now.uid(),
            now.mode() & 0o7777
        ));
    }
    tracing::info!(file = %source.display(), "sealed for jailed Firecracker: root's, read-only");
    Ok(())
}
