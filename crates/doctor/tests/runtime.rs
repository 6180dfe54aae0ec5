//! SSH key and agent binary rows of the host runtime / guest agent groups.

use crate::common;

use banger_config::Config;
use banger_doctor::{Check, Status, groups};
use common::{FakeHost, ScriptedRunner};

fn ssh_key_row(host: &FakeHost, config: Config) -> Check {
    let report = banger_doctor::run(&host.context(config, ScriptedRunner::new()));
    report.find(groups::RUNTIME, "ssh key").unwrap().clone()
}

#[test]
fn missing_default_key_passes_because_banger_creates_it() {
    let host = FakeHost::new();
    let c = ssh_key_row(&host, Config::default());
    assert_eq!(c.status, Status::Pass);
    assert!(c.summary.contains("not created yet"), "{}", c.summary);
}

#[test]
fn existing_default_key_passes() {
    let host = FakeHost::new();
    std::fs::create_dir_all(host.path("config/ssh")).unwrap();
    std::fs::write(host.path("config/ssh/id_ed25519"), "key").unwrap();
    let c = ssh_key_row(&host, Config::default());
    assert_eq!(c.status, Status::Pass);
    assert!(
        c.summary.ends_with("config/ssh/id_ed25519"),
        "{}",
        c.summary
    );
}

#[test]
fn missing_configured_key_fails() {
    let host = FakeHost::new();
    let key = host.path("home/.ssh/id_custom");
    let config = Config {
        ssh_key_path: Some(key.clone()),
        ..Config::default()
    };
    let c = ssh_key_row(&host, config.clone());
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert!(c.hint.as_ref().unwrap().contains("ssh_key_path"), "{c:?}");

    std::fs::write(&key, "key").unwrap();
    assert_eq!(ssh_key_row(&host, config).status, Status::Pass);
}

#[test]
fn agent_binary_found_or_not() {
    let host = FakeHost::new();
    let agent = host.script("banger-agent", "exit 0");
    let mut ctx = host.context(Config::default(), ScriptedRunner::new());
    ctx.agent_binary = Ok(agent);
    let report = banger_doctor::run(&ctx);
    assert_eq!(
        report.find(groups::AGENT, "agent binary").unwrap().status,
        Status::Pass
    );

    let mut ctx = host.context(Config::default(), ScriptedRunner::new());
    ctx.agent_binary = Err("banger-agent not found next to banger".into());
    let report = banger_doctor::run(&ctx);
    let c = report.find(groups::AGENT, "agent binary").unwrap();
    assert_eq!(c.status, Status::Fail);
    assert!(c.hint.as_ref().unwrap().contains("make build"), "{c:?}");
}
