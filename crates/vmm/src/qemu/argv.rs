//! The QEMU command line for a [`LaunchSpec`]: a pure function, so every flag is unit-tested.
//!
//! Device order is fixed: the virtio-serial controller first (the agent port is then
//! `/dev/vport0p1` in the guest; the agent should still find it by its name, `agent`), then the
//! drives with the root drive first (so it is `/dev/vda` on both machine types; measured), then
//! NICs, then the RNG.

use std::path::{Path, PathBuf};

use crate::error::VmmError;
use crate::runtime::MachineType;
use crate::spec::{Accel, GUEST_KERNEL_ARGS, GuestMemory, LaunchSpec};
use crate::validate::{self, SocketPathError, opt_value};

/// Linux's x86 `COMMAND_LINE_SIZE` includes the terminating NUL.
const MAX_CMDLINE: usize = 2047;
const MAX_VCPUS: u32 = 64;
const MIN_MEMORY_MIB: u64 = 16;
/// virtio-fs tags are at most 36 bytes (the device's config space).
const MAX_FS_TAG: usize = 36;

/// Files QEMU creates in the VM directory. Short names keep socket paths far from the
/// 107-byte limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmPaths {
    pub qmp_socket: PathBuf,
    pub agent_socket: PathBuf,
    /// The serial console: a listening socket the daemon drains into a capped log.
    pub console_socket: PathBuf,
    pub pid_file: PathBuf,
}

impl VmPaths {
    pub fn in_dir(vm_dir: &Path) -> VmPaths {
        VmPaths {
            qmp_socket: vm_dir.join("qmp.sock"),
            agent_socket: vm_dir.join("agent.sock"),
            console_socket: vm_dir.join("console.sock"),
            pid_file: vm_dir.join("qemu.pid"),
        }
    }
}

/// Everything the command line depends on besides the spec.
#[derive(Debug, Clone)]
pub struct ArgvInput<'a> {
    pub spec: &'a LaunchSpec,
    pub accel: Accel,
    pub machine: MachineType,
    /// The image actually booted (the vmlinux, or the bzImage on `pc`).
    pub kernel: &'a Path,
    /// Required for microvm under TCG.
    pub tsc_khz: Option<u64>,
    pub paths: &'a VmPaths,
    /// Turn on QEMU's seccomp filter ([`crate::sandbox::QEMU_SANDBOX`]).
    pub seccomp: bool,
    /// `-daemonize`: only without seccomp, whose `spawn=deny` forbids the daemonizing fork
    /// (a sandboxed QEMU is started detached by the driver instead).
    pub daemonize: bool,
    /// The NICs' TAP queues, opened by the daemon and inherited by QEMU at these numbers
    /// (one per NIC, in order): `-netdev tap,fd=N`. `None`: QEMU opens each TAP by name,
    /// which only a process with `CAP_NET_ADMIN` or the TAP owner's uid may do.
    pub tap_fds: Option<&'a [i32]>,
    /// Restore instead of boot: the saved migration stream, inherited at this number
    /// (`-incoming fd:N`); QEMU loads it and leaves the guest paused.
    pub incoming_fd: Option<i32>,
    /// Restore with the guest's RAM mapped copy-on-write from this file (a snapshot of a
    /// [`GuestMemory::SharedFile`] VM): QEMU waits (`-incoming defer`) for the device state,
    /// which the driver hands it over QMP with `x-ignore-shared` set
    /// ([`super::snapshot::start_incoming`]).
    pub restore_ram: Option<&'a Path>,
}

