//! Network namespaces for the helper's tests: each [`Netns`] is a fresh namespace the
//! test owns (never the host's), alive while the value lives, with the host tools (`ip`,
//! `nft`, `iptables-*`) run inside it, and small TCP/UDP servers that report who reached
//! them.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod lab;

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub fn require_root() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "these tests create network namespaces, bridges and nftables tables: run them as root (CI does)"
    );
}

/// A network namespace of the test's own.
pub struct Netns {
    fd: File,
}

impl Netns {
    /// A fresh namespace with its loopback up.
    pub fn new() -> Netns {
        require_root();
        let fd = std::thread::spawn(|| {
            // SAFETY: unshare only moves this (short-lived) thread into a new namespace.
            let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
            assert_eq!(
                rc,
                0,
                "unshare(CLONE_NEWNET): {}",
                std::io::Error::last_os_error()
            );
            File::open("/proc/thread-self/ns/net").unwrap()
        })
        .join()
        .unwrap();
        let ns = Netns { fd };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// Where `ip link set DEV netns …` finds this namespace.
    pub fn path(&self) -> String {
        format!("/proc/{}/fd/{}", std::process::id(), self.fd.as_raw_fd())
    }

    fn enter(&self) {
        // SAFETY: setns moves only the calling thread, into a namespace fd we hold open.
        let rc = unsafe { libc::setns(self.fd.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
    }

    /// Run `f` on a thread inside the namespace.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|s| {
            s.spawn(|| {
                self.enter();
                f()
            })
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
        })
    }

    /// Start `f` on a thread inside the namespace that outlives this call.
    pub fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let fd = self.fd.try_clone().unwrap();
        std::thread::spawn(move || {
            Netns { fd }.enter();
            f()
        })
    }

    /// Run a program inside the namespace; its stdout, or a panic with its stderr.
    pub fn cmd(&self, program: &str, args: &[&str]) -> String {
        let out = self.try_cmd(program, args);
        assert!(out.0, "{program} {}: {}", args.join(" "), out.1);
        out.1
    }

    /// Run a program inside the namespace: (succeeded, stdout or stderr).
    pub fn try_cmd(&self, program: &str, args: &[&str]) -> (bool, String) {
        self.run(|| {
            let out = std::process::Command::new(program)
                .args(args)
                .output()
                .unwrap_or_else(|e| panic!("cannot run {program} (is it installed?): {e}"));
            let ok = out.status.success();
            let text = if ok { out.stdout } else { out.stderr };
            (ok, String::from_utf8_lossy(&text).into_owned())
        })
    }

    pub fn ip(&self, args: &[&str]) -> String {
        self.cmd("ip", args)
    }

    pub fn sysctl(&self, key: &str) -> String {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        self.run(|| std::fs::read_to_string(&path).unwrap().trim().to_string())
    }

    pub fn set_sysctl(&self, key: &str, value: &str) {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        self.run(|| std::fs::write(&path, value).unwrap());
    }

    /// The names of the namespace's links.
    pub fn links(&self) -> Vec<String> {
        let text = self.ip(&["-o", "link", "show"]);
        let mut names: Vec<String> = text
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n).to_string())
            .collect();
        names.sort();
        names
    }

    /// Connect to `to` over TCP (from `from`, when given) and read the line the server
    /// sends; `Err` when no connection is made within `timeout`.
    pub fn tcp(
        &self,
        to: SocketAddr,
        from: Option<&str>,
        timeout: Duration,
    ) -> Result<String, String> {
        self.run(|| {
            let stream = match from {
                None => TcpStream::connect_timeout(&to, timeout).map_err(|e| e.to_string())?,
                Some(src) => connect_from(src, to, timeout)?,
            };
            stream.set_read_timeout(Some(timeout)).unwrap();
            let mut line = String::new();
            BufReader::new(stream)
                .read_line(&mut line)
                .map_err(|e| e.to_string())?;
            Ok(line.trim().to_string())
        })
    }

    /// Send one UDP datagram to `to` and wait up to `timeout` for the answer.
    pub fn udp(&self, to: SocketAddr, timeout: Duration) -> Result<String, String> {
        self.run(|| {
            let sock = UdpSocket::bind("0.0.0.0:0").unwrap();
            sock.set_read_timeout(Some(timeout)).unwrap();
            sock.send_to(b"ping", to).map_err(|e| e.to_string())?;
            let mut buf = [0u8; 256];
            let (n, _) = sock.recv_from(&mut buf).map_err(|e| e.to_string())?;
            Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
        })
    }
}

