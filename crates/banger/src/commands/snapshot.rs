//! `banger vm snapshot`, `banger vm clone` and `banger snapshot ls|inspect|rm`.

use std::io::Write;

use banger_api::{CreateSnapshotRequest, CreateVmRequest, SnapshotView};
use banger_paths::Layout;

use crate::cli::output::{DataArgs, ListArgs};
use crate::cli::{CloneArgs, SnapshotArgs};
use crate::output::{format_bytes, print_data, print_json, print_table, safe};
use crate::progress::Renderer;
use crate::{connect, outln};

pub async fn take(layout: &Layout, args: SnapshotArgs) -> anyhow::Result<i32> {
    let client = connect::connect(layout).await?;
    let req = CreateSnapshotRequest {
        name: args.name,
        stop: args.stop,
    };
    let progress = Renderer::stderr_quiet();
    let snap = client.snapshot_vm(&args.vm, &req, &progress).await;
    progress.finish();
    let snap = snap?;
    if args.json {
        print_json(&snap)?;
    } else {
        outln!(
            "snapshot {name} of VM {vm} ({size}); clone it with `banger vm run --from {name}`",
            name = snap.name,
            vm = snap.source_vm,
            size = format_bytes(snap.size_bytes),
        )?;
    }
    Ok(0)
}

pub async fn clone(layout: &Layout, args: CloneArgs) -> anyhow::Result<i32> {
    let client = connect::connect(layout).await?;
    let req = CreateVmRequest {
        name: args.name,
        start: !args.no_start,
        from: Some(args.snapshot),
        ..Default::default()
    };
    let progress = Renderer::stderr_quiet();
    let vm = client.create_vm(&req, &progress).await;
    progress.finish();
    let vm = vm?;
    if args.json {
        print_json(&vm)?;
    } else {
        outln!("{}", vm.name)?;
    }
    Ok(0)
}

pub async fn ls(layout: &Layout, args: ListArgs) -> anyhow::Result<i32> {
    let snaps = connect::connect(layout).await?.list_snapshots().await?;
    if args.quiet {
        let mut out = std::io::stdout().lock();
        for snap in &snaps {
            writeln!(out, "{}", snap.name)?;
        }
        return Ok(0);
    }
    print_data(&snaps, true, &args.data, || {
        let rows: Vec<Vec<String>> = snaps.iter().map(row).collect();
        print_table(
            &[
                "NAME", "VM", "IMAGE", "DRIVER", "VCPU", "MEMORY", "SIZE", "CREATED",
            ],
            &rows,
        )?;
        Ok(())
    })?;
    Ok(0)
}

fn row(s: &SnapshotView) -> Vec<String> {
    vec![
        s.name.clone(),
        s.source_vm.clone(),
        s.image.clone(),
        s.driver.clone(),
        s.vcpu.to_string(),
        format!("{} MiB", s.memory_mib),
        format_bytes(s.size_bytes),
        s.created_at.clone(),
    ]
}

pub async fn inspect(layout: &Layout, name: &str, data: DataArgs) -> anyhow::Result<i32> {
    let snap = connect::connect(layout).await?.get_snapshot(name).await?;
    print_data(std::slice::from_ref(&snap), false, &data, || {
        let mut out = std::io::stdout().lock();
        writeln!(out, "name:      {}", snap.name)?;
        writeln!(out, "id:        {}", snap.id)?;
        writeln!(out, "of VM:     {}", snap.source_vm)?;
        writeln!(out, "image:     {}", snap.image)?;
        writeln!(out, "driver:    {}", snap.driver)?;
        writeln!(
            out,
            "resources: {} vCPU, {} MiB memory, {} disk",
            snap.vcpu,
            snap.memory_mib,
            format_bytes(snap.disk_bytes)
        )?;
        writeln!(out, "size:      {}", format_bytes(snap.size_bytes))?;
        writeln!(out, "created:   {}", snap.created_at)?;
        writeln!(out, "dir:       {}", snap.dir)?;
        let clones = if snap.clones.is_empty() {
            "-".to_string()
        } else {
            snap.clones.join(", ")
        };
        writeln!(out, "clones:    {clones}")?;
        Ok(())
    })?;
    Ok(0)
}

pub async fn rm(layout: &Layout, names: &[String]) -> anyhow::Result<i32> {
    let client = connect::connect(layout).await?;
    let mut code = 0;
    for name in names {
        match client.remove_snapshot(name).await {
            Ok(snap) => outln!("{}", snap.name)?,
            Err(e) => {
                crate::output::print_error(
                    &anyhow::Error::new(e)
                        .context(format!("cannot remove snapshot {}", safe::name(name))),
                );
                code = 1;
            }
        }
    }
    Ok(code)
}
