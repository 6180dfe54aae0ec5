//! `vsock:PORT`: an AF_VSOCK listener (Firecracker's hybrid vsock on the host side).

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::thread;

use super::{Conn, DEVICE_POLL, Listener};
use crate::log;
use crate::util::check;

pub struct VsockListener {
    fd: OwnedFd,
    port: u32,
}

impl VsockListener {
    /// Listens on `port`, waiting while the kernel has no vsock support loaded yet.
    pub fn bind_waiting(port: u32) -> io::Result<VsockListener> {
        let mut logged = false;
        loop {
            match VsockListener::bind(port) {
                Ok(listener) => return Ok(listener),
                Err(err) if err.raw_os_error() == Some(libc::EAFNOSUPPORT) => {
                    if !logged {
                        log!("waiting for vsock support (is the vsock module loaded?)");
                        logged = true;
                    }
                    thread::sleep(DEVICE_POLL);
                }
                Err(err) => {
                    return Err(io::Error::new(
                        err.kind(),
                        format!("cannot listen on vsock port {port}: {err}"),
                    ));
                }
            }
        }
    }

    fn bind(port: u32) -> io::Result<VsockListener> {
        // SAFETY: socket has no memory effects; the result is checked below.
        let raw = check(unsafe {
            libc::socket(libc::AF_VSOCK, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0)
        })?;
        // SAFETY: `raw` is a fresh socket fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: sockaddr_vm is plain old data; all-zero is a valid starting value.
        let mut addr: libc::sockaddr_vm = unsafe { std::mem::zeroed() };
        addr.svm_family = libc::AF_VSOCK as libc::sa_family_t;
        addr.svm_port = port;
        addr.svm_cid = libc::VMADDR_CID_ANY;
        let len = std::mem::size_of::<libc::sockaddr_vm>() as libc::socklen_t;
        // SAFETY: `addr` is a valid sockaddr_vm of `len` bytes.
        check(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const addr).cast::<libc::sockaddr>(),
                len,
            )
        })?;
        // SAFETY: listen on a bound socket we own.
        check(unsafe { libc::listen(fd.as_raw_fd(), 4) })?;
        Ok(VsockListener { fd, port })
    }
}

impl Listener for VsockListener {
    fn accept(&mut self) -> io::Result<Conn> {
        loop {
            // SAFETY: accept4 with null address pointers only returns a new fd.
            let ret = unsafe {
                libc::accept4(
                    self.fd.as_raw_fd(),
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    libc::SOCK_CLOEXEC,
                )
            };
            match check(ret) {
                Ok(raw) => {
                    // SAFETY: `raw` is a fresh connected socket fd that nothing else owns.
                    let file = File::from(unsafe { OwnedFd::from_raw_fd(raw) });
                    let closer = file.try_clone()?;
                    return Ok(Conn {
                        reader: Box::new(file.try_clone()?),
                        writer: Box::new(file),
                        closer: Some(Box::new(move || {
                            // SAFETY: shutdown on a socket fd we own has no memory effects.
                            unsafe { libc::shutdown(closer.as_raw_fd(), libc::SHUT_RDWR) };
                        })),
                    });
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
    }

    fn describe(&self) -> String {
        format!("vsock:{}", self.port)
    }
}
