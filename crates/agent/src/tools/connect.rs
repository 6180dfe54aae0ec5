//! `connect PORT`: stdin → TCP 127.0.0.1:PORT → stdout. Flow control comes for free: when
//! the host grants no more output credit the agent stops reading our stdout, our write
//! blocks, we stop reading the socket, and TCP pushes back on the guest's server.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

/// A server starting with the guest (sshd under systemd) gets this long to listen.
const CONNECT_WAIT: Duration = Duration::from_secs(10);
const BUF: usize = 64 * 1024;

pub fn run(args: &[String]) -> Result<(), String> {
    let [port] = args else {
        return Err("usage: connect PORT".into());
    };
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("{port:?} is not a port (1-65535)"))?;
    let stream = connect(port)?;
    let mut upstream = stream
        .try_clone()
        .map_err(|e| format!("cannot share the connection: {e}"))?;
    std::thread::spawn(move || {
        let mut buf = vec![0u8; BUF];
        let mut stdin = io::stdin().lock();
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if upstream.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        // The host is done sending: half-close, as ssh expects of a ProxyCommand.
        let _ = upstream.shutdown(Shutdown::Write);
    });
    let mut downstream = stream;
    let mut buf = vec![0u8; BUF];
    let mut stdout = io::stdout().lock();
    loop {
        match downstream.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => stdout
                .write_all(&buf[..n])
                .and_then(|()| stdout.flush())
                .map_err(|e| format!("writing to the host failed: {e}"))?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("reading from 127.0.0.1:{port} failed: {e}")),
        }
    }
}

fn connect(port: u16) -> Result<TcpStream, String> {
    let started = Instant::now();
    loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(stream) => return Ok(stream),
            Err(e)
                if e.kind() == io::ErrorKind::ConnectionRefused
                    && started.elapsed() < CONNECT_WAIT =>
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => {
                return Err(format!(
                    "cannot connect to 127.0.0.1:{port} in the guest: {e} (is the server running? for ssh: is openssh-server in the image?)"
                ));
            }
        }
    }
}
