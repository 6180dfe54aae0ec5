//! Preflight: collect every host requirement of an operation before starting it.
//!
//! An operation (starting a VM, `doctor`) lists what it needs — files, executables —
//! and gets back each requirement with whether it is met and, if not, what to do.
//! Collecting all of them first means the user sees every missing piece at once
//! instead of fixing them one failed attempt at a time.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Search path used when `PATH` is unset, matching what login shells default to.
/// Where Debian keeps `ip`, `nft` and `mkfs.ext4`; not in an ordinary user's PATH.
const SBIN_DIRS: [&str; 3] = ["/usr/local/sbin", "/usr/sbin", "/sbin"];

const DEFAULT_SEARCH_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// One requirement and whether the host meets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// What is required, in words ("ssh private key", "nft").
    pub label: String,
    pub met: bool,
    /// Where it was found, or what is wrong.
    pub detail: String,
    /// What to do when it is not met.
    pub hint: Option<String>,
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.label, self.detail)?;
        if let Some(hint) = &self.hint {
            write!(f, " ({hint})")?;
        }
        Ok(())
    }
}

/// Requirements that are not met, all of them.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{} host requirement(s) not met: {}", unmet.len(), list(unmet))]
pub struct PreflightError {
    pub unmet: Vec<Requirement>,
}

fn list(unmet: &[Requirement]) -> String {
    unmet
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// An ordered list of requirements. See the module docs.
#[derive(Debug, Clone, Default)]
pub struct Preflight {
    requirements: Vec<Requirement>,
    /// `PATH`-style list for bare program names; `None` means the process `PATH`.
    search_path: Option<OsString>,
}

impl Preflight {
    /// Look programs up in the process `PATH`.
    pub fn new() -> Preflight {
        Preflight::default()
    }

    /// Look programs up in `search_path` (a `PATH`-style list) instead of the
    /// process `PATH`; tests use this to simulate hosts with tools missing.
    pub fn with_search_path(search_path: Option<OsString>) -> Preflight {
        Preflight {
            requirements: Vec::new(),
            search_path,
        }
    }

    /// Record a requirement that is met.
    pub fn pass(&mut self, label: &str, detail: impl Into<String>) {
        self.push(label, true, detail.into(), None);
    }

    /// Record a requirement that is not met.
    pub fn fail(&mut self, label: &str, detail: impl Into<String>, hint: Option<String>) {
        self.push(label, false, detail.into(), hint);
    }

    fn push(&mut self, label: &str, met: bool, detail: String, hint: Option<String>) {
        self.requirements.push(Requirement {
            label: label.to_string(),
            met,
            detail,
            hint,
        });
    }

    /// Require a regular file (symlinks are followed) at `path`.
    pub fn require_file(&mut self, path: &Path, label: &str, hint: &str) -> bool {
        let problem = if path.as_os_str().is_empty() {
            Some("no path configured".to_string())
        } else {
            match std::fs::metadata(path) {
                Ok(meta) if meta.is_file() => None,
                Ok(_) => Some(format!("{} is not a regular file", path.display())),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                    Some(format!("{} does not exist", path.display()))
                }
                Err(err) => Some(format!("{}: {err}", path.display())),
            }
        };
        match problem {
            None => {
                self.pass(label, path.display().to_string());
                true
            }
            Some(detail) => {
                self.fail(label, detail, Some(hint.to_string()));
                false
            }
        }
    }

    /// Require an executable: a bare `name` is searched for like a shell would, a
    /// name containing `/` must itself be an executable file.
    pub fn require_executable(&mut self, name: &str, label: &str, hint: &str) -> Option<PathBuf> {
        let found = find_executable(name, self.search_path.as_deref());
        match &found {
            Some(path) => self.pass(label, path.display().to_string()),
            None if name.contains('/') => self.fail(
                label,
                format!("{name} is not an executable file"),
                Some(hint.to_string()),
            ),
            None => self.fail(
                label,
                format!("{name} not found in PATH"),
                Some(hint.to_string()),
            ),
        }
        found
    }

    /// Every requirement, in the order they were added.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// Requirements that are not met.
    pub fn unmet(&self) -> impl Iterator<Item = &Requirement> {
        self.requirements.iter().filter(|r| !r.met)
    }

    pub fn is_satisfied(&self) -> bool {
        self.unmet().next().is_none()
    }

    /// `Ok` when every requirement is met, otherwise an error listing all unmet ones.
    pub fn check(&self) -> Result<(), PreflightError> {
        let unmet: Vec<Requirement> = self.unmet().cloned().collect();
        if unmet.is_empty() {
            Ok(())
        } else {
            Err(PreflightError { unmet })
        }
    }
}

