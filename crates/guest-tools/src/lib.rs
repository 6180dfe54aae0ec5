//! Hostile guest programs for the end-to-end tests. They are built static (like the agent:
//! `--profile agent --target x86_64-unknown-linux-gnu` with `crt-static`), copied into a test
//! guest with `vm exec`, and run there as root, to check that nothing a guest does can grow
//! the host's memory, disk or log without bound.
//!
//! * `banger-junk SECONDS`: takes PID 1's agent port (the agent's own file descriptor,
//!   duplicated with `pidfd_getfd`: the port can be opened only once) and writes junk into it
//!   for SECONDS: garbage, oversize and unknown headers, frames only the host may send,
//!   connection errors full of newlines and escape sequences, output for streams nobody
//!   opened.
