//! `banger completions SHELL` and `banger man`: generated from the CLI definition.

use clap::CommandFactory;

use crate::cli::Cli;

pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<i32> {
    clap_complete::generate(shell, &mut Cli::command(), "banger", &mut std::io::stdout());
    Ok(0)
}

pub fn man() -> anyhow::Result<i32> {
    clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
    Ok(0)
}
