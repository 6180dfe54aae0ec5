//! Reading a unit the way systemd does (main file, then drop-ins) to find which of the
//! hardening directives the installer writes (`banger_sysinstall::hardening`, the one
//! list) are not in effect.

use std::path::{Path, PathBuf};

/// Keys whose assignments add up (an empty assignment resets the list) rather than the
/// last one winning: a drop-in `CapabilityBoundingSet=CAP_SYS_ADMIN` widens the set.
use banger_sysinstall::hardening::LIST_KEYS;

/// Which of `required` (`Key=value` lines) are not in effect in `unit` (plus its
/// `<unit>.d/*.conf` drop-ins). The effective value must be exactly `value`: a later
/// `NoNewPrivileges=no`, a commented-out line, or a list widened anywhere counts as
/// missing. List keys compare as sets of words, the required lines of one key together
/// (several `DeviceAllow=` lines make one list).
pub fn missing_directives(unit: &Path, required: &[String]) -> Result<Vec<String>, String> {
    let assignments = unit_assignments(unit)?;
    let split = |directive: &str| -> (String, String) {
        let (key, want) = directive.split_once('=').unwrap_or((directive, ""));
        (key.to_owned(), want.to_owned())
    };
    let wanted_list = |key: &str| -> String {
        required
            .iter()
            .map(|d| split(d))
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v)
            .collect::<Vec<_>>()
            .join(" ")
    };
    Ok(required
        .iter()
        .filter(|directive| {
            let (key, want) = split(directive);
            match effective(&assignments, &key) {
                None => true,
                Some(value) if LIST_KEYS.contains(&key.as_str()) => {
                    words(&value) != words(&wanted_list(&key))
                }
                Some(value) => value != want,
            }
        })
        .cloned()
        .collect())
}

/// Which words of `needs` (`Key=word word…` lines) are not in the effective value of their
/// key in `unit`, as `Key=word` lines: what a feature needs present, whatever else the key
/// holds (`ExecStart` is read whole).
pub fn lacking(unit: &Path, needs: &[String]) -> Result<Vec<String>, String> {
    let assignments = unit_assignments(unit)?;
    let mut lacking = Vec::new();
    for need in needs {
        let (key, want) = need.split_once('=').unwrap_or((need.as_str(), ""));
        let value = effective(&assignments, key).unwrap_or_default();
        let have = words(&value);
        lacking.extend(
            want.split_whitespace()
                .filter(|w| !have.contains(w))
                .map(|w| format!("{key}={w}")),
        );
    }
    Ok(lacking)
}

/// Every `Key=value` assignment of `unit` and its drop-ins, in the order systemd reads them.
pub fn unit_assignments(unit: &Path) -> Result<Vec<(String, String)>, String> {
    let mut assignments: Vec<(String, String)> = Vec::new();
    for file in unit_files(unit)? {
        let text = std::fs::read_to_string(&file)
            .map_err(|err| format!("cannot read {}: {err}", file.display()))?;
        assignments.extend(parse_assignments(&text));
    }
    Ok(assignments)
}

/// The value systemd ends up with for `key`, `None` when never assigned.
pub fn effective(assignments: &[(String, String)], key: &str) -> Option<String> {
    let mut values = assignments.iter().filter(|(k, _)| k == key).map(|(_, v)| v);
    if !LIST_KEYS.contains(&key) {
        return values.next_back().cloned();
    }
    let mut acc: Option<Vec<&str>> = None;
    for value in values {
        let list = acc.get_or_insert_with(Vec::new);
        if value.is_empty() {
            list.clear();
        } else {
            list.extend(value.split_whitespace());
        }
    }
    acc.map(|list| list.join(" "))
}

