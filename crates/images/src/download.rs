//! Downloads pinned by SHA-256, restartable: bytes land in `<cache>/sha256/.resume-<hex>`,
//! which survives an interruption (even a `kill -9` of the daemon), and the next attempt
//! asks the server only for the rest (HTTP `Range`). The file takes its final name only
//! once its digest checks out.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use banger_system::progress::{Progress, Unit};

use crate::fsutil;
use crate::http::{HttpClient, HttpError};

#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error(
        "{url} does not match its pinned sha256 {expected} (got {actual}); the file on the server changed or was tampered with"
    )]
    Mismatch {
        url: String,
        expected: String,
        actual: String,
    },
    #[error("cannot {op} {path:?}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The verified file for `sha256`, downloading (or finishing the download of) `url`.
pub fn fetch(
    client: &HttpClient,
    url: &str,
    sha256: &str,
    cache_dir: &Path,
    progress: &dyn Progress,
) -> Result<PathBuf, DownloadError> {
    let dir = cache_dir.join("sha256");
    let io = |op: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| DownloadError::Io { op, path, source }
    };
    fs::create_dir_all(&dir).map_err(io("create", &dir))?;
    let done = dir.join(sha256);
    if done.is_file() {
        let (actual, _) = fsutil::sha256_file(&done).map_err(io("hash", &done))?;
        if actual == sha256 {
            progress.note(&format!("using cached {url}"));
            return Ok(done);
        }
        fs::remove_file(&done).map_err(io("remove the damaged", &done))?;
    }
    let partial = dir.join(format!(".resume-{sha256}"));
    let have = fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
    let response = client.get_from(url, have)?;
    let (mut file, start) = if have > 0 && response.range_start == Some(have) {
        progress.note(&format!("resuming {url} at byte {have}"));
        let f = OpenOptions::new()
            .append(true)
            .open(&partial)
            .map_err(io("open", &partial))?;
        (f, have)
    } else {
        (File::create(&partial).map_err(io("create", &partial))?, 0)
    };
    progress.phase(
        &format!("downloading {url}"),
        response.length.map(|l| l + start),
        Some(Unit::Bytes),
    );
    let mut body = response.body;
    let mut buf = vec![0u8; 1 << 16];
    let mut total = start;
    loop {
        let n = body.read(&mut buf).map_err(|e| {
            DownloadError::Http(HttpError::Transport {
                url: url.to_string(),
                via: String::new(),
                reason: format!(
                    "the download broke off at byte {total} ({e}); run the command again to resume"
                ),
            })
        })?;
        if n == 0 {
            break;
        }
        file.write_all(&buf[..n]).map_err(io("write", &partial))?;
        total += n as u64;
        progress.advance(total);
    }
    file.sync_all().map_err(io("sync", &partial))?;
    drop(file);
    let (actual, _) = fsutil::sha256_file(&partial).map_err(io("hash", &partial))?;
    if actual != sha256 {
        // Bad bytes cannot be resumed from.
        let _ = fs::remove_file(&partial);
        return Err(DownloadError::Mismatch {
            url: url.to_string(),
            expected: sha256.to_string(),
            actual,
        });
    }
    fs::rename(&partial, &done).map_err(io("rename", &partial))?;
    fsutil::fsync_dir(&dir).map_err(io("sync", &dir))?;
    Ok(done)
}
