//! The HTTP contract, through the real router and a real daemon (SQLite store, QEMU
//! driver selection, `mkfs.ext4` for work disks) in a temporary layout. Booting
//! guests is left to the end-to-end tests.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use banger_paths::{Layout, Mode};
use banger_store::ImageRecord;
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::state::Daemon;

struct Fixture {
    daemon: Arc<Daemon>,
    _root: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let host = banger_system::read_host_resources().ok();
    fixture_on(banger_config::Config::default(), host)
}

/// A daemon with `config`, on a host with `host`'s CPUs and memory.
fn fixture_on(
    config: banger_config::Config,
    host: Option<banger_system::HostResources>,
) -> Fixture {
    let root = tempfile::tempdir().unwrap();
    let p = root.path();
    let layout = Layout {
        mode: Mode::DevUser,
        state_dir: p.join("state"),
        runtime_dir: p.join("run"),
        config_dir: p.join("config"),
        etc_dir: p.join("etc"),
        home_dir: None,
    };
    banger_system::fsperm::create_private_dir(&layout.state_dir).unwrap();
    let daemon = Daemon::open_on(layout, config, host).unwrap();
    // An image record is all `create` without `start` needs: nothing boots it here.
    register_image(&daemon, "fake", p.join("state/images/fake"));
    Fixture {
        daemon,
        _root: root,
    }
}

