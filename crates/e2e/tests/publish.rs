//! End to end: published UDP and TCP ports on the debian image (perl, which every Debian
//! has, is the guest's UDP server), on the bridge and through QEMU's user-mode network —
//! each in a network namespace of the test's own, reached from outside it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::{Duration, Instant};

use banger_e2e::bridgelab::BridgeLab;
use banger_e2e::netlab::{NetLab, UPLINK};
use banger_e2e::{Env, stderr, stdout};

const PATIENCE: Duration = Duration::from_secs(60);

/// Receives one datagram on UDP 5353 into /tmp/udp.txt, and answers it.
const UDP_SERVER: &str = "perl -MIO::Socket::INET -e '$s = IO::Socket::INET->new(LocalPort => 5353, Proto => q(udp)) or die $!; $s->recv($m, 100); open(F, q(>/tmp/udp.txt)); print F $m; close F; $s->send(q(pong))' >/dev/null 2>&1 &";
/// Answers one TCP connection on 80.
const TCP_SERVER: &str = "perl -MIO::Socket::INET -e '$s = IO::Socket::INET->new(LocalPort => 80, Listen => 1, ReuseAddr => 1) or die $!; $c = $s->accept; print $c qq(tcp-ok\\n); close $c' >/dev/null 2>&1 &";

/// From the outside namespace: a UDP datagram to `addr:port` and its answer; a TCP line.
fn probe(lab: &NetLab, addr: &str, udp_port: u16, tcp_port: u16) -> (String, String) {
    let code = format!(
        "import socket\n\
         u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(2)\n\
         answer = ''\n\
         for _ in range(20):\n\
         \x20   u.sendto(b'datagram', ('{addr}', {udp_port}))\n\
         \x20   try:\n\
         \x20       answer = u.recvfrom(100)[0].decode(); break\n\
         \x20   except OSError: pass\n\
         t = socket.create_connection(('{addr}', {tcp_port}), timeout=10)\n\
         print(answer); print(t.recv(100).decode(), end='')\n"
    );
    let started = Instant::now();
    loop {
        let out = NetLab::cmd(&lab.outside, "python3", &["-c", &code])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        if out.status.success() {
            let text = stdout(&out);
            let mut lines = text.lines();
            return (
                lines.next().unwrap_or_default().to_string(),
                lines.next().unwrap_or_default().to_string(),
            );
        }
        assert!(
            started.elapsed() < PATIENCE,
            "the outside cannot reach {addr}: {}",
            stderr(&out)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn published_ports_reach_the_guest(mode: &str) {
    let env =
        Env::debian().unwrap_or_else(|e| panic!("cannot set up a debian e2e environment: {e:#}"));
    let lab = BridgeLab::with(env, "", mode);
    lab.ok(&[
        "vm",
        "run",
        "-d",
        "--name",
        "pub",
        "--memory",
        "512",
        "-p",
        "8053:5353/udp",
        "-p",
        "8081:80",
    ]);
    let vm = lab.inspect("pub");
    assert_eq!(vm["network"]["mode"], mode, "{vm}");
    lab.sh("pub", UDP_SERVER);
    lab.sh("pub", TCP_SERVER);
    // User mode forwards the host's own addresses: reached from the outside through the
    // inside's uplink address as well.
    let (udp, tcp) = probe(&lab.net, UPLINK, 8053, 8081);
    assert_eq!(udp, "pong", "no UDP answer through {mode} networking");
    assert_eq!(tcp, "tcp-ok");
    let got = lab.ok(&["vm", "exec", "pub", "--", "cat", "/tmp/udp.txt"]);
    assert_eq!(got, "datagram");
    lab.ok(&["vm", "rm", "-f", "pub"]);
    lab.ok(&["daemon", "stop"]);
}

#[test]
fn published_udp_and_tcp_reach_the_guest_on_the_bridge() {
    published_ports_reach_the_guest("bridge");
}

#[test]
fn published_udp_and_tcp_reach_the_guest_through_user_mode() {
    published_ports_reach_the_guest("user");
}

/// A host port another program holds is refused before anything is made, naming the port
/// and the program: `vm run` leaves no VM, `vm start` leaves the VM as it was, and once the
/// port is free the VM starts.
#[test]
fn a_busy_host_port_is_named_before_the_vm_starts() {
    let env = Env::new().unwrap_or_else(|e| panic!("cannot set up an e2e environment: {e:#}"));
    let holder = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    let publish = format!("{port}:80");
    let me = format!("in use by pid {}", std::process::id());

    let out = env.run(["vm", "run", "-d", "--name", "busy", "-p", &publish]);
    assert!(!out.status.success(), "vm run with a busy port succeeded");
    let err = stderr(&out);
    assert!(
        err.contains(&format!("host port {port}/tcp")) && err.contains(&me),
        "{err}"
    );
    assert!(err.contains("-p OTHER:GUEST"), "says what to do: {err}");
    assert!(
        !stdout(&env.run(["vm", "ls"])).contains("busy"),
        "vm run left a VM behind"
    );

    env.ok(["vm", "create", "--name", "later", "-p", &publish]);
    let out = env.run(["vm", "start", "later"]);
    assert!(!out.status.success(), "vm start with a busy port succeeded");
    assert!(stderr(&out).contains(&me), "{}", stderr(&out));
    let state = env.vm_json("later")["state"].as_str().unwrap().to_string();
    assert_ne!(state, "running");

    drop(holder);
    env.ok(["vm", "start", "later"]);
    assert_eq!(env.vm_json("later")["state"], "running");
    env.ok(["vm", "rm", "-f", "later"]);
}
