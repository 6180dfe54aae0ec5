//! The shared-directory flags of `vm run`/`vm create`: `-v HOST:GUEST[:OPTS]` (`OPTS` a
//! comma-separated list of `ro`, `rw`, `copy`, `live`) and its long form
//! `--mount type=bind|copy,src=HOST,dst=GUEST[,ro][,mode=auto|live|copy]`. Only the syntax is checked here; the
//! daemon checks the paths themselves. A relative host path is taken from the current
//! directory (`-v .:/src`), which only the CLI knows.

use banger_api::{ShareMode, ShareRequest};

/// `HOST:GUEST[:OPTS]`, `OPTS` being `ro`, `rw`, `copy`, `live`, comma-separated. The guest
/// path starts at the last `:/`, so a host path may contain colons.
pub fn parse_volume(text: &str) -> Result<ShareRequest, String> {
    let usage = "expected HOST:GUEST[:ro][,copy|,live], e.g. -v ~/src/app:/src or -v .:/src:ro";
    let (mut read_only, mut mode) = (false, ShareMode::Auto);
    let rest = match text.rsplit_once(':') {
        Some((rest, opts)) if !opts.starts_with('/') && !opts.is_empty() => {
            for opt in opts.split(',') {
                match opt {
                    "ro" => read_only = true,
                    "rw" => read_only = false,
                    "copy" => mode = ShareMode::Copy,
                    "live" => mode = ShareMode::Live,
                    // No guest path before it: `HOST:relative`, not an option.
                    other if !rest.contains(":/") => {
                        return Err(format!(
                            "{text:?}: the guest path {other:?} is not absolute; write it from /, \
                             e.g. -v {rest}:/{other}"
                        ));
                    }
                    other => {
                        return Err(format!(
                            "{text:?}: unknown option {other:?}; the options after the guest \
                             path are ro, rw, copy and live ({usage})"
                        ));
                    }
                }
            }
            rest
        }
        _ => text,
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
        mode,
    })
}

/// `type=bind|copy,src=HOST,dst=GUEST[,ro[=true|false]][,mode=auto|live|copy]` (also
/// `source`, `destination`, `target`, `readonly`), as docker's `--mount`; `type=copy` is
/// `mode=copy`.
pub fn parse_mount(text: &str) -> Result<ShareRequest, String> {
    let (mut kind, mut src, mut dst, mut read_only) = (None, None, None, false);
    let mut mode = None;
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
            ("mode", Some(v)) => {
                mode = Some(
                    v.parse::<ShareMode>()
                        .map_err(|e| format!("--mount {text:?}: {e}"))?,
                )
            }
            _ => {
                return Err(format!(
                    "--mount {text:?}: unknown or malformed field {field:?}; expected \
                     type=bind|copy,src=HOST,dst=GUEST[,ro][,mode=auto|live|copy] (paths \
                     cannot contain commas here: use -v)"
                ));
            }
        }
    }
    let mode = match (kind, mode) {
        (Some("bind") | None, mode) => mode.unwrap_or_default(),
        (Some("copy"), None | Some(ShareMode::Copy)) => ShareMode::Copy,
        (Some("copy"), Some(other)) => {
            return Err(format!(
                "--mount {text:?}: type=copy contradicts mode={}",
                other.as_str()
            ));
        }
        (Some(other), _) => {
            return Err(format!(
                "--mount {text:?}: type {other:?} is not supported; banger shares host \
                 directories (type=bind, live where possible) or copies them in (type=copy)"
            ));
        }
    };
    let (Some(src), Some(dst)) = (src, dst) else {
        return Err(format!("--mount {text:?}: src= and dst= are both required"));
    };
    Ok(ShareRequest {
        host: absolute(src)?,
        guest: dst.to_string(),
        read_only,
        mode,
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
            mode: ShareMode::Auto,
        }
    }

    fn with(mode: ShareMode, r: ShareRequest) -> ShareRequest {
        ShareRequest { mode, ..r }
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
            (
                "/a:/b:copy",
                Some(with(ShareMode::Copy, req("/a", "/b", false))),
            ),
            (
                "/a:/b:ro,copy",
                Some(with(ShareMode::Copy, req("/a", "/b", true))),
            ),
            (
                "/a:/b:live",
                Some(with(ShareMode::Live, req("/a", "/b", false))),
            ),
            ("/a:/b:ro,fast", None),
            ("/a", None),
            ("/a:b", None),
            (":/b", None),
        ] {
            assert_eq!(parse_volume(text).ok(), want, "{text}");
        }
        // A relative guest path is called one, not an unknown option.
        let err = parse_volume("/etc:work").unwrap_err();
        assert!(
            err.contains("not absolute") && err.contains("/work"),
            "{err}"
        );
        let err = parse_volume("/a:/b:fast").unwrap_err();
        assert!(err.contains("unknown option"), "{err}");
    }

    #[test]
    fn mounts() {
        for (text, want) in [
            ("type=bind,src=/a,dst=/b", Some(req("/a", "/b", false))),
            ("source=/a,target=/b,readonly", Some(req("/a", "/b", true))),
            ("src=/a,dst=/b,ro=true", Some(req("/a", "/b", true))),
            ("src=/a,dst=/b,ro=false", Some(req("/a", "/b", false))),
            (
                "type=copy,src=/a,dst=/b,ro",
                Some(with(ShareMode::Copy, req("/a", "/b", true))),
            ),
            (
                "src=/a,dst=/b,mode=live",
                Some(with(ShareMode::Live, req("/a", "/b", false))),
            ),
            ("type=copy,src=/a,dst=/b,mode=live", None),
            ("src=/a,dst=/b,mode=fast", None),
            ("type=volume,src=x,dst=/b", None),
            ("src=/a", None),
            ("src=/a,dst=/b,color=red", None),
        ] {
            assert_eq!(parse_mount(text).ok(), want, "{text}");
        }
    }
}
