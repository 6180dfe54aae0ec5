//! The records the store keeps. They are also the daemon's JSON API shapes, so every
//! type is serde-(de)serialisable and timestamps are RFC 3339 UTC strings.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// A registered image: a kernel (+ optional initrd) and a root filesystem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// Unique.
    pub name: String,
    /// The kernel VMMs boot; with `kernel_format`.
    pub kernel_path: PathBuf,
    /// `elf-vmlinux` (what Firecracker needs on x86_64) or `bzimage`.
    pub kernel_format: String,
    /// The original bzImage when `kernel_path` was extracted from it.
    pub bzimage_path: Option<PathBuf>,
    pub initrd_path: Option<PathBuf>,
    pub rootfs_path: Option<PathBuf>,
    /// Where it came from, e.g. `recipe:minimal`, `catalog:debian-12`, `oci:…`.
    pub source: String,
    pub kernel_release: Option<String>,
    /// The image's own directory (everything above lives under it).
    pub dir: PathBuf,
    pub created_at: String,
    pub size_bytes: u64,
    /// The ELF kernel carries the PVH entry note (`XEN_ELFNOTE_PHYS32_ENTRY`), so QEMU's
    /// microvm and Firecracker can boot it directly. Computed once when the image was
    /// built or imported; `None` for images registered before banger recorded it.
    #[serde(default)]
    pub kernel_pvh: Option<bool>,
    /// How the guest starts; `None` for images registered before banger recorded it
    /// (they are all [`GuestInit::Initramfs`]).
    #[serde(default)]
    pub init: Option<GuestInit>,
    /// Opaque JSON owned by the daemon: an imported OCI image's run configuration
    /// (entrypoint, cmd, env, working directory).
    #[serde(default)]
    pub config_json: Option<String>,
    /// `sha256:<hex>` of the image's manifest: its content address.
    #[serde(default)]
    pub digest: Option<String>,
}

/// Accepted values of [`ImageRecord::kernel_format`].
pub const KERNEL_FORMATS: [&str; 2] = ["elf-vmlinux", "bzimage"];

/// How a guest of an image starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GuestInit {
    /// The agent runs from the initramfs as PID 1; there is no root disk (`minimal`).
    Initramfs,
    /// The initramfs mounts the root disk and the agent, as PID 1 there, starts the few
    /// services a dev VM needs (sshd): the lean init.
    Agent,
    /// The initramfs mounts the root disk and hands over to systemd; the agent is a unit.
    Systemd,
}

impl GuestInit {
    pub const ALL: [GuestInit; 3] = [GuestInit::Initramfs, GuestInit::Agent, GuestInit::Systemd];

    pub fn as_str(self) -> &'static str {
        match self {
            GuestInit::Initramfs => "initramfs",
            GuestInit::Agent => "agent",
            GuestInit::Systemd => "systemd",
        }
    }
}

impl fmt::Display for GuestInit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for GuestInit {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        GuestInit::ALL
            .into_iter()
            .find(|i| i.as_str() == s)
            .ok_or_else(|| {
                format!("unknown guest init {s:?}; expected initramfs, agent or systemd")
            })
    }
}

impl ToSql for GuestInit {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for GuestInit {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        value
            .as_str()?
            .parse()
            .map_err(|e: String| FromSqlError::Other(e.into()))
    }
}

/// What a VM disk is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiskRole {
    /// The copy-on-write clone of the image's root filesystem.
    Root,
    /// The VM's own scratch disk, mounted at `/work`.
    Work,
}

impl DiskRole {
    pub fn as_str(self) -> &'static str {
        match self {
            DiskRole::Root => "root",
            DiskRole::Work => "work",
        }
    }
}

/// One disk of a VM, as created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmDisk {
    pub role: DiskRole,
    pub path: PathBuf,
    /// `raw` or `qcow2`.
    pub format: String,
    /// How it was made: `reflink` (FICLONE), `qcow2` (an overlay on the image),
    /// `copy` (a sparse copy), `fresh` (a new, empty filesystem).
    pub backend: String,
    /// The size the guest sees.
    pub size_bytes: u64,
}

/// A VM's lifecycle state.
///
/// Allowed moves (anything else is refused, including staying in the same state):
///
/// * `Created`  → `Starting` (first boot), `Failed` (provisioning failed before boot)
/// * `Starting` → `Running` (booted), `Stopping` (stop requested mid-boot), `Failed`
/// * `Running`  → `Stopping` (stop requested), `Stopped` (the guest powered off or the
///   VMM exited on its own, seen by the daemon or by reconciliation), `Failed` (crashed),
///   `Paused` (its vCPUs frozen; the VMM keeps running)
/// * `Paused`   → `Running` (resumed), `Stopping` (stop requested), `Stopped` (the VMM
///   exited or was killed), `Failed`
/// * `Stopping` → `Stopped`, `Failed` (could not be stopped cleanly)
/// * `Stopped`  → `Starting` (restart), `Failed` (its files are gone: it cannot start again)
/// * `Failed`   → `Starting` (retry), `Stopped` (reconciliation cleaned up after it)
///
/// Deleting a VM is not a state: the daemon stops it first, then deletes the row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VmState {
    Created,
    Starting,
    Running,
    Stopping,
    Stopped,
    Failed,
    Paused,
}