fn words(text: &str) -> std::collections::BTreeSet<&str> {
    text.split_whitespace().collect()
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
        [
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "LockPersonality=yes",
            "CapabilityBoundingSet=CAP_NET_ADMIN CAP_CHOWN",
            "AmbientCapabilities=",
        ]
        .map(String::from)
        .to_vec()
    }

    const GOOD: &str = "[Unit]\nDescription=x\n[Service]\nNoNewPrivileges=yes\nProtectSystem=strict\n\
                        LockPersonality=yes\nCapabilityBoundingSet=CAP_NET_ADMIN CAP_CHOWN\n\
                        AmbientCapabilities=\n";

    fn missing(text: &str) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let unit = dir.path().join("banger-helper.service");
        std::fs::write(&unit, text).unwrap();
        missing_directives(&unit, &required()).unwrap()
    }

    #[test]
    fn effective_values_table() {
        let cases: &[(&str, &[&str])] = &[
            (GOOD, &[]),
            (
                "",
                &[
                    "NoNewPrivileges=yes",
                    "ProtectSystem=strict",
                    "LockPersonality=yes",
                    "CapabilityBoundingSet=CAP_NET_ADMIN CAP_CHOWN",
                    "AmbientCapabilities=",
                ],
            ),
            // A later assignment wins for plain keys; a commented line does not count.
            (
                &format!("{GOOD}NoNewPrivileges=no\n"),
                &["NoNewPrivileges=yes"],
            ),
            (
                &GOOD.replace("LockPersonality=yes", "#LockPersonality=yes"),
                &["LockPersonality=yes"],
            ),
            // List keys add up: a line before or after ours widens the set.
            (
                &format!("CapabilityBoundingSet=CAP_SYS_ADMIN\n{GOOD}"),
                &["CapabilityBoundingSet=CAP_NET_ADMIN CAP_CHOWN"],
            ),
            (
                &format!("{GOOD}AmbientCapabilities=CAP_NET_ADMIN\n"),
                &["AmbientCapabilities="],
            ),
            // ...unless an empty assignment resets it first; word order does not matter.
            (
                &format!(
                    "CapabilityBoundingSet=CAP_SYS_ADMIN\n{GOOD}CapabilityBoundingSet=\nCapabilityBoundingSet=CAP_CHOWN CAP_NET_ADMIN\n"
                ),
                &[],
            ),
        ];
        for (text, want) in cases {
            assert_eq!(missing(text), *want, "{text}");
        }
    }

    /// Several lines of one list key are one list, in the unit and in what is required.
    #[test]
    fn list_keys_required_over_several_lines() {
        let dir = tempfile::tempdir().unwrap();
        let unit = dir.path().join("banger-helper.service");
        let required =
            ["DeviceAllow=/dev/kvm rwm", "DeviceAllow=/dev/net/tun rwm"].map(String::from);
        std::fs::write(
            &unit,
            "DeviceAllow=/dev/net/tun rwm\nDeviceAllow=/dev/kvm rwm\n",
        )
        .unwrap();
        assert!(missing_directives(&unit, &required).unwrap().is_empty());
        std::fs::write(
            &unit,
            "DeviceAllow=/dev/kvm rwm\nDeviceAllow=/dev/sda rwm\n",
        )
        .unwrap();
        assert_eq!(missing_directives(&unit, &required).unwrap(), required);
    }

    #[test]
    fn lacking_names_each_missing_word() {
        let dir = tempfile::tempdir().unwrap();
        let unit = dir.path().join("banger-helper.service");
        std::fs::write(
            &unit,
            "ExecStart=/b helper --jailer /j --firecracker /f\nCapabilityBoundingSet=CAP_CHOWN\n\
             CapabilityBoundingSet=CAP_SYS_ADMIN\nKillMode=process\n",
        )
        .unwrap();
        let needs = [
            "ExecStart=--jailer /j --firecracker /f",
            "CapabilityBoundingSet=CAP_SYS_ADMIN CAP_MKNOD",
            "KillMode=process",
            "RestrictNamespaces=mnt pid",
        ]
        .map(String::from);
        assert_eq!(
            lacking(&unit, &needs).unwrap(),
            [
                "CapabilityBoundingSet=CAP_MKNOD",
                "RestrictNamespaces=mnt",
                "RestrictNamespaces=pid"
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
        std::fs::write(dropins.join("ignored.txt"), "LockPersonality=no\n").unwrap();
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
}
