//! What the guest's agent reads to mount a VM's shares: one kernel argument,
//! `banger.shares=TAG:MODE:PATH,…`, in the order given at create. `MODE` is `rw` or `ro`;
//! `PATH` is percent-encoded (every byte outside `A-Z a-z 0-9 / _ . - +`), so spaces,
//! commas and colons survive the command line. The agent's parser is its mirror
//! (`agent/src/init/shares.rs`).

use banger_vmm::virtiofs::ShareSpec;

/// The kernel argument's name.
pub const KERNEL_ARG: &str = "banger.shares";

/// The argument for `specs` mounted at `guest_paths` (same order); `None` without shares.
pub fn kernel_arg(specs: &[ShareSpec], guest_paths: &[&str]) -> Option<String> {
    if specs.is_empty() {
        return None;
    }
    let entries: Vec<String> = specs
        .iter()
        .zip(guest_paths)
        .map(|(spec, path)| {
            let mode = if spec.read_only { "ro" } else { "rw" };
            format!("{}:{mode}:{}", spec.tag, encode(path))
        })
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

    #[test]
    fn paths_with_spaces_commas_and_colons_are_encoded() {
        let specs = [
            ShareSpec {
                tag: "bangerfs0".into(),
                host_dir: "/a".into(),
                read_only: false,
            },
            ShareSpec {
                tag: "bangerfs1".into(),
                host_dir: "/b".into(),
                read_only: true,
            },
        ];
        assert_eq!(
            kernel_arg(&specs, &["/src", "/my dir,1:x%é"]).unwrap(),
            "banger.shares=bangerfs0:rw:/src,bangerfs1:ro:/my%20dir%2C1%3Ax%25%C3%A9"
        );
        assert_eq!(kernel_arg(&[], &[]), None);
    }
}
