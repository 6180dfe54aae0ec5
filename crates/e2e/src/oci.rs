//! OCI fixtures made by real tools: an image layout built with `umoci` (layers with a
//! whiteout and an opaque directory, the last one a tar made by GNU tar and added with
//! `umoci raw add-layer`), copied by `skopeo` into a `docker-archive` or pushed to a
//! `docker-registry` this module starts on 127.0.0.1.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Run a tool, failing loudly (with the package to install) when it is missing.
pub fn tool(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| {
            format!(
                "cannot run {program}: the OCI tests need umoci, skopeo, docker-registry and \
                 busybox-static (scripts/install-deps installs them)"
            )
        })?;
    if !out.status.success() {
        bail!(
            "{program} {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}

/// What the fixture image's Cmd prints when the layers were applied right.
pub const EXPECTED_OUTPUT: [&str; 3] = [
    "hello from oci in /data as 1000:1000 (app, /home/app)",
    "c",
    "whiteout-ok",
];

/// Build `dir/layout` with image `tag`: busybox (layer 1), `data/old.txt` deleted and
/// `data/new.txt` added (layer 2: a whiteout), `cache/` made opaque with a new file
/// (layer 3), and a Cmd, Env, WorkingDir and User (`app`, uid 1000) that show all of it.
pub fn build_layout(dir: &Path, tag: &str) -> anyhow::Result<PathBuf> {
    let layout = dir.join("layout");
    let image = format!("{}:{tag}", s(&layout));
    let bundle = dir.join("bundle");
    let root = bundle.join("rootfs");
    tool("umoci", &["init", "--layout", s(&layout)])?;
    tool("umoci", &["new", "--image", &image])?;
    tool("umoci", &["unpack", "--image", &image, s(&bundle)])?;
    for d in ["bin", "etc", "data", "cache"] {
        std::fs::create_dir_all(root.join(d))?;
    }
    std::fs::copy(busybox()?, root.join("bin/busybox"))?;
    for applet in [
        "sh", "ls", "cat", "echo", "test", "pwd", "sleep", "uname", "id",
    ] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet))?;
    }
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n",
    )?;
    std::fs::write(root.join("etc/group"), "root:x:0:\napp:x:1000:\n")?;
    std::fs::write(root.join("data/old.txt"), "old\n")?;
    std::fs::write(root.join("cache/a"), "a\n")?;
    std::fs::write(root.join("cache/b"), "b\n")?;
    tool("umoci", &["repack", "--image", &image, s(&bundle)])?;

    std::fs::remove_dir_all(&bundle)?;
    tool("umoci", &["unpack", "--image", &image, s(&bundle)])?;
    std::fs::remove_file(root.join("data/old.txt"))?;
    std::fs::write(root.join("data/new.txt"), "new\n")?;
    tool("umoci", &["repack", "--image", &image, s(&bundle)])?;

    let l3 = dir.join("l3");
    std::fs::create_dir_all(l3.join("cache"))?;
    std::fs::write(l3.join("cache/.wh..wh..opq"), "")?;
    std::fs::write(l3.join("cache/c"), "c\n")?;
    let tar = dir.join("layer3.tar");
    tool("tar", &["-C", s(&l3), "-cf", s(&tar), "cache"])?;
    tool("umoci", &["raw", "add-layer", "--image", &image, s(&tar)])?;
    tool(
        "umoci",
        &[
            "config",
            "--image",
            &image,
            "--config.cmd",
            "/bin/sh",
            "--config.cmd",
            "-c",
            "--config.cmd",
            "echo hello from $GREETING in $(pwd) as $(id -u):$(id -g) \\($USER, $HOME\\); ls /cache; test ! -e /data/old.txt && echo whiteout-ok",
            "--config.env",
            "GREETING=oci",
            "--config.workingdir",
            "/data",
            "--config.user",
            "app",
        ],
    )?;
    std::fs::remove_dir_all(&bundle)?;
    Ok(layout)
}

/// Add a layer holding `files` (name, content) on top of `from_tag` as `to_tag`.
pub fn add_layer(
    layout: &Path,
    from_tag: &str,
    to_tag: &str,
    files: &[(&str, &[u8])],
) -> anyhow::Result<()> {
    let dir = layout.parent().context("layout has a parent")?;
    let from = format!("{}:{from_tag}", s(layout));
    let to = format!("{}:{to_tag}", s(layout));
    let bundle = dir.join(format!("bundle-{to_tag}"));
    tool("umoci", &["unpack", "--image", &from, s(&bundle)])?;
    for (name, content) in files {
        let path = bundle.join("rootfs").join(name);
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p)?;
        }
        std::fs::write(path, content)?;
    }
    tool("umoci", &["repack", "--image", &to, s(&bundle)])?;
    std::fs::remove_dir_all(&bundle)?;
    Ok(())
}

/// Add a hand-made (hostile) tar as a layer of `tag`.
pub fn add_raw_layer(layout: &Path, tag: &str, tar: &Path) -> anyhow::Result<()> {
    let image = format!("{}:{tag}", s(layout));
    tool("umoci", &["raw", "add-layer", "--image", &image, s(tar)])?;
    Ok(())
}

fn busybox() -> anyhow::Result<PathBuf> {
    for p in ["/bin/busybox", "/usr/bin/busybox"] {
        if Path::new(p).is_file() {
            return Ok(PathBuf::from(p));
        }
    }
    bail!("busybox is missing: install busybox-static (scripts/install-deps)")
}

/// A `docker-registry` on 127.0.0.1, stopped on drop.
pub struct Registry {
    child: Child,
    pub addr: String,
    _dir: tempfile::TempDir,
}

impl Registry {
    pub fn start() -> anyhow::Result<Registry> {
        let dir = tempfile::tempdir()?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr = format!("127.0.0.1:{port}");
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
                dir.path().join("data").display()
            ),
        )?;
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start docker-registry (install the docker-registry package)")?;
        let mut registry = Registry {
            child,
            addr,
            _dir: dir,
        };
        // Ready when /v2/ answers.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(mut conn) = std::net::TcpStream::connect(&registry.addr) {
                use std::io::{Read, Write};
                let _ = write!(conn, "GET /v2/ HTTP/1.0\r\nHost: {}\r\n\r\n", registry.addr);
                let mut reply = String::new();
                let _ = conn.read_to_string(&mut reply);
                if reply.starts_with("HTTP/1.") && reply.contains(" 200 ") {
                    return Ok(registry);
                }
            }
            if let Some(status) = registry.child.try_wait()? {
                bail!("docker-registry exited at start ({status})");
            }
            if Instant::now() > deadline {
                bail!(
                    "docker-registry did not answer on {} within 30 s",
                    registry.addr
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Push `oci:LAYOUT:TAG` as `REPO:TAG` with skopeo.
    pub fn push(&self, layout: &Path, tag: &str, repo: &str) -> anyhow::Result<String> {
        let dest = format!("docker://{}/{repo}:{tag}", self.addr);
        tool(
            "skopeo",
            &[
                "copy",
                "--quiet",
                "--dest-tls-verify=false",
                &format!("oci:{}:{tag}", s(layout)),
                &dest,
            ],
        )?;
        Ok(dest)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `skopeo copy oci:LAYOUT:TAG docker-archive:FILE:REPO:TAG`.
pub fn docker_archive(layout: &Path, tag: &str, file: &Path) -> anyhow::Result<()> {
    tool(
        "skopeo",
        &[
            "copy",
            "--quiet",
            &format!("oci:{}:{tag}", s(layout)),
            &format!("docker-archive:{}:banger/test:{tag}", s(file)),
        ],
    )?;
    Ok(())
}
