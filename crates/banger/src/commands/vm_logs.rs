//! `banger vm logs NAME [-f] [--json]`

use banger_paths::Layout;
use tokio::io::AsyncWriteExt;

use crate::connect;

pub async fn run(layout: &Layout, name: &str, follow: bool, json: bool) -> anyhow::Result<i32> {
    let mut stream = connect::connect(layout)
        .await?
        .logs(name, follow, None)
        .await?;
    let mut stdout = tokio::io::stdout();
    if json && !follow {
        let mut log = Vec::new();
        while let Some(chunk) = stream.next_chunk().await? {
            log.extend_from_slice(&chunk);
        }
        let doc = serde_json::json!({ "vm": name, "log": String::from_utf8_lossy(&log) });
        stdout.write_all(format!("{doc}\n").as_bytes()).await?;
        return Ok(0);
    }
    while let Some(chunk) = stream.next_chunk().await? {
        if json {
            let line = serde_json::json!({ "vm": name, "data": String::from_utf8_lossy(&chunk) });
            stdout.write_all(format!("{line}\n").as_bytes()).await?;
        } else {
            stdout.write_all(&chunk).await?;
        }
        stdout.flush().await?;
    }
    Ok(0)
}
