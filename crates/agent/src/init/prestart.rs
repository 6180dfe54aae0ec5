//! Pre-started servers for the host's tunnel (`NAME listen=tcp:PORT prestart PROGRAM…` in
//! the services file): one instance of PROGRAM kept started and loaded, its stdin and
//! stdout pipes held by PID 1, waiting for the next tunnel the host opens to PORT
//! (`banger ssh-proxy`, the ProxyCommand of `ssh NAME.vm`). That exec adopts it ([`take`])
//! instead of running the `connect` tool, and a fresh instance is started behind it.
//!
//! Why: `sshd -i` per connection pays sshd's start (~28 shared libraries loaded and
//! relocated, its config and host key read) before it can send its banner; under
//! emulation that is a good part of `ssh NAME.vm true`. Started ahead, that cost runs
//! while the host is still starting its ssh client. The tunnel also skips the `connect`
//! tool and the loopback TCP hop: the agent's pumps move the bytes straight to sshd.
//!
//! What stays as it was: sshd's own per-connection privilege separation and its checks
//! (each instance serves exactly one connection, as with inetd); the TCP listener on PORT
//! (connections over the network still get a per-connection sshd that sees the peer's
//! real address). sshd sees the tunnel as a pipe, so it logs the peer as `UNKNOWN`, as it
//! does under any ProxyCommand-style `sshd -i`: the tunnel's peer was always 127.0.0.1.
//!
//! Lifetime: an instance that exits while waiting (sshd's `LoginGraceTime` ends an
//! unused `sshd -i`) is replaced; one that dies quickly backs off (a missing program
//! or key fails closed: no instance, so the tunnel falls back to the listener, which
//! fails the same way). When the guest becomes another machine (a restored clone is
//! re-identified: new host keys) the waiting instance, which loaded the old key, is
//! killed and replaced ([`renew_all`]).
//!
//! When and how hard: nothing is started before the agent has told the host it is ready
//! ([`release`]): the host's own start of its client runs in parallel. A waiting instance
//! runs at `SCHED_IDLE`, so loading it only takes CPU time nothing else in the guest wants:
//! the first one yields to the host's SSH setup right after boot, and the one started
//! behind an adopted instance never competes with the session the user is opening (at
//! the same priority it halved that session's speed while both loaded). The tunnel that
//! adopts one raises it to the normal policy first ([`take`]); sshd's session processes
//! inherit that. Starting the first one before Ready at idle priority was measured and
//! not kept: under emulation a guest's idle vCPU is host CPU the rest of the boot needs
//! (QEMU's I/O thread, the daemon); agent-ready came ~0.5 s later in one comparison on a
//! loaded host and the first `ssh` gained nothing reliable in others (docs/networking.md).

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use banger_agent_proto::tools;

use super::services::{Dirs, Service, command, prepare};
use crate::exec::{self, Spawned};
use crate::log;
use crate::util::lock;

/// An instance that lived at least this long is replaced at once; a quicker death doubles
/// the back-off, up to [`MAX_BACKOFF`].
const HEALTHY_RUN: Duration = Duration::from_secs(3);
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How often a waiting instance is checked for having exited.
const POLL: Duration = Duration::from_millis(500);
/// Start anyway this long after the first service registered if the host never greets.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(10);

/// One port's slot: the waiting instance, if any.
#[derive(Default)]
struct Slot {
    waiting: Option<Spawned>,
    /// Bumped by [`renew_all`]: the manager drops what it started before.
    generation: u64,
}

struct Prestart {
    slots: Mutex<HashMap<u16, Slot>>,
    changed: Condvar,
    released: Mutex<bool>,
    release: Condvar,
}

fn state() -> &'static Prestart {
    static STATE: OnceLock<Prestart> = OnceLock::new();
    STATE.get_or_init(|| Prestart {
        slots: Mutex::new(HashMap::new()),
        changed: Condvar::new(),
        released: Mutex::new(false),
        release: Condvar::new(),
    })
}

/// Keep an instance of `service` ready for tunnels to `port`, from a thread of its own.
pub fn start(service: Service, port: u16, dirs: Dirs) -> std::io::Result<()> {
    lock(&state().slots).entry(port).or_default();
    thread::Builder::new()
        .name(format!("pre-{}", service.name))
        .stack_size(64 * 1024)
        .spawn(move || manage(&service, port, &dirs))
        .map(drop)
}

/// The agent has answered the host's greeting: pre-started servers may start now.
pub fn release() {
    let st = state();
    *lock(&st.released) = true;
    st.release.notify_all();
}

/// The waiting instance for a tunnel to `port`, when `argv` is the `connect` tool for a
/// port with one ready. The caller owns it from here (as if it had spawned it).
pub fn take(argv: &[String]) -> Option<Spawned> {
    let port = connect_port(argv)?;
    let st = state();
    let taken = lock(&st.slots).get_mut(&port)?.waiting.take()?;
    st.changed.notify_all();
    // One that exited since its manager last looked is no server: the tunnel falls back.
    if taken.entry.status().is_some() {
        return None;
    }
    // From here it serves a user: the normal policy, for it and the session it forks.
    if let Err(e) = set_policy(taken.entry.pid, libc::SCHED_OTHER) {
        log!(
            "cannot raise the pre-started server (pid {}) to the normal scheduling policy: {e}",
            taken.entry.pid
        );
    }
    Some(taken)
}

