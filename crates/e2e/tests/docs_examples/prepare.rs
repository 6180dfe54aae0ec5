//! Putting the installation in the state an example expects: VM `dev` running, paused,
//! stopped or absent; the snapshots an example names present or free.

use banger_e2e::{Env, stdout};

use super::words;

fn state_of(env: &Env, vm: &str) -> Option<String> {
    let out = env.run(["inspect", vm, "--format", "{{.state}}"]);
    out.status
        .success()
        .then(|| stdout(&out).trim().to_string())
}

/// The value after `flag` in `w`.
fn flag_value<'a>(w: &'a [String], flag: &str) -> Option<&'a str> {
    w.iter()
        .skip_while(|x| *x != flag)
        .nth(1)
        .map(String::as_str)
}

/// Remove snapshot `name` and the VMs cloned from it, if there are any.
fn drop_snapshot(env: &Env, name: &str) {
    let out = env.run(["snapshot", "inspect", name, "--json"]);
    if !out.status.success() {
        return;
    }
    let snap: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap_or_default();
    for clone in snap["clones"].as_array().into_iter().flatten() {
        let _ = env.run(["rm", "-f", clone.as_str().unwrap_or_default()]);
    }
    let _ = env.run(["snapshot", "rm", name]);
}

/// Take snapshot `name` of a running `dev` unless it exists.
fn ensure_snapshot(env: &Env, name: &str) {
    if env.run(["snapshot", "inspect", name]).status.success() {
        return;
    }
    prepare(env, "banger inspect dev");
    env.ok(["vm", "snapshot", "dev", "--name", name]);
}

/// Snapshots the example names: a name it takes is free, one it uses exists.
fn prepare_snapshots(env: &Env, w: &[String]) {
    let verb = w.first().map(String::as_str).unwrap_or("");
    let sub = w.get(1).map(String::as_str).unwrap_or("");
    if verb == "snapshot" && !matches!(sub, "ls" | "list" | "inspect" | "rm") {
        if let Some(name) = flag_value(w, "--name") {
            drop_snapshot(env, name);
        }
    } else if verb == "snapshot" && matches!(sub, "inspect" | "rm") {
        for name in w.iter().skip(2).filter(|x| !x.starts_with('-')) {
            ensure_snapshot(env, name);
            if sub == "rm" {
                let out = env.run(["snapshot", "inspect", name, "--json"]);
                let snap: serde_json::Value =
                    serde_json::from_str(&stdout(&out)).unwrap_or_default();
                for clone in snap["clones"].as_array().into_iter().flatten() {
                    let _ = env.run(["rm", "-f", clone.as_str().unwrap_or_default()]);
                }
            }
        }
    }
    let from = flag_value(w, "--from").or((verb == "clone").then_some(sub));
    if let Some(snapshot) = from {
        ensure_snapshot(env, snapshot);
        if let Some(name) = flag_value(w, "--name") {
            let _ = env.run(["rm", "-f", name]);
        }
    }
}

/// VM `dev` running with a read-write copy-in share at /src holding /src/build, as the
/// `vm sync` examples expect.
fn prepare_sync(env: &Env) {
    let out = env.run(["vm", "inspect", "dev", "--json"]);
    let vm: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap_or_default();
    let ready = vm["state"] == "running"
        && vm["shares"].as_array().is_some_and(|s| {
            s.iter()
                .any(|s| s["guest"] == "/src" && s["mode"] == "copy")
        });
    if ready {
        return;
    }
    let src = env.state_dir().with_file_name("sync-src");
    std::fs::create_dir_all(&src).unwrap();
    let _ = env.run(["rm", "-f", "dev"]);
    let share = format!("{}:/src:copy", src.display());
    env.ok(["run", "-d", "--name", "dev", "-v", &share]);
    env.ok(["exec", "dev", "--", "mkdir", "-p", "/src/build"]);
}

/// Put VM `dev` in the state the example expects.
pub fn prepare(env: &Env, line: &str) {
    let w = words(line);
    prepare_snapshots(env, &w);
    let verb = w.first().map(String::as_str).unwrap_or("");
    // `dev`, or `dev:PATH` as vm cp names a path in it.
    let names_dev = w.iter().any(|x| x == "dev" || x.starts_with("dev:"));
    if verb != "sync" && names_dev {
        // The `vm sync` examples' `dev` has a share, which other examples (snapshots) refuse.
        let out = env.run(["vm", "inspect", "dev", "--json"]);
        let vm: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap_or_default();
        if vm["shares"].as_array().is_some_and(|s| !s.is_empty()) {
            env.ok(["rm", "-f", "dev"]);
        }
    }
    if verb == "create" {
        // A VM of the example's name must not exist yet.
        let name = w
            .iter()
            .skip_while(|x| *x != "--name")
            .nth(1)
            .map_or("dev", String::as_str);
        let _ = env.run(["rm", "-f", name]);
    } else if verb == "run" && names_dev {
        let _ = env.run(["rm", "-f", "dev"]);
    } else if verb == "sync" && names_dev {
        prepare_sync(env);
    } else if verb == "start" && names_dev {
        match state_of(env, "dev").as_deref() {
            None => {
                env.ok(["run", "-d", "--name", "dev"]);
                env.ok(["stop", "dev"]);
            }
            Some("running" | "paused") => {
                env.ok(["stop", "dev"]);
            }
            Some(_) => {}
        }
    } else if verb == "resume" && names_dev {
        match state_of(env, "dev").as_deref() {
            Some("paused") => {}
            None => {
                env.ok(["run", "-d", "--name", "dev"]);
                env.ok(["vm", "pause", "dev"]);
            }
            Some("running") => {
                env.ok(["vm", "pause", "dev"]);
            }
            Some(_) => {
                env.ok(["start", "dev"]);
                env.ok(["vm", "pause", "dev"]);
            }
        }
    } else if names_dev {
        match state_of(env, "dev").as_deref() {
            None => {
                env.ok(["run", "-d", "--name", "dev"]);
            }
            Some("running") => {}
            Some("paused") => {
                env.ok(["vm", "resume", "dev"]);
            }
            Some(_) => {
                env.ok(["start", "dev"]);
            }
        }
    }
}
