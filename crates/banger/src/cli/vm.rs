//! `banger vm …`: the VM subcommands and their arguments. The everyday ones are also
//! top-level shortcuts (`banger run`, `banger ps`, …: see `cli/mod.rs`), sharing these
//! argument types and help texts.

use banger_api::{CreateVmRequest, ShareRequest};
use clap::{Args, Subcommand};

use super::output::{DataArgs, ListArgs};
use super::size::{TypedMib, parse_size, parse_typed_mib};

pub const RUN_HELP: &str = "\
Create and boot a VM, optionally run a command in it.

  banger vm run --rm -- uname -a      run one command in a throwaway VM; exits with its code
  banger vm run --rm cat /etc/os-release
  banger vm run --name dev            boot a VM and keep it running
  banger vm run -d --memory 1g        boot a VM in the background and print its name
  banger vm run --rm -it sh           an interactive shell in a throwaway VM
  banger vm run -d -p 8081:80         publish guest port 80 on host port 8081
  banger vm run --rm -v .:/src -w /src -- ls   share this directory as /src, live

The command may follow `--` or simply come last. The image defaults to `default_image_name`
from config.toml (the built-in default image if unset; it is built on first use). vCPUs,
memory and disk default to `[vm_defaults]`; `banger doctor` shows the effective values and
where each comes from. Sizes take binary units: 512m, 1g, 8G; a plain number is MiB.

-p HOST:GUEST publishes a guest port (TCP; add /udp for UDP; prefix an address such as
127.0.0.1: to listen on it only). It is kept with the VM and forwarded whenever it runs,
on the bridge or through QEMU's user-mode network (see docs/networking.md).

-v HOST:GUEST[:ro] (or --mount type=bind,src=HOST,dst=GUEST[,ro]) shares a host directory,
kept with the VM and mounted by the guest at every boot before any command runs. Under QEMU
it is live both ways (virtio-fs; needs virtiofsd, see `banger doctor`): what the guest's
root writes belongs to you on the host, and :ro is enforced by the host. Where a live share
is impossible (Firecracker; QEMU without virtiofsd) the directory is copied in at every
boot and `banger vm sync` copies the guest's changes back; -v HOST:GUEST:copy (or
--mount type=copy,…) asks for a copy, :live refuses one. Each share's mode is printed. See
docs/shares.md.

Exit status: the command's own (128+N when signal N killed it); 125 when banger fails
before the command runs (a bad flag, the VM did not boot, no daemon); 126 when the command
cannot be invoked (not executable, permission denied); 127 when it is not found.";

pub const EXEC_HELP: &str = "\
Run a command in a running VM through the guest agent (no SSH needed).

Output streams as it is produced; the command's exit code becomes banger's. The guest
command's stdin is empty unless you pass -i; -t gives it a terminal (stdin must be one).
The command may follow `--` or simply come after the VM name.

  banger vm exec dev -- cat /etc/os-release
  banger vm exec dev uname -a
  echo hello | banger vm exec -i dev -- cat
  tar c Cargo.toml | banger vm exec -i dev -- tar x -C /tmp
  banger vm exec -it dev -- sh
  banger vm exec -w /tmp -e GREETING=hi dev -- sh -c 'echo $GREETING from $PWD'

Exit status: the command's own (128+N when signal N killed it); 125 when banger fails
before the command runs (no such VM, VM not running, a bad flag, no daemon); 126 when the
command cannot be invoked (not executable, permission denied); 127 when it is not found.";

pub const LS_HELP: &str = "\
List VMs.

  banger vm ls                                  a table of every VM
  banger vm ls -q                               names only, one per line
  banger vm ls --json                           everything, as a JSON array
  banger vm ls --format '{{.name}} {{.state}}'   a template per VM (see docs/cli.md)
  banger vm ls --format 'table {{.name}}\\t{{.memory_mib}}'

Also `banger vm ps`, `banger vm list`, `banger ps`.";

