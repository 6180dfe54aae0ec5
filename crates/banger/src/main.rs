//! `banger`: real microVMs in about a second.

// `println!` panics when the reader of stdout is gone; `outln!` returns the error, which
// `main` turns into the quiet exit docs/cli.md promises. `eprintln!` panics the same way
// on stderr; `errln!` ignores it.
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod cli;
mod commands;
mod connect;
mod exec_io;
mod exit;
mod output;
mod progress;
mod terminal;
mod version_check;

use clap::CommandFactory;

/// The sources this binary was built from (see `build.rs`).
pub const BUILD_ID: &str = env!("BANGER_BUILD_ID");

fn main() {
    terminal::restore_on_panic();
    // A shell asking for completions (the script of `banger completions SHELL` sets
    // the variable): answer and exit before anything else is printed.
    clap_complete::CompleteEnv::with_factory(cli::Cli::command)
        .var(cli::complete::ENV_VAR)
        .complete();

    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cli = match <cli::Cli as clap::Parser>::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(err) => {
            let code = exit::for_usage_error(&err, cli::names_guest_command(&args));
            // Printing help into a closed pipe fails; there is nothing more to say.
            let _ = err.print();
            std::process::exit(code);
        }
    };
    let runs_guest_command = cli.command.runs_guest_command();
    let code = match commands::dispatch(cli) {
        Ok(code) => code,
        Err(err) => {
            if !exit::is_broken_pipe(&err) {
                output::print_error(&err);
            }
            exit::for_error(&err, runs_guest_command)
        }
    };
    terminal::restore();
    std::process::exit(code);
}
