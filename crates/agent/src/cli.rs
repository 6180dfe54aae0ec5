//! Command line and kernel command line. No argument parser crate: the agent stays small and
//! starts fast, and it has four flags.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Where the agent meets its host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportSpec {
    /// The virtio-serial port named `agent` if the VM has a virtio console device, otherwise
    /// vsock port [`DEFAULT_VSOCK_PORT`]; waits until one appears.
    Auto,
    /// The virtio-serial port with this name (`/sys/class/virtio-ports/*/name`).
    VirtioSerial(String),
    /// Listen on this AF_VSOCK port; each accepted connection is a session.
    Vsock(u32),
    /// Listen on this Unix socket path; each accepted connection is a session (tests, dev).
    Unix(PathBuf),
}

/// The vsock port the agent listens on by default (Firecracker).
pub use banger_agent_proto::DEFAULT_VSOCK_PORT;

/// The virtio-serial port name the agent looks for by default (QEMU).
pub const DEFAULT_PORT_NAME: &str = "agent";

impl FromStr for TransportSpec {
    type Err = String;

    fn from_str(spec: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "unknown transport {spec:?}; use auto, virtio-serial:NAME, vsock:PORT or unix:PATH"
            )
        };
        if spec == "auto" {
            return Ok(TransportSpec::Auto);
        }
        let (scheme, rest) = spec.split_once(':').ok_or_else(bad)?;
        match scheme {
            "virtio-serial" if !rest.is_empty() => Ok(TransportSpec::VirtioSerial(rest.into())),
            "vsock" => rest
                .parse()
                .map(TransportSpec::Vsock)
                .map_err(|_| format!("vsock port {rest:?} in {spec:?} is not a number")),
            "unix" if !rest.is_empty() => Ok(TransportSpec::Unix(rest.into())),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for TransportSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransportSpec::Auto => write!(f, "auto"),
            TransportSpec::VirtioSerial(name) => write!(f, "virtio-serial:{name}"),
            TransportSpec::Vsock(port) => write!(f, "vsock:{port}"),
            TransportSpec::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Version,
    Help,
    /// Serve, with the transport from the command line if one was given.
    Serve {
        transport: Option<TransportSpec>,
        /// `--simulated-guest DIR`: a test harness runs this agent on a host as a guest's.
        simulated_root: Option<PathBuf>,
    },
}

pub const USAGE: &str = "\
banger-agent: the banger guest agent

As PID 1 it sets the guest up (mounts, modules, hostname, work disk) and then serves the host;
otherwise it only serves.

USAGE:
    banger-agent [--transport SPEC | --listen SPEC]

OPTIONS:
    --transport SPEC   auto (default), virtio-serial:NAME, vsock:PORT or unix:PATH
    --listen SPEC      same as --transport, for the listening kinds (unix:PATH, vsock:PORT)
    --simulated-guest DIR
                       run on a host as a test harness's guest (the fake Firecracker): a
                       restored clone's identity is written under DIR, the host is untouched
    -V, --version      print the version
    -h, --help         print this help

KERNEL COMMAND LINE (read from /proc/cmdline):
    banger.agent=SPEC        transport, when no flag gives one
    banger.hostname=NAME     hostname to set (PID 1 only)
    banger.vm=ID             the VM's id: a new id gets a new machine-id and SSH host keys
    banger.init=agent|systemd  with root=DEV, the init to hand over to on the root disk
    banger.workdisk=DEVICE   ext4 device to mount at /work, e.g. /dev/vdb (PID 1 only)
    banger.poweroff=reboot   end the machine with a reboot (Firecracker exits on one)
";

/// Parses the arguments after the program name.
pub fn parse_args(args: &[String]) -> Result<Command, String> {
    let mut transport = None;
    let mut simulated_root = None;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_owned())),
            _ => (arg.as_str(), None),
        };
        match flag {
            "-V" | "--version" => return Ok(Command::Version),
            "-h" | "--help" => return Ok(Command::Help),
            "--transport" | "--listen" => {
                let value = match inline {
                    Some(value) => value,
                    None => iter.next().cloned().ok_or_else(|| {
                        format!("{flag} needs a value, e.g. {flag} unix:/tmp/agent.sock")
                    })?,
                };
                let spec: TransportSpec = value.parse()?;
                if flag == "--listen"
                    && !matches!(spec, TransportSpec::Unix(_) | TransportSpec::Vsock(_))
                {
                    return Err(format!(
                        "--listen takes unix:PATH or vsock:PORT, not {value:?}; use --transport for the others"
                    ));
                }
                transport = Some(spec);
            }
            "--simulated-guest" => {
                let value = match inline {
                    Some(value) => value,
                    None => iter.next().cloned().ok_or_else(|| {
                        "--simulated-guest needs a directory, e.g. --simulated-guest /tmp/guest"
                            .to_owned()
                    })?,
                };
                if value.is_empty() {
                    return Err("--simulated-guest needs a directory".into());
                }
                simulated_root = Some(PathBuf::from(value));
            }
            other => return Err(format!("unknown argument {other:?}; see --help")),
        }
    }
    Ok(Command::Serve {
        transport,
        simulated_root,
    })
}

