//! `tar-out PATH` and `tar-in DEST [--as NAME]`: the guest's end of `banger vm cp`, with
//! the same packing and (hostile-stream-proof) unpacking as the host's (`banger-copy`).

use std::io;
use std::path::Path;

pub fn out(args: &[String]) -> Result<(), String> {
    let [path] = args else {
        return Err("usage: tar-out PATH".into());
    };
    let path = absolute(path)?;
    // Commit what was written before the copy first: the host reads a copy-in share's
    // journal to tell changes made after a `vm sync` from those it brought back, and a
    // commit still pending from before would look like a later change.
    commit(path);
    let stdout = io::stdout().lock();
    banger_copy::pack(path, io::BufWriter::with_capacity(64 * 1024, stdout)).map_err(|e| chain(&e))
}

/// Commit the filesystem holding `path` (best effort: a failure only makes the host's
/// "changed since the sync" answer err on the side of a warning).
fn commit(path: &Path) {
    if let Ok(file) = std::fs::File::open(path) {
        use std::os::fd::AsRawFd;
        // SAFETY: syncfs takes an open descriptor (`file` lives across the call) and
        // touches no memory of ours.
        unsafe { libc::syncfs(file.as_raw_fd()) };
    }
}

pub fn r#in(args: &[String]) -> Result<(), String> {
    let (dest, into_dir) = match args {
        [dest] => (dest, false),
        [dest, flag] if flag == "--dir" => (dest, true),
        _ => return Err("usage: tar-in DEST [--dir]".into()),
    };
    let dest = absolute(dest)?;
    let input = io::BufReader::with_capacity(64 * 1024, io::stdin().lock());
    let unpacked = if into_dir {
        banger_copy::unpack(input, dest, None)
    } else {
        banger_copy::unpack_to(input, dest)
    };
    unpacked.map(drop).map_err(|e| chain(&e))
}

fn absolute(path: &str) -> Result<&Path, String> {
    let p = Path::new(path);
    if p.is_absolute() {
        Ok(p)
    } else {
        Err(format!("{path:?} is not an absolute path"))
    }
}

/// The error and its causes on one line (the agent has no error reporter of its own).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}
