//! `[logs]`: how much disk banger's logs may take. Each log is kept as two files (the
//! current one and one rotated predecessor) whose sizes together stay under the limit, so
//! a flooding guest or a noisy daemon can never fill the host's disk.

use serde::{Deserialize, Serialize};

use crate::{Provenance, Resolved};

/// Default cap of each VM's console log (`console.log` + `console.log.1`).
pub const BUILTIN_CONSOLE_MAX_BYTES: u64 = 8 * 1024 * 1024;
/// Default cap of the daemon's log (`daemon.log` + `daemon.log.1`).
pub const BUILTIN_DAEMON_MAX_BYTES: u64 = 16 * 1024 * 1024;
/// Accepted range for both: room for a boot's worth of lines, and a sane ceiling.
pub const LOG_MAX_RANGE: (u64, u64) = (64 * 1024, 1024 * 1024 * 1024);

/// `[logs]` as written in the file (unset fields are `None`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogsConfig {
    pub console_max_bytes: Option<u64>,
    pub daemon_max_bytes: Option<u64>,
}

/// The effective log limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLimits {
    pub console_max_bytes: Resolved<u64>,
    pub daemon_max_bytes: Resolved<u64>,
}

impl LogsConfig {
    pub fn resolved(&self) -> LogLimits {
        let pick = |set: Option<u64>, builtin: u64| match set {
            Some(bytes) => Resolved::new(bytes, Provenance::Config),
            None => Resolved::new(builtin, Provenance::Builtin),
        };
        LogLimits {
            console_max_bytes: pick(self.console_max_bytes, BUILTIN_CONSOLE_MAX_BYTES),
            daemon_max_bytes: pick(self.daemon_max_bytes, BUILTIN_DAEMON_MAX_BYTES),
        }
    }
}
