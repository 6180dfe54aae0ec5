//! What no VM owns: directories of creations and removals that never finished, directories
//! without a row, temporary files of interrupted downloads and image builds.

use std::collections::HashSet;
use std::path::Path;

use banger_store::{Intent, VmRecord};

use super::super::strays;
use crate::state::Daemon;

pub async fn reclaim(daemon: &Daemon, vms: &[VmRecord], intents: &[Intent]) {
    let rows: HashSet<&str> = vms.iter().map(|vm| vm.id.as_str()).collect();
    for intent in intents.iter().filter(|i| !rows.contains(i.vm_id.as_str())) {
        // A `create` that never registered its VM, or a `remove` whose row is already gone:
        // either way nothing refers to the directory any more.
        tracing::info!(vm_id = %intent.vm_id, op = %intent.op, dir = %intent.dir.display(), "removing the files of an unfinished operation");
        if remove_vm_dir(daemon, &intent.dir).await {
            let _ = daemon.store().end_intent(&intent.vm_id);
        }
    }
    // Directories an intent still names (one that could not be deleted above) are not
    // orphans: the intent keeps them on record for the next start.
    let pending: HashSet<&str> = intents.iter().map(|i| i.vm_id.as_str()).collect();
    orphan_dirs(daemon, &rows, &pending).await;
    // Image builds, imports and downloads: their owner reclaims them.
    crate::images::reclaim(daemon);
    crate::snapshots::reclaim(daemon);
    crate::warm::sweep(daemon);
    crate::trash::sweep(daemon);
}

/// Directories under `vms/` that no row names: left by a create killed before its intent
/// existed (older daemons), or copied in by hand. Only names shaped like VM ids are touched.
async fn orphan_dirs(daemon: &Daemon, rows: &HashSet<&str>, pending: &HashSet<&str>) {
    let vms_dir = daemon.layout.vms_dir();
    let Ok(entries) = std::fs::read_dir(&vms_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if rows.contains(name) || pending.contains(name) {
            continue;
        }
        if !banger_store::is_vm_id(name) {
            tracing::warn!(path = %entry.path().display(), "not a VM directory; leaving it alone");
            continue;
        }
        tracing::info!(dir = %entry.path().display(), "removing a VM directory no VM owns");
        remove_vm_dir(daemon, &entry.path()).await;
    }
}

/// Kill whatever still uses `dir`, then delete it. Refuses anything outside `vms/`.
pub async fn remove_vm_dir(daemon: &Daemon, dir: &Path) -> bool {
    if dir.parent() != Some(daemon.layout.vms_dir().as_path()) {
        tracing::error!(dir = %dir.display(), "refusing to delete a directory outside the VM directory");
        return false;
    }
    if let Err(e) = strays::kill(daemon, dir, None).await {
        tracing::error!(dir = %dir.display(), error = %e.message, "not deleting a directory still in use");
        return false;
    }
    match std::fs::remove_dir_all(dir) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) => {
            tracing::error!(dir = %dir.display(), error = %e, "cannot delete directory");
            false
        }
    }
}
