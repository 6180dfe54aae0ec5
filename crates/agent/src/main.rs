//! The `banger-agent` binary. `no_main`: std's runtime start-up aborts when fds 0-2 are
//! closed and `/dev/null` cannot be opened, which is exactly the state of PID 1 in an
//! initramfs without `/dev` nodes. With our own C `main` the agent mounts `/dev` first and
//! puts the console on fds 0-2 itself.
#![cfg_attr(not(test), no_main)]

#[cfg(not(test))]
use std::ffi::{CStr, c_char, c_int};

#[cfg(not(test))]
#[unsafe(no_mangle)]
extern "C" fn main(argc: c_int, argv: *const *const c_char) -> c_int {
    let count = usize::try_from(argc).unwrap_or(0);
    let args: Vec<String> = (1..count)
        .map(|i| {
            // SAFETY: the C runtime passes `argc` valid pointers to NUL-terminated strings.
            let arg = unsafe { CStr::from_ptr(*argv.add(i)) };
            arg.to_string_lossy().into_owned()
        })
        .collect();
    let code = banger_agent::run(&args);
    // process::exit flushes std's buffered stdout, which a plain return from a C main skips.
    std::process::exit(code)
}