/// Set the scheduling policy of process `pid` (0: the caller) to `policy`.
fn set_policy(pid: i32, policy: libc::c_int) -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_setscheduler reads the sched_param through the pointer, which points
    // at a live local for the duration of the call; no other memory is touched.
    let ret = unsafe { libc::sched_setscheduler(pid, policy, &param) };
    if ret == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The port `argv` (the `connect` tool's exact command line) tunnels to.
fn connect_port(argv: &[String]) -> Option<u16> {
    let [_, _, port] = argv else { return None };
    let port: u16 = port.parse().ok().filter(|&p| p != 0)?;
    (*argv == tools::connect_argv(port)).then_some(port)
}

/// Kill every waiting instance (they loaded this machine's former identity) and start
/// new ones.
pub fn renew_all() {
    let st = state();
    let mut slots = lock(&st.slots);
    for slot in slots.values_mut() {
        slot.generation += 1;
        if let Some(old) = slot.waiting.take() {
            let _ = exec::kill_group(old.entry.pid, libc::SIGKILL);
        }
    }
    st.changed.notify_all();
}

fn wait_released() {
    let st = state();
    let released = lock(&st.released);
    let _released = st
        .release
        .wait_timeout_while(released, RELEASE_TIMEOUT, |r| !*r);
}

fn manage(service: &Service, port: u16, dirs: &Dirs) -> ! {
    wait_released();
    let st = state();
    let mut backoff = FIRST_BACKOFF;
    loop {
        let started = Instant::now();
        let generation = lock(&st.slots).get(&port).map_or(0, |s| s.generation);
        match spawn(service, dirs) {
            Ok(spawned) => {
                let pid = spawned.entry.pid;
                let entry = Arc::clone(&spawned.entry);
                let mut slots = lock(&st.slots);
                let slot = slots.entry(port).or_default();
                if slot.generation != generation {
                    // Renewed while it was starting: it may have read the old identity.
                    let _ = exec::kill_group(pid, libc::SIGKILL);
                    continue;
                }
                slot.waiting = Some(spawned);
                // Wait until it is taken, exits, or is renewed.
                loop {
                    let (guard, _) = st
                        .changed
                        .wait_timeout(slots, POLL)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    slots = guard;
                    let slot = slots.entry(port).or_default();
                    if slot.waiting.is_none() {
                        break; // Taken by a tunnel, or killed by renew_all.
                    }
                    if entry.status().is_some() {
                        slot.waiting = None;
                        break;
                    }
                }
                // Taken or renewed: replace at once. Exited unused after a while (sshd's
                // LoginGraceTime, every 2 minutes by default): the same, quietly. Exited
                // quickly: it cannot start; say so and back off.
                if entry.status().is_none() || started.elapsed() >= HEALTHY_RUN {
                    backoff = FIRST_BACKOFF;
                    continue;
                }
                log!(
                    "service {}: the pre-started {} (pid {pid}) exited within {} s; next try in {} ms (see /var/log/banger/{}.log)",
                    service.name,
                    service.argv[0],
                    HEALTHY_RUN.as_secs(),
                    backoff.as_millis(),
                    service.name
                );
            }
            Err(e) => log!(
                "service {}: cannot pre-start {}: {e}",
                service.name,
                service.argv[0]
            ),
        }
        thread::sleep(backoff);
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Start the program at `SCHED_IDLE` with pipes for stdin and stdout (the tunnel's ends)
/// and its log as stderr, registered in the exec table so the reaper records its exit.
fn spawn(service: &Service, dirs: &Dirs) -> std::io::Result<Spawned> {
    let log = prepare(service, dirs)?;
    let mut command = command(service);
    idle(&mut command);
    exec::spawn_piped(command, log, exec::table())
}

/// `command` starts at `SCHED_IDLE`, before it execs: it loads only in idle CPU time.
fn idle(command: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the hook runs in the child between fork and exec, where only
    // async-signal-safe calls are allowed: sched_setscheduler is a plain system call, and
    // set_policy allocates nothing on its success path (its error is built from errno).
    unsafe {
        command.pre_exec(|| set_policy(0, libc::SCHED_IDLE));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_connect_command_line_is_a_tunnel() {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(connect_port(&tools::connect_argv(22)), Some(22));
        assert_eq!(connect_port(&tools::connect_argv(2222)), Some(2222));
        let connect = tools::connect_argv(22);
        let mut other_program = connect.clone();
        other_program[0] = "/bin/sh".into();
        assert_eq!(connect_port(&other_program), None);
        assert_eq!(connect_port(&s(&[&connect[0], "tar-out", "22"])), None);
        assert_eq!(connect_port(&s(&[&connect[0], "connect", "022"])), None);
        assert_eq!(connect_port(&s(&[&connect[0], "connect", "0"])), None);
        assert_eq!(connect_port(&s(&[&connect[0], "connect"])), None);
    }

    /// A waiting instance runs at SCHED_IDLE from its first instruction, and raising it
    /// gives it the normal policy.
    #[test]
    fn a_waiting_instance_is_idle_until_raised() {
        let mut command = std::process::Command::new("sleep");
        command.arg("30");
        idle(&mut command);
        let mut child = command.spawn().unwrap();
        let pid = child.id() as i32;
        // SAFETY: sched_getscheduler only reads the policy of `pid`.
        let policy = || unsafe { libc::sched_getscheduler(pid) };
        assert_eq!(policy(), libc::SCHED_IDLE);
        set_policy(pid, libc::SCHED_OTHER).unwrap();
        assert_eq!(policy(), libc::SCHED_OTHER);
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
