//! `POST /v1/images/prune`: what it frees, and that it keeps what VMs and snapshots use.

use super::*;

#[tokio::test]
async fn prune_says_what_it_frees_and_keeps_what_is_used() {
    let f = fixture();
    let state = f.daemon.layout.state_dir.clone();
    let register = |name: &str| {
        let dir = state.join("images").join(format!("{name}-0001"));
        register_image(&f.daemon, name, dir.clone());
        std::fs::write(dir.join("rootfs"), vec![1u8; 100_000]).unwrap();
    };
    let default = f.daemon.config.default_image_name_resolved().value;
    register("used");
    register(&default);
    insert_vm(&f, "abc111111111", "vm", "used");
    std::fs::create_dir_all(state.join("images/interrupted-99")).unwrap();
    std::fs::write(state.join("images/interrupted-99/part"), [0u8; 5000]).unwrap();
    std::fs::create_dir_all(state.join("cache")).unwrap();
    std::fs::write(state.join("cache/kernel.deb"), vec![2u8; 70_000]).unwrap();

    let prune = |body: &'static str| json_req(Method::POST, "/v1/images/prune", body);
    let a = send(&f, prune(r#"{"dry_run":true}"#)).await;
    assert_eq!(
        a.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&a.body)
    );
    let plan: banger_api::PruneReport = serde_json::from_slice(&a.body).unwrap();
    let names: Vec<(&str, &str)> = plan
        .items
        .iter()
        .map(|i| (i.kind.as_str(), i.name.as_str()))
        .collect();
    assert!(names.contains(&("image", "fake")), "{names:?}");
    assert!(
        names
            .iter()
            .any(|(k, n)| *k == "leftover" && n.ends_with("interrupted-99"))
    );
    assert!(
        names
            .iter()
            .any(|(k, n)| *k == "cache" && n.ends_with("kernel.deb"))
    );
    assert!(!names.iter().any(|(_, n)| n.contains("used")), "{names:?}");
    assert!(
        plan.kept.iter().any(|k| k.starts_with(&default)),
        "{:?}",
        plan.kept
    );
    assert!(plan.reclaimable_bytes >= 75_000, "{plan:?}");
    assert!(
        state.join("cache/kernel.deb").exists(),
        "a dry run removed something"
    );

    let a = send(&f, prune("")).await;
    let done: banger_api::PruneReport = serde_json::from_slice(&a.body).unwrap();
    assert_eq!(done.items.len(), plan.items.len());
    assert!(!state.join("cache/kernel.deb").exists());
    assert!(!state.join("images/interrupted-99").exists());
    assert!(state.join("images/used-0001/rootfs").exists());
    let a = send(&f, empty(Method::GET, "/v1/images")).await;
    let left: Vec<String> = a
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");

    let a = send(&f, prune(r#"{"all":true}"#)).await;
    let all: banger_api::PruneReport = serde_json::from_slice(&a.body).unwrap();
    assert_eq!(all.items.len(), 1, "{all:?}");
    assert_eq!(all.items[0].name, default);
    let a = send(&f, prune(r#"{"al":true}"#)).await;
    assert_error(&a, StatusCode::BAD_REQUEST, "invalid");
}
