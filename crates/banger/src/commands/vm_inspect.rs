//! `banger vm ls` and `banger vm inspect`.

use std::io::Write;

use banger_api::VmView;
use banger_paths::Layout;

use crate::connect;
use crate::output::{format_bytes, print_json, print_table};

pub async fn ls(layout: &Layout, json: bool) -> anyhow::Result<i32> {
    let vms = connect::connect(layout).await?.list_vms().await?;
    if json {
        print_json(&vms)?;
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = vms
        .iter()
        .map(|vm| {
            vec![
                vm.name.clone(),
                vm.state.clone(),
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
    );
    Ok(0)
}

pub async fn inspect(layout: &Layout, name: &str, json: bool) -> anyhow::Result<i32> {
    let vm = connect::connect(layout).await?.get_vm(name).await?;
    if json {
        print_json(&vm)?;
        return Ok(0);
    }
    let mut out = std::io::stdout();
    writeln!(out, "name:        {}", vm.name)?;
    writeln!(out, "id:          {}", vm.id)?;
    writeln!(out, "state:       {}", vm.state)?;
    writeln!(out, "image:       {}", vm.image)?;
    writeln!(
        out,
        "resources:   {} vCPU, {} MiB memory, {} disk",
        vm.vcpu,
        vm.memory_mib,
        format_bytes(vm.disk_bytes)
    )?;
    let driver = match (&vm.driver, &vm.accel) {
        (Some(d), Some(a)) => format!("{d} ({a})"),
        (Some(d), None) => d.clone(),
        _ => "-".into(),
    };
    writeln!(out, "driver:      {driver}")?;
    if let Some(reason) = &vm.driver_reason {
        writeln!(out, "  chosen:     {reason}")?;
    }
    if let Some(pid) = vm.pid {
        writeln!(out, "pid:         {pid}")?;
    }
    writeln!(out, "created:     {}", vm.created_at)?;
    if let Some(started) = &vm.started_at {
        writeln!(out, "started:     {started}")?;
    }
    writeln!(out, "dir:         {}", vm.dir)?;
    writeln!(out, "console log: {}", vm.console_log)?;
    if let Some(err) = &vm.last_error {
        writeln!(out, "last error:  {err}")?;
    }
    for disk in &vm.disks {
        let used = disk
            .used_bytes
            .map(|u| format!(", {} used on the host", format_bytes(u)))
            .unwrap_or_default();
        writeln!(
            out,
            "{:<12} {} ({}, {}{used}) {}",
            format!("{} disk:", disk.role),
            format_bytes(disk.size_bytes),
            disk.format,
            disk.backend,
            disk.path
        )?;
    }
    print_timings(&vm, &mut out)?;
    Ok(0)
}

/// The boot phases of the VM's last start.
pub fn print_timings(vm: &VmView, out: &mut dyn Write) -> std::io::Result<()> {
    let Some(boot) = &vm.boot else {
        return Ok(());
    };
    writeln!(out, "boot timings (ms since the start request):")?;
    writeln!(out, "  vmm spawned      {:>8.1}", boot.vmm_spawned_ms)?;
    if let Some(k) = boot.kernel_started_ms {
        writeln!(out, "  kernel started   {k:>8.1}")?;
    }
    if let Some(i) = boot.init_started_ms {
        writeln!(out, "  init started     {i:>8.1}")?;
    }
    writeln!(out, "  agent ready      {:>8.1}", boot.agent_ready_ms)?;
    if let Some(rel) = &boot.kernel_release {
        writeln!(out, "  guest kernel     {rel}")?;
    }
    Ok(())
}
