//! Shell completion, computed by banger itself as you press Tab (clap_complete's dynamic
//! engine): the registration script calls `BANGER_COMPLETE=SHELL banger -- WORDS…`, and
//! value completers ask the daemon for VM and image names. Completion never starts a
//! daemon and gives up after a moment: a Tab must not hang or spawn processes.

use std::ffi::OsStr;
use std::time::Duration;

use clap_complete::engine::{ArgValueCompleter, CompletionCandidate};

/// The environment variable that switches banger into completion mode. Not the
/// library's default `COMPLETE`: a variable of that name set for something else would
/// turn every banger command into a completion request.
pub const ENV_VAR: &str = "BANGER_COMPLETE";

/// How long a Tab may wait for the daemon.
const DAEMON_TIMEOUT: Duration = Duration::from_millis(1500);

/// The shells `banger completions` writes scripts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
    Elvish,
    Powershell,
}

impl Shell {
    pub fn name(self) -> &'static str {
        match self {
            Shell::Bash => "bash",
            Shell::Zsh => "zsh",
            Shell::Fish => "fish",
            Shell::Elvish => "elvish",
            Shell::Powershell => "powershell",
        }
    }
}

/// Completes VM names (and shows each VM's state beside it).
pub fn vms() -> ArgValueCompleter {
    ArgValueCompleter::new(|current: &OsStr| {
        candidates(current, |client| async move {
            let vms = client.list_vms().await.ok()?;
            Some(vms.into_iter().map(|vm| (vm.name, vm.state)).collect())
        })
    })
}

/// Completes image names.
pub fn images() -> ArgValueCompleter {
    ArgValueCompleter::new(|current: &OsStr| {
        candidates(current, |client| async move {
            let images = client.list_images().await.ok()?;
            Some(images.into_iter().map(|i| (i.name, i.source)).collect())
        })
    })
}

/// Ask the running daemon through `query` for `(name, help)` pairs and keep those that
/// start with what was typed. Any failure (no daemon, a slow one) means no candidates.
fn candidates<F, Fut>(current: &OsStr, query: F) -> Vec<CompletionCandidate>
where
    F: FnOnce(banger_api::Client) -> Fut,
    Fut: std::future::Future<Output = Option<Vec<(String, String)>>>,
{
    let Some(prefix) = current.to_str() else {
        return Vec::new();
    };
    let Ok(layout) = banger_paths::Layout::resolve() else {
        return Vec::new();
    };
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return Vec::new();
    };
    let client = banger_api::Client::new(layout.daemon_socket());
    let pairs = runtime
        .block_on(async { tokio::time::timeout(DAEMON_TIMEOUT, query(client)).await })
        .ok()
        .flatten()
        .unwrap_or_default();
    pairs
        .into_iter()
        .filter(|(name, _)| name.starts_with(prefix))
        .map(|(name, help)| CompletionCandidate::new(name).help(Some(help.into())))
        .collect()
}
