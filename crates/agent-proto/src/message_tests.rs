use super::*;

pub(crate) fn one_of_each() -> Vec<Message> {
    let mut env = BTreeMap::new();
    env.insert("FOO".to_owned(), "bar baz".to_owned());
    vec![
        Message::Hello(Hello {
            proto_version: 1,
            nonce: u64::MAX,
        }),
        Message::Exec(Exec {
            argv: vec!["sh".into(), "-c".into(), "echo ü".into()],
            env,
            cwd: Some("/work".into()),
            stdin: true,
            tty: Some(TtySize { rows: 24, cols: 80 }),
            user: Some("app:staff".into()),
        }),
        Message::Stdin(vec![0, 1, 2, 255]),
        Message::StdinClose,
        Message::Signal(Signal { signo: 15 }),
        Message::Resize(TtySize {
            rows: 50,
            cols: 132,
        }),
        Message::Poweroff,
        Message::PutFile(PutFile {
            path: "/etc/x".into(),
            mode: 0o644,
        }),
        Message::PutFileChunk(b"chunk".to_vec()),
        Message::PutFileEnd,
        Message::GetFile(GetFile {
            path: "/etc/hostname".into(),
        }),
        Message::Ping,
        Message::SetTime(SetTime {
            unix_nanos: 1_700_000_000_123_456_789,
        }),
        Message::Credit(Credit { bytes: 65_536 }),
        Message::Reidentify(Reidentify {
            vm_id: "0123abcd".into(),
            hostname: "clone-1".into(),
            unix_nanos: 1_700_000_000_000_000_000,
            entropy: vec![7; 64],
            network: Some(NetIdentity {
                mac: "06:00:0a:00:00:07".into(),
                address: std::net::Ipv4Addr::new(10, 0, 0, 7),
                prefix: 24,
                gateway: Some(std::net::Ipv4Addr::new(10, 0, 0, 1)),
                dns: vec![std::net::Ipv4Addr::new(10, 0, 0, 1)],
            }),
        }),
        Message::Ready(Ready {
            nonce: 7,
            proto_version: 1,
            agent_version: "0.1.0".into(),
            kernel_release: "6.1.0-28-cloud-amd64".into(),
            pid1: true,
            timings: BootTimings {
                agent_start_us: 1_900_000,
                modules_loaded_us: Some(1_950_000),
                disk_mounted_us: None,
                ready_us: 1_990_000,
                now_us: 2_000_000,
            },
            features: vec![FEATURE_EXEC_USER.into()],
            share_errors: Vec::new(),
        }),
        Message::Started(Started { pid: 42 }),
        Message::Stdout(b"out".to_vec()),
        Message::Stderr(Vec::new()),
        Message::Exited(Exited {
            code: None,
            signal: Some(9),
        }),
        Message::FileChunk(vec![7; 100]),
        Message::FileEnd(FileEnd {
            size: 100,
            mode: 0o600,
        }),
        Message::Ok,
        Message::error("exec: no such file or directory: foo"),
        Message::Pong,
        Message::InputCredit(Credit { bytes: 1 << 20 }),
    ]
}

#[test]
fn every_message_round_trips_through_a_frame() {
    let messages = one_of_each();
    let kinds: Vec<Kind> = messages.iter().map(Message::kind).collect();
    assert_eq!(kinds, Kind::ALL, "one message of every kind, in order");
    for (i, message) in messages.into_iter().enumerate() {
        let stream = u32::try_from(i).unwrap() * 1000 + 3;
        let bytes = message.encode(stream).unwrap();
        let mut decoder = crate::Decoder::new();
        decoder.push(&bytes);
        let frame = decoder.next_frame().unwrap().unwrap();
        assert_eq!(frame.stream, stream);
        assert_eq!(Message::from_frame(frame).unwrap(), message);
        assert!(decoder.next_frame().is_none());
    }
}

#[test]
fn bad_json_is_an_error_naming_kind_and_stream() {
    let frame = Frame {
        kind: Kind::Exec,
        stream: 9,
        payload: b"{\"argv\": [1,".to_vec(),
    };
    let err = Message::from_frame(frame).unwrap_err();
    assert!(
        matches!(
            err,
            DecodeError::BadPayload {
                kind: Kind::Exec,
                stream: 9,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.stream(), Some(9));
}

#[test]
fn unknown_json_fields_are_accepted_and_optional_fields_default() {
    let frame = Frame {
        kind: Kind::Exec,
        stream: 1,
        payload: br#"{"argv":["true"],"future":42}"#.to_vec(),
    };
    let Message::Exec(exec) = Message::from_frame(frame).unwrap() else {
        panic!("not an exec");
    };
    assert_eq!(exec.argv, ["true"]);
    assert!(!exec.stdin && exec.tty.is_none() && exec.cwd.is_none() && exec.env.is_empty());
}
