//! The agent's tools (see `banger_agent_proto::tools`): run when the agent binary is exec'd
//! with a tool name, as a child of the agent serving the host. Each reads stdin, writes
//! stdout, reports failures on stderr and exits non-zero.

mod connect;
mod ssh_setup;
mod tar;

use banger_agent_proto::tools;

/// Run the tool `args` names; `None` when `args` names none (the agent proper runs).
pub fn dispatch(args: &[String]) -> Option<i32> {
    let (tool, rest) = args.split_first()?;
    let result = match tool.as_str() {
        tools::CONNECT => connect::run(rest),
        tools::SSH_SETUP => ssh_setup::run(rest),
        tools::TAR_OUT => tar::out(rest),
        tools::TAR_IN => tar::r#in(rest),
        _ => return None,
    };
    Some(match result {
        Ok(()) => 0,
        Err(message) => {
            eprintln!("banger-agent {tool}: {message}");
            1
        }
    })
}
