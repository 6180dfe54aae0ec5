//! `banger vm …`: the VM subcommands and their arguments.

use clap::{Args, Subcommand};

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
    /// Command to run in the VM, after `--`
    #[arg(last = true)]
    pub command: Vec<String>,
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
