//! Snapshots of VMs: `POST /v1/vms/{name}/snapshot`, `/v1/snapshots`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How to snapshot a VM. An empty body takes a snapshot with a generated name and lets the
/// VM run on.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSnapshotRequest {
    /// A DNS label like a VM name; `<vm>-<time>` when omitted.
    #[serde(default)]
    #[schema(example = "dev-ready")]
    pub name: Option<String>,
    /// Leave the VM stopped after the snapshot instead of resuming it.
    #[serde(default)]
    pub stop: bool,
}

/// A snapshot as the daemon records it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SnapshotView {
    pub id: String,
    pub name: String,
    /// The VM it was taken of (it may have been removed since).
    pub source_vm: String,
    /// The image that VM boots; clones use it too.
    pub image: String,
    /// The VMM that wrote it (`qemu`, `firecracker`); only it can restore it.
    pub driver: String,
    pub vcpu: u32,
    pub memory_mib: u64,
    /// Size of the source VM's work disk in bytes.
    pub disk_bytes: u64,
    /// The snapshot's directory on the host.
    pub dir: String,
    /// Bytes the snapshot's files take on the host (state, memory, disk copies).
    pub size_bytes: u64,
    /// RFC 3339.
    pub created_at: String,
    /// VMs made from it (filled by `GET /v1/snapshots/{name}`); `snapshot rm` refuses
    /// while there are any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clones: Vec<String>,
}

/// Where a clone came from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct VmOriginView {
    /// The snapshot's name (or id, when it was since removed).
    pub snapshot: String,
    /// When the VM's first start resumed the snapshot (RFC 3339); absent until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_at: Option<String>,
    /// The image whose warm state the snapshot is, when the VM was made from one (`vm run`
    /// of a warm image) rather than from a user's snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm_image: Option<String>,
    /// When `vm run` was handed the VM as a standby kept restored from the warm state
    /// (RFC 3339); absent when the VM's own start restored it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standby_taken_at: Option<String>,
}

/// An image's warm state: a snapshot of the image booted once to agent-ready with
/// default resources, which `vm run` of that image with the same resources restores.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct ImageWarmView {
    /// The snapshot's name (`warm-<id>`; not listed by `snapshot ls`).
    pub snapshot: String,
    pub driver: String,
    pub vcpu: u32,
    pub memory_mib: u64,
    pub disk_bytes: u64,
    /// The network mode it was taken with (`user` or `none`).
    pub network: String,
    /// Bytes its files take on the host.
    pub size_bytes: u64,
    pub created_at: String,
    /// VMs kept restored from it and ready, which the next `vm run`s of the image are
    /// handed (`[images] standbys`).
    #[serde(default)]
    pub standbys: u32,
}
