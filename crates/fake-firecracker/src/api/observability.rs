//! `PUT /logger`, `PUT /metrics`, `PUT /serial`.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{Answer, os_error, parse, pre_boot_only};
use crate::http::Response;
use crate::vmm::Vmm;

#[derive(Deserialize)]
enum Level {
    Off,
    Trace,
    Debug,
    Info,
    Warning,
    Error,
}

/// 1.5.0: `log_path` is required.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoggerV1_5 {
    log_path: String,
    level: Option<Level>,
    show_level: Option<bool>,
    show_log_origin: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoggerBody {
    log_path: Option<String>,
    level: Option<Level>,
    show_level: Option<bool>,
    show_log_origin: Option<bool>,
    module: Option<String>,
}

pub(super) fn put_logger(vmm: &mut Vmm, body: &[u8]) -> Answer {
    pre_boot_only(vmm)?;
    let path = if vmm.personality.creates_log_files() {
        let b: LoggerBody = parse(body)?;
        let _ = (b.level, b.show_level, b.show_log_origin, b.module);
        b.log_path
    } else {
        let b: LoggerV1_5 = parse(body)?;
        let _ = (b.level, b.show_level, b.show_log_origin);
        Some(b.log_path)
    };
    // notes: "(before 1.14.0 the files must already exist; logger only once)"; "1.14.1
    // accepted a second `PUT /logger`". The wording of the second-call error is the fake's.
    if vmm.logger_configured && vmm.personality.logger_once() {
        return Err(Response::fault(
            "Logger error: the logger was already initialized.",
        ));
    }
    if let Some(path) = path {
        // notes: "`/logger` … with a file that does not exist: 1.14.1 creates it (204); 1.5.0
        // answers 400 `Failed to open target file: No such file or directory (os error 2)`".
        let file = open_target(vmm, Path::new(&path)).map_err(|e| {
            Response::fault(format!("Failed to open target file: {}", os_error(&e)))
        })?;
        vmm.log.set_file(file);
    }
    vmm.logger_configured = true;
    Ok(Response::no_content())
}

/// Open a log or metrics file the way the personality does: created by 1.14+, required to
/// exist before. Firecracker's source (`open_file_nonblock`): read-write and `O_NONBLOCK`,
/// no `O_APPEND` — "In case we open a FIFO, we need all READ, WRITE and O_NONBLOCK in order
/// to not block the process if nobody is consuming the message"; a line a full pipe does not
/// take is lost (counted in `missed_log_count`).
fn open_target(vmm: &Vmm, path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .create(vmm.personality.creates_log_files())
        .open(path)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricsBody {
    metrics_path: String,
}

pub(super) fn put_metrics(vmm: &mut Vmm, body: &[u8]) -> Answer {
    pre_boot_only(vmm)?;
    let b: MetricsBody = parse(body)?;
    // Not in the notes: the fake allows one metrics configuration, as the metrics system of
    // every release does.
    if vmm.metrics_path.is_some() {
        return Err(Response::fault("Reinitialization of metrics not allowed."));
    }
    // notes: "`/metrics` with a file that does not exist: 1.14.1 creates it (204); 1.5.0
    // answers 400 … `No such file or directory (os error 2)`".
    let path = PathBuf::from(b.metrics_path);
    open_target(vmm, &path).map_err(|e| Response::fault(os_error(&e)))?;
    vmm.metrics_path = Some(path);
    Ok(Response::no_content())
}

/// notes: "Serial: guest console goes to Firecracker's stdout unless `PUT /serial
/// {serial_out_path}` (1.13+)."
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SerialBody {
    serial_out_path: Option<String>,
}

pub(super) fn put_serial(vmm: &mut Vmm, body: &[u8]) -> Answer {
    pre_boot_only(vmm)?;
    let b: SerialBody = parse(body)?;
    vmm.serial_out = b.serial_out_path.map(PathBuf::from);
    vmm.boot_resources_configured = true;
    Ok(Response::no_content())
}
