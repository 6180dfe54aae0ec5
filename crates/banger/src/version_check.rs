//! Does the daemon we reached run the same build as this CLI? Checked on every
//! connection from the `/v1/health` answer the connection already fetches, so it
//! costs nothing extra.
//!
//! A mismatch is a warning, not an error: the daemon owns running VMs, and the user
//! must be able to list, stop and remove them with whichever CLI is at hand; most
//! routes work across builds, and one that does not fails with its own clear error.
//! The warning says how to get the daemon that matches.

use banger_api::Health;
use banger_paths::{Layout, Mode};

/// A warning with its hint when `daemon` is not this CLI's build; `None` when they match.
pub fn mismatch(daemon: &Health, layout: &Layout) -> Option<String> {
    let ours = (env!("CARGO_PKG_VERSION"), crate::BUILD_ID);
    let same_version = daemon.version == ours.0;
    // A daemon that reports no build predates build ids: it is older than this CLI.
    let same_build = daemon.build == ours.1;
    if same_version && same_build {
        return None;
    }
    let theirs = if daemon.build.is_empty() {
        format!("{} (no build id: an older build)", daemon.version)
    } else {
        format!("{} (build {})", daemon.version, daemon.build)
    };
    let what = if same_version {
        "was built from different sources than"
    } else {
        match (
            semver::Version::parse(&daemon.version),
            semver::Version::parse(ours.0),
        ) {
            (Ok(theirs), Ok(mine)) if theirs < mine => "is an older version than",
            (Ok(theirs), Ok(mine)) if theirs > mine => "is a newer version than",
            _ => "is a different version from",
        }
    };
    let fix = match layout.mode {
        // The service runs the installed binary, so restarting it alone changes nothing
        // when this CLI is another build: installing this one replaces and restarts both.
        Mode::SystemInstall => {
            let owner = banger_config::load_install_meta(&layout.install_toml())
                .ok()
                .flatten()
                .map_or_else(|| "<owner>".to_string(), |m| m.owner_user);
            format!(
                "install this banger as the system's: `sudo banger system install --owner \
                 {owner}` (running VMs keep running), or use the installed one"
            )
        }
        Mode::DevRoot | Mode::DevUser => "run `banger daemon stop`: the next banger command \
             starts this build's daemon, and running VMs keep running"
            .to_string(),
    };
    Some(format!(
        "the banger daemon (pid {}) {what} this banger: daemon {theirs}, CLI {} (build {})\n\
         hint: {fix}",
        daemon.pid, ours.0, ours.1
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(version: &str, build: &str) -> Health {
        Health {
            version: version.into(),
            build: build.into(),
            pid: 42,
            mode: "dev (user)".into(),
            state_dir: "/tmp".into(),
            driver: "qemu (tcg)".into(),
            driver_reason: String::new(),
        }
    }

    fn layout(mode: Mode) -> Layout {
        Layout {
            mode,
            state_dir: "/s".into(),
            runtime_dir: "/r".into(),
            config_dir: "/c".into(),
            etc_dir: "/e".into(),
            home_dir: None,
        }
    }

    #[test]
    fn same_build_is_silent_and_differences_say_what_to_do() {
        let v = env!("CARGO_PKG_VERSION");
        let dev = layout(Mode::DevUser);
        assert_eq!(mismatch(&health(v, crate::BUILD_ID), &dev), None);

        let rebuilt = mismatch(&health(v, "0123456789ab"), &dev).unwrap();
        assert!(rebuilt.contains("different sources"), "{rebuilt}");
        assert!(rebuilt.contains("banger daemon stop"), "{rebuilt}");

        let old = mismatch(&health(v, ""), &dev).unwrap();
        assert!(old.contains("older build"), "{old}");

        let system = layout(Mode::SystemInstall);
        let other = mismatch(&health("0.0.1", "x"), &system).unwrap();
        assert!(other.contains("older version"), "{other}");
        assert!(other.contains("banger system install"), "{other}");
        let newer = mismatch(&health("99.0.0", "x"), &dev).unwrap();
        assert!(newer.contains("newer version"), "{newer}");
        let bogus = mismatch(&health("not-a-version", "x"), &dev).unwrap();
        assert!(bogus.contains("different version"), "{bogus}");
    }
}
