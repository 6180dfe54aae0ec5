//! Starting the fake and talking HTTP to it, for the rule tests and the driver tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const FAKE: &str = env!("CARGO_BIN_EXE_fake-firecracker");

/// The two releases the notes observed.
pub const BOTH: [&str; 2] = ["1.5.0", "1.14.1"];

pub fn json(v: serde_json::Value) -> String {
    v.to_string()
}

/// The `banger-agent` the fake's guest runs, built (or found up to date) by cargo beside the
/// fake: the fake crate cannot depend on the agent's binary directly.
pub fn agent_binary() -> PathBuf {
    static AGENT: OnceLock<PathBuf> = OnceLock::new();
    AGENT
        .get_or_init(|| {
            let dir = Path::new(FAKE).parent().unwrap().to_path_buf();
            let agent = dir.join("banger-agent");
            // Always ask cargo: a binary left over from an older tree would speak an older
            // protocol (cargo answers at once when it is up to date).
            let mut cmd = Command::new(env!("CARGO"));
            cmd.args([
                "build",
                "--quiet",
                "-p",
                "banger-agent",
                "--bin",
                "banger-agent",
            ]);
            if dir.ends_with("release") {
                cmd.arg("--release");
            }
            let status = cmd.status().expect("run cargo to build banger-agent");
            assert!(status.success(), "cargo build -p banger-agent failed");
            assert!(agent.is_file(), "{} was not built", agent.display());
            agent
        })
        .clone()
}

/// Any x86-64 ELF executable does as a "kernel" for the fake: this test binary.
pub fn elf_kernel() -> PathBuf {
    std::env::current_exe().unwrap()
}

/// A running fake.
pub struct Fake {
    pub dir: tempfile::TempDir,
    pub child: Child,
    pub sock: PathBuf,
}

impl Fake {
    pub fn start(version: &str) -> Fake {
        Fake::start_with(version, 50, &[])
    }

    pub fn start_with(version: &str, boot_ms: u64, extra_args: &[&str]) -> Fake {
        let dir = tempfile::Builder::new()
            .prefix("fakefc")
            .tempdir_in("/tmp")
            .unwrap();
        let sock = dir.path().join("api.sock");
        let child = Command::new(FAKE)
            .arg("--api-sock")
            .arg(&sock)
            .args(extra_args)
            .env("FAKE_FIRECRACKER_VERSION", version)
            .env("FAKE_FIRECRACKER_AGENT", agent_binary())
            .env("FAKE_FIRECRACKER_BOOT_MS", boot_ms.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_listening(&sock);
        Fake { dir, child, sock }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// One request on a fresh connection: (status, body).
    pub fn call(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        call(&self.sock, method, path, body)
    }

    /// A call that must answer 204.
    pub fn ok(&self, method: &str, path: &str, body: &str) {
        let (status, text) = self.call(method, path, body);
        assert_eq!(status, 204, "{method} {path} {body}: {text}");
    }

    /// A call that must answer 400 with this `fault_message`.
    pub fn fault(&self, method: &str, path: &str, body: &str) -> String {
        let (status, text) = self.call(method, path, body);
        assert_eq!(status, 400, "{method} {path} {body}: {text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["fault_message"]
            .as_str()
            .unwrap_or_else(|| panic!("no fault_message in {text}"))
            .to_owned()
    }

    pub fn state(&self) -> String {
        let (status, text) = self.call("GET", "/", "");
        assert_eq!(status, 200, "{text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["state"].as_str().unwrap().to_owned()
    }

    /// A minimal bootable configuration: kernel, work drive, vsock.
    pub fn configure(&self) {
        self.ok(
            "PUT",
            "/boot-source",
            &serde_json::json!({
                "kernel_image_path": elf_kernel(),
                "boot_args": "console=ttyS0 reboot=k panic=1 pci=off banger.agent=vsock:1024",
            })
            .to_string(),
        );
        let disk = self.path("work.ext4");
        std::fs::write(&disk, vec![0u8; 4096]).unwrap();
        self.ok(
            "PUT",
            "/drives/work",
            &serde_json::json!({
                "drive_id": "work", "path_on_host": disk, "is_root_device": false,
                "is_read_only": false,
            })
            .to_string(),
        );
        self.ok(
            "PUT",
            "/vsock",
            &serde_json::json!({ "guest_cid": 3, "uds_path": self.path("v.sock") }).to_string(),
        );
    }

    pub fn boot(&self) {
        self.configure();
        self.ok("PUT", "/actions", r#"{"action_type":"InstanceStart"}"#);
    }

    /// Wait for the process to end; its exit status code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(Instant::now() < deadline, "the fake did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Everything the fake printed on stdout (its log before PUT /logger, and the console).
    pub fn stdout_after_exit(&mut self) -> String {
        let mut out = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        out
    }
}

impl Fake {
    /// End the process (as SIGTERM does Firecracker) but keep its directory.
    pub fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: kill(2) on our own child's pid, which has not been reaped yet.
            unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
            let _ = self.child.wait();
        }
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits until `socket` accepts a connection. Not until the file exists: a Unix socket's file
/// appears at `bind`, before `listen`, and a connect in between is refused.
pub fn wait_listening(socket: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while UnixStream::connect(socket).is_err() {
        assert!(
            Instant::now() < deadline,
            "{} never accepted a connection",
            socket.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn call(sock: &Path, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    // A request the server refuses from its first line (an unsupported method) is answered
    // and the connection closed without reading the rest, as Firecracker does: the rest of
    // the write may then meet a closed socket. The answer is what the test is about.
    match s.write_all(request.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        written => written.unwrap(),
    }
    read_response(&mut BufReader::new(s))
}

pub fn read_response(r: &mut impl BufRead) -> (u16, String) {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status: u16 = line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        r.read_line(&mut h).unwrap();
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some(v) = h.strip_prefix("Content-Length: ") {
            len = v.parse().unwrap();
        }
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).unwrap();
    (status, String::from_utf8(body).unwrap())
}
