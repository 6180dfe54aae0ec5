//! `banger vm cp SRC DST`: one side is `VM:PATH`. The bytes travel as a tar stream
//! (`banger-copy`) over an exec of the agent's `tar-out`/`tar-in` tools, with the exec
//! stream's flow control; the host side packs or unpacks in a blocking thread, joined to
//! the stream by a small bounded channel, so memory stays flat whatever the size.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use banger_agent_proto::tools;
use banger_api::stream::{StreamFrame, read_frame, write_frame};
use banger_api::{Client, ExecRequest};
use banger_paths::Layout;
use tokio::sync::mpsc;

use crate::cli::CpArgs;
use crate::connect;

/// Chunks in flight between the blocking tar thread and the stream.
const IN_FLIGHT: usize = 8;
const CHUNK: usize = 64 * 1024;

/// One side of a copy.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// `-`: a tar stream on stdin or stdout.
    Stream,
    Host(PathBuf),
    Guest {
        vm: String,
        path: String,
    },
}

fn parse(arg: &str) -> End {
    if arg == "-" {
        return End::Stream;
    }
    // `NAME:PATH` where NAME looks like a VM name; `./a:b` or `/x:y` stay host paths.
    if let Some((vm, path)) = arg.split_once(':')
        && !vm.is_empty()
        && vm
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return End::Guest {
            vm: vm.to_string(),
            path: path.to_string(),
        };
    }
    End::Host(PathBuf::from(arg))
}

pub async fn run(layout: &Layout, args: CpArgs) -> anyhow::Result<i32> {
    let (src, dst) = (parse(&args.source), parse(&args.dest));
    use std::io::IsTerminal;
    no_stream_on_a_terminal(
        &src,
        &dst,
        io::stdin().is_terminal(),
        io::stdout().is_terminal(),
    )?;
    match (src, dst) {
        (End::Guest { .. }, End::Guest { .. }) => {
            bail!(
                "{}",
                both_guests(&args.source, &args.dest, |p| Path::new(p).exists())
            )
        }
        (End::Guest { vm, path }, host) => {
            let path = guest_path(&path)?;
            let client = connect::connect(layout).await?;
            from_guest(&client, &vm, &path, host).await
        }
        (host, End::Guest { vm, path }) => {
            let path = guest_path(&path)?;
            let client = connect::connect(layout).await?;
            to_guest(&client, &vm, host, &path).await
        }
        _ => bail!("one side must be VM:PATH, e.g. `banger vm cp ./file dev:/tmp/`"),
    }
}

/// Why a copy whose two sides both read as VM:PATH is refused. A host file named like
/// `notes:v2` reads as VM `notes`'s path `v2` (as with docker cp): when one side is in fact
/// a host path (`exists`), say how to name it.
fn both_guests(source: &str, dest: &str, exists: impl Fn(&str) -> bool) -> String {
    match [source, dest].into_iter().find(|p| exists(p)) {
        Some(host) => format!(
            "both sides read as VM:PATH, but {host:?} is also a path on this host: write ./{host} to copy the host's"
        ),
        None => {
            "copy between two VMs through the host: `banger vm cp a:/x - | banger vm cp - b:/dir`"
                .to_string()
        }
    }
}

/// A tar stream is neither typed in nor printed (as `tar` refuses): `-` with stdin a
/// terminal would wait for a stream nobody sends; with stdout one, spill binary.
fn no_stream_on_a_terminal(
    src: &End,
    dst: &End,
    stdin_tty: bool,
    stdout_tty: bool,
) -> anyhow::Result<()> {
    if *src == End::Stream && stdin_tty {
        bail!(
            "`-` reads a tar stream from stdin, which is a terminal: pipe one in, e.g. `tar -C src -c . | banger vm cp - dev:/dir`"
        );
    }
    if *dst == End::Stream && stdout_tty {
        bail!(
            "`-` writes a tar stream to stdout, which is a terminal: pipe it on, e.g. `banger vm cp dev:/etc - | tar -t`"
        );
    }
    Ok(())
}

