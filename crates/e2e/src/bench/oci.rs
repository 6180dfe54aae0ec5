//! P3: OCI import of a multi-layer, Debian-sized image (a base layer of real Debian
//! binaries from this host's /usr, plus two smaller layers) against `umoci unpack` +
//! `mkfs.ext4 -d` of the same image, and the re-import of a second image sharing its base
//! layers against the first import. Everything is built by real tools (umoci) in
//! `target/bench-oci` and removed afterwards.
//!
//! The bench takes [`SAMPLES`] samples of each side (`BANGER_BENCH_OCI_SAMPLES=N` for
//! another count), interleaved so that a shared host's load weighs on both sides alike:
//! every round imports the first image into an empty layer cache, re-imports the second
//! into that cache, and runs the baseline — the baseline first in odd rounds, last in even
//! ones. It prints each round (with the load average when it began), the medians and the
//! ratio of the medians, then where the median import's time went (the importer's notes).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use banger_images::oci::{self, ImageRef, ImportOptions};
use banger_system::RealRunner;
use banger_system::progress::{Progress, ProgressEvent};

use crate::oci::tool;

/// Samples of each side when `BANGER_BENCH_OCI_SAMPLES` is unset: the bench then takes
/// 1.5-3 minutes in all on a shared 2-core host, building the images included.
pub const SAMPLES: usize = 3;
/// The environment variable that changes [`SAMPLES`].
pub const SAMPLES_VAR: &str = "BANGER_BENCH_OCI_SAMPLES";

/// One round: a cold import, the re-import on its cache, and the baseline.
pub struct Sample {
    pub import: Duration,
    pub baseline: Duration,
    pub reimport: Duration,
    /// The baseline's `umoci unpack` (the rest is `mkfs.ext4 -d`).
    pub umoci: Duration,
    /// The first figure of /proc/loadavg when the round began.
    pub load: String,
    /// The importer's own closing notes (where the time went), first and re-import.
    pub notes: Vec<String>,
}

pub struct Figures {
    pub samples: Vec<Sample>,
    pub files: u64,
    pub used_mib: u64,
}

/// Keeps the importer's notes.
#[derive(Default)]
struct Notes(std::sync::Mutex<Vec<String>>);

impl Notes {
    fn take(&self) -> Vec<String> {
        self.0
            .lock()
            .map(|mut n| std::mem::take(&mut *n))
            .unwrap_or_default()
    }
}

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

/// The number of samples: [`SAMPLES`], or `BANGER_BENCH_OCI_SAMPLES` when set.
pub fn samples_from_env() -> anyhow::Result<usize> {
    super::samples_from_env(SAMPLES_VAR, SAMPLES)
}

impl Figures {
    pub fn print(&self) {
        println!(
            "image: 3 layers, {} files, {} MiB unpacked; {} interleaved samples of each side",
            self.files,
            self.used_mib,
            self.samples.len()
        );
        for (i, s) in self.samples.iter().enumerate() {
            println!(
                "sample {} (load {}): import {:>7.0} ms   baseline {:>7.0} ms (ratio {:.2})   re-import {:>6.0} ms ({:.1}x)",
                i + 1,
                s.load,
                ms(s.import),
                ms(s.baseline),
                ratio(s.import, s.baseline),
                ms(s.reimport),
                ratio(s.import, s.reimport),
            );
        }
        let import = median(self.samples.iter().map(|s| s.import));
        let baseline = median(self.samples.iter().map(|s| s.baseline));
        let reimport = median(self.samples.iter().map(|s| s.reimport));
        println!("median banger import (cold cache) : {:>8.0} ms", ms(import));
        println!(
            "median umoci unpack + mkfs.ext4 -d: {:>8.0} ms   ratio of medians {:.2} (goal <= 1.0)",
            ms(baseline),
            ratio(import, baseline)
        );
        println!(
            "median re-import, same base       : {:>8.0} ms   {:.1}x faster (goal >= 5x)",
            ms(reimport),
            ratio(import, reimport)
        );
        // The phases of the sample whose import is the median one.
        if let Some((i, s)) = self
            .samples
            .iter()
            .enumerate()
            .find(|(_, s)| s.import == import)
        {
            println!("where the time went (sample {}):", i + 1);
            for note in &s.notes {
                println!("  {note}");
            }
            println!(
                "  baseline of that sample: umoci unpack {:.1} s, mkfs.ext4 -d {:.1} s",
                s.umoci.as_secs_f64(),
                (s.baseline - s.umoci).as_secs_f64()
            );
        }
    }
}

