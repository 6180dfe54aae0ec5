//! A daemon on the bridge network inside a [`NetLab`]: the CLI runs in the lab's inside
//! namespace, where the daemon makes its bridge, TAPs and rules; what is left of them there
//! is what a test checks after `vm rm`.

use std::process::{Output, Stdio};

use crate::netlab::NetLab;
use crate::{Env, stderr, stdout};

pub struct BridgeLab {
    pub env: Env,
    pub net: NetLab,
}

impl BridgeLab {
    /// An installation whose config is `config` (top-level keys) plus `[network] mode =
    /// "bridge"`, in a fresh lab. Panics saying what is missing (root, iproute2, nft).
    pub fn new(config: &str) -> BridgeLab {
        let env = Env::new().unwrap_or_else(|e| panic!("cannot set up an e2e environment: {e:#}"));
        BridgeLab::with(env, config, "bridge")
    }

    /// `env` configured with `config` (top-level keys) and network `mode` (`bridge`, or
    /// `user` to check what user-mode networking does in the same lab), in a fresh lab.
    pub fn with(env: Env, config: &str, mode: &str) -> BridgeLab {
        env.write_config(&format!("{config}\n[network]\nmode = \"{mode}\"\n"))
            .expect("write config.toml");
        let net = NetLab::new().unwrap_or_else(|e| panic!("{e:#}"));
        BridgeLab { env, net }
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.env
            .cmd_in_netns(&self.net.inside, args)
            .stdin(Stdio::null())
            .output()
            .expect("run banger")
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "banger {args:?} failed ({}):\nstdout: {}\nstderr: {}\n{}",
            out.status,
            stdout(&out),
            stderr(&out),
            self.env.diagnostics()
        );
        stdout(&out)
    }

    pub fn sh(&self, vm: &str, script: &str) -> String {
        self.ok(&["vm", "exec", vm, "--", "sh", "-c", script])
    }

    pub fn inspect(&self, vm: &str) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["vm", "inspect", vm, "--json"])).expect("vm inspect JSON")
    }

    /// Nothing of banger's is left in the inside namespace: no TAP, no bridge, no table.
    pub fn assert_clean(&self) {
        let links = self.net.inside_links();
        assert!(
            !links
                .iter()
                .any(|l| l.starts_with("bgt") || l.starts_with("bgbr")),
            "links left: {links:?}"
        );
        let rules = self.net.inside_ruleset();
        assert!(!rules.contains("banger_"), "rules left:\n{rules}");
    }

    /// banger's TAPs in the inside namespace.
    pub fn taps(&self) -> Vec<String> {
        self.net
            .inside_links()
            .into_iter()
            .filter(|l| l.starts_with("bgt"))
            .collect()
    }
}
