//! `banger completions SHELL` and `banger man`: generated from the CLI definition.

use std::io::Write;

use anyhow::{Context, bail};
use clap::CommandFactory;
use clap_complete::env::Shells;

use crate::cli::Cli;
use crate::cli::complete::{ENV_VAR, Shell};

/// Print the registration script of the dynamic completer for `shell`. It runs
/// `banger` from PATH at completion time, so the script stays valid when banger is
/// upgraded or moved.
pub fn completions(shell: Shell) -> anyhow::Result<i32> {
    let builtins = Shells::builtins();
    let Some(completer) = builtins.completer(shell.name()) else {
        bail!("no completion support for {} in this build", shell.name());
    };
    let mut script = Vec::new();
    completer.write_registration(ENV_VAR, "banger", "banger", "banger", &mut script)?;
    std::io::stdout().write_all(&script)?;
    Ok(0)
}

/// Print banger(1), one subcommand's page, or write every page into `dir`.
pub fn man(command: &[String], dir: Option<&std::path::Path>) -> anyhow::Result<i32> {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the man page directory {}", dir.display()))?;
        clap_mangen::generate_to(cmd, dir)
            .with_context(|| format!("cannot write man pages into {}", dir.display()))?;
        return Ok(0);
    }
    let mut page = cmd;
    for (depth, word) in command.iter().enumerate() {
        let Some(sub) = page.find_subcommand(word).cloned() else {
            let parent = std::iter::once("banger")
                .chain(command[..depth].iter().map(String::as_str))
                .collect::<Vec<_>>()
                .join(" ");
            bail!("`{parent}` has no subcommand {word:?}: see `{parent} --help`");
        };
        page = sub;
    }
    let mut roff = Vec::new();
    clap_mangen::Man::new(page).render(&mut roff)?;
    std::io::stdout().write_all(&roff)?;
    Ok(0)
}
