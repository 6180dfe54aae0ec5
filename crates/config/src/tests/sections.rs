//! The tables beyond the top level and `[vm_defaults]`: `[logs]`, the Firecracker release URL,
//! `[sandbox]`, `[images]` and `[shares]`.

use super::*;

#[test]
fn log_limits_default_and_parse() {
    let limits = p("").unwrap().logs_resolved();
    assert_eq!(
        limits.console_max_bytes.value,
        crate::BUILTIN_CONSOLE_MAX_BYTES
    );
    assert_eq!(limits.console_max_bytes.source, Provenance::Builtin);
    assert_eq!(
        limits.daemon_max_bytes.value,
        crate::BUILTIN_DAEMON_MAX_BYTES
    );

    let cfg = p("[logs]\nconsole_max = \"256K\"\ndaemon_max = 1048576\n").unwrap();
    let limits = cfg.logs_resolved();
    assert_eq!(limits.console_max_bytes.value, 256 * 1024);
    assert_eq!(limits.console_max_bytes.source, Provenance::Config);
    assert_eq!(limits.daemon_max_bytes.value, 1 << 20);

    let (line, col, key, msg) = bad("[logs]\nconsole_max = \"1K\"\n");
    assert_eq!(
        (line, col, key.as_deref()),
        (2, 15, Some("logs.console_max"))
    );
    assert!(
        msg.contains("out of range") && msg.contains("64 KiB"),
        "{msg}"
    );
    let (_, _, key, msg) = bad("[logs]\nconsole = \"8M\"\n");
    assert_eq!(key.as_deref(), Some("logs.console"));
    assert!(
        msg.contains("in [logs]") && msg.contains("console_max, daemon_max"),
        "{msg}"
    );
    assert!(
        bad("[logs]\ndaemon_max = \"2T\"\n")
            .3
            .contains("out of range")
    );
}

#[test]
fn firecracker_release_url_is_a_url_with_a_builtin_default() {
    let cfg = p("firecracker_release_url = \"http://127.0.0.1:8080/releases/\"\n").unwrap();
    assert_eq!(
        cfg.firecracker_release_url.as_deref(),
        Some("http://127.0.0.1:8080/releases")
    );
    let resolved = cfg.firecracker_release_url_resolved();
    assert_eq!(resolved.source, Provenance::Config);
    let builtin = p("").unwrap().firecracker_release_url_resolved();
    assert_eq!(builtin.value, crate::BUILTIN_FIRECRACKER_RELEASE_URL);
    assert_eq!(builtin.source, Provenance::Builtin);
    for text in [
        "firecracker_release_url = \"ftp://mirror/fc\"",
        "firecracker_release_url = \"https://a b\"",
        "firecracker_release_url = 3",
    ] {
        let (line, _, key, msg) = bad(text);
        assert_eq!(
            (line, key.as_deref()),
            (1, Some("firecracker_release_url")),
            "{msg}"
        );
        assert!(msg.contains("http:// or https:// URL"), "{msg}");
    }
}

#[test]
fn sandbox_id_range() {
    let c = p("").unwrap();
    assert_eq!(
        c.sandbox.id_range(),
        (BUILTIN_VMM_ID_BASE, BUILTIN_VMM_ID_COUNT)
    );
    assert_eq!(c.sandbox.id_range_resolved().source, Provenance::Builtin);
    let c = p("[sandbox]\nvmm_id_base = 200000\nvmm_id_count = 1000\n").unwrap();
    assert_eq!(c.sandbox.id_range(), (200_000, 1000));
    assert_eq!(c.sandbox.id_range_resolved().source, Provenance::Config);

    let (line, _, key, msg) = bad("[sandbox]\nvmm_id_base = 1000\n");
    assert_eq!(line, 2);
    assert_eq!(key.as_deref(), Some("sandbox.vmm_id_base"));
    assert!(msg.contains("65536"), "{msg}");
    let (_, _, key, msg) = bad("[sandbox]\nvmm_id_base = 2147000000\nvmm_id_count = 1000000\n");
    assert_eq!(key.as_deref(), Some("sandbox.vmm_id_count"));
    assert!(msg.contains("2^31"), "{msg}");
    let (_, _, key, msg) = bad("[sandbox]\nvmm_uid = 5\n");
    assert_eq!(key.as_deref(), Some("sandbox.vmm_uid"));
    assert!(msg.contains("vmm_id_base, vmm_id_count"), "{msg}");
}

