//! `banger vm sync NAME [GUEST_PATH…]`: copy the guest's content of a VM's copy-in shares
//! (`-v HOST:GUEST:copy`, and every share of a Firecracker VM) back to their host
//! directories. The guest packs each share with the agent's `tar-out` (as `vm cp` does);
//! the host treats the stream as hostile and applies it with `banger_copy::sync` (see
//! there for exactly what is overwritten, kept and deleted). Runs as the CLI's user, so
//! what it writes belongs to the user.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use banger_api::{ShareView, VmView};
use banger_copy::{SyncOptions, SyncReport};
use banger_paths::Layout;

use crate::cli::SyncArgs;
use crate::connect;
use crate::output::safe;

pub async fn run(layout: &Layout, args: SyncArgs) -> anyhow::Result<i32> {
    let config = banger_config::load(&layout.config_file())?;
    let max_bytes = config.shares_resolved().copy_max_bytes.value;
    let client = connect::connect(layout).await?;
    let vm = client.get_vm(&args.name).await?;
    sync_vm(&client, &vm, &args.paths, args.delete, max_bytes).await
}

/// Sync the guest's content of running VM `vm`'s copy-in shares at `paths` (all its
/// read-write ones when empty) back to the host; the exit status (1 when one failed).
/// Shares synced whole and cleanly are reported to the daemon, which stops calling them
/// unsynced until the guest changes them again.
pub(crate) async fn sync_vm(
    client: &banger_api::Client,
    vm: &VmView,
    paths: &[String],
    delete: bool,
    max_bytes: u64,
) -> anyhow::Result<i32> {
    if vm.state != "running" {
        bail!(
            "VM {} is {}: its copies live in the running guest; start it with `banger vm \
             start {}` (a start copies the host directories in afresh, replacing what the \
             guest had written)",
            vm.name,
            vm.state,
            vm.name
        );
    }
    let targets = targets(vm, paths)?;
    let mut status = 0;
    let mut whole = Vec::new();
    for target in targets {
        let opts = SyncOptions { delete, max_bytes };
        let host = target.host.clone();
        let shown = target.guest.clone();
        let (code, report) =
            super::vm_cp::read_from_guest(client, &vm.name, &target.guest, move |input| {
                banger_copy::sync::receive(input, &host, &opts)
                    .with_context(|| format!("cannot sync {shown} into {}", host.display()))
            })
            .await?;
        if code != 0 {
            crate::errln!(
                "{}: the guest could not pack it (exit status {code})",
                safe::text(&target.guest)
            );
            status = 1;
            continue;
        }
        say(&target, &report)?;
        let is_share = vm
            .shares
            .iter()
            .any(|s| Path::new(&s.guest) == Path::new(&target.guest));
        if is_share && report.skipped.is_empty() {
            whole.push(target.guest.clone());
        }
    }
    if !whole.is_empty()
        && let Err(e) = client.shares_synced(&vm.name, whole).await
    {
        crate::output::warn(&format!(
            "synced, but the daemon could not record it ({e}): `vm stop` may still warn about \
             these shares"
        ));
    }
    Ok(status)
}

/// Warn about VM `vm`'s read-write copies the guest changed and nobody synced back, once
/// `what` (`stopped`, `removed`) happened to it.
pub(crate) fn warn_unsynced(vm: &VmView, what: &str) {
    let unsynced: Vec<&ShareView> = vm.shares.iter().filter(|s| s.unsynced).collect();
    if unsynced.is_empty() {
        return;
    }
    let list = unsynced
        .iter()
        .map(|s| format!("{} ({})", s.guest, s.host))
        .collect::<Vec<_>>()
        .join(", ");
    let fate = if what == "removed" {
        "they are gone with it".to_string()
    } else {
        format!(
            "they stay in the stopped VM's copy until `banger vm start {}` replaces it with \
             the host directory",
            vm.name
        )
    };
    crate::output::warn(&format!(
        "VM {} {what}: the guest changed copy-in share {list} since it was last synced, and \
         {fate}; bring a running guest's changes back with `banger vm sync {}` first",
        vm.name, vm.name
    ));
}

/// One guest directory to bring back, and where.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    guest: String,
    host: PathBuf,
}

