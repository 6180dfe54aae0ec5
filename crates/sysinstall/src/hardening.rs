//! The hardening directives of the two units: written by the renderer and required by
//! `banger doctor`, from this one list.
//!
//! Each directive carries why it is there, or why a stronger one is not. What the helper
//! does with root is in `docs/privileges.md`: netlink (links, addresses, routes), ioctls
//! on `/dev/net/tun`, sysctls under `/proc/sys/net`, running `nft` (and, read-only,
//! `iptables-legacy -S`), and creating its socket for the owner; and, when the install
//! chose it (`crate::jail`), running Firecracker's jailer ([`HELPER_JAILER`]).

use crate::jail::HelperUnit;

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
        "the cgroup tree is read-only (but for the v1 memory and pids hierarchies, in ReadWritePaths=; a jailing helper on a pure v2 host sets no instead)",
    ),
    // CAP_NET_ADMIN: bridges, TAPs (TUNSETIFF, TUNSETOWNER), addresses, nftables, and the
    //   net sysctls (ip_forward, route_localnet).
    // CAP_NET_RAW: the read-only `firewall` verb runs `iptables-legacy -S`, which reads the
    //   legacy tables through a raw socket.
    // CAP_CHOWN: its socket is created by root and handed to the owner, and so are the
    //   membership files of a VM's v1 cgroups.
    // CAP_DAC_OVERRIDE: the root of each v1 hierarchy is mode 0555, so only it lets root make
    //   the owner's `banger-<uid>` group there (ensure_vm_cgroup); ProtectSystem=strict keeps
    //   every other path read-only.
    // Nothing else: no CAP_SYS_ADMIN, no CAP_SETUID; it launches no VMM (a jailing helper's
    // set is HELPER_JAILER's).
    d(
        "CapabilityBoundingSet",
        "CAP_NET_ADMIN CAP_NET_RAW CAP_CHOWN CAP_DAC_OVERRIDE",
        "network administration, the raw socket of iptables-legacy -S, giving its socket and VM cgroups to the owner, and making groups in the v1 hierarchies (their roots are mode 0555); nothing else",
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

/// What a helper that jails Firecracker gets instead of (same key) or beyond the lines of
/// [`HELPER_ONLY`]: exactly what the jailer uses (`crate::jail`). Its jailed Firecrackers
/// are its children and inherit all of it: the device policy confines them too (on a v1
/// host they stay in the helper's devices group), and its seccomp filter is theirs on top
/// of Firecracker's own.
const HELPER_JAILER: [Directive; 8] = [
    d(
        "CapabilityBoundingSet",
        "CAP_NET_ADMIN CAP_NET_RAW CAP_CHOWN CAP_DAC_OVERRIDE CAP_SYS_ADMIN CAP_SYS_CHROOT CAP_MKNOD CAP_SETUID CAP_SETGID CAP_FOWNER",
        "the network ones, and the jailer's: mounts, pivot and namespaces (SYS_ADMIN), chroot, device nodes (MKNOD), dropping to the owner (SETUID, SETGID), reading the owner's state and linking their files and FIFOs into the chroot (DAC_OVERRIDE, FOWNER)",
    ),
    d(
        "RestrictNamespaces",
        "mnt pid",
        "the jailer's own mount namespace and --new-pid-ns; no other kind",
    ),
    d(
        "SystemCallFilter",
        "@system-service @mount seccomp",
        "an ordinary service's calls, the jailer's mount, pivot_root and chroot, and seccomp(2), with which Firecracker installs its own filters",
    ),
    d(
        "DevicePolicy",
        "closed",
        "no device nodes but the standard pseudo devices and those below",
    ),
    d(
        "DeviceAllow",
        "/dev/kvm rwm",
        "the jailer makes /dev/kvm in each chroot, and Firecracker opens it",
    ),
    d(
        "DeviceAllow",
        "/dev/net/tun rwm",
        "TAP devices (the helper's), and the jail's /dev/net/tun",
    ),
    d("DeviceAllow", "/dev/urandom rwm", "the jail's /dev/urandom"),
    d(
        "DeviceAllow",
        "/dev/userfaultfd rwm",
        "newer jailers make it when the host has it (systemd skips a node the host lacks)",
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

/// The root helper's hardening for `unit`, in the order the unit lists it: network
/// plumbing only, or with what Firecracker's jailer needs. A jailing helper on a pure v2
/// host ([`HelperUnit::JailV2`]) lacks `ProtectControlGroups=yes`: its jailer writes the
/// tree's root, so the unit sets `ProtectControlGroups=no` among the jail's lines
/// ([`crate::jail::jail_needs`]), which is no hardening.
pub fn helper_hardening(unit: HelperUnit) -> Vec<Directive> {
    let jailer = unit.jails();
    let own = |d: &&Directive| {
        (!jailer || HELPER_JAILER.iter().all(|j| j.key != d.key))
            && !(unit.writes_cgroup_tree() && d.key == "ProtectControlGroups")
    };
    let mut list: Vec<Directive> = COMMON
        .iter()
        .chain(HELPER_ONLY.iter().filter(own))
        .copied()
        .collect();
    if jailer {
        list.extend(HELPER_JAILER);
    }
    list
}

/// The owner daemon's hardening, in the order the unit lists it.
pub fn daemon_hardening() -> Vec<Directive> {
    COMMON.iter().chain(DAEMON_ONLY.iter()).copied().collect()
}

/// What doctor requires of the helper's unit: every hardening line of its posture.
pub fn helper_required(unit: HelperUnit) -> Vec<String> {
    helper_hardening(unit).iter().map(Directive::line).collect()
}

/// Keys systemd adds up over several lines (an empty assignment resets them).
pub const LIST_KEYS: [&str; 6] = [
    "CapabilityBoundingSet",
    "AmbientCapabilities",
    "RestrictAddressFamilies",
    "SystemCallFilter",
    "DeviceAllow",
    "ReadWritePaths",
];

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
    fn only_list_keys_are_set_twice_in_a_unit() {
        for list in [
            helper_hardening(HelperUnit::Network),
            helper_hardening(HelperUnit::JailV1),
            helper_hardening(HelperUnit::JailV2),
            daemon_hardening(),
        ] {
            let keys: HashSet<_> = list
                .iter()
                .filter(|d| !LIST_KEYS.contains(&d.key))
                .map(|d| d.key)
                .collect();
            let plain = list.iter().filter(|d| !LIST_KEYS.contains(&d.key)).count();
            assert_eq!(keys.len(), plain);
            let caps = list.iter().filter(|d| d.key == "CapabilityBoundingSet");
            assert_eq!(caps.count(), 1);
        }
    }

    /// The jailer's posture widens exactly the lines the jailer needs, and keeps the rest.
    #[test]
    fn the_jailer_posture_replaces_only_what_the_jailer_needs() {
        let plain = helper_required(HelperUnit::Network);
        let jail = helper_required(HelperUnit::JailV1);
        assert!(jail.contains(&"RestrictNamespaces=mnt pid".to_string()));
        assert!(!jail.contains(&"RestrictNamespaces=yes".to_string()));
        assert!(jail.contains(&"SystemCallFilter=@system-service @mount seccomp".to_string()));
        assert!(jail.contains(&"DevicePolicy=closed".to_string()));
        assert!(!plain.iter().any(|l| l.starts_with("Device")));
        for kept in [
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "ProtectHome=yes",
            "ProtectControlGroups=yes",
            "MemoryDenyWriteExecute=yes",
            "AmbientCapabilities=",
        ] {
            assert!(plain.contains(&kept.to_string()) && jail.contains(&kept.to_string()));
        }
        let caps = |list: Vec<Directive>| {
            list.into_iter()
                .find(|d| d.key == "CapabilityBoundingSet")
                .map(|d| d.value.split(' ').collect::<HashSet<_>>())
                .unwrap()
        };
        let jail_caps = caps(helper_hardening(HelperUnit::JailV1));
        assert!(caps(helper_hardening(HelperUnit::Network)).is_subset(&jail_caps));
        for cap in crate::jail::JAILER_CAPS.split(' ') {
            assert!(jail_caps.contains(cap), "{cap}");
        }
    }

    #[test]
    fn the_seed_minimum_is_in_both_units() {
        let helper = helper_required(HelperUnit::Network);
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
        let helper = helper_required(HelperUnit::JailV1);
        assert!(helper.contains(&"ProtectControlGroups=yes".to_string()));
        assert!(!helper.iter().any(|l| l.starts_with("Delegate")));
    }

    /// On a pure v2 host the jailing helper's hardening is the v1 one without
    /// `ProtectControlGroups=yes`, and nothing else differs.
    #[test]
    fn a_v2_jailing_helper_drops_only_the_protected_cgroup_tree() {
        let v1 = helper_required(HelperUnit::JailV1);
        let v2 = helper_required(HelperUnit::JailV2);
        let without: Vec<String> = v1
            .iter()
            .filter(|l| *l != "ProtectControlGroups=yes")
            .cloned()
            .collect();
        assert_eq!(v2, without);
        assert_eq!(v1.len(), v2.len() + 1);
        assert!(!v2.iter().any(|l| l.starts_with("ProtectControlGroups")));
    }

    #[test]
    fn the_helper_gets_only_network_chown_raw_and_dac_override() {
        let caps = helper_hardening(HelperUnit::Network)
            .into_iter()
            .find(|d| d.key == "CapabilityBoundingSet")
            .map(|d| d.value);
        assert_eq!(
            caps,
            Some("CAP_NET_ADMIN CAP_NET_RAW CAP_CHOWN CAP_DAC_OVERRIDE")
        );
    }
}
