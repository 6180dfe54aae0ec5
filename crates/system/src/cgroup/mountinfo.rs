//! One line of `/proc/self/mountinfo` (proc(5)), read as far as a cgroup mount needs:
//!
//! ```text
//! 35 31 0:32 / /sys/fs/cgroup/memory rw,relatime shared:12 - cgroup cgroup rw,memory
//! id parent dev root point    options  [optional…] - fstype source super-options
//! ```
//!
//! The optional fields (`shared:N`, `master:N`, …) vary in number and end at a lone `-`;
//! paths are escaped octally by the kernel (`\040` a space, `\011` a tab, `\012` a newline,
//! `\134` a backslash), so a line splits on single spaces.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use super::CgroupMount;

/// Super options of a v1 mount that are not controllers (`name=…`, `release_agent=…` and
/// the like carry a `=`).
const NOT_CONTROLLERS: [&str; 7] = [
    "rw",
    "ro",
    "xattr",
    "noprefix",
    "clone_children",
    "cpuset_v2_mode",
    "favordynmods",
];

/// The cgroup mount `line` describes; `None` for any other mount or a line that is not
/// mountinfo.
pub(super) fn cgroup_mount(line: &str) -> Option<CgroupMount> {
    let fields: Vec<&str> = line.split(' ').collect();
    // The separator comes after the six fixed fields and any optional ones.
    let sep = 6 + fields.get(6..)?.iter().position(|f| *f == "-")?;
    let (root, point) = (fields[3], fields[4]);
    let fstype = *fields.get(sep + 1)?;
    let super_options = *fields.get(sep + 3)?;
    let controllers = match fstype {
        "cgroup2" => None,
        "cgroup" => Some(
            super_options
                .split(',')
                .filter(|o| !o.contains('=') && !NOT_CONTROLLERS.contains(o))
                .map(str::to_owned)
                .collect(),
        ),
        _ => return None,
    };
    Some(CgroupMount {
        root: unescape(root),
        point: unescape(point),
        controllers,
    })
}

/// `field` with the kernel's octal escapes (`\ooo`) turned back into the bytes they stand
/// for; a backslash not followed by three octal digits is kept as it is.
fn unescape(field: &str) -> PathBuf {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match octal {
            Some(d) => {
                let value = d.iter().fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
                // Three octal digits reach 0o777; the kernel writes only bytes (≤ 0o377).
                out.push(u8::try_from(value).unwrap_or(u8::MAX));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    PathBuf::from(OsString::from_vec(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_undone_byte_for_byte() {
        assert_eq!(unescape("/a\\040b"), PathBuf::from("/a b"));
        assert_eq!(unescape("/t\\011n\\012"), PathBuf::from("/t\tn\n"));
        assert_eq!(unescape("/back\\134slash"), PathBuf::from("/back\\slash"));
        // Not an escape: kept literally.
        assert_eq!(unescape("/x\\04"), PathBuf::from("/x\\04"));
        assert_eq!(unescape("/x\\9999"), PathBuf::from("/x\\9999"));
        assert_eq!(unescape("/end\\"), PathBuf::from("/end\\"));
        // A byte that is not UTF-8 survives into the path.
        assert_eq!(
            unescape("/\\377").into_os_string().into_vec(),
            b"/\xff".to_vec()
        );
    }

    #[test]
    fn other_lines_are_not_cgroup_mounts() {
        for line in [
            "",
            "22 1 0:21 / /proc rw,nosuid - proc proc rw",
            // /proc/self/mounts, not mountinfo.
            "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime 0 0",
            // No separator, or nothing after it.
            "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime cgroup2 cgroup2 rw",
            "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime -",
            "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2",
        ] {
            assert_eq!(cgroup_mount(line), None, "{line:?}");
        }
    }
}