/// The process PATH plus the sbin directories, where `ip`, `nft` and `mkfs.ext4`
/// live on Debian but which an ordinary user's PATH does not include.
pub fn host_search_path() -> OsString {
    with_sbin_dirs(std::env::var_os("PATH").as_deref())
}

/// `path` (a PATH-style list) with the sbin directories appended where missing.
pub fn with_sbin_dirs(path: Option<&OsStr>) -> OsString {
    let mut dirs: Vec<PathBuf> = path
        .map(|p| std::env::split_paths(p).collect())
        .unwrap_or_default();
    for sbin in SBIN_DIRS {
        if !dirs.iter().any(|d| d.as_os_str() == sbin) {
            dirs.push(PathBuf::from(sbin));
        }
    }
    // Joining only fails for entries containing ':', which split_paths never yields.
    std::env::join_paths(&dirs).unwrap_or_else(|_| OsString::from(SBIN_DIRS.join(":")))
}

/// Find an executable the way a shell would: a name containing `/` is taken as a
/// path, a bare name is searched in `search_path` (`PATH`-style; `None` means the
/// process `PATH`). Only regular files with an execute bit count.
pub fn find_executable(name: &str, search_path: Option<&OsStr>) -> Option<PathBuf> {
    if name.is_empty() {
        return None;
    }
    if name.contains('/') {
        let path = Path::new(name);
        return is_executable_file(path).then(|| path.to_path_buf());
    }
    let process_path;
    let search_path = match search_path {
        Some(path) => path,
        None => {
            process_path =
                std::env::var_os("PATH").unwrap_or_else(|| OsString::from(DEFAULT_SEARCH_PATH));
            process_path.as_os_str()
        }
    };
    std::env::split_paths(search_path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable_file(candidate))
}

fn is_executable_file(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path, mode: u32) {
        std::fs::write(path, b"").unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn finds_executables_only_in_the_given_path() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        touch(&a.join("tool"), 0o644); // not executable: skipped
        touch(&b.join("tool"), 0o755);
        let path = std::env::join_paths([&a, &b]).unwrap();

        assert_eq!(find_executable("tool", Some(&path)), Some(b.join("tool")));
        assert_eq!(find_executable("sh", Some(&path)), None);
        assert!(find_executable("sh", None).is_some());
        assert_eq!(find_executable("", Some(&path)), None);
        let explicit = b.join("tool");
        assert_eq!(
            find_executable(explicit.to_str().unwrap(), None),
            Some(explicit)
        );
        assert_eq!(
            find_executable(a.join("tool").to_str().unwrap(), None),
            None
        );
    }

    #[test]
    fn collects_every_requirement_with_hints() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key");
        touch(&file, 0o600);
        let mut pf = Preflight::with_search_path(Some(dir.path().as_os_str().to_owned()));

        assert!(pf.require_file(&file, "ssh key", "create it"));
        assert!(!pf.require_file(&dir.path().join("nope"), "kernel", "rebuild"));
        assert!(!pf.require_file(dir.path(), "rootfs", "rebuild"));
        assert!(!pf.require_file(Path::new(""), "initrd", "configure"));
        assert!(
            pf.require_executable("ip", "ip", "apt install iproute2")
                .is_none()
        );

        assert!(!pf.is_satisfied());
        let unmet: Vec<_> = pf.unmet().map(|r| r.label.as_str()).collect();
        assert_eq!(unmet, ["kernel", "rootfs", "initrd", "ip"]);
        assert_eq!(pf.requirements().len(), 5);

        let err = pf.check().unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("4 host requirement(s) not met"), "{msg}");
        assert!(msg.contains("does not exist (rebuild)"), "{msg}");
        assert!(
            msg.contains("ip: ip not found in PATH (apt install iproute2)"),
            "{msg}"
        );
    }

    #[test]
    fn empty_preflight_is_satisfied() {
        let mut pf = Preflight::new();
        assert!(pf.check().is_ok());
        pf.pass("arch", "x86_64");
        assert!(pf.is_satisfied());
    }
}
