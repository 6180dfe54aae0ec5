//! The command-line interface definition. Parsing only: each subcommand's work
//! lives in `commands/`.

mod image;
mod vm;

use clap::{Args, Parser, Subcommand};

pub use image::ImageCommand;
pub use vm::{ExecArgs, RunArgs, VmCommand};

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
