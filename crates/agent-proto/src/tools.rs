//! The agent's own tools: small programs the agent binary runs when exec'd with a tool
//! name, so the host can reach a guest port, set up SSH and copy files through an ordinary
//! exec stream (stdin/stdout with the protocol's flow control) without relying on any
//! tool in the guest image.
//!
//! The host runs them as [`AGENT_SELF`]: inside the child the agent forks for an exec,
//! `/proc/self/exe` is the agent binary itself, wherever the image installed it.

/// The program that names the agent binary from inside its own exec children.
pub const AGENT_SELF: &str = "/proc/self/exe";

/// `connect PORT`: relay stdin/stdout to TCP `127.0.0.1:PORT` in the guest.
pub const CONNECT: &str = "connect";
/// `ssh-setup USER`: authorise the public keys on stdin for USER; print the host keys.
pub const SSH_SETUP: &str = "ssh-setup";
/// `tar-out PATH`: write PATH (a file or directory) to stdout as a tar stream whose one
/// top-level entry is PATH's last component.
pub const TAR_OUT: &str = "tar-out";
/// `tar-in DEST`: extract a `tar-out` stream as `docker cp` does — into DEST when it is a
/// directory, else as DEST; `tar-in DEST --dir`: extract any tar stream into directory DEST.
pub const TAR_IN: &str = "tar-in";

/// Every tool name.
pub const ALL: [&str; 4] = [CONNECT, SSH_SETUP, TAR_OUT, TAR_IN];

fn argv(tool: &str, args: &[&str]) -> Vec<String> {
    [AGENT_SELF, tool]
        .iter()
        .chain(args)
        .map(|s| s.to_string())
        .collect()
}

pub fn connect_argv(port: u16) -> Vec<String> {
    argv(CONNECT, &[&port.to_string()])
}

pub fn ssh_setup_argv(user: &str) -> Vec<String> {
    argv(SSH_SETUP, &[user])
}

pub fn tar_out_argv(path: &str) -> Vec<String> {
    argv(TAR_OUT, &[path])
}

pub fn tar_in_argv(dest: &str, into_dir: bool) -> Vec<String> {
    if into_dir {
        argv(TAR_IN, &[dest, "--dir"])
    } else {
        argv(TAR_IN, &[dest])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_starts_with_the_agent_and_the_tool() {
        assert_eq!(connect_argv(22), ["/proc/self/exe", "connect", "22"]);
        assert_eq!(
            tar_in_argv("/tmp", true),
            ["/proc/self/exe", "tar-in", "/tmp", "--dir"]
        );
        assert!(ALL.contains(&tar_out_argv("/a")[1].as_str()));
    }
}
