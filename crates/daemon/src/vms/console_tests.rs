//! The serial console: captured through its cap whatever the guest writes, and served by
//! `vm logs` from the end, streaming.

use std::path::Path;
use std::time::{Duration, Instant};

use super::CONSOLE_LOG;
use crate::testing::{Harness, Incarnation, wait_for};

const CAP: u64 = 64 * 1024;

fn capped() -> Harness {
    let config = banger_config::parse("[logs]\nconsole_max = \"64K\"\n", Path::new("/t.toml"))
        .expect("config");
    Harness::with_config(config)
}

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

fn console_bytes(inc: &Incarnation, name: &str) -> (u64, String) {
    let vm = inc.daemon.store().get_vm(name).expect("read").expect("row");
    let log = vm.dir.join(CONSOLE_LOG);
    let older = banger_system::rotate::rotated_path(&log);
    let text = format!(
        "{}{}",
        std::fs::read_to_string(&older).unwrap_or_default(),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    (size(&log) + size(&older), text)
}

/// Write to the fake VMM's console the way a guest writes /dev/ttyS0: through the agent's
/// own stderr.
fn console_writer(script: &str) -> Vec<String> {
    vec![
        "sh".into(),
        "-c".into(),
        format!("exec 3>/proc/$PPID/fd/2; {script}"),
    ]
}

#[test]
fn a_console_flood_stays_under_the_cap() {
    let harness = capped();
    let inc = harness.start();
    inc.create("noisy", true);
    // 2 MB, as fast as the pipe takes it: thirty times the cap.
    let argv =
        console_writer("yes flood-line-0123456789 | head -c 2000000 >&3; echo last-words >&3");
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    inc.exec_stdout("noisy", &argv);
    wait_for("the last words on the console", || {
        console_bytes(&inc, "noisy").1.contains("last-words")
    });
    let (bytes, text) = console_bytes(&inc, "noisy");
    assert!(
        bytes <= CAP,
        "console logs hold {bytes} bytes, over the {CAP}-byte cap"
    );
    assert!(bytes > CAP / 4, "the cap kept too little: {bytes} bytes");
    assert!(text.contains("flood-line-0123456789"));
}

#[test]
fn logs_stream_the_end_and_follow_across_rotations() {
    let harness = capped();
    let inc = harness.start();
    let vm = inc.create("chatty", true);
    // Numbered lines of 40 bytes, 80 KB in all: the 64 KiB log rotates a few times.
    let argv = console_writer(
        "i=0; while [ $i -lt 2000 ]; do echo \"line $i ....:....1....:....2....:....3\" >&3; i=$((i+1)); sleep 0.001; done",
    );
    let daemon = inc.daemon.clone();
    let writer = inc.rt.spawn(async move {
        let vm = super::lookup(&daemon, "chatty").expect("lookup");
        let client = super::client_for(&daemon, &vm).await.expect("agent");
        client
            .exec(banger_agent_client::ExecRequest::new(argv))
            .await
            .expect("exec")
            .wait_with_output()
            .await
            .expect("output")
    });
    // Follow while it writes, until the VM stops.
    let followed = inc.block_on(async {
        let mut chunks = super::logs::stream(&inc.daemon, "chatty", true, None).expect("logs");
        let mut text = Vec::new();
        let started = Instant::now();
        while let Some(chunk) = chunks.recv().await {
            text.extend_from_slice(&chunk.expect("chunk"));
            if String::from_utf8_lossy(&text).contains("line 1999 ") {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "follow never caught up"
            );
        }
        String::from_utf8_lossy(&text).into_owned()
    });
    inc.block_on(writer).expect("join");
    let numbers: Vec<u32> = followed
        .lines()
        .filter_map(|l| l.strip_prefix("line ")?.split(' ').next()?.parse().ok())
        .collect();
    let first = *numbers.first().expect("some lines");
    let expected: Vec<u32> = (first..=1999).collect();
    assert_eq!(
        numbers, expected,
        "lines were lost or repeated while following"
    );
    assert!(
        size(&banger_system::rotate::rotated_path(&vm_log(&vm.dir))) > 0,
        "no rotation happened"
    );

    // Not following: at most the cap, ending with the last line.
    let whole = inc.block_on(async {
        let mut chunks = super::logs::stream(&inc.daemon, "chatty", false, None).expect("logs");
        let mut whole = Vec::new();
        while let Some(chunk) = chunks.recv().await {
            whole.extend_from_slice(&chunk.expect("chunk"));
        }
        whole
    });
    assert!(whole.len() as u64 <= CAP);
    assert!(String::from_utf8_lossy(&whole).ends_with("....3\n"));
    assert!(String::from_utf8_lossy(&whole).contains("line 1999 "));
}

fn vm_log(dir: &str) -> std::path::PathBuf {
    Path::new(dir).join(CONSOLE_LOG)
}
