use super::*;
use std::collections::HashMap;

struct FakeEnv {
    vars: HashMap<&'static str, String>,
    uid: u32,
    existing: Vec<PathBuf>,
}

impl EnvSource for FakeEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.vars.get(name).cloned()
    }
    fn uid(&self) -> u32 {
        self.uid
    }
    fn exists(&self, path: &Path) -> bool {
        self.existing.iter().any(|p| p == path)
    }
}

fn env(uid: u32, vars: &[(&'static str, &str)]) -> FakeEnv {
    FakeEnv {
        vars: vars.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        uid,
        existing: vec![],
    }
}

#[test]
fn temporary_names() {
    for temp in [
        ".download-a1b2",
        ".minimal.work-Xy",
        ".minimal.new-1",
        ".x.old-2",
        ".tmp-9",
    ] {
        assert!(is_temp_name(temp), "{temp}");
    }
    for kept in [
        "minimal",
        "vmlinux",
        ".hidden",
        "work-1",
        "a.download-1",
        ".lock",
    ] {
        assert!(!is_temp_name(kept), "{kept}");
    }
}

#[test]
fn dev_user_uses_xdg_dirs() {
    let e = env(
        1000,
        &[("HOME", "/home/al"), ("XDG_RUNTIME_DIR", "/run/user/1000")],
    );
    let l = Layout::resolve_with(&e).unwrap();
    assert_eq!(l.mode, Mode::DevUser);
    assert_eq!(
        l.db_path(),
        PathBuf::from("/home/al/.local/state/banger/state.db")
    );
    assert_eq!(
        l.daemon_socket(),
        PathBuf::from("/run/user/1000/banger/bangerd.sock")
    );
    assert_eq!(
        l.config_file(),
        PathBuf::from("/home/al/.config/banger/config.toml")
    );
    assert_eq!(l.install_toml(), PathBuf::from("/etc/banger/install.toml"));
}

#[test]
fn dev_user_without_runtime_dir_keeps_sockets_private() {
    let e = env(1000, &[("HOME", "/home/al")]);
    let l = Layout::resolve_with(&e).unwrap();
    assert_eq!(
        l.runtime_dir,
        PathBuf::from("/home/al/.local/state/banger/run")
    );
    assert_eq!(
        l.helper_socket_candidates(),
        [
            PathBuf::from("/home/al/.local/state/banger/run/helper.sock"),
            PathBuf::from("/run/banger/helper.sock")
        ],
        "a helper started with sudo listens in root's runtime dir"
    );
}

#[test]
fn root_dev_mode_uses_system_layout() {
    let e = env(0, &[("HOME", "/root")]);
    let l = Layout::resolve_with(&e).unwrap();
    assert_eq!(l.mode, Mode::DevRoot);
    assert_eq!(l.db_path(), PathBuf::from("/var/lib/banger/state.db"));
    assert_eq!(l.helper_socket(), PathBuf::from("/run/banger/helper.sock"));
    assert_eq!(l.helper_socket_candidates(), [l.helper_socket()]);
    assert_eq!(l.config_dir, PathBuf::from("/root/.config/banger"));
}

#[test]
fn install_toml_selects_system_mode_for_any_user() {
    let mut e = env(1000, &[("HOME", "/home/al"), (ENV_ETC_DIR, "/tmp/etc")]);
    e.existing.push(PathBuf::from("/tmp/etc/install.toml"));
    let l = Layout::resolve_with(&e).unwrap();
    assert_eq!(l.mode, Mode::SystemInstall);
    assert_eq!(l.state_dir, PathBuf::from("/var/lib/banger"));
    assert_eq!(l.daemon_socket(), PathBuf::from("/run/banger/bangerd.sock"));
    assert_eq!(
        l.helper_socket(),
        PathBuf::from("/run/banger-helper/helper.sock"),
        "the helper's directory is its own, beside the owner's"
    );
    assert_eq!(l.helper_socket_candidates(), [l.helper_socket()]);
}

#[test]
fn system_roots_need_no_home_and_take_the_overrides() {
    let roots = SystemRoots::resolve_with(&env(0, &[])).unwrap();
    assert_eq!(roots.etc_dir, PathBuf::from("/etc/banger"));
    assert_eq!(roots.state_dir, PathBuf::from("/var/lib/banger"));
    assert_eq!(
        roots.helper_runtime_dir(),
        PathBuf::from("/run/banger-helper")
    );
    let moved = SystemRoots::resolve_with(&env(0, &[(ENV_RUNTIME_DIR, "/t/run/b")])).unwrap();
    assert_eq!(moved.helper_runtime_dir(), PathBuf::from("/t/run/b-helper"));
    assert!(SystemRoots::resolve_with(&env(0, &[(ENV_ETC_DIR, "rel")])).is_err());
}

#[test]
fn every_root_is_overridable() {
    let e = env(
        1000,
        &[
            (ENV_STATE_DIR, "/t/state"),
            (ENV_RUNTIME_DIR, "/t/run"),
            (ENV_CONFIG_DIR, "/t/config"),
            (ENV_ETC_DIR, "/t/etc"),
        ],
    );
    // No HOME needed once every root is overridden.
    let l = Layout::resolve_with(&e).unwrap();
    assert_eq!(l.db_path(), PathBuf::from("/t/state/state.db"));
    assert_eq!(l.daemon_socket(), PathBuf::from("/t/run/bangerd.sock"));
    assert_eq!(l.ssh_config(), PathBuf::from("/t/config/ssh_config"));
    assert_eq!(l.install_toml(), PathBuf::from("/t/etc/install.toml"));
}

#[test]
fn relative_override_is_rejected() {
    let e = env(1000, &[("HOME", "/h"), (ENV_STATE_DIR, "state")]);
    let err = Layout::resolve_with(&e).unwrap_err();
    assert!(err.to_string().contains("BANGER_STATE_DIR"), "{err}");
}

#[test]
fn missing_home_is_a_clear_error() {
    let e = env(1000, &[]);
    let err = Layout::resolve_with(&e).unwrap_err();
    assert!(err.to_string().contains("HOME"), "{err}");
}

#[test]
fn companion_binary_search_order() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    let lib = dir.path().join("lib/banger");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&lib).unwrap();
    assert!(companion_binary_in(&bin, "banger-agent").is_err());
    std::fs::write(lib.join("banger-agent"), b"x").unwrap();
    assert!(
        companion_binary_in(&bin, "banger-agent")
            .unwrap()
            .ends_with("lib/banger/banger-agent")
    );
    std::fs::write(bin.join("banger-agent"), b"x").unwrap();
    assert_eq!(
        companion_binary_in(&bin, "banger-agent").unwrap(),
        bin.join("banger-agent")
    );
}
