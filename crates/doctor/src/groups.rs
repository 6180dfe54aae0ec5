//! Report groups, in the order the built-in checks emit them.

pub const HOST: &str = "host";
pub const CONFIG: &str = "config";
pub const STATE: &str = "state store";
pub const RUNTIME: &str = "host runtime";
pub const LIFECYCLE: &str = "vm lifecycle";
pub const AGENT: &str = "guest agent";
pub const DEFAULTS: &str = "vm defaults";
pub const SSH: &str = "ssh";
pub const VMM: &str = "vmm";
pub const NETWORK: &str = "network";
pub const SECURITY: &str = "security";

/// Every group the built-in checks can emit. All but [`SSH`] appear in every report;
/// the SSH group is empty until banger has rendered an ssh_config.
pub const ALL: [&str; 11] = [
    HOST, CONFIG, STATE, RUNTIME, LIFECYCLE, AGENT, DEFAULTS, SSH, VMM, NETWORK, SECURITY,
];
