//! `banger vm ls` and `banger vm inspect`.

use std::io::Write;

use banger_api::VmView;
use banger_paths::Layout;

use crate::cli::{InspectArgs, LsArgs};
use crate::connect;
use crate::output::{format_bytes, print_data, print_table, safe, stdout_is_terminal};

pub async fn ls(layout: &Layout, args: LsArgs) -> anyhow::Result<i32> {
    let vms = connect::connect(layout).await?.list_vms().await?;
    if args.list.quiet {
        let mut out = std::io::stdout().lock();
        for vm in &vms {
            writeln!(out, "{}", vm.name)?;
        }
        return Ok(0);
    }
    print_data(&vms, true, &args.list.data, || {
        let rows: Vec<Vec<String>> = vms
            .iter()
            .map(|vm| {
                vec![
                    vm.name.clone(),
                    state_column(vm),
                    vm.image.clone(),
                    vm.vcpu.to_string(),
                    format!("{} MiB", vm.memory_mib),
                    format_bytes(vm.disk_bytes),
                    vm.driver.clone().unwrap_or_else(|| "-".into()),
                    vm.created_at.clone(),
                ]
            })
            .collect();
        print_table(
            &[
                "NAME", "STATE", "IMAGE", "VCPU", "MEMORY", "DISK", "DRIVER", "CREATED",
            ],
            &rows,
        )?;
        // The way back, once per VM whose shares are down (stderr: the table stays a table).
        for vm in vms.iter().filter(|vm| !vm.shares_down.is_empty()) {
            crate::errln!(
                "{}: the virtiofsd serving {} exited; restart the VM to share again: \
                 banger vm stop {} && banger vm start {} (details: banger vm inspect {})",
                vm.name,
                vm.shares_down.join(", "),
                vm.name,
                vm.name,
                vm.name
            );
        }
        Ok(())
    })?;
    Ok(0)
}

/// `vm ls`'s STATE: the state, and which live shares are down while it runs.
fn state_column(vm: &VmView) -> String {
    match vm.shares_down.as_slice() {
        [] => vm.state.clone(),
        [one] => format!("{} (share {one} down)", vm.state),
        many => format!("{} ({} shares down)", vm.state, many.len()),
    }
}

pub async fn inspect(layout: &Layout, args: InspectArgs) -> anyhow::Result<i32> {
    let vm = connect::connect(layout).await?.get_vm(&args.name).await?;
    let escape = !args.data.raw && stdout_is_terminal();
    print_data(std::slice::from_ref(&vm), false, &args.data, || {
        let mut text = String::new();
        describe(&vm, escape, &mut text);
        std::io::stdout().write_all(text.as_bytes())?;
        Ok(())
    })?;
    Ok(0)
}

