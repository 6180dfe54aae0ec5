//! `banger-junk SECONDS`: write junk into PID 1's agent port for SECONDS (see the crate's
//! documentation). Runs as root in a test guest.

use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use banger_agent_proto::{Exec, Kind, MAGIC, Message, encode_frame};

fn main() {
    let seconds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    // Whatever happens to the port (a write may block while no host listens), end on time.
    // SAFETY: alarm only arms a timer; SIGALRM's default action ends the process.
    unsafe { libc::alarm(u32::try_from(seconds).unwrap_or(u32::MAX)) };
    let port = match steal_agent_port() {
        Ok(port) => port,
        Err(e) => {
            eprintln!("banger-junk: {e}");
            std::process::exit(1);
        }
    };
    let mut port = std::fs::File::from(port);
    // Said first: the alarm ends the program without a goodbye if a write is blocked then.
    println!("banger-junk: writing junk into the agent's port for {seconds} s");
    let _ = std::io::stdout().flush();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut written = 0u64;
    let mut round = 0u64;
    while Instant::now() < deadline {
        let batch = junk(round);
        round += 1;
        match port.write_all(&batch) {
            Ok(()) => written += batch.len() as u64,
            Err(e) => {
                eprintln!("banger-junk: write failed after {written} bytes: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    println!("banger-junk: wrote {written} bytes in {seconds} s");
}

/// PID 1's file descriptor for `/dev/vport*`, duplicated into this process.
fn steal_agent_port() -> Result<OwnedFd, String> {
    let fds = std::fs::read_dir("/proc/1/fd").map_err(|e| format!("/proc/1/fd: {e}"))?;
    let target = fds
        .flatten()
        .find_map(|entry| {
            let link = std::fs::read_link(entry.path()).ok()?;
            link.to_str()?
                .starts_with("/dev/vport")
                .then(|| entry.file_name().to_str()?.parse::<i32>().ok())?
        })
        .ok_or("PID 1 has no /dev/vport* open (is the agent on virtio-serial?)")?;
    // SAFETY: pidfd_open(1, 0) returns a new fd or -1.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, 1, 0) };
    if pidfd < 0 {
        return Err(format!(
            "pidfd_open(1): {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: pidfd_getfd duplicates PID 1's fd `target` into this process (root may).
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd, target, 0) };
    if fd < 0 {
        return Err(format!("pidfd_getfd: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: `fd` is a new descriptor this process owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// One batch of junk, varied by `round`.
fn junk(round: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 * 1024);
    // Plain garbage, and garbage full of half magics.
    out.extend((0..4096u64).map(|i| (i.wrapping_mul(2_654_435_761) ^ round) as u8));
    for _ in 0..256 {
        out.extend_from_slice(&MAGIC[..3]);
    }
    // Headers announcing too much, or kinds that do not exist.
    for i in 0..64u32 {
        out.extend_from_slice(&MAGIC);
        out.push(if i % 2 == 0 { Kind::Stdout as u8 } else { 0x7f });
        out.extend_from_slice(&i.to_be_bytes());
        out.extend_from_slice(&u32::MAX.to_be_bytes());
    }
    // Well-formed frames the host must refuse or ignore.
    let exec = Message::Exec(Exec {
        argv: vec!["/bin/sh".into()],
        env: Default::default(),
        cwd: None,
        stdin: false,
        tty: None,
        user: None,
    });
    if let Ok(frame) = exec.encode(1) {
        out.extend(frame);
    }
    let forged = format!(
        "connection error\n2030-01-01T00:00:00Z  INFO banger_daemon: forged line {round}\n\x1b]0;pwned\x07\x1b[2J{}",
        "A".repeat(16 * 1024)
    );
    if let Ok(frame) = Message::error(forged).encode(0) {
        out.extend(frame);
    }
    let _ = encode_frame(
        Kind::Stdout,
        0xdead_0000 + (round as u32 % 4096),
        &[b'x'; 8192],
        &mut out,
    );
    out
}
