//! Launching Firecracker through its `jailer`: the typed, range-checked arguments of the
//! `launch_jailed` and `release_jail` verbs. The helper builds the jailer's command line
//! from these alone; the daemon never supplies a path the helper executes, a uid, or a
//! chroot location.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The name each chroot's parent gets from the exec file the helper gives the jailer:
/// `<base>/firecracker/<id>/root`.
pub const JAIL_EXEC_NAME: &str = "firecracker";
/// Firecracker's API socket in a jail's chroot (its default `/run/firecracker.socket`).
pub const JAIL_API_SOCKET: &str = "run/firecracker.socket";
/// The jailer's and Firecracker's stderr, in a jail's chroot.
pub const JAIL_STDERR: &str = "firecracker.stderr";
/// The jailed Firecracker's hybrid-vsock socket in the chroot (the daemon names it
/// `/firecracker.vsock` in `PUT /vsock`).
pub const JAIL_VSOCK: &str = "firecracker.vsock";
/// The one directory a jail's files may be named in (`fc-drives/<name>`), made by the
/// helper, root's: the drives' relocatable names, which Firecracker resolves against its
/// working directory, the chroot's root, at boot and again at a snapshot's restore.
pub const JAIL_DRIVE_DIR: &str = "fc-drives";

/// The guest kernel in a jail's chroot.
pub const JAIL_KERNEL: &str = "kernel";
/// The guest's initrd in a jail's chroot.
pub const JAIL_INITRD: &str = "initrd";
/// A restoring jail's snapshot state file.
pub const JAIL_SNAPSHOT_STATE: &str = "snapshot.vmstate";
/// A restoring jail's snapshot memory file.
pub const JAIL_SNAPSHOT_MEMORY: &str = "snapshot.mem";
/// The files a jailed Firecracker only ever reads, by their names in the chroot: the helper
/// makes each root's and read-only (sealed) before it links it in, so the Firecracker, which
/// runs as the owner, cannot change what later VMs boot or restore from.
pub const JAIL_READ_ONLY_FILES: [&str; 4] = [
    JAIL_KERNEL,
    JAIL_INITRD,
    JAIL_SNAPSHOT_STATE,
    JAIL_SNAPSHOT_MEMORY,
];

/// The jailer's own limit on `--id`.
pub const MAX_JAIL_ID: usize = 64;
/// Most files one jail may be given.
pub const MAX_JAIL_FILES: usize = 32;
/// Longest name of a file in a jail.
pub const MAX_JAIL_FILE_NAME: usize = 64;
/// Memory limit bounds of a jailed VMM, bytes (its RAM plus overhead).
pub const JAIL_MEMORY_RANGE: (u64, u64) = (64 << 20, 1 << 40);
/// Task limit bounds of a jailed VMM.
pub const JAIL_PIDS_RANGE: (u32, u32) = (16, 65_536);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JailArgError {
    #[error(
        "{0:?} is not a jail id: 1 to {MAX_JAIL_ID} ASCII letters, digits and '-', as the jailer requires"
    )]
    Id(String),
    #[error(
        "{0:?} is not a file name for a jail: 1 to {MAX_JAIL_FILE_NAME} ASCII letters, digits, '.', '_' and '-', not starting with '.', optionally below {JAIL_DRIVE_DIR}/"
    )]
    FileName(String),
    #[error("{0:?} is not an absolute, normalized path (no '..', '.', or empty components)")]
    Path(PathBuf),
    #[error("a jail may be given at most {MAX_JAIL_FILES} files, not {0}")]
    TooManyFiles(usize),
    #[error("the file name {0:?} is given twice")]
    Duplicate(String),
    #[error(
        "a jailed VMM's memory limit must be {lo}..={hi} bytes, not {0}",
        lo = JAIL_MEMORY_RANGE.0,
        hi = JAIL_MEMORY_RANGE.1
    )]
    Memory(u64),
    #[error(
        "a jailed VMM's task limit must be {lo}..={hi}, not {0}",
        lo = JAIL_PIDS_RANGE.0,
        hi = JAIL_PIDS_RANGE.1
    )]
    Pids(u32),
}

/// A VM's id as the jailer takes it (`--id`), and the name of its chroot.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct JailId(String);

