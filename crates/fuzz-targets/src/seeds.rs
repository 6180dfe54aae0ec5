//! Seed inputs for each target's corpus (`banger-fuzz-stable seed`): small, valid examples
//! of what each parser expects, from which mutation starts.

use banger_agent_proto::{
    BootTimings, Credit, Exec, Exited, Hello, Message, Ready, Started, TtySize,
};

/// `(target, file name, bytes)` for every seed.
pub fn all() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut seeds = Vec::new();
    let messages = vec![
        Message::Hello(Hello {
            proto_version: 2,
            nonce: 7,
        }),
        Message::Ready(Ready {
            nonce: 7,
            proto_version: 2,
            agent_version: "0.1.0".into(),
            kernel_release: "6.1.0-28-cloud-amd64".into(),
            pid1: true,
            timings: BootTimings::default(),
            features: vec![banger_agent_proto::FEATURE_EXEC_USER.into()],
            share_errors: Vec::new(),
        }),
        Message::Exec(Exec {
            argv: vec!["sh".into(), "-c".into(), "echo hi".into()],
            env: Default::default(),
            cwd: Some("/work".into()),
            stdin: true,
            tty: Some(TtySize { rows: 24, cols: 80 }),
            user: Some("1000:1000".into()),
        }),
        Message::Started(Started { pid: 42 }),
        Message::Stdout(b"hello\n".to_vec()),
        Message::Stderr(b"oops\n".to_vec()),
        Message::Credit(Credit { bytes: 65536 }),
        Message::InputCredit(Credit { bytes: 65536 }),
        Message::Exited(Exited {
            code: Some(0),
            signal: None,
        }),
        Message::error("exec: no such file or directory: foo"),
        Message::Pong,
    ];
    seeds.extend(oci_layers());
    let mut stream = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        if let Ok(bytes) = message.encode(u32::try_from(i).unwrap_or(0) % 3) {
            stream.extend_from_slice(&bytes);
        }
    }
    for seed in [0u8, 7, 63, 0xff] {
        let mut input = vec![seed];
        input.extend_from_slice(&stream);
        seeds.push(("agent_stream", format!("frames-piece-{seed}"), input));
    }
    let mut garbage = vec![3u8];
    garbage.extend_from_slice(b"stale BNG\x00BNGR\x83\x00\x00\x00\x01\xff\xff\xff\xff");
    garbage.extend_from_slice(&stream);
    seeds.push(("agent_stream", "garbage-then-frames".into(), garbage));

    let replies: Vec<u8> = [
        Message::Started(Started { pid: 1 }).encode(2),
        Message::Stdout(vec![b'x'; 300]).encode(2),
        Message::Exited(Exited {
            code: Some(3),
            signal: None,
        })
        .encode(2),
        Message::Pong.encode(1),
        Message::error("bad\nline").encode(0),
    ]
    .into_iter()
    .flatten()
    .flatten()
    .collect();
    for version in [1u8, 2] {
        let mut input = vec![version - 1];
        input.extend_from_slice(&replies);
        seeds.push(("agent_host", format!("replies-v{version}"), input));
    }

    let requests = [
        (
            0u8,
            r#"{"name":"dev","image":"minimal","vcpu":2,"memory_mib":1024,"disk":"8G","start":true}"#,
        ),
        (1, r#"{"timeout_secs":15,"force":false}"#),
        (
            2,
            r#"{"argv":["uname","-a"],"env":[["A","1"]],"cwd":"/","stdin":true,"tty":{"rows":24,"cols":80}}"#,
        ),
        (3, r#"{"recipe":"minimal","name":"minimal","force":true}"#),
    ];
    for (which, json) in requests {
        let mut input = vec![which];
        input.extend_from_slice(json.as_bytes());
        seeds.push(("api_request", format!("body-{which}"), input));
    }
    let mut frames = vec![4u8];
    for (kind, payload) in [
        (1u8, b"input".to_vec()),
        (3, 15i32.to_be_bytes().to_vec()),
        (4, vec![0, 24, 0, 80]),
        (10, b"out".to_vec()),
        (12, br#"{"code":0}"#.to_vec()),
    ] {
        frames.push(kind);
        frames.extend_from_slice(&u32::try_from(payload.len()).unwrap_or(0).to_be_bytes());
        frames.extend_from_slice(&payload);
    }
    seeds.push(("api_request", "exec-stream".into(), frames));

    seeds.push((
        "config",
        "full".into(),
        b"firecracker_bin = \"/usr/bin/firecracker\"\nssh_key_path = \"~/.ssh/id_ed25519\"\ndefault_image_name = \"minimal\"\nvmm = \"auto\"\n\n[vm_defaults]\nvcpu = 2\nmemory = 2048\ndisk = \"8G\"\n\n[logs]\nconsole_max = \"8M\"\ndaemon_max = \"16M\"\n".to_vec(),
    ));
    seeds.push(("config", "empty".into(), Vec::new()));
    seeds.push((
        "catalog",
        "embedded".into(),
        include_bytes!("../../images/src/catalog.toml").to_vec(),
    ));
    let mut index = vec![1u8];
    index.extend_from_slice(b"Package: busybox-static\nVersion: 1:1.35.0-4+b3\nFilename: pool/main/b/busybox/busybox-static_1.35.0-4+b3_amd64.deb\nSize: 123\nSHA256: 00\nDescription: x\n more\n\nPackage: b\nVersion: 1\n");
    seeds.push(("deb", "deb822".into(), index));
    let mut ar = vec![0u8];
    ar.extend_from_slice(
        b"!<arch>\ndebian-binary   0           0     0     100644  4         `\n2.0\n",
    );
    seeds.push(("deb", "ar-header".into(), ar));
    seeds
}

/// Layers with what hostile ones try: a file, a directory, a whiteout, links (one escaping),
/// a `..` name, an absolute name.
fn oci_layers() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut plain = tar::Builder::new(Vec::new());
    let _ = append(&mut plain, tar::EntryType::Directory, "etc/", b"", None);
    let _ = append(
        &mut plain,
        tar::EntryType::Regular,
        "etc/hostname",
        b"box\n",
        None,
    );
    let _ = append(
        &mut plain,
        tar::EntryType::Regular,
        "etc/.wh.motd",
        b"",
        None,
    );
    let _ = append(
        &mut plain,
        tar::EntryType::Symlink,
        "etc/link",
        b"",
        Some("hostname"),
    );
    let _ = append(
        &mut plain,
        tar::EntryType::Link,
        "etc/hard",
        b"",
        Some("etc/hostname"),
    );
    if let Ok(bytes) = plain.into_inner() {
        out.push(("oci_layer", "plain".to_string(), bytes));
    }
    let mut hostile = tar::Builder::new(Vec::new());
    let _ = append(
        &mut hostile,
        tar::EntryType::Symlink,
        "up",
        b"",
        Some("../.."),
    );
    let _ = append(
        &mut hostile,
        tar::EntryType::Regular,
        "up/outside",
        b"x",
        None,
    );
    let _ = append(&mut hostile, tar::EntryType::Symlink, "abs", b"", Some("/"));
    let _ = append(
        &mut hostile,
        tar::EntryType::Regular,
        "abs/tmp/x",
        b"x",
        None,
    );
    let _ = append(
        &mut hostile,
        tar::EntryType::Link,
        "hl",
        b"",
        Some("../outside"),
    );
    if let Ok(bytes) = hostile.into_inner() {
        out.push(("oci_layer", "hostile-links".to_string(), bytes));
    }
    out
}

/// Append one entry; `link` is the target of a link. Names are set raw, so `..` and
/// absolute names survive (the tar crate's checked setters refuse them).
fn append(
    builder: &mut tar::Builder<Vec<u8>>,
    kind: tar::EntryType,
    name: &str,
    data: &[u8],
    link: Option<&str>,
) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(if kind == tar::EntryType::Directory {
        0o755
    } else {
        0o644
    });
    header.set_size(data.len() as u64);
    let bytes = header.as_old_mut().name.as_mut();
    let n = name.len().min(bytes.len());
    bytes[..n].copy_from_slice(&name.as_bytes()[..n]);
    if let Some(target) = link {
        let bytes = header.as_old_mut().linkname.as_mut();
        let n = target.len().min(bytes.len());
        bytes[..n].copy_from_slice(&target.as_bytes()[..n]);
    }
    header.set_cksum();
    builder.append(&header, data)
}
