//! `virtio-serial:NAME`: a virtio console port (QEMU's `virtserialport`).
//!
//! Measured behaviour of the port in the guest: reads return end-of-file at once while no
//! host is connected to the chardev, and writes block until one is. So a "connection" starts
//! with the first byte read and ends at the next end-of-file.

use std::fs::{File, OpenOptions};
use std::io::{self, Cursor, Read};
use std::path::PathBuf;
use std::thread;

use super::{Conn, DEVICE_POLL, Listener};

pub struct SerialPort {
    file: File,
    path: PathBuf,
}

impl SerialPort {
    /// The port named `name`, opened, if it exists yet. There is no udev in the minimal
    /// image, so the name comes from sysfs and the node from devtmpfs.
    pub fn find(name: &str) -> io::Result<Option<SerialPort>> {
        let Ok(entries) = std::fs::read_dir("/sys/class/virtio-ports") else {
            return Ok(None);
        };
        for entry in entries.flatten() {
            let port_name = std::fs::read_to_string(entry.path().join("name")).unwrap_or_default();
            if port_name.trim() != name {
                continue;
            }
            let path = PathBuf::from("/dev").join(entry.file_name());
            return match OpenOptions::new().read(true).write(true).open(&path) {
                Ok(file) => Ok(Some(SerialPort { file, path })),
                // The sysfs entry can appear before devtmpfs has made the node.
                Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(err) => Err(io::Error::new(
                    err.kind(),
                    format!("cannot open virtio-serial port {}: {err}", path.display()),
                )),
            };
        }
        Ok(None)
    }
}

impl Listener for SerialPort {
    fn accept(&mut self) -> io::Result<Conn> {
        let mut first = vec![0u8; 64 * 1024];
        loop {
            match self.file.read(&mut first) {
                // No host: poll again shortly (the port offers nothing to block on).
                Ok(0) => thread::sleep(DEVICE_POLL),
                Ok(n) => {
                    first.truncate(n);
                    return Ok(Conn {
                        reader: Box::new(Cursor::new(first).chain(self.file.try_clone()?)),
                        writer: Box::new(self.file.try_clone()?),
                        closer: None,
                    });
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
    }

    fn describe(&self) -> String {
        format!("virtio-serial {}", self.path.display())
    }
}
