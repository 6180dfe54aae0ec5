//! The root helper's protocol, shared by the helper (server) and the daemon (client).
//!
//! * **Closed**: a request is one [`Verb`] from a fixed enum; anything else fails to
//!   deserialize and is refused before any code runs.
//! * **Typed and validated**: every argument is a type that can only hold an acceptable
//!   value ([`TapName`], [`Subnet`], [`Port`], [`Publish`]); validation happens while
//!   parsing, on both sides.
//! * **Versioned**: every [`Request`] carries [`PROTOCOL_VERSION`]; a mismatch is answered
//!   with [`FailureKind::VersionMismatch`] and nothing is done.
//! * **Bounded**: frames are a 4-byte big-endian length and at most [`MAX_FRAME`] bytes of
//!   JSON; a longer length is refused before anything is allocated.
//!
//! See docs/privileges.md for what each verb may do.

mod addr;
mod frame;
mod jail;
mod message;
mod names;
mod publish;

pub use addr::{MacAddr, Subnet, SubnetError};
pub use frame::{FrameError, read_frame, write_frame};
pub use jail::{
    CleanPath, ConsoleOn, JAIL_API_SOCKET, JAIL_DRIVE_DIR, JAIL_EXEC_NAME, JAIL_INITRD,
    JAIL_KERNEL, JAIL_MEMORY_RANGE, JAIL_PIDS_RANGE, JAIL_READ_ONLY_FILES, JAIL_SNAPSHOT_MEMORY,
    JAIL_SNAPSHOT_STATE, JAIL_STDERR, JAIL_VSOCK, JailArgError, JailFile, JailFileName, JailId,
    JailLaunch, JailLimits, Jailed, MAX_JAIL_FILES, MAX_JAIL_ID,
};
pub use message::{
    Backend, Blocking, BridgeInfo, Failure, FailureKind, FirewallManager, FirewallReport,
    ForeignChain, Inventory, LegacyScan, Reply, Request, Response, TapInfo, Verb,
};
pub use names::{BRIDGE_PREFIX, NameError, TAP_PREFIX, TapName, bridge_name, nft_table_name};
pub use publish::{Port, PortMapping, Protocol, Publish, PublishError};

/// Version of this protocol; bumped on any incompatible change.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest frame payload either side accepts.
pub const MAX_FRAME: usize = 64 * 1024;
