//! The command-line interface definition. Parsing only: each subcommand's work
//! lives in `commands/`.

use clap::{Args, Parser, Subcommand};

const ABOUT: &str = "Real microVMs in about a second.";

const LONG_ABOUT: &str = "\
banger gives you a fresh, real virtual machine in about a second and throws it away just as fast.

Start here:
  banger doctor                          is this host ready? what is missing?
  banger vm run --rm -- uname -a         boot the default image, run a command, delete the VM
  banger vm run --name dev               boot a VM and keep it
  banger vm exec dev -- make test        run a command in it; the exit code passes through
  banger vm ls                           what is running

A per-user daemon owns all VM state; the CLI starts it on demand (dev mode) or talks to the
one systemd runs (system install). See docs/privileges.md for the trust model.";

#[derive(Debug, Parser)]
#[command(name = "banger", version, about = ABOUT, long_about = LONG_ABOUT, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check whether this host can run banger VMs, and how to fix what is missing
    #[command(long_about = "\
Check whether this host can run banger VMs, and how to fix what is missing.

Every check reports PASS, WARN or FAIL with a hint. Doctor only reads: it never creates or
changes the state store or any other file. Exit status is 0 unless a check FAILs.

The network group says which networking VMs get (bridge through the root helper, bridge
in-process as root, QEMU user-mode networking, none) and why; with the bridge it checks IP
forwarding, banger's NAT rules, and firewalls (docker, ufw, firewalld, legacy iptables) that
drop forwarded traffic, printing the exact commands that let the bridge through.")]
    Doctor(DoctorArgs),

    /// Create, run, inspect and remove VMs
    #[command(subcommand)]
    Vm(VmCommand),

    /// List and build the images VMs boot from
    #[command(subcommand)]
    Image(ImageCommand),

    /// Install Firecracker, banger's primary VMM
    #[command(subcommand)]
    Firecracker(FirecrackerCommand),

    /// Run the owner daemon in the foreground, or control a running one
    #[command(long_about = "\
Run the owner daemon in the foreground, or control a running one.

You rarely need this: in dev mode every banger command starts the daemon when it is not
running, and a system install runs it under systemd. VMs keep running when the daemon
stops; a new daemon finds them again.")]
    Daemon(DaemonArgs),

    /// Run the root helper (network plumbing for the owner's VMs) in the foreground
    #[command(long_about = "\
Run the root helper in the foreground: the only privileged part of banger.

It creates the owner's bridge, TAP devices and NAT/port-forward rules on request, over a
Unix socket (mode 0600, owned by the owner) that admits only the owner's uid (checked with
SO_PEERCRED on every connection). A system install runs it under systemd; in dev mode run it
with sudo, and it serves the user who ran sudo: it listens in /run/banger, where that user's
banger looks for a helper (`banger doctor` shows whether it answers and which networking
mode follows). See docs/privileges.md.")]
    Helper(HelperArgs),

    /// Enable `ssh NAME.vm`: render banger's ssh_config and include it from ~/.ssh/config
    #[command(long_about = "\
Enable `ssh NAME.vm` (and scp, rsync -e ssh, VS Code Remote-SSH) for banger VMs.

  banger ssh-config               show whether it is enabled
  banger ssh-config --install     create the default key if needed, render the config, and add
                                  one `Include` line at the top of ~/.ssh/config (idempotent;
                                  the old file is saved as config.banger-backup first)
  banger ssh-config --uninstall   remove that line again; nothing else changes
  banger ssh-config --print       print the rendered config, to paste it somewhere yourself

Connections go through banger (ProxyCommand), and guests' host keys are checked against the
keys banger pinned when the VM booted: host-key checking stays on.")]
    SshConfig(SshConfigArgs),

    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    #[command(long_about = "\
Print a shell completion script.

  banger completions bash > ~/.local/share/bash-completion/completions/banger
  banger completions zsh  > \"${fpath[1]}/_banger\"
  banger completions fish > ~/.config/fish/completions/banger.fish")]
    Completions {
        /// The shell to generate completions for
        shell: clap_complete::Shell,
    },

    /// Print the banger(1) man page (roff) to stdout
    #[command(
        long_about = "Print the banger(1) man page (roff) to stdout.\n\n  banger man | man -l -"
    )]
    Man,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print the report as JSON (for scripts and bug reports)
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum FirecrackerCommand {
    /// Download, verify and install an official Firecracker release (needs root)
    #[command(
        disable_version_flag = true,
        long_about = "\
Download an official Firecracker release, verify it against its published SHA-256, and
install `firecracker` and `jailer` root-owned, mode 0755 (what banger requires of a VMM it
launches). Each binary is replaced atomically, never rewritten in place, so running VMs are
not disturbed.

  sudo banger firecracker install                  the release banger is tested with
  sudo banger firecracker install --version 1.13.0
  sudo banger firecracker install --url https://mirror.example/firecracker/releases/download

The release base URL defaults to `firecracker_release_url` in config.toml, else the upstream
GitHub releases. `banger doctor` checks the result."
    )]
    Install(FirecrackerInstallArgs),
}

