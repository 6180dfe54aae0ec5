//! `banger snapshot …` and `banger vm snapshot` / `vm clone`.

use clap::{Args, Subcommand};

use super::output::{DataArgs, ListArgs};

pub const SNAPSHOT_HELP: &str = "\
Snapshot a running (or paused) VM: its memory, device state and disks at one instant.

The VM is paused, its VMM saves the guest, its disks are copied while it is frozen (reflinks
or qcow2 copies: cheap), and it runs on — or stays stopped with --stop. Clones resume from the
snapshot in a fraction of a boot, each with its own disks (copy-on-write on the snapshot's),
hostname, machine-id, SSH host keys, clock and a reseeded RNG:

  banger vm snapshot dev --name dev-ready
  banger vm run --from dev-ready --rm -- uname -n
  banger vm clone dev-ready --name try-1

Not yet supported: VMs on the bridge network (a clone would keep its parent's address) and
snapshots of clones. A snapshot is kept while clones are built on it.";

#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// The VM to snapshot (name, id, or a prefix of the id)
    #[arg(add = super::complete::vms())]
    pub vm: String,
    /// Name for the snapshot (a DNS label); `<vm>-<time>` if omitted
    #[arg(long)]
    pub name: Option<String>,
    /// Leave the VM stopped afterwards instead of resuming it
    #[arg(long)]
    pub stop: bool,
    /// Print the snapshot as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CloneArgs {
    /// The snapshot to clone (name or id)
    pub snapshot: String,
    /// Name for the new VM (a DNS label); generated if omitted
    #[arg(long)]
    pub name: Option<String>,
    /// Create it without starting it (its first `vm start` restores the snapshot)
    #[arg(long)]
    pub no_start: bool,
    /// Print the VM as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// List snapshots
    #[command(visible_alias = "list")]
    Ls {
        #[command(flatten)]
        list: ListArgs,
    },
    /// Show a snapshot and the VMs cloned from it
    Inspect {
        /// Snapshot name or id
        name: String,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Remove snapshots and their files (refused while VMs are cloned from them)
    Rm {
        /// Snapshot names or ids
        #[arg(required = true)]
        names: Vec<String>,
    },
}
