//! The command-line interface definition. Parsing only: each subcommand's work
//! lives in `commands/`.

pub mod complete;
mod image;
#[cfg(test)]
mod named_commands;
pub mod output;
mod share;
mod size;
mod snapshot;
mod system;
mod vm;

use clap::{Args, Parser, Subcommand};

pub use image::ImageCommand;
pub use size::TypedMib;
pub use snapshot::{CloneArgs, SnapshotArgs, SnapshotCommand};
pub use system::{SystemCommand, SystemInstallArgs, SystemUninstallArgs};
pub use vm::{
    CpArgs, CreateArgs, ExecArgs, GuestCommandArgs, InspectArgs, LogsArgs, LsArgs, PauseArgs,
    RmArgs, RunArgs, SshArgs, StartArgs, StopArgs, SyncArgs, VmCommand,
};

const ABOUT: &str = "Real microVMs in about a second.";

const LONG_ABOUT: &str = "\
banger gives you a fresh, real virtual machine in about a second and throws it away just as fast.

Start here:
  banger doctor                          is this host ready? what is missing?
  banger vm run --rm -- uname -a         boot the default image, run a command, delete the VM
  banger vm run -d --name dev            boot a VM and keep it
  banger vm exec dev -- cat /etc/os-release
                                         run a command in it; the exit code passes through
  banger vm ls                           what is there

The everyday VM commands are also top-level, as in docker: banger run, exec, ps, start,
stop, rm, logs, inspect; `banger images` lists images. Exit status: 0 on success, 1 when
banger fails, 2 for a bad command line; `run` and `exec` pass the guest command's status
through and use 125, 126 and 127 for their own failures (see `banger exec --help`).

A per-user daemon owns all VM state; the CLI starts it on demand (dev mode) or talks to the
one systemd runs (system install). See docs/privileges.md for the trust model and
docs/cli.md for everything above.";

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

Every check reports PASS, WARN or FAIL with a hint. The summary says whether VMs can run
here and with which driver, apart from what fails (a missing Firecracker is a FAIL even
while VMs run under QEMU). Doctor only reads: it never creates or changes the state store
or any other file. Exit status is 0 unless a check FAILs.

The network group says which networking VMs get (bridge through the root helper, bridge
in-process as root, QEMU user-mode networking, none) and why; with the bridge it checks IP
forwarding, banger's NAT rules, and firewalls (docker, ufw, firewalld, legacy iptables) that
drop forwarded traffic, printing the exact commands that let the bridge through.")]
    Doctor(DoctorArgs),

    /// Create, run, inspect and remove VMs
    #[command(subcommand)]
    Vm(VmCommand),

    /// List, build and prune the images VMs boot from
    #[command(subcommand)]
    Image(ImageCommand),

    /// List, inspect and remove snapshots of VMs (take one with `vm snapshot`)
    #[command(subcommand)]
    Snapshot(SnapshotCommand),

    /// Install Firecracker, banger's primary VMM
    #[command(subcommand)]
    Firecracker(FirecrackerCommand),

    /// Install, inspect or remove the hardened system install (systemd units)
    #[command(subcommand)]
    System(SystemCommand),

    /// Create and boot a VM, optionally run a command in it (= vm run)
    #[command(long_about = vm::RUN_HELP)]
    Run(RunArgs),

    /// Run a command in a running VM (= vm exec)
    #[command(long_about = vm::EXEC_HELP)]
    Exec(ExecArgs),

    /// List VMs (= vm ls)
    #[command(long_about = vm::LS_HELP)]
    Ps(LsArgs),

    /// Boot stopped VMs (= vm start)
    Start(StartArgs),

    /// Shut VMs down (= vm stop)
    Stop(StopArgs),

    /// Delete VMs and their disks (= vm rm)
    Rm(RmArgs),

    /// Print a VM's serial console log (= vm logs)
    #[command(long_about = vm::LOGS_HELP)]
    Logs(LogsArgs),

    /// Show everything banger knows about a VM (= vm inspect)
    #[command(long_about = vm::INSPECT_HELP)]
    Inspect(InspectArgs),

    /// List images (= image ls)
    Images(output::ListArgs),

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

A ~/.ssh/config that is a symlink (into a dotfiles repository) is edited where it points, and
made there when that file does not exist yet; the link stays. ~ is HOME; ssh itself takes
your home from the user database, so --install warns when the two differ.

Connections go through banger (ProxyCommand), and guests' host keys are checked against the
keys banger pinned when the VM booted: host-key checking stays on.")]
    SshConfig(SshConfigArgs),

    /// Relay stdin/stdout to a VM's TCP port through its agent (ssh's ProxyCommand)
    #[command(long_about = "\
