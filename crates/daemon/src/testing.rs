//! Test support: a daemon on a temporary state directory with the fake VMM driver, that a
//! test can "kill" (drop its runtime, running no more of its code) and start again on the
//! same state, as a SIGKILL and a restart would.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use banger_api::CreateVmRequest;
use banger_config::Config;
use banger_paths::{Layout, Mode};
use banger_store::{ImageRecord, Store, VmState};
use banger_system::RealRunner;
use banger_vmm::fake::{FakeConfig, FakeDriver};
use banger_vmm::{Accel, Driver, DriverKind, Selection};

use crate::net::NetworkSource;
use crate::net::fake::FakePrivileged;
use crate::state::{Daemon, Parts};
use crate::vms::driver::Drivers;
use banger_config::{NetworkMode, Provenance, Resolved};
use banger_helper::{ModeSelection, Networking, Privileged};

// The fake VMM's entry point lives in this test binary.
banger_vmm::fake_vmm_hook!();

/// Generous: the machine is shared and loaded.
pub const WAIT: Duration = Duration::from_secs(60);
/// How long a killed incarnation's threads get to leave the code they are in (see
/// [`Incarnation::kill`]); only a blocking task (a key generation, an image copy) takes long.
const KILL_PATIENCE: Duration = Duration::from_secs(60);

/// One state directory, shared by the daemons a test starts one after another.
pub struct Harness {
    /// Deleted after the VMMs using it are killed (see `Drop`).
    _root: tempfile::TempDir,
    pub layout: Layout,
    pub driver: FakeDriver,
    pub config: Config,
    /// The host's network side, shared by the daemons a test starts (bridge networking).
    pub host_net: Arc<FakePrivileged>,
    /// Start daemons with no networking instead of the bridge (snapshots refuse bridged VMs).
    pub no_network: bool,
}

impl Harness {
    /// Daemons with the default configuration, but no standbys (the fake guest cannot
    /// take an identity, and background restores would race the tests' VM counts).
    pub fn new() -> Harness {
        let mut config = Config::default();
        config.images.standbys = 0;
        Harness::with_config(config)
    }

    /// A harness whose daemons run with `config`.
    pub fn with_config(config: Config) -> Harness {
        // Short paths: Unix socket addresses hold 107 bytes.
        let root = tempfile::Builder::new()
            .prefix("bgd")
            .tempdir_in("/tmp")
            .expect("create a temporary state directory");
        let layout = Layout {
            mode: Mode::DevUser,
            state_dir: root.path().join("state"),
            runtime_dir: root.path().join("run"),
            config_dir: root.path().join("config"),
            etc_dir: root.path().join("etc"),
            home_dir: None,
        };
        let mut fake = FakeConfig::current_exe().expect("locate the test binary");
        fake.kill_grace = Duration::from_secs(2);
        let harness = Harness {
            _root: root,
            layout,
            driver: FakeDriver::new(fake),
            config,
            host_net: Arc::new(FakePrivileged::default()),
            no_network: false,
        };
        let store = harness.open_store();
        store
            .insert_image(&fake_image(&harness.layout))
            .expect("register the test image");
        harness
    }

    pub fn open_store(&self) -> Store {
        std::fs::create_dir_all(&self.layout.state_dir).expect("create the state directory");
        Store::open(self.layout.db_path()).expect("open the state store")
    }

    /// A daemon on this state directory, on a runtime of its own, reconciled.
    pub fn start(&self) -> Incarnation {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("build a runtime");
        let selection = Selection {
            driver: DriverKind::Qemu,
            accel: Accel::Tcg,
            reason: "the fake driver of the daemon's tests".into(),
            caveat: None,
        };
        let daemon = Daemon::with_parts(Parts {
            layout: self.layout.clone(),
            config: self.config.clone(),
            defaults: self.config.vm_defaults_resolved(None, None),
            // An unknown host: no guest is refused for its size.
            host: None,
            boot_timeout: banger_config::env::BUILTIN_BOOT_TIMEOUT,
            store: self.open_store(),
            driver: Drivers::fixed(
                &self.layout,
                &self.config,
                Driver::Fake(self.driver.clone()),
                selection.clone(),
            ),
            selection: Ok(selection),
            runner: Arc::new(RealRunner),
            network: self.network(),
        });
        rt.block_on(async {
            crate::vms::reconcile::reconcile(&daemon).await;
            crate::net::release::sweep(&daemon).await;
            crate::vms::cgroup::sweep(&daemon);
        });
        Incarnation { rt, daemon }
    }

