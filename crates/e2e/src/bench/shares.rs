//! **shares** — a shared host directory (virtio-fs) against the guest's own disk, under the
//! same guest: `find | wc -l` over a tree of 10,000 small files, and a sequential read of
//! one 256 MiB file. The guest's page cache is dropped before every measurement; the host's
//! is warm on both sides (the shared files were just written, and so was the disk's image).
//! Times come from the guest's own clock (`/proc/uptime`, 10 ms steps), so the exec
//! round trip is not counted. 9p is not measured: Debian's cloud kernel has none.

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
    let share = format!("{}:/src", host.path().display());
    let out = env.run([
        "vm", "run", "-d", "--name", "fsb", "--memory", "1g", "--disk", "2g", "-v", &share,
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
    for i in 0..RUNS {
        fs_find.push(guest_seconds(&env, "fsb", "find /src/tree | wc -l")?);
        disk_find.push(guest_seconds(&env, "fsb", "find /work/tree | wc -l")?);
        fs_read.push(guest_seconds(&env, "fsb", "cat /src/big.bin")?);
        disk_read.push(guest_seconds(&env, "fsb", "cat /work/big.bin")?);
        println!(
            "run {}: find virtio-fs {:>6.2} s  disk {:>6.2} s   read 256 MiB virtio-fs {:>6.2} s  disk {:>6.2} s",
            i + 1,
            fs_find[i],
            disk_find[i],
            fs_read[i],
            disk_read[i]
        );
    }
    let (ff, df) = (median(&mut fs_find), median(&mut disk_find));
    let (fr, dr) = (median(&mut fs_read), median(&mut disk_read));
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
    println!("9p: not measured (Debian's cloud kernel has no 9p)");
    let _ = env.run(["vm", "rm", "-f", "fsb"]);
    Ok(())
}
