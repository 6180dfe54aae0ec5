//! Terminals, end to end: `banger exec -it` on a real pseudo-terminal against a real
//! guest — it returns the moment the shell exits without eating the next key, puts the
//! terminal back on every way out, forwards window resizes; and guest console output
//! with escape sequences comes out of `vm logs` on a terminal as visible, inert text.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use banger_e2e::pty::Pty;
use banger_e2e::{Env, stderr, stdout};
use nix::sys::termios::{LocalFlags, Termios};

/// Generous: guests run under TCG emulation on a shared machine.
const GUEST: Duration = Duration::from_secs(90);

fn env_with_vm(name: &str) -> Env {
    let env = Env::new().unwrap_or_else(|e| panic!("cannot set up an e2e environment: {e:#}"));
    env.ok(["vm", "run", "-d", "--name", name]);
    env
}

fn same_settings(a: &Termios, b: &Termios) -> bool {
    a.input_flags == b.input_flags
        && a.output_flags == b.output_flags
        && a.local_flags == b.local_flags
        && a.control_flags == b.control_flags
}

#[test]
fn an_interactive_shell_returns_at_exit_resizes_and_restores_the_terminal() {
    let env = env_with_vm("tty");
    let mut pty = Pty::spawn(env.cmd(["exec", "-it", "tty", "sh"]), 30, 100).unwrap();
    let before = pty.termios().unwrap();

    // The guest's terminal has the local window's size, and follows it when it changes.
    // (`MA''RK` is echoed as typed but printed as MARK only when the command runs.)
    pty.write(b"stty size; echo MA''RK1\r").unwrap();
    let at = pty.expect("MARK1", 0, GUEST).unwrap();
    assert!(
        String::from_utf8_lossy(&pty.output).contains("30 100"),
        "{}",
        String::from_utf8_lossy(&pty.output)
    );
    // While the shell runs, the local terminal is raw: the guest does the echo.
    let raw = pty.termios().unwrap();
    assert!(
        !raw.local_flags
            .contains(LocalFlags::ICANON | LocalFlags::ECHO)
    );

    pty.resize(40, 120).unwrap();
    // SIGWINCH is asynchronous: ask until the guest reports the new size.
    let mut seen = false;
    for i in 0..20 {
        pty.write(format!("stty size; echo SIZE''{i}\r").as_bytes())
            .unwrap();
        let end = pty.expect(&format!("SIZE{i}"), at, GUEST).unwrap();
        if String::from_utf8_lossy(&pty.output[at..end]).contains("40 120") {
            seen = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        seen,
        "the guest never saw 40x120:\n{}",
        String::from_utf8_lossy(&pty.output)
    );

    // `exit` ends banger at once: no further key is needed, and none is swallowed.
    pty.write(b"exit 3\r").unwrap();
    let status = pty.wait(GUEST).unwrap();
    assert_eq!(
        status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&pty.output)
    );
    assert!(
        same_settings(&pty.termios().unwrap(), &before),
        "terminal settings were not restored"
    );
    pty.write(b"next command\n").unwrap();
    let queued = pty.pending_input(Duration::from_secs(5)).unwrap();
    assert_eq!(
        queued, b"next command\n",
        "the key after exit went to banger"
    );

    // Piped input works with -i (and -t is refused for a pipe).
    let out = env.run_with_stdin(
        ["exec", "-i", "tty", "--", "sh"],
        b"echo from-a-pipe\nexit 4\n",
    );
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert_eq!(stdout(&out), "from-a-pipe\n");
    let out = env.run_with_stdin(["exec", "-it", "tty", "--", "sh"], b"echo x\n");
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("the input device is not a TTY"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_terminal_is_restored_when_banger_is_signalled_or_the_daemon_dies() {
    let env = env_with_vm("sig");

    // Two SIGTERMs (the first is forwarded; an interactive sh ignores it): banger gives up.
    let mut pty = Pty::spawn(env.cmd(["exec", "-it", "sig", "sh"]), 24, 80).unwrap();
    let before = pty.termios().unwrap();
    pty.write(b"echo REA''DY\r").unwrap();
    pty.expect("READY", 0, GUEST).unwrap();
    for _ in 0..2 {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pty.pid()),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(300));
    }
    let status = pty.wait(Duration::from_secs(30)).unwrap();
    assert_eq!(status.code(), Some(128 + libc::SIGTERM));
    assert!(same_settings(&pty.termios().unwrap(), &before));

    // The daemon killed mid-session: banger reports it (125) and restores the terminal.
    let mut pty = Pty::spawn(env.cmd(["exec", "-it", "sig", "sh"]), 24, 80).unwrap();
    pty.write(b"echo REA''DY\r").unwrap();
    pty.expect("READY", 0, GUEST).unwrap();
    let daemon = env.daemon_pid().expect("the daemon's pid file");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let status = pty.wait(Duration::from_secs(30)).unwrap();
    assert_eq!(
        status.code(),
        Some(125),
        "{}",
        String::from_utf8_lossy(&pty.output)
    );
    assert!(same_settings(&pty.termios().unwrap(), &before));
    assert!(String::from_utf8_lossy(&pty.output).contains("error"));
}

#[test]
fn escape_sequences_from_the_guest_console_are_inert_in_vm_logs() {
    let env = env_with_vm("esc");
    // A title change, a screen clear, a DCS query the terminal would answer, colour,
    // a C1 CSI, written by root in the guest to its serial console.
    let evil = r#"printf '\033]0;pwned\007\033[2J\033P$q"p\033\\\033[31mRED\033[0m\302\233m END-OF-EVIL\n' > /dev/console"#;
    env.ok(["exec", "esc", "--", "sh", "-c", evil]);

    let mut pty = Pty::spawn(env.cmd(["logs", "esc"]), 24, 200).unwrap();
    let status = pty.wait(Duration::from_secs(60)).unwrap();
    assert!(status.success());
    let shown = pty.output.clone();
    let text = String::from_utf8_lossy(&shown);
    assert!(text.contains("END-OF-EVIL"), "{text}");
    assert!(
        !shown.contains(&0x1b) && !shown.contains(&0x07) && !text.contains('\u{9b}'),
        "raw control characters reached the terminal: {text:?}"
    );
    assert!(
        text.contains(r"\x1b]0;pwned\x07\x1b[2J") && text.contains(r"\u{9b}m"),
        "{text}"
    );

    // --raw passes them through, and so does a pipe (a file keeps the exact bytes).
    let mut raw = Pty::spawn(env.cmd(["logs", "--raw", "esc"]), 24, 200).unwrap();
    raw.wait(Duration::from_secs(60)).unwrap();
    assert!(raw.output.windows(9).any(|w| w == b"\x1b]0;pwned"));
    let piped = env.run(["vm", "logs", "esc"]);
    assert!(piped.stdout.windows(9).any(|w| w == b"\x1b]0;pwned"));
    // JSON escapes them as JSON does.
    let json = env.ok(["vm", "logs", "--json", "esc"]);
    assert!(json.contains(r"\u001b]0;pwned"), "{json}");
}
