//! banger's real Firecracker driver against the fake, in every personality: launch, the
//! agent over hybrid vsock (a real banger-agent answers), pause/resume, Ctrl-Alt-Del, kill,
//! finding a VM again from its record, and the refusals that happen before any launch.
//!
//! The driver runs the fake through a one-line wrapper named `firecracker` that sets the
//! personality, exactly as it would run the real binary.

use crate::support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use banger_agent_client::{AgentClient, ExecRequest};
use banger_vmm::{
    ConsoleSource, DriveFormat, DriveSpec, FirecrackerConfig, FirecrackerDriver, LaunchSpec,
    RunState, VmRuntime, VmmDriver, VmmError, WaitOutcome,
};

const LONG: Duration = Duration::from_secs(60);

/// A `firecracker` executable that is the fake in personality `version`. Written by
/// install(1) in a child process: a write descriptor held by this multi-threaded test process
/// could leak into another test's fork and make exec fail with ETXTBSY.
///
/// As root the driver jails Firecracker: its jail holds the wrapper's directory and no
/// build tree, and it runs as a per-VM uid. So the fake and the agent its guest runs are
/// linked into a directory of their own (the jail binds it whole), which that uid may enter.
fn wrapper(dir: &Path, version: &str) -> PathBuf {
    let dir = &dir.join("bin");
    std::fs::create_dir(dir).unwrap();
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let fake = beside(dir, Path::new(support::FAKE));
    let agent = beside(dir, &support::agent_binary());
    let path = dir.join("firecracker");
    let source = dir.join(".firecracker.src");
    std::fs::write(
        &source,
        format!(
            "#!/bin/sh\nFAKE_FIRECRACKER_VERSION={version} FAKE_FIRECRACKER_AGENT='{}' \
             FAKE_FIRECRACKER_BOOT_MS=100 exec '{}' \"$@\"\n",
            agent.display(),
            fake.display()
        ),
    )
    .unwrap();
    let status = std::process::Command::new("install")
        .arg("-m")
        .arg("0755")
        .arg(&source)
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success(), "install(1) failed");
    path
}

/// `binary` hard-linked into `dir` (copied by cp(1) across file systems).
fn beside(dir: &Path, binary: &Path) -> PathBuf {
    let to = dir.join(binary.file_name().unwrap());
    if std::fs::hard_link(binary, &to).is_err() {
        let status = std::process::Command::new("cp")
            .arg(binary)
            .arg(&to)
            .status()
            .unwrap();
        assert!(status.success(), "cp {} failed", binary.display());
    }
    to
}

struct Vm {
    _dir: tempfile::TempDir,
    vm_dir: PathBuf,
    driver: FirecrackerDriver,
    spec: LaunchSpec,
}

fn vm(version: &str) -> Vm {
    let dir = tempfile::Builder::new()
        .prefix("fcdrv")
        .tempdir_in("/tmp")
        .unwrap();
    let vm_dir = dir.path().join("vm");
    std::fs::create_dir(&vm_dir).unwrap();
    let work = vm_dir.join("work.ext4");
    std::fs::write(&work, vec![0u8; 1 << 16]).unwrap();
    let initrd = dir.path().join("initrd.img");
    std::fs::write(&initrd, b"initrd").unwrap();
    let mut config = FirecrackerConfig::new(wrapper(dir.path(), version));
    config.kill_grace = Duration::from_secs(10);
    let spec = LaunchSpec {
        vm_id: "0a1b2c3d".into(),
        vm_dir: vm_dir.clone(),
        kernel: support::elf_kernel(),
        kernel_pvh: false,
        bzimage: None,
        initrd: Some(initrd),
        kernel_args: vec!["banger.hostname=dev".into()],
        drives: vec![DriveSpec {
            id: "work".into(),
            path: work,
            format: DriveFormat::Raw,
            read_only: false,
            root: false,
        }],
        nics: vec![],
        user_net: None,
        vcpus: 2,
        memory_mib: 256,
        memory: Default::default(),
        restore: None,
        shares: Vec::new(),
        console_log: vm_dir.join("console.log"),
    };
    Vm {
        _dir: dir,
        vm_dir,
        driver: FirecrackerDriver::new(config),
        spec,
    }
}

