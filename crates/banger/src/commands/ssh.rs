//! `banger ssh-proxy HOST PORT` (ssh's ProxyCommand) and `banger vm ssh NAME [-- ARGS]`.

use std::os::unix::process::CommandExt;

use anyhow::{Context, bail};
use banger_agent_proto::tools;
use banger_api::ExecRequest;
use banger_paths::Layout;

use crate::cli::SshArgs;
use crate::{connect, exec_io};

/// The VM name in `NAME.vm`, when `host` is exactly that with NAME a DNS label.
pub fn vm_name(host: &str) -> Option<&str> {
    let name = host.strip_suffix(".vm")?;
    let label = !name.is_empty()
        && name.len() <= 63
        && !name.starts_with('-')
        && !name.ends_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    label.then_some(name)
}

/// Relay stdin/stdout to `port` in the VM `host` names, through its agent.
pub async fn proxy(layout: Layout, host: String, port: u16) -> anyhow::Result<i32> {
    let Some(name) = vm_name(&host) else {
        bail!("{host:?} is not NAME.vm for a VM name (lowercase letters, digits and '-')");
    };
    if port == 0 {
        bail!("port 0 is not a port; give 1 to 65535");
    }
    let client = connect::connect(&layout).await?;
    let vm = client
        .get_vm(name)
        .await
        .with_context(|| format!("cannot reach VM {name}"))?;
    // The daemon also finds VMs by id prefix; ssh names a VM by its name only.
    if vm.name != name {
        bail!("no VM named {name:?} (`banger vm ls` lists your VMs)");
    }
    if vm.state != "running" {
        return Err(not_running(name, &vm.state));
    }
    let req = ExecRequest {
        argv: tools::connect_argv(port),
        env: Vec::new(),
        cwd: None,
        stdin: true,
        tty: None,
        // The agent's tools run as root (absent means root).
        user: None,
    };
    let status = exec_io::tunnel(&client, name, req).await?;
    Ok(status.shell_code())
}

/// Why VM `name`, in `state`, cannot be reached, and what brings it back: a paused VM is
/// resumed, not started.
fn not_running(name: &str, state: &str) -> anyhow::Error {
    match state {
        "paused" => {
            anyhow::anyhow!("VM {name} is paused: resume it with `banger vm resume {name}`")
        }
        _ => anyhow::anyhow!("VM {name} is {state}: start it with `banger vm start {name}`"),
    }
}

/// Exec the real ssh with banger's rendered config.
pub async fn vm_ssh(layout: &Layout, args: SshArgs) -> anyhow::Result<i32> {
    let client = connect::connect(layout).await?;
    let vm = client.get_vm(&args.name).await?;
    if vm.state != "running" {
        return Err(not_running(&vm.name, &vm.state));
    }
    let config = super::ssh_config::ensure_rendered(layout)?;
    let mut ssh = std::process::Command::new("ssh");
    ssh.arg("-F").arg(&config);
    // Options the user gave (`-- -L …`) come before the destination, a command after it.
    let (options, command): (Vec<&String>, Vec<&String>) = {
        let split = args
            .args
            .iter()
            .position(|a| !a.starts_with('-'))
            .unwrap_or(args.args.len());
        (
            args.args[..split].iter().collect(),
            args.args[split..].iter().collect(),
        )
    };
    ssh.args(options)
        .arg(format!("{}.vm", vm.name))
        .args(command);
    let err = ssh.exec();
    Err(err)
        .context("cannot run ssh (is openssh-client installed? sudo apt install openssh-client)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_paused_vm_is_to_be_resumed_not_started() {
        let e = not_running("dev", "paused").to_string();
        assert!(
            e.contains("banger vm resume dev") && !e.contains("vm start"),
            "{e}"
        );
        let e = not_running("dev", "stopped").to_string();
        assert!(e.contains("banger vm start dev"), "{e}");
    }

    #[test]
    fn only_name_dot_vm_is_accepted() {
        assert_eq!(vm_name("dev.vm"), Some("dev"));
        assert_eq!(vm_name("web-1.vm"), Some("web-1"));
        for bad in [
            "dev",
            "dev.vm.evil.com",
            ".vm",
            "Dev.vm",
            "-x.vm",
            "a b.vm",
            "../x.vm",
            "dev.vm\n",
        ] {
            assert_eq!(vm_name(bad), None, "{bad:?}");
        }
    }
}
