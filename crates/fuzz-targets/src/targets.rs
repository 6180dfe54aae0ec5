//! The targets. Each documents what it asserts beyond "no panic".

use std::cell::RefCell;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use banger_agent_proto::{Decoder, HEADER_LEN, MAX_PAYLOAD, Message};

thread_local! {
    /// One runtime per thread, with time paused: a timeout fires as soon as everything
    /// waits, so a target that would hang costs microseconds, not seconds.
    static RUNTIME: RefCell<Option<tokio::runtime::Runtime>> = const { RefCell::new(None) };
}

fn block_on<F: std::future::Future>(future: F) -> Option<F::Output> {
    RUNTIME.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .start_paused(true)
                .build()
                .ok();
        }
        slot.as_ref().map(|rt| rt.block_on(future))
    })
}

/// Guest bytes through the decoder, pushed in pieces whose size the first byte picks: the
/// decoder never buffers more than one frame (plus a piece), and every message it returns
/// survives a round trip through its encoding.
pub fn agent_stream(data: &[u8]) {
    let Some((&seed, rest)) = data.split_first() else {
        return;
    };
    let piece = if seed >= 0xc0 {
        rest.len().max(1)
    } else {
        usize::from(seed % 64) + 1
    };
    let mut decoder = Decoder::new();
    for chunk in rest.chunks(piece) {
        decoder.push(chunk);
        while let Some(item) = decoder.next_message() {
            if let Ok((stream, message)) = item {
                round_trip(stream, &message);
            }
        }
        assert!(
            decoder.buffered() <= HEADER_LEN + MAX_PAYLOAD + piece,
            "the decoder holds {} bytes",
            decoder.buffered()
        );
    }
}

fn round_trip(stream: u32, message: &Message) {
    let Ok(bytes) = message.encode(stream) else {
        return;
    };
    let mut decoder = Decoder::new();
    decoder.push(&bytes);
    match decoder.next_message() {
        Some(Ok((again_stream, again))) => {
            assert_eq!(again_stream, stream);
            assert_eq!(&again, message);
        }
        other => panic!("{message:?} did not decode after encoding: {other:?}"),
    }
}

/// A whole host-side agent connection against a guest that answers the handshake and then
/// sends these bytes, while the host runs a ping and an exec: nothing panics or hangs (the
/// client's deadlines and the connection's budgets hold).
pub fn agent_host(data: &[u8]) {
    use banger_agent_client::{AgentClient, ExecRequest};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let junk = data.to_vec();
    let _ = block_on(async move {
        let (host, mut guest) = tokio::io::duplex(16 * 1024);
        let peer = tokio::spawn(async move {
            let mut decoder = Decoder::new();
            let mut buf = vec![0u8; 4096];
            let nonce = loop {
                let n = guest.read(&mut buf).await.ok().filter(|n| *n > 0)?;
                decoder.push(&buf[..n]);
                let hello = std::iter::from_fn(|| decoder.next_message()).find_map(|m| match m {
                    Ok((_, Message::Hello(h))) => Some(h.nonce),
                    _ => None,
                });
                if let Some(nonce) = hello {
                    break nonce;
                }
            };
            let version = 1 + u32::from(junk.first().copied().unwrap_or(1) % 2);
            let ready = Message::Ready(banger_agent_proto::Ready {
                nonce,
                proto_version: version,
                agent_version: "fuzz".into(),
                kernel_release: "fuzz".into(),
                pid1: false,
                timings: Default::default(),
                features: Vec::new(),
                share_errors: Vec::new(),
            });
            guest.write_all(&ready.encode(0).ok()?).await.ok()?;
            let (mut rd, mut wr) = tokio::io::split(guest);
            // Keep reading the host's frames so its writes never block on us.
            let drain = tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                while matches!(rd.read(&mut buf).await, Ok(n) if n > 0) {}
            });
            for piece in junk.chunks(997) {
                if wr.write_all(piece).await.is_err() {
                    break;
                }
            }
            drop(wr);
            drain.abort();
            Some(())
        });
        let deadline = Duration::from_secs(5);
        let Ok(Ok((client, ready))) =
            tokio::time::timeout(deadline, AgentClient::handshake(host, deadline)).await
        else {
            return;
        };
        assert!(ready.kernel_release.len() <= 256);
        let ping = tokio::time::timeout(deadline, client.ping());
        let exec = tokio::time::timeout(deadline, async {
            let Ok(mut session) = client.exec(ExecRequest::new(["fuzz"])).await else {
                return;
            };
            while let Some(event) = session.next_event().await {
                if let banger_agent_client::ExecEvent::Error(text) = &event {
                    assert!(!text.contains('\n') || text.contains("closed"), "{text:?}");
                }
            }
        });
        let _ = tokio::join!(ping, exec);
        drop(client);
        let _ = tokio::time::timeout(deadline, peer).await;
    });
}

