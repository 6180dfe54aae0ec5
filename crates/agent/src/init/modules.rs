//! Loading the kernel modules the image lists (virtio transports, block, console, vsock).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

use crate::log;

/// One module per line, relative to `/lib/modules/$(uname -r)/`, in dependency order.
pub const MODULE_LIST: &str = "/etc/banger/modules";

/// Listed modules a guest loads only when it needs them ([`load_on_demand`]): virtio-fs
/// for shared host directories. Most VMs share nothing; their boot skips these.
pub const ON_DEMAND: &[&str] = &["fuse", "virtiofs"];

/// finit_module flag: the file is compressed and the kernel should decompress it.
const MODULE_INIT_COMPRESSED_FILE: libc::c_uint = 4;

/// Loads every listed module; returns whether a list was there. A module that fails to load
/// is reported and skipped: the rest may still give a working guest.
pub fn load_listed(release: &str) -> bool {
    let list = match std::fs::read_to_string(MODULE_LIST) {
        Ok(list) => list,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return false,
        Err(err) => {
            log!("reading {MODULE_LIST} failed: {err}");
            return false;
        }
    };
    let dir = Path::new("/lib/modules").join(release);
    for line in list.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || ON_DEMAND.contains(&module_name(line)) {
            continue;
        }
        let path = dir.join(line);
        if let Err(err) = load(&path) {
            log!(
                "loading module {} failed: {err}; continuing",
                path.display()
            );
        }
    }
    true
}

/// Load the listed modules called `names` (from [`ON_DEMAND`]), in list order. An error
/// names the first that could not be loaded; a name the list lacks is taken as built in.
pub fn load_on_demand(release: &str, names: &[&str]) -> Result<(), String> {
    let list = match std::fs::read_to_string(MODULE_LIST) {
        Ok(list) => list,
        // No list: an image whose kernel has what it needs built in.
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(format!("reading {MODULE_LIST} failed: {err}")),
    };
    let dir = Path::new("/lib/modules").join(release);
    for line in list.lines().map(str::trim) {
        if names.contains(&module_name(line)) {
            let path = dir.join(line);
            load(&path).map_err(|e| format!("loading module {} failed: {e}", path.display()))?;
        }
    }
    Ok(())
}

/// `kernel/fs/fuse/virtiofs.ko.xz` -> `virtiofs`.
fn module_name(line: &str) -> &str {
    let file = line.rsplit('/').next().unwrap_or(line);
    file.split_once(".ko").map_or(file, |(name, _)| name)
}

fn load(path: &Path) -> io::Result<()> {
    let file = File::open(path)?;
    let compressed = path
        .extension()
        .is_some_and(|ext| ext == "xz" || ext == "zst" || ext == "gz");
    let flags = if compressed {
        MODULE_INIT_COMPRESSED_FILE
    } else {
        0
    };
    // SAFETY: finit_module reads the module from the fd; the params string is a valid empty
    // C string for the duration of the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_finit_module,
            file.as_raw_fd(),
            c"".as_ptr(),
            flags,
        )
    };
    if ret == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    // Built into the kernel or already loaded: the goal is met.
    if err.raw_os_error() == Some(libc::EEXIST) {
        return Ok(());
    }
    Err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_names_come_from_their_files() {
        assert_eq!(module_name("kernel/fs/fuse/virtiofs.ko.xz"), "virtiofs");
        assert_eq!(module_name("kernel/fs/fuse/fuse.ko"), "fuse");
        assert_eq!(module_name("evdev.ko.zst"), "evdev");
    }
}