/// The human form of `vm inspect`. Fields a guest can influence (its boot error, which
/// quotes the console, and its kernel release) are escaped when `escape`.
fn describe(vm: &VmView, escape: bool, out: &mut String) {
    use std::fmt::Write;
    let guest = |text: &str| {
        if escape {
            safe::text(text)
        } else {
            text.to_string()
        }
    };
    let _ = writeln!(out, "name:        {}", vm.name);
    let _ = writeln!(out, "id:          {}", vm.id);
    let _ = writeln!(out, "state:       {}", vm.state);
    let _ = writeln!(out, "image:       {}", vm.image);
    if let Some(origin) = &vm.origin {
        let mut how = match &origin.restored_at {
            Some(at) => format!("restored {at}"),
            None => "restores on its first start".into(),
        };
        if let Some(taken) = &origin.standby_taken_at {
            how.push_str(&format!(" ahead of time; a standby handed over {taken}"));
        }
        match &origin.warm_image {
            Some(image) => {
                let _ = writeln!(out, "warm start:  image {image}'s warm state ({how})");
            }
            None => {
                let _ = writeln!(out, "clone of:    snapshot {} ({how})", origin.snapshot);
            }
        }
    }
    if let Some(reason) = &vm.cold_reason {
        let _ = writeln!(out, "cold boot:   {reason}");
    }
    let _ = writeln!(
        out,
        "resources:   {} vCPU, {} MiB memory, {} disk",
        vm.vcpu,
        vm.memory_mib,
        format_bytes(vm.disk_bytes)
    );
    let driver = match (&vm.driver, &vm.accel) {
        (Some(d), Some(a)) => format!("{d} ({a})"),
        (Some(d), None) => d.clone(),
        _ => "-".into(),
    };
    let _ = writeln!(out, "driver:      {driver}");
    if let Some(reason) = &vm.driver_reason {
        let _ = writeln!(out, "  chosen:     {}", guest(reason));
    }
    if let Some(pid) = vm.pid {
        let _ = writeln!(out, "pid:         {pid}");
    }
    let _ = writeln!(out, "created:     {}", vm.created_at);
    if let Some(started) = &vm.started_at {
        let _ = writeln!(out, "started:     {started}");
    }
    let _ = writeln!(out, "dir:         {}", vm.dir);
    let _ = writeln!(out, "console log: {}", vm.console_log);
    if let Some(err) = &vm.last_error {
        let _ = writeln!(
            out,
            "last error:  {}",
            guest(err).replace('\n', "\n             ")
        );
    }
    if let Some(net) = &vm.network {
        let mode = net.mode.as_deref().unwrap_or("- (not running)");
        let _ = writeln!(out, "network:     {mode}");
        if let Some(address) = &net.address {
            let via = net
                .gateway
                .as_deref()
                .map(|g| format!(" via {g}"))
                .unwrap_or_default();
            let _ = writeln!(out, "address:     {address}{via}");
        }
        if !net.published.is_empty() {
            let _ = writeln!(out, "published:   {}", net.published.join(", "));
        }
    }
    for share in &vm.shares {
        // Paths are the owner's, but a directory name can still hold escape sequences.
        let ro = if share.read_only { ", read-only" } else { "" };
        let _ = writeln!(
            out,
            "share:       {} -> {} ({}{ro})",
            guest(&share.host),
            guest(&share.guest),
            share.mode
        );
        if let Some(problem) = &share.problem {
            let _ = writeln!(out, "  problem:    {}", guest(problem));
        }
        if let Some(note) = &share.note {
            let _ = writeln!(out, "  note:       {}", guest(note));
        }
    }
    if let Some(sandbox) = &vm.sandbox {
        let _ = writeln!(out, "sandbox:     {}", sandbox_line(sandbox));
        let _ = writeln!(out, "  started:    by {}", sandbox.summary);
    }
    if let Some(limits) = &vm.limits {
        let _ = writeln!(out, "limits:      {}", limits_line(limits));
        for dir in &limits.dirs {
            let _ = writeln!(out, "  cgroup:     {dir}");
        }
        if let Some(by) = &limits.made_by {
            let _ = writeln!(out, "  made by:    {by}");
        }
    }
    for disk in &vm.disks {
        let used = disk
            .used_bytes
            .map(|u| format!(", {} used on the host", format_bytes(u)))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{:<12} {} ({}, {}{used}) {}",
            format!("{} disk:", disk.role),
            format_bytes(disk.size_bytes),
            disk.format,
            disk.backend,
            disk.path
        );
    }
    timings(vm, escape, out);
}

/// The boot phases of the VM's last start.
fn timings(vm: &VmView, escape: bool, out: &mut String) {
    use std::fmt::Write;
    let Some(boot) = &vm.boot else {
        return;
    };
    let _ = writeln!(out, "boot timings (ms since the start request):");
    match &vm.origin {
        Some(origin) => match &origin.warm_image {
            Some(image) => {
                let _ = writeln!(out, "  restored from    image {image}'s warm state");
                if origin.standby_taken_at.is_some() {
                    let _ = writeln!(
                        out,
                        "  standby taken    restored ahead of time, handed over now"
                    );
                }
            }
            None => {
                let _ = writeln!(out, "  restored from    snapshot {}", origin.snapshot);
            }
        },
        None => {
            let how = vm.cold_reason.as_deref().unwrap_or("no warm state");
            let _ = writeln!(out, "  booted cold      {how}");
        }
    }
    // A standby's VMM was running before the request: there is no spawn to show.
    if vm
        .origin
        .as_ref()
        .is_none_or(|o| o.standby_taken_at.is_none())
    {
        let _ = writeln!(out, "  vmm spawned      {:>8.1}", boot.vmm_spawned_ms);
    }
    if let Some(k) = boot.kernel_started_ms {
        let _ = writeln!(out, "  kernel started   {k:>8.1}");
    }
    if let Some(i) = boot.init_started_ms {
        let _ = writeln!(out, "  init started     {i:>8.1}");
    }
    let _ = writeln!(out, "  agent ready      {:>8.1}", boot.agent_ready_ms);
    if let Some(rel) = &boot.kernel_release {
        let rel = if escape { safe::line(rel) } else { rel.clone() };
        let _ = writeln!(out, "  guest kernel     {rel}");
    }
}

