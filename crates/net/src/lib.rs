//! Host networking mechanisms for banger's bridge networking.
//!
//! * [`netlink`] — links, addresses and routes over rtnetlink (no `ip` program);
//! * [`tap`] — persistent TAP devices owned by the owner's uid (ioctls on `/dev/net/tun`);
//! * [`nft`] — the owner's nftables table, fed to a validated `nft` binary as JSON;
//! * [`exec`] — running a host program as root only after validating the opened binary;
//! * [`listeners`] — which local sockets hold a port (a publish must not steal it);
//! * [`sysctl`] — the few per-namespace knobs (`ip_forward`, `route_localnet`);
//! * [`subnet`] — choosing a bridge subnet that avoids the host's routes;
//! * [`firewall`] — reading a ruleset for what blocks guests (docker's or ufw's DROP).
//!
//! These are mechanisms without policy: who may ask for what is decided by the root helper
//! (`banger-helper`), the only caller of the privileged parts.

pub mod error;
pub mod exec;
pub mod firewall;
pub mod listeners;
pub mod netlink;
pub mod nft;
pub mod subnet;
pub mod sysctl;
pub mod tap;

pub use error::NetError;
