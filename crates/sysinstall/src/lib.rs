//! The system install (`sudo banger system install --owner USER`): two hardened systemd
//! units — the root helper and the owner's daemon — and `/etc/banger/install.toml`.
//!
//! * [`hardening`] owns the directives both units carry; `banger doctor` checks the
//!   installed units against the same lists.
//! * [`jail`] chooses whether the helper runs Firecracker's jailer (and says why).
//! * [`render`] turns an [`InstallPlan`] into the unit files and install.toml (pure).
//! * [`install()`] / [`uninstall()`] put them in place and take them away: atomic writes,
//!   idempotent, and systemd is asked to act only on the real system, never under a moved
//!   root (`BANGER_ETC_DIR`, `BANGER_SYSTEMD_DIR`, …), which is how tests and packagers
//!   use it.

mod error;
pub mod files;
pub mod hardening;
mod install;
pub mod jail;
pub mod plan;
pub mod render;
mod systemctl;
mod uninstall;

pub use error::SysInstallError;
pub use files::{Change, FileChange};
pub use install::{InstallReport, Sources, install};
pub use plan::InstallPlan;
pub use systemctl::unit_state;
pub use uninstall::{UninstallReport, uninstall};