impl JailId {
    pub fn new(id: &str) -> Result<JailId, JailArgError> {
        let ok = !id.is_empty()
            && id.len() <= MAX_JAIL_ID
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if ok {
            Ok(JailId(id.to_owned()))
        } else {
            Err(JailArgError::Id(id.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for JailId {
    type Error = JailArgError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        JailId::new(&s)
    }
}

impl From<JailId> for String {
    fn from(id: JailId) -> String {
        id.0
    }
}

/// The name a file gets in a chroot: one component at its top, nothing hidden, or one
/// such component below [`JAIL_DRIVE_DIR`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct JailFileName(String);

impl JailFileName {
    pub fn new(name: &str) -> Result<JailFileName, JailArgError> {
        let leaf = name
            .strip_prefix(JAIL_DRIVE_DIR)
            .and_then(|rest| rest.strip_prefix('/'))
            .unwrap_or(name);
        let ok = !leaf.is_empty()
            && name.len() <= MAX_JAIL_FILE_NAME
            && !leaf.starts_with('.')
            && leaf
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(JailFileName(name.to_owned()))
        } else {
            Err(JailArgError::FileName(name.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether it is one of [`JAIL_READ_ONLY_FILES`], which the helper seals.
    pub fn read_only(&self) -> bool {
        JAIL_READ_ONLY_FILES.contains(&self.0.as_str())
    }

    /// Whether it lies in [`JAIL_DRIVE_DIR`] rather than at the chroot's top.
    pub fn in_drive_dir(&self) -> bool {
        self.0.contains('/')
    }
}

impl TryFrom<String> for JailFileName {
    type Error = JailArgError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        JailFileName::new(&s)
    }
}

impl From<JailFileName> for String {
    fn from(n: JailFileName) -> String {
        n.0
    }
}

/// An absolute path without `.`, `..` or empty components (the helper still opens it
/// without following links and checks what it opened).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "PathBuf", into = "PathBuf")]
pub struct CleanPath(PathBuf);

impl CleanPath {
    pub fn new(path: &Path) -> Result<CleanPath, JailArgError> {
        // On the bytes: `Path::components` would hide `.` and doubled slashes.
        let text = path.as_os_str().as_encoded_bytes();
        let clean = text.len() > 1
            && text.starts_with(b"/")
            && text[1..]
                .split(|b| *b == b'/')
                .all(|seg| !seg.is_empty() && seg != b"." && seg != b"..");
        if clean {
            Ok(CleanPath(path.to_path_buf()))
        } else {
            Err(JailArgError::Path(path.to_path_buf()))
        }
    }

    pub fn as_path(&self) -> &Path {
        &self.0
    }
}

impl TryFrom<PathBuf> for CleanPath {
    type Error = JailArgError;
    fn try_from(p: PathBuf) -> Result<Self, Self::Error> {
        CleanPath::new(&p)
    }
}

impl From<CleanPath> for PathBuf {
    fn from(p: CleanPath) -> PathBuf {
        p.0
    }
}

/// One file of the owner's, hard-linked into the chroot under `name`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JailFile {
    pub name: JailFileName,
    /// Where it is now: under the owner's banger state, owned by the owner.
    pub source: CleanPath,
}

/// The cgroup limits of a jailed VMM (the jailer's `--cgroup`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawLimits", into = "RawLimits")]
pub struct JailLimits {
    memory_bytes: u64,
    pids_max: u32,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    memory_bytes: u64,
    pids_max: u32,
}

impl JailLimits {
    pub fn new(memory_bytes: u64, pids_max: u32) -> Result<JailLimits, JailArgError> {
        if !(JAIL_MEMORY_RANGE.0..=JAIL_MEMORY_RANGE.1).contains(&memory_bytes) {
            return Err(JailArgError::Memory(memory_bytes));
        }
        if !(JAIL_PIDS_RANGE.0..=JAIL_PIDS_RANGE.1).contains(&pids_max) {
            return Err(JailArgError::Pids(pids_max));
        }
        Ok(JailLimits {
            memory_bytes,
            pids_max,
        })
    }

    pub fn memory_bytes(&self) -> u64 {
        self.memory_bytes
    }

    pub fn pids_max(&self) -> u32 {
        self.pids_max
    }
}

impl TryFrom<RawLimits> for JailLimits {
    type Error = JailArgError;
    fn try_from(r: RawLimits) -> Result<Self, Self::Error> {
        JailLimits::new(r.memory_bytes, r.pids_max)
    }
}

impl From<JailLimits> for RawLimits {
    fn from(l: JailLimits) -> RawLimits {
        RawLimits {
            memory_bytes: l.memory_bytes,
            pids_max: l.pids_max,
        }
    }
}

/// Where Firecracker's serial console goes: the FIFO `console` among the files, as its
/// stdout (releases before 1.13) or as its stdin (1.13 on: the serial is written to
/// `serial_out_path`, and stdin only keeps a reader on the pipe).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsoleOn {
    Stdin,
    Stdout,
}

/// Everything `launch_jailed` takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, try_from = "RawLaunch")]
pub struct JailLaunch {
    pub id: JailId,
    pub files: Vec<JailFile>,
    /// The FIFO among `files` that carries the console, and on which descriptor.
    pub console: Option<(JailFileName, ConsoleOn)>,
    /// `None`: no limits (the host has no v1 memory and pids hierarchies for the helper).
    pub limits: Option<JailLimits>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLaunch {
    id: JailId,
    files: Vec<JailFile>,
    console: Option<(JailFileName, ConsoleOn)>,
    limits: Option<JailLimits>,
}

impl JailLaunch {
    pub fn new(
        id: JailId,
        files: Vec<JailFile>,
        console: Option<(JailFileName, ConsoleOn)>,
        limits: Option<JailLimits>,
    ) -> Result<JailLaunch, JailArgError> {
        if files.len() > MAX_JAIL_FILES {
            return Err(JailArgError::TooManyFiles(files.len()));
        }
        let mut seen = std::collections::HashSet::new();
        for f in &files {
            if !seen.insert(f.name.as_str()) {
                return Err(JailArgError::Duplicate(f.name.as_str().to_owned()));
            }
        }
        if let Some((name, _)) = &console
            && !seen.contains(name.as_str())
        {
            return Err(JailArgError::FileName(name.as_str().to_owned()));
        }
        Ok(JailLaunch {
            id,
            files,
            console,
            limits,
        })
    }
}

impl TryFrom<RawLaunch> for JailLaunch {
    type Error = JailArgError;
    fn try_from(r: RawLaunch) -> Result<Self, Self::Error> {
        JailLaunch::new(r.id, r.files, r.console, r.limits)
    }
}

/// A Firecracker the helper started through the jailer: enough for the daemon to drive,
/// stop and find it again as the owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jailed {
    /// Firecracker's pid on the host (the jailer's `firecracker.pid`).
    pub pid: u32,
    /// Field 22 of its `/proc/PID/stat`: with the pid, its identity.
    pub start_time: u64,
    /// The chroot, on the host.
    pub root: PathBuf,
    /// Its API socket, on the host (`<root>/run/firecracker.socket`).
    pub api_socket: PathBuf,
    /// Its cgroup directories, when it has limits.
    pub cgroups: Vec<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_names_paths_and_limits_are_range_checked() {
        assert!(JailId::new("0a1b2c3d4e5f").is_ok());
        assert!(JailId::new(&"a".repeat(64)).is_ok());
        for bad in ["", "a/b", "a b", "a.b", "ü", &"a".repeat(65)] {
            assert!(JailId::new(bad).is_err(), "{bad:?}");
        }
        assert!(JailFileName::new("vmlinux").is_ok());
        assert!(JailFileName::new("work.ext4").is_ok());
        assert!(JailFileName::new("fc-drives/root").unwrap().in_drive_dir());
        assert!(!JailFileName::new("fc-drives").unwrap().in_drive_dir());
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "a/b",
            "a b",
            &"a".repeat(65),
            "fc-drives/",
            "fc-drives/..",
            "fc-drives/.x",
            "fc-drives/a/b",
            "fc-drives//a",
            "/fc-drives/a",
            "x/fc-drives/a",
        ] {
            assert!(JailFileName::new(bad).is_err(), "{bad:?}");
        }
        assert!(CleanPath::new(Path::new("/var/lib/banger/vms/x/work.ext4")).is_ok());
        for bad in ["relative", "/a/../b", "/a/./b", "/a//b", ""] {
            assert!(CleanPath::new(Path::new(bad)).is_err(), "{bad:?}");
        }
        assert!(JailLimits::new(512 << 20, 512).is_ok());
        assert!(JailLimits::new(1, 512).is_err());
        assert!(JailLimits::new(u64::MAX, 512).is_err());
        assert!(JailLimits::new(512 << 20, 0).is_err());
        assert!(JailLimits::new(512 << 20, u32::MAX).is_err());
    }

    #[test]
    fn a_launch_is_validated_while_parsing() {
        let good = r#"{"id":"abc","files":[{"name":"vmlinux","source":"/s/vmlinux"},
            {"name":"console.fifo","source":"/s/vms/abc/console.fifo"}],
            "console":["console.fifo","stdin"],
            "limits":{"memory_bytes":536870912,"pids_max":512}}"#;
        let launch: JailLaunch = serde_json::from_str(good).unwrap();
        assert_eq!(launch.files.len(), 2);
        for bad in [
            r#"{"id":"a/b","files":[],"console":null,"limits":null}"#,
            r#"{"id":"abc","files":[{"name":"../x","source":"/s/x"}],"console":null,"limits":null}"#,
            r#"{"id":"abc","files":[{"name":"x","source":"s/x"}],"console":null,"limits":null}"#,
            r#"{"id":"abc","files":[{"name":"x","source":"/s/../etc/shadow"}],"console":null,"limits":null}"#,
            r#"{"id":"abc","files":[{"name":"x","source":"/s/x"},{"name":"x","source":"/s/y"}],"console":null,"limits":null}"#,
            r#"{"id":"abc","files":[],"console":["nope","stdin"],"limits":null}"#,
            r#"{"id":"abc","files":[],"console":null,"limits":{"memory_bytes":1,"pids_max":512}}"#,
            r#"{"id":"abc","files":[],"console":null,"limits":null,"uid":0}"#,
            r#"{"id":"abc","files":[],"console":null,"limits":null,"chroot_base":"/"}"#,
        ] {
            assert!(serde_json::from_str::<JailLaunch>(bad).is_err(), "{bad}");
        }
    }
}
