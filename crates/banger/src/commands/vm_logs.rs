//! `banger vm logs NAME [-f]`

use banger_paths::Layout;
use tokio::io::AsyncWriteExt;

use crate::connect;

pub async fn run(layout: &Layout, name: &str, follow: bool) -> anyhow::Result<i32> {
    let mut stream = connect::connect(layout).await?.logs(name, follow).await?;
    let mut stdout = tokio::io::stdout();
    while let Some(chunk) = stream.next_chunk().await? {
        stdout.write_all(&chunk).await?;
        stdout.flush().await?;
    }
    Ok(0)
}
