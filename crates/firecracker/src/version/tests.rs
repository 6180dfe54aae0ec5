use super::*;
use banger_system::RealRunner;

fn v(major: u64, minor: u64, patch: u64, pre: Option<&str>) -> SemVer {
    SemVer {
        major,
        minor,
        patch,
        pre: pre.map(str::to_string),
    }
}

#[test]
fn parses_canonical_output() {
    assert_eq!(
        parse_version_output("Firecracker v1.14.1\n").unwrap(),
        v(1, 14, 1, None)
    );
}

#[test]
fn parses_prerelease() {
    let parsed = parse_version_output("Firecracker v1.15.0-dev\n").unwrap();
    assert_eq!(parsed, v(1, 15, 0, Some("dev")));
    assert_eq!(parsed.to_string(), "v1.15.0-dev");
}

#[test]
fn tolerates_trailing_exit_log_line() {
    let out = "Firecracker v1.14.1\n\n2025-01-01T00:00:00.000000000 [anonymous-instance:main] \
               Firecracker exiting successfully. exit_code=0\n";
    assert_eq!(parse_version_output(out).unwrap(), v(1, 14, 1, None));
}

#[test]
fn tolerates_snapshot_versions_listing_of_1_5_0() {
    let out = "Firecracker v1.5.0\n\nSupported snapshot data format versions:\n0.23.0\n0.24.0\n\
               0.25.0\n1.0.0\n1.1.0\n1.2.0\n1.3.0\n1.4.0\n1.5.0\n";
    assert_eq!(parse_version_output(out).unwrap(), v(1, 5, 0, None));
}

#[test]
fn rejects_garbage_and_names_what_it_saw() {
    let err = parse_version_output("qemu-system-x86_64 version 7.2\n").unwrap_err();
    assert!(matches!(err, VersionError::NoVersionLine { .. }), "{err:?}");
    assert!(
        err.to_string().contains("qemu-system-x86_64 version 7.2"),
        "{err}"
    );

    let err = parse_version_output("Firecracker vnonsense\n").unwrap_err();
    assert!(matches!(err, VersionError::Malformed { .. }), "{err:?}");
    let err = parse_version_output("Firecracker v1.2\n").unwrap_err();
    assert!(matches!(err, VersionError::Malformed { .. }), "{err:?}");
}

#[test]
fn rejects_empty_output() {
    let err = parse_version_output("").unwrap_err();
    assert!(matches!(err, VersionError::NoVersionLine { .. }), "{err:?}");
    assert!(parse_version_output("\n\n").is_err());
}

#[test]
fn semver_parse_edge_cases() {
    assert_eq!(SemVer::parse("1.5.0").unwrap(), v(1, 5, 0, None));
    assert_eq!(SemVer::parse("v0.0.0").unwrap(), v(0, 0, 0, None));
    assert_eq!(
        SemVer::parse("1.2.3-rc.1+build.7").unwrap(),
        v(1, 2, 3, Some("rc.1"))
    );
    for bad in [
        "",
        "v",
        "1",
        "1.2",
        "1.2.3.4",
        "01.2.3",
        "1.2.x",
        "1.2.3-",
        "1.2.3-a..b",
        "-1.2.3",
        "1.2.3+",
    ] {
        assert!(SemVer::parse(bad).is_err(), "{bad:?} should be rejected");
    }
}

#[test]
fn compares_across_major_minor_patch_and_prerelease() {
    let ordered = [
        "0.25.0",
        "1.4.9",
        "1.5.0-dev",
        "1.5.0-rc.1",
        "1.5.0-rc.2",
        "1.5.0-rc.10",
        "1.5.0",
        "1.5.1",
        "1.14.0",
        "1.14.1",
        "2.0.0",
    ];
    for pair in ordered.windows(2) {
        let (a, b) = (must_parse(pair[0]), must_parse(pair[1]));
        assert_eq!(a.compare(&b), Ordering::Less, "{a} < {b}");
        assert_eq!(b.compare(&a), Ordering::Greater, "{b} > {a}");
    }
    assert_eq!(
        must_parse("1.14.1").compare(&must_parse("v1.14.1")),
        Ordering::Equal
    );
    // Numeric identifiers sort before alphanumeric ones.
    assert!(must_parse("1.0.0-1") < must_parse("1.0.0-alpha"));
}

#[test]
fn constants_parse_and_window_is_ordered() {
    assert!(must_parse(MIN_SUPPORTED) < must_parse(KNOWN_TESTED));
}

#[test]
#[should_panic(expected = "invalid version constant")]
fn must_parse_panics_on_malformed() {
    must_parse("1.x");
}

/// Write an executable shell script. The executable copy is made by `install(1)` in a
/// child process so this (multi-threaded) test process never holds a write handle on
/// it: a handle leaked into another test's fork would make exec fail with ETXTBSY.
fn script(dir: &Path, body: &str) -> PathBuf {
    let source = dir.join("firecracker.src");
    let path = dir.join("firecracker");
    std::fs::write(&source, format!("#!/bin/sh\n{body}\n")).unwrap();
    let out = RealRunner
        .run_str(
            "install",
            &[
                "-m",
                "0755",
                source.to_str().unwrap(),
                path.to_str().unwrap(),
            ],
        )
        .unwrap();
    assert!(out.success(), "install failed: {}", out.stderr_str());
    path
}

#[test]
fn query_version_runs_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let bin = script(
        dir.path(),
        "echo 'Firecracker v1.14.1'; echo; echo 'x [main] Firecracker exiting successfully. exit_code=0'",
    );
    assert_eq!(query_version(&RealRunner, &bin).unwrap(), v(1, 14, 1, None));
}

#[test]
fn query_version_reports_non_zero_exit_with_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let bin = script(dir.path(), "echo 'bad cpu' >&2; exit 2");
    let err = query_version(&RealRunner, &bin).unwrap_err();
    assert!(matches!(err, VersionError::Exited { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("code 2") && msg.contains("bad cpu"), "{msg}");
}

#[test]
fn query_version_reports_unrunnable_and_unrecognised() {
    let dir = tempfile::tempdir().unwrap();
    let err = query_version(&RealRunner, &dir.path().join("missing")).unwrap_err();
    assert!(matches!(err, VersionError::Spawn { .. }), "{err:?}");

    let bin = script(dir.path(), "echo hello");
    let err = query_version(&RealRunner, &bin).unwrap_err();
    assert!(matches!(err, VersionError::Unrecognised { .. }), "{err:?}");
}
