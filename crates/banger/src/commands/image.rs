//! `banger image ls | build | import | pull | import-kernel | inspect | rm` (prune has
//! its own file).

use std::fmt::Write as _;
use std::io::Write;

use banger_api::{BuildImageRequest, ImageView, ImportImageRequest};
use banger_paths::Layout;

use super::image_recipe;
use crate::cli::output::{DataArgs, ListArgs};
use crate::connect;
use crate::outln;
use crate::output::{
    format_bytes, print_data, print_error, print_table, safe, stdout_is_terminal, warn,
};
use crate::progress::Renderer;

pub async fn ls(layout: &Layout, args: ListArgs) -> anyhow::Result<i32> {
    let images = connect::connect(layout).await?.list_images().await?;
    if args.quiet {
        let mut out = std::io::stdout().lock();
        for image in &images {
            writeln!(out, "{}", image.name)?;
        }
        return Ok(0);
    }
    print_data(&images, true, &args.data, || {
        let rows: Vec<Vec<String>> = images
            .iter()
            .map(|i| {
                vec![
                    i.name.clone(),
                    image_recipe::source_cell(i),
                    i.kernel_release.clone().unwrap_or_else(|| "-".into()),
                    format_bytes(i.size_bytes),
                    i.created_at.clone(),
                ]
            })
            .collect();
        print_table(&["NAME", "SOURCE", "KERNEL", "SIZE", "CREATED"], &rows)?;
        for note in images.iter().filter_map(image_recipe::outdated_warning) {
            warn(&note);
        }
        Ok(())
    })?;
    Ok(0)
}

pub async fn build(layout: &Layout, req: BuildImageRequest) -> anyhow::Result<i32> {
    let client = connect::connect(layout).await?;
    let progress = Renderer::stderr();
    let image = client.build_image(&req, &progress).await?;
    progress.finish();
    outln!(
        "image {} ready: kernel {}, {}",
        image.name,
        image.kernel_release.as_deref().unwrap_or("?"),
        format_bytes(image.size_bytes)
    )?;
    Ok(0)
}

/// A relative layout or archive path means the caller's directory (`cwd`), not the
/// daemon's. An empty one stays empty, for the daemon to refuse (it is no directory).
fn from_here(reference: &str, cwd: &std::path::Path) -> String {
    for prefix in ["oci:", "docker-archive:"] {
        if let Some(rest) = reference.strip_prefix(prefix)
            && !rest.is_empty()
            && !rest.starts_with('/')
        {
            return format!("{prefix}{}", cwd.join(rest).display());
        }
    }
    reference.to_string()
}

pub async fn import(layout: &Layout, mut req: ImportImageRequest) -> anyhow::Result<i32> {
    req.reference = from_here(&req.reference, &std::env::current_dir()?);
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
    outln!(
        "image {} ready: {}{run}",
        image.name,
        format_bytes(image.size_bytes)
    )?;
    Ok(0)
}

pub async fn pull(layout: &Layout, name: String, force: bool) -> anyhow::Result<i32> {
    let client = connect::connect(layout).await?;
    let progress = Renderer::stderr();
    let image = client
        .pull_image(&banger_api::PullImageRequest { name, force }, &progress)
        .await?;
    progress.finish();
    outln!(
        "image {} ready: kernel {}, {}",
        image.name,
        image.kernel_release.as_deref().unwrap_or("?"),
        format_bytes(image.size_bytes)
    )?;
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
    outln!(
        "kernel image {} ready: {} ({})",
        image.name,
        image.kernel_release.as_deref().unwrap_or("?"),
        if image.kernel_pvh == Some(true) {
            "PVH entry: boots directly on QEMU microvm and Firecracker"
        } else {
            "no PVH entry: QEMU boots its bzImage on -M pc"
        }
    )?;
    Ok(0)
}

pub async fn inspect(layout: &Layout, name: &str, args: DataArgs) -> anyhow::Result<i32> {
    let image = connect::connect(layout).await?.get_image(name).await?;
    let escape = !args.raw && stdout_is_terminal();
    print_data(std::slice::from_ref(&image), false, &args, || {
        std::io::stdout().write_all(describe(&image, escape).as_bytes())?;
        Ok(())
    })?;
    Ok(0)
}

