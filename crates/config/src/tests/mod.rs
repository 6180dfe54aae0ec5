//! Parsing tests: every key and every error class with its position; provenance and the
//! tables beyond the top level in the submodules.

use super::*;
use banger_paths::Mode;

const GIB: u64 = 1024 * 1024 * 1024;

fn p(text: &str) -> Result<Config, ConfigError> {
    parse_with_home(
        text,
        Path::new("/cfg/config.toml"),
        Some(Path::new("/home/al")),
    )
}

/// Parse expecting an `Invalid` error; returns (line, column, key, message, display).
fn bad(text: &str) -> (usize, usize, Option<String>, String) {
    match p(text) {
        Err(e @ ConfigError::Invalid { .. }) => {
            let shown = e.to_string();
            assert!(
                shown.starts_with("/cfg/config.toml:"),
                "error must name the file: {shown}"
            );
            let (line, column) = e.position().unwrap();
            assert!(shown.contains(&format!(":{line}:{column}:")), "{shown}");
            (line, column, e.key().map(str::to_string), shown)
        }
        other => panic!("expected an Invalid error for {text:?}, got {other:?}"),
    }
}

fn layout() -> Layout {
    Layout {
        mode: Mode::DevUser,
        state_dir: "/s".into(),
        runtime_dir: "/r".into(),
        config_dir: "/c".into(),
        etc_dir: "/e".into(),
        home_dir: Some("/home/al".into()),
    }
}

#[test]
fn empty_text_is_all_defaults() {
    let cfg = p("").unwrap();
    assert_eq!(
        cfg,
        Config {
            source: Some("/cfg/config.toml".into()),
            ..Config::default()
        }
    );
    assert_eq!(cfg.vmm, VmmPreference::Auto);
}

