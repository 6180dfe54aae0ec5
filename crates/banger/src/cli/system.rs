//! `banger system …`: the hardened system install.

use std::path::PathBuf;

use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// Install banger as two hardened systemd services for one owner (needs root)
    #[command(long_about = INSTALL_HELP)]
    Install(SystemInstallArgs),
    /// Stop and remove the system install; images and VMs stay unless --purge (needs root)
    #[command(long_about = UNINSTALL_HELP)]
    Uninstall(SystemUninstallArgs),
    /// Show the system install: owner, version, services, sockets
    Status {
        /// Print as JSON
        #[arg(long)]
        json: bool,
    },
}

const INSTALL_HELP: &str = "\
Install banger as the supported, hardened system install for one owner:

  * this banger (and its guest agent) copied root-owned into PREFIX/bin and PREFIX/lib/banger;
  * banger-helper.service: the root helper, holding only CAP_NET_ADMIN, CAP_NET_RAW,
    CAP_CHOWN and CAP_DAC_OVERRIDE (VM cgroups on a v1 host), its socket
    /run/banger-helper/helper.sock mode 0600 owned by the owner;
    when Firecracker and its jailer are installed (the owner's firecracker_bin, else
    firecracker on PATH, with jailer beside it; both root-owned), it also starts each
    Firecracker VM through the jailer and holds what that needs (CAP_SYS_ADMIN, mount and
    namespace calls, /dev/kvm; on a pure cgroup v2 host a writable cgroup tree, whose root
    the jailer writes; see docs/privileges.md). The output says which posture was chosen,
    why, and for which cgroup layout; --firecracker/--jailer choose the binaries,
    --no-jailer opts out;
  * bangerd.service: the owner daemon, running as the owner with no capabilities, its socket
    /run/banger/bangerd.sock mode 0600, its state in /var/lib/banger;
  * /etc/banger/install.toml: the owner, their uid, the paths, the version and the cgroup
    layout the units were made for (v1 or v2), written last.

Both units are Type=notify and carry the hardening `banger doctor` checks. Every file is
written atomically, and a second run changes nothing. The services are enabled and started,
and the command waits for both sockets. Installing again after upgrading banger replaces the
binaries and restarts the services; running VMs keep running.

  sudo banger system install --owner $USER
  banger system install --owner $USER --dry-run --out DIR     render the files into DIR only

Moving a root (BANGER_ETC_DIR, BANGER_STATE_DIR, BANGER_RUNTIME_DIR, BANGER_SYSTEMD_DIR,
BANGER_CONFIG_DIR for the owner's config directory) installs the files there and starts
nothing: for packaging and tests. See docs/privileges.md, \"System install\".";

const UNINSTALL_HELP: &str = "\
Stop and disable both services and remove their unit files, the installed binaries and
/etc/banger/install.toml. Images and VMs in the state directory stay (a later install, for
any owner, finds them) unless --purge; the owner's ~/.config/banger always stays. Running
VMs are not stopped: remove them first with `banger vm rm` if you purge.";

#[derive(Debug, Args)]
pub struct SystemInstallArgs {
    /// The user who owns the daemon, its VMs and its sockets
    #[arg(long, value_name = "USER")]
    pub owner: String,
    /// Where to install the binaries (PREFIX/bin/banger)
    #[arg(long, value_name = "DIR", default_value = "/usr/local")]
    pub prefix: PathBuf,
    /// Render the units and install.toml without touching the system
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: write the rendered files into DIR instead of printing them
    #[arg(long, value_name = "DIR", requires = "dry_run")]
    pub out: Option<PathBuf>,
    /// The Firecracker the helper jails (default: the owner's firecracker_bin, else
    /// firecracker on PATH, when a jailer is beside it); refused unless root-owned
    #[arg(long, value_name = "PATH", conflicts_with = "no_jailer")]
    pub firecracker: Option<PathBuf>,
    /// The jailer to run it with (default: jailer beside --firecracker)
    #[arg(long, value_name = "PATH", requires = "firecracker")]
    pub jailer: Option<PathBuf>,
    /// Never jail Firecracker: the helper does network plumbing only
    #[arg(long)]
    pub no_jailer: bool,
}

#[derive(Debug, Args)]
pub struct SystemUninstallArgs {
    /// Also delete the state directory: every image and VM disk
    #[arg(long)]
    pub purge: bool,
}