/// Connect to the agent, retrying while the guest boots (the notes: no answer at all before
/// the guest is ready, then the agent may not listen yet).
async fn agent(driver: &FirecrackerDriver, rt: &VmRuntime) -> AgentClient {
    let deadline = tokio::time::Instant::now() + LONG;
    loop {
        if let Ok(stream) = driver.connect_agent(rt).await
            && let Ok((client, _)) = AgentClient::handshake(stream, LONG).await
        {
            return client;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the agent never answered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The daemon's part: drain the VM's console into its capped log until the VMM exits.
fn capture(rt: &VmRuntime) -> tokio::task::JoinHandle<std::io::Result<u64>> {
    let rt = rt.clone();
    tokio::spawn(async move {
        banger_vmm::console::capture(&rt, &rt.console_log.clone(), 1 << 20).await
    })
}

async fn echo(client: &AgentClient, text: &str) -> String {
    let out = client
        .exec(ExecRequest::new(["echo", text]))
        .await
        .unwrap()
        .wait_with_output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boot_exec_pause_resume_and_ctrl_alt_del_in_every_personality() {
    for version in ["1.5.0", "1.13.0", "1.14.1"] {
        let vm = vm(version);
        let rt = vm
            .driver
            .launch(&vm.spec)
            .await
            .unwrap_or_else(|e| panic!("{version}: {}", banger_system::error_chain(&e)));
        assert_eq!(rt.vmm_version.as_deref(), Some(version));
        assert!(rt.is_alive());
        // The serial goes into the console pipe (1.13+: `PUT /serial`; older: stdout).
        assert_eq!(
            rt.console,
            Some(ConsoleSource::Fifo(vm.vm_dir.join("console.fifo")))
        );
        let captured = capture(&rt);
        assert_eq!(vm.driver.run_state(&rt).await.unwrap(), RunState::Running);

        let client = agent(&vm.driver, &rt).await;
        assert_eq!(echo(&client, "hi").await, "hi\n");

        vm.driver.pause(&rt).await.unwrap();
        assert_eq!(vm.driver.run_state(&rt).await.unwrap(), RunState::Paused);
        // Nothing in a paused guest answers.
        let ping = tokio::time::timeout(Duration::from_millis(500), client.ping()).await;
        assert!(ping.is_err(), "{version}: a paused guest answered a ping");
        vm.driver.resume(&rt).await.unwrap();
        assert_eq!(vm.driver.run_state(&rt).await.unwrap(), RunState::Running);
        assert_eq!(echo(&client, "again").await, "again\n");

        // The console log received the guest's boot lines, through the pipe.
        let deadline = std::time::Instant::now() + LONG;
        let console = loop {
            let console = std::fs::read_to_string(&vm.spec.console_log).unwrap_or_default();
            if console.contains("banger.poweroff=reboot") || std::time::Instant::now() > deadline {
                break console;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(
            console.contains("banger.agent=vsock:1024"),
            "{version}: {console}"
        );
        assert!(
            console.contains("banger.poweroff=reboot"),
            "{version}: {console}"
        );
        // No deprecated field was sent.
        let log = std::fs::read_to_string(vm.vm_dir.join("firecracker.log")).unwrap();
        assert!(!log.contains("DEPRECATED"), "{log}");

        vm.driver.request_shutdown(&rt).await.unwrap();
        assert_eq!(rt.wait_exit(LONG).await.unwrap(), WaitOutcome::Exited);
        // The capture ends with the VMM, its last words included.
        tokio::time::timeout(LONG, captured)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let console = std::fs::read_to_string(&vm.spec.console_log).unwrap();
        assert!(
            console.contains("reboot: Restarting system"),
            "{version}: {console}"
        );
        vm.driver.kill(&rt).await.unwrap();
        assert!(!vm.vm_dir.join("firecracker.sock").exists());
        assert!(!vm.vm_dir.join("firecracker.vsock").exists());
        assert!(!vm.vm_dir.join("console.fifo").exists());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_and_relaunch_in_the_same_directory() {
    let vm = vm("1.14.1");
    let rt = vm.driver.launch(&vm.spec).await.unwrap();
    let first = capture(&rt);
    // A second launch while the first runs is refused, not a takeover of its sockets.
    let err = vm.driver.launch(&vm.spec).await.unwrap_err();
    assert!(matches!(err, VmmError::AlreadyRunning { .. }), "{err}");
    // The record written before the API was driven names the process.
    let record: VmRuntime =
        serde_json::from_slice(&std::fs::read(vm.vm_dir.join("firecracker.launch.json")).unwrap())
            .unwrap();
    assert_eq!(
        (record.pid, record.pid_start_time),
        (rt.pid, rt.pid_start_time)
    );

    vm.driver.kill(&rt).await.unwrap();
    assert!(!rt.is_alive());
    assert!(!vm.vm_dir.join("firecracker.launch.json").exists());
    // Stale sockets of a killed VMM do not stop the next boot; the console log keeps both.
    tokio::time::timeout(LONG, first)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let rt2 = vm.driver.launch(&vm.spec).await.unwrap();
    let second = capture(&rt2);
    let client = agent(&vm.driver, &rt2).await;
    assert_eq!(echo(&client, "second boot").await, "second boot\n");
    vm.driver.kill(&rt2).await.unwrap();
    tokio::time::timeout(LONG, second)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let console = std::fs::read_to_string(&vm.spec.console_log).unwrap();
    assert_eq!(console.matches("Command line:").count(), 2, "{console}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binary_below_the_floor_is_refused_before_launch() {
    let vm = vm("1.4.1");
    let err = vm.driver.launch(&vm.spec).await.unwrap_err();
    assert!(matches!(err, VmmError::FirecrackerTooOld(_)), "{err}");
    assert!(
        err.to_string()
            .contains("older than the supported minimum v1.5.0; install a supported release with `sudo banger firecracker install`"),
        "{err}"
    );
    assert!(
        !vm.vm_dir.join("firecracker.sock").exists(),
        "it was launched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejections_name_the_endpoint_and_firecrackers_fault() {
    let vm = vm("1.14.1");
    let mut spec = vm.spec.clone();
    spec.drives[0].path = vm.vm_dir.join("missing.ext4");
    let err = vm.driver.launch(&spec).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("PUT /drives/work"), "{text}");
    assert!(
        text.contains("Error manipulating the backing file: No such file or directory"),
        "{text}"
    );
    // The failed launch left nothing running and no sockets behind.
    assert!(!vm.vm_dir.join("firecracker.launch.json").exists());
    assert!(!vm.vm_dir.join("firecracker.sock").exists());

    // A bzImage is not bootable (the fake checks for an x86-64 ELF, like Firecracker).
    let mut spec = vm.spec.clone();
    let bz = vm.vm_dir.join("bzImage");
    std::fs::write(&bz, b"MZ not an elf").unwrap();
    spec.kernel = bz;
    let err = vm.driver.launch(&spec).await.unwrap_err().to_string();
    assert!(
        err.contains("PUT /actions") && err.contains("invalid kernel image"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_daemon_finds_the_vm_from_its_record() {
    let vm = vm("1.5.0");
    let rt = vm.driver.launch(&vm.spec).await.unwrap();
    vm.driver.pause(&rt).await.unwrap();
    // What a new daemon has: the stored record, a new driver.
    let stored: VmRuntime = serde_json::from_str(&serde_json::to_string(&rt).unwrap()).unwrap();
    let fresh = FirecrackerDriver::new(vm.driver.config().clone());
    assert!(stored.is_alive());
    assert_eq!(fresh.run_state(&stored).await.unwrap(), RunState::Paused);
    fresh.resume(&stored).await.unwrap();
    let client = agent(&fresh, &stored).await;
    assert_eq!(echo(&client, "still here").await, "still here\n");
    fresh.kill(&stored).await.unwrap();
    // A dead VM is reported as such, not as an API error.
    let err = fresh.pause(&stored).await.unwrap_err().to_string();
    assert!(err.contains("is gone"), "{err}");
}

/// notes: "Create (VM must be Paused): `PUT /snapshot/create`"; the driver refuses a running
/// guest itself and writes the files complete under their final names. A clone restored in
/// its own directory opens ITS disk, never the parent's, binds its own vsock socket while the
/// parent still runs, and answers once resumed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_restore_into_a_clone_with_its_own_disk_in_every_personality() {
    for version in ["1.5.0", "1.14.1"] {
        let vm = vm(version);
        let rt = vm.driver.launch(&vm.spec).await.unwrap();
        let snap_dir = vm.vm_dir.parent().unwrap().join("snap");
        std::fs::create_dir(&snap_dir).unwrap();
        let err = vm.driver.save_snapshot(&rt, &snap_dir).await.unwrap_err();
        assert!(
            matches!(err, VmmError::WrongState { .. }),
            "{version}: {err}"
        );

        vm.driver.pause(&rt).await.unwrap();
        let files = vm.driver.save_snapshot(&rt, &snap_dir).await.unwrap();
        let memory = files
            .memory
            .clone()
            .expect("Firecracker keeps memory apart");
        assert_eq!(
            std::fs::metadata(&memory).unwrap().len(),
            256 << 20,
            "{version}"
        );
        assert!(std::fs::metadata(&files.state).unwrap().len() > 0);
        let mut names: Vec<_> = std::fs::read_dir(&snap_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["firecracker.layout.json", "memory", "vmstate"],
            "{version}"
        );
        assert_eq!(vm.driver.run_state(&rt).await.unwrap(), RunState::Paused);
        vm.driver.resume(&rt).await.unwrap();

        // The clone: its own directory and its own copy of the disk; the parent runs on.
        let clone_dir = vm.vm_dir.parent().unwrap().join("clone");
        std::fs::create_dir(&clone_dir).unwrap();
        let clone_disk = clone_dir.join("work.ext4");
        std::fs::copy(&vm.spec.drives[0].path, &clone_disk).unwrap();
        let mut clone = vm.spec.clone();
        clone.vm_id = "0a1b2c3e".into();
        clone.vm_dir = clone_dir.clone();
        clone.drives[0].path = clone_disk.clone();
        clone.console_log = clone_dir.join("console.log");
        clone.restore = Some(files.clone());
        let crt = vm.driver.launch(&clone).await.unwrap();
        let open: Vec<PathBuf> = std::fs::read_dir(format!("/proc/{}/fd", crt.pid))
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.unwrap().path()).ok())
            .collect();
        assert!(open.contains(&clone_disk), "{version}: {open:?}");
        assert!(open.contains(&memory), "{version}: {open:?}");
        assert!(
            !open.contains(&vm.spec.drives[0].path),
            "{version}: the clone opened its parent's disk: {open:?}"
        );
        // Loaded paused: nothing runs until the daemon lets it go.
        assert_eq!(vm.driver.run_state(&crt).await.unwrap(), RunState::Paused);
        vm.driver.resume(&crt).await.unwrap();
        let client = agent(&vm.driver, &crt).await;
        assert_eq!(echo(&client, "clone").await, "clone\n");
        let parent = agent(&vm.driver, &rt).await;
        assert_eq!(echo(&parent, "parent").await, "parent\n");
        vm.driver.kill(&crt).await.unwrap();
        vm.driver.kill(&rt).await.unwrap();

        // A clone whose drives differ from the snapshot's is refused before any process.
        let mut other = clone.clone();
        other.drives[0].id = "data".into();
        let err = vm.driver.launch(&other).await.unwrap_err();
        assert!(
            matches!(err, VmmError::RestoreFailed { .. }),
            "{version}: {err}"
        );
        // A snapshot without its layout record is not restored.
        std::fs::remove_file(snap_dir.join("firecracker.layout.json")).unwrap();
        let err = vm.driver.launch(&clone).await.unwrap_err().to_string();
        assert!(err.contains("layout"), "{version}: {err}");
    }
}

/// Under a root daemon Firecracker gets QEMU's sandbox: it runs as its own unprivileged uid
/// with no capabilities and `no_new_privs`, in a private mount namespace whose root holds
/// only the system directories, its binary's directory, its devices, its VM directory and
/// its inputs — and the daemon still drives it (API, agent, kill) as root.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_root_it_runs_jailed_as_its_own_uid() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert!(
        euid == 0,
        "this test checks the sandbox a root daemon gives Firecracker: run it as root (CI does)"
    );
    let vm = vm("1.14.1");
    let rt = vm
        .driver
        .launch(&vm.spec)
        .await
        .unwrap_or_else(|e| panic!("{}", banger_system::error_chain(&e)));
    let posture = banger_vmm::sandbox::posture::read(rt.pid).unwrap();
    let base = banger_vmm::sandbox::ids::DEFAULT_ID_BASE;
    assert!(
        posture.uids.iter().all(|u| *u > base) && posture.gids.iter().all(|g| *g > base),
        "{posture:?}"
    );
    assert_eq!(posture.no_new_privs, Some(true), "{posture:?}");
    assert_eq!(posture.cap_eff, Some(0), "{posture:?}");
    assert_eq!(posture.own_root, Some(true), "{posture:?}");
    assert_eq!(posture.own_mount_ns, Some(true), "{posture:?}");
    // The VM directory and its files are the VMM's, nobody else's.
    let meta = std::fs::metadata(&vm.vm_dir).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), posture.uids[0]);

    // What it sees: only what the jail holds.
    let mountinfo = std::fs::read_to_string(format!("/proc/{}/mountinfo", rt.pid)).unwrap();
    let points: Vec<&str> = mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .collect();
    let bin_dir = vm.driver.config().binary.parent().unwrap();
    let allowed = |p: &str| {
        let p = Path::new(p);
        p == Path::new("/")
            || [
                "/usr", "/lib", "/lib64", "/lib32", "/libx32", "/bin", "/sbin", "/dev",
            ]
            .iter()
            .any(|d| p.starts_with(d))
            || p == Path::new("/etc/ld.so.cache")
            || p == bin_dir
            || p.starts_with(&vm.vm_dir)
            || p == vm.spec.kernel
            || Some(p) == vm.spec.initrd.as_deref()
    };
    for point in &points {
        assert!(
            allowed(point),
            "{point} is mounted in the jail:\n{mountinfo}"
        );
    }
    for needed in [vm.vm_dir.as_path(), Path::new("/dev/kvm")] {
        if needed.exists() {
            assert!(
                points.contains(&needed.to_str().unwrap()),
                "{} is not in the jail:\n{mountinfo}",
                needed.display()
            );
        }
    }

    // The root daemon still reaches its API and its agent, and stops it.
    assert_eq!(vm.driver.run_state(&rt).await.unwrap(), RunState::Running);
    let client = agent(&vm.driver, &rt).await;
    assert_eq!(echo(&client, "jailed").await, "jailed\n");
    vm.driver.kill(&rt).await.unwrap();
    assert!(!rt.is_alive());
    assert!(!vm.vm_dir.join("firecracker.sock").exists());
    std::fs::remove_dir_all(&vm.vm_dir).unwrap();
}
