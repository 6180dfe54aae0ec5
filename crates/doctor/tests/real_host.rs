//! The whole doctor against this machine, no fakes: everything but the state
//! roots (temp dirs, so the real host's store is never touched) is real.

use crate::common;

use banger_doctor::{DoctorContext, Report, Status, groups};
use banger_paths::Mode;
use common::FakeHost;

#[test]
fn runs_against_the_real_host() {
    let host = FakeHost::new();
    let layout = host.layout(Mode::DevUser);
    let config = banger_config::load(&layout.config_file());
    let ctx = DoctorContext::from_host(layout, config);
    let report = banger_doctor::run(&ctx);

    let arch = report.find(groups::HOST, "architecture").unwrap();
    assert_eq!(arch.status, Status::Pass, "{arch:?}");
    for group in groups::ALL {
        if group == groups::SSH {
            // Only reported once banger has rendered an ssh_config.
            continue;
        }
        assert!(
            report.group(group).next().is_some(),
            "group {group} missing:\n{}",
            report.to_json()
        );
    }
    // Fresh temp state dir: the store is missing, which is fine, and stays missing.
    assert_eq!(
        report.find(groups::STATE, "state store").unwrap().status,
        Status::Pass
    );
    assert!(!host.path("state/state.db").exists());

    // Both renderers work on a real report, and JSON round-trips.
    let mut text = Vec::new();
    report.render_human(&mut text, false).unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains("architecture"));
    assert_eq!(Report::from_json(&report.to_json()).unwrap(), report);
    println!("{text}");
}
