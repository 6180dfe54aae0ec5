//! A network lab for end-to-end networking tests: an "inside" namespace where the daemon,
//! its bridge, TAPs and NAT rules live, and an "outside" namespace joined to it by a veth,
//! standing for the rest of the world (with servers the tests run). Nothing touches the
//! host's own interfaces, routes or firewall; both namespaces go when the lab is dropped.

use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context, bail};

/// The inside's address on the link to the outside, and the outside's.
pub const UPLINK: &str = "198.51.100.1";
pub const OUTSIDE: &str = "198.51.100.2";

pub struct NetLab {
    pub inside: String,
    pub outside: String,
}

fn ip(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running ip (iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl NetLab {
    /// Needs root (network namespaces); says so when it is not.
    pub fn new() -> anyhow::Result<NetLab> {
        // SAFETY: geteuid has no memory effects.
        if unsafe { libc::geteuid() } != 0 {
            bail!(
                "the networking end-to-end tests need root (network namespaces, a bridge, nftables): run them with sudo"
            );
        }
        static N: AtomicU32 = AtomicU32::new(0);
        let tag = format!(
            "{}{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let lab = NetLab {
            inside: format!("bgin{tag}"),
            outside: format!("bgout{tag}"),
        };
        ip(&["netns", "add", &lab.inside])?;
        ip(&["netns", "add", &lab.outside])?;
        let (a, b) = (format!("bgu{tag}"), format!("bgo{tag}"));
        ip(&[
            "-n",
            &lab.inside,
            "link",
            "add",
            &a,
            "type",
            "veth",
            "peer",
            "name",
            &b,
            "netns",
            &lab.outside,
        ])?;
        ip(&["-n", &lab.inside, "link", "set", "lo", "up"])?;
        ip(&["-n", &lab.outside, "link", "set", "lo", "up"])?;
        ip(&[
            "-n",
            &lab.inside,
            "addr",
            "add",
            &format!("{UPLINK}/24"),
            "dev",
            &a,
        ])?;
        ip(&[
            "-n",
            &lab.outside,
            "addr",
            "add",
            &format!("{OUTSIDE}/24"),
            "dev",
            &b,
        ])?;
        ip(&["-n", &lab.inside, "link", "set", &a, "up"])?;
        ip(&["-n", &lab.outside, "link", "set", &b, "up"])?;
        ip(&["-n", &lab.inside, "route", "add", "default", "via", OUTSIDE])?;
        Ok(lab)
    }

    /// `program args` in namespace `ns`.
    pub fn cmd(ns: &str, program: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns, program]).args(args);
        cmd
    }

    /// A web server at `OUTSIDE:8000` in the outside namespace serving `dir`: "the
    /// internet" for guests. The caller kills it.
    pub fn serve_http(&self, dir: &std::path::Path) -> std::process::Child {
        let dir = dir.to_str().expect("a UTF-8 directory");
        NetLab::cmd(
            &self.outside,
            "python3",
            &[
                "-m",
                "http.server",
                "8000",
                "--bind",
                OUTSIDE,
                "--directory",
                dir,
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the outside server")
    }

    /// Run `program args` in the inside namespace; its output.
    pub fn inside(&self, program: &str, args: &[&str]) -> Output {
        NetLab::cmd(&self.inside, program, args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
    }

    /// The inside's links (names), from `ip -j link`.
    pub fn inside_links(&self) -> Vec<String> {
        let out = self.inside("ip", &["-j", "link"]);
        let links: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
        links
            .iter()
            .filter_map(|l| l["ifname"].as_str().map(str::to_string))
            .collect()
    }

    /// The inside's nftables ruleset, as text.
    pub fn inside_ruleset(&self) -> String {
        String::from_utf8_lossy(&self.inside("nft", &["list", "ruleset"]).stdout).into_owned()
    }
}

impl Drop for NetLab {
    fn drop(&mut self) {
        // Deleting a namespace deletes its interfaces, veth and bridge included.
        let _ = ip(&["netns", "del", &self.inside]);
        let _ = ip(&["netns", "del", &self.outside]);
    }
}
