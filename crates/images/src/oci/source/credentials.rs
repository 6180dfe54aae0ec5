//! Registry credentials from a docker `config.json`, looked up the way the docker CLI
//! does: a per-registry credential helper (`credHelpers`), else the default credential
//! store (`credsStore`), else the inline `auths.<registry>.auth`. A helper is the
//! `docker-credential-NAME` program on `PATH`, run as `docker-credential-NAME get` with the
//! server's address on its standard input (the docker-credential-helpers protocol).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use banger_system::runner::CommandRunner;
use oci_client::secrets::RegistryAuth;

/// Docker Hub's credentials are stored under this address, by every docker client.
const DOCKER_HUB_SERVER: &str = "https://index.docker.io/v1/";
/// What helpers print (with a failure status) when they hold nothing for a server.
const NOT_FOUND: &str = "credentials not found";

/// How credential helpers are found and run (the real `PATH` and processes in the
/// daemon; tests point these elsewhere).
pub struct Helpers<'a> {
    pub runner: &'a dyn CommandRunner,
    pub find: &'a dyn Fn(&str) -> Option<PathBuf>,
}

/// Credentials for `registry` (a host[:port], `docker.io` for Docker Hub) from the
/// docker config at `path`. `Ok(None)` when it has none (the pull is then anonymous,
/// as with a missing or unreadable config); `Err` says what is wrong with a helper the
/// config names, and what to do.
pub fn docker_auth(
    path: &Path,
    registry: &str,
    helpers: &Helpers<'_>,
) -> Result<Option<RegistryAuth>, String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(None);
    };
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        format!(
            "{} is not valid JSON ({e}); fix or remove it to pull anonymously",
            path.display()
        )
    })?;
    let helper = json
        .get("credHelpers")
        .and_then(|h| h.as_object())
        .and_then(|h| h.iter().find(|(k, _)| same_registry(k, registry)))
        .and_then(|(_, v)| v.as_str())
        .or_else(|| json.get("credsStore").and_then(|s| s.as_str()))
        .filter(|name| !name.is_empty());
    if let Some(name) = helper
        && let Some(auth) = from_helper(name, registry, path, helpers)?
    {
        return Ok(Some(auth));
    }
    Ok(inline_auth(&json, registry))
}

/// `auths.<registry>.auth` (base64 `user:password`), or its `username`/`password`.
fn inline_auth(json: &serde_json::Value, registry: &str) -> Option<RegistryAuth> {
    use base64::Engine;
    let auths = json.get("auths")?.as_object()?;
    let entry = auths
        .iter()
        .find_map(|(k, v)| same_registry(k, registry).then_some(v))?;
    if let Some(encoded) = entry.get("auth").and_then(|a| a.as_str())
        && !encoded.is_empty()
    {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()?;
        let (user, password) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
        return Some(RegistryAuth::Basic(user.to_string(), password.to_string()));
    }
    let user = entry.get("username")?.as_str()?;
    let password = entry.get("password")?.as_str()?;
    Some(RegistryAuth::Basic(user.to_string(), password.to_string()))
}

/// Whether a config key (`https://host:port/v2/`, `host:port`, …) names `registry`.
fn same_registry(key: &str, registry: &str) -> bool {
    let k = key
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .trim_end_matches("/v1")
        .trim_end_matches("/v2");
    k == registry || (registry == "docker.io" && (k == "index.docker.io" || k == "docker.io"))
}

