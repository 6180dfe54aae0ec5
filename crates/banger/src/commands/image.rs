//! `banger image ls | build | inspect | rm`

use banger_api::{BuildImageRequest, ImportImageRequest};
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

pub async fn build(layout: &Layout, req: BuildImageRequest) -> anyhow::Result<i32> {
    let client = connect::connect(layout).await?;
    let progress = Renderer::stderr();
    let image = client.build_image(&req, &progress).await?;
    progress.finish();
    println!(
        "image {} ready: kernel {}, {}",
        image.name,
        image.kernel_release.as_deref().unwrap_or("?"),
        format_bytes(image.size_bytes)
    );
    Ok(0)
}

pub async fn import(layout: &Layout, mut req: ImportImageRequest) -> anyhow::Result<i32> {
    // A relative layout or archive path means the caller's directory, not the daemon's.
    for prefix in ["oci:", "docker-archive:"] {
        if let Some(rest) = req.reference.strip_prefix(prefix)
            && !rest.starts_with('/')
        {
            let cwd = std::env::current_dir()?;
            req.reference = format!("{prefix}{}", cwd.join(rest).display());
        }
    }
    let client = connect::connect(layout).await?;
    let progress = Renderer::stderr();
    let image = client.import_image(&req, &progress).await?;
    progress.finish();
    let run = image
        .run
        .as_ref()
        .map(|r| {
            r.entrypoint
                .iter()
                .chain(&r.cmd)
                .cloned()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|c| !c.is_empty())
        .map(|c| format!(", runs `{c}`"))
        .unwrap_or_default();
    println!(
        "image {} ready: {}{run}",
        image.name,
        format_bytes(image.size_bytes)
    );
    Ok(0)
}

pub async fn pull(layout: &Layout, name: String, force: bool) -> anyhow::Result<i32> {
    let client = connect::connect(layout).await?;
    let progress = Renderer::stderr();
    let image = client
        .pull_image(&banger_api::PullImageRequest { name, force }, &progress)
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

pub async fn import_kernel(
    layout: &Layout,
    file: std::path::PathBuf,
    name: Option<String>,
    initrd: Option<std::path::PathBuf>,
    force: bool,
) -> anyhow::Result<i32> {
    let absolute = |p: std::path::PathBuf| -> anyhow::Result<String> {
        let p = std::path::absolute(&p)?;
        p.to_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow::anyhow!("path {} is not UTF-8", p.display()))
    };
    let req = banger_api::ImportKernelRequest {
        path: absolute(file)?,
        name,
        initrd: initrd.map(absolute).transpose()?,
        force,
    };
    let progress = Renderer::stderr();
    let image = connect::connect(layout)
        .await?
        .import_kernel(&req, &progress)
        .await?;
    progress.finish();
    println!(
        "kernel image {} ready: {} ({})",
        image.name,
        image.kernel_release.as_deref().unwrap_or("?"),
        if image.kernel_pvh == Some(true) {
            "PVH entry: boots directly on QEMU microvm and Firecracker"
        } else {
            "no PVH entry: QEMU boots its bzImage on -M pc"
        }
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
    if let Some(init) = &image.init {
        println!("init:           {init}");
    }
    if let Some(digest) = &image.digest {
        println!("digest:         {digest}");
    }
    if let Some(run) = &image.run {
        let argv: Vec<&str> = run
            .entrypoint
            .iter()
            .chain(&run.cmd)
            .map(String::as_str)
            .collect();
        println!("runs:           {}", argv.join(" "));
        if let Some(dir) = &run.working_dir {
            println!("working dir:    {dir}");
        }
        for e in &run.env {
            println!("env:            {e}");
        }
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
