//! **shares** — a shared host directory (virtio-fs), the same directory copied in at boot
//! (`-v …:copy`, an ext4 drive), and the guest's own disk, under the same guest: `find | wc -l` over a tree of 10,000 small files, and a sequential read of
//! one 256 MiB file. The guest's page cache is dropped before every measurement; the host's
//! is warm on both sides (the shared files were just written, and so was the disk's image).
//! Times come from the guest's own clock (`/proc/uptime`, 10 ms steps), so the exec
//! round trip is not counted. The copy's price is paid at every start: `mkfs.ext4 -d` of the
//! directory, timed here on the host with the daemon's flags. 9p is not measured: Debian's
//! cloud kernel has none.

use anyhow::{Context, bail};

use super::guests::median;
use crate::{Env, stderr, stdout};

pub const RUNS: usize = 3;
const DIRS: usize = 100;
const FILES_PER_DIR: usize = 100;
const BIG_MIB: usize = 256;

/// Seconds `script` takes in the guest of VM `vm`, caches dropped first.
fn guest_seconds(env: &Env, vm: &str, script: &str) -> anyhow::Result<f64> {
    let timed = format!(
        "sync; echo 3 > /proc/sys/vm/drop_caches; read a _ < /proc/uptime; {script} >/dev/null; \
         read b _ < /proc/uptime; echo $a $b"
    );
    let out = env.run(["vm", "exec", vm, "--", "sh", "-c", &timed]);
    if !out.status.success() {
        bail!("{script:?} failed in the guest: {}", stderr(&out));
    }
    let text = stdout(&out);
    let mut it = text.split_whitespace().map(str::parse::<f64>);
    match (it.next(), it.next()) {
        (Some(Ok(a)), Some(Ok(b))) => Ok(b - a),
        _ => bail!("no timing from the guest: {text:?}"),
    }
}

pub fn measure() -> anyhow::Result<()> {
    let env = Env::new()?;
    let host = tempfile::Builder::new()
        .prefix("bgbench")
        .tempdir_in("/tmp")?;
    let tree = host.path().join("tree");
    for d in 0..DIRS {
        let dir = tree.join(format!("d{d:03}"));
        std::fs::create_dir_all(&dir)?;
        for f in 0..FILES_PER_DIR {
            std::fs::write(dir.join(format!("f{f:03}.txt")), format!("file {d} {f}\n"))?;
        }
    }
    let big: Vec<u8> = (0..BIG_MIB << 20).map(|i| (i % 251) as u8).collect();
    std::fs::write(host.path().join("big.bin"), &big)?;
    drop(big);
    let mkfs = copy_in_seconds(host.path())?;
    let share = format!("{}:/src", host.path().display());
    let copied = format!("{}:/copy:ro,copy", host.path().display());
    let out = env.run([
        "vm", "run", "-d", "--name", "fsb", "--memory", "1g", "--disk", "2g", "-v", &share, "-v",
        &copied,
    ]);
    if !out.status.success() {
        bail!(
            "cannot boot the bench VM: {}\n{}",
            stderr(&out),
            env.diagnostics()
        );
    }
    // The same files on the guest's own disk (the work disk, ext4 on virtio-blk).
    let copy = env.run([
        "vm",
        "exec",
        "fsb",
        "--",
        "sh",
        "-c",
        "cp -a /src/tree /work/tree && cp /src/big.bin /work/big.bin && sync",
    ]);
    if !copy.status.success() {
        bail!("cannot copy the files to the guest disk: {}", stderr(&copy));
    }
    let count = env.ok([
        "vm",
        "exec",
        "fsb",
        "--",
        "sh",
        "-c",
        "find /src/tree | wc -l",
    ]);
    let expected = DIRS * FILES_PER_DIR + DIRS + 1;
    if count.trim().parse::<usize>().context("find's count")? != expected {
        bail!(
            "find saw {} entries over virtio-fs, expected {expected}",
            count.trim()
        );
    }
    let (mut fs_find, mut disk_find, mut fs_read, mut disk_read) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut cp_find, mut cp_read) = (Vec::new(), Vec::new());
    for i in 0..RUNS {
        fs_find.push(guest_seconds(&env, "fsb", "find /src/tree | wc -l")?);
        cp_find.push(guest_seconds(&env, "fsb", "find /copy/tree | wc -l")?);
        disk_find.push(guest_seconds(&env, "fsb", "find /work/tree | wc -l")?);
        fs_read.push(guest_seconds(&env, "fsb", "cat /src/big.bin")?);
        cp_read.push(guest_seconds(&env, "fsb", "cat /copy/big.bin")?);
        disk_read.push(guest_seconds(&env, "fsb", "cat /work/big.bin")?);
        println!(
            "run {}: find virtio-fs {:>6.2} s  copy {:>6.2} s  disk {:>6.2} s   read 256 MiB \
             virtio-fs {:>6.2} s  copy {:>6.2} s  disk {:>6.2} s",
            i + 1,
            fs_find[i],
            cp_find[i],
            disk_find[i],
            fs_read[i],
            cp_read[i],
            disk_read[i]
        );
    }
    let (ff, df) = (median(&mut fs_find), median(&mut disk_find));
    let (fr, dr) = (median(&mut fs_read), median(&mut disk_read));
    let (cf, cr) = (median(&mut cp_find), median(&mut cp_read));
    let mibs = |s: f64| BIG_MIB as f64 / s.max(0.01);
    println!(
        "median find | wc -l, {expected} entries: virtio-fs {ff:.2} s, guest disk {df:.2} s, ratio {:.2}",
        ff / df.max(0.01)
    );
    println!(
        "median sequential read, {BIG_MIB} MiB: virtio-fs {:.0} MiB/s, guest disk {:.0} MiB/s, ratio {:.2}",
        mibs(fr),
        mibs(dr),
        fr / dr.max(0.01)
    );
    println!(
        "copy-in: find {cf:.2} s (ratio to disk {:.2}), read {:.0} MiB/s (ratio to disk {:.2}); \
         paid at every start: mkfs.ext4 -d of the {} MiB tree {mkfs:.2} s",
        cf / df.max(0.01),
        mibs(cr),
        cr / dr.max(0.01),
        BIG_MIB + 1
    );
    println!("9p: not measured (Debian's cloud kernel has no 9p)");
    let _ = env.run(["vm", "rm", "-f", "fsb"]);
    Ok(())
}

/// Seconds `mkfs.ext4 -d` takes to copy `dir` into a fresh sparse image, with the flags the
/// daemon uses for a copy-in share (median of [`RUNS`]).
fn copy_in_seconds(dir: &std::path::Path) -> anyhow::Result<f64> {
    let scratch = tempfile::Builder::new()
        .prefix("bgbench")
        .tempdir_in("/tmp")?;
    let mut times = Vec::new();
    for i in 0..RUNS {
        let image = scratch.path().join(format!("copy{i}.ext4"));
        std::fs::File::create(&image)?.set_len(2 << 30)?;
        let t0 = std::time::Instant::now();
        let out = std::process::Command::new("mkfs.ext4")
            .args(["-q", "-F", "-L", "bangercp0", "-m", "0", "-E"])
            .arg("lazy_itable_init=0,lazy_journal_init=0,nodiscard")
            .arg("-d")
            .arg(dir)
            .arg(&image)
            .output()
            .context("running mkfs.ext4 (e2fsprogs)")?;
        if !out.status.success() {
            bail!(
                "mkfs.ext4 -d failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        times.push(t0.elapsed().as_secs_f64());
        std::fs::remove_file(&image)?;
    }
    Ok(median(&mut times))
}
