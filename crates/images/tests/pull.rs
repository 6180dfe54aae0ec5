//! Catalog downloads served from 127.0.0.1: verified before anything is laid out,
//! resumed with a ranged GET after an interruption, refused when the bytes are wrong.

use crate::support;

use banger_images::imagecat::{Artifact, DownloadSpec};
use banger_images::pull::{PullOptions, pull};
use support::http::Server;

fn sha(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

struct Fixture {
    server: Server,
    root: tempfile::TempDir,
    bzimage: Vec<u8>,
    elf: Vec<u8>,
    rootfs: Vec<u8>,
}

fn fixture() -> Fixture {
    let elf = support::fake_vmlinux(true, 128 << 10);
    let bzimage = support::bzimage(&support::gzip(&elf), elf.len(), 27);
    let rootfs: Vec<u8> = (0..(3 << 20)).map(|i| (i * 7 % 251) as u8).collect();
    let server = Server::start();
    server.put("/k/vmlinuz", bzimage.clone());
    server.put("/r/rootfs.ext4", rootfs.clone());
    Fixture {
        server,
        root: tempfile::tempdir().unwrap(),
        bzimage,
        elf,
        rootfs,
    }
}

impl Fixture {
    fn spec(&self, rootfs_sha: &str) -> DownloadSpec {
        DownloadSpec {
            kernel: Artifact {
                url: format!("{}/k/vmlinuz", self.server.url()),
                sha256: sha(&self.bzimage),
            },
            initrd: None,
            rootfs: Some(Artifact {
                url: format!("{}/r/rootfs.ext4", self.server.url()),
                sha256: rootfs_sha.to_string(),
            }),
        }
    }

    fn options(&self, name: &str, spec: DownloadSpec) -> PullOptions<'static> {
        PullOptions::new(
            name.to_string(),
            spec,
            self.root.path().join("images").join(name),
            self.root.path().join("cache"),
            support::static_busybox(),
        )
    }
}

#[test]
fn a_pull_verifies_extracts_and_lays_out_the_image() {
    let f = fixture();
    let image = pull(&f.options("dl", f.spec(&sha(&f.rootfs)))).unwrap();
    assert!(image.has_pvh);
    assert_eq!(std::fs::read(&image.kernel_path).unwrap(), f.elf);
    assert_eq!(
        std::fs::read(image.rootfs_path.as_ref().unwrap()).unwrap(),
        f.rootfs
    );
    assert_eq!(image.init, "agent");
    // A second pull is served from the cache.
    let hits = f.server.total_hits();
    pull(&f.options("dl2", f.spec(&sha(&f.rootfs)))).unwrap();
    assert_eq!(
        f.server.total_hits(),
        hits,
        "cached files were fetched again"
    );
}

#[test]
fn wrong_bytes_are_refused_and_nothing_is_laid_out() {
    let f = fixture();
    let wrong = sha(b"something else");
    let err = pull(&f.options("bad", f.spec(&wrong)))
        .unwrap_err()
        .to_string();
    assert!(err.contains("rootfs.ext4") && err.contains(&wrong), "{err}");
    let images = f.root.path().join("images");
    let left: Vec<_> = std::fs::read_dir(&images)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn an_interrupted_download_resumes_with_a_range() {
    let f = fixture();
    let digest = sha(&f.rootfs);
    // A first attempt got 1 MiB before it was cut off.
    let cache = f.root.path().join("cache/sha256");
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::write(
        cache.join(format!(".resume-{digest}")),
        &f.rootfs[..1 << 20],
    )
    .unwrap();
    // The server's first MiB differs: only a ranged GET can produce the right file.
    let mut served = f.rootfs.clone();
    served[..1 << 20].fill(0xEE);
    f.server.put("/r/rootfs.ext4", served);
    let image = pull(&f.options("resumed", f.spec(&digest))).unwrap();
    assert_eq!(
        std::fs::read(image.rootfs_path.as_ref().unwrap()).unwrap(),
        f.rootfs
    );
    assert!(!cache.join(format!(".resume-{digest}")).exists());
}
