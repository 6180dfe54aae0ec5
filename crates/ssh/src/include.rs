//! Reading and editing `Include` lines of an ssh_config (ssh_config(5) rules).

use std::path::{Path, PathBuf};

use crate::SshError;

/// What [`install`] or [`uninstall`] did to `~/.ssh/config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The Include line was added at the top; the old file was copied to `backup` first.
    Added { backup: Option<PathBuf> },
    /// An unconditional Include of the file was already there: nothing written.
    AlreadyPresent,
    /// Include lines of the file were removed; the old file was copied to `backup` first.
    Removed { backup: PathBuf, lines: usize },
    /// There was nothing to remove: nothing written.
    NotPresent,
}

/// Where the copy of `~/.ssh/config` goes before banger changes it.
pub fn backup_path(user_config: &Path) -> PathBuf {
    let mut name = user_config.as_os_str().to_owned();
    name.push(".banger-backup");
    PathBuf::from(name)
}

/// The line [`install`] writes.
pub fn include_line(target: &Path) -> String {
    let text = target.display().to_string();
    if text.chars().any(char::is_whitespace) {
        format!("Include \"{text}\"")
    } else {
        format!("Include {text}")
    }
}

/// `~/.ssh/config` may be a symlink into a dotfiles repository: edit the file it points
/// to, and keep the link. A link to a file not written yet names where to make it.
fn real_path(user_config: &Path) -> Result<PathBuf, SshError> {
    match std::fs::canonicalize(user_config) {
        Ok(path) => Ok(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => dangling_target(user_config),
        Err(source) => Err(SshError::Read {
            path: user_config.to_path_buf(),
            source,
        }),
    }
}

/// Follow `path`'s symlinks (a relative one from the link's directory) to the first name
/// that is not one; `path` itself when it is no link.
fn dangling_target(path: &Path) -> Result<PathBuf, SshError> {
    let mut at = path.to_path_buf();
    // The kernel's own limit on links in a path.
    for _ in 0..40 {
        match std::fs::read_link(&at) {
            Ok(target) => at = at.parent().unwrap_or(Path::new("/")).join(target),
            Err(_) => return Ok(at),
        }
    }
    Err(SshError::Read {
        path: path.to_path_buf(),
        source: std::io::Error::other("too many levels of symbolic links"),
    })
}

fn keyword_and_rest(line: &str) -> Option<(&str, &str)> {
    let line = line.trim();
    let (keyword, rest) = line.split_once(|c: char| c.is_whitespace() || c == '=')?;
    Some((
        keyword,
        rest.trim_start_matches(|c: char| c.is_whitespace() || c == '='),
    ))
}

/// Add `Include TARGET` as the first line of `user_config` (before any `Host` or `Match`
/// block, where it applies to every host), unless an Include there already covers it.
/// Every other byte of the file stays as it was; the old file is copied aside first and
/// the new one replaces it atomically with the same mode.
pub fn install(user_config: &Path, target: &Path, home: Option<&Path>) -> Result<Change, SshError> {
    let path = real_path(user_config)?;
    let (old, mode) = match std::fs::read(&path) {
        Ok(bytes) => {
            let mode = std::fs::metadata(&path)
                .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777)
                .unwrap_or(0o600);
            (Some(bytes), mode)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (None, 0o600),
        Err(source) => return Err(SshError::Read { path, source }),
    };
    let text = String::from_utf8_lossy(old.as_deref().unwrap_or_default()).into_owned();
    let global: String = text
        .lines()
        .take_while(|l| {
            !keyword_and_rest(l).is_some_and(|(k, _)| {
                k.eq_ignore_ascii_case("host") || k.eq_ignore_ascii_case("match")
            })
        })
        .map(|l| format!("{l}\n"))
        .collect();
    if includes(&global, target, home) {
        return Ok(Change::AlreadyPresent);
    }
    let backup = match &old {
        Some(bytes) => {
            let backup = backup_path(&path);
            crate::write::atomic(&backup, bytes, 0o600)?;
            Some(backup)
        }
        None => {
            if let Some(dir) = path.parent() {
                crate::write::private_dir(dir)?;
            }
            None
        }
    };
    let mut new = format!("{}\n", include_line(target)).into_bytes();
    new.extend_from_slice(old.as_deref().unwrap_or_default());
    crate::write::atomic(&path, &new, mode)?;
    Ok(Change::Added { backup })
}

/// Remove every line that is an `Include` of exactly `target` (one argument, no glob),
/// leaving every other byte as it was.
pub fn uninstall(
    user_config: &Path,
    target: &Path,
    home: Option<&Path>,
) -> Result<Change, SshError> {
    let path = real_path(user_config)?;
    let old = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Change::NotPresent),
        Err(source) => return Err(SshError::Read { path, source }),
    };
    let ours = |line: &[u8]| {
        let Ok(line) = std::str::from_utf8(line) else {
            return false;
        };
        let Some((keyword, rest)) = keyword_and_rest(line) else {
            return false;
        };
        let args = arguments(rest);
        keyword.eq_ignore_ascii_case("include")
            && args.len() == 1
            && !args[0].contains(['*', '?'])
            && expand(&args[0], home) == normalize(target)
    };
    let mut kept = Vec::with_capacity(old.len());
    let mut removed = 0;
    for line in old.split_inclusive(|b| *b == b'\n') {
        if ours(line) {
            removed += 1;
        } else {
            kept.extend_from_slice(line);
        }
    }
    if removed == 0 {
        return Ok(Change::NotPresent);
    }
    let mode = std::fs::metadata(&path)
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777)
        .unwrap_or(0o600);
    let backup = backup_path(&path);
    crate::write::atomic(&backup, &old, 0o600)?;
    crate::write::atomic(&path, &kept, mode)?;
    Ok(Change::Removed {
        backup,
        lines: removed,
    })
}