/// A TCP connection from the local address `src` (a raw bind, so a test can use an
/// address the kernel would not pick).
fn connect_from(src: &str, to: SocketAddr, timeout: Duration) -> Result<TcpStream, String> {
    use std::os::fd::FromRawFd;
    let src: SocketAddr = format!("{src}:0").parse().unwrap();
    // std has no bind-before-connect; build the socket by hand.
    // SAFETY: plain socket(2); the fd is owned by the TcpStream below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0);
    // SAFETY: fd is a fresh socket nobody else owns.
    let stream = unsafe { TcpStream::from_raw_fd(fd) };
    let sa = |addr: SocketAddr| {
        let SocketAddr::V4(v4) = addr else {
            panic!("IPv4 only")
        };
        libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: v4.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(*v4.ip()).to_be(),
            },
            sin_zero: [0; 8],
        }
    };
    let local = sa(src);
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: local is a valid sockaddr_in of `len` bytes.
    let rc = unsafe { libc::bind(fd, (&raw const local).cast(), len) };
    if rc != 0 {
        return Err(format!("bind {src}: {}", std::io::Error::last_os_error()));
    }
    stream.set_write_timeout(Some(timeout)).unwrap();
    // A blocking connect bounded by SO_SNDTIMEO.
    let remote = sa(to);
    // SAFETY: remote is a valid sockaddr_in of `len` bytes.
    let rc = unsafe { libc::connect(fd, (&raw const remote).cast(), len) };
    if rc != 0 {
        return Err(format!(
            "connect {to} from {src}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(stream)
}

/// A server that answers every TCP connection with the peer's address and every UDP
/// datagram with "PEER_ADDRESS"; it records the UDP senders it saw. Stopped on drop.
pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    ns: File,
    pub udp_seen: Arc<std::sync::Mutex<Vec<String>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Server {
    pub fn start(ns: &Netns, addr: &str) -> Server {
        let addr: SocketAddr = addr.parse().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let udp_seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (tcp, udp) = ns.run(|| {
            (
                TcpListener::bind(addr).unwrap(),
                UdpSocket::bind(addr).unwrap(),
            )
        });
        let mut threads = Vec::new();
        let flag = Arc::clone(&stop);
        threads.push(ns.spawn(move || {
            for conn in tcp.incoming() {
                if flag.load(Ordering::SeqCst) {
                    return;
                }
                if let Ok(mut conn) = conn {
                    let peer = conn
                        .peer_addr()
                        .map(|p| p.ip().to_string())
                        .unwrap_or_default();
                    let _ = writeln!(conn, "{peer}");
                }
            }
        }));
        let flag = Arc::clone(&stop);
        let seen = Arc::clone(&udp_seen);
        threads.push(ns.spawn(move || {
            let mut buf = [0u8; 256];
            while let Ok((_, peer)) = udp.recv_from(&mut buf) {
                if flag.load(Ordering::SeqCst) {
                    return;
                }
                let peer_ip = peer.ip().to_string();
                seen.lock().unwrap().push(peer_ip.clone());
                let _ = udp.send_to(peer_ip.as_bytes(), peer);
            }
        }));
        Server {
            addr,
            stop,
            ns: ns.fd.try_clone().unwrap(),
            udp_seen,
            threads,
        }
    }

    pub fn udp_senders(&self) -> Vec<String> {
        self.udp_seen.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake both loops from inside their namespace.
        let ns = Netns {
            fd: self.ns.try_clone().unwrap(),
        };
        let addr = self.addr;
        ns.run(|| {
            let _ = TcpStream::connect_timeout(&addr, Duration::from_secs(5));
            let _ = UdpSocket::bind("0.0.0.0:0").and_then(|s| s.send_to(b"stop", addr));
        });
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