fn guest_path(path: &str) -> anyhow::Result<String> {
    if !path.starts_with('/') {
        bail!("{path:?}: give the guest path as an absolute path, e.g. dev:/root/file");
    }
    Ok(path.to_string())
}

async fn to_guest(client: &Client, vm: &str, src: End, dest: &str) -> anyhow::Result<i32> {
    let (tx, rx) = mpsc::channel::<io::Result<Vec<u8>>>(IN_FLIGHT);
    let into_dir = matches!(src, End::Stream);
    let producer = std::thread::spawn(move || -> anyhow::Result<()> {
        let mut out = ChunkWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        match src {
            End::Stream => {
                io::copy(&mut io::stdin().lock(), &mut out)
                    .context("reading the tar stream from stdin")?;
            }
            End::Host(path) => banger_copy::pack(&path, &mut out)
                .with_context(|| format!("cannot copy {}", path.display()))?,
            End::Guest { .. } => unreachable!("checked by the caller"),
        }
        out.flush()?;
        Ok(())
    });
    let argv = tools::tar_in_argv(dest, into_dir);
    let status = relay(client, vm, argv, Some(rx), None).await;
    let produced = producer
        .join()
        .map_err(|_| anyhow::anyhow!("the packing thread panicked"))?;
    // The guest's own error (a missing directory) explains more than a broken stream.
    let status = status?;
    if status != 0 {
        return Ok(status);
    }
    produced?;
    Ok(0)
}

async fn from_guest(client: &Client, vm: &str, src: &str, dst: End) -> anyhow::Result<i32> {
    let (status, ()) = read_from_guest(client, vm, src, move |input| {
        match dst {
            End::Stream => {
                let mut stdout = io::stdout().lock();
                io::copy(input, &mut stdout).context("writing the tar stream to stdout")?;
                stdout.flush()?;
            }
            End::Host(path) => {
                banger_copy::unpack_to(&mut *input, &path)
                    .with_context(|| format!("cannot copy into {}", path.display()))?;
            }
            End::Guest { .. } => unreachable!("checked by the caller"),
        }
        Ok(())
    })
    .await?;
    Ok(status)
}

/// Pack `src` in `vm` and hand the tar stream to `consume`, run in a blocking thread (what
/// it leaves unread is drained). Returns the guest's exit status and what `consume` made;
/// `consume`'s error (the host's verdict on what the guest sent) comes first.
pub(crate) async fn read_from_guest<T: Send + 'static>(
    client: &Client,
    vm: &str,
    src: &str,
    consume: impl FnOnce(&mut dyn Read) -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<(i32, T)> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(IN_FLIGHT);
    let consumer = std::thread::spawn(move || -> anyhow::Result<T> {
        let mut input = ChunkReader {
            rx,
            chunk: Vec::new(),
            at: 0,
        };
        let made = consume(&mut input)?;
        // Drain what the guest may still send after the archive's end.
        io::copy(&mut input, &mut io::sink())?;
        Ok(made)
    });
    let status = relay(client, vm, tools::tar_out_argv(src), None, Some(tx)).await;
    let consumed = consumer
        .join()
        .map_err(|_| anyhow::anyhow!("the unpacking thread panicked"))?;
    let made = consumed?;
    Ok((status?, made))
}

