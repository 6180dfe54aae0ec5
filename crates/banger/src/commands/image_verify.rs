//! `banger image verify NAME`: have the daemon read the image's files again and print
//! each against its manifest; exit 1 when any changed.

use std::io::Write;

use banger_paths::Layout;

use crate::connect;
use crate::output::{print_json, safe};

pub async fn verify(layout: &Layout, name: &str, json: bool) -> anyhow::Result<i32> {
    let report = connect::connect(layout).await?.verify_image(name).await?;
    let code = if report.ok { 0 } else { 1 };
    if json {
        print_json(&report)?;
        return Ok(code);
    }
    let mut out = std::io::stdout().lock();
    for file in &report.files {
        match &file.problem {
            None => writeln!(
                out,
                "ok       {} ({} {})",
                file.path, file.digest, file.expected
            )?,
            Some(problem) => writeln!(out, "CHANGED  {} {}", file.path, safe::line(problem))?,
        }
    }
    if !report.ok {
        writeln!(
            out,
            "image {} does not match its manifest: remove it (`banger image rm {}`) and build or import it again",
            report.name, report.name
        )?;
    }
    Ok(code)
}
