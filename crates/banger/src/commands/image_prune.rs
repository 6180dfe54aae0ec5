//! `banger image prune`: show what would go, ask (on a terminal) unless `--force`,
//! then reclaim it and say how much.

use std::io::{IsTerminal, Write};

use anyhow::bail;
use banger_api::{PruneImagesRequest, PruneReport};
use banger_paths::Layout;

use crate::connect;
use crate::output::{format_bytes, print_json};

pub struct PruneArgs {
    pub dry_run: bool,
    pub all: bool,
    pub force: bool,
    pub json: bool,
}

/// Show what would go, ask (on a terminal) unless `--force`, then prune.
pub async fn prune(layout: &Layout, args: PruneArgs) -> anyhow::Result<i32> {
    let client = connect::connect(layout).await?;
    let plan = client
        .prune_images(&PruneImagesRequest {
            all: args.all,
            dry_run: true,
        })
        .await?;
    if args.dry_run || plan.items.is_empty() {
        show(&plan, args.json, true)?;
        return Ok(0);
    }
    if !args.force {
        if !std::io::stdin().is_terminal() {
            bail!(
                "image prune would remove {} ({}); confirm with --force (or see it with --dry-run)",
                plural(plan.items.len(), "item"),
                format_bytes(plan.reclaimable_bytes)
            );
        }
        show(&plan, false, true)?;
        crate::err!("Remove these? [y/N] ");
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
            crate::errln!("nothing removed");
            return Ok(0);
        }
    }
    let done = client
        .prune_images(&PruneImagesRequest {
            all: args.all,
            dry_run: false,
        })
        .await?;
    show(&done, args.json, false)?;
    Ok(0)
}

fn show(report: &PruneReport, json: bool, planned: bool) -> anyhow::Result<()> {
    if json {
        return print_json(report);
    }
    let mut out = std::io::stdout().lock();
    for item in &report.items {
        writeln!(
            out,
            "{} {:<13} {:>10}  {}",
            if planned { "would remove" } else { "removed" },
            item.kind,
            format_bytes(item.bytes),
            item.name
        )?;
    }
    for kept in &report.kept {
        writeln!(out, "kept {kept}")?;
    }
    let total = format_bytes(report.reclaimable_bytes);
    if planned {
        writeln!(out, "{total} can be reclaimed")?;
    } else {
        writeln!(out, "reclaimed {total}")?;
    }
    Ok(())
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}
