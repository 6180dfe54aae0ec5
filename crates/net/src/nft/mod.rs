//! The owner's nftables table, driven through the `nft` program with JSON.
//!
//! nftables has no stable netlink library, so the helper runs `nft -j -f -` with a JSON
//! batch on stdin (one atomic transaction per call). The binary is opened with
//! `O_NOFOLLOW`, checked (root-owned, not writable by others) and executed through
//! `/proc/self/fd/N`: what was checked is what runs as root.

mod rules;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use banger_helper_proto::Publish;
use banger_system::CommandRunner;
use banger_system::fsperm::open_root_executable;
use serde_json::Value;

pub use rules::{
    CHAIN_PUBLISH, FAMILY, add_publish, delete_rule, delete_table, ensure_nat, publishes_in,
};

use crate::NetError;

pub struct Nft<'a> {
    runner: &'a dyn CommandRunner,
    binary: PathBuf,
}

impl<'a> Nft<'a> {
    /// Find `nft` in PATH or the sbin directories.
    pub fn locate(runner: &'a dyn CommandRunner) -> Result<Nft<'a>, NetError> {
        let binary = banger_system::runner::lookup_executable("nft").ok_or(NetError::NftMissing)?;
        Ok(Nft { runner, binary })
    }

    /// Use the binary at `binary` (tests point this at fakes to see the refusals).
    pub fn at(runner: &'a dyn CommandRunner, binary: &Path) -> Nft<'a> {
        Nft {
            runner,
            binary: binary.to_path_buf(),
        }
    }

    pub fn binary(&self) -> &Path {
        &self.binary
    }

    fn run(&self, what: &str, args: &[&str], input: Option<&[u8]>) -> Result<String, NetError> {
        let file = open_root_executable(&self.binary).map_err(NetError::NftBinary)?;
        let exe = PathBuf::from(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&file)
        ));
        let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        let out = match input {
            Some(input) => self.runner.run_with_input(&exe, &args, input),
            None => self.runner.run(&exe, &args),
        }
        .map_err(|source| NetError::Spawn {
            program: self.binary.display().to_string(),
            source,
        })?;
        drop(file);
        if !out.success() {
            return Err(NetError::Nft {
                what: what.to_string(),
                stderr: out.stderr_str().trim().to_string(),
            });
        }
        Ok(out.stdout_str())
    }

    /// Apply a batch of commands (`[{"add": …}, …]`) atomically.
    pub fn apply(&self, what: &str, commands: Vec<Value>) -> Result<(), NetError> {
        let batch = serde_json::json!({ "nftables": commands });
        let text = serde_json::to_vec(&batch).map_err(|source| NetError::NftOutput {
            what: what.to_string(),
            source,
        })?;
        self.run(what, &["-j", "-f", "-"], Some(&text)).map(drop)
    }

    /// `nft -j list table ip NAME`, or `None` when the table does not exist.
    pub fn list_table(&self, table: &str) -> Result<Option<Value>, NetError> {
        match self.run("list table", &["-j", "list", "table", FAMILY, table], None) {
            Ok(text) => parse(&text, "list table").map(Some),
            Err(NetError::Nft { stderr, .. }) if stderr.contains("No such file or directory") => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// `nft -j list ruleset`.
    pub fn list_ruleset(&self) -> Result<Value, NetError> {
        let text = self.run("list ruleset", &["-j", "list", "ruleset"], None)?;
        parse(&text, "list ruleset")
    }

    /// The publishes in `table`, with their rule handles.
    pub fn publishes(&self, table: &str) -> Result<Vec<(Publish, u64)>, NetError> {
        Ok(self
            .list_table(table)?
            .map(|v| publishes_in(&v))
            .unwrap_or_default())
    }
}

fn parse(text: &str, what: &str) -> Result<Value, NetError> {
    serde_json::from_str(text).map_err(|source| NetError::NftOutput {
        what: what.to_string(),
        source,
    })
}