Relay stdin and stdout to TCP port PORT inside VM NAME, through the guest agent: the
ProxyCommand of banger's ssh_config (`ProxyCommand banger ssh-proxy %h %p`). HOST must be
NAME.vm for one of your VMs, and the VM must be running; nothing else is accepted.
It ends at once and quietly when its client is gone: on SIGHUP, SIGTERM or SIGINT, or
when nothing reads its output any more.

  ssh -o ProxyCommand='banger ssh-proxy %h %p' root@dev.vm")]
    SshProxy {
        /// NAME.vm
        host: String,
        /// The guest's TCP port
        port: u16,
    },

    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    #[command(long_about = "\
Print a shell completion script. Completion is dynamic: besides commands and flags, it
offers the names of your VMs and images, asked from the daemon as you press Tab (only when
the daemon is running; completion never starts one).

  source <(banger completions bash)       completion in this bash (add the line to ~/.bashrc)

For zsh, save `banger completions zsh` as _banger in a directory of your $fpath; for fish,
as ~/.config/fish/completions/banger.fish. `make install` installs all three under PREFIX.")]
    Completions {
        /// The shell to generate completions for
        shell: complete::Shell,
    },

    /// Print a man page (roff): banger(1), or one subcommand's, e.g. `banger man vm run`
    #[command(long_about = "\
Print a man page (roff) to stdout: banger(1) without arguments, or one subcommand's page
(banger-vm-run(1), …), or write every page into a directory.

  banger man | man -l -
  banger man vm run | man -l -
  banger man --dir ~/.local/share/man/man1     banger.1, banger-vm.1, banger-vm-run.1, …

`make install` installs every page under PREFIX/share/man/man1.")]
    Man {
        /// The subcommand whose page to print, e.g. `vm run`
        command: Vec<String>,
        /// Write every page into this directory instead
        #[arg(long, value_name = "DIR", conflicts_with = "command")]
        dir: Option<std::path::PathBuf>,
    },
}

impl Command {
    /// Whether this command runs a guest command whose exit status banger passes
    /// through: its own failures then use 125, never a status the guest could return.
    pub fn runs_guest_command(&self) -> bool {
        matches!(
            self,
            Command::Run(_)
                | Command::Exec(_)
                | Command::Vm(VmCommand::Run(_) | VmCommand::Exec(_))
        )
    }
}