impl VmState {
    pub const ALL: [VmState; 7] = [
        VmState::Created,
        VmState::Starting,
        VmState::Running,
        VmState::Stopping,
        VmState::Stopped,
        VmState::Failed,
        VmState::Paused,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            VmState::Created => "created",
            VmState::Starting => "starting",
            VmState::Running => "running",
            VmState::Stopping => "stopping",
            VmState::Stopped => "stopped",
            VmState::Failed => "failed",
            VmState::Paused => "paused",
        }
    }

    /// The lifecycle state machine (see the type's documentation).
    pub fn can_transition_to(self, next: VmState) -> bool {
        use VmState::*;
        matches!(
            (self, next),
            (Created, Starting | Failed)
                | (Starting, Running | Stopping | Failed)
                | (Running, Stopping | Stopped | Failed | Paused)
                | (Paused, Running | Stopping | Stopped | Failed)
                | (Stopping, Stopped | Failed)
                | (Stopped, Starting | Failed)
                | (Failed, Starting | Stopped)
        )
    }

    /// A VMM process may exist for the VM in this state.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            VmState::Starting | VmState::Running | VmState::Paused | VmState::Stopping
        )
    }
}

impl fmt::Display for VmState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for VmState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        VmState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| format!("unknown VM state {s:?}; expected one of created, starting, running, paused, stopping, stopped, failed"))
    }
}

impl ToSql for VmState {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for VmState {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        value
            .as_str()?
            .parse()
            .map_err(|e: String| FromSqlError::Other(e.into()))
    }
}

/// A VM as the store knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmRecord {
    /// Short random hex (see [`new_vm_id`]); unique.
    pub id: String,
    /// Unique.
    pub name: String,
    /// Must name a registered image (enforced by a foreign key).
    pub image_name: String,
    pub state: VmState,
    pub vcpu: u32,
    pub memory_mib: u64,
    pub disk_bytes: u64,
    pub dir: PathBuf,
    /// The VMM driver that runs it (`qemu`, `firecracker`): chosen when the VM is created
    /// and kept for its life.
    pub driver: Option<String>,
    /// Why it got that driver (the selection's reason), for `vm inspect`.
    #[serde(default)]
    pub driver_reason: Option<String>,
    /// Opaque JSON owned by the daemon: pid, start time, sockets.
    pub runtime_json: Option<String>,
    /// Opaque JSON: boot timings.
    pub boot_json: Option<String>,
    pub last_error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub started_at: Option<String>,
}

/// Hex digits in a VM id: 48 random bits, short enough to type, unlikely to collide.
pub const VM_ID_HEX_LEN: usize = 12;

/// Whether `s` has the shape of a VM id (as [`new_vm_id`] makes them).
pub fn is_vm_id(s: &str) -> bool {
    s.len() == VM_ID_HEX_LEN
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A fresh random VM id (lowercase hex, [`VM_ID_HEX_LEN`] digits) from the kernel's CSPRNG.
pub fn new_vm_id() -> std::io::Result<String> {
    let mut bytes = [0u8; VM_ID_HEX_LEN / 2];
    banger_system::random::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Now, as RFC 3339 UTC with second precision: `2024-05-01T12:34:56Z`.
pub fn now_rfc3339() -> String {
    format_rfc3339(time::OffsetDateTime::now_utc())
}

fn format_rfc3339(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_strings_round_trip_through_display_serde_and_from_str() {
        for s in VmState::ALL {
            assert_eq!(s.to_string().parse::<VmState>(), Ok(s));
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
        }
        assert!("Running".parse::<VmState>().is_err());
    }

    #[test]
    fn state_machine_table() {
        use VmState::*;
        let allowed = [
            (Created, Starting),
            (Created, Failed),
            (Starting, Running),
            (Starting, Stopping),
            (Starting, Failed),
            (Running, Stopping),
            (Running, Stopped),
            (Running, Failed),
            (Running, Paused),
            (Paused, Running),
            (Paused, Stopping),
            (Paused, Stopped),
            (Paused, Failed),
            (Stopping, Stopped),
            (Stopping, Failed),
            (Stopped, Starting),
            (Stopped, Failed),
            (Failed, Starting),
            (Failed, Stopped),
        ];
        for from in VmState::ALL {
            for to in VmState::ALL {
                assert_eq!(
                    from.can_transition_to(to),
                    allowed.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
    }

    #[test]
    fn ids_are_short_lowercase_hex_and_differ() {
        let a = new_vm_id().unwrap();
        let b = new_vm_id().unwrap();
        assert_eq!(a.len(), VM_ID_HEX_LEN);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
            "{a}"
        );
        assert_ne!(a, b);
        assert!(is_vm_id(&a));
        assert!(
            !is_vm_id("ABCDEF012345")
                && !is_vm_id("abc")
                && !is_vm_id("..")
                && !is_vm_id("0123456789ag")
        );
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let t = time::macros::datetime!(2024-05-01 12:34:56.789 +02:00);
        assert_eq!(format_rfc3339(t), "2024-05-01T10:34:56Z");
        assert!(now_rfc3339().ends_with('Z'));
    }
}
