//! banger's Firecracker driver launching through the root helper's `launch_jailed` verb,
//! set up as a system install is: the helper runs as root (this test process) and serves
//! its socket to the owner; the driver runs as the owner (`nobody`, this test binary re-run
//! with that uid). The driver boots a VM against the fake jailer and fake Firecracker,
//! reaches its API and its agent, snapshots it, kills it, and its release removes the jail
//! and its cgroups; then restores the snapshot into a clone through the jailer, which opens
//! the clone's own disk and answers on the clone's vsock socket.

use crate::jail_lab;
use crate::support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use banger_agent_client::{AgentClient, ExecRequest};
use banger_helper::{HelperClient, Privileged, server};
use banger_helper_proto::{JailId, JailLaunch, Jailed};
use banger_vmm::firecracker::jailed::{JailLauncher, LaunchError};
use banger_vmm::{
    DriveFormat, DriveSpec, FirecrackerConfig, FirecrackerDriver, LaunchSpec, RunState, VmmDriver,
};
use jail_lab::{Lab, OWNER};

/// The daemon's side of the helper, as the owner, and its chroot base.
struct Helper(HelperClient, PathBuf);

impl JailLauncher for Helper {
    fn launch(&self, launch: &JailLaunch) -> Result<Option<Jailed>, LaunchError> {
        Ok(Some(self.0.launch_jailed(launch)?))
    }
    fn release(&self, id: &JailId) -> Result<(), LaunchError> {
        Ok(self.0.release_jail(id)?)
    }
    fn chroot(&self, id: &JailId) -> Option<PathBuf> {
        Some(self.1.join("firecracker").join(id.as_str()).join("root"))
    }
}

const SOCKET_ENV: &str = "BANGER_TEST_JAIL_SOCKET";
const STATE_ENV: &str = "BANGER_TEST_JAIL_STATE";
const BIN_ENV: &str = "BANGER_TEST_JAIL_FIRECRACKER";
const BASE_ENV: &str = "BANGER_TEST_JAIL_BASE";