/// Whether a command line (that may not parse) asks for `run` or `exec`: a usage error
/// there exits 125 like docker's, so a script can tell it from the guest's status.
pub fn names_guest_command(args: &[std::ffi::OsString]) -> bool {
    let mut words = args
        .iter()
        .skip(1)
        .filter_map(|a| a.to_str())
        .filter(|a| !a.starts_with('-'));
    match words.next() {
        Some("run" | "exec") => true,
        Some("vm") => matches!(words.next(), Some("run" | "exec")),
        _ => false,
    }
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
pub struct DoctorArgs {
    /// Print the report as JSON (for scripts and bug reports)
    #[arg(long)]
    pub json: bool,
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
    /// Jail the owner's Firecracker VMs through this `jailer` (root-owned, not writable by
    /// others) [default: none; Firecracker is then not launched through the helper]
    #[arg(long, value_name = "PATH", requires = "firecracker")]
    pub jailer: Option<std::path::PathBuf>,
    /// The `firecracker` binary the jailer runs (root-owned, not writable by others)
    #[arg(long, value_name = "PATH", requires = "jailer")]
    pub firecracker: Option<std::path::PathBuf>,
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
    /// Stop a running daemon; its VMs keep running, but `exec` sessions and `ssh NAME.vm`
    /// connections through it end (the next banger command starts a daemon again)
    Stop,
    /// Show whether a daemon is running, its mode and VMM driver
    Status {
        /// Print as JSON
        #[arg(long)]
        json: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("banger").chain(args.iter().copied()))
    }

    fn run_args(args: &[&str]) -> RunArgs {
        match parse(args).unwrap().command {
            Command::Vm(VmCommand::Run(a)) | Command::Run(a) => a,
            other => panic!("not run: {other:?}"),
        }
    }

    fn exec_args(args: &[&str]) -> ExecArgs {
        match parse(args).unwrap().command {
            Command::Vm(VmCommand::Exec(a)) | Command::Exec(a) => a,
            other => panic!("not exec: {other:?}"),
        }
    }

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_takes_a_trailing_command_with_or_without_dashes() {
        let args = run_args(&["vm", "run", "--rm", "--", "uname", "-a"]);
        assert!(args.rm);
        assert_eq!(args.command, vec!["uname", "-a"]);
        let args = run_args(&["run", "--rm", "uname", "-a"]);
        assert_eq!(args.command, vec!["uname", "-a"]);
        // Flags after the command belong to it.
        let args = run_args(&["run", "--rm", "ls", "--rm", "-d"]);
        assert_eq!(args.command, vec!["ls", "--rm", "-d"]);
        assert!(!args.detach);
        assert!(run_args(&["run", "-d"]).command.is_empty());
    }

    #[test]
    fn exec_takes_the_command_after_the_name() {
        let a = exec_args(&["vm", "exec", "dev", "uname", "-a"]);
        assert_eq!(
            (a.name.as_str(), a.command.clone()),
            ("dev", vec!["uname".into(), "-a".into()])
        );
        let a = exec_args(&["exec", "-it", "dev", "--", "sh", "-c", "exit 3"]);
        assert!(a.io.interactive && a.io.tty);
        assert_eq!(a.command, vec!["sh", "-c", "exit 3"]);
        // Options between the name and the command are banger's.
        let a = exec_args(&["exec", "dev", "-w", "/tmp", "-e", "A=1", "env", "-i"]);
        assert_eq!(a.io.workdir.as_deref(), Some("/tmp"));
        assert_eq!(a.io.env, vec!["A=1"]);
        assert_eq!(a.command, vec!["env", "-i"]);
        // A misspelt option is an error, not a command.
        assert!(parse(&["exec", "dev", "--wrokdir", "/", "ls"]).is_err());
        assert!(parse(&["vm", "exec", "dev"]).is_err());
        // A relative working directory would be resolved against the agent's: refused.
        let err = parse(&["exec", "dev", "-w", "tmp", "pwd"]).unwrap_err();
        assert!(err.to_string().contains("absolute"), "{err}");
    }

    #[test]
    fn detach_and_rm_conflict() {
        assert!(parse(&["vm", "run", "--rm", "-d"]).is_err());
    }

    #[test]
    fn sizes_take_units_and_plain_mib() {
        let a = run_args(&["run", "--memory", "1g", "--disk", "8G", "-d"]);
        assert_eq!(
            (a.spec.memory.map(|m| m.mib), a.spec.disk),
            (Some(1024), Some(8 << 30))
        );
        let a = run_args(&["run", "--memory", "512", "--disk", "512m", "-d"]);
        assert_eq!(
            (a.spec.memory.map(|m| m.mib), a.spec.disk),
            (Some(512), Some(512 << 20))
        );
        let err = parse(&["run", "--memory", "1.5g"]).unwrap_err().to_string();
        assert!(err.contains("--memory") && err.contains("1536M"), "{err}");
    }

    #[test]
    fn aliases_shortcuts_and_several_names() {
        for ls in [
            &["vm", "ls"][..],
            &["vm", "ps"],
            &["vm", "list"],
            &["ps"],
            &["ps", "-q"],
        ] {
            assert!(parse(ls).is_ok(), "{ls:?}");
        }
        assert!(parse(&["ps", "-q", "--json"]).is_err());
        assert!(parse(&["ps", "--json", "--format", "json"]).is_err());
        assert!(parse(&["ps", "--format", "{{.nope"]).is_err());
        for several in [
            &["start", "a", "b"][..],
            &["stop", "a", "b", "-t", "3"],
            &["rm", "-f", "a", "b"],
            &["vm", "start", "a", "b"],
        ] {
            assert!(parse(several).is_ok(), "{several:?}");
        }
        assert!(parse(&["stop"]).is_err());
        assert!(parse(&["logs", "-n", "5", "-f", "dev"]).is_ok());
        assert!(parse(&["inspect", "dev", "--format", "{{.state}}"]).is_ok());
        assert!(parse(&["images", "-q"]).is_ok());
        assert!(parse(&["image", "prune", "--dry-run"]).is_ok());
    }

    #[test]
    fn guest_commands_are_recognised_even_when_they_do_not_parse() {
        let args = |a: &[&str]| a.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        assert!(names_guest_command(&args(&["banger", "exec", "--bogus"])));
        assert!(names_guest_command(&args(&[
            "banger", "vm", "run", "--memory", "x"
        ])));
        assert!(!names_guest_command(&args(&[
            "banger", "vm", "ls", "--bogus"
        ])));
        assert!(!names_guest_command(&args(&["banger", "--help"])));
        assert!(
            parse(&["exec", "dev", "true"])
                .unwrap()
                .command
                .runs_guest_command()
        );
        assert!(!parse(&["ps"]).unwrap().command.runs_guest_command());
    }
}
