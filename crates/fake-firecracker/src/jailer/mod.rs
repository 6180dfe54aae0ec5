//! `fake-jailer`: a test double of Firecracker's `jailer` that enforces its contract
//! (Firecracker's `docs/jailer.md`, `shared/notes/firecracker-api.md`). **A test double
//! only.**
//!
//! Refused as the real jailer refuses them (exit status 1, the reason on stderr): not run as
//! root; a missing required argument or an unknown one; an `--id` that is empty, longer than
//! 64 characters or holds anything but ASCII letters, digits and `-`; an `--exec-file` that
//! is relative, missing, not a regular file, or whose name does not contain `firecracker`;
//! a relative or missing `--chroot-base-dir`; a `--netns` that does not exist; a
//! `--cgroup-version` other than 1 or 2; a `--cgroup` not of the form `<file>=<value>`.
//!
//! Then it does what the real one does, in its order: `<base>/<exec name>/<id>/root`
//! (kept if it exists), the exec file copied in, the cgroups made and entered (the v1
//! controllers' hierarchies, or the v2 hierarchy with its controllers checked and enabled
//! down to the parent, below `--parent-cgroup`, default the exec file's name: `cgroup.rs`),
//! a new mount namespace pivoted into the chroot, `/dev/kvm`, `/dev/net/tun`
//! and `/dev/urandom` made there by `mknod` and, with the chroot itself, given to `uid:gid`,
//! the network namespace joined, `--daemonize` (`setsid`, stdio on `/dev/null`),
//! `--new-pid-ns` (a child in a new pid namespace, its host pid written to
//! `<exec name>.pid` in the chroot), the environment cleared, the groups, gid and uid
//! dropped, and `exec ./<exec name> --id=<id> --start-time-us=… --start-time-cpu-us=…`
//! followed by the arguments after `--`.
//!
//! Three concessions, because the fake Firecracker is not the real static binary: the
//! environment keeps the `FAKE_FIRECRACKER_*` variables (its personality and its guest),
//! a `banger-agent` beside the exec file is copied beside its copy in the chroot (the fake's
//! guest), and the host's system directories (`/usr`, `/lib*`, `/bin`, `/sbin`) and the directory
//! of the fake guest's agent are bound read-only into the chroot, inside the jail's own
//! mount namespace only, so the dynamically linked fake and its agent can run.

mod cgroup;
mod jail;

pub use cgroup::MOUNTS_ENV;

use std::path::{Path, PathBuf};

/// The jailer's exit status for every refusal.
const EXIT_FAILURE: i32 = 1;
/// The real jailer's longest `--id`.
pub const MAX_ID_LEN: usize = 64;
/// The real jailer's default chroot base.
const DEFAULT_CHROOT_BASE: &str = "/srv/jailer";

/// A parsed and validated command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    pub id: String,
    pub exec_file: PathBuf,
    pub uid: u32,
    pub gid: u32,
    pub chroot_base: PathBuf,
    pub cgroup_version: u8,
    pub cgroups: Vec<(String, String)>,
    pub parent_cgroup: Option<PathBuf>,
    pub netns: Option<PathBuf>,
    pub daemonize: bool,
    pub new_pid_ns: bool,
    /// Everything after `--`, passed to Firecracker.
    pub extra: Vec<String>,
}

impl Args {
    /// The exec file's name, which names the chroot's parent and the pid file.
    pub fn exec_name(&self) -> &str {
        self.exec_file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("firecracker")
    }

    /// `<base>/<exec name>/<id>/root`.
    pub fn chroot_dir(&self) -> PathBuf {
        self.chroot_base
            .join(self.exec_name())
            .join(&self.id)
            .join("root")
    }
}