/// Boot timings on stderr (`vm run --timings`); always escaped: stderr is for people.
pub fn print_timings(vm: &VmView) {
    let mut text = String::new();
    timings(vm, true, &mut text);
    let _ = std::io::stderr().write_all(text.as_bytes());
}

/// `uid 1900012345, seccomp, no_new_privs, no capabilities, own root`: each layer seen, or
/// what is missing.
fn sandbox_line(s: &banger_api::SandboxView) -> String {
    let flag = |on: Option<bool>, yes: &str, no: &str| match on {
        Some(true) => yes.to_owned(),
        Some(false) => no.to_owned(),
        None => format!("{yes} unknown"),
    };
    let caps = match s.capabilities.as_deref() {
        Some("0x0") => "no capabilities".to_owned(),
        Some(c) => format!("capabilities {c}"),
        None => "capabilities unknown".to_owned(),
    };
    [
        s.uid
            .map_or("uid unknown".to_owned(), |u| format!("uid {u}")),
        flag(s.seccomp, "seccomp", "NO seccomp"),
        flag(s.no_new_privs, "no_new_privs", "NO no_new_privs"),
        caps,
        flag(s.own_root, "own root", "the host's root"),
    ]
    .join(", ")
}

/// `memory ≤ 1.8 GiB (212 MiB used), tasks ≤ 512 (14)`, or why there are no limits.
fn limits_line(l: &banger_api::LimitsView) -> String {
    if let Some(why) = &l.unlimited_because {
        return format!("none: {why}");
    }
    let pair = |max: Option<u64>, used: Option<String>| match (max, used) {
        (Some(_), Some(u)) => format!(" ({u})"),
        _ => String::new(),
    };
    let memory = match l.memory_max_bytes {
        Some(max) => format!(
            "memory ≤ {}{}",
            format_bytes(max),
            pair(
                l.memory_max_bytes,
                l.memory_used_bytes
                    .map(|u| format!("{} used", format_bytes(u)))
            )
        ),
        None => "memory unlimited".into(),
    };
    let tasks = match l.tasks_max {
        Some(max) => format!(
            "tasks ≤ {max}{}",
            pair(l.tasks_max, l.tasks.map(|t| t.to_string()))
        ),
        None => "tasks unlimited".into(),
    };
    format!(
        "{memory}, {tasks} (cgroup {})",
        l.cgroup.as_deref().unwrap_or("?")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm() -> VmView {
        serde_json::from_value(serde_json::json!({
            "id": "0123456789ab", "name": "dev", "image": "minimal", "state": "failed",
            "vcpu": 1, "memory_mib": 512, "disk_bytes": 8589934592u64, "dir": "/d",
            "console_log": "/d/console.log", "created_at": "2026-01-01T00:00:00Z",
            "last_error": "boot failed:\n\x1b]0;pwned\x07\x1b[2J",
            "boot": {"vmm_spawned_ms": 1.0, "agent_ready_ms": 2.0,
                     "kernel_release": "6.1\x1b[31m"}
        }))
        .unwrap()
    }

    #[test]
    fn ls_says_which_shares_are_down() {
        let mut view = vm();
        view.state = "running".into();
        assert_eq!(state_column(&view), "running");
        view.shares_down = vec!["/src".into()];
        assert_eq!(state_column(&view), "running (share /src down)");
        view.shares_down.push("/data".into());
        assert_eq!(state_column(&view), "running (2 shares down)");
    }

    #[test]
    fn limit_lines() {
        let mut view = vm();
        view.limits = Some(banger_api::LimitsView {
            cgroup: Some("v1".into()),
            dirs: vec!["/sys/fs/cgroup/memory/banger-x/0123456789ab".into()],
            memory_max_bytes: Some(1792 << 20),
            memory_used_bytes: Some(212 << 20),
            tasks_max: Some(512),
            tasks: Some(14),
            unlimited_because: None,
            made_by: Some("the root helper".into()),
        });
        view.sandbox = Some(banger_api::SandboxView {
            started_by: "jailer".into(),
            summary: "the root helper through Firecracker's jailer (chroot /j)".into(),
            uid: Some(1000),
            seccomp: Some(true),
            no_new_privs: Some(true),
            capabilities: Some("0x0".into()),
            own_root: Some(true),
        });
        let mut out = String::new();
        describe(&view, true, &mut out);
        assert!(
            out.contains(
                "limits:      memory ≤ 1.8 GiB (212 MiB used), tasks ≤ 512 (14) (cgroup v1)\n"
            ),
            "{out}"
        );
        assert!(
            out.contains("  cgroup:     /sys/fs/cgroup/memory/banger-x/0123456789ab\n"),
            "{out}"
        );
        assert!(out.contains("  made by:    the root helper\n"), "{out}");
        assert!(
            out.contains(
                "sandbox:     uid 1000, seccomp, no_new_privs, no capabilities, own root\n  \
                 started:    by the root helper through Firecracker's jailer (chroot /j)\n"
            ),
            "{out}"
        );
        view.limits = Some(banger_api::LimitsView {
            unlimited_because: Some("cgroup v1: not writable".into()),
            ..Default::default()
        });
        let mut out = String::new();
        describe(&view, true, &mut out);
        assert!(
            out.contains("limits:      none: cgroup v1: not writable\n"),
            "{out}"
        );
    }

    #[test]
    fn share_lines() {
        let mut view = vm();
        view.shares = vec![
            banger_api::ShareView {
                host: "/home/me/my project".into(),
                guest: "/src".into(),
                read_only: false,
                mode: "virtio-fs".into(),
                problem: None,
                note: None,
                unsynced: false,
            },
            banger_api::ShareView {
                host: "/etc/\x1b[2Jssl".into(),
                guest: "/ssl".into(),
                read_only: true,
                mode: "unavailable".into(),
                problem: Some("install virtiofsd".into()),
                note: None,
                unsynced: false,
            },
            banger_api::ShareView {
                host: "/data".into(),
                guest: "/data".into(),
                read_only: false,
                mode: "copy".into(),
                problem: None,
                note: Some("copied in at every boot".into()),
                unsynced: false,
            },
        ];
        let mut out = String::new();
        describe(&view, true, &mut out);
        assert!(
            out.contains("share:       /home/me/my project -> /src (virtio-fs)\n"),
            "{out}"
        );
        assert!(out.contains("-> /ssl (unavailable, read-only)\n"), "{out}");
        assert!(out.contains("  problem:    install virtiofsd\n"), "{out}");
        assert!(out.contains("/data -> /data (copy)\n"), "{out}");
        assert!(
            out.contains("  note:       copied in at every boot\n"),
            "{out}"
        );
        assert!(!out.contains('\x1b'), "escaped: {out}");
    }

    #[test]
    fn network_lines() {
        let mut view = vm();
        view.network = Some(banger_api::NetworkView {
            mode: Some("bridge".into()),
            address: Some("10.213.0.2/24".into()),
            gateway: Some("10.213.0.1".into()),
            published: vec!["8080:80/tcp".into()],
        });
        let mut out = String::new();
        describe(&view, true, &mut out);
        assert!(out.contains("network:     bridge\n"), "{out}");
        assert!(
            out.contains("address:     10.213.0.2/24 via 10.213.0.1\n"),
            "{out}"
        );
        assert!(out.contains("published:   8080:80/tcp\n"), "{out}");
    }

    #[test]
    fn guest_text_is_inert_when_escaping() {
        let mut out = String::new();
        describe(&vm(), true, &mut out);
        assert!(!out.contains('\x1b') && !out.contains('\x07'), "{out:?}");
        assert!(out.contains("\\x1b]0;pwned\\x07\\x1b[2J"), "{out}");
        assert!(out.contains("guest kernel     6.1\\x1b[31m"), "{out}");
        let mut raw = String::new();
        describe(&vm(), false, &mut raw);
        assert!(raw.contains("\x1b]0;pwned\x07"), "{raw:?}");
    }
}