/// What a local client sends the daemon: the first byte picks a request body type or the
/// exec stream; JSON never panics, and every exec frame read survives a round trip.
pub fn api_request(data: &[u8]) {
    use banger_api::stream::{read_frame, write_frame};
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    match which % 5 {
        0 => drop(serde_json::from_slice::<banger_api::CreateVmRequest>(body)),
        1 => drop(serde_json::from_slice::<banger_api::StopVmRequest>(body)),
        2 => drop(serde_json::from_slice::<banger_api::ExecRequest>(body)),
        3 => drop(serde_json::from_slice::<banger_api::BuildImageRequest>(
            body,
        )),
        _ => {
            let _ = block_on(async {
                let mut input = body;
                while let Ok(Some(frame)) = read_frame(&mut input).await {
                    let mut bytes = Vec::new();
                    if write_frame(&mut bytes, &frame).await.is_ok() {
                        let mut again = bytes.as_slice();
                        let decoded = read_frame(&mut again).await;
                        assert!(
                            matches!(&decoded, Ok(Some(f)) if *f == frame),
                            "{frame:?} -> {decoded:?}"
                        );
                    }
                }
            });
        }
    }
}

/// `config.toml` as the owner writes it.
pub fn config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = banger_config::parse_with_home(
        &text,
        Path::new("/fuzz/config.toml"),
        Some(Path::new("/home/fuzz")),
    );
}

/// The image catalog's TOML.
pub fn catalog(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = banger_images::Catalog::parse(&text);
}

/// What comes from the Debian archive: the first byte picks a `.deb` (ar members, tar,
/// decompression; at most 256 KiB read per entry, against bombs) or an index (deb822
/// paragraphs, `Packages`, `Release`).
pub fn deb(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 4 {
        0 => {
            let Ok(dir) = tempfile::tempdir() else { return };
            let path = dir.path().join("fuzz.deb");
            if std::fs::write(&path, rest).is_err() {
                return;
            }
            if let Ok(deb) = banger_images::deb::DebFile::open(&path) {
                let mut budget = 1u64 << 20;
                let _ = deb.for_each_data_entry(|_, entry| {
                    let mut sink = Vec::new();
                    let n = entry.take(256 * 1024).read_to_end(&mut sink)? as u64;
                    budget = budget.saturating_sub(n.max(1));
                    if budget == 0 {
                        return Err(std::io::Error::other("fuzz budget spent"));
                    }
                    Ok(())
                });
            }
        }
        1 => {
            let _ = banger_images::debian::deb822::parse(rest, |_| true, |_| {});
        }
        2 => drop(banger_images::debian::PackageIndex::parse(rest)),
        _ => drop(banger_images::debian::Release::parse(
            &String::from_utf8_lossy(rest),
        )),
    }
}

/// An OCI layer's tar stream (a registry's bytes, decompressed): applied onto a fresh tree
/// beside a sentinel file; whatever the entries say, nothing is created, changed or
/// removed outside the tree.
pub fn oci_layer(data: &[u8]) {
    let Ok(dir) = tempfile::tempdir() else { return };
    let root = dir.path().join("root");
    let outside = dir.path().join("outside");
    if std::fs::create_dir(&root).is_err() || std::fs::write(&outside, b"sentinel").is_err() {
        return;
    }
    let _ = banger_images::oci::apply::Applier::new(&root).apply("fuzz", data);
    let mut beside: Vec<_> = std::fs::read_dir(dir.path())
        .map(|entries| entries.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    beside.sort();
    assert_eq!(
        beside,
        ["outside", "root"],
        "the layer wrote beside its tree"
    );
    assert_eq!(
        std::fs::read(&outside).ok().as_deref(),
        Some(&b"sentinel"[..]),
        "the layer changed a file outside its tree"
    );
    // A read-only directory in the layer must not make the tree undeletable by its owner.
    make_writable(&root);
}

fn make_writable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                make_writable(&entry.path());
            }
        }
    }
}
