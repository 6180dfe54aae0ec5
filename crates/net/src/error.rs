//! Errors of the network mechanisms.

use std::path::PathBuf;

use banger_system::fsperm::RootExecutableError;

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("cannot open a netlink socket; is this a Linux host?")]
    NetlinkSocket(#[source] std::io::Error),
    /// A netlink request was refused by the kernel (`source` carries the errno).
    #[error("netlink: {what} failed")]
    Netlink {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("network interface {0} does not exist")]
    NoSuchLink(String),
    #[error("{name} exists but is {found}, not {wanted}; remove it or choose another name")]
    WrongKind {
        name: String,
        found: String,
        wanted: &'static str,
    },
    #[error("{what} on TAP device {name} failed")]
    Tap {
        name: String,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read or write {}", path.display())]
    Sysctl {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("refusing to run {} as root", path.display())]
    RefusedBinary {
        path: PathBuf,
        #[source]
        source: RootExecutableError,
    },
    #[error(
        "{program} is not installed (looked in PATH and the sbin directories); install the {package} package"
    )]
    Missing {
        program: &'static str,
        package: &'static str,
    },
    #[error("running {program} failed")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{program} {what} failed: {stderr}")]
    Failed {
        program: &'static str,
        what: String,
        stderr: String,
    },
    #[error("nft printed output banger cannot read ({what})")]
    NftOutput {
        what: String,
        #[source]
        source: serde_json::Error,
    },
}