/// Run as the owner by the test below: boot, drive, kill; print what happened.
#[test]
fn owner_child() {
    let (Ok(socket), Ok(state), Ok(binary), Ok(base)) = (
        std::env::var(SOCKET_ENV),
        std::env::var(STATE_ENV),
        std::env::var(BIN_ENV),
        std::env::var(BASE_ENV),
    ) else {
        return;
    };
    let state = PathBuf::from(state);
    // Named by the VM's id, as the daemon names VM directories.
    let vm_dir = state.join("0a1b2c3d4e5f");
    let mut config = FirecrackerConfig::new(binary);
    config.kill_grace = Duration::from_secs(10);
    let driver = FirecrackerDriver::new(config).with_jailer(Arc::new(Helper(
        HelperClient::new(Path::new(&socket)),
        PathBuf::from(base),
    )));
    let spec = LaunchSpec {
        vm_id: "0a1b2c3d4e5f".into(),
        vm_dir: vm_dir.clone(),
        kernel: state.join("vmlinux"),
        kernel_pvh: false,
        bzimage: None,
        initrd: None,
        kernel_args: vec!["banger.hostname=dev".into()],
        drives: vec![DriveSpec {
            id: "work".into(),
            path: vm_dir.join("work.ext4"),
            format: DriveFormat::Raw,
            read_only: false,
            root: false,
        }],
        nics: vec![],
        user_net: None,
        vcpus: 1,
        memory_mib: 128,
        memory: Default::default(),
        restore: None,
        shares: Vec::new(),
        console_log: vm_dir.join("console.log"),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let rt = match driver.launch(&spec).await {
            Ok(rt) => rt,
            Err(e) => {
                println!("LAUNCH-FAILED {}", banger_system::error_chain(&e));
                return;
            }
        };
        println!("PID {}", rt.pid);
        println!("API {}", rt.control_socket.display());
        // Stray detection finds it by its chroot (it names no host path).
        let using = driver.processes_using(&vm_dir).unwrap();
        println!("FOUND-BY-ROOT {}", using.iter().any(|p| p.pid == rt.pid));
        let state = driver.run_state(&rt).await.unwrap();
        println!("STATE {}", state == RunState::Running);
        // The guest's agent, over the hybrid vsock socket in the chroot.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let client = loop {
            if let Ok(stream) = driver.connect_agent(&rt).await
                && let Ok((client, _)) =
                    AgentClient::handshake(stream, Duration::from_secs(60)).await
            {
                break client;
            }
            if tokio::time::Instant::now() >= deadline {
                let root = rt.control_socket.parent().unwrap().parent().unwrap();
                let list = |d: &Path| {
                    std::fs::read_dir(d)
                        .map(|r| {
                            r.flatten()
                                .map(|e| e.file_name().to_string_lossy().into_owned())
                                .collect::<Vec<_>>()
                        })
                        .unwrap_or_default()
                };
                let err =
                    std::fs::read_to_string(root.join("firecracker.stderr")).unwrap_or_default();
                let mut console = Vec::new();
                {
                    use std::io::Read;
                    use std::os::unix::fs::OpenOptionsExt;
                    if let Ok(mut f) = std::fs::OpenOptions::new()
                        .read(true)
                        .custom_flags(libc::O_NONBLOCK)
                        .open(rt.vm_dir.join("console.fifo"))
                    {
                        let _ = f.read_to_end(&mut console);
                    }
                }
                let err = format!(
                    "{err}\nconsole: {}\nalive: {}",
                    String::from_utf8_lossy(&console),
                    rt.is_alive()
                );
                panic!(
                    "the agent never answered: root {:?} run {:?} stderr {err}",
                    list(root),
                    list(&root.join("run"))
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let out = client
            .exec(ExecRequest::new(["echo", "jailed"]))
            .await
            .unwrap()
            .wait_with_output()
            .await
            .unwrap();
        println!("AGENT {}", String::from_utf8_lossy(&out.stdout).trim());
        driver.pause(&rt).await.unwrap();
        println!(
            "PAUSED {}",
            driver.run_state(&rt).await.unwrap() == RunState::Paused
        );
        // A snapshot of the jailed VM: relocatable (the jail names the drives and vsock as
        // an unjailed launch does), written in its chroot, renamed into the owner's state.
        let state_dir = vm_dir.parent().unwrap();
        let snap = state_dir.join("snap");
        std::fs::create_dir(&snap).unwrap();
        let files = match driver.save_snapshot(&rt, &snap).await {
            Ok(files) => files,
            Err(e) => {
                println!("SNAPSHOT-FAILED {}", banger_system::error_chain(&e));
                driver.kill(&rt).await.unwrap();
                return;
            }
        };
        println!("SNAPSHOT {}", files.state.is_file());
        driver.kill(&rt).await.unwrap();
        println!("ALIVE-AFTER-KILL {}", rt.is_alive());

        // A clone restored from it through the jailer, with a disk of its own.
        let clone_dir = state_dir.join("1a1b2c3d4e5f");
        std::fs::create_dir(&clone_dir).unwrap();
        std::fs::write(clone_dir.join("work.ext4"), vec![1u8; 1 << 16]).unwrap();
        let mut clone = spec.clone();
        clone.vm_id = "1a1b2c3d4e5f".into();
        clone.vm_dir = clone_dir.clone();
        clone.drives[0].path = clone_dir.join("work.ext4");
        clone.console_log = clone_dir.join("console.log");
        clone.restore = Some(files);
        let rt = match driver.launch(&clone).await {
            Ok(rt) => rt,
            Err(e) => {
                println!("RESTORE-FAILED {}", banger_system::error_chain(&e));
                return;
            }
        };
        let root = rt.control_socket.parent().unwrap().parent().unwrap();
        use std::os::unix::fs::MetadataExt;
        let ino = |p: &Path| std::fs::metadata(p).map(|m| m.ino()).unwrap_or(0);
        println!(
            "CLONE-DISK {}",
            ino(&root.join("fc-drives/work")) == ino(&clone_dir.join("work.ext4"))
        );
        println!(
            "CLONE-PAUSED {}",
            driver.run_state(&rt).await.unwrap() == RunState::Paused
        );
        driver.resume(&rt).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let client = loop {
            if let Ok(stream) = driver.connect_agent(&rt).await
                && let Ok((client, _)) =
                    AgentClient::handshake(stream, Duration::from_secs(60)).await
            {
                break Some(client);
            }
            if tokio::time::Instant::now() >= deadline {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        // The handshake is the guest's agent answering on the clone's own vsock socket.
        println!("CLONE-AGENT {}", client.is_some());
        driver.kill(&rt).await.unwrap();
        println!("CLONE-ALIVE-AFTER-KILL {}", rt.is_alive());
    });
}

#[test]
fn the_owners_driver_boots_drives_and_releases_a_jailed_firecracker() {
    let lab = Lab::new();
    let socket = lab.dir.path().join("helper.sock");
    let listener = server::bind(&socket, OWNER).unwrap();
    let executor = Arc::new(lab.executor());
    std::thread::spawn(move || server::serve(listener, executor));
    // The owner's files, as its daemon makes them: the kernel, the VM directory and disk.
    let state = &lab.setup.state_dir;
    std::fs::copy(support::elf_kernel(), state.join("vmlinux")).unwrap();
    std::os::unix::fs::chown(state.join("vmlinux"), Some(OWNER), Some(OWNER)).unwrap();
    let vm_dir = state.join("0a1b2c3d4e5f");
    std::fs::create_dir(&vm_dir).unwrap();
    std::fs::write(vm_dir.join("work.ext4"), vec![0u8; 1 << 16]).unwrap();
    for p in [&vm_dir, &vm_dir.join("work.ext4")] {
        std::os::unix::fs::chown(p, Some(OWNER), Some(OWNER)).unwrap();
    }

    let text = banger_system::testkit::rerun_test_as(
        &banger_system::testkit::test_name(module_path!(), "owner_child"),
        OWNER,
        &[
            (SOCKET_ENV, &socket),
            (STATE_ENV, state),
            (BIN_ENV, &lab.setup.firecracker),
            (BASE_ENV, &lab.setup.jail_root.join(OWNER.to_string())),
            ("FAKE_FIRECRACKER_VERSION", &"1.14.1"),
            ("FAKE_FIRECRACKER_BOOT_MS", &"100"),
        ],
    );
    let jail = lab
        .setup
        .jail_root
        .join(OWNER.to_string())
        .join("firecracker/0a1b2c3d4e5f");
    assert!(!text.contains("LAUNCH-FAILED"), "{text}");
    assert!(
        text.contains(&format!(
            "API {}",
            jail.join("root/run/firecracker.socket").display()
        )),
        "{text}"
    );
    assert!(
        text.contains("STATE true") && text.contains("PAUSED true"),
        "{text}"
    );
    assert!(text.contains("ALIVE-AFTER-KILL false"), "{text}");
    assert!(text.contains("FOUND-BY-ROOT true"), "{text}");
    assert!(!jail.exists(), "the release removed the jail");
    // Its snapshot, restored into a clone through the jailer: the clone's own disk, paused
    // until resumed, its agent answering on the clone's vsock socket; released whole.
    assert!(text.contains("SNAPSHOT true"), "{text}");
    assert!(!text.contains("RESTORE-FAILED"), "{text}");
    assert!(text.contains("CLONE-DISK true"), "{text}");
    assert!(text.contains("CLONE-PAUSED true"), "{text}");
    assert!(text.contains("CLONE-AGENT true"), "{text}");
    assert!(text.contains("CLONE-ALIVE-AFTER-KILL false"), "{text}");
    let clone_jail = jail.with_file_name("1a1b2c3d4e5f");
    assert!(!clone_jail.exists(), "the release removed the clone's jail");
    for hierarchy in ["memory", "pids"] {
        let group = Path::new("/sys/fs/cgroup")
            .join(hierarchy)
            .join(format!("banger-{OWNER}/0a1b2c3d4e5f"));
        assert!(!group.exists(), "{} was left", group.display());
    }
}
