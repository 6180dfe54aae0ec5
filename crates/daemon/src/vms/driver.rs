//! Choosing and constructing this daemon's VMM driver.

use anyhow::Context;
use banger_config::{Config, VmmPreference};
use banger_paths::Layout;
use banger_vmm::{Accel, Driver, DriverPreference, QemuConfig, QemuDriver, Selection};

/// Probe the host, pick the driver the config and host allow, and build it.
pub fn build(layout: &Layout, config: &Config) -> anyhow::Result<(Driver, Selection)> {
    let kvm = banger_vmm::probe_kvm();
    let preference = match config.vmm {
        VmmPreference::Auto => DriverPreference::Auto,
        VmmPreference::Qemu => DriverPreference::Qemu,
        VmmPreference::Firecracker => DriverPreference::Firecracker,
    };
    let firecracker = banger_system::runner::lookup_executable(
        &config.firecracker_bin_resolved().value.to_string_lossy(),
    );
    let qemu = banger_system::runner::lookup_executable("qemu-system-x86_64");
    let selection =
        banger_vmm::select_driver(preference, &kvm, firecracker.as_deref(), qemu.as_deref())
            .context("no usable VMM on this host (run `banger doctor` for details)")?;
    let qemu_bin = qemu.context("qemu-system-x86_64 not found; install qemu-system-x86")?;
    // microvm under TCG needs the host TSC frequency; measuring it takes a moment,
    // so it is cached per host boot.
    let tsc_khz = match selection.accel {
        Accel::Tcg => Some(
            banger_vmm::tsc_khz_cached(&layout.runtime_dir.join("tsc_khz"))
                .context(
                    "cannot determine the host TSC frequency (needed to boot guests under TCG)",
                )?
                .khz,
        ),
        Accel::Kvm => None,
    };
    let driver = QemuDriver::new(QemuConfig::new(qemu_bin, selection.accel, tsc_khz))?;
    Ok((Driver::Qemu(driver), selection))
}
