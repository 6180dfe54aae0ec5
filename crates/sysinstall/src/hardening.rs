//! The hardening directives of the two units: written by the renderer and required by
//! `banger doctor`, from this one list.
//!
//! Each directive carries why it is there, or why a stronger one is not. What the helper
//! does with root is in `docs/privileges.md`: netlink (links, addresses, routes), ioctls
//! on `/dev/net/tun`, sysctls under `/proc/sys/net`, running `nft` (and, read-only,
//! `iptables-legacy -S`), and creating its socket for the owner.

/// One `Key=value` line of a unit's `[Service]` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Directive {
    pub key: &'static str,
    pub value: &'static str,
    /// Why it is set to this value (a comment in the rendered unit).
    pub why: &'static str,
}

impl Directive {
    /// The line as it appears in the unit.
    pub fn line(&self) -> String {
        format!("{}={}", self.key, self.value)
    }
}

const fn d(key: &'static str, value: &'static str, why: &'static str) -> Directive {
    Directive { key, value, why }
}

/// The directives both units carry.
const COMMON: [Directive; 10] = [
    d(
        "NoNewPrivileges",
        "yes",
        "nothing it runs can gain privileges through setuid or file capabilities",
    ),
    d(
        "ProtectSystem",
        "strict",
        "the whole file system is read-only except the paths listed below",
    ),
    d(
        "RestrictSUIDSGID",
        "yes",
        "it may not create setuid or setgid files",
    ),
    d(
        "LockPersonality",
        "yes",
        "no switching the execution domain",
    ),
    d("PrivateTmp", "yes", "a /tmp of its own"),
    d(
        "ProtectKernelModules",
        "yes",
        "no loading modules (the kernel still autoloads nf_tables and tun on use)",
    ),
    d(
        "ProtectKernelLogs",
        "yes",
        "no reading or writing the kernel log",
    ),
    d("ProtectClock", "yes", "no setting the clock"),
    d("RestrictRealtime", "yes", "no realtime scheduling"),
    d(
        "SystemCallArchitectures",
        "native",
        "no 32-bit system call entry points",
    ),
];

/// The root helper's own directives, after [`COMMON`].
const HELPER_ONLY: [Directive; 9] = [
    d("ProtectHome", "yes", "it never reads a home directory"),
    d(
        "ProtectControlGroups",
        "yes",
        "the cgroup tree is read-only",
    ),
    // CAP_NET_ADMIN: bridges, TAPs (TUNSETIFF, TUNSETOWNER), addresses, nftables, and the
    //   net sysctls (ip_forward, route_localnet).
    // CAP_NET_RAW: the read-only `firewall` verb runs `iptables-legacy -S`, which reads the
    //   legacy tables through a raw socket.
    // CAP_CHOWN: its socket is created by root and handed to the owner.
    // Nothing else: no CAP_DAC_OVERRIDE (it writes only its own runtime directory), no
    // CAP_SYS_ADMIN, no CAP_SETUID; it launches no VMM.
    d(
        "CapabilityBoundingSet",
        "CAP_NET_ADMIN CAP_NET_RAW CAP_CHOWN",
        "network administration, the raw socket of iptables-legacy -S, and giving its socket to the owner; nothing else",
    ),
    d(
        "AmbientCapabilities",
        "",
        "nothing it runs inherits a capability",
    ),
    d("ProtectHostname", "yes", "no changing the host name"),
    d(
        "RestrictNamespaces",
        "yes",
        "it needs no namespace of its own",
    ),
    d(
        "MemoryDenyWriteExecute",
        "yes",
        "no writable and executable memory (neither it nor nft has a JIT)",
    ),
    d(
        "RestrictAddressFamilies",
        "AF_UNIX AF_NETLINK AF_INET AF_INET6",
        "its socket, netlink for links and rules, and the inet sockets of ioctls and iptables-legacy",
    ),
    d(
        "SystemCallFilter",
        "@system-service",
        "the system calls an ordinary service makes; no mount, module, reboot or swap calls",
    ),
];

