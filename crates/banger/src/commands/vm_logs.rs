//! `banger vm logs NAME [-f] [--tail N] [--json] [--raw]`

use std::io::Write;

use banger_paths::Layout;

use crate::cli::LogsArgs;
use crate::connect;
use crate::output::safe::Sanitizer;
use crate::output::stdout_is_terminal;

pub async fn run(layout: &Layout, args: LogsArgs) -> anyhow::Result<i32> {
    let client = connect::connect(layout).await?;
    let mut stream = client.logs(&args.name, args.follow, args.tail).await?;
    // Blocking writes on purpose: the log arrives faster than a terminal takes it, and a
    // reader that goes away must end us at once (a broken pipe is a quiet exit).
    let mut stdout = std::io::stdout().lock();
    if args.json && !args.follow {
        let mut log = Vec::new();
        while let Some(chunk) = stream.next_chunk().await? {
            log.extend_from_slice(&chunk);
        }
        let doc = serde_json::json!({ "vm": args.name, "log": String::from_utf8_lossy(&log) });
        writeln!(stdout, "{doc}")?;
        return Ok(0);
    }
    let mut escape = (!args.json && !args.raw && stdout_is_terminal()).then(Sanitizer::new);
    let mut text = String::new();
    while let Some(chunk) = stream.next_chunk().await? {
        if args.json {
            let line =
                serde_json::json!({ "vm": args.name, "data": String::from_utf8_lossy(&chunk) });
            writeln!(stdout, "{line}")?;
        } else if let Some(sanitizer) = escape.as_mut() {
            text.clear();
            sanitizer.push(&chunk, &mut text);
            stdout.write_all(text.as_bytes())?;
        } else {
            stdout.write_all(&chunk)?;
        }
        stdout.flush()?;
    }
    if let Some(sanitizer) = escape.as_mut() {
        text.clear();
        sanitizer.finish(&mut text);
        stdout.write_all(text.as_bytes())?;
        stdout.flush()?;
    }
    Ok(0)
}
