//! Hostile input over the HTTP API: a name thousands of characters long comes back
//! shortened, and request fields are checked before the VM's state is read.

use super::*;

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
            message.contains(&format!("\"{}…\" (5000 characters)", "a".repeat(64))),
            "{what}: {message}"
        );
    }
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
