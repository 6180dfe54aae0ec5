//! Checking what the daemon asks a driver to launch, before any VMM sees it, and turning
//! values into QEMU option syntax safely.
//!
//! QEMU parses `-drive`, `-chardev`, `-device`, `-netdev` values as `key=value,key=value`; a
//! literal comma inside a value is written `,,`. Options that take a bare path (`-kernel`,
//! `-initrd`, `-pidfile`) are used verbatim. Everything else is rejected up front with a
//! message naming the value: non-UTF-8 or control characters (QEMU and the kernel command line
//! cannot carry them reliably), relative paths (QEMU `chdir("/")`s when it daemonizes, and a
//! block path without a leading `/` could be read as a protocol such as `nbd:`).

use std::path::Path;

use crate::error::MAX_SOCKET_PATH;

/// Escape a value for QEMU's `key=value,…` syntax.
pub fn opt_value(value: &str) -> String {
    value.replace(',', ",,")
}

/// Check a host path QEMU will open; returns it as `&str`.
pub fn host_path<'a>(what: &str, path: &'a Path) -> Result<&'a str, String> {
    let text = path
        .to_str()
        .ok_or_else(|| format!("{what} path {path:?} is not valid UTF-8; rename it"))?;
    if !path.is_absolute() {
        return Err(format!("{what} path {text:?} must be absolute"));
    }
    if let Some(c) = text.chars().find(|c| c.is_control()) {
        return Err(format!(
            "{what} path {text:?} contains the control character {c:?}, which a VMM cannot take reliably; rename it"
        ));
    }
    Ok(text)
}

/// Check a path a Unix socket will be bound to.
pub fn socket_path<'a>(what: &str, path: &'a Path) -> Result<&'a str, SocketPathError> {
    let text = host_path(what, path).map_err(SocketPathError::Invalid)?;
    if text.len() > MAX_SOCKET_PATH {
        return Err(SocketPathError::TooLong(text.len()));
    }
    Ok(text)
}

#[derive(Debug, PartialEq, Eq)]
pub enum SocketPathError {
    Invalid(String),
    TooLong(usize),
}

/// QEMU object ids: a letter, then letters, digits, `-`, `.`, `_` (QEMU's `id_wellformed`).
pub fn object_id(what: &str, id: &str) -> Result<(), String> {
    let mut chars = id.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')) {
        return Err(format!(
            "{what} id {id:?} must start with a letter and contain only letters, digits, '-', '.', '_'"
        ));
    }
    if id.len() > 32 {
        return Err(format!("{what} id {id:?} is longer than 32 characters"));
    }
    Ok(())
}

/// A Linux network interface name: 1–15 bytes, no `/`, whitespace or `:`.
pub fn tap_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "TAP device name {name:?} must be 1-15 characters of letters, digits, '-', '.', '_'"
        ))
    }
}

/// A unicast MAC address written `aa:bb:cc:dd:ee:ff`.
pub fn mac_address(mac: &str) -> Result<(), String> {
    let octets: Vec<Option<u8>> = mac
        .split(':')
        .map(|o| {
            (o.len() == 2)
                .then(|| u8::from_str_radix(o, 16).ok())
                .flatten()
        })
        .collect();
    match octets.as_slice() {
        [Some(first), rest @ ..] if rest.len() == 5 && rest.iter().all(Option::is_some) => {
            if first & 1 == 1 {
                Err(format!(
                    "MAC address {mac:?} is a multicast address; use a unicast one"
                ))
            } else {
                Ok(())
            }
        }
        _ => Err(format!(
            "MAC address {mac:?} must look like 52:54:00:12:34:56"
        )),
    }
}

/// One kernel argument: non-empty, no whitespace (arguments are joined with spaces) and no
/// control characters.
pub fn kernel_arg(arg: &str) -> Result<(), String> {
    if arg.is_empty() {
        return Err("empty kernel argument".into());
    }
    if arg.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "kernel argument {arg:?} contains whitespace or control characters"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commas_are_doubled() {
        assert_eq!(opt_value("/a,b/c,,d"), "/a,,b/c,,,,d");
        assert_eq!(opt_value("plain"), "plain");
    }

    #[test]
    fn host_paths_must_be_absolute_utf8_and_printable() {
        assert_eq!(
            host_path("kernel", Path::new("/k/vmlinux")),
            Ok("/k/vmlinux")
        );
        assert!(
            host_path("kernel", Path::new("k/vmlinux"))
                .unwrap_err()
                .contains("absolute")
        );
        assert!(
            host_path("disk", Path::new("/a\nb"))
                .unwrap_err()
                .contains("control")
        );
        use std::os::unix::ffi::OsStrExt;
        let bad = std::ffi::OsStr::from_bytes(b"/a\xffb");
        assert!(
            host_path("disk", Path::new(bad))
                .unwrap_err()
                .contains("UTF-8")
        );
    }

    #[test]
    fn socket_paths_respect_sun_path() {
        let ok = format!("/{}", "a".repeat(MAX_SOCKET_PATH - 1));
        assert!(socket_path("qmp", Path::new(&ok)).is_ok());
        let long = format!("/{}", "a".repeat(MAX_SOCKET_PATH));
        assert_eq!(
            socket_path("qmp", Path::new(&long)),
            Err(SocketPathError::TooLong(108))
        );
    }

    #[test]
    fn ids_names_macs_and_args() {
        assert!(object_id("drive", "root").is_ok());
        assert!(object_id("drive", "work-1.x_y").is_ok());
        for bad in ["", "1root", "a,b", "a b", "ä"] {
            assert!(object_id("drive", bad).is_err(), "{bad:?}");
        }
        assert!(tap_name("tap-vm1").is_ok());
        assert!(tap_name("a-name-longer-than-15").is_err());
        assert!(tap_name("a/b").is_err());
        assert!(mac_address("52:54:00:12:34:56").is_ok());
        assert!(
            mac_address("53:54:00:12:34:56")
                .unwrap_err()
                .contains("multicast")
        );
        assert!(mac_address("52:54:00:12:34").is_err());
        assert!(mac_address("52:54:00:12:34:5g").is_err());
        assert!(kernel_arg("banger.hostname=dev").is_ok());
        assert!(kernel_arg("a b").is_err());
        assert!(kernel_arg("").is_err());
    }
}
