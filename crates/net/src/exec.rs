//! Running a host program as root, safely: the binary is opened with `O_NOFOLLOW`, the
//! *opened file* is checked (a regular file, owned by root, executable, not writable by
//! group or others) and executed through `/proc/self/fd/N`, so what was checked is what
//! runs — a path swapped between the check and the `exec` changes nothing.
//!
//! A program found by name may be a link to a multi-call binary (Debian's alternatives:
//! `iptables-legacy` → `xtables-legacy-multi`). The link is resolved once, when the program
//! is located; the file it names is what is checked and run — for the known multi-call
//! binaries (xtables, busybox) with the program's name as its first argument, their
//! convention for choosing the applet when `argv[0]` (here `/proc/self/fd/N`) does not
//! name it.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use banger_system::CommandRunner;
use banger_system::fsperm::open_root_executable;

use crate::NetError;

/// Whether `binary` (a link target) is a multi-call binary that picks its applet from
/// its first argument: xtables' `xtables-legacy-multi` / `xtables-nft-multi`, busybox. A
/// link to any other file is run as it is.
fn is_multicall(binary: &Path, name: &str) -> bool {
    let Some(file) = binary.file_name().and_then(OsStr::to_str) else {
        return false;
    };
    file != name && (file.starts_with("xtables-") && file.ends_with("-multi") || file == "busybox")
}

/// A host program banger may run as root.
pub struct Program<'a> {
    runner: &'a dyn CommandRunner,
    name: &'static str,
    binary: PathBuf,
    /// The applet to ask a multi-call binary for (its first argument).
    applet: Option<&'static str>,
}

impl<'a> Program<'a> {
    /// Find `name` in PATH or the sbin directories; `package` ships it (for the error).
    pub fn locate(
        runner: &'a dyn CommandRunner,
        name: &'static str,
        package: &'static str,
    ) -> Result<Program<'a>, NetError> {
        let found = banger_system::runner::lookup_executable(name).ok_or(NetError::Missing {
            program: name,
            package,
        })?;
        let binary = std::fs::canonicalize(&found).map_err(|source| NetError::Spawn {
            program: found.display().to_string(),
            source,
        })?;
        let applet = is_multicall(&binary, name).then_some(name);
        Ok(Program {
            runner,
            name,
            binary,
            applet,
        })
    }

    /// Use the binary at `binary` as it is: nothing is resolved, so a link is refused
    /// (tests point this at fakes to see the refusals).
    pub fn at(runner: &'a dyn CommandRunner, name: &'static str, binary: &Path) -> Program<'a> {
        Program {
            runner,
            name,
            binary: binary.to_path_buf(),
            applet: None,
        }
    }

    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// Run it with `args` (and `input` on stdin); its stdout when it succeeds.
    pub fn run(&self, what: &str, args: &[&str], input: Option<&[u8]>) -> Result<String, NetError> {
        let file =
            open_root_executable(&self.binary).map_err(|source| NetError::RefusedBinary {
                path: self.binary.clone(),
                source,
            })?;
        let exe = PathBuf::from(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&file)
        ));
        let args: Vec<&OsStr> = self.applet.iter().chain(args).map(OsStr::new).collect();
        let out = match input {
            Some(input) => self.runner.run_with_input(&exe, &args, input),
            None => self.runner.run(&exe, &args),
        }
        .map_err(|source| NetError::Spawn {
            program: self.binary.display().to_string(),
            source,
        })?;
        drop(file);
        if !out.success() {
            return Err(NetError::Failed {
                program: self.name,
                what: what.to_string(),
                stderr: out.stderr_str().trim().to_string(),
            });
        }
        Ok(out.stdout_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_multicall_binaries_get_the_applet_name() {
        let multi = |p: &str, n: &str| is_multicall(Path::new(p), n);
        assert!(multi("/usr/sbin/xtables-legacy-multi", "iptables-legacy"));
        assert!(multi("/usr/sbin/xtables-nft-multi", "iptables-nft"));
        assert!(multi("/bin/busybox", "ip"));
        assert!(!multi("/usr/sbin/nft", "nft"));
        assert!(
            !multi("/usr/sbin/nft-1.0.6", "nft"),
            "a versioned link target is run as is"
        );
    }
}
