//! SSH on the host side.
//!
//! * [`key`] — the default key (ed25519, 0600), made with OpenSSH's own `ssh-keygen`;
//! * [`config`] — the ssh_config banger renders: `Host *.vm` through banger's
//!   ProxyCommand, host keys checked against banger's pinned known_hosts;
//! * [`known_hosts`] — pinning the host keys the guest agent reports;
//! * [`include`] — the one `Include` line `banger ssh-config --install` adds to
//!   `~/.ssh/config` (and doctor looks for).

pub mod config;
mod error;
pub mod include;
pub mod key;
pub mod known_hosts;
mod write;

pub use error::SshError;
pub use include::includes;
