//! The fake Firecracker (a test double of the real API, whose "guest" is the release
//! `banger-agent` run on the host) as an installation's VMM, for the Firecracker tests.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::bail;

use crate::{Env, banger_bin, install_executable, workspace_root};

impl Env {
    /// Run this installation's VMs under the fake Firecracker (a test double of the real
    /// API, whose "guest" is the release `banger-agent` run on the host) impersonating
    /// release `version`: an executable named `firecracker` that starts the fake, and a
    /// config selecting it with `vmm = "firecracker"`. Returns the executable's path.
    pub fn use_fake_firecracker(&self, version: &str) -> anyhow::Result<PathBuf> {
        let dir = self.root.path().join("fc");
        std::fs::create_dir_all(&dir)?;
        // A root daemon jails Firecracker: its jail binds this directory and no build tree,
        // and it runs as a per-VM uid. So the fake and its guest's agent are linked here,
        // where that uid may enter.
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
        let fake = link_into(&dir, &fake_firecracker_bin()?)?;
        let agent = link_into(&dir, &self.bin.with_file_name("banger-agent"))?;
        let wrapper = dir.join("firecracker");
        let source = dir.join(".firecracker.src");
        std::fs::write(
            &source,
            format!(
                "#!/bin/sh\nexport FAKE_FIRECRACKER_VERSION='{version}' \
                 FAKE_FIRECRACKER_AGENT='{}'\nexec '{}' \"$@\"\n",
                agent.display(),
                fake.display()
            ),
        )?;
        install_executable(&source, &wrapper)?;
        self.write_config(&format!(
            "vmm = \"firecracker\"\nfirecracker_bin = \"{}\"\n",
            wrapper.display()
        ))?;
        Ok(wrapper)
    }

    /// A fresh installation ([`Env::new`]) whose VMs run under the fake Firecracker
    /// impersonating release `version` ([`Env::use_fake_firecracker`]): the Firecracker
    /// tests' starting point. Panics saying which step failed.
    pub fn with_fake_firecracker(version: &str) -> Env {
        let env = Env::new().unwrap_or_else(|e| panic!("cannot set up an e2e environment: {e:#}"));
        env.use_fake_firecracker(version)
            .unwrap_or_else(|e| panic!("cannot set up the fake Firecracker: {e:#}"));
        env
    }
}

/// `binary` hard-linked into `dir` (copied by cp(1) across file systems).
fn link_into(dir: &Path, binary: &Path) -> anyhow::Result<PathBuf> {
    let name = binary
        .file_name()
        .ok_or_else(|| anyhow::anyhow!("{} names no file", binary.display()))?;
    let to = dir.join(name);
    // A second call replaces the link (unlinking never disturbs a running copy).
    match std::fs::remove_file(&to) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
        _ => {}
    }
    if std::fs::hard_link(binary, &to).is_err() {
        let status = Command::new("cp").arg(binary).arg(&to).status()?;
        if !status.success() {
            bail!("cp {} {} failed", binary.display(), to.display());
        }
    }
    Ok(to)
}

/// The fake Firecracker binary (a test double), beside the binaries under test: `make build`
/// builds it with them (one cargo invocation, so dependencies are shared). When it is
/// missing it is built here.
pub fn fake_firecracker_bin() -> anyhow::Result<PathBuf> {
    static BUILT: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let beside = banger_bin().with_file_name("fake-firecracker");
            if beside.is_file() {
                return Ok(beside);
            }
            let out = Command::new(env!("CARGO"))
                .args([
                    "build",
                    "--release",
                    "--quiet",
                    "-p",
                    "banger-fake-firecracker",
                ])
                .current_dir(workspace_root())
                .output()
                .map_err(|e| format!("cannot run cargo to build the fake Firecracker: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "cargo build -p banger-fake-firecracker failed:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            let bin = workspace_root().join("target/release/fake-firecracker");
            if bin.is_file() {
                Ok(bin)
            } else {
                Err(format!("{} was not built; run `make build`", bin.display()))
            }
        })
        .clone()
        .map_err(anyhow::Error::msg)
}