fn from_helper(
    name: &str,
    registry: &str,
    config: &Path,
    helpers: &Helpers<'_>,
) -> Result<Option<RegistryAuth>, String> {
    // A name with a path separator would run a program of the config's choosing from
    // anywhere; docker only ever runs `docker-credential-<name>` from PATH.
    if name.contains('/') || name.starts_with('.') {
        return Err(format!(
            "{} names the credential helper {name:?}, which is not a helper name; use the part after `docker-credential-`",
            config.display()
        ));
    }
    let program = format!("docker-credential-{name}");
    let Some(exe) = (helpers.find)(&program) else {
        return Err(format!(
            "{} asks for the credential helper {program}, which is not on PATH; install it, or remove it from the config to use the `auths` entries",
            config.display()
        ));
    };
    let server = if registry == "docker.io" {
        DOCKER_HUB_SERVER
    } else {
        registry
    };
    let out = helpers
        .runner
        .run_with_input(&exe, &[OsStr::new("get")], server.as_bytes())
        .map_err(|e| format!("cannot run the credential helper {}: {e}", exe.display()))?;
    let stdout = out.stdout_str();
    if !out.success() {
        if stdout.to_ascii_lowercase().contains(NOT_FOUND) {
            return Ok(None);
        }
        return Err(format!(
            "the credential helper {program} failed for {server}: {}",
            [stdout.trim(), out.stderr_str().trim()]
                .iter()
                .filter(|s| !s.is_empty())
                .cloned()
                .collect::<Vec<_>>()
                .join(": ")
        ));
    }
    let answer: serde_json::Value = serde_json::from_str(&stdout).map_err(|e| {
        format!("the credential helper {program} answered for {server} with something that is not its JSON ({e})")
    })?;
    let field = |k: &str| answer.get(k).and_then(|v| v.as_str()).unwrap_or_default();
    let (user, secret) = (field("Username"), field("Secret"));
    if user == "<token>" {
        return Err(format!(
            "the credential helper {program} holds an identity token for {server}, which banger cannot exchange; log in with a username and password or an access token (`docker login -u USER`)"
        ));
    }
    if user.is_empty() && secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(RegistryAuth::Basic(
        user.to_string(),
        secret.to_string(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use banger_system::runner::RealRunner;
    use std::os::unix::fs::PermissionsExt;

    fn write_helper(dir: &Path, name: &str, script: &str) {
        let path = dir.join(format!("docker-credential-{name}"));
        std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn auth(config: &str, registry: &str, bin: &Path) -> Result<Option<RegistryAuth>, String> {
        let path = bin.join("config.json");
        std::fs::write(&path, config).unwrap();
        let find = |name: &str| Some(bin.join(name)).filter(|p| p.exists());
        docker_auth(
            &path,
            registry,
            &Helpers {
                runner: &RealRunner,
                find: &find,
            },
        )
    }

    fn basic(a: Option<RegistryAuth>) -> (String, String) {
        match a {
            Some(RegistryAuth::Basic(u, p)) => (u, p),
            _ => panic!("no basic credentials"),
        }
    }

    #[test]
    fn inline_auths_match_the_registry_however_the_key_is_spelt() {
        use base64::Engine;
        let dir = tempfile::tempdir().unwrap();
        let enc = base64::engine::general_purpose::STANDARD.encode("me:s3:cret");
        let config = format!(
            r#"{{"auths":{{"https://127.0.0.1:5000/v2/":{{"auth":"{enc}"}},
                "https://index.docker.io/v1/":{{"username":"hub","password":"pw"}}}}}}"#
        );
        let got = basic(auth(&config, "127.0.0.1:5000", dir.path()).unwrap());
        assert_eq!(got, ("me".into(), "s3:cret".into()));
        let got = basic(auth(&config, "docker.io", dir.path()).unwrap());
        assert_eq!(got, ("hub".into(), "pw".into()));
        assert!(auth(&config, "other:5000", dir.path()).unwrap().is_none());
        // No config at all: anonymous.
        let find = |_: &str| None;
        let none = docker_auth(
            &dir.path().join("missing.json"),
            "x",
            &Helpers {
                runner: &RealRunner,
                find: &find,
            },
        );
        assert!(none.unwrap().is_none());
    }

    /// A real helper program speaks the protocol: `get`, the server on stdin, JSON out.
    #[test]
    fn a_per_registry_helper_wins_over_the_store_and_the_inline_auths() {
        let dir = tempfile::tempdir().unwrap();
        write_helper(
            dir.path(),
            "pass",
            r#"[ "$1" = get ] || exit 2
read -r server
echo "{\"ServerURL\":\"$server\",\"Username\":\"u-$server\",\"Secret\":\"from-pass\"}""#,
        );
        write_helper(
            dir.path(),
            "store",
            r#"read -r server; echo "{\"Username\":\"store\",\"Secret\":\"$server\"}""#,
        );
        let config = r#"{"credsStore":"store","credHelpers":{"127.0.0.1:5000":"pass"},
            "auths":{"127.0.0.1:5000":{"auth":"aW5saW5lOnB3"}}}"#;
        let got = basic(auth(config, "127.0.0.1:5000", dir.path()).unwrap());
        assert_eq!(got, ("u-127.0.0.1:5000".into(), "from-pass".into()));
        // Other registries use the store; Docker Hub under its historical address.
        let got = basic(auth(config, "docker.io", dir.path()).unwrap());
        assert_eq!(got, ("store".into(), DOCKER_HUB_SERVER.into()));
    }

    #[test]
    fn a_helper_without_credentials_falls_back_to_the_inline_auths() {
        let dir = tempfile::tempdir().unwrap();
        write_helper(
            dir.path(),
            "empty",
            "echo 'credentials not found in native keychain'; exit 1",
        );
        let config = r#"{"credsStore":"empty","auths":{"127.0.0.1:5000":{"auth":"aW5saW5lOnB3"}}}"#;
        let got = basic(auth(config, "127.0.0.1:5000", dir.path()).unwrap());
        assert_eq!(got, ("inline".into(), "pw".into()));
        assert!(auth(config, "other", dir.path()).unwrap().is_none());
    }

    #[test]
    fn broken_missing_or_unsafe_helpers_are_errors_naming_them() {
        let dir = tempfile::tempdir().unwrap();
        write_helper(dir.path(), "broken", "echo 'keychain locked' >&2; exit 1");
        write_helper(dir.path(), "garbage", "echo not json");
        write_helper(
            dir.path(),
            "token",
            r#"echo '{"Username":"<token>","Secret":"refresh"}'"#,
        );
        for (name, want) in [
            ("broken", "keychain locked"),
            ("garbage", "not its JSON"),
            ("token", "identity token"),
            ("absent", "not on PATH"),
            ("../../bin/sh", "not a helper name"),
        ] {
            let config = format!(r#"{{"credsStore":"{name}"}}"#);
            let err = auth(&config, "127.0.0.1:5000", dir.path()).unwrap_err();
            assert!(err.contains(want), "{name}: {err}");
        }
        let err = auth("{not json", "x", dir.path()).unwrap_err();
        assert!(err.contains("not valid JSON"), "{err}");
    }
}
