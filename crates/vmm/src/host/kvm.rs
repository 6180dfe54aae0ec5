//! Is `/dev/kvm` usable for running ordinary guest kernels?
//!
//! Presence and permissions are not enough: some hosts (ours among them) provide `/dev/kvm`
//! through PVM (`kvm_pvm`, KVM for guests nested inside a cloud VM without hardware
//! virtualisation). A stock guest kernel printed nothing in 60 s under QEMU+KVM there, and
//! Firecracker guests died with `KVM_EXIT_INTERNAL_ERROR`; so a PVM host runs guests under
//! QEMU's TCG emulation instead.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The only KVM API version there has ever been; anything else is not KVM.
pub const KVM_API_VERSION: i32 = 12;

/// `KVM_GET_API_VERSION` = `_IO(KVMIO, 0x00)` with `KVMIO` = 0xAE.
const KVM_GET_API_VERSION: libc::c_ulong = 0xAE00;

/// Vendor modules that provide `/dev/kvm`, in the order they are reported.
const KVM_MODULES: [&str; 3] = ["kvm_pvm", "kvm_intel", "kvm_amd"];

/// What the probe found, with a one-line explanation for humans.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvmStatus {
    /// `/dev/kvm` exists.
    pub device_present: bool,
    /// It opened read-write.
    pub openable: bool,
    /// Why it did not open, when it did not.
    pub open_error: Option<String>,
    /// `KVM_GET_API_VERSION`, when the device opened and answered.
    pub api_version: Option<i32>,
    /// The vendor module providing KVM (`kvm_intel`, `kvm_amd`, `kvm_pvm`), when known.
    pub module: Option<String>,
    /// `/dev/kvm` is PVM: ordinary guest kernels do not run under it.
    pub pvm: bool,
    /// Guests can run with `-accel kvm` (and under Firecracker).
    pub usable_for_guests: bool,
    /// Why KVM cannot be used, alone (without the consequence); `None` when usable.
    pub problem: Option<String>,
    /// The finding and what follows from it, for humans.
    pub reason: String,
}

/// Where the probe looks; tests point these at temp dirs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvmProbeEnv {
    pub dev_kvm: PathBuf,
    /// `/sys/module`: a directory per loaded (or built-in, parameterised) module.
    pub sys_module: PathBuf,
    /// `/proc/modules` (absent on kernels without module support).
    pub proc_modules: PathBuf,
}

impl Default for KvmProbeEnv {
    fn default() -> Self {
        KvmProbeEnv {
            dev_kvm: PathBuf::from("/dev/kvm"),
            sys_module: PathBuf::from("/sys/module"),
            proc_modules: PathBuf::from("/proc/modules"),
        }
    }
}

/// The one ioctl the probe issues, behind a seam so tests can answer it.
pub trait KvmIoctl {
    fn api_version(&self, device: &File) -> io::Result<i32>;
}

/// Issues the real ioctl.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealKvmIoctl;

impl KvmIoctl for RealKvmIoctl {
    fn api_version(&self, device: &File) -> io::Result<i32> {
        // SAFETY: KVM_GET_API_VERSION takes no argument and only returns an int; on a file
        // that is not /dev/kvm the kernel answers ENOTTY.
        let rc = unsafe { libc::ioctl(device.as_raw_fd(), KVM_GET_API_VERSION, 0) };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(rc)
        }
    }
}

/// Probe this host.
pub fn probe_kvm() -> KvmStatus {
    probe_kvm_with(&KvmProbeEnv::default(), &RealKvmIoctl)
}

/// Probe with explicit locations and ioctl.
pub fn probe_kvm_with(env: &KvmProbeEnv, ioctl: &dyn KvmIoctl) -> KvmStatus {
    let module = loaded_kvm_module(env);
    let mut status = KvmStatus {
        device_present: env.dev_kvm.exists(),
        openable: false,
        open_error: None,
        api_version: None,
        pvm: module.as_deref() == Some("kvm_pvm"),
        module,
        usable_for_guests: false,
        problem: None,
        reason: String::new(),
    };
    match find_problem(env, ioctl, &mut status) {
        Err(problem) => {
            status.reason =
                format!("{problem}; guests will run under QEMU with TCG software emulation (slow)");
            status.problem = Some(problem);
        }
        Ok(()) => {
            status.usable_for_guests = true;
            let dev = env.dev_kvm.display();
            status.reason = match &status.module {
                Some(m) => format!("{dev} is usable (KVM API {KVM_API_VERSION}, {m})"),
                None => format!("{dev} is usable (KVM API {KVM_API_VERSION})"),
            };
        }
    }
    status
}

/// Fill in what was found; `Err` says why guests cannot use KVM.
fn find_problem(
    env: &KvmProbeEnv,
    ioctl: &dyn KvmIoctl,
    status: &mut KvmStatus,
) -> Result<(), String> {
    let dev = env.dev_kvm.display();
    if !status.device_present {
        return Err(format!(
            "{dev} does not exist: enable virtualisation (VT-x/AMD-V) in the firmware and load \
             kvm_intel or kvm_amd"
        ));
    }
    let device = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&env.dev_kvm)
        .map_err(|e| {
            status.open_error = Some(e.to_string());
            format!(
                "cannot open {dev} read-write ({e}): add your user to the group owning it \
             (usually `kvm`) and log in again"
            )
        })?;
    status.openable = true;
    let version = ioctl
        .api_version(&device)
        .map_err(|e| format!("{dev} does not answer KVM_GET_API_VERSION ({e})"))?;
    status.api_version = Some(version);
    if version != KVM_API_VERSION {
        return Err(format!(
            "{dev} reports KVM API version {version}, expected {KVM_API_VERSION}"
        ));
    }
    if status.pvm {
        return Err(format!(
            "{dev} is provided by kvm_pvm (PVM nested virtualisation): ordinary guest kernels \
             do not boot under it"
        ));
    }
    Ok(())
}