/// Render the arguments (without the program name).
pub fn render(input: &ArgvInput<'_>) -> Result<Vec<String>, VmmError> {
    let spec = input.spec;
    let invalid = |problem: String| VmmError::InvalidSpec {
        vm_id: spec.vm_id.clone(),
        problem,
    };
    let socket = |what: &str, path: &Path| match validate::socket_path(what, path) {
        Ok(s) => Ok(s.to_owned()),
        Err(SocketPathError::Invalid(p)) => Err(invalid(p)),
        Err(SocketPathError::TooLong(len)) => Err(VmmError::SocketPathTooLong {
            path: path.to_path_buf(),
            len,
        }),
    };

    if spec.vm_id.is_empty() || spec.vm_id.chars().any(|c| c.is_control()) {
        return Err(invalid(format!(
            "VM id {:?} is empty or has control characters",
            spec.vm_id
        )));
    }
    if !(1..=MAX_VCPUS).contains(&spec.vcpus) {
        return Err(invalid(format!(
            "{} vCPUs requested; use 1 to {MAX_VCPUS}",
            spec.vcpus
        )));
    }
    if spec.memory_mib < MIN_MEMORY_MIB {
        return Err(invalid(format!(
            "{} MiB of memory requested; use at least {MIN_MEMORY_MIB}",
            spec.memory_mib
        )));
    }
    let device_suffix = match input.machine {
        MachineType::Microvm => "device",
        MachineType::Pc => "pci",
        MachineType::Firecracker => {
            return Err(invalid(
                "QEMU cannot emulate the firecracker machine type".into(),
            ));
        }
    };
    let dev = |name: &str| format!("virtio-{name}-{device_suffix}");

    let mut a: Vec<String> = Vec::new();
    let mut push = |items: &[&str]| a.extend(items.iter().map(|s| (*s).to_owned()));

    push(&[
        "-name",
        &format!(
            "guest={},process=banger-{}",
            opt_value(&spec.vm_id),
            opt_value(&spec.vm_id)
        ),
    ]);
    // Guest RAM is always the backend `mem`, whatever backs it: a saved stream names its RAM
    // blocks, so a guest saved with one backing (a warm state's file) loads into another
    // (anonymous memory) only if the name is the same.
    let backing = backing(input).map_err(invalid)?;
    push(&[
        "-M",
        &format!("{},memory-backend=mem", input.machine.as_str()),
    ]);
    match input.accel {
        // The vCPU model the host has; QEMU's default (qemu64) hides most CPU features.
        Accel::Kvm => push(&["-accel", "kvm", "-cpu", "host"]),
        // Multi-threaded TCG is QEMU 7.2's default for x86 on x86; spelled out so it stays so.
        Accel::Tcg => push(&["-accel", "tcg,thread=multi"]),
    }
    push(&["-smp", &spec.vcpus.to_string()]);
    a.extend(memory(spec, &backing));
    let mut push = |items: &[&str]| a.extend(items.iter().map(|s| (*s).to_owned()));
    push(&[
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
    ]);

    // Bare-path options are taken verbatim by QEMU: no comma escaping.
    push(&[
        "-kernel",
        validate::host_path("kernel", input.kernel).map_err(invalid)?,
    ]);
    if let Some(initrd) = &spec.initrd {
        push(&[
            "-initrd",
            validate::host_path("initrd", initrd).map_err(invalid)?,
        ]);
    }
    push(&["-append", &kernel_cmdline(input).map_err(invalid)?]);

    // The serial console is a socket the daemon drains into a size-capped log, never a file
    // QEMU appends to: a guest writing its console at full speed must not be able to fill
    // the host's disk. While nobody is connected (the daemon restarting) QEMU discards the
    // output, so the guest never blocks and the disk stays safe; a connected daemon that
    // reads slowly makes the guest's UART wait.
    validate::host_path("console log", &spec.console_log).map_err(invalid)?;
    let console = socket("console socket", &input.paths.console_socket)?;
    push(&[
        "-chardev",
        &format!(
            "socket,id=console0,path={},server=on,wait=off",
            opt_value(&console)
        ),
    ]);
    push(&["-serial", "chardev:console0"]);

    let qmp = socket("QMP socket", &input.paths.qmp_socket)?;
    push(&[
        "-chardev",
        &format!("socket,id=qmp0,path={},server=on,wait=off", opt_value(&qmp)),
    ]);
    push(&["-mon", "chardev=qmp0,mode=control"]);

    let agent = socket("agent socket", &input.paths.agent_socket)?;
    push(&["-device", &format!("{},id=vser0", dev("serial"))]);
    push(&[
        "-chardev",
        &format!(
            "socket,id=agent0,path={},server=on,wait=off",
            opt_value(&agent)
        ),
    ]);
    push(&[
        "-device",
        "virtserialport,bus=vser0.0,chardev=agent0,name=agent",
    ]);

    let mut ids = std::collections::HashSet::new();
    let roots = spec.drives.iter().filter(|d| d.root).count();
    if roots > 1 {
        return Err(invalid(format!(
            "{roots} drives are marked root; mark at most one"
        )));
    }
    let ordered = spec
        .drives
        .iter()
        .filter(|d| d.root)
        .chain(spec.drives.iter().filter(|d| !d.root));
    for drive in ordered {
        validate::object_id("drive", &drive.id).map_err(invalid)?;
        if !ids.insert(format!("drive-{}", drive.id)) {
            return Err(invalid(format!("drive id {:?} is used twice", drive.id)));
        }
        let path =
            validate::host_path(&format!("drive {}", drive.id), &drive.path).map_err(invalid)?;
        let mut opts = format!(
            "if=none,id=drive-{},format={},file={}",
            drive.id,
            drive.format.as_str(),
            opt_value(path)
        );
        if drive.read_only {
            opts.push_str(",readonly=on");
        }
        push(&["-drive", &opts]);
        push(&[
            "-device",
            &format!("{},drive=drive-{}", dev("blk"), drive.id),
        ]);
    }

    if let Some(fds) = input.tap_fds
        && fds.len() != spec.nics.len()
    {
        return Err(invalid(format!(
            "{} TAP descriptors were opened for {} network interfaces",
            fds.len(),
            spec.nics.len()
        )));
    }
    for (i, nic) in spec.nics.iter().enumerate() {
        validate::object_id("network interface", &nic.id).map_err(invalid)?;
        validate::tap_name(&nic.tap).map_err(invalid)?;
        validate::mac_address(&nic.mac).map_err(invalid)?;
        if !ids.insert(format!("net-{}", nic.id)) {
            return Err(invalid(format!(
                "network interface id {:?} is used twice",
                nic.id
            )));
        }
        // QEMU refuses ifname=/script= beside fd=; it reads IFF_VNET_HDR off the descriptor.
        let netdev = match input.tap_fds {
            Some(fds) => format!("tap,id=net-{},fd={}", nic.id, fds[i]),
            None => format!(
                "tap,id=net-{},ifname={},script=no,downscript=no",
                nic.id, nic.tap
            ),
        };
        push(&["-netdev", &netdev]);
        push(&[
            "-device",
            &format!("{},netdev=net-{},mac={}", dev("net"), nic.id, nic.mac),
        ]);
    }

    if let Some(user) = &spec.user_net {
        push(&["-netdev", &user_netdev(user).map_err(invalid)?]);
        push(&[
            "-device",
            &format!("{},netdev=net-user,mac={}", dev("net"), user.mac),
        ]);
    }

    // Shared host directories: vhost-user devices served by the VM's virtiofsd processes.
    let fs_device = match input.machine {
        MachineType::Pc => "vhost-user-fs-pci",
        _ => "vhost-user-fs-device",
    };
    for share in &spec.shares {
        validate::object_id("share tag", &share.tag).map_err(invalid)?;
        if share.tag.len() > MAX_FS_TAG || !ids.insert(format!("fs-{}", share.tag)) {
            return Err(invalid(format!(
                "share tag {:?} is used twice or longer than {MAX_FS_TAG} bytes",
                share.tag
            )));
        }
        let path = socket("virtio-fs socket", &share.socket(&spec.vm_dir))?;
        push(&[
            "-chardev",
            &format!("socket,id=fs-{},path={}", share.tag, opt_value(&path)),
        ]);
        push(&[
            "-device",
            &format!("{fs_device},chardev=fs-{},tag={}", share.tag, share.tag),
        ]);
    }

    // Entropy for early boot (ssh host keys, getrandom) without waiting on jitter.
    push(&["-object", "rng-random,id=rng0,filename=/dev/urandom"]);
    push(&["-device", &format!("{},rng=rng0", dev("rng"))]);

    if input.seccomp {
        push(&["-sandbox", crate::sandbox::QEMU_SANDBOX]);
    }

    if input.restore_ram.is_some() {
        push(&["-incoming", "defer"]);
    } else if let Some(fd) = input.incoming_fd {
        push(&["-incoming", &format!("fd:{fd}")]);
    }

    let pid_file = validate::host_path("pid file", &input.paths.pid_file).map_err(invalid)?;
    if input.daemonize {
        push(&["-daemonize"]);
    }
    push(&["-pidfile", pid_file]);
    Ok(a)
}

