//! The API: one request in, one response out, against the [`Vmm`] state. Requests are
//! handled one at a time, as Firecracker's single API thread does.
//!
//! One file per group of endpoints; every rule cites the line of
//! `shared/notes/firecracker-api.md` it enforces.

mod boot;
mod devices;
mod observability;
mod snapshot;
mod vm;

use serde::de::DeserializeOwned;

use crate::http::{Method, Request, Response};
use crate::vmm::Vmm;

/// Every handler answers with a response; `Err` is the 400 it failed with.
pub(crate) type Answer = Result<Response, Response>;

/// Route one request.
pub fn handle(vmm: &mut Vmm, req: &Request) -> Response {
    let segments: Vec<&str> = req.path.split('/').filter(|s| !s.is_empty()).collect();
    let answer = match (req.method, segments.as_slice()) {
        (Method::Get, []) => vm::instance_info(vmm),
        (Method::Get, ["machine-config"]) => boot::get_machine_config(vmm),
        (Method::Get, ["vm", "config"]) => vm::full_config(vmm),
        (Method::Put, ["boot-source"]) => boot::put_boot_source(vmm, &req.body),
        (Method::Put, ["machine-config"]) => boot::put_machine_config(vmm, &req.body),
        (Method::Patch, ["machine-config"]) => boot::patch_machine_config(vmm, &req.body),
        (Method::Put, ["actions"]) => boot::put_action(vmm, &req.body),
        (Method::Put, ["drives", id]) => devices::put_drive(vmm, id, &req.body),
        (Method::Patch, ["drives", id]) => devices::patch_drive(vmm, id, &req.body),
        (Method::Put, ["network-interfaces", id]) => devices::put_iface(vmm, id, &req.body),
        (Method::Put, ["vsock"]) => devices::put_vsock(vmm, &req.body),
        (Method::Put, ["logger"]) => observability::put_logger(vmm, &req.body),
        (Method::Put, ["metrics"]) => observability::put_metrics(vmm, &req.body),
        (Method::Put, ["serial"]) if vmm.personality.has_serial() => {
            observability::put_serial(vmm, &req.body)
        }
        (Method::Patch, ["vm"]) => vm::patch_vm(vmm, &req.body),
        (Method::Get, ["mmds"]) => vm::get_mmds(vmm),
        (Method::Put, ["mmds"]) => vm::put_mmds(vmm, &req.body),
        (Method::Put, ["mmds", "config"]) => vm::put_mmds_config(vmm, &req.body),
        (Method::Put, ["snapshot", "create"]) => snapshot::create(vmm, &req.body),
        (Method::Put, ["snapshot", "load"]) => snapshot::load(vmm, &req.body),
        // notes: "Unknown path: 400 `Invalid request method and/or path: GET nope.`"; and
        // "`PUT /serial` … 1.5.0 answers 400 `Invalid request method and/or path: PUT serial.`"
        _ => Err(Response::fault(format!(
            "Invalid request method and/or path: {} {}.",
            req.method.as_str(),
            req.path
        ))),
    };
    answer.unwrap_or_else(|fault| fault)
}

/// Decode a body the way Firecracker does (serde with `deny_unknown_fields`).
///
/// notes: "unknown field: `An error occurred when deserializing the json body of a request:
/// unknown field `bogus_field`, expected one of … at line 1 column 89.`"; "malformed JSON:
/// `An error occurred when deserializing the json body of a request: expected ident at line 1
/// column 2.`"
pub(crate) fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Response> {
    serde_json::from_slice(body).map_err(|e| {
        Response::fault(format!(
            "An error occurred when deserializing the json body of a request: {e}."
        ))
    })
}

/// notes: "after boot, every pre-boot resource (`/drives`, `/logger`, `/metrics`, `/vsock`,
/// `/boot-source`, `/machine-config`, a second `InstanceStart`) answers 400 `The requested
/// operation is not supported after starting the microVM.`"
pub(crate) fn pre_boot_only(vmm: &Vmm) -> Result<(), Response> {
    if vmm.started() {
        Err(Response::fault(
            "The requested operation is not supported after starting the microVM.",
        ))
    } else {
        Ok(())
    }
}

/// notes: "Before boot, `PATCH /vm` and `SendCtrlAltDel` answer 400 `The requested operation
/// is not supported before starting the microVM.`"
pub(crate) fn post_boot_only(vmm: &Vmm) -> Result<(), Response> {
    if vmm.started() {
        Ok(())
    } else {
        Err(Response::fault(
            "The requested operation is not supported before starting the microVM.",
        ))
    }
}

/// `prefix` + `message` on releases whose errors carry the prefix (notes: "v1.5.0 lacks the
/// `Boot source error: ` / `Network config error: ` / `Vsock config error: ` prefixes").
pub(crate) fn prefixed(vmm: &Vmm, prefix: &str, message: impl std::fmt::Display) -> Response {
    if vmm.personality.error_prefixes() {
        Response::fault(format!("{prefix}{message}"))
    } else {
        Response::fault(message.to_string())
    }
}

/// The path id must equal the body id. notes: "Path id ≠ body id on `/drives/{id}`: 400 `The
/// id from the path does not match the id from the body!`"
pub(crate) fn same_id(path_id: &str, body_id: &str) -> Result<(), Response> {
    if path_id == body_id {
        Ok(())
    } else {
        Err(Response::fault(
            "The id from the path does not match the id from the body!",
        ))
    }
}

/// `std::io::Error`'s text as Rust prints it (`No such file or directory (os error 2)`).
pub(crate) fn os_error(e: &std::io::Error) -> String {
    e.to_string()
}
