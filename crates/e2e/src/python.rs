//! A Python environment for tests that drive the API from generated clients: a venv
//! under `target/` with a pinned `openapi-python-client` from PyPI, made once per
//! machine (concurrent test binaries serialise on a lock file).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use nix::fcntl::{Flock, FlockArg};

use crate::workspace_root;

/// The generator, pinned so a new release cannot change what the tests see.
pub const GENERATOR: &str = "openapi-python-client==0.29.1";

/// The venv's directory, set up with [`GENERATOR`] (and its dependency httpx).
pub fn venv() -> anyhow::Result<PathBuf> {
    let dir = workspace_root().join("target/openapi-venv");
    std::fs::create_dir_all(workspace_root().join("target"))?;
    let lock_file = File::create(workspace_root().join("target/openapi-venv.lock"))?;
    let _lock = Flock::lock(lock_file, FlockArg::LockExclusive)
        .map_err(|(_, e)| anyhow::anyhow!("cannot lock the test venv: {e}"))?;
    let stamp = dir.join(".banger-installed");
    // A venv bakes its own absolute path into its scripts: one copied or moved with
    // `target/` does not run, so the stamp names the directory too.
    let installed = format!("{GENERATOR} in {}", dir.display());
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(installed.as_str()) {
        return Ok(dir);
    }
    let _ = std::fs::remove_dir_all(&dir);
    run(
        Command::new("python3").args(["-m", "venv"]).arg(&dir),
        "create a Python venv (python3 -m venv); install python3 and python3-venv \
         (`scripts/install-deps` does)",
    )?;
    run(
        Command::new(dir.join("bin/pip")).args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            GENERATOR,
        ]),
        "install the OpenAPI client generator from PyPI (is pypi.org reachable?)",
    )?;
    std::fs::write(&stamp, installed)?;
    Ok(dir)
}

/// Generate a Python package `package` from the OpenAPI document `spec` into
/// `out/<package>`; returns `out`, the directory to put on `PYTHONPATH`.
pub fn generate_client(spec: &Path, package: &str, out: &Path) -> anyhow::Result<PathBuf> {
    let venv = venv()?;
    let config = out.join("generator.yaml");
    std::fs::create_dir_all(out)?;
    std::fs::write(&config, format!("package_name_override: {package}\n"))?;
    run(
        Command::new(venv.join("bin/openapi-python-client"))
            .arg("generate")
            .arg("--path")
            .arg(spec)
            .arg("--config")
            .arg(&config)
            .args(["--meta", "none", "--output-path"])
            .arg(out.join(package)),
        "generate a Python client from the OpenAPI document",
    )?;
    Ok(out.to_path_buf())
}

fn run(cmd: &mut Command, what: &str) -> anyhow::Result<()> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot {what}: {cmd:?} did not start"))?;
    if !out.status.success() {
        bail!(
            "cannot {what}: {cmd:?} failed ({})\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}