/// The first vendor KVM module listed in `/sys/module` or `/proc/modules` (PVM first: when it
/// is present it is what `/dev/kvm` is).
fn loaded_kvm_module(env: &KvmProbeEnv) -> Option<String> {
    let proc_modules = std::fs::read_to_string(&env.proc_modules).unwrap_or_default();
    let in_proc = |name: &str| {
        proc_modules
            .lines()
            .any(|l| l.split_whitespace().next() == Some(name))
    };
    KVM_MODULES
        .iter()
        .find(|name| env.sys_module.join(name).is_dir() || in_proc(name))
        .map(|name| (*name).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct FakeIoctl(io::Result<i32>);

    impl KvmIoctl for FakeIoctl {
        fn api_version(&self, _device: &File) -> io::Result<i32> {
            match &self.0 {
                Ok(v) => Ok(*v),
                Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
            }
        }
    }

    struct FakeHost {
        _dir: tempfile::TempDir,
        env: KvmProbeEnv,
    }

    fn fake_host(device: bool, sys_modules: &[&str], proc_modules: Option<&str>) -> FakeHost {
        let dir = tempfile::tempdir().unwrap();
        let env = KvmProbeEnv {
            dev_kvm: dir.path().join("kvm"),
            sys_module: dir.path().join("module"),
            proc_modules: dir.path().join("modules"),
        };
        if device {
            std::fs::write(&env.dev_kvm, b"").unwrap();
        }
        for m in sys_modules {
            std::fs::create_dir_all(env.sys_module.join(m)).unwrap();
        }
        if let Some(text) = proc_modules {
            std::fs::write(&env.proc_modules, text).unwrap();
        }
        FakeHost { _dir: dir, env }
    }

    #[test]
    fn normal_host_is_usable() {
        let host = fake_host(true, &["kvm", "kvm_intel"], None);
        let s = probe_kvm_with(&host.env, &FakeIoctl(Ok(12)));
        assert!(
            s.device_present && s.openable && s.usable_for_guests,
            "{s:?}"
        );
        assert!(!s.pvm);
        assert_eq!(s.api_version, Some(12));
        assert_eq!(s.module.as_deref(), Some("kvm_intel"));
        assert!(s.reason.contains("usable"), "{}", s.reason);
    }

    #[test]
    fn pvm_host_is_not_usable_for_guests() {
        // Built-in PVM shows up in /sys/module only; a modular one in /proc/modules.
        for host in [
            fake_host(true, &["kvm", "kvm_pvm"], None),
            fake_host(
                true,
                &["kvm"],
                Some("kvm_pvm 86016 0 - Live 0x0\nkvm 1 1 kvm_pvm, Live 0\n"),
            ),
        ] {
            let s = probe_kvm_with(&host.env, &FakeIoctl(Ok(12)));
            assert!(s.pvm && s.openable && !s.usable_for_guests, "{s:?}");
            assert_eq!(s.module.as_deref(), Some("kvm_pvm"));
            assert!(
                s.reason.contains("PVM") && s.reason.contains("TCG"),
                "{}",
                s.reason
            );
        }
    }

    #[test]
    fn missing_device_explains_itself() {
        let host = fake_host(false, &[], None);
        let s = probe_kvm_with(&host.env, &FakeIoctl(Ok(12)));
        assert!(!s.device_present && !s.openable && !s.usable_for_guests);
        assert!(
            s.reason.contains("does not exist") && s.reason.contains("TCG"),
            "{}",
            s.reason
        );
    }

    #[test]
    fn unopenable_device_explains_itself() {
        let host = fake_host(false, &["kvm_intel"], None);
        // A directory cannot be opened read-write, even by root.
        std::fs::create_dir(&host.env.dev_kvm).unwrap();
        let s = probe_kvm_with(&host.env, &FakeIoctl(Ok(12)));
        assert!(
            s.device_present && !s.openable && !s.usable_for_guests,
            "{s:?}"
        );
        assert!(s.open_error.is_some());
        assert!(
            s.reason.contains("cannot open") && s.reason.contains("kvm"),
            "{}",
            s.reason
        );
    }

    #[test]
    fn wrong_api_version_or_failing_ioctl_is_not_usable() {
        let host = fake_host(true, &["kvm_amd"], None);
        let s = probe_kvm_with(&host.env, &FakeIoctl(Ok(11)));
        assert!(
            !s.usable_for_guests && s.reason.contains("version 11"),
            "{s:?}"
        );
        let s = probe_kvm_with(&host.env, &FakeIoctl(Err(io::Error::from_raw_os_error(25))));
        assert!(!s.usable_for_guests && s.api_version.is_none());
        assert!(s.reason.contains("KVM_GET_API_VERSION"), "{}", s.reason);
    }

    #[test]
    fn the_real_ioctl_rejects_a_plain_file() {
        let file = tempfile::tempfile().unwrap();
        assert!(RealKvmIoctl.api_version(&file).is_err());
    }
}
