//! Transports: how the agent meets a host. A transport hands out connections one at a time;
//! each connection is one session (a virtio-serial port's "connection" lasts from the first
//! byte a host sends to the end-of-file the port returns when the host goes away).

mod serial;
mod unix;
mod vsock;

use std::io::{self, Read, Write};
use std::thread;
use std::time::{Duration, Instant};

use crate::cli::{DEFAULT_PORT_NAME, DEFAULT_VSOCK_PORT, TransportSpec};
use crate::log;

/// One host connection.
pub struct Conn {
    pub reader: Box<dyn Read + Send>,
    pub writer: Box<dyn Write + Send>,
    /// Ends the connection for the peer (and fails writers blocked on it) without the frame
    /// writer's lock; `None` where the transport has nothing to close (virtio-serial).
    pub closer: Option<Box<dyn FnOnce() + Send>>,
}

/// A source of host connections.
pub trait Listener: Send {
    /// Blocks until a host connects.
    fn accept(&mut self) -> io::Result<Conn>;
    /// What this listener serves, for logs.
    fn describe(&self) -> String;
}

/// How long to sleep between looks for a device that is not there yet. Devices appear
/// asynchronously after their modules load and there is no udev to tell us.
pub(crate) const DEVICE_POLL: Duration = Duration::from_millis(5);

/// With a virtio console device but no port named `agent` yet, how long auto mode waits
/// for the port before settling for vsock (when the VM has a vsock device too).
const AUTO_PREFER_SERIAL_FOR: Duration = Duration::from_secs(2);

/// Opens the transport `spec` names, waiting for its device when it is not there yet.
pub fn open(spec: &TransportSpec) -> io::Result<Box<dyn Listener>> {
    match spec {
        TransportSpec::Auto => open_auto(),
        TransportSpec::VirtioSerial(name) => {
            let mut logged = false;
            loop {
                if let Some(port) = serial::SerialPort::find(name)? {
                    return Ok(Box::new(port));
                }
                if !logged {
                    log!("waiting for virtio-serial port {name:?}");
                    logged = true;
                }
                thread::sleep(DEVICE_POLL);
            }
        }
        TransportSpec::Vsock(port) => Ok(Box::new(vsock::VsockListener::bind_waiting(*port)?)),
        TransportSpec::Unix(path) => Ok(Box::new(unix::UnixSocketListener::bind(path)?)),
    }
}

fn open_auto() -> io::Result<Box<dyn Listener>> {
    let started = Instant::now();
    let mut logged = false;
    loop {
        if let Some(port) = serial::SerialPort::find(DEFAULT_PORT_NAME)? {
            return Ok(Box::new(port));
        }
        let devices = virtio_device_ids();
        let has_vsock = devices.contains(&VIRTIO_ID_VSOCK);
        let has_console = devices.contains(&VIRTIO_ID_CONSOLE);
        if has_vsock && (!has_console || started.elapsed() > AUTO_PREFER_SERIAL_FOR) {
            return Ok(Box::new(vsock::VsockListener::bind_waiting(
                DEFAULT_VSOCK_PORT,
            )?));
        }
        if !logged {
            log!(
                "waiting for a transport: virtio-serial port {DEFAULT_PORT_NAME:?} or a vsock device"
            );
            logged = true;
        }
        thread::sleep(DEVICE_POLL);
    }
}

const VIRTIO_ID_CONSOLE: u32 = 3;
const VIRTIO_ID_VSOCK: u32 = 19;

/// Device type ids of the VM's virtio devices (`/sys/bus/virtio/devices/*/device`).
fn virtio_device_ids() -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/sys/bus/virtio/devices") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| std::fs::read_to_string(entry.path().join("device")).ok())
        .filter_map(|id| u32::from_str_radix(id.trim().trim_start_matches("0x"), 16).ok())
        .collect()
}
