//! The ACPI power button: QEMU's `system_powerdown` (and a host's "press the power button")
//! reaches the guest as a `KEY_POWER` press on an evdev device (`/dev/input/eventN`, from the
//! `button` and `evdev` modules). With no acpid or logind in the image, PID 1 reads those
//! devices itself and powers off cleanly on a press.
//!
//! The devices are opened before the agent says Ready: evdev queues events only for open
//! clients, so a press that comes before the open is lost. Reading then happens on one thread
//! blocked in `poll()`.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use crate::log;

/// Where devtmpfs puts the evdev nodes.
pub const INPUT_DIR: &str = "/dev/input";

/// `EV_KEY` from `linux/input-event-codes.h`.
const EV_KEY: u16 = 1;
/// `KEY_POWER` from `linux/input-event-codes.h`.
const KEY_POWER: u16 = 116;
/// A key event's value: 0 release, 1 press, 2 autorepeat.
const KEY_PRESSED: i32 = 1;

/// `struct input_event`: a `struct timeval`, then `__u16 type`, `__u16 code`, `__s32 value`
/// (24 bytes on x86_64). The three fields are the last 8 bytes whatever the timeval's size.
const EVENT_SIZE: usize = std::mem::size_of::<libc::input_event>();
const TYPE_AT: usize = EVENT_SIZE - 8;

/// Events read per `read()`; evdev returns whole events only.
const READ_EVENTS: usize = 64;

/// How long to look for devices when none is there yet (the modules load synchronously before
/// this runs, so an empty `/dev/input` normally means a kernel without evdev).
const RESCAN_WINDOW: Duration = Duration::from_secs(5);
const RESCAN_FIRST_PAUSE: Duration = Duration::from_millis(10);
const RESCAN_MAX_PAUSE: Duration = Duration::from_millis(500);

/// One decoded input event (the timestamp is not needed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputEvent {
    pub kind: u16,
    pub code: u16,
    pub value: i32,
}

impl InputEvent {
    /// A press (not release or autorepeat) of the power key.
    pub fn is_power_press(&self) -> bool {
        self.kind == EV_KEY && self.code == KEY_POWER && self.value == KEY_PRESSED
    }
}

/// Decodes the whole events in `bytes` (native endianness, as the kernel writes them); a
/// trailing partial event is ignored.
pub fn parse_events(bytes: &[u8]) -> impl Iterator<Item = InputEvent> + '_ {
    bytes.chunks_exact(EVENT_SIZE).map(|event| {
        let field = &event[TYPE_AT..];
        InputEvent {
            kind: u16::from_ne_bytes([field[0], field[1]]),
            code: u16::from_ne_bytes([field[2], field[3]]),
            value: i32::from_ne_bytes([field[4], field[5], field[6], field[7]]),
        }
    })
}

/// Opens every `eventN` node in `dir`, sorted by name. Unopenable nodes are logged and
/// skipped; a missing directory yields nothing.
pub fn open_devices(dir: &Path) -> Vec<(PathBuf, File)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("event"))
        .map(|entry| entry.path())
        .collect();
    paths.sort();
    paths
        .into_iter()
        .filter_map(|path| {
            // Non-blocking: poll() says when to read, and a spurious wakeup must not hang the
            // thread in read(). std sets O_CLOEXEC, so execs do not inherit the fds.
            match OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&path)
            {
                Ok(file) => Some((path, file)),
                Err(err) => {
                    log!("opening input device {} failed: {err}", path.display());
                    None
                }
            }
        })
        .collect()
}

/// Opens the input devices now (so no press is lost from here on) and starts the thread that
/// calls `on_press` (which powers off) on a power-button press. If there is no device yet, the
/// thread looks again for a few seconds. Never blocks the caller for long: only a directory
/// scan and a few opens.
pub fn start(on_press: fn()) {
    let devices = open_devices(Path::new(INPUT_DIR));
    let spawned = thread::Builder::new()
        .name("power-button".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            let devices = if devices.is_empty() {
                rescan(Path::new(INPUT_DIR))
            } else {
                devices
            };
            if devices.is_empty() {
                log!(
                    "no input device appeared in {INPUT_DIR} within {RESCAN_WINDOW:?}; the ACPI \
                     power button will not power this guest off (is the evdev module loaded?)"
                );
                return;
            }
            watch(devices, || {
                log!("power button pressed");
                on_press()
            });
        });
    if let Err(err) = spawned {
        log!("cannot start the power-button thread: {err}; the ACPI power button is ignored");
    }
}

fn rescan(dir: &Path) -> Vec<(PathBuf, File)> {
    let started = Instant::now();
    let mut pause = RESCAN_FIRST_PAUSE;
    while started.elapsed() < RESCAN_WINDOW {
        thread::sleep(pause);
        let devices = open_devices(dir);
        if !devices.is_empty() {
            return devices;
        }
        pause = (pause * 2).min(RESCAN_MAX_PAUSE);
    }
    Vec::new()
}

