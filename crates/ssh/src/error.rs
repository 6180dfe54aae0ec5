use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {}; check the permissions of its directory", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the SSH key {} is {problem}; {fix}", path.display())]
    BadKey {
        path: PathBuf,
        problem: String,
        fix: String,
    },
    #[error("ssh-keygen is not installed; install OpenSSH's client (apt install openssh-client)")]
    NoKeygen,
    #[error("ssh-keygen could not create {}: {stderr}", path.display())]
    Keygen { path: PathBuf, stderr: String },
    #[error("{what} {value:?} cannot be written into an ssh_config: {why}")]
    Unquotable {
        what: &'static str,
        value: String,
        why: &'static str,
    },
    #[error("refusing to pin host key {line:?} for {alias}: {why}")]
    BadHostKey {
        alias: String,
        line: String,
        why: &'static str,
    },
}