/// Whether an ssh_config text has an `Include` that covers `target`.
///
/// Follows ssh_config(5): the keyword is case-insensitive and may be followed by
/// `=`; arguments may be quoted, start with `~`, be relative to `~/.ssh`, or be
/// globs (`*`, `?`).
pub fn includes(config: &str, target: &Path, home: Option<&Path>) -> bool {
    config.lines().any(|line| {
        let line = line.trim();
        let Some((keyword, rest)) = line.split_once(|c: char| c.is_whitespace() || c == '=') else {
            return false;
        };
        if !keyword.eq_ignore_ascii_case("include") {
            return false;
        }
        let rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '=');
        arguments(rest).iter().any(|arg| {
            let pattern = expand(arg, home);
            glob_match(&pattern.to_string_lossy(), &target.to_string_lossy())
        })
    })
}

/// Split on whitespace, honouring double quotes; a `#` that starts an argument starts a
/// comment, which ends the line (OpenSSH's `argv_split`).
fn arguments(text: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '#' if !quoted && current.is_empty() => break,
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !current.is_empty() {
                    args.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        args.push(current);
    }
    args
}

fn expand(arg: &str, home: Option<&Path>) -> PathBuf {
    let path = match (arg.strip_prefix("~/"), home) {
        (Some(rest), Some(home)) => home.join(rest),
        _ if arg.starts_with('/') => PathBuf::from(arg),
        // ssh resolves relative user Includes against ~/.ssh.
        (_, Some(home)) => home.join(".ssh").join(arg),
        (_, None) => PathBuf::from(arg),
    };
    normalize(&path)
}

