//! End to end: bridge networking on real guests (minimal image, QEMU), with the daemon in a
//! network namespace of the test's own and the "outside" in another. The guest gets its
//! address and reaches an outside server; a published TCP port reaches a server in the
//! guest (UDP, and user-mode publishing, are in `publish.rs`: busybox has no UDP server); two VMs get distinct addresses; `vm rm`, a killed VMM and a killed daemon each
//! give back the TAP, the address and the rules — and the bridge and NAT table go with the
//! last VM.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use banger_e2e::bridgelab::BridgeLab;
use banger_e2e::netlab::{NetLab, OUTSIDE, UPLINK};
use banger_e2e::stdout;

const PATIENCE: Duration = Duration::from_secs(60);

type Lab = BridgeLab;

/// Retry `f` until it returns `Some`, for up to [`PATIENCE`].
fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(started.elapsed() < PATIENCE, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Python in the outside namespace (a client or a server).
fn outside_python(lab: &Lab, code: &str) -> Output {
    NetLab::cmd(&lab.net.outside, "python3", &["-c", code])
        .stdin(Stdio::null())
        .output()
        .expect("python3 in the outside namespace")
}

/// A root daemon's bridged QEMU is sandboxed all the same: its own uid of the reserved
/// range, seccomp filtering, no capabilities — and on the bridge through a TAP the daemon
/// opened for it (QEMU holds a /dev/net/tun queue; the daemon no longer does).
fn assert_bridged_qemu_is_sandboxed(lab: &Lab, vm: &serde_json::Value) {
    use banger_vmm::sandbox::{IdRange, posture};
    assert!(
        nix::unistd::geteuid().is_root(),
        "bridge networking tests run the daemon as root (CI does); run them as root"
    );
    let pid = u32::try_from(vm["pid"].as_i64().expect("a running VM has a pid")).unwrap();
    let p = posture::read(pid).unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(
        IdRange::default().is_vm_id(p.uids[0]) && p.uids == [p.uids[0]; 4],
        "a bridged QEMU runs as a VM uid of the reserved range:\n{status}"
    );
    assert_eq!(p.seccomp, Some(2), "Seccomp: 2 (filtering)\n{status}");
    assert_eq!(p.cap_eff, Some(0), "{status}");
    let tun_fds = |pid: i32| {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|dir| {
                dir.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                    .filter(|target| target.as_os_str() == "/dev/net/tun")
                    .count()
            })
            .unwrap_or(0)
    };
    assert_eq!(
        tun_fds(i32::try_from(pid).unwrap()),
        1,
        "QEMU holds its TAP's queue"
    );
    let daemon = lab.env.daemon_pid().expect("the daemon's pid file");
    assert_eq!(
        tun_fds(daemon),
        0,
        "the daemon closed the TAP after the spawn"
    );
}

#[test]
fn bridge_networking_reaches_out_publishes_in_and_leaves_nothing() {
    let lab = Lab::new("");
    // The outside's web server.
    let site = tempfile::tempdir().unwrap();
    std::fs::write(site.path().join("hello.txt"), "hello from outside\n").unwrap();
    let mut server = lab.net.serve_http(site.path());

    lab.ok(&[
        "vm",
        "run",
        "-d",
        "--name",
        "a",
        "-p",
        "8080:80",
        "-p",
        "5353:5353/udp",
    ]);
    lab.ok(&["vm", "run", "-d", "--name", "b"]);
    let (a, b) = (lab.inspect("a"), lab.inspect("b"));
    assert_eq!(a["network"]["mode"], "bridge", "{a}");
    let addr_a = a["network"]["address"].as_str().unwrap().to_string();
    let addr_b = b["network"]["address"].as_str().unwrap().to_string();
    assert_ne!(addr_a, addr_b, "two VMs, one address");
    assert_eq!(
        a["network"]["published"],
        serde_json::json!(["8080:80/tcp", "5353:5353/udp"])
    );
    assert_eq!(lab.taps().len(), 2);
    assert_bridged_qemu_is_sandboxed(&lab, &a);

    // The guest has its address, and reaches the outside through NAT.
    let shown = lab.sh(
        "a",
        "ip -4 -o addr show 2>/dev/null || busybox ip -4 -o addr show",
    );
    assert!(shown.contains(addr_a.as_str()), "{shown}");
    // (busybox's nc: its static wget crashes resolving even a literal address.)
    let request =
        format!("printf 'GET /hello.txt HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 5 {OUTSIDE} 8000");
    let fetched = eventually("the guest fetches from the outside", || {
        let out = lab.run(&["vm", "exec", "a", "--", "sh", "-c", &request]);
        let text = stdout(&out);
        (out.status.success() && text.contains("200 OK")).then_some(text)
    });
    assert!(fetched.ends_with("hello from outside\n"), "{fetched}");

    // Published TCP: a web server in the guest, reached from the outside.
    lab.sh("a", "mkdir -p /tmp/www && echo published > /tmp/www/index.html && busybox httpd -p 80 -h /tmp/www");
    let got = eventually("the outside reaches the published TCP port", || {
        let out = outside_python(
            &lab,
            &format!(
                "import urllib.request; print(urllib.request.urlopen('http://{UPLINK}:8080/index.html', timeout=5).read().decode(), end='')"
            ),
        );
        out.status.success().then(|| stdout(&out))
    });
    assert_eq!(got, "published\n");

    // rm gives back a's TAP, address and rules; b keeps the bridge.
    lab.ok(&["vm", "rm", "-f", "a"]);
    assert_eq!(lab.taps().len(), 1);
    let rules = lab.net.inside_ruleset();
    assert!(!rules.contains("8080"), "a's forward outlived it:\n{rules}");

    // A VMM killed behind banger's back: its TAP goes too; then the bridge and table.
    let pid = lab.inspect("b")["pid"].as_i64().unwrap();
    // SAFETY: kill sends a signal to the VMM process the daemon recorded.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    eventually("b is released", || {
        (lab.inspect("b")["state"] == "stopped" && lab.taps().is_empty()).then_some(())
    });
    lab.assert_clean();

    // A daemon killed while a VM runs, and the VMM gone meanwhile: the next daemon
    // gives everything back at start.
    lab.ok(&["vm", "start", "b"]);
    assert_eq!(lab.taps().len(), 1);
    let vmm = lab.inspect("b")["pid"].as_i64().unwrap();
    let daemon = lab.env.daemon_pid().expect("daemon pid");
    // SAFETY: as above, for the daemon and the VMM of this test.
    unsafe {
        libc::kill(daemon, libc::SIGKILL);
        libc::kill(vmm as i32, libc::SIGKILL);
    }
    std::thread::sleep(Duration::from_millis(500));
    lab.ok(&["vm", "ls"]);
    assert_eq!(lab.inspect("b")["state"], "stopped");
    lab.assert_clean();
    lab.ok(&["vm", "rm", "b"]);
    lab.ok(&["daemon", "stop"]);
    let _ = server.kill();
    let _ = server.wait();
}
