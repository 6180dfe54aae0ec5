//! The shared-directory flags of `vm run`/`vm create`: `-v HOST:GUEST[:ro]` and its long
//! form `--mount type=bind,src=HOST,dst=GUEST[,ro]`. Only the syntax is checked here; the
//! daemon checks the paths themselves. A relative host path is taken from the current
//! directory (`-v .:/src`), which only the CLI knows.

use banger_api::ShareRequest;

/// `HOST:GUEST[:ro|:rw]`. The guest path starts at the last `:/`, so a host path may
/// contain colons.
pub fn parse_volume(text: &str) -> Result<ShareRequest, String> {
    let usage = "expected HOST:GUEST[:ro], e.g. -v ~/src/app:/src or -v .:/src:ro";
    let (rest, read_only) = match text.rsplit_once(':') {
        Some((rest, "ro")) => (rest, true),
        Some((rest, "rw")) => (rest, false),
        _ => (text, false),
    };
    let split = rest
        .match_indices(":/")
        .last()
        .map(|(i, _)| i)
        .filter(|&i| i > 0)
        .ok_or_else(|| format!("{text:?}: {usage} (the guest path must be absolute)"))?;
    let (host, guest) = (&rest[..split], &rest[split + 1..]);
    Ok(ShareRequest {
        host: absolute(host)?,
        guest: guest.to_string(),
        read_only,
    })
}

/// `type=bind,src=HOST,dst=GUEST[,ro[=true|false]]` (also `source`, `destination`,
/// `target`, `readonly`), as docker's `--mount`.
pub fn parse_mount(text: &str) -> Result<ShareRequest, String> {
    let (mut kind, mut src, mut dst, mut read_only) = (None, None, None, false);
    for field in text.split(',') {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (field, None),
        };
        match (key, value) {
            ("type", Some(v)) => kind = Some(v),
            ("src" | "source", Some(v)) => src = Some(v),
            ("dst" | "destination" | "target", Some(v)) => dst = Some(v),
            ("ro" | "readonly", None | Some("true" | "1")) => read_only = true,
            ("ro" | "readonly", Some("false" | "0")) => read_only = false,
            _ => {
                return Err(format!(
                    "--mount {text:?}: unknown or malformed field {field:?}; expected \
                     type=bind,src=HOST,dst=GUEST[,ro] (paths cannot contain commas here: use -v)"
                ));
            }
        }
    }
    match kind {
        Some("bind") | None => {}
        Some(other) => {
            return Err(format!(
                "--mount {text:?}: type {other:?} is not supported; banger shares host \
                 directories only (type=bind)"
            ));
        }
    }
    let (Some(src), Some(dst)) = (src, dst) else {
        return Err(format!("--mount {text:?}: src= and dst= are both required"));
    };
    Ok(ShareRequest {
        host: absolute(src)?,
        guest: dst.to_string(),
        read_only,
    })
}

/// `host` made absolute against the current directory (not resolved: the daemon does).
fn absolute(host: &str) -> Result<String, String> {
    if host.is_empty() {
        return Err("the host path is empty".to_string());
    }
    let path = std::path::absolute(host)
        .map_err(|e| format!("cannot make host path {host:?} absolute: {e}"))?;
    path.into_os_string()
        .into_string()
        .map_err(|p| format!("host path {p:?} is not valid UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(host: &str, guest: &str, read_only: bool) -> ShareRequest {
        ShareRequest {
            host: host.into(),
            guest: guest.into(),
            read_only,
        }
    }

    #[test]
    fn volumes() {
        let cwd = std::env::current_dir().unwrap();
        let here = |p: &str| cwd.join(p).to_str().unwrap().to_string();
        for (text, want) in [
            ("/a:/b", Some(req("/a", "/b", false))),
            ("/a:/b:ro", Some(req("/a", "/b", true))),
            ("/a:/b:rw", Some(req("/a", "/b", false))),
            ("/my dir:/my src", Some(req("/my dir", "/my src", false))),
            ("/odd:name:/src", Some(req("/odd:name", "/src", false))),
            ("app:/src", Some(req(&here("app"), "/src", false))),
            ("/a", None),
            ("/a:b", None),
            (":/b", None),
        ] {
            assert_eq!(parse_volume(text).ok(), want, "{text}");
        }
    }

    #[test]
    fn mounts() {
        for (text, want) in [
            ("type=bind,src=/a,dst=/b", Some(req("/a", "/b", false))),
            ("source=/a,target=/b,readonly", Some(req("/a", "/b", true))),
            ("src=/a,dst=/b,ro=true", Some(req("/a", "/b", true))),
            ("src=/a,dst=/b,ro=false", Some(req("/a", "/b", false))),
            ("type=volume,src=x,dst=/b", None),
            ("src=/a", None),
            ("src=/a,dst=/b,color=red", None),
        ] {
            assert_eq!(parse_mount(text).ok(), want, "{text}");
        }
    }
}
