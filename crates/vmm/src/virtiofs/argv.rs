//! `virtiofsd`'s command line: a pure function of the share, the VM directory and the owner.

use std::path::Path;

use super::{Owner, ShareSpec};

/// Every guest id, for the squash rules below.
const ALL_IDS: u32 = u32::MAX;

/// Arguments (after the program name) serving `share` for the VM in `vm_dir` as `owner`.
///
/// * `--sandbox=namespace`: `virtiofsd` pivots into the shared directory in new mount, pid
///   and network namespaces (a user namespace too when `owner` is not root), so a guest
///   that subverts it sees nothing else of the host.
/// * `--readonly` for `:ro`: enforced on the host, whatever the guest mounts.
/// * An ordinary owner's `virtiofsd` can only create files as the owner; its user
///   namespace maps the owner to uid 0, and every guest uid and gid is squashed onto it, so
///   what any guest user writes belongs to the owner on the host. A root owner's
///   `virtiofsd` keeps the guest's ids (the guest's root is the host's root, the owner).
/// * `--cache=auto`: files changed on the host show up in the guest (a second or so for
///   cached attributes), the docker-like expectation of a live share.
pub fn render(share: &ShareSpec, vm_dir: &Path, owner: Owner) -> Vec<String> {
    let mut args = vec![
        format!("--socket-path={}", share.socket(vm_dir).display()),
        format!("--shared-dir={}", share.host_dir.display()),
        format!("--tag={}", share.tag),
        "--sandbox=namespace".to_string(),
        "--cache=auto".to_string(),
        "--log-level=warn".to_string(),
    ];
    if share.read_only {
        args.push("--readonly".to_string());
    }
    if owner.uid != 0 {
        args.push(format!("--translate-uid=squash-guest:0:0:{ALL_IDS}"));
        args.push(format!("--translate-gid=squash-guest:0:0:{ALL_IDS}"));
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(dir: &str, read_only: bool) -> ShareSpec {
        ShareSpec {
            tag: "bangerfs1".into(),
            host_dir: dir.into(),
            read_only,
        }
    }

    #[test]
    fn each_case_renders_its_own_command_line() {
        let root = Owner { uid: 0, gid: 0 };
        let user = Owner {
            uid: 1000,
            gid: 1000,
        };
        let base = |dir: &str| {
            vec![
                "--socket-path=/vms/a/bangerfs1.sock".to_string(),
                format!("--shared-dir={dir}"),
                "--tag=bangerfs1".to_string(),
                "--sandbox=namespace".to_string(),
                "--cache=auto".to_string(),
                "--log-level=warn".to_string(),
            ]
        };
        let squash = [
            format!("--translate-uid=squash-guest:0:0:{}", u32::MAX),
            format!("--translate-gid=squash-guest:0:0:{}", u32::MAX),
        ];
        let cases: Vec<(ShareSpec, Owner, Vec<String>)> = vec![
            (share("/src", false), root, base("/src")),
            (
                share("/src", true),
                root,
                [base("/src"), vec!["--readonly".into()]].concat(),
            ),
            (
                share("/home/me/my project", false),
                user,
                [base("/home/me/my project"), squash.to_vec()].concat(),
            ),
            (
                share("/src", true),
                user,
                [base("/src"), vec!["--readonly".into()], squash.to_vec()].concat(),
            ),
        ];
        for (share, owner, want) in cases {
            assert_eq!(
                render(&share, Path::new("/vms/a"), owner),
                want,
                "{share:?} {owner:?}"
            );
        }
    }
}
