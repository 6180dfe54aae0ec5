//! Firecracker's command line (the subset banger and its tests use), and process start-up.

use std::os::unix::net::UnixListener;
use std::path::PathBuf;

use crate::http::{DEFAULT_MAX_PAYLOAD, Request};
use crate::personality::Version;
use crate::vmm::{Vmm, timestamp};
use crate::{api, server};

/// Firecracker's exit code for a bad command line.
const EXIT_ARG_PARSING: i32 = 153;
const EXIT_GENERIC: i32 = 1;

/// Firecracker's default API socket.
const DEFAULT_API_SOCK: &str = "/run/firecracker.socket";

#[derive(Debug, Default)]
struct Args {
    api_sock: Option<PathBuf>,
    id: Option<String>,
    version: bool,
    no_api: bool,
    config_file: Option<PathBuf>,
    max_payload: Option<usize>,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut out = Args::default();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        // `--name=value` is `--name value` (the jailer execs `firecracker --id=<id>`).
        let (arg, mut inline) = match arg.split_once('=') {
            Some((name, v)) if name.starts_with("--") => (name, Some(v.to_owned())),
            _ => (arg.as_str(), None),
        };
        let mut value = |name: &str| {
            inline
                .take()
                .or_else(|| iter.next().cloned())
                .ok_or_else(|| format!("Argument '{name}' requires a value."))
        };
        match arg {
            "--api-sock" => out.api_sock = Some(PathBuf::from(value("api-sock")?)),
            "--id" => out.id = Some(value("id")?),
            "--version" => out.version = true,
            "--no-api" => out.no_api = true,
            "--config-file" => out.config_file = Some(PathBuf::from(value("config-file")?)),
            "--http-api-max-payload-size" => {
                let v = value("http-api-max-payload-size")?;
                out.max_payload = Some(v.parse().map_err(|_| format!("Invalid value {v:?}"))?);
            }
            // Accepted and without effect on the fake.
            "--level"
            | "--log-path"
            | "--seccomp-filter"
            | "--mmds-size-limit"
            | "--metadata"
            | "--start-time-us"
            | "--start-time-cpu-us"
            | "--parent-cpu-time-us" => {
                value(arg.trim_start_matches('-'))?;
            }
            "--show-level" | "--show-log-origin" | "--boot-timer" | "--no-seccomp" => {}
            other => {
                return Err(format!(
                    "Found argument '{other}' which wasn't expected, or isn't valid in this context."
                ));
            }
        }
    }
    Ok(out)
}

/// Run the fake as `firecracker <args>`; returns the exit code.
pub fn run(args: &[String]) -> i32 {
    let personality = match Version::from_env() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("fake-firecracker: {e}");
            return EXIT_GENERIC;
        }
    };
    let args = match parse(args) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("Arguments parsing error: {e}\n\nFor more information try --help");
            return EXIT_ARG_PARSING;
        }
    };
    if args.version {
        // notes: "`--version`, exit 0, nothing on stderr."
        print!("{}", personality.version_output(&timestamp()));
        return 0;
    }
    if args.no_api && args.config_file.is_none() {
        eprintln!(
            "Arguments parsing error: the --no-api flag requires --config-file to be specified"
        );
        return EXIT_ARG_PARSING;
    }
    if let Err(e) = server::handle_fatal_signals() {
        eprintln!("fake-firecracker: cannot set up signal handling: {e}");
        return EXIT_GENERIC;
    }
    let id = args
        .id
        .clone()
        .unwrap_or_else(|| "anonymous-instance".into());
    let api_sock = args
        .api_sock
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_API_SOCK));
    let guest_dir = match (&args.config_file, args.no_api) {
        (Some(file), true) => server::guest_dir_for(file),
        _ => server::guest_dir_for(&api_sock),
    };
    let mut vmm = Vmm::new(personality, &id, guest_dir);
    vmm.log
        .line("main", &format!("Running Firecracker {personality}"));
    let vmm = server::install(vmm);

    let listener = if args.no_api {
        None
    } else {
        // notes: "remove a stale socket file before starting": Firecracker will not.
        match UnixListener::bind(&api_sock) {
            Ok(l) => Some(l),
            Err(e) => {
                let mut v = vmm.lock().unwrap_or_else(|p| p.into_inner());
                v.log.line(
                    "main",
                    &format!(
                        "Failed to open the API socket at: {}. Check that it is not already \
                         used. ({e})",
                        api_sock.display()
                    ),
                );
                return EXIT_GENERIC;
            }
        }
    };
    if let Some(file) = &args.config_file
        && let Err(e) = apply_config_file(&vmm, file)
    {
        let mut v = vmm.lock().unwrap_or_else(|p| p.into_inner());
        v.log.line(
            "main",
            &format!("Configuration for VMM from one single json failed: {e}"),
        );
        drop(v);
        server::shutdown(EXIT_GENERIC);
    }
    match listener {
        Some(listener) => {
            server::serve(
                listener,
                vmm,
                args.max_payload.unwrap_or(DEFAULT_MAX_PAYLOAD),
            );
            0
        }
        // Without the API the process lives until its guest ends it.
        None => loop {
            std::thread::park();
        },
    }
}

/// notes: "Without the API: `--config-file FILE` with keys "boot-source", "drives",
/// "machine-config", "network-interfaces", "vsock", "logger", "metrics", "mmds-config", …;
/// starts at once".
fn apply_config_file(vmm: &std::sync::Mutex<Vmm>, file: &std::path::Path) -> Result<(), String> {
    let text = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let config: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&text).map_err(|e| format!("invalid config file: {e}"))?;
    let known = [
        "boot-source",
        "drives",
        "machine-config",
        "network-interfaces",
        "vsock",
        "logger",
        "metrics",
        "mmds-config",
        "serial",
    ];
    if let Some(unknown) = config.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(format!("unknown field `{unknown}`"));
    }
    let mut requests = Vec::new();
    let mut put = |path: String, value: &serde_json::Value| {
        requests.push(Request {
            method: crate::http::Method::Put,
            path,
            body: value.to_string().into_bytes(),
        });
    };
    for key in [
        "logger",
        "metrics",
        "boot-source",
        "machine-config",
        "vsock",
        "serial",
    ] {
        if let Some(v) = config.get(key) {
            put(key.to_owned(), v);
        }
    }
    for (key, id_field) in [("drives", "drive_id"), ("network-interfaces", "iface_id")] {
        for item in config
            .get(key)
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
        {
            let id = item
                .get(id_field)
                .and_then(|v| v.as_str())
                .unwrap_or_default();
            put(format!("{key}/{id}"), item);
        }
    }
    if let Some(v) = config.get("mmds-config") {
        put("mmds/config".into(), v);
    }
    put(
        "actions".into(),
        &serde_json::json!({ "action_type": "InstanceStart" }),
    );
    let mut vmm = vmm.lock().unwrap_or_else(|p| p.into_inner());
    for request in requests {
        let response = api::handle(&mut vmm, &request);
        if response.status >= 300 {
            return Err(response.body.unwrap_or_default());
        }
    }
    Ok(())
}
