//! P3: OCI import of a multi-layer, Debian-sized image (a base layer of real Debian
//! binaries from this host's /usr, plus two smaller layers) against `umoci unpack` +
//! `mkfs.ext4 -d` of the same image, and the re-import of a second image sharing its base
//! layers against the first import. Everything is built by real tools (umoci) in
//! `target/bench-oci` and removed afterwards.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use banger_images::oci::{self, ImageRef, ImportOptions};
use banger_system::RealRunner;
use banger_system::progress::{Progress, ProgressEvent};

use crate::oci::tool;

pub struct Figures {
    pub import: Duration,
    pub baseline: Duration,
    pub reimport: Duration,
    pub files: u64,
    pub used_mib: u64,
    /// The importer's own closing notes (where the time went), first and re-import.
    pub notes: Vec<String>,
}

/// Keeps the importer's notes.
#[derive(Default)]
struct Notes(std::sync::Mutex<Vec<String>>);

impl Progress for Notes {
    fn report(&self, event: ProgressEvent) {
        if let ProgressEvent::Note { message } = event
            && (message.contains(" imported from ")
                || message.contains("from its base: ")
                || message.contains("root filesystem in full: "))
            && let Ok(mut notes) = self.0.lock()
        {
            notes.push(message);
        }
    }
}

impl Figures {
    pub fn print(&self) {
        println!(
            "image: 3 layers, {} files, {} MiB unpacked",
            self.files, self.used_mib
        );
        println!(
            "banger import (cold cache)        : {:>8.0} ms",
            ms(self.import)
        );
        println!(
            "umoci unpack + mkfs.ext4 -d       : {:>8.0} ms   ratio {:.2} (goal <= 1.0)",
            ms(self.baseline),
            self.import.as_secs_f64() / self.baseline.as_secs_f64()
        );
        println!(
            "re-import, same base, new top     : {:>8.0} ms   {:.1}x faster (goal >= 5x)",
            ms(self.reimport),
            self.import.as_secs_f64() / self.reimport.as_secs_f64()
        );
        for note in &self.notes {
            println!("  {note}");
        }
    }
}

fn s(p: &Path) -> anyhow::Result<&str> {
    p.to_str().context("non-UTF-8 path")
}

/// Build the two images, then measure. `kernel_dir` is a built image to pair with,
/// `agent` the static agent.
pub fn measure(work: &Path, kernel_dir: &Path, agent: &Path) -> anyhow::Result<Figures> {
    let _ = std::fs::remove_dir_all(work);
    std::fs::create_dir_all(work)?;
    let layout = work.join("layout");
    let image = |tag: &str| -> anyhow::Result<String> { Ok(format!("{}:{tag}", s(&layout)?)) };
    let bundle = work.join("bundle");
    tool("umoci", &["init", "--layout", s(&layout)?])?;
    tool("umoci", &["new", "--image", &image("base")?])?;
    // Layer 1: Debian binaries and libraries from this host (a Debian-sized base).
    tool(
        "umoci",
        &["unpack", "--image", &image("base")?, s(&bundle)?],
    )?;
    let root = bundle.join("rootfs");
    for dir in ["usr/bin", "usr/lib/python3", "usr/share/perl"] {
        let dest = root.join(dir);
        std::fs::create_dir_all(dest.parent().context("parent")?)?;
        tool("cp", &["-a", &format!("/{dir}"), s(&dest)?])?;
    }
    tool(
        "umoci",
        &["repack", "--image", &image("base")?, s(&bundle)?],
    )?;
    std::fs::remove_dir_all(&bundle)?;
    // Layer 2: configuration on top of the base.
    layer(
        &layout,
        "base",
        "mid",
        &[("etc/app.conf", b"mode=bench\n".to_vec())],
    )?;
    // Two images sharing base + mid, each with its own top layer.
    let top = |seed: u8| -> Vec<u8> { (0..(8 << 20)).map(|i: u32| (i as u8) ^ seed).collect() };
    layer(&layout, "mid", "v1", &[("opt/app/blob", top(1))])?;
    layer(&layout, "mid", "v2", &[("opt/app/blob", top(2))])?;

    let cache = work.join("cache");
    let images = work.join("images");
    std::fs::create_dir_all(&images)?;
    let notes = Notes::default();
    let run = |tag: &str, out: &str| -> anyhow::Result<Duration> {
        let reference = ImageRef::parse(&format!("oci:{}:{tag}", s(&layout)?))?;
        let mut opts = ImportOptions::new(
            reference,
            images.join(out),
            cache.clone(),
            agent.to_path_buf(),
            kernel_dir.to_path_buf(),
            &RealRunner,
        );
        opts.image_name = out.to_string();
        opts.progress = &notes;
        let t = Instant::now();
        oci::import(&opts)?;
        Ok(t.elapsed())
    };
    let import = run("v1", "first")?;
    let reimport = run("v2", "second")?;

    let t = Instant::now();
    let bundle = work.join("bundle-v1");
    tool("umoci", &["unpack", "--image", &image("v1")?, s(&bundle)?])?;
    let tree = bundle.join("rootfs");
    let (used, files) = banger_images::ext4::tree_usage(&tree)?;
    let size = banger_images::ext4::image_size(used, banger_images::ext4::DEFAULT_HEADROOM);
    banger_images::ext4::make_image(
        &RealRunner,
        &tree,
        &work.join("baseline.ext4"),
        size,
        files,
        "root",
        // umoci unpacked as root, owners included: the baseline copies them as is.
        &banger_images::ext4::Owners::AsInTree,
    )?;
    let baseline = t.elapsed();

    let _ = std::fs::remove_dir_all(work);
    Ok(Figures {
        import,
        baseline,
        reimport,
        files,
        used_mib: used >> 20,
        notes: notes.0.into_inner().unwrap_or_default(),
    })
}

fn layer(layout: &Path, from: &str, to: &str, files: &[(&str, Vec<u8>)]) -> anyhow::Result<()> {
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, d)| (*n, d.as_slice())).collect();
    crate::oci::add_layer(layout, from, to, &refs)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Where the bench works.
pub fn work_dir() -> std::path::PathBuf {
    crate::workspace_root().join("target/bench-oci")
}
