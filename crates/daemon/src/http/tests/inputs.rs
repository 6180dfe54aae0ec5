//! Hostile input over the HTTP API: a name thousands of characters long comes back
//! shortened, a guest larger than the host is refused at create time (for every way a VM
//! gets its memory), and request fields are checked before the VM's state is read.

use banger_system::HostResources;

use super::*;

const GIB: u64 = 1 << 30;

/// A host with 2 CPUs and exactly 4 GiB of memory.
fn small_host() -> Option<HostResources> {
    Some(HostResources {
        cpus: 2,
        total_memory_bytes: 4 * GIB,
    })
}

fn message_of(a: &Answer) -> String {
    a.json()["message"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn a_long_name_is_quoted_shortened_with_its_length() {
    let f = fixture();
    let long = "a".repeat(5000);
    let requests = [
        empty(Method::GET, &format!("/v1/vms/{long}")),
        empty(Method::GET, &format!("/v1/images/{long}")),
        empty(Method::GET, &format!("/v1/snapshots/{long}")),
        empty(Method::DELETE, &format!("/v1/snapshots/{long}")),
        json_req(Method::POST, "/v1/vms", &format!(r#"{{"name":"{long}"}}"#)),
        json_req(Method::POST, "/v1/vms", &format!(r#"{{"image":"{long}"}}"#)),
        json_req(Method::POST, "/v1/vms", &format!(r#"{{"vmm":"{long}"}}"#)),
        json_req(Method::POST, "/v1/vms", &format!(r#"{{"disk":"{long}"}}"#)),
        json_req(Method::POST, "/v1/vms", &format!(r#"{{"from":"{long}"}}"#)),
        json_req(
            Method::POST,
            "/v1/images/pull",
            &format!(r#"{{"name":"{long}"}}"#),
        ),
        json_req(
            Method::POST,
            "/v1/images/build",
            &format!(r#"{{"recipe":"minimal","name":"{long}"}}"#),
        ),
        json_req(
            Method::POST,
            "/v1/images/build",
            &format!(r#"{{"recipe":"{long}"}}"#),
        ),
        json_req(
            Method::POST,
            "/v1/vms/dev/snapshot",
            &format!(r#"{{"name":"{long}"}}"#),
        ),
        // Paths and other strings the daemon repeats are quoted the same way.
        json_req(
            Method::POST,
            "/v1/vms",
            &format!(r#"{{"shares":[{{"host":"{long}","guest":"/src"}}]}}"#),
        ),
        json_req(
            Method::POST,
            "/v1/vms",
            &format!(r#"{{"shares":[{{"host":"/usr","guest":"/{long}"}}]}}"#),
        ),
        json_req(
            Method::POST,
            "/v1/images/import-kernel",
            &format!(r#"{{"path":"{long}"}}"#),
        ),
        empty(Method::GET, &format!("/v1/vms/dev/logs?{long}")),
        // What serde repeats of a body it refuses, too.
        json_req(Method::POST, "/v1/vms", &format!(r#"{{"{long}":1}}"#)),
        json_req(Method::POST, "/v1/vms", &format!(r#"{{"vcpu":"{long}"}}"#)),
        req(Method::POST, "/v1/vms")
            .header(header::CONTENT_TYPE, long.as_str())
            .body(Body::from("{}"))
            .unwrap(),
    ];
    for request in requests {
        let what = format!("{} {}", request.method(), request.uri());
        let what: String = what.chars().take(40).collect();
        let a = send(&f, request).await;
        assert!(a.status.is_client_error(), "{what}: {}", a.status);
        let body = String::from_utf8_lossy(&a.body).to_string();
        assert!(body.len() < 600, "{what}: {} bytes: {body}", body.len());
        let message = message_of(&a);
        assert!(
            message.contains(&format!("{}…\" (500", "a".repeat(63)))
                && message.contains(" characters)"),
            "{what}: {message}"
        );
    }
}

#[tokio::test]
async fn guest_memory_beyond_the_host_is_refused_at_create() {
    let f = fixture_on(banger_config::Config::default(), small_host());
    let a = send(
        &f,
        json_req(
            Method::POST,
            "/v1/vms",
            r#"{"name":"big","image":"fake","memory_mib":4097}"#,
        ),
    )
    .await;
    assert_error(&a, StatusCode::BAD_REQUEST, "invalid");
    let body = a.json();
    assert_eq!(body["field"], "memory_mib");
    let message = message_of(&a);
    assert!(
        message.starts_with("memory_mib 4097 MiB is more than this host has 4096 MiB"),
        "{message}"
    );
    assert!(
        body["hint"].as_str().unwrap().contains("at most 4096 MiB"),
        "{body}"
    );

    // All of the host is still a size the host can give.
    let a = send(
        &f,
        json_req(
            Method::POST,
            "/v1/vms",
            r#"{"name":"whole","image":"fake","disk":"64M","memory_mib":4096}"#,
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", message_of(&a));

    // Only the one that fits was made.
    let a = send(&f, empty(Method::GET, "/v1/vms")).await;
    assert_eq!(a.json().as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn a_default_beyond_the_host_names_the_config() {
    let mut config = banger_config::Config::default();
    config.vm_defaults.memory_mib = Some(8192);
    let f = fixture_on(config, small_host());
    let a = send(
        &f,
        json_req(Method::POST, "/v1/vms", r#"{"name":"dev","image":"fake"}"#),
    )
    .await;
    assert_error(&a, StatusCode::BAD_REQUEST, "invalid");
    let message = message_of(&a);
    assert!(
        message.contains("8192 MiB, `[vm_defaults] memory` in config.toml"),
        "{message}"
    );
    assert!(message.contains("4096 MiB"), "{message}");
    // The request did not name the memory: no field is at fault.
    assert!(a.json().get("field").is_none(), "{}", a.json());
}

#[tokio::test]
async fn a_snapshot_or_vm_larger_than_the_host_is_refused_before_its_vmm() {
    let f = fixture_on(banger_config::Config::default(), small_host());
    let snap_dir = f.daemon.layout.state_dir.join("snapshots/5a5a5a5a5a5a");
    f.daemon
        .store()
        .insert_snapshot(&banger_store::SnapshotRecord {
            id: "5a5a5a5a5a5a".into(),
            name: "roomy".into(),
            source_vm: "gone".into(),
            image_name: "fake".into(),
            driver: "qemu".into(),
            vcpu: 1,
            memory_mib: 8192,
            disk_bytes: 0,
            dir: snap_dir,
            detail_json: "{}".into(),
            size_bytes: 0,
            created_at: banger_store::now_rfc3339(),
        })
        .unwrap();
    let a = send(
        &f,
        json_req(Method::POST, "/v1/vms", r#"{"name":"c","from":"roomy"}"#),
    )
    .await;
    assert_error(&a, StatusCode::BAD_REQUEST, "invalid");
    assert_eq!(a.json()["field"], "from");
    let message = message_of(&a);
    assert!(
        message.contains("snapshot \"roomy\" holds a guest of 8192 MiB")
            && message.contains("4096 MiB"),
        "{message}"
    );

    // A VM made on a larger host (its state moved here) is refused before anything launches.
    insert_vm_sized(&f, "b0b0b0b0b0b0", "moved", "fake", 8192);
    let a = send(&f, empty(Method::POST, "/v1/vms/moved/start")).await;
    assert_error(&a, StatusCode::CONFLICT, "conflict");
    let message = message_of(&a);
    assert!(
        message.starts_with("VM moved has 8192 MiB of memory, more than this host has 4096 MiB"),
        "{message}"
    );
    let a = send(&f, empty(Method::GET, "/v1/vms/moved")).await;
    assert_eq!(a.json()["state"], "stopped");
}

#[tokio::test]
async fn request_fields_are_checked_before_the_vms_state() {
    let f = fixture();
    insert_vm(&f, "d0d0d0d0d0d0", "dev", "fake");

    // A stopped VM cannot be snapshotted, but the bad name is what the caller hears.
    let a = send(
        &f,
        json_req(
            Method::POST,
            "/v1/vms/dev/snapshot",
            r#"{"name":"bad/name"}"#,
        ),
    )
    .await;
    assert_error(&a, StatusCode::BAD_REQUEST, "invalid");
    assert_eq!(a.json()["field"], "name");
    assert!(
        message_of(&a).starts_with("invalid snapshot name \"bad/name\""),
        "{}",
        message_of(&a)
    );
    // Even of a VM that does not exist.
    let a = send(
        &f,
        json_req(Method::POST, "/v1/vms/ghost/snapshot", r#"{"name":"Bad"}"#),
    )
    .await;
    assert_error(&a, StatusCode::BAD_REQUEST, "invalid");

    // A stop timeout no deadline can hold is refused, whatever the VM's state.
    let a = send(
        &f,
        json_req(
            Method::POST,
            "/v1/vms/dev/stop",
            r#"{"timeout_secs":18446744073709551615}"#,
        ),
    )
    .await;
    assert_error(&a, StatusCode::BAD_REQUEST, "invalid");
    assert_eq!(a.json()["field"], "timeout_secs");

    // A clone's fields are the snapshot's: refused before the snapshot is looked up.
    let a = send(
        &f,
        json_req(Method::POST, "/v1/vms", r#"{"from":"ghost","vcpu":2}"#),
    )
    .await;
    assert_error(&a, StatusCode::BAD_REQUEST, "invalid");
    assert_eq!(a.json()["field"], "vcpu");

    // A bad name is refused before the name's owner is looked up.
    let a = send(
        &f,
        json_req(Method::POST, "/v1/vms", r#"{"name":"dev","memory_mib":1}"#),
    )
    .await;
    assert_error(&a, StatusCode::BAD_REQUEST, "invalid");
    assert_eq!(a.json()["field"], "memory_mib");
}

/// An import whose source cannot be an image is refused before anything is made, not after
/// the kernel image it pairs with (`minimal`) was built for nothing.
#[tokio::test]
async fn an_import_of_a_bad_source_is_refused_before_the_kernel_image_is_built() {
    let f = fixture();
    for (reference, says) in [
        ("docker://:tag", "not a valid registry reference"),
        ("../layout", "oci:../layout"),
        (
            "oci:/nonexistent/layout",
            "\"/nonexistent/layout\" is not a directory",
        ),
        (
            "docker-archive:/nonexistent.tar",
            "\"/nonexistent.tar\" is not a file",
        ),
    ] {
        let a = send(
            &f,
            json_req(
                Method::POST,
                "/v1/images/import",
                &format!(r#"{{"reference":"{reference}"}}"#),
            ),
        )
        .await;
        assert_error(&a, StatusCode::BAD_REQUEST, "invalid");
        let message = message_of(&a);
        assert!(message.contains(says), "{reference}: {message}");
    }
    let a = send(&f, empty(Method::GET, "/v1/images/minimal")).await;
    assert_error(&a, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn pulling_a_name_the_catalog_lacks_says_so_and_what_it_offers() {
    let f = fixture();
    let a = send(
        &f,
        json_req(Method::POST, "/v1/images/pull", r#"{"name":"nosuch"}"#),
    )
    .await;
    assert_error(&a, StatusCode::NOT_FOUND, "not_found");
    let body = a.json();
    assert_eq!(
        message_of(&a),
        r#"the image catalog has no image named "nosuch" (and none is registered here)"#
    );
    // What pull can get instead: the catalog's own names (debian is always one).
    let hint = body["hint"].as_str().unwrap_or_default();
    assert!(
        hint.contains("banger image pull NAME") && hint.contains("debian"),
        "{body}"
    );
}
