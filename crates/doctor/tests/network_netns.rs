//! The network group against a real network namespace the test creates: the real probe,
//! the helper's real executor (in-process, and over a real helper socket), real nft and
//! iptables. Doctor must see what is there, say the fix that works, and change nothing.
//! Needs root.

use crate::common;

use std::process::Command;
use std::sync::Arc;

use banger_config::Config;
use banger_doctor::checks::network::HostNetworkProbe;
use banger_doctor::{Check, DoctorContext, Status, groups};
use banger_helper::{Executor, InProcess, Privileged, server};
use banger_paths::Mode;
use banger_system::RealRunner;
use common::{FakeHost, ScriptedRunner};

fn in_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "this test creates a network namespace, a bridge and nftables tables: run it as root (CI does)"
    );
    std::thread::spawn(move || {
        // SAFETY: unshare only moves this thread into a new network namespace.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "unshare: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .unwrap()
}

fn sh(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// What doctor must leave exactly as it found it.
fn snapshot() -> (String, String, String) {
    (
        sh("nft", &["list", "ruleset"]),
        sh("ip", &["-o", "link", "show"]),
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
    )
}

fn network_rows(ctx: &DoctorContext) -> Vec<Check> {
    let before = snapshot();
    let rows: Vec<Check> = banger_doctor::run(ctx)
        .group(groups::NETWORK)
        .cloned()
        .collect();
    assert_eq!(snapshot(), before, "doctor changed the namespace");
    rows
}

fn row<'a>(rows: &'a [Check], name: &str) -> &'a Check {
    rows.iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no {name} row in {rows:#?}"))
}

fn context(host: &FakeHost, mode: Mode, euid: u32) -> DoctorContext {
    host.script("qemu-system-x86_64", "exit 0");
    let mut ctx = host.context(Config::default(), ScriptedRunner::new());
    ctx.layout = host.layout(mode);
    ctx.network = Box::new(HostNetworkProbe);
    ctx.euid = euid;
    ctx
}

/// Run the commands of a hint of the form "let BRIDGE through: sudo A && sudo B" — the
/// text a user would paste.
fn apply_hint(hint: &str) {
    let commands = hint.split_once(": ").unwrap().1;
    for command in commands.split(" && ") {
        let words: Vec<&str> = command.strip_prefix("sudo ").unwrap().split(' ').collect();
        sh(words[0], &words[1..]);
    }
}

#[test]
fn doctor_reads_the_real_firewall_says_the_working_fix_and_changes_nothing() {
    in_netns(|| {
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "0").unwrap();
        let host = FakeHost::new();
        let ctx = context(&host, Mode::DevRoot, 0);

        // Nothing created yet: all fine, nothing made by looking.
        let rows = network_rows(&ctx);
        assert!(rows.iter().all(|c| c.status == Status::Pass), "{rows:#?}");
        assert_eq!(
            row(&rows, "networking mode").summary,
            "bridge and TAPs, made by the daemon itself (root)"
        );
        assert!(row(&rows, "nat rules").summary.contains("not created yet"));

        let owner = InProcess::new(Arc::new(Executor::new(0, Arc::new(RealRunner), None)));
        owner
            .ensure_bridge("10.213.0.0/24".parse().unwrap())
            .unwrap();
        owner.ensure_nat().unwrap();
        let rows = network_rows(&ctx);
        assert!(rows.iter().all(|c| c.status == Status::Pass), "{rows:#?}");
        assert_eq!(row(&rows, "nat rules").summary, "banger_bgbr0 is intact");
        assert_eq!(
            row(&rows, "bridge subnet").summary,
            "bgbr0 is on 10.213.0.0/24"
        );

        // Docker on iptables-nft.
        sh("iptables-nft", &["-N", "DOCKER-USER"]);
        sh("iptables-nft", &["-A", "DOCKER-USER", "-j", "RETURN"]);
        sh("iptables-nft", &["-A", "FORWARD", "-j", "DOCKER-USER"]);
        sh("iptables-nft", &["-P", "FORWARD", "DROP"]);
        let rows = network_rows(&ctx);
        let policy = row(&rows, "forward policy");
        assert_eq!(policy.status, Status::Fail, "{policy:#?}");
        assert!(policy.details[0].starts_with("docker's ip filter FORWARD has policy drop"));
        apply_hint(policy.hint.as_deref().unwrap());
        let policy = row(&network_rows(&ctx), "forward policy").clone();
        assert_eq!(policy.status, Status::Pass, "{policy:#?}");
        assert!(policy.summary.contains("but let bgbr0 through"));

        // Legacy iptables, which nft cannot see.
        sh("iptables-legacy", &["-P", "FORWARD", "DROP"]);
        let policy = row(&network_rows(&ctx), "forward policy").clone();
        assert_eq!(policy.status, Status::Fail, "{policy:#?}");
        let hint = policy.hint.as_deref().unwrap();
        assert!(
            hint.contains("sudo iptables-legacy -I FORWARD -i bgbr0 -j ACCEPT"),
            "{hint}"
        );
        apply_hint(hint);
        assert_eq!(
            row(&network_rows(&ctx), "forward policy").status,
            Status::Pass
        );

        // Damage behind banger's back.
        sh("nft", &["flush", "chain", "ip", "banger_bgbr0", "forward"]);
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "0").unwrap();
        let rows = network_rows(&ctx);
        let nat = row(&rows, "nat rules");
        assert_eq!(nat.status, Status::Fail);
        assert_eq!(nat.details.len(), 4, "{nat:#?}");
        assert_eq!(row(&rows, "ip forwarding").status, Status::Fail);
        sh("nft", &["delete", "table", "ip", "banger_bgbr0"]);
        let nat = row(&network_rows(&ctx), "nat rules").clone();
        assert!(nat.summary.contains("banger_bgbr0 is gone"), "{nat:#?}");

        owner.remove_nat().unwrap();
        owner.remove_bridge().unwrap();
    });
}

#[test]
fn the_owner_reads_through_the_helper_socket_of_a_system_install() {
    in_netns(|| {
        let host = FakeHost::new();
        std::fs::write(
            host.path("etc/install.toml"),
            "owner_user = \"root\"\nowner_uid = 0\n",
        )
        .unwrap();
        // Doctor runs as "someone other than root" here, so it must use the socket.
        let ctx = context(&host, Mode::SystemInstall, 4321);
        let socket = ctx.layout.helper_socket();

        let rows = network_rows(&ctx);
        let helper = row(&rows, "root helper");
        assert_eq!(helper.status, Status::Fail, "no helper yet: {helper:#?}");
        assert!(helper.summary.contains("cannot reach the root helper"));

        let listener = server::bind(&socket, 0).unwrap();
        let executor = Arc::new(Executor::new(0, Arc::new(RealRunner), None));
        std::thread::spawn(move || server::serve(listener, executor));
        let rows = network_rows(&ctx);
        assert!(rows.iter().all(|c| c.status == Status::Pass), "{rows:#?}");
        assert_eq!(
            row(&rows, "root helper").summary,
            format!("answers at {}", socket.display())
        );
        assert!(row(&rows, "nat rules").summary.contains("not created yet"));
    });
}