#[test]
fn every_key_parses() {
    let cfg = p(r#"
firecracker_bin = "/opt/fc/firecracker"
ssh_key_path = "~/.ssh/id_ed25519"
default_image_name = "debian-12.x_1"
vmm = "qemu"

[vm_defaults]
vcpu = 4
memory = 2048
disk = "10GiB"
"#)
    .unwrap();
    assert_eq!(cfg.firecracker_bin, Some("/opt/fc/firecracker".into()));
    assert_eq!(cfg.ssh_key_path, Some("/home/al/.ssh/id_ed25519".into()));
    assert_eq!(cfg.default_image_name.as_deref(), Some("debian-12.x_1"));
    assert_eq!(cfg.vmm, VmmPreference::Qemu);
    assert_eq!(
        cfg.vm_defaults,
        VmDefaultsConfig {
            vcpu: Some(4),
            memory_mib: Some(2048),
            disk_bytes: Some(10 * GIB)
        }
    );
}

#[test]
fn disk_accepts_integer_bytes_and_each_vmm_value() {
    let cfg = p("vmm = \"firecracker\"\n[vm_defaults]\ndisk = 67108864\n").unwrap();
    assert_eq!(cfg.vm_defaults.disk_bytes, Some(64 * 1024 * 1024));
    assert_eq!(cfg.vmm, VmmPreference::Firecracker);
    assert_eq!(p("vmm = \"auto\"").unwrap().vmm, VmmPreference::Auto);
    // Dotted keys are the same table.
    assert_eq!(p("vm_defaults.vcpu = 3").unwrap().vm_defaults.vcpu, Some(3));
}

#[test]
fn firecracker_bin_may_be_a_bare_command_name() {
    assert_eq!(
        p("firecracker_bin = \"fc-1.14\"").unwrap().firecracker_bin,
        Some("fc-1.14".into())
    );
    assert_eq!(
        p("firecracker_bin = \"~/bin/fc\"").unwrap().firecracker_bin,
        Some("/home/al/bin/fc".into())
    );
    let (line, col, key, msg) = bad("\nfirecracker_bin = \"bin/fc\"");
    assert_eq!(
        (line, col, key.as_deref()),
        (2, 19, Some("firecracker_bin"))
    );
    assert!(msg.contains("command name looked up on PATH"), "{msg}");
}

#[test]
fn ssh_key_path_must_be_absolute_or_home_relative() {
    let (line, col, key, msg) = bad("ssh_key_path = \"keys/id\"");
    assert_eq!((line, col, key.as_deref()), (1, 16, Some("ssh_key_path")));
    assert!(
        msg.contains("absolute path or a path starting with ~/"),
        "{msg}"
    );
    assert!(bad("ssh_key_path = \"id\"").3.contains("absolute"));
    assert!(bad("ssh_key_path = \"\"").3.contains("absolute"));
    assert!(bad("ssh_key_path = \"~user/id\"").3.contains("absolute"));
    let err = parse_with_home("ssh_key_path = \"~/k\"", Path::new("/c.toml"), None).unwrap_err();
    assert!(err.to_string().contains("HOME is not set"), "{err}");
}

#[test]
fn unknown_top_level_key_names_line_column_and_choices() {
    let (line, col, key, msg) = bad("vmm = \"qemu\"\n  firecracker_path = \"/x\"\n");
    assert_eq!((line, col), (2, 3));
    assert_eq!(key.as_deref(), Some("firecracker_path"));
    assert!(
        msg.contains("unknown key `firecracker_path` at the top level"),
        "{msg}"
    );
    assert!(
        msg.contains("firecracker_bin"),
        "lists the allowed keys: {msg}"
    );
}

#[test]
fn unknown_key_in_vm_defaults() {
    let (line, col, key, msg) = bad("[vm_defaults]\nvcpu = 2\nmemory_mib = 512\n");
    assert_eq!((line, col), (3, 1));
    assert_eq!(key.as_deref(), Some("vm_defaults.memory_mib"));
    assert!(
        msg.contains("in [vm_defaults]") && msg.contains("vcpu, memory, disk"),
        "{msg}"
    );
}

#[test]
fn unknown_table_is_an_error() {
    let (line, _, key, _) = bad("[vm-defaults]\nvcpu = 2\n");
    assert_eq!(line, 1);
    assert_eq!(key.as_deref(), Some("vm-defaults"));
}

#[test]
fn wrong_types_say_what_is_expected() {
    let (line, col, key, msg) = bad("[vm_defaults]\nvcpu = \"four\"\n");
    assert_eq!(
        (line, col, key.as_deref()),
        (2, 8, Some("vm_defaults.vcpu"))
    );
    assert!(
        msg.contains("must be an integer from 1 to 32, found the string \"four\""),
        "{msg}"
    );

    let (_, _, key, msg) = bad("[vm_defaults]\nmemory = \"2G\"\n");
    assert_eq!(key.as_deref(), Some("vm_defaults.memory"));
    assert!(msg.contains("(MiB)"), "{msg}");

    let (_, _, key, msg) = bad("[vm_defaults]\ndisk = 1.5\n");
    assert_eq!(key.as_deref(), Some("vm_defaults.disk"));
    assert!(msg.contains("found the float 1.5"), "{msg}");

    assert!(
        bad("vmm = 1")
            .3
            .contains("one of \"auto\", \"qemu\", \"firecracker\"")
    );
    assert!(
        bad("firecracker_bin = true")
            .3
            .contains("found the boolean true")
    );
    assert!(
        bad("default_image_name = [\"a\"]")
            .3
            .contains("found an array")
    );
    let (_, _, _, msg) = bad("vm_defaults = 5");
    assert!(
        msg.contains("[vm_defaults]") && !msg.contains("Raw"),
        "{msg}"
    );
}

#[test]
fn out_of_range_values_carry_their_position() {
    let text = "# sizes\n[vm_defaults]\nvcpu   = 64\nmemory = 64\ndisk = \"32M\"\n";
    let (line, col, key, msg) = bad(text);
    assert_eq!(
        (line, col, key.as_deref()),
        (3, 10, Some("vm_defaults.vcpu"))
    );
    assert!(
        msg.contains("`vm_defaults.vcpu` = 64 is out of range; expected an integer from 1 to 32"),
        "{msg}"
    );

    let (line, col, key, _) = bad("[vm_defaults]\nmemory = 64\n");
    assert_eq!(
        (line, col, key.as_deref()),
        (2, 10, Some("vm_defaults.memory"))
    );
    assert!(
        bad("[vm_defaults]\nmemory = 1048577")
            .3
            .contains("128 to 1048576")
    );
    assert!(bad("[vm_defaults]\nvcpu = 0").3.contains("out of range"));
    assert!(bad("[vm_defaults]\nvcpu = -1").3.contains("out of range"));
    assert_eq!(
        p("[vm_defaults]\nvcpu = 32\nmemory = 128")
            .unwrap()
            .vm_defaults
            .vcpu,
        Some(32)
    );

    let (line, col, key, msg) = bad("[vm_defaults]\ndisk = \"32M\"\n");
    assert_eq!(
        (line, col, key.as_deref()),
        (2, 8, Some("vm_defaults.disk"))
    );
    assert!(
        msg.contains("32 MiB is out of range") && msg.contains("from 64 MiB"),
        "{msg}"
    );
    assert!(
        bad("[vm_defaults]\ndisk = \"0\"")
            .3
            .contains("out of range")
    );
    assert!(bad("[vm_defaults]\ndisk = -5").3.contains("negative"));
    assert!(
        bad("[vm_defaults]\ndisk = \"65T\"")
            .3
            .contains("out of range")
    );
    assert!(bad("[vm_defaults]\ndisk = \"1.5G\"").3.contains("1536M"));
    assert!(
        bad("[vm_defaults]\ndisk = \"99999999P\"")
            .3
            .contains("too large")
    );
}

#[test]
fn bad_vmm_and_image_name_values() {
    let (line, col, key, msg) = bad("vmm = \"kvm\"");
    assert_eq!((line, col, key.as_deref()), (1, 7, Some("vmm")));
    assert!(msg.contains("\"kvm\" is not one of"), "{msg}");
    for name in ["Minimal", "-x", "", "a b", "a/b", &"a".repeat(64)] {
        let (_, _, key, msg) = bad(&format!("default_image_name = {name:?}"));
        assert_eq!(key.as_deref(), Some("default_image_name"));
        assert!(msg.contains("not a valid image name"), "{msg}");
    }
    assert!(p(&format!("default_image_name = {:?}", "a".repeat(63))).is_ok());
}

#[test]
fn syntax_errors_and_duplicates_have_positions() {
    let (line, _, key, msg) = bad("vmm = \"qemu\"\nvmm = \"auto\"\n");
    assert_eq!(line, 2);
    assert_eq!(key, None);
    assert!(msg.contains("invalid TOML"), "{msg}");
    let (line, _, _, _) = bad("\n\nvcpu = = 2");
    assert_eq!(line, 3);
}

#[test]
fn load_missing_file_is_defaults_and_unreadable_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("config.toml");
    assert_eq!(load(&missing).unwrap(), Config::default());

    std::fs::write(&missing, "vmm = \"qemu\"\n").unwrap();
    let cfg = load(&missing).unwrap();
    assert_eq!(cfg.vmm, VmmPreference::Qemu);
    assert_eq!(cfg.source.as_deref(), Some(missing.as_path()));

    // A directory where the file should be is not "missing".
    let err = load(dir.path()).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&dir.path().display().to_string()),
        "{err}"
    );

    std::fs::write(&missing, "[vm_defaults]\nvcpu = 99\n").unwrap();
    let err = load(&missing).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("{}:2:8:", missing.display())),
        "{err}"
    );
}

#[test]
fn vmm_preference_display_and_from_str_agree() {
    for v in [
        VmmPreference::Auto,
        VmmPreference::Qemu,
        VmmPreference::Firecracker,
    ] {
        assert_eq!(v.to_string().parse::<VmmPreference>(), Ok(v));
    }
    assert!("QEMU".parse::<VmmPreference>().is_err());
}

mod provenance;
mod sections;