/// What backs the guest's RAM on this command line.
enum Backing {
    /// Anonymous memory (`memory-backend-ram`).
    Anonymous,
    /// `memory-backend-memfd,share=on` (vhost-user shares).
    Memfd,
    /// `memory-backend-file` on this (validated) path, mapped shared or copy-on-write.
    File { path: String, shared: bool },
}

/// The backing a launch gets: a restore from a RAM file maps that file copy-on-write,
/// whatever the spec asks (the snapshot fixed it); otherwise [`LaunchSpec::memory_backing`].
fn backing(input: &ArgvInput<'_>) -> Result<Backing, String> {
    let file = |path: &Path, shared| {
        validate::host_path("guest RAM file", path).map(|p| Backing::File {
            path: opt_value(p),
            shared,
        })
    };
    if let Some(ram) = input.restore_ram {
        return file(ram, false);
    }
    match input.spec.memory_backing() {
        GuestMemory::Private => Ok(Backing::Anonymous),
        GuestMemory::SharedMemfd => Ok(Backing::Memfd),
        GuestMemory::SharedFile => file(&input.spec.vm_dir.join(crate::spec::RAM_FILE), true),
    }
}

/// The guest's RAM: its size and what backs it ([`GuestMemory`]), decided here only.
fn memory(spec: &LaunchSpec, backing: &Backing) -> Vec<String> {
    let mut a = vec!["-m".to_owned(), format!("{}M", spec.memory_mib)];
    let size = spec.memory_mib;
    // Named by `-M …,memory-backend=mem` above.
    let object = match backing {
        Backing::Anonymous => format!("memory-backend-ram,id=mem,size={size}M"),
        Backing::Memfd => format!("memory-backend-memfd,id=mem,size={size}M,share=on"),
        Backing::File { path, shared } => format!(
            "memory-backend-file,id=mem,size={size}M,mem-path={path},share={}",
            if *shared { "on" } else { "off" }
        ),
    };
    a.extend(["-object".to_owned(), object]);
    a
}

