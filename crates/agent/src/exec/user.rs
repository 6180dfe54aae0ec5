//! Who an exec runs as: an OCI image config's `User` (`NAME`, `UID`, `NAME:GROUP`,
//! `UID:GID`, …) resolved against the guest's own `/etc/passwd` and `/etc/group`, the way
//! container runtimes do it:
//!
//! * a name must exist in `/etc/passwd`; a number need not (it then runs with group 0 and
//!   `HOME=/`, as `docker run --user 1234` does);
//! * without a group, the user's primary group from `/etc/passwd` and the supplementary
//!   groups `/etc/group` lists them in; with a group, that group only.

use std::fs;

/// The credentials and home of the user an exec runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (may be empty).
    pub groups: Vec<u32>,
    pub home: String,
    /// The login name, when `/etc/passwd` has one for this uid.
    pub name: Option<String>,
}

/// Resolve `spec` in the running guest's `/etc/passwd` and `/etc/group` (missing files
/// count as empty: numeric ids still work).
pub fn resolve(spec: &str) -> Result<Identity, String> {
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    let group = fs::read_to_string("/etc/group").unwrap_or_default();
    resolve_in(spec, &passwd, &group)
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: Vec<&'a str>,
}

fn passwd_entries(text: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    text.lines().filter_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 7 || f[0].is_empty() || f[0].starts_with('#') {
            return None;
        }
        Some(PasswdEntry {
            name: f[0],
            uid: f[2].parse().ok()?,
            gid: f[3].parse().ok()?,
            home: f[5],
        })
    })
}

fn group_entries(text: &str) -> impl Iterator<Item = GroupEntry<'_>> {
    text.lines().filter_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 4 || f[0].is_empty() || f[0].starts_with('#') {
            return None;
        }
        Some(GroupEntry {
            name: f[0],
            gid: f[2].parse().ok()?,
            members: f[3].split(',').filter(|m| !m.is_empty()).collect(),
        })
    })
}

/// [`resolve`] against the given file contents.
pub fn resolve_in(spec: &str, passwd: &str, group: &str) -> Result<Identity, String> {
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if user_part.is_empty() {
        return Err(format!(
            "user {spec:?}: no user named; use NAME, UID, NAME:GROUP or UID:GID"
        ));
    }
    let numeric = user_part.parse::<u32>().ok();
    let entry = passwd_entries(passwd).find(|e| match numeric {
        Some(uid) => e.uid == uid,
        None => e.name == user_part,
    });
    let mut identity = match (&entry, numeric) {
        (Some(e), _) => Identity {
            uid: e.uid,
            gid: e.gid,
            groups: Vec::new(),
            home: if e.home.is_empty() { "/" } else { e.home }.to_string(),
            name: Some(e.name.to_string()),
        },
        (None, Some(uid)) => Identity {
            uid,
            gid: 0,
            groups: Vec::new(),
            home: "/".to_string(),
            name: None,
        },
        (None, None) => {
            return Err(format!(
                "user {user_part:?} is not in the guest's /etc/passwd; use a user the image defines, or a numeric UID"
            ));
        }
    };
    match group_part {
        Some("") => {
            return Err(format!(
                "user {spec:?}: empty group after ':'; use NAME:GROUP or UID:GID"
            ));
        }
        Some(g) => {
            identity.gid = match g.parse::<u32>() {
                Ok(gid) => gid,
                Err(_) => group_entries(group)
                    .find(|e| e.name == g)
                    .map(|e| e.gid)
                    .ok_or_else(|| {
                        format!(
                            "group {g:?} is not in the guest's /etc/group; use a group the image defines, or a numeric GID"
                        )
                    })?,
            };
        }
        None => {
            if let Some(name) = &identity.name {
                identity.groups = group_entries(group)
                    .filter(|e| e.members.contains(&name.as_str()) && e.gid != identity.gid)
                    .map(|e| e.gid)
                    .collect();
            }
        }
    }
    Ok(identity)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
        daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
        app:x:1000:1000:App,,,:/home/app:/bin/sh\n\
        nohome:x:1001:1001::::\n\
        broken:x:notanumber:1::/:/bin/sh\n";
    const GROUP: &str = "root:x:0:\n\
        staff:x:50:app,other\n\
        app:x:1000:\n\
        docker:x:999:app\n\
        wheel:x:10:other\n";

    fn ok(spec: &str) -> Identity {
        resolve_in(spec, PASSWD, GROUP).unwrap()
    }

    #[test]
    fn names_and_numbers_resolve_like_a_container_runtime() {
        let app = ok("app");
        assert_eq!((app.uid, app.gid), (1000, 1000));
        assert_eq!(app.groups, vec![50, 999]);
        assert_eq!(app.home, "/home/app");
        assert_eq!(app.name.as_deref(), Some("app"));
        // A uid in passwd is that user.
        assert_eq!(ok("1000"), app);
        // A uid that is not: group 0, home /, no name.
        let stranger = ok("4242");
        assert_eq!(
            (stranger.uid, stranger.gid, stranger.home.as_str()),
            (4242, 0, "/")
        );
        assert!(stranger.groups.is_empty() && stranger.name.is_none());
        // An explicit group replaces the primary group and the supplementary ones.
        let g = ok("app:staff");
        assert_eq!((g.uid, g.gid), (1000, 50));
        assert!(g.groups.is_empty());
        assert_eq!(ok("1000:7").gid, 7);
        assert_eq!(ok("4242:4242").gid, 4242);
        assert_eq!(ok("nohome").home, "/");
        assert_eq!(ok("root").uid, 0);
    }

    #[test]
    fn unknown_names_and_malformed_specs_are_errors_naming_them() {
        for (spec, needle) in [
            (
                "nobody-here",
                "\"nobody-here\" is not in the guest's /etc/passwd",
            ),
            (
                "app:nogroup",
                "group \"nogroup\" is not in the guest's /etc/group",
            ),
            ("", "no user named"),
            (":staff", "no user named"),
            ("app:", "empty group"),
            ("broken", "not in the guest's /etc/passwd"),
        ] {
            let err = resolve_in(spec, PASSWD, GROUP).unwrap_err();
            assert!(err.contains(needle), "{spec:?}: {err}");
        }
    }
}