/// Resolve `.` and `..` lexically, so `~/.ssh/../x` compares equal to `~/x`.
fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// `*` matches any run of characters, `?` any one character.
fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            backtrack = Some((pi, ti));
            pi += 1;
        } else if let Some((star, matched)) = backtrack {
            pi = star + 1;
            ti = matched + 1;
            backtrack = Some((star, matched + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOME: &str = "/home/al";
    const TARGET: &str = "/home/al/.config/banger/ssh_config";

    fn inc(config: &str) -> bool {
        includes(config, Path::new(TARGET), Some(Path::new(HOME)))
    }

    #[test]
    fn include_forms_that_count() {
        assert!(inc("Include /home/al/.config/banger/ssh_config\n"));
        assert!(inc("  include=~/.config/banger/ssh_config\n"));
        assert!(inc("INCLUDE \"/home/al/.config/banger/ssh_config\"\n"));
        assert!(inc("Include /etc/ssh/other ~/.config/banger/*\n"));
        assert!(inc("Include ../.config/banger/ssh_confi?\n"));
    }

    #[test]
    fn include_forms_that_do_not_count() {
        assert!(!inc(""));
        assert!(!inc("# Include /home/al/.config/banger/ssh_config\n"));
        assert!(!inc("Host *.vm\n  ProxyCommand banger\n"));
        assert!(!inc("Include /home/al/.config/banger/ssh_config.bak\n"));
        assert!(!inc("Includes /home/al/.config/banger/ssh_config\n"));
    }

    #[test]
    fn install_and_uninstall_keep_every_other_byte() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path();
        let target = home.join(".config/banger/ssh_config");
        let user = home.join(".ssh/config");

        // No file yet: created, 0600, in a 0700 ~/.ssh.
        assert_eq!(
            install(&user, &target, Some(home)).unwrap(),
            Change::Added { backup: None }
        );
        assert_eq!(
            std::fs::read_to_string(&user).unwrap(),
            format!("Include {}\n", target.display())
        );
        assert_eq!(
            install(&user, &target, Some(home)).unwrap(),
            Change::AlreadyPresent
        );
        assert!(matches!(
            uninstall(&user, &target, Some(home)).unwrap(),
            Change::Removed { lines: 1, .. }
        ));
        assert_eq!(std::fs::read(&user).unwrap(), b"");

        // An existing file with odd bytes: CRLF, no final newline, an Include in a Host block
        // (conditional, so it does not count).
        let original = format!(
            "# mine\r\nHost work\r\n  Include {}\r\n  User me\n\tPort 22",
            target.display()
        );
        std::fs::write(&user, &original).unwrap();
        std::fs::set_permissions(&user, std::os::unix::fs::PermissionsExt::from_mode(0o640))
            .unwrap();
        let change = install(&user, &target, Some(home)).unwrap();
        let backup = backup_path(&user);
        assert_eq!(
            change,
            Change::Added {
                backup: Some(backup.clone())
            }
        );
        assert_eq!(std::fs::read_to_string(&backup).unwrap(), original);
        let installed = std::fs::read_to_string(&user).unwrap();
        assert_eq!(
            installed,
            format!("Include {}\n{original}", target.display())
        );
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&user).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o640, "the mode is kept");
        // Uninstall removes our line and the equivalent one in the Host block, nothing else.
        assert!(matches!(
            uninstall(&user, &target, Some(home)).unwrap(),
            Change::Removed { lines: 2, .. }
        ));
        assert_eq!(
            std::fs::read_to_string(&user).unwrap(),
            "# mine\r\nHost work\r\n  User me\n\tPort 22"
        );
        assert_eq!(
            uninstall(&user, &target, Some(home)).unwrap(),
            Change::NotPresent
        );
    }

    #[test]
    fn a_symlinked_config_is_edited_through_the_link() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path();
        let target = home.join("banger_config");
        let real = home.join("dotfiles-ssh-config");
        std::fs::write(&real, "Host x\n").unwrap();
        std::fs::create_dir_all(home.join(".ssh")).unwrap();
        let user = home.join(".ssh/config");
        std::os::unix::fs::symlink(&real, &user).unwrap();
        install(&user, &target, Some(home)).unwrap();
        assert!(is_link(&user));
        assert!(
            std::fs::read_to_string(&real)
                .unwrap()
                .starts_with("Include ")
        );
    }

    fn is_link(path: &Path) -> bool {
        std::fs::symlink_metadata(path)
            .unwrap()
            .file_type()
            .is_symlink()
    }

    #[test]
    fn a_trailing_comment_is_no_argument() {
        // OpenSSH ends a line's arguments at a `#` that starts one.
        assert!(!inc("Include /etc/ssh/x # ~/.config/banger/ssh_config\n"));
        assert!(inc("Include /home/al/.config/banger/ssh_config # banger\n"));
        assert!(inc("Include /home/al/.config/banger/ssh_config #\n"));
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path();
        let target = home.join(".config/banger/ssh_config");
        let user = home.join("config");
        let ours = format!("Include {} # added by banger\n", target.display());
        std::fs::write(&user, format!("{ours}Host x\n")).unwrap();
        assert_eq!(
            install(&user, &target, Some(home)).unwrap(),
            Change::AlreadyPresent
        );
        assert!(matches!(
            uninstall(&user, &target, Some(home)).unwrap(),
            Change::Removed { lines: 1, .. }
        ));
        assert_eq!(std::fs::read_to_string(&user).unwrap(), "Host x\n");
    }

    #[test]
    fn a_dangling_symlinked_config_is_made_where_it_points() {
        // A dotfiles repository whose ssh config is linked before it was ever written.
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path();
        let target = home.join("banger_config");
        std::fs::create_dir_all(home.join(".ssh")).unwrap();
        std::fs::create_dir_all(home.join("dotfiles")).unwrap();
        let user = home.join(".ssh/config");
        std::os::unix::fs::symlink("../dotfiles/ssh_config", &user).unwrap();
        install(&user, &target, Some(home)).unwrap();
        assert!(is_link(&user), "the link is kept");
        assert_eq!(
            std::fs::read_to_string(home.join("dotfiles/ssh_config")).unwrap(),
            format!("Include {}\n", target.display())
        );
        assert!(matches!(
            uninstall(&user, &target, Some(home)).unwrap(),
            Change::Removed { lines: 1, .. }
        ));
        assert!(is_link(&user));
    }

    #[test]
    fn glob() {
        assert!(glob_match("*", "anything"));
        assert!(glob_match("a*c", "abbbc"));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("a?c", "abbc"));
        assert!(glob_match("*.conf", "x.y.conf"));
        assert!(!glob_match("*.conf", "x.conf.bak"));
    }
}
