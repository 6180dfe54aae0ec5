//! [`CommandRunner`]: the one way banger runs external programs.
//!
//! Programs are always run with an argument vector, never through a shell, so no
//! user input is ever interpreted as shell syntax.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Stdio};

/// What a finished command produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    /// Exit code; `None` when the process was killed by a signal.
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl CommandOutput {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Runs a program to completion and captures its output.
pub trait CommandRunner: Send + Sync {
    /// Run `program` with `args`. `Err` means it could not be started at all.
    fn run(&self, program: &Path, args: &[&OsStr]) -> std::io::Result<CommandOutput>;

    /// Run `program` with `args`, writing `input` to its standard input.
    ///
    /// Runners that only script answers may leave this out; they then refuse, saying so.
    fn run_with_input(
        &self,
        program: &Path,
        args: &[&OsStr],
        input: &[u8],
    ) -> std::io::Result<CommandOutput> {
        let _ = (args, input);
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            format!(
                "this command runner cannot feed standard input to {}",
                program.display()
            ),
        ))
    }

    /// Convenience for string arguments.
    fn run_str(&self, program: &str, args: &[&str]) -> std::io::Result<CommandOutput> {
        let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        self.run(Path::new(program), &args)
    }
}

/// Runs programs for real with stdin closed.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealRunner;

impl CommandRunner for RealRunner {
    fn run(&self, program: &Path, args: &[&OsStr]) -> std::io::Result<CommandOutput> {
        let out = retry_while_busy(|| {
            Command::new(program)
                .args(args)
                .stdin(Stdio::null())
                .output()
        })?;
        Ok(CommandOutput {
            code: out.status.code(),
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }

    fn run_with_input(
        &self,
        program: &Path,
        args: &[&OsStr],
        input: &[u8],
    ) -> std::io::Result<CommandOutput> {
        RealRunner::spawn_with_input(program, args, input)
    }
}

impl RealRunner {
    fn spawn_with_input(
        program: &Path,
        args: &[&OsStr],
        input: &[u8],
    ) -> std::io::Result<CommandOutput> {
        use std::io::Write;
        let mut child = retry_while_busy(|| {
            Command::new(program)
                .args(args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
        })?;
        let mut stdin = child
            .stdin
            .take()
            .ok_or_else(|| std::io::Error::other("the child's stdin was not captured"))?;
        // Write from another thread: a child that prints a lot before reading all of its
        // input would otherwise deadlock against us.
        let input = input.to_vec();
        let writer = std::thread::spawn(move || stdin.write_all(&input));
        let out = child.wait_with_output()?;
        match writer.join() {
            Ok(Ok(())) => {}
            // The child may exit without reading everything; its status says why.
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(std::io::Error::other("the stdin writer thread panicked")),
        }
        Ok(CommandOutput {
            code: out.status.code(),
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }
}

/// Start a program, retrying for up to 2 s while exec answers ETXTBSY. A file that was
/// just written (busybox unpacked from a package, an installed binary) is "busy" as long
/// as any process still holds a write descriptor on it — and a process that another
/// thread forked while the file was open holds one until its own exec closes it
/// (close-on-exec). That window is short, so waiting it out is the known remedy.
pub fn retry_while_busy<T>(mut start: impl FnMut() -> std::io::Result<T>) -> std::io::Result<T> {
    let mut tries = 0;
    loop {
        match start() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 100 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// Find `name` the way a shell would: an explicit path is taken as is, a bare name
/// is searched in `PATH` and then the sbin directories (host tools such as
/// `mkfs.ext4` live there, outside an ordinary user's `PATH`). Returns the first
/// regular, executable file.
pub fn lookup_executable(name: &str) -> Option<std::path::PathBuf> {
    crate::preflight::find_executable(name, Some(&crate::preflight::host_search_path()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_runner_captures_output_and_code() {
        let out = RealRunner
            .run_str("sh", &["-c", "echo out; echo err >&2; exit 3"])
            .unwrap();
        assert_eq!(out.code, Some(3));
        assert_eq!(out.stdout_str(), "out\n");
        assert_eq!(out.stderr_str(), "err\n");
    }

    #[test]
    fn real_runner_feeds_stdin() {
        let big = vec![b'x'; 1 << 20];
        let out = RealRunner
            .run_with_input(Path::new("wc"), &[OsStr::new("-c")], &big)
            .unwrap();
        assert!(out.success());
        assert_eq!(out.stdout_str().trim(), "1048576");
    }

    #[test]
    fn a_busy_executable_is_waited_for_and_other_errors_are_not() {
        let mut calls = 0;
        let busy = || std::io::Error::from_raw_os_error(26); // ETXTBSY
        let got = retry_while_busy(|| {
            calls += 1;
            if calls < 3 { Err(busy()) } else { Ok(calls) }
        });
        assert_eq!(got.unwrap(), 3);
        let mut calls = 0;
        let got: std::io::Result<()> = retry_while_busy(|| {
            calls += 1;
            Err(std::io::Error::from(std::io::ErrorKind::NotFound))
        });
        assert_eq!(got.unwrap_err().kind(), std::io::ErrorKind::NotFound);
        assert_eq!(calls, 1);
    }

    #[test]
    fn missing_program_is_an_error() {
        assert!(RealRunner.run_str("/nonexistent/banger-test", &[]).is_err());
    }

    #[test]
    fn an_ordinary_users_path_still_finds_sbin_tools() {
        use crate::preflight::{find_executable, with_sbin_dirs};
        let user_path = std::ffi::OsStr::new("/usr/local/bin:/usr/bin:/bin");
        // mkfs.ext4 lives in /sbin or /usr/sbin on Debian: not in that PATH...
        assert!(find_executable("mkfs.ext4", Some(user_path)).is_none());
        // ...but in the one banger searches.
        let found = find_executable("mkfs.ext4", Some(&with_sbin_dirs(Some(user_path))));
        assert!(found.is_some_and(|p| p.to_string_lossy().contains("sbin")));
        let joined = with_sbin_dirs(Some(std::ffi::OsStr::new("/usr/sbin:/bin")));
        assert_eq!(joined, "/usr/sbin:/bin:/usr/local/sbin:/sbin");
    }

    #[test]
    fn lookup_finds_sh_and_rejects_missing() {
        assert!(lookup_executable("sh").is_some());
        assert!(lookup_executable("definitely-not-a-banger-tool").is_none());
        assert!(lookup_executable("/nonexistent/x").is_none());
    }
}
