//! PID 1 duties: everything a kernel leaves to init before userspace can work.

mod grow_root;
mod hostkey;
pub mod identity;
mod listen;
mod modules;
mod mounts;
pub(crate) mod net;
mod power_button;
pub mod prestart;
pub mod services;
mod shares;
pub mod switch_root;

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use crate::cli::KernelCmdline;
use crate::power::WORK_DIR;
use crate::{clock, log};

pub use modules::MODULE_LIST;

/// How long to wait for the work disk's device node to appear.
const WORKDISK_WAIT: Duration = Duration::from_secs(5);

/// Boot milestones reached by [`setup`], for the `Ready` timings.
#[derive(Debug, Default)]
pub struct InitReport {
    pub modules_loaded_us: Option<u64>,
    pub disk_mounted_us: Option<u64>,
    /// Shared directories that could not be mounted (`PATH: reason`).
    pub share_errors: Vec<String>,
}

/// First thing as PID 1: `/dev` (so there is a console to talk to), stdio on the console,
/// `/proc` and `/sys`.
pub fn early() {
    mounts::mount_early();
    mounts::console_on_stdio();
}

/// The rest of PID 1's setup, driven by the kernel command line. Failures are logged and
/// skipped: a guest with, say, no hostname is still worth serving.
pub fn setup(cmdline: &KernelCmdline) -> InitReport {
    crate::power::configure(cmdline);
    if let Some(device) = switch_root::wanted(cmdline) {
        // The initramfs only brings the root disk up: load its driver, then hand over.
        modules::load_listed(&clock::kernel_release());
        let why = switch_root::switch(cmdline, &device);
        log!("fatal: cannot start from the root disk: {why}");
        crate::power::emergency_poweroff();
    }
    mounts::mount_rest();
    if let Err(err) = nix::sys::reboot::set_cad_enabled(false) {
        log!("disabling reboot on Ctrl-Alt-Del failed: {err}");
    }
    if let Some(name) = cmdline.get("banger.hostname") {
        set_hostname(name);
    }
    if let Err(err) = net::loopback_up() {
        log!("bringing up lo failed: {err}");
    }
    let mut report = InitReport::default();
    if modules::load_listed(&clock::kernel_release()) {
        report.modules_loaded_us = Some(clock::boottime_us());
    }
    if let Some(device) = cmdline.get("banger.workdisk")
        && mount_workdisk(device)
    {
        report.disk_mounted_us = Some(clock::boottime_us());
    }
    // After the work disk (a share may be mounted below /work) and before anything runs.
    report.share_errors = mount_shares(cmdline);
    // After the modules (virtio_net) and before the services, which may listen on it.
    configure_network(cmdline);
    // The lean init of a root disk: the image's few services (sshd), as soon as /work
    // is there for them: sshd's own start-up is the longest step of a root-disk boot.
    let started = services::start_all();
    if started > 0 {
        log!(
            "started {started} service(s) from {}",
            services::SERVICES_FILE
        );
    }
    // After the modules (`button`, `evdev`) and before Ready, so no press is lost.
    power_button::start(|| crate::power::poweroff());
    report
}

/// Under another init (systemd starts the agent as a unit): the work disk is still the
/// agent's to mount, when it runs as root and nothing mounted it yet; and in a banger
/// guest under systemd, the ACPI power button asks systemd to power off (an image without
/// udev gives logind no power switch to watch).
pub fn setup_as_service(cmdline: &KernelCmdline) -> InitReport {
    let mut report = InitReport::default();
    crate::power::configure(cmdline);
    // SAFETY: geteuid has no memory effects.
    let root = unsafe { libc::geteuid() } == 0;
    if root && cmdline.get("banger.vm").is_some() && crate::power::under_systemd() {
        power_button::start(|| {
            if let Err(e) = crate::power::ask_init_to_power_off() {
                log!("power button: {e}");
            }
        });
    }
    let mounted = std::fs::read_to_string("/proc/self/mounts")
        .map(|m| {
            m.lines()
                .any(|l| l.split_whitespace().nth(1) == Some(WORK_DIR))
        })
        .unwrap_or(true);
    if root
        && !mounted
        && let Some(device) = cmdline.get("banger.workdisk")
        && mount_workdisk(device)
    {
        report.disk_mounted_us = Some(clock::boottime_us());
    }
    if root {
        report.share_errors = mount_shares(cmdline);
        configure_network(cmdline);
    }
    report
}

/// The VM's shared host directories (`banger.shares`), when it has any; the ones that
/// could not be mounted, for the host.
fn mount_shares(cmdline: &KernelCmdline) -> Vec<String> {
    let Some(value) = cmdline.get("banger.shares") else {
        return Vec::new();
    };
    let failed = shares::mount_all(value);
    if failed.is_empty() {
        log!("mounted the shared directories");
    }
    failed
}

/// The guest's interface from `banger.ip`/`banger.gw`/`banger.dns`, when the host gave
/// them (a VM without networking has none). Failures are logged: the agent channel does
/// not need the network.
fn configure_network(cmdline: &KernelCmdline) {
    let parsed = net::GuestNet::from_args(
        cmdline.get("banger.ip"),
        cmdline.get("banger.gw"),
        cmdline.get("banger.dns"),
    );
    match parsed {
        None => {}
        Some(Err(why)) => log!("kernel command line: {why}; the network is not configured"),
        Some(Ok(guest)) => match net::configure(&guest) {
            Ok(name) => log!("{name}: {}/{}", guest.address, guest.prefix),
            Err(err) => log!("configuring the network failed: {err}"),
        },
    }
}

pub(crate) fn set_hostname(name: &str) {
    // SAFETY: the pointer and length describe `name`'s bytes, valid for the call.
    let ret = unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) };
    if ret != 0 {
        log!(
            "setting hostname {name:?} failed: {}",
            std::io::Error::last_os_error()
        );
    }
}

fn mount_workdisk(device: &str) -> bool {
    let started = Instant::now();
    // The disk's driver probes asynchronously after its module loads; no udev to wait on.
    while !Path::new(device).exists() {
        if started.elapsed() > WORKDISK_WAIT {
            log!(
                "work disk {device} did not appear within {WORKDISK_WAIT:?}; /work is not mounted"
            );
            return false;
        }
        thread::sleep(Duration::from_millis(5));
    }
    if let Err(err) = std::fs::create_dir_all(WORK_DIR) {
        log!("creating {WORK_DIR} failed: {err}");
        return false;
    }
    let flags = nix::mount::MsFlags::empty();
    match nix::mount::mount(Some(device), WORK_DIR, Some("ext4"), flags, None::<&str>) {
        Ok(()) => true,
        Err(err) => {
            log!("mounting work disk {device} (ext4) at {WORK_DIR} failed: {err}");
            false
        }
    }
}
