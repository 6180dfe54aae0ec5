//! Extended tar headers (GNU long names, PAX records) read by hand, so their sizes are
//! bounded before anything is allocated for them.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// What extension headers said about the entry that follows them.
#[derive(Debug, Default, Clone)]
pub struct Pending {
    pub path: Option<Vec<u8>>,
    pub linkpath: Option<Vec<u8>>,
    pub uid: Option<u64>,
    pub gid: Option<u64>,
    /// `SCHILY.xattr.NAME` records.
    pub xattrs: Vec<(String, Vec<u8>)>,
}

impl Pending {
    pub fn absorb(&mut self, kind: tar::EntryType, data: Vec<u8>) -> Result<(), String> {
        let trim = |mut d: Vec<u8>| {
            if let Some(nul) = d.iter().position(|b| *b == 0) {
                d.truncate(nul);
            }
            d
        };
        if kind.is_gnu_longname() {
            self.path = Some(trim(data));
        } else if kind.is_gnu_longlink() {
            self.linkpath = Some(trim(data));
        } else if kind.is_pax_local_extensions() {
            for (key, value) in records(&data)? {
                match key {
                    b"path" => self.path = Some(value.to_vec()),
                    b"linkpath" => self.linkpath = Some(value.to_vec()),
                    b"uid" => self.uid = parse_num(value),
                    b"gid" => self.gid = parse_num(value),
                    b"size" => return Err(
                        "uses a PAX size record (files over 8 GiB), which banger does not support"
                            .into(),
                    ),
                    _ => {
                        if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                            self.xattrs
                                .push((String::from_utf8_lossy(name).into_owned(), value.to_vec()));
                        }
                    }
                }
            }
        }
        // Global PAX headers (`g`) carry nothing banger uses.
        Ok(())
    }
}

fn parse_num(v: &[u8]) -> Option<u64> {
    std::str::from_utf8(v).ok()?.trim().parse().ok()
}

/// One PAX record: key and value.
type Record<'a> = (&'a [u8], &'a [u8]);

/// `LEN KEY=VALUE\n` records, each checked against the data's bounds.
fn records(mut data: &[u8]) -> Result<Vec<Record<'_>>, String> {
    let bad = || "has a malformed PAX header".to_string();
    let mut out = Vec::new();
    while !data.is_empty() {
        if data.iter().all(|b| *b == 0) {
            break;
        }
        let space = data.iter().position(|b| *b == b' ').ok_or_else(bad)?;
        let len: usize = std::str::from_utf8(&data[..space])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)?;
        if len <= space + 1 || len > data.len() || data[len - 1] != b'\n' {
            return Err(bad());
        }
        let record = &data[space + 1..len - 1];
        let eq = record.iter().position(|b| *b == b'=').ok_or_else(bad)?;
        out.push((&record[..eq], &record[eq + 1..]));
        data = &data[len..];
    }
    Ok(out)
}

/// `lsetxattr` without following a symlink.
pub fn set_xattr(path: &Path, name: &str, value: &[u8]) -> std::io::Result<()> {
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    let c_name = std::ffi::CString::new(name)?;
    // SAFETY: both C strings and the value buffer are valid for the call's duration.
    let ret = unsafe {
        libc::lsetxattr(
            c_path.as_ptr(),
            c_name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if ret == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_bounded() {
        let r = records(b"20 path=a/very/long\n10 uid=42\n").unwrap();
        assert_eq!(
            r,
            vec![
                (&b"path"[..], &b"a/very/long"[..]),
                (&b"uid"[..], &b"42"[..])
            ]
        );
        for bad in [&b"99 path=x\n"[..], b"5 p\n", b"x path=y\n", b"3 =\n"] {
            assert!(records(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