/// Build the two images, then take `samples` interleaved samples of each side.
/// `kernel_dir` is a built image to pair with, `agent` the static agent.
pub fn measure(
    work: &Path,
    kernel_dir: &Path,
    agent: &Path,
    samples: usize,
) -> anyhow::Result<Figures> {
    let _ = std::fs::remove_dir_all(work);
    std::fs::create_dir_all(work)?;
    let layout = work.join("layout");
    build_images(work, &layout)?;

    let notes = Notes::default();
    let import = |tag: &str, cache: &Path, out: PathBuf| -> anyhow::Result<Duration> {
        let reference = ImageRef::parse(&format!("oci:{}:{tag}", s(&layout)?))?;
        let name = out
            .file_name()
            .and_then(|n| n.to_str())
            .context("image name")?
            .to_string();
        let mut opts = ImportOptions::new(
            reference,
            out,
            cache.to_path_buf(),
            agent.to_path_buf(),
            kernel_dir.to_path_buf(),
            &RealRunner,
        );
        opts.image_name = name;
        opts.progress = &notes;
        let t = Instant::now();
        oci::import(&opts)?;
        Ok(t.elapsed())
    };

    let mut taken = Vec::new();
    let mut usage = (0, 0);
    for round in 0..samples {
        let load = std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|l| l.split_whitespace().next().map(str::to_string))
            .unwrap_or_else(|| "?".to_string());
        let dir = work.join(format!("round{round}"));
        std::fs::create_dir_all(&dir)?;
        let baseline_first = round % 2 == 1;
        let mut base = None;
        if baseline_first {
            base = Some(baseline(&layout, &dir)?);
        }
        let cache = dir.join("cache");
        let first = import("v1", &cache, dir.join("images/first"))?;
        let second = import("v2", &cache, dir.join("images/second"))?;
        let (took, umoci, files, used) = match base {
            Some(b) => b,
            None => baseline(&layout, &dir)?,
        };
        usage = (files, used);
        // Not timed: the next round starts from an empty cache and a free disk.
        remove(&dir)?;
        taken.push(Sample {
            import: first,
            baseline: took,
            reimport: second,
            umoci,
            load,
            notes: notes.take(),
        });
    }
    let _ = std::fs::remove_dir_all(work);
    Ok(Figures {
        samples: taken,
        files: usage.0,
        used_mib: usage.1 >> 20,
    })
}

/// `umoci unpack` of the first image and `mkfs.ext4 -d` of its tree at the import's size,
/// in `dir`: the time, that of `umoci unpack` alone, the file count and the bytes used.
fn baseline(layout: &Path, dir: &Path) -> anyhow::Result<(Duration, Duration, u64, u64)> {
    let t = Instant::now();
    let bundle = dir.join("bundle-v1");
    let image = format!("{}:v1", s(layout)?);
    tool("umoci", &["unpack", "--image", &image, s(&bundle)?])?;
    let umoci = t.elapsed();
    let tree = bundle.join("rootfs");
    let (used, files) = banger_images::ext4::tree_usage(&tree)?;
    let size = banger_images::ext4::image_size(used, banger_images::ext4::DEFAULT_HEADROOM);
    banger_images::ext4::make_image(
        &RealRunner,
        &tree,
        &dir.join("baseline.ext4"),
        size,
        files,
        "root",
        // umoci unpacked as root, owners included: the baseline copies them as is.
        &banger_images::ext4::Owners::AsInTree,
    )?;
    Ok((t.elapsed(), umoci, files, used))
}

/// The OCI layout at `layout`: `v1` and `v2` share a Debian-sized base and a small middle
/// layer, each with its own 8 MiB top layer.
fn build_images(work: &Path, layout: &Path) -> anyhow::Result<()> {
    let image = |tag: &str| -> anyhow::Result<String> { Ok(format!("{}:{tag}", s(layout)?)) };
    let bundle = work.join("bundle");
    tool("umoci", &["init", "--layout", s(layout)?])?;
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
        layout,
        "base",
        "mid",
        &[("etc/app.conf", b"mode=bench\n".to_vec())],
    )?;
    // Two images sharing base + mid, each with its own top layer.
    let top = |seed: u8| -> Vec<u8> { (0..(8 << 20)).map(|i: u32| (i as u8) ^ seed).collect() };
    layer(layout, "mid", "v1", &[("opt/app/blob", top(1))])?;
    layer(layout, "mid", "v2", &[("opt/app/blob", top(2))])?;
    Ok(())
}

/// Remove `dir`, which the importer may still be emptying in the background (its
/// scratch tree): an entry that vanished under us is retried, not an error.
fn remove(dir: &Path) -> anyhow::Result<()> {
    let mut last = None;
    for _ in 0..5 {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !dir.exists() => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    Err(last
        .map(anyhow::Error::from)
        .unwrap_or_else(|| anyhow::anyhow!("unknown error")))
    .with_context(|| format!("remove {}", dir.display()))
}

fn s(p: &Path) -> anyhow::Result<&str> {
    p.to_str().context("non-UTF-8 path")
}

fn layer(layout: &Path, from: &str, to: &str, files: &[(&str, Vec<u8>)]) -> anyhow::Result<()> {
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, d)| (*n, d.as_slice())).collect();
    crate::oci::add_layer(layout, from, to, &refs)
}

/// The median (the upper one of an even count), as the other benches take it.
fn median(v: impl Iterator<Item = Duration>) -> Duration {
    let mut v: Vec<Duration> = v.collect();
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Where the bench works.
pub fn work_dir() -> std::path::PathBuf {
    crate::workspace_root().join("target/bench-oci")
}