/// Blocks in `poll()` on `devices` and calls `on_power` for every power-key press. Devices
/// that go away (hang-up, read errors) are dropped; returns when none is left.
pub fn watch(mut devices: Vec<(PathBuf, File)>, mut on_power: impl FnMut()) {
    let mut buf = vec![0u8; EVENT_SIZE * READ_EVENTS];
    while !devices.is_empty() {
        let mut fds: Vec<libc::pollfd> = devices
            .iter()
            .map(|(_, file)| libc::pollfd {
                fd: file.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let count = libc::nfds_t::try_from(fds.len()).unwrap_or(libc::nfds_t::MAX);
        // SAFETY: `fds` is a valid array of `count` pollfd structs, alive for the call; the fds
        // stay open because `devices` owns them.
        let ret = unsafe { libc::poll(fds.as_mut_ptr(), count, -1) };
        if ret < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            log!("polling the input devices failed: {err}; the ACPI power button is ignored");
            return;
        }
        let mut gone = Vec::new();
        for (index, pollfd) in fds.iter().enumerate() {
            if pollfd.revents == 0 {
                continue;
            }
            let (path, file) = &mut devices[index];
            if !drain(path, file, &mut buf, &mut on_power) {
                gone.push(index);
            }
        }
        for index in gone.into_iter().rev() {
            devices.remove(index);
        }
    }
}

/// Reads everything `file` has queued; false once the device is gone or broken.
fn drain(path: &Path, file: &mut File, buf: &mut [u8], on_power: &mut impl FnMut()) -> bool {
    loop {
        match file.read(buf) {
            // End of file: the writer (a device, or a test's pipe) is gone.
            Ok(0) => return false,
            Ok(n) => parse_events(&buf[..n])
                .filter(InputEvent::is_power_press)
                .for_each(|_| on_power()),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => return true,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => {
                // ENODEV: the device was unplugged.
                log!(
                    "reading input device {} failed: {err}; ignoring it",
                    path.display()
                );
                return false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    /// One `struct input_event` as the kernel lays it out on this target.
    fn event(kind: u16, code: u16, value: i32) -> Vec<u8> {
        let mut bytes = vec![0xAAu8; TYPE_AT]; // A timestamp: any bytes.
        bytes.extend_from_slice(&kind.to_ne_bytes());
        bytes.extend_from_slice(&code.to_ne_bytes());
        bytes.extend_from_slice(&value.to_ne_bytes());
        bytes
    }

    #[test]
    fn input_event_is_24_bytes_on_x86_64() {
        if cfg!(target_arch = "x86_64") {
            assert_eq!(EVENT_SIZE, 24);
            assert_eq!(TYPE_AT, 16);
        }
    }

    #[test]
    fn parses_the_events_of_a_power_button_press() {
        // What the ACPI button driver emits: press, sync, release, sync.
        let mut bytes = event(EV_KEY, KEY_POWER, 1);
        bytes.extend(event(0, 0, 0));
        bytes.extend(event(EV_KEY, KEY_POWER, 0));
        bytes.extend(event(0, 0, 0));
        let events: Vec<_> = parse_events(&bytes).collect();
        assert_eq!(events.len(), 4);
        assert_eq!(
            events[0],
            InputEvent {
                kind: 1,
                code: 116,
                value: 1
            }
        );
        let presses: Vec<bool> = events.iter().map(InputEvent::is_power_press).collect();
        assert_eq!(presses, [true, false, false, false]);
    }

    #[test]
    fn other_keys_releases_and_repeats_are_not_presses() {
        for (kind, code, value) in [
            (EV_KEY, KEY_POWER, 0),
            (EV_KEY, KEY_POWER, 2),
            (EV_KEY, 30, 1),   // KEY_A
            (4, KEY_POWER, 1), // EV_MSC with the same code number
            (0, 0, 0),
        ] {
            let bytes = event(kind, code, value);
            let parsed: Vec<_> = parse_events(&bytes).collect();
            assert_eq!(parsed.len(), 1);
            assert!(!parsed[0].is_power_press(), "{kind}/{code}/{value}");
        }
    }

    #[test]
    fn a_trailing_partial_event_is_ignored() {
        let mut bytes = event(EV_KEY, KEY_POWER, 1);
        bytes.extend_from_slice(&event(EV_KEY, KEY_POWER, 1)[..EVENT_SIZE - 1]);
        assert_eq!(parse_events(&bytes).count(), 1);
        assert_eq!(parse_events(&bytes[..EVENT_SIZE - 1]).count(), 0);
    }

    #[test]
    fn open_devices_takes_only_event_nodes_in_order() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["event1", "mouse0", "event0", "mice", "by-path"] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        let names: Vec<_> = open_devices(dir.path())
            .into_iter()
            .map(|(path, _)| path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["event0", "event1"]);
        assert!(open_devices(&dir.path().join("missing")).is_empty());
    }

    /// The poll loop over real fds: sockets stand in for evdev nodes (same read/poll
    /// semantics for whole events), and a hang-up ends the watch.
    #[test]
    fn watch_calls_back_once_per_press_across_devices_and_ends_on_hangup() {
        let (keyboard_host, keyboard) = UnixStream::pair().unwrap();
        let (button_host, button) = UnixStream::pair().unwrap();
        let devices: Vec<(PathBuf, File)> = [("event0", keyboard), ("event1", button)]
            .into_iter()
            .map(|(name, stream)| {
                stream.set_nonblocking(true).unwrap();
                (
                    PathBuf::from(name),
                    File::from(std::os::fd::OwnedFd::from(stream)),
                )
            })
            .collect();
        let writer = thread::spawn(move || {
            let (mut keyboard_host, mut button_host) = (keyboard_host, button_host);
            keyboard_host.write_all(&event(EV_KEY, 30, 1)).unwrap();
            let mut press = event(EV_KEY, KEY_POWER, 1);
            press.extend(event(0, 0, 0));
            press.extend(event(EV_KEY, KEY_POWER, 0));
            button_host.write_all(&press).unwrap();
            keyboard_host
                .write_all(&event(EV_KEY, KEY_POWER, 1))
                .unwrap();
            // Dropping both ends hangs up, which must end `watch`.
        });
        let mut presses = 0;
        watch(devices, || presses += 1);
        writer.join().unwrap();
        assert_eq!(presses, 2);
    }
}
