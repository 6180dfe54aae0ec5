//! Hardening directives the systemd units must carry, and reading a unit the way
//! systemd does (main file, then drop-ins; the last assignment wins).

use std::path::{Path, PathBuf};

/// Required in the root helper's unit. `CapabilityBoundingSet=` must be set (to
/// the narrow list the installer writes); its value is not pinned here.
pub const HELPER_HARDENING: [&str; 6] = [
    "NoNewPrivileges=yes",
    "ProtectSystem=strict",
    "ProtectHome=yes",
    "RestrictSUIDSGID=yes",
    "LockPersonality=yes",
    "CapabilityBoundingSet=",
];

/// Required in the owner daemon's unit, besides `User=<owner>`.
pub const DAEMON_HARDENING: [&str; 5] = [
    "NoNewPrivileges=yes",
    "ProtectSystem=strict",
    "ProtectHome=read-only",
    "RestrictSUIDSGID=yes",
    "LockPersonality=yes",
];

/// The daemon's full list: it must run as the owner, never as root.
pub fn daemon_hardening(owner_user: &str) -> Vec<String> {
    std::iter::once(format!("User={owner_user}"))
        .chain(DAEMON_HARDENING.iter().map(|d| d.to_string()))
        .collect()
}

/// Which of `required` are not in effect in `unit` (plus its `<unit>.d/*.conf`
/// drop-ins). A `Key=` entry only requires the key to be set; `Key=value` requires
/// the effective (last) assignment to be exactly `value`, so a later
/// `NoNewPrivileges=no` or a commented-out line counts as missing.
pub fn missing_directives(unit: &Path, required: &[String]) -> Result<Vec<String>, String> {
    let mut assignments: Vec<(String, String)> = Vec::new();
    for file in unit_files(unit)? {
        let text = std::fs::read_to_string(&file)
            .map_err(|err| format!("cannot read {}: {err}", file.display()))?;
        assignments.extend(parse_assignments(&text));
    }
    let effective = |key: &str| {
        assignments
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    Ok(required
        .iter()
        .filter(|directive| {
            let (key, want) = directive
                .split_once('=')
                .unwrap_or((directive.as_str(), ""));
            match (effective(key), want) {
                (None, _) => true,
                (Some(_), "") => false,
                (Some(value), want) => value != want,
            }
        })
        .cloned()
        .collect())
}

/// The unit file, then its drop-ins in name order, as systemd applies them.
fn unit_files(unit: &Path) -> Result<Vec<PathBuf>, String> {
    if !unit.is_file() {
        return Err(format!(
            "{} does not exist or is not a file",
            unit.display()
        ));
    }
    let mut files = vec![unit.to_path_buf()];
    let mut dropin_dir = unit.as_os_str().to_owned();
    dropin_dir.push(".d");
    if let Ok(entries) = std::fs::read_dir(PathBuf::from(dropin_dir)) {
        let mut dropins: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|ext| ext == "conf"))
            .collect();
        dropins.sort();
        files.extend(dropins);
    }
    Ok(files)
}

/// `Key=value` lines, skipping comments, section headers and blank lines.
fn parse_assignments(text: &str) -> impl Iterator<Item = (String, String)> + '_ {
    text.lines().filter_map(|line| {
        let line = line.trim();
        if line.is_empty() || line.starts_with(['#', ';', '[']) {
            return None;
        }
        let (key, value) = line.split_once('=')?;
        Some((key.trim().to_string(), value.trim().to_string()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn required() -> Vec<String> {
        HELPER_HARDENING.iter().map(|d| d.to_string()).collect()
    }

    const GOOD: &str = "[Unit]\nDescription=x\n[Service]\nNoNewPrivileges=yes\nProtectSystem=strict\n\
                        ProtectHome=yes\nRestrictSUIDSGID=yes\nLockPersonality=yes\n\
                        CapabilityBoundingSet=CAP_NET_ADMIN\n";

    #[test]
    fn complete_unit_passes() {
        let dir = tempfile::tempdir().unwrap();
        let unit = dir.path().join("banger-helper.service");
        std::fs::write(&unit, GOOD).unwrap();
        assert_eq!(
            missing_directives(&unit, &required()).unwrap(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn commented_overridden_and_absent_directives_are_missing() {
        let dir = tempfile::tempdir().unwrap();
        let unit = dir.path().join("banger-helper.service");
        let text = GOOD
            .replace("LockPersonality=yes", "#LockPersonality=yes")
            .replace("CapabilityBoundingSet=CAP_NET_ADMIN\n", "");
        std::fs::write(&unit, text + "NoNewPrivileges=no\n").unwrap();
        let missing = missing_directives(&unit, &required()).unwrap();
        assert_eq!(
            missing,
            [
                "NoNewPrivileges=yes",
                "LockPersonality=yes",
                "CapabilityBoundingSet="
            ]
        );
    }

    #[test]
    fn dropins_override_the_main_file() {
        let dir = tempfile::tempdir().unwrap();
        let unit = dir.path().join("banger-helper.service");
        std::fs::write(&unit, GOOD).unwrap();
        let dropins = dir.path().join("banger-helper.service.d");
        std::fs::create_dir(&dropins).unwrap();
        std::fs::write(
            dropins.join("10-debug.conf"),
            "[Service]\nProtectSystem=full\n",
        )
        .unwrap();
        std::fs::write(dropins.join("ignored.txt"), "ProtectHome=no\n").unwrap();
        assert_eq!(
            missing_directives(&unit, &required()).unwrap(),
            ["ProtectSystem=strict"]
        );
    }

    #[test]
    fn missing_unit_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = missing_directives(&dir.path().join("x.service"), &required()).unwrap_err();
        assert!(err.contains("does not exist"), "{err}");
    }

    #[test]
    fn daemon_list_pins_the_owner() {
        assert_eq!(daemon_hardening("al")[0], "User=al");
        assert_eq!(daemon_hardening("al").len(), 6);
    }
}
