//! Test harness: each [`Env`] is an isolated banger installation (its own state,
//! runtime, config and etc dirs, hence its own daemon) driving the real `banger`
//! binary. The `minimal` image is built once per machine into a template and shared
//! read-only by every environment.

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use anyhow::{Context, bail};

pub mod bench;
pub mod bridgelab;
pub mod direct;
mod fake_firecracker;
pub mod hostile;
pub mod netlab;
pub mod oci;
pub mod pty;
pub mod python;
mod reaper;
pub mod standby;
mod template;

pub use fake_firecracker::fake_firecracker_bin;
pub use template::Recipe;
use template::template;
pub mod within;

/// The banger binary under test: `$BANGER_BIN`, else `target/release/banger`
/// (the Makefile builds it, with the static agent beside it).
pub fn banger_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("BANGER_BIN") {
        return PathBuf::from(bin);
    }
    workspace_root().join("target/release/banger")
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn check_binaries() -> anyhow::Result<PathBuf> {
    let bin = banger_bin();
    let agent = bin.with_file_name("banger-agent");
    if !bin.is_file() || !agent.is_file() {
        bail!(
            "end-to-end tests need the release binaries: {} and {} are missing.\n\
             Run `make build` (or `make test`, which builds them), or set BANGER_BIN.",
            bin.display(),
            agent.display()
        );
    }
    Ok(bin)
}

/// One isolated banger installation.
pub struct Env {
    pub bin: PathBuf,
    pub root: tempfile::TempDir,
    /// Held for the installation's life: see [`reaper`].
    _owner: reaper::OwnerLock,
}

impl Env {
    /// A fresh installation whose store already has the `minimal` image registered, and
    /// which uses it by default (the fastest image: most tests are about banger, not the
    /// guest's userland).
    pub fn new() -> anyhow::Result<Env> {
        Self::from_template(Recipe::Minimal)
    }

    /// A fresh installation with the `debian` image (the product's default) registered.
    /// Building it needs root (mmdebstrap) and the Debian archive; it is built once per
    /// machine and agent.
    pub fn debian() -> anyhow::Result<Env> {
        Self::from_template(Recipe::Debian)
    }

    /// A fresh installation with `debian-systemd` (the debian recipe with `--init
    /// systemd`) registered and the default. Built like [`Env::debian`], in its own
    /// template.
    pub fn debian_systemd() -> anyhow::Result<Env> {
        Self::from_template(Recipe::DebianSystemd)
    }

    fn from_template(recipe: Recipe) -> anyhow::Result<Env> {
        let bin = check_binaries()?;
        let template = template(recipe)?;
        // Short paths: Unix socket paths are limited to 108 bytes.
        static SWEPT: std::sync::Once = std::sync::Once::new();
        SWEPT.call_once(|| reaper::sweep(Path::new("/tmp"), "bg"));
        let root = tempfile::Builder::new().prefix("bg").tempdir_in("/tmp")?;
        let _owner = reaper::OwnerLock::take(root.path())?;
        let env = Env { bin, root, _owner };
        std::fs::create_dir_all(env.state_dir())?;
        for suffix in ["", "-wal"] {
            let src = template.join(format!("state/state.db{suffix}"));
            if src.exists() {
                std::fs::copy(&src, env.state_dir().join(format!("state.db{suffix}")))?;
            }
        }
        let config = env.root.path().join("config");
        std::fs::create_dir_all(&config)?;
        // User-mode networking: as root, `auto` would make a bridge and NAT rules in the
        // host's own namespace. Tests of bridge networking run in namespaces of their own
        // (`netlab`) and set the mode themselves.
        std::fs::write(
            config.join("config.toml"),
            format!(
                "default_image_name = \"{}\"\n\n[network]\nmode = \"user\"\n",
                recipe.name()
            ),
        )?;
        Ok(env)
    }

    pub fn state_dir(&self) -> PathBuf {
        self.root.path().join("state")
    }

    pub fn runtime_dir(&self) -> PathBuf {
        self.root.path().join("run")
    }

    /// `program args` with this installation's environment (BANGER_* variables), e.g. ssh,
    /// whose ProxyCommand runs banger.
    pub fn tool<I, S>(&self, program: &str, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        env_command(Path::new(program), self.root.path(), args)
    }

