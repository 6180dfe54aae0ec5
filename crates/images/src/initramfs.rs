//! The minimal image's initramfs: banger-agent as `/init`, a static busybox with
//! its applet links, the guest's kernel modules with their load order, and the
//! few files in `/etc` that tools expect.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use banger_system::CommandRunner;

use crate::cpio::{CpioBuilder, CpioError};
use crate::elf;
use crate::modules::ModuleInfo;

/// Applets the agent and users rely on; a busybox without them is refused.
pub const REQUIRED_APPLETS: &[&str] = &[
    "sh",
    "cat",
    "uname",
    "head",
    "sha256sum",
    "sleep",
    "true",
    "tty",
    "stty",
    "mount",
    "poweroff",
];

/// Where the module load order lives in the guest.
pub const MODULES_LIST: &str = "etc/banger/modules";

#[derive(Debug, thiserror::Error)]
pub enum InitramfsError {
    /// The agent cannot be read.
    #[error("cannot read the guest agent {path:?}; build it with `make agent`")]
    AgentUnreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The agent would need a dynamic loader the initramfs does not have.
    #[error(
        "the guest agent {path:?} cannot be the guest's /init: {reason}; build it statically with `make agent` (RUSTFLAGS='-C target-feature=+crt-static' cargo build --profile agent --target x86_64-unknown-linux-gnu -p banger-agent)"
    )]
    AgentNotStatic { path: PathBuf, reason: String },
    /// The extracted busybox is not a static x86_64 program.
    #[error("busybox {path:?} is not usable in the initramfs: {reason}")]
    BusyboxNotStatic { path: PathBuf, reason: String },
    /// Running busybox to list its applets failed.
    #[error("cannot run {path:?} --list to find its applets")]
    BusyboxRun {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `busybox --list` failed or printed nonsense.
    #[error("{path:?} --list failed: {reason}")]
    BusyboxList { path: PathBuf, reason: String },
    /// A required applet is absent.
    #[error("busybox {path:?} lacks the applets {missing:?} the guest needs")]
    MissingApplets { path: PathBuf, missing: Vec<String> },
    #[error(transparent)]
    Cpio(#[from] CpioError),
    /// Writing the archive file failed.
    #[error("cannot write the initramfs {path:?}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Check that `path` is a static x86_64 executable (no `PT_INTERP`).
pub fn check_agent(path: &Path) -> Result<(), InitramfsError> {
    let data = std::fs::read(path).map_err(|e| InitramfsError::AgentUnreadable {
        path: path.to_path_buf(),
        source: e,
    })?;
    elf::check_static_x86_64(&data).map_err(|reason| InitramfsError::AgentNotStatic {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    })
}

/// Check `busybox` is static, then ask it for its applet names (`--list`).
pub fn busybox_applets(
    runner: &dyn CommandRunner,
    busybox: &Path,
) -> Result<Vec<String>, InitramfsError> {
    let data = std::fs::read(busybox).map_err(|e| InitramfsError::BusyboxRun {
        path: busybox.to_path_buf(),
        source: e,
    })?;
    elf::check_static_x86_64(&data).map_err(|reason| InitramfsError::BusyboxNotStatic {
        path: busybox.to_path_buf(),
        reason: reason.to_string(),
    })?;
    let out = runner
        .run(busybox, &[std::ffi::OsStr::new("--list")])
        .map_err(|e| InitramfsError::BusyboxRun {
            path: busybox.to_path_buf(),
            source: e,
        })?;
    let list_err = |reason: String| InitramfsError::BusyboxList {
        path: busybox.to_path_buf(),
        reason,
    };
    if !out.success() {
        return Err(list_err(format!(
            "exit {:?}: {}",
            out.code,
            out.stderr_str().trim()
        )));
    }
    let mut applets = Vec::new();
    for name in out
        .stdout_str()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
    {
        let plain = name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.[".contains(&b))
            && name != "."
            && name != "..";
        if !plain {
            return Err(list_err(format!("it printed an odd applet name {name:?}")));
        }
        if name != "busybox" {
            applets.push(name.to_string());
        }
    }
    let missing: Vec<String> = REQUIRED_APPLETS
        .iter()
        .filter(|a| !applets.iter().any(|x| x == *a))
        .map(|a| a.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(InitramfsError::MissingApplets {
            path: busybox.to_path_buf(),
            missing,
        });
    }
    Ok(applets)
}

/// Everything that goes into the initramfs.
#[derive(Debug)]
pub struct InitramfsSpec<'a> {
    /// Static banger-agent, installed as `/init`.
    pub agent: &'a Path,
    /// Static busybox, installed as `/bin/busybox`, with the applet names from
    /// [`busybox_applets`] (each becomes `/bin/NAME → busybox`). `None` for an initramfs
    /// that only brings a root disk up: the agent needs no shell for that.
    pub busybox: Option<(&'a Path, &'a [String])>,
    pub kernel_release: &'a str,
    /// Directory holding the uncompressed modules at their [`ModuleInfo::path`].
    pub modules_root: &'a Path,
    /// Modules in load order (dependencies first).
    pub modules: &'a [&'a ModuleInfo],
    /// Written to `/etc/os-release` as VERSION_ID.
    pub banger_version: &'a str,
}

/// Lay out the initramfs and write it, uncompressed, to `out`. Returns its size.
pub fn write_initramfs(spec: &InitramfsSpec<'_>, out: &Path) -> Result<u64, InitramfsError> {
    let archive = layout(spec)?;
    let write_err = |e| InitramfsError::Write {
        path: out.to_path_buf(),
        source: e,
    };
    let file = File::create(out).map_err(write_err)?;
    let mut writer = BufWriter::new(file);
    let size = archive.write_to(&mut writer)?;
    let file = writer.into_inner().map_err(|e| write_err(e.into_error()))?;
    file.sync_all().map_err(write_err)?;
    Ok(size)
}

fn layout(spec: &InitramfsSpec<'_>) -> Result<CpioBuilder, InitramfsError> {
    let mut a = CpioBuilder::new();
    for dir in [
        "dev",
        "proc",
        "sys",
        "run",
        "work",
        "etc",
        "etc/banger",
        "bin",
        "usr",
    ] {
        a.dir(dir, 0o755)?;
    }
    a.dir("tmp", 0o1777)?;
    a.dir("root", 0o700)?;
    // The kernel opens /dev/console for PID 1 before anything mounts devtmpfs.
    a.char_device("dev/console", 0o600, 5, 1)?;

    a.file_from("init", 0o755, spec.agent)?;
    a.dir("newroot", 0o755)?;
    if let Some((busybox, applets)) = spec.busybox {
        a.file_from("bin/busybox", 0o755, busybox)?;
        for applet in applets {
            a.symlink(format!("bin/{applet}"), "busybox")?;
        }
    }
    // One bin directory serves every conventional path (#!/usr/bin/env, /sbin/…).
    a.symlink("sbin", "bin")?;
    a.symlink("usr/bin", "../bin")?;
    a.symlink("usr/sbin", "../bin")?;

    let kdir = format!("lib/modules/{}", spec.kernel_release);
    a.dir(&kdir, 0o755)?;
    let mut order = String::new();
    let mut dep = String::new();
    for module in spec.modules {
        let rel = module.path.to_string_lossy();
        a.file_from(
            format!("{kdir}/{rel}"),
            0o644,
            spec.modules_root.join(&module.path),
        )?;
        order.push_str(&rel);
        order.push('\n');
        // modules.dep lets busybox's modprobe work inside the guest too.
        dep.push_str(&format!("{rel}:"));
        for dependency in &module.depends {
            if let Some(d) = spec.modules.iter().find(|m| &m.name == dependency) {
                dep.push_str(&format!(" {}", d.path.to_string_lossy()));
            }
        }
        dep.push('\n');
    }
    a.file_bytes(MODULES_LIST, 0o644, order)?;
    a.file_bytes(format!("{kdir}/modules.dep"), 0o644, dep)?;

    a.file_bytes("etc/passwd", 0o644, "root:x:0:0:root:/root:/bin/sh\n")?;
    a.file_bytes("etc/group", 0o644, "root:x:0:\n")?;
    a.file_bytes("etc/hostname", 0o644, "banger\n")?;
    a.symlink("etc/mtab", "/proc/mounts")?;
    a.file_bytes("etc/os-release", 0o644, os_release(spec))?;
    Ok(a)
}

fn os_release(spec: &InitramfsSpec<'_>) -> String {
    format!(
        "NAME=\"banger minimal\"\nID=banger-minimal\nVARIANT_ID=minimal\nVERSION_ID=\"{v}\"\n\
         PRETTY_NAME=\"banger minimal {v} (kernel {k})\"\n",
        v = spec.banger_version,
        k = spec.kernel_release
    )
}
