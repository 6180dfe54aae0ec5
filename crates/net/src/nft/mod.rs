//! The owner's nftables table, driven through the `nft` program with JSON.
//!
//! nftables has no stable netlink library, so the helper runs `nft -j -f -` with a JSON
//! batch on stdin (one atomic transaction per call), through [`crate::exec::Program`]:
//! the binary is validated and what was checked is what runs as root.
//!
//! * [`table`] — the owner's table as data (base chains, role-named rules);
//! * [`publish`] — published ports, one DNAT rule each;
//! * [`audit`] — whether a listed table is still what banger installed.

mod audit;
mod json;
mod publish;
mod table;

use std::path::Path;

use banger_helper_proto::Publish;
use banger_system::CommandRunner;
use serde_json::Value;

pub use audit::audit;
pub use json::{FAMILY, items};
pub use publish::{add_publish, delete_rule, is_publish_rule, publishes_in};
pub use table::{
    BASE_CHAINS, BaseChain, CHAIN_PUBLISH, FORWARDING_MARKER, OWNER_TABLE_PREFIX, ROLE_PREFIX,
    TableRule, add_forwarding_marker, base_rules, delete_forwarding_marker, delete_table,
    ensure_nat,
};

use crate::NetError;
use crate::exec::Program;

pub struct Nft<'a> {
    program: Program<'a>,
}

impl<'a> Nft<'a> {
    /// Find `nft` in PATH or the sbin directories.
    pub fn locate(runner: &'a dyn CommandRunner) -> Result<Nft<'a>, NetError> {
        Ok(Nft {
            program: Program::locate(runner, "nft", "nftables")?,
        })
    }

    /// Use the binary at `binary` (tests point this at fakes to see the refusals).
    pub fn at(runner: &'a dyn CommandRunner, binary: &Path) -> Nft<'a> {
        Nft {
            program: Program::at(runner, "nft", binary),
        }
    }

    pub fn binary(&self) -> &Path {
        self.program.binary()
    }

    /// Apply a batch of commands (`[{"add": …}, …]`) atomically.
    pub fn apply(&self, what: &str, commands: Vec<Value>) -> Result<(), NetError> {
        let batch = serde_json::json!({ "nftables": commands });
        let text = serde_json::to_vec(&batch).map_err(|source| NetError::NftOutput {
            what: what.to_string(),
            source,
        })?;
        self.program
            .run(what, &["-j", "-f", "-"], Some(&text))
            .map(drop)
    }

    /// `nft -j list table ip NAME`, or `None` when the table does not exist.
    pub fn list_table(&self, table: &str) -> Result<Option<Value>, NetError> {
        let args = ["-j", "list", "table", FAMILY, table];
        match self.program.run("list table", &args, None) {
            Ok(text) => parse(&text, "list table").map(Some),
            Err(NetError::Failed { stderr, .. })
                if stderr.contains("No such file or directory") =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// `nft -j list ruleset`.
    pub fn list_ruleset(&self) -> Result<Value, NetError> {
        let text = self
            .program
            .run("list ruleset", &["-j", "list", "ruleset"], None)?;
        parse(&text, "list ruleset")
    }

    /// The names of the tables of family `ip`.
    pub fn ip_tables(&self) -> Result<Vec<String>, NetError> {
        let text = self
            .program
            .run("list tables", &["-j", "list", "tables", FAMILY], None)?;
        let listing = parse(&text, "list tables")?;
        Ok(items(&listing)
            .iter()
            .filter_map(|i| i.pointer("/table/name")?.as_str())
            .map(str::to_string)
            .collect())
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
