//! What the guest's agent reads to mount a VM's shares: one kernel argument,
//! `banger.shares=TAG:MODE:PATH,…`, in the order given at create. `MODE` is `rw` or `ro`
//! for a virtio-fs share (`TAG` its device tag), `copy-rw` or `copy-ro` for a copy-in
//! drive (`TAG` the ext4 label the agent finds it by); `PATH` is percent-encoded (every byte
//! outside `A-Z a-z 0-9 / _ . - +`), so spaces, commas and colons survive the command
//! line. The agent's parser is its mirror (`agent/src/init/shares.rs`).

use banger_store::VmShare;

/// The kernel argument's name.
pub const KERNEL_ARG: &str = "banger.shares";

/// One share as the guest mounts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    tag: String,
    mode: &'static str,
    path: String,
}

impl Entry {
    /// A virtio-fs share with device tag `tag`.
    pub fn live(tag: &str, share: &VmShare) -> Self {
        Entry {
            tag: tag.to_string(),
            mode: if share.read_only { "ro" } else { "rw" },
            path: share.guest_path.clone(),
        }
    }

    /// A copy-in drive whose filesystem is labelled `label`.
    pub fn copy(label: &str, share: &VmShare) -> Self {
        Entry {
            tag: label.to_string(),
            mode: if share.read_only {
                "copy-ro"
            } else {
                "copy-rw"
            },
            path: share.guest_path.clone(),
        }
    }
}

/// The argument for `entries`; `None` without shares.
pub fn kernel_arg(entries: &[Entry]) -> Option<String> {
    if entries.is_empty() {
        return None;
    }
    let entries: Vec<String> = entries
        .iter()
        .map(|e| format!("{}:{}:{}", e.tag, e.mode, encode(&e.path)))
        .collect();
    Some(format!("{KERNEL_ARG}={}", entries.join(",")))
}

/// Percent-encode every byte outside a small safe set.
pub fn encode(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'_' | b'.' | b'-' | b'+' => {
                out.push(char::from(b))
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use banger_store::Delivery;

    fn share(guest: &str, read_only: bool) -> VmShare {
        VmShare {
            host_path: "/a".into(),
            guest_path: guest.into(),
            read_only,
            delivery: Delivery::VirtioFs,
        }
    }

    #[test]
    fn paths_with_spaces_commas_and_colons_are_encoded() {
        let entries = [
            Entry::live("bangerfs0", &share("/src", false)),
            Entry::live("bangerfs1", &share("/my dir,1:x%é", true)),
            Entry::copy("bangercp2", &share("/data", false)),
            Entry::copy("bangercp3", &share("/etc/x", true)),
        ];
        assert_eq!(
            kernel_arg(&entries).unwrap(),
            "banger.shares=bangerfs0:rw:/src,bangerfs1:ro:/my%20dir%2C1%3Ax%25%C3%A9,\
             bangercp2:copy-rw:/data,bangercp3:copy-ro:/etc/x"
        );
        assert_eq!(kernel_arg(&[]), None);
    }
}
