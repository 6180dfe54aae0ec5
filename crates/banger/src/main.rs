//! `banger`: real microVMs in about a second.

mod cli;
mod commands;
mod connect;
mod exec_io;
mod output;
mod progress;

use clap::Parser;

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
