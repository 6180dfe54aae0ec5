//! The root helper and the one privileged interface of the daemon.
//!
//! * [`Executor`] carries out the verbs of `banger-helper-proto` for one owner: it is the
//!   policy (what an owner may ask) on top of `banger-net`'s mechanisms.
//! * [`server`] serves an executor on a Unix socket: mode 0600, owned by the owner,
//!   `SO_PEERCRED` checked on every connection, only the owner's uid admitted.
//! * [`Privileged`] is what the daemon calls. Two implementations share the executor's
//!   code path: [`HelperClient`] (system install: the helper's socket) and [`InProcess`]
//!   (dev mode as root: the executor called directly).
//!
//! * [`mode`] decides which networking an owner's VMs get (bridge through the helper,
//!   bridge in-process, QEMU user-mode, none) and why; [`subnet`] which subnet the bridge
//!   is on — one place for doctor and the daemon.
//!
//! Everything here is blocking; async callers use `spawn_blocking`.

mod client;
mod error;
mod executor;
pub mod mode;
mod owner;
mod privileged;
pub mod server;
pub mod subnet;

pub use client::HelperClient;
pub use error::{HelperError, StartError};
pub use executor::{Executor, JailSetup, jail_parent_cgroup};
pub use mode::{
    HelperProbe, ModeError, ModeInputs, ModeSelection, Networking, probe_helper, probe_helpers,
    select_network_mode,
};
pub use owner::{OwnerSource, resolve_owner};
pub use privileged::{InProcess, Privileged};