#[derive(Debug, Args)]
pub struct FirecrackerInstallArgs {
    /// Release to install, e.g. 1.14.1 (default: the release banger is tested with)
    #[arg(long, value_name = "V")]
    pub version: Option<String>,
    /// Release download base URL (releases live under <URL>/vV/)
    #[arg(long, value_name = "URL", alias = "base-url")]
    pub url: Option<String>,
    /// Where to install the binaries
    #[arg(
        long,
        value_name = "DIR",
        alias = "install-dir",
        default_value = banger_firecracker::install::DEFAULT_BIN_DIR
    )]
    pub bin_dir: std::path::PathBuf,
}

#[derive(Debug, Args)]
#[group(multiple = false)]
pub struct SshConfigArgs {
    /// Render the config and add the Include line to ~/.ssh/config
    #[arg(long)]
    pub install: bool,
    /// Remove the Include line from ~/.ssh/config
    #[arg(long)]
    pub uninstall: bool,
    /// Print the rendered config to stdout
    #[arg(long)]
    pub print: bool,
}

#[derive(Debug, Args)]
pub struct HelperArgs {
    /// The socket to listen on [default: helper.sock in the runtime directory]
    #[arg(long, value_name = "PATH")]
    pub socket: Option<std::path::PathBuf>,
    /// The uid to serve (dev mode; a system install takes it from install.toml)
    #[arg(long, value_name = "UID")]
    pub owner_uid: Option<u32>,
    /// The nft binary to run [default: nft from PATH or the sbin directories]
    #[arg(long, value_name = "PATH")]
    pub nft: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct DaemonArgs {
    #[command(subcommand)]
    pub action: Option<DaemonAction>,
}

#[derive(Debug, Subcommand)]
pub enum DaemonAction {
    /// Run the daemon in the foreground (the default)
    Run,
    /// Stop a running daemon; its VMs keep running
    Stop,
    /// Show whether a daemon is running, its mode and VMM driver
    Status {
        /// Print as JSON
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum VmCommand {
    /// Create and boot a VM, optionally run a command in it
    #[command(long_about = "\
Create and boot a VM, optionally run a command in it.

  banger vm run --rm -- uname -a      run one command in a throwaway VM; exits with its code
  banger vm run --name dev            boot a VM and keep it running
  banger vm run -d                    boot a VM in the background and print its name

The image defaults to `default_image_name` from config.toml (the built-in `debian` image
if unset; it is built on first use). vCPUs, memory and disk default to `[vm_defaults]`;
`banger doctor` shows the effective values and where each comes from.")]
    Run(RunArgs),

    /// Run a command in a running VM; its exit code becomes banger's
    #[command(long_about = "\
Run a command in a running VM through the guest agent (no SSH needed).

Output streams as it is produced; the command's exit code becomes banger's (128+N if it
was killed by signal N). The guest command's stdin is empty unless you pass -i.

  banger vm exec dev -- make test
  tar c . | banger vm exec -i dev -- tar x -C /work
  banger vm exec -it dev -- sh")]
    Exec(ExecArgs),

    /// Create a VM without booting it (`vm start` boots it)
    #[command(long_about = "\
Create a VM without booting it: its disks are laid out and its driver chosen; `banger vm start
NAME` boots it later.

  banger vm create --name dev --vcpu 2 --memory 1024
  banger vm create --name fc --vmm firecracker
  banger vm start dev

Takes the same VM flags as `vm run`.")]
    Create(CreateArgs),

    /// Boot a stopped VM
    Start {
        /// VM name
        name: String,
    },

    /// Shut a VM down (gracefully, then by force after a timeout)
    Stop {
        /// VM name
        name: String,
        /// Seconds to wait for a clean shutdown before killing the VMM
        #[arg(long, default_value_t = 15)]
        timeout: u64,
        /// Kill the VMM at once, without a clean shutdown
        #[arg(short, long)]
        force: bool,
    },

    /// Freeze a running VM's vCPUs (its memory stays allocated)
    #[command(long_about = "\
Freeze a running VM: its vCPUs stop, its VMM and memory stay. `banger vm resume` lets it run
on from where it stopped; commands cannot be run in it meanwhile. `vm stop` and `vm rm -f`
work on a paused VM.")]
    Pause {
        /// VM name
        name: String,
    },

    /// Let a paused VM run again
    Resume {
        /// VM name
        name: String,
    },

    /// Delete a VM and its disks
    Rm {
        /// VM names
        #[arg(required = true)]
        names: Vec<String>,
        /// Stop running VMs first instead of refusing
        #[arg(short, long)]
        force: bool,
    },

    /// List VMs
    Ls {
        /// Print as JSON
        #[arg(long)]
        json: bool,
    },

    /// Show everything banger knows about a VM, including boot timings
    Inspect {
        /// VM name
        name: String,
        /// Print as JSON
        #[arg(long)]
        json: bool,
    },

    /// Print a VM's serial console log
    Logs {
        /// VM name
        name: String,
        /// Keep printing new output until the VM stops (Ctrl-C to quit)
        #[arg(short, long)]
        follow: bool,
        /// Print JSON: one object, or with --follow one object per line as output arrives
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Name for the VM (a DNS label: lowercase letters, digits, '-'); generated if omitted
    #[arg(long)]
    pub name: Option<String>,
    /// Image to boot (default: `default_image_name` from config, else `debian`)
    #[arg(long)]
    pub image: Option<String>,
    /// Number of vCPUs
    #[arg(long)]
    pub vcpu: Option<u32>,
    /// Memory in MiB
    #[arg(long)]
    pub memory: Option<u64>,
    /// Work disk size, e.g. 8G or 512M
    #[arg(long)]
    pub disk: Option<String>,
    /// Delete the VM when the command finishes (requires a command)
    #[arg(long)]
    pub rm: bool,
    /// Boot in the background and print the VM's name
    #[arg(short = 'd', long, conflicts_with = "rm")]
    pub detach: bool,
    /// Forward stdin to the command
    #[arg(short, long)]
    pub interactive: bool,
    /// Give the command a terminal
    #[arg(short, long)]
    pub tty: bool,
    /// Print boot phase timings to stderr
    #[arg(long)]
    pub timings: bool,
    /// VMM for this VM: auto, qemu or firecracker (default: `vmm` from config.toml); the VM
    /// keeps it for its life
    #[arg(long, value_name = "VMM")]
    pub vmm: Option<String>,
    /// Command to run in the VM, after `--`
    #[arg(last = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Name for the VM (a DNS label: lowercase letters, digits, '-'); generated if omitted
    #[arg(long)]
    pub name: Option<String>,
    /// Image to boot (default: `default_image_name` from config, else `minimal`)
    #[arg(long)]
    pub image: Option<String>,
    /// Number of vCPUs
    #[arg(long)]
    pub vcpu: Option<u32>,
    /// Memory in MiB
    #[arg(long)]
    pub memory: Option<u64>,
    /// Work disk size, e.g. 8G or 512M
    #[arg(long)]
    pub disk: Option<String>,
    /// VMM for this VM: auto, qemu or firecracker (default: `vmm` from config.toml); the VM
    /// keeps it for its life
    #[arg(long, value_name = "VMM")]
    pub vmm: Option<String>,
    /// Print as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// VM name
    pub name: String,
    /// Forward stdin to the command
    #[arg(short, long)]
    pub interactive: bool,
    /// Give the command a terminal
    #[arg(short, long)]
    pub tty: bool,
    /// Working directory in the guest
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    /// Environment variable for the command (repeatable)
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Command to run, after `--`
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// List registered images
    Ls {
        /// Print as JSON
        #[arg(long)]
        json: bool,
    },
    /// Build an image from a recipe and register it
    #[command(long_about = "\
Build an image from a recipe and register it.

  banger image build debian                    the default image: Debian bookworm (minbase,
                                               openssh-server) on a root disk; the agent is
                                               a lean init that starts sshd
  banger image build debian --packages git,curl --name dev-tools
  banger image build debian --init systemd     systemd as init instead (slower to boot)
  banger image build minimal                   the fastest tiny image: Debian's cloud kernel
                                               and an initramfs (agent, busybox, modules)

Kernels and packages come from the Debian archive (BANGER_DEBIAN_MIRROR overrides the
mirror); downloads are verified against the archive's signed checksums. The debian recipe
runs mmdebstrap, which needs root: run it with a daemon started as root.")]
    Build {
        /// Recipe: `debian` or `minimal`
        recipe: String,
        /// Register under this name instead of the recipe's
        #[arg(long)]
        name: Option<String>,
        /// Rebuild and replace an existing image of that name
        #[arg(long)]
        force: bool,
        /// Debian suite (debian recipe), e.g. bookworm, trixie
        #[arg(long)]
        suite: Option<String>,
        /// Extra packages for the root filesystem (debian recipe), comma-separated
        #[arg(long, value_delimiter = ',')]
        packages: Vec<String>,
        /// The guest's init (debian recipe): `agent` (lean, default) or `systemd`
        #[arg(long)]
        init: Option<String>,
    },
    /// Fetch (or build) a catalogued image
    #[command(long_about = "\
Fetch a catalogued image: a download entry is fetched and verified against its pinned
SHA-256 (an interrupted download resumes where it stopped); a recipe entry is built. VMs
do this on first use; pull does it ahead of time.

  banger image pull debian
  banger image pull minimal --force      fetch or build it again")]
    Pull {
        /// Catalog entry
        name: String,
        /// Fetch again even if it is registered
        #[arg(long)]
        force: bool,
    },
    /// Import an OCI image (registry, OCI layout or docker-archive) as a VM image
    #[command(long_about = "\
Import an OCI image as a VM image. REF uses skopeo's transport syntax:

  banger image import docker://registry.example.com/team/app:1.2
  banger image import oci:./layout:v1          an OCI image layout directory
  banger image import docker-archive:app.tar   a `docker save` tarball

linux/amd64 is chosen from multi-platform images. Layers are verified against their
digests and cached, so images sharing base layers import quickly. banger adds its agent
as the guest's init (it starts sshd when the image has one) and pairs the root
filesystem with the kernel and initrd of --kernel (default: the minimal image).
`banger vm run --image NAME` with no command runs the image's Entrypoint/Cmd.
Registry credentials come from ~/.docker/config.json; plain HTTP is used only for
registries on localhost, or with --insecure.")]
    Import {
        /// The image: docker://REGISTRY/REPO:TAG, oci:DIR[:TAG] or docker-archive:FILE
        reference: String,
        /// Register under this name (default: from the reference)
        #[arg(long)]
        name: Option<String>,
        /// The image whose kernel and initrd to boot (default: minimal)
        #[arg(long)]
        kernel: Option<String>,
        /// Allow plain HTTP to a registry that is not on localhost
        #[arg(long)]
        insecure: bool,
        /// Replace an existing image of that name
        #[arg(long)]
        force: bool,
    },
    /// Import a kernel (ELF vmlinux or bzImage) as a kernel image
    #[command(long_about = "\
Import a kernel of your own: an ELF vmlinux, or a bzImage whose payload is gzip, xz,
zstd or lz4 (banger extracts the ELF form Firecracker and QEMU's microvm boot, and records
whether it has the PVH entry). Pair it with a root filesystem:

  banger image import-kernel ./vmlinux --name mykernel
  banger image import docker://registry.example.com/app:1 --kernel mykernel

Without --initrd the image gets an initramfs holding only the banger agent, so the
kernel needs its virtio drivers (virtio_blk, virtio_console or vsock) built in.")]
    ImportKernel {
        /// The kernel file
        file: std::path::PathBuf,
        /// Register under this name (default: kernel-<file name>)
        #[arg(long)]
        name: Option<String>,
        /// An initrd to boot it with
        #[arg(long)]
        initrd: Option<std::path::PathBuf>,
        /// Replace an existing image of that name
        #[arg(long)]
        force: bool,
    },
    /// Show one image
    Inspect {
        /// Image name
        name: String,
        /// Print as JSON
        #[arg(long)]
        json: bool,
    },
    /// Remove an image no VM uses
    Rm {
        /// Image name
        name: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_takes_a_trailing_command() {
        let cli =
            Cli::try_parse_from(["banger", "vm", "run", "--rm", "--", "uname", "-a"]).unwrap();
        let Command::Vm(VmCommand::Run(args)) = cli.command else {
            panic!("not vm run")
        };
        assert!(args.rm);
        assert_eq!(args.command, vec!["uname", "-a"]);
    }

    #[test]
    fn detach_and_rm_conflict() {
        assert!(Cli::try_parse_from(["banger", "vm", "run", "--rm", "-d"]).is_err());
    }

    #[test]
    fn exec_requires_a_command() {
        assert!(Cli::try_parse_from(["banger", "vm", "exec", "dev"]).is_err());
        assert!(Cli::try_parse_from(["banger", "vm", "exec", "-it", "dev", "--", "sh"]).is_ok());
    }
}
