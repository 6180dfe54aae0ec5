//! An exec request's own values are checked before any VM is looked up: what the guest
//! would otherwise guess at is refused, naming the field.

use banger_api::ExecRequest;

use super::*;

async fn refused(f: &Fixture, req: ExecRequest) -> crate::error::DaemonError {
    match crate::vms::exec::start(&f.daemon, "no-such-vm", req).await {
        Ok(_) => panic!("the request was accepted"),
        Err(e) => e,
    }
}

#[tokio::test]
async fn a_relative_working_directory_is_refused() {
    let f = fixture();
    for cwd in ["tmp", "", "./x", "../../tmp"] {
        let e = refused(
            &f,
            ExecRequest {
                argv: vec!["pwd".into()],
                cwd: Some(cwd.into()),
                ..ExecRequest::default()
            },
        )
        .await;
        assert_eq!(e.kind.as_str(), "invalid", "{cwd:?}: {}", e.message);
        assert_eq!(e.field.as_deref(), Some("cwd"), "{cwd:?}: {}", e.message);
        assert!(e.message.contains("absolute"), "{}", e.message);
    }
    // An absolute one gets as far as the VM lookup.
    let e = refused(
        &f,
        ExecRequest {
            argv: vec!["pwd".into()],
            cwd: Some("/tmp".into()),
            ..ExecRequest::default()
        },
    )
    .await;
    assert_eq!(e.kind.as_str(), "not_found", "{}", e.message);
}

#[tokio::test]
async fn an_empty_program_name_is_not_called_an_empty_argv() {
    let f = fixture();
    let e = refused(
        &f,
        ExecRequest {
            argv: vec![String::new(), "x".into()],
            ..ExecRequest::default()
        },
    )
    .await;
    assert_eq!(e.field.as_deref(), Some("argv"));
    assert!(!e.message.contains("argv is empty"), "{}", e.message);
}