/// The directories to sync: every read-write copy-in share of `vm`, or the `paths` asked
/// for (each a copy-in share's guest path or a directory below one).
fn targets(vm: &VmView, paths: &[String]) -> anyhow::Result<Vec<Target>> {
    let copies: Vec<&ShareView> = vm.shares.iter().filter(|s| s.mode == "copy").collect();
    if paths.is_empty() {
        let rw: Vec<Target> = copies
            .iter()
            .filter(|s| !s.read_only)
            .map(|s| Target {
                guest: s.guest.clone(),
                host: PathBuf::from(&s.host),
            })
            .collect();
        if rw.is_empty() {
            bail!(
                "VM {} has no read-write copy-in share to sync ({}); live shares (virtio-fs) \
                 need no sync, read-only ones cannot change",
                vm.name,
                describe(&vm.shares)
            );
        }
        return Ok(rw);
    }
    paths
        .iter()
        .map(|path| {
            let clean = Path::new(path);
            if !path.starts_with('/')
                || clean
                    .components()
                    .any(|c| matches!(c, std::path::Component::ParentDir))
            {
                bail!("{path:?}: give an absolute guest path without .., e.g. /src");
            }
            let share = vm
                .shares
                .iter()
                .filter(|s| clean.starts_with(&s.guest))
                .max_by_key(|s| s.guest.len())
                .with_context(|| {
                    format!(
                        "{path} is not in a shared directory of VM {} ({})",
                        vm.name,
                        describe(&vm.shares)
                    )
                })?;
            if share.mode != "copy" {
                bail!(
                    "{} is shared live ({}): the guest's writes are already on the host, there \
                     is nothing to sync",
                    share.guest,
                    share.mode
                );
            }
            if share.read_only {
                bail!(
                    "{} is a read-only share (:ro): its copy cannot be written back; create the \
                     VM with a read-write share to bring changes back",
                    share.guest
                );
            }
            let below = clean.strip_prefix(&share.guest).unwrap_or(Path::new(""));
            Ok(Target {
                guest: clean.display().to_string(),
                host: Path::new(&share.host).join(below),
            })
        })
        .collect()
}

fn describe(shares: &[ShareView]) -> String {
    if shares.is_empty() {
        return "it shares no directory".to_string();
    }
    shares
        .iter()
        .map(|s| {
            let ro = if s.read_only { ", ro" } else { "" };
            format!("{} {}{ro}", s.guest, s.mode)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn say(target: &Target, r: &SyncReport) -> std::io::Result<()> {
    crate::outln!(
        "{} -> {}: {} written ({} bytes), {} unchanged, {} directories made, {} deleted",
        safe::text(&target.guest),
        safe::text(&target.host.display().to_string()),
        r.written,
        r.bytes,
        r.unchanged,
        r.dirs_made,
        r.deleted
    )?;
    for skipped in &r.skipped {
        crate::output::warn(&format!(
            "{}: the host has a different kind of entry there (a directory for a file or the \
             reverse); left alone (--delete replaces it)",
            target.host.join(skipped).display()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm(shares: Vec<ShareView>) -> VmView {
        let mut v: VmView = serde_json::from_value(serde_json::json!({
            "id": "abc", "name": "dev", "image": "debian", "state": "running",
            "vcpu": 1, "memory_mib": 512, "disk_bytes": 1, "dir": "/d",
            "console_log": "/d/console.log", "created_at": "",
        }))
        .unwrap();
        v.shares = shares;
        v
    }

    fn share(host: &str, guest: &str, mode: &str, read_only: bool) -> ShareView {
        ShareView {
            host: host.into(),
            guest: guest.into(),
            read_only,
            mode: mode.into(),
            problem: None,
            note: None,
            unsynced: false,
        }
    }

    #[test]
    fn targets_are_rw_copies_or_paths_below_them() {
        let v = vm(vec![
            share("/h/src", "/src", "copy", false),
            share("/h/ro", "/ro", "copy", true),
            share("/h/live", "/live", "virtio-fs", false),
        ]);
        let t =
            |paths: &[&str]| targets(&v, &paths.iter().map(|p| p.to_string()).collect::<Vec<_>>());
        assert_eq!(
            t(&[]).unwrap(),
            [Target {
                guest: "/src".into(),
                host: "/h/src".into()
            }]
        );
        assert_eq!(
            t(&["/src/a/b"]).unwrap(),
            [Target {
                guest: "/src/a/b".into(),
                host: "/h/src/a/b".into()
            }]
        );
        for (bad, why) in [
            (&["/ro"][..], "read-only"),
            (&["/live"][..], "shared live"),
            (&["/etc"][..], "not in a shared directory"),
            (&["/src/../etc"][..], "without .."),
            (&["src"][..], "absolute"),
        ] {
            let err = t(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
        let none = vm(vec![share("/h/live", "/live", "virtio-fs", false)]);
        assert!(
            targets(&none, &[])
                .unwrap_err()
                .to_string()
                .contains("no read-write")
        );
    }
}
