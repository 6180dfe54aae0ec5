//! Host runtime: the SSH key banger injects into guests and the default image.

use std::path::Path;

use banger_config::Provenance;
use banger_system::preflight::Preflight;

use super::lifecycle::requirement_check;
use crate::context::{DoctorContext, StoreState};
use crate::groups;
use crate::registry::CapabilityCheck;
use crate::report::Check;

pub struct HostRuntime;

impl CapabilityCheck for HostRuntime {
    fn name(&self) -> &'static str {
        "host runtime"
    }

    fn run(&self, ctx: &DoctorContext) -> Vec<Check> {
        vec![ssh_key(ctx), default_image(ctx)]
    }
}

const SSH_KEY: &str = "ssh key";

fn ssh_key(ctx: &DoctorContext) -> Check {
    let key = ctx.config.ssh_key_path_resolved(&ctx.layout);
    let path = key.value;
    // banger generates its own key the first time a VM needs one, so a missing
    // default key is the normal state of a fresh install. A key the user configured
    // is different: banger will not invent a file at a path the user chose.
    if key.source != Provenance::Config && !exists(&path) {
        return Check::pass(
            groups::RUNTIME,
            SSH_KEY,
            format!(
                "not created yet; banger generates {} the first time a VM needs it",
                path.display()
            ),
        );
    }
    let hint = match key.source {
        Provenance::Config => format!(
            "fix ssh_key_path in {}, or remove it to let banger manage its own key",
            ctx.layout.config_file().display()
        ),
        _ => format!("remove {} so banger can generate a new key", path.display()),
    };
    let mut preflight = Preflight::new();
    preflight.require_file(&path, SSH_KEY, &hint);
    let check = requirement_check(groups::RUNTIME, &preflight.requirements()[0]);
    check.detail(format!("ssh_key_path ({})", key.source))
}

fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

const DEFAULT_IMAGE: &str = "default image";

fn default_image(ctx: &DoctorContext) -> Check {
    let name = ctx.config.default_image_name_resolved();
    let name_line = format!("default_image_name = {:?} ({})", name.value, name.source);
    let name = name.value;
    let lookup = match ctx.store() {
        StoreState::Open(store) => Some(store.get_image(&name)),
        StoreState::Missing | StoreState::Unreadable(_) => None,
    };
    let record = match lookup {
        Some(Ok(Some(record))) => record,
        Some(Err(err)) => {
            return Check::fail(
                groups::RUNTIME,
                DEFAULT_IMAGE,
                format!(
                    "cannot look up image {name:?}: {}",
                    crate::error_chain(&err)
                ),
            )
            .detail(name_line);
        }
        Some(Ok(None)) | None => return unregistered(ctx, &name, name_line),
    };

    let files = [
        ("kernel", Some(&record.kernel_path)),
        ("initrd", record.initrd_path.as_ref()),
        ("rootfs", record.rootfs_path.as_ref()),
    ];
    let missing: Vec<String> = files
        .iter()
        .filter_map(|(what, path)| path.map(|p| (what, p)))
        .filter(|(_, path)| !path.is_file())
        .map(|(what, path)| format!("{what} {} is missing", path.display()))
        .collect();
    if missing.is_empty() {
        return Check::pass(
            groups::RUNTIME,
            DEFAULT_IMAGE,
            format!("{name:?} is registered and its files are present"),
        )
        .detail(name_line);
    }
    Check::fail(
        groups::RUNTIME,
        DEFAULT_IMAGE,
        format!("{name:?} is registered but its files are gone"),
    )
    .details(missing)
    .detail(name_line)
    .hint(format!(
        "remove the image (`banger image rm {name}`) and pull or build it again"
    ))
}

/// Not in the store (or the store cannot tell): fine if the catalog knows it,
/// because the first `vm run` / `vm create` fetches or builds it.
fn unregistered(ctx: &DoctorContext, name: &str, name_line: String) -> Check {
    let unknown_store = matches!(ctx.store(), StoreState::Unreadable(_));
    let registration = if unknown_store {
        "registration unknown (the state store is unreadable)"
    } else {
        "not registered yet"
    };
    match ctx.catalog_entry_kind(name) {
        Ok(Some(how)) => Check::pass(
            groups::RUNTIME,
            DEFAULT_IMAGE,
            format!("{name:?} is {registration}; it is in the built-in catalog and will be {how} on first use"),
        )
        .detail(name_line),
        Ok(None) => Check::fail(
            groups::RUNTIME,
            DEFAULT_IMAGE,
            format!("{name:?} is {registration} and is not in the built-in catalog"),
        )
        .detail(name_line)
        .hint(format!(
            "set default_image_name in {} to an image from `banger image ls`, or import/build one with that name",
            ctx.layout.config_file().display()
        )),
        Err(err) => Check::fail(
            groups::RUNTIME,
            DEFAULT_IMAGE,
            format!("{name:?} is {registration}, and the built-in catalog cannot be read: {err}"),
        )
        .detail(name_line)
        .hint("this is a bug in this banger build; please report it"),
    }
}