    /// The config directory of this installation (ssh_config, known_hosts, the key).
    pub fn config_dir(&self) -> PathBuf {
        self.root.path().join("config")
    }

    /// A `banger` command bound to this installation, run in network namespace `ns`
    /// (`ip netns exec`): a daemon it starts lives there.
    pub fn cmd_in_netns<I, S>(&self, ns: &str, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut argv: Vec<std::ffi::OsString> = vec!["netns".into(), "exec".into(), ns.into()];
        argv.push(self.bin.clone().into_os_string());
        argv.extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        env_command(Path::new("ip"), self.root.path(), argv)
    }

    /// A `banger` command bound to this installation.
    pub fn cmd<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        env_command(&self.bin, self.root.path(), args)
    }

    /// `bash -c LINE` with this installation's environment and the banger under test
    /// first on PATH: for running documented example command lines as written.
    pub fn shell(&self, line: &str) -> Command {
        let mut cmd = env_command(Path::new("/bin/bash"), self.root.path(), ["-c", line]);
        let dir = self.bin.parent().map(Path::to_path_buf).unwrap_or_default();
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut paths = vec![dir];
        paths.extend(std::env::split_paths(&path));
        if let Ok(joined) = std::env::join_paths(paths) {
            cmd.env("PATH", joined);
        }
        cmd
    }

    /// Run to completion with stdin closed.
    pub fn run<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.cmd(args);
        cmd.stdin(Stdio::null());
        cmd.output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.bin.display()))
    }

    /// Run with `input` on stdin.
    pub fn run_with_stdin<I, S>(&self, args: I, input: &[u8]) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut child = self
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.bin.display()));
        let mut stdin = child.stdin.take().expect("piped stdin");
        let input = input.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let out = child.wait_with_output().expect("wait for banger");
        let _ = writer.join();
        out
    }

    /// Run and insist on success; returns stdout.
    pub fn ok<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<_> = args
            .into_iter()
            .map(|a| a.as_ref().to_os_string())
            .collect();
        let out = self.run(&args);
        assert!(
            out.status.success(),
            "banger {:?} failed ({}):\nstdout: {}\nstderr: {}\n{}",
            args,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.diagnostics()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Run `script` with `sh -c` in VM `vm` through `vm exec`, insist on success; its stdout.
    pub fn sh(&self, vm: &str, script: &str) -> String {
        self.ok(["vm", "exec", vm, "--", "sh", "-c", script])
    }

    /// Replace this installation's settings with `text`, keeping the default image its
    /// template set.
    pub fn write_config(&self, text: &str) -> anyhow::Result<()> {
        let dir = self.root.path().join("config");
        std::fs::create_dir_all(&dir)?;
        let file = dir.join("config.toml");
        let kept: String = std::fs::read_to_string(&file)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("default_image_name"))
            .map(|l| format!("{l}\n"))
            .collect();
        // Never bridge networking in the host's own namespace (a root daemon's `auto` would
        // make a bridge and NAT rules there, shared by every test's daemon): user mode unless
        // the test sets `[network]` itself (in a namespace of its own, see `netlab`).
        let network = if text.contains("[network]") {
            ""
        } else {
            "\n[network]\nmode = \"user\"\n"
        };
        std::fs::write(file, format!("{kept}{text}{network}"))?;
        Ok(())
    }

    /// The state of VM `name` as `banger vm inspect --json` reports it.
    pub fn vm_json(&self, name: &str) -> serde_json::Value {
        let out = self.ok(["vm", "inspect", name, "--json"]);
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("bad JSON from vm inspect: {e}: {out}"))
    }

    /// What makes guest `vm` a machine of its own: its hostname, its machine-id and 16
    /// bytes from its RNG (hex), in that order.
    pub fn guest_identity(&self, vm: &str) -> Vec<String> {
        self.sh(
            vm,
            "hostname; cat /etc/machine-id; head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n'",
        )
        .lines()
        .map(str::to_string)
        .collect()
    }

    /// Pid of this installation's daemon, from its pid file.
    pub fn daemon_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.runtime_dir().join("bangerd.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// SIGKILL this installation's daemon (a crash: no clean-up runs) and wait until it is
    /// gone. It is not our child, so its end is read from /proc (gone, or a zombie).
    pub fn kill_daemon(&self) {
        let daemon = self.daemon_pid().expect("daemon pid file");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(daemon),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap_or_else(|e| panic!("cannot kill daemon {daemon}: {e}"));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::fs::read_to_string(format!("/proc/{daemon}/stat"))
            .is_ok_and(|s| !s.contains(") Z "))
        {
            assert!(
                std::time::Instant::now() < deadline,
                "daemon {daemon} did not die"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// The daemon log, for assertion messages.
    pub fn diagnostics(&self) -> String {
        let log = std::fs::read_to_string(self.state_dir().join("daemon.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        format!(
            "daemon log (last lines):\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )
    }
}

impl Drop for Env {
    /// Remove every VM and stop the daemon, so no QEMU outlives the test, and remove the
    /// daemon's cgroup parents (a daemon a test SIGKILLed last never removed them itself).
    fn drop(&mut self) {
        if self.daemon_pid().is_none() {
            return;
        }
        let _cgroups = CgroupParents(self.state_dir());
        let out = self.run(["vm", "ls", "--json"]);
        if let Ok(vms) = serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout) {
            for vm in vms {
                if let Some(name) = vm["name"].as_str() {
                    let _ = self.run(["vm", "rm", "-f", name]);
                }
            }
        }
        let _ = self.run(["daemon", "stop"]);
    }
}

/// On drop, removes the (empty) cgroup parents a daemon with state in `.0` made: it ran
/// in this process's groups, so they are found from ours. Runs after the daemon is stopped.
struct CgroupParents(PathBuf);

impl Drop for CgroupParents {
    fn drop(&mut self) {
        let Ok(layout) = banger_vmm::sandbox::cgroup::detect_this_process() else {
            return;
        };
        let instance = banger_vmm::sandbox::cgroup::instance_name(&self.0);
        for parent in layout.parents(&instance) {
            let _ = std::fs::remove_dir(parent);
        }
    }
}

fn env_command<I, S>(bin: &Path, root: &Path, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .env("BANGER_STATE_DIR", root.join("state"))
        .env("BANGER_RUNTIME_DIR", root.join("run"))
        .env("BANGER_CONFIG_DIR", root.join("config"))
        .env("BANGER_ETC_DIR", root.join("etc"))
        .env("NO_COLOR", "1");
    cmd
}

/// A guest script: make a key for root, then log in over the guest's own loopback with the
/// real OpenSSH client, checking sshd's host key against the per-VM key the agent made,
/// retrying while sshd starts; prints `USER@HOSTNAME`.
pub const GUEST_LOOPBACK_SSH: &str = "set -e; ssh-keygen -q -t ed25519 -N '' -f /root/k; \
     mkdir -p /root/.ssh; cat /root/k.pub >> /root/.ssh/authorized_keys; \
     echo \"127.0.0.1 $(cut -d' ' -f1,2 /etc/ssh/ssh_host_ed25519_key.pub)\" > /root/known; \
     for i in $(seq 1 150); do \
       ssh -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=/root/known \
         -i /root/k root@127.0.0.1 'echo $(whoami)@$(hostname)' && exit 0; sleep 0.2; done; exit 1";

/// Lowercase hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// Seconds since the Unix epoch on the host (to compare a guest's clock with).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Copies `source` to `dest` as an executable (mode 0755) with install(1) in a child
/// process, so this multi-threaded test process never holds a write descriptor on an
/// executable that another test's fork could inherit: exec'ing it would then fail with
/// ETXTBSY ("Text file busy") for as long as that child lives.
pub fn install_executable(source: &Path, dest: &Path) -> anyhow::Result<()> {
    let status = Command::new("install")
        .arg("-m")
        .arg("0755")
        .arg(source)
        .arg(dest)
        .status()
        .context("install(1) (coreutils)")?;
    if !status.success() {
        bail!(
            "install(1) could not copy {} to {}",
            source.display(),
            dest.display()
        );
    }
    Ok(())
}