    /// Bridge networking through the fake host's privileged interface.
    fn network(&self) -> NetworkSource {
        if self.no_network {
            return NetworkSource::Fixed {
                selection: ModeSelection {
                    networking: Networking::None,
                    preference: Resolved::new(NetworkMode::None, Provenance::Config),
                    reason: "the daemon's tests without a network".into(),
                },
                privileged: None,
            };
        }
        let privileged: Arc<dyn Privileged> = self.host_net.clone();
        NetworkSource::Fixed {
            selection: ModeSelection {
                networking: Networking::BridgeInProcess,
                preference: Resolved::new(NetworkMode::Auto, Provenance::Builtin),
                reason: "the fake host of the daemon's tests".into(),
            },
            privileged: Some(privileged),
        }
    }

    /// Every fake VMM process (or launcher) using this state directory.
    pub fn vmm_processes(&self) -> Vec<banger_vmm::process::ProcessIdentity> {
        banger_vmm::process::find_using_dir(&self.driver.config().program, &self.layout.vms_dir())
            .expect("scan /proc")
    }

    /// What must hold after reconciliation, whatever happened before: no VMM without a live
    /// row recording it, no transitional state, no directory without a row, no intent, no
    /// temporary file.
    pub fn assert_consistent(&self) {
        let store = self.open_store();
        let vms = store.list_vms().expect("list VMs");
        for vm in &vms {
            assert!(
                !matches!(vm.state, VmState::Starting | VmState::Stopping),
                "VM {} is still {} after reconciliation",
                vm.name,
                vm.state
            );
        }
        let recorded: Vec<u32> = vms
            .iter()
            .filter(|vm| vm.state == VmState::Running)
            .filter_map(crate::vms::runtime_of)
            .map(|rt| rt.pid)
            .collect();
        for process in self.vmm_processes() {
            assert!(
                recorded.contains(&process.pid),
                "VMM process {} runs without a running VM recording it (VMs: {vms:?})",
                process.pid
            );
        }
        assert_eq!(store.list_intents().expect("list intents"), vec![]);
        let dirs = list(&self.layout.vms_dir());
        for dir in &dirs {
            assert!(
                vms.iter().any(|vm| vm.dir == *dir),
                "directory {} has no VM",
                dir.display()
            );
        }
        for vm in &vms {
            if vm.state != VmState::Failed {
                assert!(vm.dir.is_dir(), "VM {} lost its directory", vm.name);
            }
        }
        self.assert_network_consistent(&store, &vms);
    }

    /// Only active VMs hold networking: a TAP, an address, port forwards; the bridge and
    /// NAT table exist exactly while some VM is bridged.
    fn assert_network_consistent(&self, store: &Store, vms: &[banger_store::VmRecord]) {
        let active: Vec<&banger_store::VmRecord> =
            vms.iter().filter(|vm| vm.state.is_active()).collect();
        let host = self.host_net.inventory_now();
        for tap in &host.taps {
            assert!(
                active
                    .iter()
                    .any(|vm| banger_helper_proto::TapName::for_vm(&vm.id).as_ref() == Ok(tap)),
                "TAP {tap} belongs to no active VM (VMs: {vms:?})"
            );
        }
        let leases = store.list_leases().expect("list leases");
        for lease in &leases {
            assert!(
                active.iter().any(|vm| vm.id == lease.vm_id),
                "address {} is leased to {}, which is not active",
                lease.address,
                lease.vm_id
            );
        }
        for publish in &host.publishes {
            assert!(
                leases.iter().any(|l| l.address == publish.guest_addr),
                "port forward {publish} goes to no leased address"
            );
        }
        for (id, mode) in store.list_vm_networks().expect("list networks") {
            assert!(
                active.iter().any(|vm| vm.id == id),
                "VM {id} is recorded holding {mode} networking but is not active"
            );
        }
        if active.is_empty() {
            assert!(
                host.bridge.is_none() && !host.nat,
                "the bridge or NAT table outlived the last VM: {host:?}"
            );
        }
    }
}