/// Run `argv` in `vm`; feed it `input`'s chunks, hand its stdout to `output`, pass its
/// stderr through. Returns its exit status.
async fn relay(
    client: &Client,
    vm: &str,
    argv: Vec<String>,
    input: Option<mpsc::Receiver<io::Result<Vec<u8>>>>,
    output: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
) -> anyhow::Result<i32> {
    let req = ExecRequest {
        argv,
        env: Vec::new(),
        cwd: None,
        stdin: input.is_some(),
        tty: None,
        // The agent's tools run as root (absent means root), whatever the image's user.
        user: None,
    };
    let io = client.exec(vm, &req).await?;
    let (mut rd, mut wr) = tokio::io::split(io);
    let writer = tokio::spawn(async move {
        let Some(mut input) = input else {
            return Ok(());
        };
        while let Some(chunk) = input.recv().await {
            match chunk {
                Ok(data) => write_frame(&mut wr, &StreamFrame::Stdin(data)).await?,
                Err(_) => break,
            }
        }
        write_frame(&mut wr, &StreamFrame::StdinEof).await
    });
    let mut output = output;
    let status = loop {
        match read_frame(&mut rd)
            .await
            .context("reading from the daemon")?
        {
            Some(StreamFrame::Stdout(data)) => {
                let delivered = match &output {
                    Some(tx) => {
                        let tx = tx.clone();
                        tokio::task::spawn_blocking(move || tx.send(data).is_ok())
                            .await
                            .unwrap_or(false)
                    }
                    None => true,
                };
                if !delivered {
                    // The unpacker stopped (and says why): stop the guest's side too.
                    output = None;
                    break 1;
                }
            }
            Some(StreamFrame::Stderr(data)) => {
                let text = String::from_utf8_lossy(&data);
                crate::err!("{}", crate::output::safe::text(&text));
            }
            Some(StreamFrame::Exit(status)) => break status.shell_code(),
            Some(StreamFrame::Error(message)) => bail!(crate::output::safe::text(&message)),
            Some(_) => {}
            None => bail!("the daemon closed the connection before the copy finished"),
        }
    };
    drop(output);
    writer.abort();
    Ok(status)
}

/// A `Write` that sends full chunks into an async channel (blocking when it is full).
struct ChunkWriter {
    tx: mpsc::Sender<io::Result<Vec<u8>>>,
    buf: Vec<u8>,
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.flush()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the copy to the guest ended"))
    }
}

/// A `Read` over chunks from a bounded channel; end of stream when the sender goes.
struct ChunkReader {
    rx: std::sync::mpsc::Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    at: usize,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.chunk.len() {
            match self.rx.recv() {
                Ok(chunk) => {
                    self.chunk = chunk;
                    self.at = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_parse_like_docker_cp() {
        assert_eq!(parse("-"), End::Stream);
        assert_eq!(
            parse("dev:/tmp/x"),
            End::Guest {
                vm: "dev".into(),
                path: "/tmp/x".into()
            }
        );
        assert_eq!(parse("./a:b"), End::Host("./a:b".into()));
        assert_eq!(parse("/abs:x"), End::Host("/abs:x".into()));
        assert_eq!(parse("plain"), End::Host("plain".into()));
        assert!(guest_path("relative").is_err());
    }

    #[test]
    fn a_host_path_that_reads_as_vm_path_is_named() {
        let message = both_guests("notes:v2", "dev:/tmp/", |p| p == "notes:v2");
        assert!(message.contains("./notes:v2"), "{message}");
        let message = both_guests("a:/x", "b:/dir", |_| false);
        assert!(message.contains("between two VMs"), "{message}");
    }

    #[test]
    fn a_tar_stream_is_not_read_from_or_written_to_a_terminal() {
        let guest = || parse("dev:/tmp");
        let check = |src, dst, stdin_tty, stdout_tty| {
            no_stream_on_a_terminal(&src, &dst, stdin_tty, stdout_tty)
        };
        let err = check(End::Stream, guest(), true, false).unwrap_err();
        assert!(err.to_string().contains("stdin"), "{err}");
        let err = check(guest(), End::Stream, false, true).unwrap_err();
        assert!(err.to_string().contains("stdout"), "{err}");
        check(End::Stream, guest(), false, true).unwrap();
        check(guest(), End::Stream, true, false).unwrap();
        // Files are fine whatever the terminal.
        check(parse("./x"), guest(), true, true).unwrap();
    }
}
