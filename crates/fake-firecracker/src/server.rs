//! The process: the API server loop, the end of the process when the guest powers off, and
//! cleanup when Firecracker is told to die.

use std::io::BufReader;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use crate::api;
use crate::http::{self, ReadError, Response};
use crate::vmm::Vmm;

/// The one VMM of this process (shared with the guest threads' exit path).
static VMM: OnceLock<Arc<Mutex<Vmm>>> = OnceLock::new();

pub fn install(vmm: Vmm) -> Arc<Mutex<Vmm>> {
    let vmm = Arc::new(Mutex::new(vmm));
    let _ = VMM.set(vmm.clone());
    vmm
}

fn lock(vmm: &Mutex<Vmm>) -> std::sync::MutexGuard<'_, Vmm> {
    vmm.lock().unwrap_or_else(|p| p.into_inner())
}

/// Serve the API until the process ends. Connections are served concurrently but requests
/// one at a time (the VMM lock), like Firecracker's single API thread.
pub fn serve(listener: UnixListener, vmm: Arc<Mutex<Vmm>>, max_payload: usize) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let vmm = vmm.clone();
        std::thread::spawn(move || connection(stream, &vmm, max_payload));
    }
}

fn connection(stream: UnixStream, vmm: &Mutex<Vmm>, max_payload: usize) {
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let request = match http::read_request(&mut reader, max_payload) {
            Ok(request) => request,
            Err(ReadError::Closed) | Err(ReadError::Io(_)) => return,
            Err(ReadError::Http(message)) => {
                let _ = http::write_response(&mut out, &Response::transport_error(&message));
                return;
            }
        };
        // The answer is written under the lock: a guest that powers off in reaction (as
        // after `SendCtrlAltDel`) ends the process only once the answer is out, as
        // Firecracker answers before its guest reacts.
        let (written, exit) = {
            let mut vmm = lock(vmm);
            let response = api::handle(&mut vmm, &request);
            let written = http::write_response(&mut out, &response).is_ok();
            (written, vmm.exit_after_response)
        };
        if !written {
            return;
        }
        if let Some(code) = exit {
            shutdown(code);
        }
    }
}

/// The guest's agent exited: the guest powered off or rebooted, and with `reboot=k`
/// Firecracker exits.
pub fn guest_exited(agent_status: Option<i32>) {
    if let Some(vmm) = VMM.get() {
        let mut vmm = lock(vmm);
        vmm.log.line(
            "fc_vcpu 0",
            &format!("Guest rebooted or powered off (agent exit status {agent_status:?})"),
        );
        vmm.log.line("main", "Vmm is stopping.");
    }
    shutdown(0);
}

/// Kill the guest, remove its scratch directory, log and exit.
pub fn shutdown(code: i32) -> ! {
    if let Some(vmm) = VMM.get() {
        let mut vmm = lock(vmm);
        cleanup(&mut vmm);
        vmm.log.line(
            "main",
            &format!("Firecracker exiting successfully. exit_code={code}"),
        );
    }
    std::process::exit(code)
}

fn cleanup(vmm: &mut Vmm) {
    if let Some(guest) = &vmm.guest {
        guest.destroy();
    }
    let _ = std::fs::remove_dir_all(&vmm.guest_dir);
}

/// SIGTERM, SIGINT and SIGHUP kill Firecracker outright; the fake takes its guest with it
/// first, so no "guest" process outlives the "VM". Call before any other thread starts, so
/// every thread inherits the blocked mask.
pub fn handle_fatal_signals() -> std::io::Result<()> {
    let set = fatal_set();
    // SAFETY: `set` is a valid, initialised sigset_t; the old mask is not wanted.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(std::io::Error::from_raw_os_error(rc));
    }
    std::thread::spawn(move || {
        let mut signo = 0;
        // SAFETY: `set` and `signo` are valid for the call.
        while unsafe { libc::sigwait(&set, &mut signo) } != 0 {}
        if let Some(vmm) = VMM.get() {
            cleanup(&mut lock(vmm));
        }
        // Die by the signal, as the real Firecracker does.
        // SAFETY: resetting a disposition to SIG_DFL installs no handler code; unblocking
        // and raising then terminates the process with that signal.
        unsafe {
            libc::signal(signo, libc::SIG_DFL);
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
            libc::raise(signo);
        }
    });
    Ok(())
}

fn fatal_set() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data, initialised by sigemptyset before use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t and the signal numbers are valid.
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGHUP);
    }
    set
}

/// Where the guest's scratch directory goes: beside the API socket.
pub fn guest_dir_for(api_sock: &std::path::Path) -> PathBuf {
    api_sock
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."))
        .join("fake-guest")
}
