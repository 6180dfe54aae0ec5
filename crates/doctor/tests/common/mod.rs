//! A fake host in a temp dir: every root of the layout, a scripted command runner,
//! and helpers to write executables safely.
#![allow(dead_code)]

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use banger_config::Config;
use banger_doctor::DoctorContext;
use banger_doctor::checks::network::NetworkProbe;
use banger_helper::{HelperProbe, Networking};
use banger_helper_proto::{FirewallReport, Inventory};
use banger_net::netlink::Route;
use banger_paths::{Layout, Mode};
use banger_system::{CommandOutput, CommandRunner, RealRunner};
use banger_vmm::KvmStatus;
use banger_vmm::host::kvm::{KvmIoctl, KvmProbeEnv, probe_kvm_with};

/// Answers chosen commands from a table and runs everything else for real (so fake
/// firecracker scripts really execute). Records every command it was asked to run.
#[derive(Default)]
pub struct ScriptedRunner {
    answers: HashMap<String, CommandOutput>,
    pub calls: Mutex<Vec<String>>,
}

impl ScriptedRunner {
    pub fn new() -> ScriptedRunner {
        ScriptedRunner::default()
    }

    /// Answer `command` (program and args joined by spaces) with `stdout` and `code`.
    pub fn answer(mut self, command: &str, stdout: &str, code: i32) -> ScriptedRunner {
        self.answers.insert(
            command.to_string(),
            CommandOutput {
                code: Some(code),
                stdout: stdout.as_bytes().to_vec(),
                stderr: Vec::new(),
            },
        );
        self
    }
}

impl CommandRunner for ScriptedRunner {
    fn run(&self, program: &Path, args: &[&OsStr]) -> std::io::Result<CommandOutput> {
        let mut key = program.to_string_lossy().into_owned();
        for arg in args {
            key.push(' ');
            key.push_str(&arg.to_string_lossy());
        }
        self.calls.lock().unwrap().push(key.clone());
        match self.answers.get(&key) {
            Some(answer) => Ok(answer.clone()),
            None if program.is_absolute() => RealRunner.run(program, args),
            // Never let a test reach a real apt-cache or systemctl by accident.
            None => Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no scripted answer for `{key}`"),
            )),
        }
    }
}

/// Temp dir holding every root of a layout, plus fake /etc, systemd and bin dirs.
pub struct FakeHost {
    pub dir: tempfile::TempDir,
}

impl FakeHost {
    pub fn new() -> FakeHost {
        let host = FakeHost {
            dir: tempfile::tempdir().unwrap(),
        };
        for sub in [
            "state",
            "run",
            "config",
            "etc",
            "home/.ssh",
            "systemd",
            "bin",
        ] {
            std::fs::create_dir_all(host.path(sub)).unwrap();
        }
        host
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn layout(&self, mode: Mode) -> Layout {
        Layout {
            mode,
            state_dir: self.path("state"),
            runtime_dir: self.path("run"),
            config_dir: self.path("config"),
            etc_dir: self.path("etc"),
            home_dir: Some(self.path("home")),
        }
    }

    /// A context for this fake host: real probes replaced by fixtures, tools looked
    /// up only in the fake bin dir unless `real_tools`.
    pub fn context(&self, config: Config, runner: ScriptedRunner) -> DoctorContext {
        let mut ctx = DoctorContext::from_host(self.layout(Mode::DevUser), Ok(config));
        ctx.runner = Box::new(runner);
        ctx.os_release_path = self.path("etc/os-release");
        ctx.systemd_dir = self.path("systemd");
        ctx.install_toml = self.path("etc/install.toml");
        ctx.vhost_vsock_device = self.path("dev-vhost-vsock");
        ctx.search_path = Some(self.path("bin").into_os_string());
        ctx.kvm = pvm_kvm();
        // Never the real host's helper, routes or firewall.
        ctx.network = Box::new(FakeNetwork::default());
        ctx.resolv_conf = self.path("etc/resolv.conf");
        ctx.resolved_upstream = self.path("run/resolved-upstream.conf");
        ctx.euid = 1000;
        ctx
    }

    /// Write an executable script into the fake bin dir and return its path.
    pub fn script(&self, name: &str, body: &str) -> PathBuf {
        write_script(&self.path("bin"), name, body)
    }
}

/// Write an executable shell script. The executable copy is made by install(1) in a
/// child process, so this multi-threaded test process never holds a writable handle
/// on it that another test's fork could inherit (exec would fail with ETXTBSY).
pub fn write_script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let source = dir.join(format!(".{name}.src"));
    let path = dir.join(name);
    std::fs::write(&source, format!("#!/bin/sh\n{body}\n")).unwrap();
    let out = RealRunner
        .run_str(
            "install",
            &[
                "-m",
                "0755",
                source.to_str().unwrap(),
                path.to_str().unwrap(),
            ],
        )
        .unwrap();
    assert!(out.success(), "install failed: {}", out.stderr_str());
    std::fs::remove_file(source).unwrap();
    path
}