impl Drop for Harness {
    /// No fake VMM outlives its test.
    fn drop(&mut self) {
        for process in self.vmm_processes() {
            let _ = banger_vmm::process::signal(process, libc::SIGKILL);
        }
    }
}

/// A running daemon and the runtime it lives on.
pub struct Incarnation {
    pub rt: tokio::runtime::Runtime,
    pub daemon: Arc<Daemon>,
}

impl Incarnation {
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.rt.block_on(future)
    }

    /// Die as a SIGKILL would: no more of this daemon's code runs once this returns (its
    /// tasks are dropped where they stand). Its VMMs, being other processes, live on.
    ///
    /// Not `shutdown_background`: that returns while a worker is still in the middle of a
    /// poll, whose synchronous part (a store write, `remove_dir_all`) then ran alongside the
    /// next incarnation's reconciliation — two daemons at once, which the real one's lock
    /// rules out — and left a `remove` intent or a VM without its directory (chaos test,
    /// 2 in 40 runs). Waiting for the workers is the same as a kill a moment later.
    pub fn kill(self) {
        let Incarnation { rt, daemon } = self;
        rt.shutdown_timeout(KILL_PATIENCE);
        drop(daemon);
    }

    /// Create VM `name` (small disk), started or not.
    pub fn create(&self, name: &str, start: bool) -> banger_api::VmView {
        self.block_on(crate::vms::create(
            &self.daemon,
            request(name, start),
            &banger_system::progress::NoProgress,
        ))
        .unwrap_or_else(|e| panic!("create {name}: {} ({:?})", e.message, e.hint))
    }

    /// Run `argv` in VM `name` through its agent; its stdout.
    pub fn exec_stdout(&self, name: &str, argv: &[&str]) -> String {
        self.block_on(async {
            let vm = crate::vms::lookup(&self.daemon, name).expect("look the VM up");
            let client = crate::vms::client_for(&self.daemon, &vm)
                .await
                .unwrap_or_else(|e| panic!("agent of {name}: {}", e.message));
            let out = client
                .exec(banger_agent_client::ExecRequest::new(argv.iter().copied()))
                .await
                .expect("start exec")
                .wait_with_output()
                .await
                .expect("exec output");
            assert!(out.status.success(), "{argv:?} failed: {out:?}");
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
    }
}

pub fn request(name: &str, start: bool) -> CreateVmRequest {
    CreateVmRequest {
        name: Some(name.to_string()),
        disk: Some("64M".to_string()),
        image: Some("minimal".to_string()),
        start,
        ..CreateVmRequest::default()
    }
}

/// Wait up to [`WAIT`] for `done`.
pub fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn list(dir: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries.flatten().map(|e| e.path()).collect(),
        Err(_) => Vec::new(),
    }
}

fn fake_image(layout: &Layout) -> ImageRecord {
    let dir = layout.image_dir("minimal");
    ImageRecord {
        name: "minimal".into(),
        kernel_path: dir.join("vmlinux"),
        kernel_format: "elf-vmlinux".into(),
        bzimage_path: None,
        initrd_path: Some(dir.join("initrd.cpio")),
        rootfs_path: None,
        source: "test:fake".into(),
        kernel_release: Some("6.1.0-test".into()),
        dir,
        created_at: banger_store::now_rfc3339(),
        size_bytes: 0,
        kernel_pvh: Some(true),
        init: None,
        config_json: None,
        digest: None,
    }
}