/// `user,id=net-user,net=10.0.2.0/24[,hostfwd=PROTO:[ADDR]:HOSTPORT-:GUESTPORT…]`.
fn user_netdev(user: &crate::spec::UserNetSpec) -> Result<String, String> {
    validate::mac_address(&user.mac)?;
    let mut opts = String::from("user,id=net-user,net=10.0.2.0/24");
    let mut seen = std::collections::HashSet::new();
    for f in &user.forwards {
        if f.host_port == 0 || f.guest_port == 0 {
            return Err(format!(
                "port forward {}:{} uses port 0; use ports 1 to 65535",
                f.host_port, f.guest_port
            ));
        }
        let proto = if f.udp { "udp" } else { "tcp" };
        if !seen.insert((proto, f.host_port)) {
            return Err(format!(
                "host port {}/{proto} is forwarded twice; publish it once",
                f.host_port
            ));
        }
        let addr = f.host_addr.map(|a| a.to_string()).unwrap_or_default();
        opts.push_str(&format!(
            ",hostfwd={proto}:{addr}:{}-:{}",
            f.host_port, f.guest_port
        ));
    }
    Ok(opts)
}

/// `console=ttyS0 panic=-1 [tsc_early_khz=N] [root=/dev/vda rw|ro] GUEST_KERNEL_ARGS <caller's args>`.
fn kernel_cmdline(input: &ArgvInput<'_>) -> Result<String, String> {
    let mut args: Vec<String> = vec!["console=ttyS0".into(), "panic=-1".into()];
    if input.machine == MachineType::Microvm && input.accel == Accel::Tcg {
        // Without it a microvm guest under TCG cannot calibrate its TSC and hangs.
        let khz = input
            .tsc_khz
            .ok_or("microvm under TCG needs the host TSC frequency")?;
        args.push(format!("tsc_early_khz={khz}"));
    }
    // Like Firecracker, name the root drive on the command line; it is attached first.
    if let Some(root) = input.spec.drives.iter().find(|d| d.root) {
        args.push("root=/dev/vda".into());
        args.push(if root.read_only { "ro" } else { "rw" }.into());
    }
    args.extend(GUEST_KERNEL_ARGS.iter().map(|a| (*a).to_owned()));
    for arg in &input.spec.kernel_args {
        validate::kernel_arg(arg)?;
        args.push(arg.clone());
    }
    let line = args.join(" ");
    if line.len() > MAX_CMDLINE {
        return Err(format!(
            "the kernel command line is {} bytes, over Linux's {MAX_CMDLINE}-byte limit",
            line.len()
        ));
    }
    Ok(line)
}

#[cfg(test)]
#[path = "argv_tests/mod.rs"]
mod tests;
