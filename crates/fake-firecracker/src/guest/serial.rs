//! The guest's serial port, as Firecracker wires it (its source, `devices/legacy/serial.rs`
//! and the device manager's `setup_serial_device`, 1.13+):
//! * with `serial_out_path` (notes: "`PUT /serial {serial_out_path}` (1.13+)"), the path is
//!   opened by `open_file_write_nonblock`: `O_WRONLY | O_CREAT | O_NONBLOCK`, no `O_APPEND`,
//!   no `O_TRUNC` — so a named pipe without a reader fails the open with `ENXIO`, and the
//!   serial has no input;
//! * without it, the serial writes to stdout, which Firecracker first sets `O_NONBLOCK`
//!   (`set_stdout_nonblocking`), and reads stdin;
//! * the UART is written a byte at a time from the vCPU thread; a byte the output does not
//!   take (`EAGAIN` on a full pipe, `EPIPE` without a reader) is lost, counted, and logged
//!   as `Failed the write to serial: …` — one log line per lost byte. The guest never waits.
//!
//! The simulated guest has a `ttyS0` in its directory: a named pipe whose bytes reach the
//! serial at an emulated UART's pace (issue 14 measured ~1.1 MB/s of raw port writes), so a
//! test can flood the console as `yes >/dev/ttyS0` would.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::vmm::FcLog;

/// The UART's throughput: bytes per second the guest can push through port writes.
const UART_BYTES_PER_SEC: u64 = 1 << 20;

/// Where the guest's serial console goes.
#[derive(Debug, Clone)]
pub enum Console {
    /// Firecracker's stdout (the default).
    Stdout,
    /// `serial_out_path`.
    File(PathBuf),
}

/// The serial port's output side.
pub struct Serial {
    out: Box<dyn Write + Send>,
    log: FcLog,
}

pub type SerialPort = Arc<Mutex<Serial>>;

impl Serial {
    pub fn open(console: &Console, log: FcLog) -> Result<SerialPort, String> {
        let out: Box<dyn Write + Send> = match console {
            Console::Stdout => {
                set_nonblocking(libc::STDOUT_FILENO);
                Box::new(std::io::stdout())
            }
            Console::File(path) => Box::new(
                OpenOptions::new()
                    .write(true)
                    .create(true)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(path)
                    .map_err(|e| format!("cannot open serial_out_path {}: {e}", path.display()))?,
            ),
        };
        Ok(Arc::new(Mutex::new(Serial { out, log })))
    }

    /// The guest writes `bytes` to its UART: what the output takes is written, the rest is
    /// lost with a log line per byte, as Firecracker does.
    pub fn write(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        while !rest.is_empty() {
            match self.out.write(rest) {
                Ok(0) => break,
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let line = format!("Failed the write to serial: IOError({e:?})");
                    for _ in 0..rest.len() {
                        self.log.line("fc_vcpu 0", &line);
                    }
                    return;
                }
            }
        }
        let _ = self.out.flush();
    }

    pub fn line(&mut self, text: &str) {
        let mut bytes = text.as_bytes().to_vec();
        bytes.push(b'\n');
        self.write(&bytes);
    }
}

fn set_nonblocking(fd: libc::c_int) {
    // SAFETY: fcntl(2) on a descriptor this process owns, with integer arguments only.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL, 0);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
    }
}

/// Create the guest's `ttyS0` pipe in `dir` and relay what is written into it to `port` at
/// the UART's pace, for as long as the process lives.
pub fn relay_tty(dir: &Path, port: SerialPort) -> Result<(), String> {
    let path = dir.join("ttyS0");
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| format!("{} holds a NUL byte", path.display()))?;
    // SAFETY: `c_path` is a valid NUL-terminated string that outlives the call.
    if unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) } == -1 {
        return Err(format!(
            "cannot create {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        ));
    }
    // Read-write: the open does not wait for a writer, and writers coming and going never
    // end the relay with an end-of-file.
    let mut tty: File = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    std::thread::Builder::new()
        .name("ttyS0".into())
        .spawn(move || {
            let mut buf = vec![0u8; 4096];
            while let Ok(n) = tty.read(&mut buf) {
                if n == 0 {
                    break;
                }
                port.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .write(&buf[..n]);
                // The UART's pace: the guest cannot write faster than its port I/O exits.
                std::thread::sleep(Duration::from_micros(
                    n as u64 * 1_000_000 / UART_BYTES_PER_SEC,
                ));
            }
        })
        .map_err(|e| format!("cannot start the ttyS0 thread: {e}"))?;
    Ok(())
}
