//! `banger`: real microVMs in about a second.

mod cli;
mod commands;
mod connect;
mod exec_io;
mod output;
mod progress;
mod version_check;

use clap::Parser;

/// The sources this binary was built from (see `build.rs`).
pub const BUILD_ID: &str = env!("BANGER_BUILD_ID");

fn main() {
    let cli = cli::Cli::parse();
    let code = match commands::dispatch(cli) {
        Ok(code) => code,
        Err(err) => {
            output::print_error(&err);
            1
        }
    };
    std::process::exit(code);
}