pub const INSPECT_HELP: &str = "\
Show everything banger knows about a VM, including boot timings.

  banger vm inspect dev
  banger vm inspect dev --json
  banger vm inspect dev --format '{{.state}}'

Text the guest controls (its boot error, its kernel release) is escaped on a terminal;
--raw prints it as stored.";

pub const LOGS_HELP: &str = "\
Print a VM's serial console log.

  banger vm logs dev                 the whole log
  banger vm logs --tail 20 dev       the last 20 lines
  banger vm logs -f dev              keep printing until the VM stops (Ctrl-C to quit)

On a terminal, control characters the guest wrote (escape sequences that could retitle,
clear or query your terminal) are shown as visible text such as \\x1b; --raw passes them
through. Into a pipe or file the bytes are passed unchanged.";

pub const CREATE_HELP: &str = "\
Create a VM without booting it: its disks are laid out and its driver chosen; `banger vm
start NAME` boots it later. Takes the same VM flags as `vm run`.

  banger vm create --name dev --vcpu 2 --memory 1g   lay it out now
  banger vm start dev                                boot it later
  banger vm create --name pinned --vmm qemu          keep it on QEMU whatever config.toml says
  banger vm create --name dev -v \"$PWD:/src:ro\"   share a directory at every boot

A VM keeps the driver it was created with (`--vmm`, else `vmm` from config.toml: auto picks
Firecracker when it can run here, else QEMU); `banger vm inspect` says which and why.";

pub const PAUSE_HELP: &str = "\
Freeze running VMs: their vCPUs stop, their VMM and memory stay. `banger vm resume` lets
them run on from where they stopped; commands cannot be run in them meanwhile. `vm stop`
and `vm rm -f` work on a paused VM.

  banger vm pause dev
  banger vm resume dev";

#[derive(Debug, Subcommand)]
pub enum VmCommand {
    /// Create and boot a VM, optionally run a command in it
    #[command(long_about = RUN_HELP)]
    Run(RunArgs),

    /// Run a command in a running VM; its exit code becomes banger's
    #[command(long_about = EXEC_HELP)]
    Exec(ExecArgs),

    /// Create a VM without booting it (`vm start` boots it)
    #[command(long_about = CREATE_HELP)]
    Create(CreateArgs),

    /// Boot stopped VMs
    Start(StartArgs),

    /// Freeze running VMs' vCPUs (their memory stays allocated)
    #[command(long_about = PAUSE_HELP)]
    Pause(PauseArgs),

    /// Let paused VMs run again
    Resume(PauseArgs),

    /// Snapshot a running VM (memory, devices, disks); clones resume from it
    #[command(long_about = super::snapshot::SNAPSHOT_HELP)]
    Snapshot(super::SnapshotArgs),

    /// Create and start a VM that resumes from a snapshot (= vm run --from SNAP -d)
    #[command(long_about = super::snapshot::SNAPSHOT_HELP)]
    Clone(super::CloneArgs),

    /// Shut VMs down (gracefully, then by force after a timeout)
    Stop(StopArgs),

    /// Delete VMs and their disks
    Rm(RmArgs),

    /// List VMs
    #[command(visible_aliases = ["ps", "list"], long_about = LS_HELP)]
    Ls(LsArgs),

    /// Show everything banger knows about a VM, including boot timings
    #[command(long_about = INSPECT_HELP)]
    Inspect(InspectArgs),

    /// Print a VM's serial console log
    #[command(long_about = LOGS_HELP)]
    Logs(LogsArgs),

    /// Open an SSH session to a VM (the real ssh, through banger's config)
    #[command(long_about = SSH_HELP)]
    Ssh(SshArgs),

    /// Copy files and directories between the host and a VM
    #[command(long_about = CP_HELP)]
    Cp(CpArgs),

    /// Copy a VM's copy-in shares back to their host directories
    #[command(long_about = SYNC_HELP)]
    Sync(SyncArgs),
}

pub const SYNC_HELP: &str = "\
Copy the guest's content of a running VM's copy-in shares back to their host directories.
A share is copied in (instead of shared live) on Firecracker, on QEMU without virtiofsd when
[shares] fallback allows it, or when asked with -v HOST:GUEST:copy; `banger vm inspect`
says which. Live (virtio-fs) shares need no sync; read-only ones are refused.

  banger vm sync dev                 every read-write copy-in share of dev
  banger vm sync dev /src/build      one directory inside a share
  banger vm sync --delete dev /src   also delete host files the guest no longer has

Files the guest changed (other size or modification time) replace the host's, each written
under a temporary name and renamed into place; files only the host has are kept unless
--delete. What the guest sends is untrusted: entries with .. or absolute names, symlinks
pointing outside the share, devices and hard links refuse the whole sync before anything is
written, and it is capped at [shares] copy_max. Sync before `vm stop`: the next start copies
the host directory in afresh, replacing what the guest wrote.";

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// VM name
    #[arg(add = super::complete::vms())]
    pub name: String,
    /// Guest directories to sync: copy-in shares or directories inside them (default: every
    /// read-write copy-in share)
    #[arg(value_name = "GUEST_PATH")]
    pub paths: Vec<String>,
    /// Also delete host files and directories the guest does not have
    #[arg(long)]
    pub delete: bool,
}

pub const SSH_HELP: &str = "\
Open an SSH session to a running VM: runs the real `ssh` with banger's rendered config
(banger's key, the guest's pinned host key, the agent tunnel as ProxyCommand), so it works
without `banger ssh-config --install`, with or without a network path to the guest.

  banger vm ssh dev                  an interactive shell
  banger vm ssh dev -- uname -a      run one command (ssh joins the words with spaces)

ssh options go after `--` too, before any command: `-- -L 8080:localhost:80 -N`.

After `banger ssh-config --install`, `ssh dev.vm`, `scp`, `rsync -e ssh` and editors'
remote modes reach the same VM by the name NAME.vm.

Exit status: ssh's (the remote command's, or 255 when ssh itself fails).";

pub const CP_HELP: &str = "\
Copy files and directories between the host and a VM, through the guest agent (no SSH, no
network, no tools needed in the guest). One side is VM:PATH; modes are kept.

  banger vm cp ./docs dev:/work/             into an existing directory, keeping the name
  banger vm cp README.md dev:/tmp/readme      as a new name
  banger vm cp dev:/etc/os-release /tmp/      from the guest
  banger vm cp dev:/etc /tmp/guest-etc        a directory, as guest-etc
  tar c docs | banger vm cp - dev:/tmp        a tar stream from stdin, extracted into /tmp
  tar -C docs -c . | banger vm cp - dev:/root  docs' contents, straight into the existing /root
  banger vm cp dev:/etc - | tar t             a tar stream to stdout

As with docker cp: an existing directory receives the copy under its own name; any other
destination becomes the copy (one ending in / must be an existing directory, unless a
directory is copied). What comes from the guest is untrusted: entries that would land
outside the destination (.., absolute names, through symlinks), devices and hard links are
refused, and set-user-id bits are dropped. Files with holes (disk images) cross as their
data and keep their holes. A source is copied under its own name: one ending in . or .. is
refused (name it), and so is / itself (copy the directories you need, e.g. dev:/etc). A host
path whose first part looks like a VM name followed by a colon (notes:v2) reads as VM:PATH:
write it ./notes:v2.";

#[derive(Debug, Args)]
pub struct SshArgs {
    /// VM name
    #[arg(add = super::complete::vms())]
    pub name: String,
    /// A remote command, or ssh options (after `--`)
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARGS"
    )]
    pub args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CpArgs {
    /// Source: a host path, `-` (a tar stream on stdin), or VM:PATH
    pub source: String,
    /// Destination: a host path, `-` (a tar stream to stdout), or VM:PATH
    pub dest: String,
}

/// What a VM is made of: the flags `vm run` and `vm create` share, defined once.
#[derive(Debug, Args)]
pub struct VmSpecArgs {
    /// Name for the VM (a DNS label: lowercase letters, digits, '-'); generated if omitted
    #[arg(long)]
    pub name: Option<String>,
    /// Image to boot (default: `default_image_name` from config, else `debian`)
    #[arg(long, add = super::complete::images())]
    pub image: Option<String>,
    /// Number of vCPUs, 1 to 32 (more than the host's CPUs is allowed: they are shared)
    #[arg(long, allow_negative_numbers = true)]
    pub vcpu: Option<u32>,
    /// Memory, e.g. 512m or 1g (a plain number is MiB); at most the host's physical memory
    #[arg(long, value_name = "SIZE", value_parser = parse_typed_mib, allow_negative_numbers = true)]
    pub memory: Option<TypedMib>,
    /// Disk size, e.g. 8g or 512m (a plain number is MiB): the work disk, and the root disk
    /// of an image with one (its filesystem grown to fill it at first boot; never smaller
    /// than the image)
    #[arg(long, value_name = "SIZE", value_parser = parse_size, allow_negative_numbers = true)]
    pub disk: Option<u64>,
    /// Publish a guest port on the host: [HOST_ADDR:]HOST_PORT:GUEST_PORT[/udp] (repeatable;
    /// forwarded whenever the VM runs)
    #[arg(short = 'p', long = "publish", value_name = "[ADDR:]HOST:GUEST[/udp]")]
    pub publish: Vec<String>,
    /// VMM for this VM: auto, qemu or firecracker (default: `vmm` from config.toml); the VM
    /// keeps it for its life
    #[arg(long, value_name = "VMM", value_parser = ["auto", "qemu", "firecracker"])]
    pub vmm: Option<String>,
    /// Share a host directory with the guest: HOST:GUEST[:ro][,copy|,live] (repeatable; kept
    /// with the VM; live over virtio-fs under QEMU, else copied in at boot)
    #[arg(short = 'v', long = "volume", value_name = "HOST:GUEST[:ro]", value_parser = super::share::parse_volume)]
    pub volumes: Vec<ShareRequest>,
    /// Share a host directory, long form: type=bind|copy,src=HOST,dst=GUEST[,ro][,mode=…]
    /// (repeatable)
    #[arg(long = "mount", value_name = "type=bind,src=HOST,dst=GUEST[,ro]", value_parser = super::share::parse_mount)]
    pub mounts: Vec<ShareRequest>,
    /// Boot the kernel even when the image is warm (`banger image warm`)
    #[arg(long)]
    pub cold: bool,
}

impl VmSpecArgs {
    /// The daemon's create request for this spec; `start` boots it too.
    pub fn into_request(self, start: bool) -> CreateVmRequest {
        CreateVmRequest {
            name: self.name,
            image: self.image,
            vcpu: self.vcpu,
            memory_mib: self.memory.map(|m| m.mib),
            // The API takes a size string; bytes are exact.
            disk: self.disk.map(|bytes| bytes.to_string()),
            start,
            publish: self.publish,
            vmm: self.vmm,
            from: None,
            shares: self.volumes.into_iter().chain(self.mounts).collect(),
            cold: self.cold,
        }
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub spec: VmSpecArgs,
    /// Delete the VM when the command finishes (requires a command)
    #[arg(long)]
    pub rm: bool,
    /// With --rm: copy the guest's changes to read-write copy-in shares back to the host
    /// (as `banger vm sync`) before the VM is removed; a failed sync keeps the VM
    #[arg(long, requires = "rm")]
    pub sync: bool,
    /// Boot in the background and print the VM's name
    #[arg(short = 'd', long, conflicts_with = "rm")]
    pub detach: bool,
    #[command(flatten)]
    pub io: GuestCommandArgs,
    /// Print boot phase timings to stderr
    #[arg(long)]
    pub timings: bool,
    /// Without a command: print the booted VM as JSON
    #[arg(long)]
    pub json: bool,
    /// Resume a clone of this snapshot instead of booting (its image and resources are
    /// the snapshot's); see `banger vm snapshot --help`
    #[arg(long, value_name = "SNAPSHOT", conflicts_with_all = ["image", "vcpu", "memory", "disk", "vmm", "volumes", "mounts", "cold"])]
    pub from: Option<String>,
    /// Command to run in the VM (after `--`, or simply last)
    #[arg(trailing_var_arg = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[command(flatten)]
    pub spec: VmSpecArgs,
    /// Print the created VM as JSON
    #[arg(long)]
    pub json: bool,
}

/// `--workdir`: an absolute guest path (relative to what would be a guess).
fn guest_dir(text: &str) -> Result<String, String> {
    if text.starts_with('/') {
        Ok(text.to_string())
    } else {
        Err(format!(
            "{text:?} is not an absolute path; give the guest directory from /, e.g. /root"
        ))
    }
}

/// How a guest command runs: shared by `run` and `exec`.
#[derive(Debug, Args)]
pub struct GuestCommandArgs {
    /// Forward stdin to the command
    #[arg(short, long)]
    pub interactive: bool,
    /// Give the command a terminal (stdin must be one)
    #[arg(short, long)]
    pub tty: bool,
    /// Working directory of the command in the guest (an absolute path)
    #[arg(short = 'w', long, value_name = "DIR", value_parser = guest_dir)]
    pub workdir: Option<String>,
    /// Environment variable for the command (repeatable); a bare KEY takes this shell's value
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Guest user to run as: NAME, UID, NAME:GROUP or UID:GID (default root; `run` takes
    /// an imported image's User when it runs the image's own command)
    #[arg(short, long, value_name = "USER[:GROUP]")]
    pub user: Option<String>,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// VM name (or a unique prefix of its id)
    #[arg(add = super::complete::vms())]
    pub name: String,
    #[command(flatten)]
    pub io: GuestCommandArgs,
    /// Command to run (after `--`, or simply after the VM name)
    #[arg(trailing_var_arg = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct StartArgs {
    /// VM names (or unique prefixes of their ids)
    #[arg(required = true, add = super::complete::vms())]
    pub names: Vec<String>,
    /// Print the started VMs as JSON
    #[arg(long)]
    pub json: bool,
}

/// `vm pause` and `vm resume`.
#[derive(Debug, Args)]
pub struct PauseArgs {
    /// VM names (or unique prefixes of their ids)
    #[arg(required = true, add = super::complete::vms())]
    pub names: Vec<String>,
    /// Print the VMs as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    /// VM names (or unique prefixes of their ids)
    #[arg(required = true, add = super::complete::vms())]
    pub names: Vec<String>,
    /// Seconds to wait for a clean shutdown before killing the VMM (at most 3600) [default: 15]
    #[arg(
        short = 't',
        long,
        visible_alias = "time",
        value_name = "SECONDS",
        allow_negative_numbers = true
    )]
    pub timeout: Option<u64>,
    /// Kill the VMM at once, without a clean shutdown
    #[arg(short, long)]
    pub force: bool,
    /// Print the stopped VMs as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// VM names (or unique prefixes of their ids)
    #[arg(required = true, add = super::complete::vms())]
    pub names: Vec<String>,
    /// Stop running VMs first instead of refusing
    #[arg(short, long)]
    pub force: bool,
    /// Print the removed VMs as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    #[command(flatten)]
    pub list: ListArgs,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// VM name (or a unique prefix of its id)
    #[arg(add = super::complete::vms())]
    pub name: String,
    #[command(flatten)]
    pub data: DataArgs,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// VM name (or a unique prefix of its id)
    #[arg(add = super::complete::vms())]
    pub name: String,
    /// Keep printing new output until the VM stops (Ctrl-C to quit)
    #[arg(short, long)]
    pub follow: bool,
    /// Start with the last N lines only
    #[arg(short = 'n', long, value_name = "N", allow_negative_numbers = true)]
    pub tail: Option<u64>,
    /// Print JSON: one object, or with --follow one object per line as output arrives
    #[arg(long)]
    pub json: bool,
    /// Pass control characters through to the terminal unescaped
    #[arg(long)]
    pub raw: bool,
}