/// The owner daemon's own directives, after [`COMMON`]. What it does not get is as
/// deliberate: it runs the VMM, which inherits all of this, so `PrivateDevices` (QEMU needs
/// `/dev/kvm` and `/dev/net/tun`), `MemoryDenyWriteExecute` (QEMU's TCG is a JIT),
/// `RestrictNamespaces` (the VMM sandbox) and `SystemCallFilter` (QEMU applies its own
/// seccomp filter) are left out.
const DAEMON_ONLY: [Directive; 9] = [
    d(
        "ProtectHome",
        "read-only",
        "other users' homes and /root stay read-only; of the owner's home it writes its config directory and, for read-write shares (-v), the rest (below)",
    ),
    d(
        "CapabilityBoundingSet",
        "",
        "it holds no capability: privileged work is the helper's",
    ),
    d(
        "AmbientCapabilities",
        "",
        "nothing it runs inherits a capability",
    ),
    d(
        "ProtectKernelTunables",
        "yes",
        "/proc/sys and /sys are read-only",
    ),
    d("ProtectHostname", "yes", "no changing the host name"),
    // Per-VM limits (cgroup v2): the kernel's delegation rules confine it to its own
    // subtree, which systemd hands to the owner; the rest of the tree stays the kernel's
    // permissions (root's).
    d(
        "Delegate",
        "yes",
        "its own cgroup is the owner's: each VM's VMM gets a group below it with memory and tasks limits (cgroup v2)",
    ),
    d(
        "DelegateSubgroup",
        "daemon",
        "systemd 254 and later start it in the leaf daemon/, so a restart works while VMs keep their groups (older systemd ignores the key, and banger then sets no limits)",
    ),
    d(
        "ProtectControlGroups",
        "no",
        "it writes its delegated cgroup subtree (and nothing else: the rest is root's)",
    ),
    d(
        "RestrictAddressFamilies",
        "AF_UNIX AF_INET AF_INET6 AF_NETLINK AF_VSOCK",
        "its socket and the VMs' (unix), image downloads and port forwards (inet), the TAP queue (netlink), guest agents (vsock)",
    ),
];

/// The root helper's hardening, in the order the unit lists it.
pub fn helper_hardening() -> Vec<Directive> {
    COMMON.iter().chain(HELPER_ONLY.iter()).copied().collect()
}

/// The owner daemon's hardening, in the order the unit lists it.
pub fn daemon_hardening() -> Vec<Directive> {
    COMMON.iter().chain(DAEMON_ONLY.iter()).copied().collect()
}

/// What doctor requires of the helper's unit: every hardening line.
pub fn helper_required() -> Vec<String> {
    helper_hardening().iter().map(Directive::line).collect()
}

/// What doctor requires of the daemon's unit: it runs as the owner, never as root, and
/// every hardening line.
pub fn daemon_required(owner_user: &str) -> Vec<String> {
    std::iter::once(format!("User={owner_user}"))
        .chain(daemon_hardening().iter().map(Directive::line))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn no_key_is_set_twice_in_a_unit() {
        for list in [helper_hardening(), daemon_hardening()] {
            let keys: HashSet<_> = list.iter().map(|d| d.key).collect();
            assert_eq!(keys.len(), list.len());
        }
    }

    #[test]
    fn the_seed_minimum_is_in_both_units() {
        let helper = helper_required();
        for line in [
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "ProtectHome=yes",
            "RestrictSUIDSGID=yes",
            "LockPersonality=yes",
        ] {
            assert!(helper.contains(&line.to_string()), "{line}");
        }
        let daemon = daemon_required("al");
        assert_eq!(daemon[0], "User=al");
        assert!(daemon.contains(&"ProtectHome=read-only".to_string()));
        assert!(daemon.contains(&"CapabilityBoundingSet=".to_string()));
    }

    /// The daemon writes only its delegated cgroup subtree; the helper none.
    #[test]
    fn only_the_daemon_gets_a_writable_delegated_cgroup() {
        let daemon = daemon_required("al");
        for line in [
            "Delegate=yes",
            "DelegateSubgroup=daemon",
            "ProtectControlGroups=no",
        ] {
            assert!(daemon.contains(&line.to_string()), "{line}");
        }
        assert!(!daemon.contains(&"ProtectControlGroups=yes".to_string()));
        let helper = helper_required();
        assert!(helper.contains(&"ProtectControlGroups=yes".to_string()));
        assert!(!helper.iter().any(|l| l.starts_with("Delegate")));
    }

    #[test]
    fn the_helper_gets_only_network_chown_and_raw() {
        let caps = helper_hardening()
            .into_iter()
            .find(|d| d.key == "CapabilityBoundingSet")
            .map(|d| d.value);
        assert_eq!(caps, Some("CAP_NET_ADMIN CAP_NET_RAW CAP_CHOWN"));
    }
}
