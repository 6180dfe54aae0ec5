//! Execs: spawning processes for the host, moving their bytes, reaping them.

mod credit;
mod pump;
mod spawn;
mod table;
pub mod user;

pub use credit::OutputCredit;
pub use pump::{EXIT_DRAIN_IDLE_MS, OutputSources, Route, StdinMsg, start_output, start_stdin};
pub use spawn::{
    DEFAULT_CWD, DEFAULT_ENV, DEFAULT_TERM, SpawnFailure, Spawned, resize, spawn, spawn_piped,
};
pub use table::{ExecEntry, ExecTable, kill_group, table};