/// Parse and validate `args` (without the program name) against the host.
pub fn parse(args: &[String]) -> Result<Args, String> {
    let mut id = None;
    let mut exec_file = None;
    let mut uid = None;
    let mut gid = None;
    let mut chroot_base = None;
    let mut cgroup_version = 1u8;
    let mut cgroups = Vec::new();
    let mut parent_cgroup = None;
    let mut netns = None;
    let mut daemonize = false;
    let mut new_pid_ns = false;
    let mut extra = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let mut value = |name: &str| {
            iter.next()
                .cloned()
                .ok_or_else(|| format!("Argument '{name}' requires a value."))
        };
        match arg.as_str() {
            "--id" => id = Some(value("id")?),
            "--exec-file" => exec_file = Some(PathBuf::from(value("exec-file")?)),
            "--uid" => uid = Some(number(&value("uid")?, "uid")?),
            "--gid" => gid = Some(number(&value("gid")?, "gid")?),
            "--chroot-base-dir" => chroot_base = Some(PathBuf::from(value("chroot-base-dir")?)),
            "--cgroup-version" => {
                cgroup_version = match value("cgroup-version")?.as_str() {
                    "1" => 1,
                    "2" => 2,
                    v => return Err(format!("Invalid cgroup version: {v}")),
                }
            }
            "--cgroup" => {
                let v = value("cgroup")?;
                let (file, val) = v
                    .split_once('=')
                    .filter(|(f, val)| f.contains('.') && !val.is_empty() && !f.contains('/'))
                    .ok_or_else(|| format!("Invalid format for cgroups: {v}"))?;
                cgroup::controller_of(file)?;
                cgroups.push((file.to_owned(), val.to_owned()));
            }
            "--parent-cgroup" => {
                let v = PathBuf::from(value("parent-cgroup")?);
                if v.is_absolute() || v.components().any(|c| c.as_os_str() == "..") {
                    return Err(format!("Invalid parent cgroup: {}", v.display()));
                }
                parent_cgroup = Some(v);
            }
            "--netns" => netns = Some(PathBuf::from(value("netns")?)),
            "--resource-limit" => {
                value("resource-limit")?;
            }
            "--daemonize" => daemonize = true,
            "--new-pid-ns" => new_pid_ns = true,
            "--" => {
                extra = iter.by_ref().cloned().collect();
            }
            other => {
                return Err(format!(
                    "Found argument '{other}' which wasn't expected, or isn't valid in this context."
                ));
            }
        }
    }
    let missing = |name: &str| format!("Missing mandatory argument: {name}.");
    let args = Args {
        id: id.ok_or_else(|| missing("id"))?,
        exec_file: exec_file.ok_or_else(|| missing("exec-file"))?,
        uid: uid.ok_or_else(|| missing("uid"))?,
        gid: gid.ok_or_else(|| missing("gid"))?,
        chroot_base: chroot_base.unwrap_or_else(|| PathBuf::from(DEFAULT_CHROOT_BASE)),
        cgroup_version,
        cgroups,
        parent_cgroup,
        netns,
        daemonize,
        new_pid_ns,
        extra,
    };
    validate(&args)?;
    Ok(args)
}

fn number(v: &str, name: &str) -> Result<u32, String> {
    v.parse()
        .map_err(|_| format!("Invalid {name}: {v} is not a number"))
}

/// The real jailer's checks of its arguments against the host.
fn validate(args: &Args) -> Result<(), String> {
    let id_ok = !args.id.is_empty()
        && args.id.len() <= MAX_ID_LEN
        && args
            .id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !id_ok {
        return Err(format!(
            "Invalid instance ID: {:?} (letters, digits and '-', at most {MAX_ID_LEN})",
            args.id
        ));
    }
    absolute_existing(&args.exec_file, "exec file")?;
    if !std::fs::metadata(&args.exec_file).is_ok_and(|m| m.is_file()) {
        return Err(format!(
            "Invalid exec file: {} is not a regular file",
            args.exec_file.display()
        ));
    }
    if !args.exec_name().contains("firecracker") {
        return Err(format!(
            "Invalid filename. The filename of `--exec-file` option must contain \"firecracker\": {}",
            args.exec_file.display()
        ));
    }
    absolute_existing(&args.chroot_base, "chroot base directory")?;
    if let Some(netns) = &args.netns {
        absolute_existing(netns, "network namespace")?;
    }
    Ok(())
}

fn absolute_existing(path: &Path, what: &str) -> Result<(), String> {
    if !path.is_absolute() {
        return Err(format!(
            "Invalid {what} path: {} is not absolute",
            path.display()
        ));
    }
    if std::fs::symlink_metadata(path).is_err() {
        return Err(format!(
            "Failed to canonicalize path {}: No such file or directory (os error 2)",
            path.display()
        ));
    }
    Ok(())
}

/// Run as `jailer <args>`; returns the exit status (on success it never returns: the
/// process is Firecracker, or with `--new-pid-ns` the parent exits 0 after writing the pid).
pub fn run(args: &[String]) -> i32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "Jailer error: the jailer must run as root (it builds a chroot, makes device nodes and drops to --uid/--gid)"
        );
        return EXIT_FAILURE;
    }
    let args = match parse(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("Jailer error: {e}");
            return EXIT_FAILURE;
        }
    };
    match jail::enter_and_exec(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Jailer error: {e}");
            EXIT_FAILURE
        }
    }
}

#[cfg(test)]
mod tests;
