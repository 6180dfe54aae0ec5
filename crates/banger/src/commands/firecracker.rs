//! `sudo banger firecracker install`.

use anyhow::Context;
use banger_firecracker::SemVer;
use banger_firecracker::install::{InstallRequest, install as install_release};
use banger_paths::Layout;
use banger_system::RealRunner;

use crate::cli::FirecrackerInstallArgs;
use crate::outln;

pub fn install(layout: &Layout, args: FirecrackerInstallArgs) -> anyhow::Result<i32> {
    let version_text = args
        .version
        .unwrap_or_else(|| banger_firecracker::KNOWN_TESTED.to_owned());
    let version =
        SemVer::parse(&version_text).with_context(|| format!("--version {version_text:?}"))?;
    let base_url = match args.url {
        Some(url) => url,
        None => {
            banger_config::load(&layout.config_file())?
                .firecracker_release_url_resolved()
                .value
        }
    };
    let req = InstallRequest {
        version,
        base_url,
        bin_dir: args.bin_dir,
        arch: std::env::consts::ARCH.to_owned(),
    };
    let installed = install_release(&req, &RealRunner, &mut |line| crate::errln!("{line}"))?;
    outln!(
        "Firecracker {} installed: {} and {}",
        installed.version,
        installed.firecracker.display(),
        installed.jailer.display()
    )?;
    if banger_firecracker::support(&installed.version) == banger_firecracker::Support::Newer {
        outln!(
            "note: banger is tested with v{}; `banger doctor` will warn about this release",
            banger_firecracker::KNOWN_TESTED
        )?;
    }
    Ok(0)
}
