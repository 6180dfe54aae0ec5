//! `docs/openapi.json` is the API's contract for programs: it must be exactly what the
//! daemon generates from its code. Regenerate it after an API change with
//! `make openapi` (which runs this test with `BANGER_BLESS=1`).

use std::path::PathBuf;

fn checked_in() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json")
}

#[test]
fn checked_in_document_matches_the_code() {
    let generated = banger_daemon::openapi_json();
    let path = checked_in();
    if std::env::var_os("BANGER_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    if on_disk != generated {
        let line = on_disk
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .map(|i| i + 1)
            .unwrap_or_else(|| on_disk.lines().count().min(generated.lines().count()) + 1);
        panic!(
            "docs/openapi.json is not what the daemon generates (first difference at line {line}).\n\
             Regenerate it with `make openapi` and commit the result."
        );
    }
}

/// The bounds the document gives a VM's size are the ones the daemon enforces (the schema
/// attributes take literals; the daemon's ranges live in banger-config).
#[test]
fn create_request_bounds_are_the_daemons() {
    let doc: serde_json::Value = serde_json::from_str(&banger_daemon::openapi_json()).unwrap();
    let props = &doc["components"]["schemas"]["CreateVmRequest"]["properties"];
    let bounds = |field: &str| {
        let p = &props[field];
        (p["minimum"].as_u64(), p["maximum"].as_u64())
    };
    let (lo, hi) = banger_config::VCPU_RANGE;
    assert_eq!(
        bounds("vcpu"),
        (Some(lo.into()), Some(hi.into())),
        "{props}"
    );
    let (lo, hi) = banger_config::MEMORY_MIB_RANGE;
    assert_eq!(bounds("memory_mib"), (Some(lo), Some(hi)), "{props}");
}

#[test]
fn document_is_openapi_3_and_describes_every_route() {
    let doc: serde_json::Value = serde_json::from_str(&banger_daemon::openapi_json()).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for (path, methods) in [
        ("/v1/health", &["get"][..]),
        ("/v1/daemon/shutdown", &["post"]),
        ("/v1/openapi.json", &["get"]),
        ("/v1/vms", &["get", "post"]),
        ("/v1/vms/{name}", &["get", "delete"]),
        ("/v1/vms/{name}/start", &["post"]),
        ("/v1/vms/{name}/stop", &["post"]),
        ("/v1/vms/{name}/pause", &["post"]),
        ("/v1/vms/{name}/resume", &["post"]),
        ("/v1/vms/{name}/shares/synced", &["post"]),
        ("/v1/vms/{name}/logs", &["get"]),
        ("/v1/vms/{name}/exec", &["post"]),
        ("/v1/images", &["get"]),
        ("/v1/images/build", &["post"]),
        ("/v1/images/pull", &["post"]),
        ("/v1/images/import", &["post"]),
        ("/v1/images/import-kernel", &["post"]),
        ("/v1/images/prune", &["post"]),
        ("/v1/images/{name}", &["get", "delete"]),
        ("/v1/images/{name}/warm", &["post"]),
        ("/v1/images/{name}/verify", &["post"]),
        ("/v1/vms/{name}/snapshot", &["post"]),
        ("/v1/snapshots", &["get"]),
        ("/v1/snapshots/{name}", &["get", "delete"]),
    ] {
        let item = paths
            .get(path)
            .unwrap_or_else(|| panic!("{path} is missing"));
        for m in methods {
            let op = &item[*m];
            assert!(
                op["operationId"].is_string(),
                "{m} {path} has no operationId"
            );
            assert!(op["responses"].is_object(), "{m} {path} has no responses");
        }
    }
    assert_eq!(
        paths.len(),
        24,
        "a route without a test here: {:?}",
        paths.keys()
    );
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for s in [
        "ApiError",
        "VmView",
        "ImageView",
        "CreateVmRequest",
        "ProgressEvent",
        "ImportImageRequest",
        "ImportKernelRequest",
        "PullImageRequest",
        "DiskView",
        "ImageRunConfig",
    ] {
        assert!(
            schemas.contains_key(s),
            "schema {s} missing: {:?}",
            schemas.keys()
        );
    }
}