#[test]
fn images_warm_policy() {
    assert_eq!(p("").unwrap().images.warm, crate::WarmPolicy::Off);
    let c = p("[images]\nwarm = \"on-first-use\"\n").unwrap();
    assert_eq!(c.images.warm, crate::WarmPolicy::OnFirstUse);
    assert_eq!(c.images.warm.as_str(), "on-first-use");
    assert_eq!(
        p("[images]\nwarm = \"off\"\n").unwrap().images.warm,
        crate::WarmPolicy::Off
    );

    let (line, _, key, msg) = bad("[images]\nwarm = \"always\"\n");
    assert_eq!(line, 2);
    assert_eq!(key.as_deref(), Some("images.warm"));
    assert!(msg.contains("\"off\", \"on-first-use\""), "{msg}");
    let (_, _, key, msg) = bad("[images]\nwarm = true\n");
    assert_eq!(key.as_deref(), Some("images.warm"));
    assert!(msg.contains("on-first-use"), "{msg}");
    let (_, _, key, msg) = bad("[images]\nhot = 1\n");
    assert_eq!(key.as_deref(), Some("images.hot"));
    assert!(msg.contains("in [images]"), "{msg}");
    assert!(msg.contains("warm, standbys"), "{msg}");
}

#[test]
fn images_standbys() {
    assert_eq!(p("").unwrap().images.standbys, crate::DEFAULT_STANDBYS);
    assert_eq!(p("[images]\nstandbys = 0\n").unwrap().images.standbys, 0);
    assert_eq!(p("[images]\nstandbys = 3\n").unwrap().images.standbys, 3);
    for text in ["[images]\nstandbys = -1\n", "[images]\nstandbys = 17\n"] {
        let (line, _, key, msg) = bad(text);
        assert_eq!(line, 2, "{text}");
        assert_eq!(key.as_deref(), Some("images.standbys"));
        assert!(msg.contains("from 0 to 16"), "{msg}");
    }
    let (_, _, key, msg) = bad("[images]\nstandbys = \"two\"\n");
    assert_eq!(key.as_deref(), Some("images.standbys"));
    assert!(msg.contains("an integer"), "{msg}");
}

#[test]
fn sandbox_cgroup_allowances() {
    let c = p("").unwrap();
    assert_eq!(c.sandbox.vmm_memory_overhead_mib, None);
    assert_eq!(c.sandbox.vmm_pids_max, None);
    let c = p("[sandbox]\nvmm_memory_overhead_mib = 0\nvmm_pids_max = 64\n").unwrap();
    assert_eq!(c.sandbox.vmm_memory_overhead_mib, Some(0));
    assert_eq!(c.sandbox.vmm_pids_max, Some(64));
    let (line, _, key, msg) = bad("[sandbox]\nvmm_pids_max = 8\n");
    assert_eq!(line, 2);
    assert_eq!(key.as_deref(), Some("sandbox.vmm_pids_max"));
    assert!(msg.contains("from 32 to"), "{msg}");
    let (_, _, key, msg) = bad("[sandbox]\nvmm_memory_overhead_mib = -1\n");
    assert_eq!(key.as_deref(), Some("sandbox.vmm_memory_overhead_mib"));
    assert!(msg.contains("(MiB)"), "{msg}");
}

#[test]
fn shares_fallback_and_copy_cap() {
    let c = p("").unwrap();
    let r = c.shares_resolved();
    assert_eq!(r.fallback.value, ShareFallback::Copy);
    assert_eq!(r.copy_max_bytes.value, BUILTIN_COPY_MAX_BYTES);
    assert_eq!(r.copy_max_bytes.source, Provenance::Builtin);
    let c = p("[shares]\nfallback = \"refuse\"\ncopy_max = \"512M\"\n").unwrap();
    let r = c.shares_resolved();
    assert_eq!(r.fallback.value, ShareFallback::Refuse);
    assert_eq!(r.copy_max_bytes.value, 512 * 1024 * 1024);
    assert_eq!(r.fallback.source, Provenance::Config);

    let (line, _, key, msg) = bad("[shares]\nfallback = \"9p\"\n");
    assert_eq!(line, 2);
    assert_eq!(key.as_deref(), Some("shares.fallback"));
    assert!(msg.contains("\"copy\", \"refuse\""), "{msg}");
    let (_, _, key, _) = bad("[shares]\ncopy_max = \"1k\"\n");
    assert_eq!(key.as_deref(), Some("shares.copy_max"));
    let (_, _, key, msg) = bad("[shares]\nmode = \"copy\"\n");
    assert_eq!(key.as_deref(), Some("shares.mode"));
    assert!(msg.contains("fallback, copy_max"), "{msg}");
}