/// A fake firecracker printing `Firecracker v<version>` like the real one.
pub fn fake_firecracker(host: &FakeHost, version: &str) -> PathBuf {
    host.script(
        "firecracker",
        &format!(
            "echo 'Firecracker v{version}'\necho\necho '2025-01-01T00:00:00.0 [anonymous-instance:main] Firecracker exiting successfully. exit_code=0'"
        ),
    )
}

/// Answers KVM_GET_API_VERSION like a real /dev/kvm.
struct ApiVersion12;

impl KvmIoctl for ApiVersion12 {
    fn api_version(&self, _device: &std::fs::File) -> std::io::Result<i32> {
        Ok(12)
    }
}

/// Run the real KVM probe against a fake /dev/kvm (a plain file) and a fake
/// /sys/module holding `module`.
fn probe_fake_kvm(module: &str) -> KvmStatus {
    let dir = tempfile::tempdir().unwrap();
    let env = KvmProbeEnv {
        dev_kvm: dir.path().join("kvm"),
        sys_module: dir.path().join("module"),
        proc_modules: dir.path().join("modules"),
    };
    std::fs::write(&env.dev_kvm, b"").unwrap();
    std::fs::create_dir_all(env.sys_module.join(module)).unwrap();
    probe_kvm_with(&env, &ApiVersion12)
}

/// KVM as on our build hosts: PVM, openable, not usable for guests.
pub fn pvm_kvm() -> KvmStatus {
    let status = probe_fake_kvm("kvm_pvm");
    assert!(status.pvm && !status.usable_for_guests, "{status:?}");
    status
}

/// KVM as on an ordinary laptop.
pub fn good_kvm() -> KvmStatus {
    let status = probe_fake_kvm("kvm_intel");
    assert!(status.usable_for_guests, "{status:?}");
    status
}

/// Canned answers for the network checks.
#[derive(Clone)]
pub struct FakeNetwork {
    pub helper: HelperProbe,
    pub routes: Result<Vec<Route>, String>,
    pub privileged: Result<Option<(Inventory, FirewallReport)>, String>,
    /// What `privileged` was asked: (networking, owner uid, euid).
    pub asked: std::sync::Arc<Mutex<Vec<(Networking, u32, u32)>>>,
}

impl Default for FakeNetwork {
    fn default() -> FakeNetwork {
        FakeNetwork {
            helper: HelperProbe::Absent("no helper socket (fake)".into()),
            routes: Ok(Vec::new()),
            privileged: Ok(None),
            asked: Default::default(),
        }
    }
}

impl NetworkProbe for FakeNetwork {
    fn helper(&self, candidates: &[PathBuf]) -> (PathBuf, HelperProbe) {
        (candidates[0].clone(), self.helper.clone())
    }

    fn routes(&self) -> Result<Vec<Route>, String> {
        self.routes.clone()
    }

    fn privileged(
        &self,
        networking: &Networking,
        owner_uid: u32,
        euid: u32,
    ) -> Result<Option<(Inventory, FirewallReport)>, String> {
        self.asked
            .lock()
            .unwrap()
            .push((networking.clone(), owner_uid, euid));
        self.privileged.clone()
    }
}
