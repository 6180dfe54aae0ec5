//! `banger image ls | build | inspect | rm`

use banger_api::BuildImageRequest;
use banger_paths::Layout;

use crate::connect;
use crate::output::{format_bytes, print_json, print_table};
use crate::progress::Renderer;

pub async fn ls(layout: &Layout, json: bool) -> anyhow::Result<i32> {
    let images = connect::connect(layout).await?.list_images().await?;
    if json {
        print_json(&images)?;
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = images
        .iter()
        .map(|i| {
            vec![
                i.name.clone(),
                i.source.clone(),
                i.kernel_release.clone().unwrap_or_else(|| "-".into()),
                format_bytes(i.size_bytes),
                i.created_at.clone(),
            ]
        })
        .collect();
    print_table(&["NAME", "SOURCE", "KERNEL", "SIZE", "CREATED"], &rows);
    Ok(0)
}

pub async fn build(
    layout: &Layout,
    recipe: String,
    name: Option<String>,
    force: bool,
) -> anyhow::Result<i32> {
    let client = connect::connect(layout).await?;
    let progress = Renderer::stderr();
    let image = client
        .build_image(
            &BuildImageRequest {
                recipe,
                name,
                force,
            },
            &progress,
        )
        .await?;
    progress.finish();
    println!(
        "image {} ready: kernel {}, {}",
        image.name,
        image.kernel_release.as_deref().unwrap_or("?"),
        format_bytes(image.size_bytes)
    );
    Ok(0)
}

pub async fn inspect(layout: &Layout, name: &str, json: bool) -> anyhow::Result<i32> {
    let image = connect::connect(layout).await?.get_image(name).await?;
    if json {
        print_json(&image)?;
        return Ok(0);
    }
    println!("name:           {}", image.name);
    println!("source:         {}", image.source);
    println!(
        "kernel:         {} ({})",
        image.kernel_path, image.kernel_format
    );
    if let Some(rel) = &image.kernel_release {
        println!("kernel release: {rel}");
    }
    if let Some(initrd) = &image.initrd_path {
        println!("initrd:         {initrd}");
    }
    if let Some(rootfs) = &image.rootfs_path {
        println!("rootfs:         {rootfs}");
    }
    println!("size:           {}", format_bytes(image.size_bytes));
    println!("created:        {}", image.created_at);
    Ok(0)
}

pub async fn rm(layout: &Layout, name: &str) -> anyhow::Result<i32> {
    let image = connect::connect(layout).await?.remove_image(name).await?;
    println!("removed image {}", image.name);
    Ok(0)
}