/// The human form of `image inspect`. What an image's maker controls (its kernel
/// release, an OCI image's command, directory and environment) is escaped when `escape`.
fn describe(image: &ImageView, escape: bool) -> String {
    let text = |t: &str| if escape { safe::line(t) } else { t.to_string() };
    let mut out = String::new();
    let _ = writeln!(out, "name:           {}", image.name);
    let _ = writeln!(out, "source:         {}", text(&image.source));
    let _ = writeln!(
        out,
        "kernel:         {} ({})",
        image.kernel_path, image.kernel_format
    );
    if let Some(rel) = &image.kernel_release {
        let _ = writeln!(out, "kernel release: {}", text(rel));
    }
    if let Some(initrd) = &image.initrd_path {
        let _ = writeln!(out, "initrd:         {initrd}");
    }
    if let Some(rootfs) = &image.rootfs_path {
        let _ = writeln!(out, "rootfs:         {rootfs}");
    }
    if let Some(init) = &image.init {
        let _ = writeln!(out, "init:           {}", text(init));
    }
    if let Some(recipe) = &image.recipe {
        out.push_str(&image_recipe::describe(recipe, &text));
    }
    if let Some(digest) = &image.digest {
        let _ = writeln!(out, "digest:         {}", text(digest));
    }
    if let Some(run) = &image.run {
        let argv: Vec<&str> = run
            .entrypoint
            .iter()
            .chain(&run.cmd)
            .map(String::as_str)
            .collect();
        let _ = writeln!(out, "runs:           {}", text(&argv.join(" ")));
        if let Some(dir) = &run.working_dir {
            let _ = writeln!(out, "working dir:    {}", text(dir));
        }
        for e in &run.env {
            let _ = writeln!(out, "env:            {}", text(e));
        }
    }
    if let Some(warm) = &image.warm {
        let _ = writeln!(
            out,
            "warm state:     {} vCPU, {} MiB, disk {}, {} network, {} ({}; {} on disk)",
            warm.vcpu,
            warm.memory_mib,
            format_bytes(warm.disk_bytes),
            warm.network,
            warm.driver,
            warm.created_at,
            format_bytes(warm.size_bytes)
        );
    }
    let _ = writeln!(out, "size:           {}", format_bytes(image.size_bytes));
    let _ = writeln!(out, "created:        {}", image.created_at);
    out
}

pub async fn warm(layout: &Layout, name: &str, json: bool) -> anyhow::Result<i32> {
    let progress = Renderer::stderr();
    let image = connect::connect(layout)
        .await?
        .warm_image(name, &progress)
        .await?;
    progress.finish();
    if json {
        outln!("{}", serde_json::to_string_pretty(&image)?)?;
    } else if let Some(warm) = &image.warm {
        outln!(
            "image {} is warm: {} vCPU, {} MiB, {} network ({} on disk)",
            image.name,
            warm.vcpu,
            warm.memory_mib,
            warm.network,
            format_bytes(warm.size_bytes)
        )?;
    }
    Ok(0)
}

pub async fn rm(layout: &Layout, names: &[String]) -> anyhow::Result<i32> {
    let client = connect::connect(layout).await?;
    let mut code = 0;
    for name in names {
        match client.remove_image(name).await {
            Ok(image) => outln!("removed image {}", image.name)?,
            Err(e) => {
                print_error(
                    &anyhow::Error::new(e)
                        .context(format!("cannot remove image {}", safe::name(name))),
                );
                code = 1;
            }
        }
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_sources_are_taken_from_here() {
        let cwd = std::path::Path::new("/home/al/src");
        assert_eq!(
            from_here("oci:layout:v1", cwd),
            "oci:/home/al/src/layout:v1"
        );
        assert_eq!(
            from_here("docker-archive:app.tar", cwd),
            "docker-archive:/home/al/src/app.tar"
        );
        assert_eq!(from_here("oci:/abs", cwd), "oci:/abs");
        assert_eq!(from_here("docker://r/app:1", cwd), "docker://r/app:1");
        // Nothing named is not this directory: the daemon says what is missing.
        assert_eq!(from_here("oci:", cwd), "oci:");
        assert_eq!(from_here("docker-archive:", cwd), "docker-archive:");
    }
}