/// The kernel command line, split into `key[=value]` words (double quotes group words).
#[derive(Debug, Default, Clone)]
pub struct KernelCmdline {
    params: Vec<(String, Option<String>)>,
}

impl KernelCmdline {
    /// Reads `/proc/cmdline`; empty when unreadable (proc not mounted, not Linux).
    pub fn read() -> KernelCmdline {
        std::fs::read_to_string("/proc/cmdline")
            .map(|text| KernelCmdline::parse(&text))
            .unwrap_or_default()
    }

    pub fn parse(text: &str) -> KernelCmdline {
        let mut params = Vec::new();
        let mut word = String::new();
        let mut in_quotes = false;
        let mut push = |word: &mut String| {
            if !word.is_empty() {
                let param = match word.split_once('=') {
                    Some((key, value)) => (key.to_owned(), Some(value.to_owned())),
                    None => (word.clone(), None),
                };
                params.push(param);
                word.clear();
            }
        };
        for c in text.chars() {
            match c {
                '"' => in_quotes = !in_quotes,
                c if c.is_whitespace() && !in_quotes => push(&mut word),
                c => word.push(c),
            }
        }
        push(&mut word);
        KernelCmdline { params }
    }

    /// `ro` or `rw`, whichever comes last (the kernel's rule for the root filesystem).
    pub fn root_read_only(&self) -> bool {
        self.params
            .iter()
            .rev()
            .find(|(k, v)| v.is_none() && (k == "ro" || k == "rw"))
            .is_some_and(|(k, _)| k == "ro")
    }

    /// The value of the last `key=value` (the kernel's own rule: later wins).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn transport_specs_parse_and_print_back() {
        for spec in [
            "auto",
            "virtio-serial:agent",
            "vsock:1024",
            "unix:/tmp/a.sock",
        ] {
            let parsed: TransportSpec = spec.parse().unwrap();
            assert_eq!(parsed.to_string(), spec);
        }
        assert!(
            "vsock:x"
                .parse::<TransportSpec>()
                .unwrap_err()
                .contains("not a number")
        );
        assert!("tcp:1".parse::<TransportSpec>().is_err());
        assert!("unix:".parse::<TransportSpec>().is_err());
    }

    #[test]
    fn flags_parse() {
        assert_eq!(
            parse_args(&args(&[])).unwrap(),
            Command::Serve {
                transport: None,
                simulated_root: None
            }
        );
        assert_eq!(parse_args(&args(&["--version"])).unwrap(), Command::Version);
        assert_eq!(
            parse_args(&args(&["--listen", "unix:/x"])).unwrap(),
            Command::Serve {
                transport: Some(TransportSpec::Unix("/x".into())),
                simulated_root: None
            }
        );
        assert_eq!(
            parse_args(&args(&["--transport=virtio-serial:agent"])).unwrap(),
            Command::Serve {
                transport: Some(TransportSpec::VirtioSerial("agent".into())),
                simulated_root: None
            }
        );
        assert_eq!(
            parse_args(&args(&["--listen", "unix:/x", "--simulated-guest", "/g"])).unwrap(),
            Command::Serve {
                transport: Some(TransportSpec::Unix("/x".into())),
                simulated_root: Some("/g".into())
            }
        );
        assert!(parse_args(&args(&["--simulated-guest"])).is_err());
        assert!(parse_args(&args(&["--listen", "auto"])).is_err());
        assert!(parse_args(&args(&["--listen"])).is_err());
        assert!(parse_args(&args(&["--bogus"])).is_err());
    }

    #[test]
    fn kernel_cmdline_keys() {
        let cmdline = KernelCmdline::parse(
            "console=ttyS0 quiet banger.hostname=dev banger.agent=vsock:1024 x=\"a b\" banger.hostname=dev2\n",
        );
        assert_eq!(cmdline.get("banger.hostname"), Some("dev2"));
        assert_eq!(cmdline.get("banger.agent"), Some("vsock:1024"));
        assert_eq!(cmdline.get("x"), Some("a b"));
        assert_eq!(cmdline.get("quiet"), None);
        assert_eq!(cmdline.get("banger.workdisk"), None);
    }
}
