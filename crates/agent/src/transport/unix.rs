//! `unix:PATH`: a listening Unix socket, for tests and development on the host.

use std::io;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use super::{Conn, Listener};

pub struct UnixSocketListener {
    listener: UnixListener,
    path: PathBuf,
}

impl UnixSocketListener {
    pub fn bind(path: &Path) -> io::Result<UnixSocketListener> {
        // A socket file left by an earlier run would make bind fail with EADDRINUSE.
        if std::fs::symlink_metadata(path)
            .is_ok_and(|meta| std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type()))
        {
            std::fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path).map_err(|err| {
            io::Error::new(
                err.kind(),
                format!("cannot listen on unix socket {}: {err}", path.display()),
            )
        })?;
        Ok(UnixSocketListener {
            listener,
            path: path.to_owned(),
        })
    }
}

impl Listener for UnixSocketListener {
    fn accept(&mut self) -> io::Result<Conn> {
        let (stream, _) = self.listener.accept()?;
        let closer = stream.try_clone()?;
        Ok(Conn {
            reader: Box::new(stream.try_clone()?),
            writer: Box::new(stream),
            closer: Some(Box::new(move || {
                let _ = closer.shutdown(std::net::Shutdown::Both);
            })),
        })
    }

    fn describe(&self) -> String {
        format!("unix:{}", self.path.display())
    }
}
