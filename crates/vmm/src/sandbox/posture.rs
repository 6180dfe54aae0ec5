//! What confinement a running VMM really has, read back from `/proc`, and what the host
//! allows. Read-only; works as an ordinary user (fields a user may not read are `None`).

use std::io;
use std::os::unix::fs::MetadataExt;

/// A process's confinement as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProcessPosture {
    /// Real, effective, saved and filesystem uid.
    pub uids: [u32; 4],
    pub gids: [u32; 4],
    /// `Seccomp:` — 0 off, 1 strict, 2 filtering.
    pub seccomp: Option<u8>,
    pub no_new_privs: Option<bool>,
    /// Effective and bounding capability sets.
    pub cap_eff: Option<u64>,
    pub cap_bnd: Option<u64>,
    /// Whether its root directory differs from ours; `None` when we may not look
    /// (another user's process).
    pub own_root: Option<bool>,
    /// Whether it is in another mount namespace than ours; `None` when we may not look.
    pub own_mount_ns: Option<bool>,
}

impl ProcessPosture {
    /// No uid of the process is root.
    pub fn unprivileged(&self) -> bool {
        self.uids.iter().all(|u| *u != 0)
    }

    /// Every property banger's sandbox gives a VMM under a root daemon holds.
    pub fn fully_confined(&self) -> bool {
        self.unprivileged()
            && self.seccomp == Some(2)
            && self.no_new_privs == Some(true)
            && self.cap_eff == Some(0)
            && self.own_root == Some(true)
    }
}

/// Which way a running VMM was confined when it started: the one answer doctor and
/// `vm inspect` give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartedBy {
    /// The root helper, through Firecracker's jailer, in this chroot (a system install).
    Jailer { chroot: std::path::PathBuf },
    /// banger's own sandbox (`crates/vmm/src/sandbox/`): seen as `no_new_privs` or a root
    /// of its own.
    Sandbox,
    /// Neither: an unsandboxed VMM (an older banger, or the sandbox turned off).
    Unsandboxed,
}

impl StartedBy {
    /// `rt`'s VMM, as `seen` in `/proc`. A jailed Firecracker's API socket lies in the
    /// jailer's chroot (`<chroot>/run/firecracker.socket`).
    pub fn of(rt: &crate::VmRuntime, seen: &ProcessPosture) -> StartedBy {
        let jailed = rt.driver == crate::DriverKind::Firecracker
            && rt
                .control_socket
                .ends_with(banger_helper_proto::JAIL_API_SOCKET);
        if let Some(chroot) = jailed
            .then(|| rt.control_socket.parent().and_then(|p| p.parent()))
            .flatten()
        {
            return StartedBy::Jailer {
                chroot: chroot.to_path_buf(),
            };
        }
        if seen.no_new_privs == Some(true) || seen.own_root == Some(true) {
            StartedBy::Sandbox
        } else {
            StartedBy::Unsandboxed
        }
    }

    /// `jailer`, `sandbox` or `none`.
    pub fn kind(&self) -> &'static str {
        match self {
            StartedBy::Jailer { .. } => "jailer",
            StartedBy::Sandbox => "sandbox",
            StartedBy::Unsandboxed => "none",
        }
    }

    /// In words, for doctor and `vm inspect`.
    pub fn describe(&self) -> String {
        match self {
            StartedBy::Jailer { chroot } => format!(
                "the root helper through Firecracker's jailer (chroot {})",
                chroot.display()
            ),
            StartedBy::Sandbox => "banger's sandbox (not Firecracker's jailer)".to_owned(),
            StartedBy::Unsandboxed => "no sandbox".to_owned(),
        }
    }
}

/// Parse `/proc/PID/status`.
pub fn parse_status(text: &str) -> ProcessPosture {
    let mut p = ProcessPosture::default();
    let ids = |rest: &str| {
        let mut out = [u32::MAX; 4];
        for (slot, v) in out.iter_mut().zip(rest.split_whitespace()) {
            *slot = v.parse().unwrap_or(u32::MAX);
        }
        out
    };
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key {
            "Uid" => p.uids = ids(value),
            "Gid" => p.gids = ids(value),
            "Seccomp" => p.seccomp = value.parse().ok(),
            "NoNewPrivs" => p.no_new_privs = value.parse::<u8>().ok().map(|v| v == 1),
            "CapEff" => p.cap_eff = u64::from_str_radix(value, 16).ok(),
            "CapBnd" => p.cap_bnd = u64::from_str_radix(value, 16).ok(),
            _ => {}
        }
    }
    p
}

/// Read the posture of process `pid`.
pub fn read(pid: u32) -> io::Result<ProcessPosture> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let mut p = parse_status(&text);
    p.own_root = differs(&format!("/proc/{pid}/root/"), "/");
    p.own_mount_ns = differs(&format!("/proc/{pid}/ns/mnt"), "/proc/self/ns/mnt");
    Ok(p)
}

/// Whether two paths are different files; `None` when either cannot be looked at.
fn differs(a: &str, b: &str) -> Option<bool> {
    let a = std::fs::metadata(a).ok()?;
    let b = std::fs::metadata(b).ok()?;
    Some((a.dev(), a.ino()) != (b.dev(), b.ino()))
}

/// Whether unprivileged user namespaces are allowed (what an ordinary user's daemon would
/// need for a jail of its own), and why not.
pub fn user_namespaces() -> Result<(), String> {
    let read = |p: &str| std::fs::read_to_string(p).ok().map(|s| s.trim().to_owned());
    if read("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0") {
        return Err("kernel.unprivileged_userns_clone is 0".into());
    }
    if read("/proc/sys/user/max_user_namespaces").as_deref() == Some("0") {
        return Err("user.max_user_namespaces is 0".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields() {
        let text = "Name:\tqemu\nUid:\t1900000001\t1900000001\t1900000001\t1900000001\n\
                    Gid:\t5\t5\t5\t5\nCapEff:\t0000000000000000\nCapBnd:\t000001ffffffffff\n\
                    NoNewPrivs:\t1\nSeccomp:\t2\n";
        let p = parse_status(text);
        assert_eq!(p.uids, [1_900_000_001; 4]);
        assert_eq!(p.seccomp, Some(2));
        assert_eq!(p.no_new_privs, Some(true));
        assert_eq!(p.cap_eff, Some(0));
        assert_eq!(p.cap_bnd, Some(0x1ff_ffff_ffff));
        assert!(p.unprivileged());
        assert!(!p.fully_confined(), "root unknown");
        let root = parse_status("Uid:\t0\t0\t0\t0\nSeccomp:\t0\n");
        assert!(!root.unprivileged());
        assert_eq!(root.no_new_privs, None);
    }

    #[test]
    fn our_own_process() {
        let p = read(std::process::id()).unwrap();
        assert_eq!(p.own_root, Some(false));
        assert_eq!(p.own_mount_ns, Some(false));
    }
}