/// Register image `name` with its files in `dir` (created).
fn register_image(daemon: &Daemon, name: &str, dir: std::path::PathBuf) {
    std::fs::create_dir_all(&dir).unwrap();
    daemon
        .store()
        .replace_image(&ImageRecord {
            name: name.into(),
            kernel_path: dir.join("vmlinux"),
            kernel_format: "elf-vmlinux".into(),
            bzimage_path: None,
            initrd_path: None,
            rootfs_path: None,
            source: "test".into(),
            kernel_release: None,
            dir,
            created_at: banger_store::now_rfc3339(),
            size_bytes: 0,
            kernel_pvh: Some(true),
            init: None,
            config_json: None,
            digest: None,
        })
        .unwrap();
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn header(&self, name: header::HeaderName) -> &str {
        self.headers
            .get(&name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

async fn send(f: &Fixture, req: Request<Body>) -> Answer {
    let resp = crate::http::router(f.daemon.clone())
        .oneshot(req)
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Answer {
        status,
        headers,
        body,
    }
}

fn req(method: Method, uri: &str) -> axum::http::request::Builder {
    Request::builder().method(method).uri(uri)
}

fn json_req(method: Method, uri: &str, body: &str) -> Request<Body> {
    req(method, uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn empty(method: Method, uri: &str) -> Request<Body> {
    req(method, uri).body(Body::empty()).unwrap()
}

fn assert_error(a: &Answer, status: StatusCode, kind: &str) {
    assert_eq!(a.status, status, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.header(header::CONTENT_TYPE), "application/json");
    let body = a.json();
    assert_eq!(body["kind"], kind, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
}

#[tokio::test]
async fn unknown_paths_are_404_and_wrong_methods_405_with_allow() {
    let f = fixture();
    let a = send(&f, empty(Method::GET, "/v1/nope")).await;
    assert_error(&a, StatusCode::NOT_FOUND, "not_found");
    assert!(a.json()["message"].as_str().unwrap().contains("/v1/nope"));

    let a = send(&f, json_req(Method::PUT, "/v1/vms", "{}")).await;
    assert_error(&a, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    let allow = a.header(header::ALLOW).to_string();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    assert!(!allow.contains("PUT"), "{allow}");

    let a = send(&f, empty(Method::DELETE, "/v1/health")).await;
    assert_error(&a, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    assert!(a.header(header::ALLOW).contains("GET"));

    let a = send(&f, empty(Method::GET, "/v1/vms/dev/start")).await;
    assert_error(&a, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    assert_eq!(a.header(header::ALLOW), "POST");

    let a = send(&f, empty(Method::HEAD, "/v1/health")).await;
    assert_eq!(a.status, StatusCode::OK);
}

#[tokio::test]
async fn names_are_percent_decoded_and_missing_ones_are_404() {
    let f = fixture();
    let a = send(&f, empty(Method::GET, "/v1/vms/a%2Fb")).await;
    assert_error(&a, StatusCode::NOT_FOUND, "not_found");
    assert!(a.json()["message"].as_str().unwrap().contains("\"a/b\""));
    let a = send(&f, empty(Method::GET, "/v1/images/ghost")).await;
    assert_error(&a, StatusCode::NOT_FOUND, "not_found");
    // An empty name (`banger inspect ""`) is a missing object, not a missing route.
    for (method, path) in [
        (Method::GET, "/v1/vms/"),
        (Method::DELETE, "/v1/vms/"),
        (Method::GET, "/v1/images/"),
        (Method::DELETE, "/v1/snapshots/"),
    ] {
        let a = send(&f, empty(method.clone(), path)).await;
        assert_error(&a, StatusCode::NOT_FOUND, "not_found");
        let message = a.json()["message"].as_str().unwrap().to_string();
        assert!(
            message.contains("the name is empty"),
            "{method} {path}: {message}"
        );
    }
    // The hint names what the catalog offers (it once called minimal the default image).
    let hint = a.json()["hint"].as_str().unwrap().to_string();
    assert!(hint.contains("debian, minimal"), "{hint}");
    assert!(!hint.contains("default"), "{hint}");
    // An image the catalog knows but nobody got yet: how to get it.
    let a = send(&f, empty(Method::GET, "/v1/images/minimal")).await;
    assert_error(&a, StatusCode::NOT_FOUND, "not_found");
    let hint = a.json()["hint"].as_str().unwrap().to_string();
    assert!(hint.contains("`banger image pull minimal`"), "{hint}");
}

#[tokio::test]
async fn bad_bodies_name_what_is_wrong() {
    let f = fixture();
    let a = send(
        &f,
        json_req(Method::POST, "/v1/vms", r#"{"name":"x","colour":"red"}"#),
    )
    .await;
    assert_error(&a, StatusCode::BAD_REQUEST, "invalid");
    assert!(a.json()["message"].as_str().unwrap().contains("colour"));

    let a = send(&f, json_req(Method::POST, "/v1/vms", r#"{"vcpu":"two"}"#)).await;
    assert_error(&a, StatusCode::BAD_REQUEST, "invalid");
    assert_eq!(a.json()["field"], "vcpu");

    let a = send(&f, json_req(Method::POST, "/v1/vms", "{not json")).await;
    assert_error(&a, StatusCode::BAD_REQUEST, "invalid");

    // Only an object is a request: serde would read a struct from an array too, and `[]`
    // made a VM with every default, `["x"]` one named x.
    for (body, what) in [
        ("[]", "an array"),
        (r#"["x"]"#, "an array"),
        (" null", "null"),
        ("\"dev\"", "a string"),
        ("7", "a number"),
        ("true", "a boolean"),
    ] {
        let a = send(&f, json_req(Method::POST, "/v1/vms", body)).await;
        assert_error(&a, StatusCode::BAD_REQUEST, "invalid");
        let message = a.json()["message"].as_str().unwrap().to_string();
        assert!(message.contains(what), "{body}: {message}");
    }

    // Range errors speak the API's field names, never the CLI's flags.
    let a = send(
        &f,
        json_req(Method::POST, "/v1/vms", r#"{"memory_mib":99999999}"#),
    )
    .await;
    assert_error(&a, StatusCode::BAD_REQUEST, "invalid");
    let body = a.json();
    assert_eq!(body["field"], "memory_mib");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.starts_with("memory_mib 99999999 MiB is out of range: use "),
        "{message}"
    );
    assert!(!message.contains("--"), "{message}");

    let a = send(&f, json_req(Method::POST, "/v1/vms", r#"{"disk":"lots"}"#)).await;
    assert_error(&a, StatusCode::BAD_REQUEST, "invalid");
    assert_eq!(a.json()["field"], "disk");

    let a = send(
        &f,
        json_req(Method::POST, "/v1/vms", r#"{"name":"Bad_Name"}"#),
    )
    .await;
    assert_error(&a, StatusCode::BAD_REQUEST, "invalid");
    assert_eq!(a.json()["field"], "name");

    let big = format!(r#"{{"name":"{}"}}"#, "a".repeat(2 << 20));
    let a = send(&f, json_req(Method::POST, "/v1/vms", &big)).await;
    assert_error(&a, StatusCode::PAYLOAD_TOO_LARGE, "invalid");

    let a = send(
        &f,
        req(Method::POST, "/v1/vms")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from("name=dev"))
            .unwrap(),
    )
    .await;
    assert_error(&a, StatusCode::UNSUPPORTED_MEDIA_TYPE, "invalid");

    let a = send(&f, empty(Method::DELETE, "/v1/vms/dev?forse=1")).await;
    assert_error(&a, StatusCode::BAD_REQUEST, "invalid");
    assert!(a.json()["message"].as_str().unwrap().contains("forse"));

    // Nothing half-made is left behind.
    let a = send(&f, empty(Method::GET, "/v1/vms")).await;
    assert_eq!(a.json(), serde_json::json!([]));
}

#[tokio::test]
async fn create_answers_201_with_location_and_rm_removes() {
    let f = fixture();
    let a = send(
        &f,
        json_req(
            Method::POST,
            "/v1/vms",
            r#"{"name":"dev","image":"fake","disk":"64M"}"#,
        ),
    )
    .await;
    assert_eq!(
        a.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&a.body)
    );
    let vm = a.json();
    assert_eq!(vm["state"], "created");
    assert_eq!(vm["memory_mib"], f.daemon.defaults.memory_mib.value);
    let location = a.header(header::LOCATION).to_string();
    assert_eq!(location, format!("/v1/vms/{}", vm["id"].as_str().unwrap()));

    let a = send(&f, empty(Method::GET, &location)).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()["name"], "dev");

    let a = send(
        &f,
        json_req(Method::POST, "/v1/vms", r#"{"name":"dev","image":"fake"}"#),
    )
    .await;
    assert_error(&a, StatusCode::CONFLICT, "conflict");
    assert_eq!(a.json()["field"], "name");

    let a = send(&f, empty(Method::DELETE, "/v1/vms/dev?force")).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()["state"], "removed");
    let a = send(&f, empty(Method::GET, &location)).await;
    assert_error(&a, StatusCode::NOT_FOUND, "not_found");
}

fn ndjson_lines(a: &Answer) -> Vec<serde_json::Value> {
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.header(header::CONTENT_TYPE), "application/x-ndjson");
    assert!(a.body.ends_with(b"\n"));
    a.body
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect()
}

#[tokio::test]
async fn ndjson_clients_get_a_stream_that_ends_with_the_outcome() {
    let f = fixture();
    let stream = |body: &str| {
        req(Method::POST, "/v1/vms")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/x-ndjson")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let lines = ndjson_lines(&send(&f, stream(r#"{"name":"s1","image":"fake"}"#)).await);
    let last = lines.last().unwrap();
    assert_eq!(last["event"], "result");
    assert_eq!(last["status"], 201);
    assert_eq!(last["value"]["name"], "s1");
    assert_eq!(
        lines
            .iter()
            .filter(|l| l["event"] == "result" || l["event"] == "error")
            .count(),
        1
    );

    // A failure carries the status the plain answer would have had.
    let lines = ndjson_lines(&send(&f, stream(r#"{"name":"s1","image":"fake"}"#)).await);
    let last = lines.last().unwrap();
    assert_eq!(last["event"], "error");
    assert_eq!(last["status"], 409);
    assert_eq!(last["error"]["kind"], "conflict");

    // A body that does not parse is refused before any stream starts.
    let a = send(&f, stream(r#"{"nom":"x"}"#)).await;
    assert_error(&a, StatusCode::BAD_REQUEST, "invalid");
}

#[tokio::test]
async fn exec_without_an_upgrade_is_refused() {
    let f = fixture();
    let a = send(
        &f,
        json_req(Method::POST, "/v1/vms/dev/exec", r#"{"argv":["true"]}"#),
    )
    .await;
    assert_error(&a, StatusCode::BAD_REQUEST, "invalid");
    assert!(a.json()["message"].as_str().unwrap().contains("Upgrade"));
}

#[tokio::test]
async fn the_served_document_is_the_generated_one() {
    let f = fixture();
    let a = send(&f, empty(Method::GET, "/v1/openapi.json")).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.header(header::CONTENT_TYPE), "application/json");
    assert_eq!(String::from_utf8_lossy(&a.body), crate::openapi_json());
}

fn insert_vm(f: &Fixture, id: &str, name: &str, image: &str) -> std::path::PathBuf {
    insert_vm_sized(f, id, name, image, 128)
}

/// Register a stopped VM of `memory_mib` (its directory made, nothing else).
fn insert_vm_sized(
    f: &Fixture,
    id: &str,
    name: &str,
    image: &str,
    memory_mib: u64,
) -> std::path::PathBuf {
    let dir = f.daemon.layout.state_dir.join("vms").join(id);
    std::fs::create_dir_all(&dir).unwrap();
    let now = banger_store::now_rfc3339();
    f.daemon
        .store()
        .insert_vm(&banger_store::VmRecord {
            id: id.into(),
            name: name.into(),
            image_name: image.into(),
            state: banger_store::VmState::Stopped,
            vcpu: 1,
            memory_mib,
            disk_bytes: 0,
            dir: dir.clone(),
            driver: None,
            driver_reason: None,
            runtime_json: None,
            boot_json: None,
            last_error: None,
            created_at: now.clone(),
            updated_at: now,
            started_at: None,
        })
        .unwrap();
    dir
}

#[tokio::test]
async fn vms_are_found_by_name_id_or_unique_id_prefix() {
    let f = fixture();
    insert_vm(&f, "abc111111111", "one", "fake");
    insert_vm(&f, "abc222222222", "two", "fake");
    insert_vm(&f, "fed333333333", "abc2", "fake");
    for (path, name) in [
        ("/v1/vms/one", "one"),
        ("/v1/vms/abc222222222", "two"),
        ("/v1/vms/abc1", "one"),
        ("/v1/vms/f", "abc2"),
        // A name wins over an id prefix it also is.
        ("/v1/vms/abc2", "abc2"),
    ] {
        let a = send(&f, empty(Method::GET, path)).await;
        assert_eq!(a.status, StatusCode::OK, "{path}");
        assert_eq!(a.json()["name"], name, "{path}");
    }
    let a = send(&f, empty(Method::GET, "/v1/vms/abc")).await;
    assert_error(&a, StatusCode::CONFLICT, "conflict");
    let message = a.json()["message"].as_str().unwrap().to_string();
    assert!(
        message.contains("one") && message.contains("two"),
        "{message}"
    );
    let a = send(&f, empty(Method::GET, "/v1/vms/abd")).await;
    assert_error(&a, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn logs_tail_answers_only_the_last_lines() {
    let f = fixture();
    let dir = insert_vm(&f, "abc111111111", "one", "fake");
    let mut log = String::new();
    for i in 0..5000 {
        log.push_str(&format!("line {i}\r\n"));
    }
    std::fs::write(dir.join("console.log"), &log).unwrap();
    let a = send(&f, empty(Method::GET, "/v1/vms/one/logs?tail=2")).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body, b"line 4998\r\nline 4999\r\n");
    let a = send(&f, empty(Method::GET, "/v1/vms/one/logs")).await;
    assert_eq!(a.body.len(), log.len());
    let a = send(&f, empty(Method::GET, "/v1/vms/one/logs?tail=lots")).await;
    assert_error(&a, StatusCode::BAD_REQUEST, "invalid");
}

mod exec;
mod inputs;
mod prune;
mod recipe;
mod verify;
