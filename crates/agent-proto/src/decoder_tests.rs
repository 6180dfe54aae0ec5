use super::*;
use crate::encode_frame;
use crate::message::{Exec, Hello};

fn hello(nonce: u64) -> Message {
    Message::Hello(Hello {
        proto_version: 1,
        nonce,
    })
}

/// Drains the decoder: messages in order, and how many errors were reported.
fn drain(decoder: &mut Decoder) -> (Vec<(u32, Message)>, usize) {
    let mut messages = Vec::new();
    let mut errors = 0;
    while let Some(item) = decoder.next_message() {
        match item {
            Ok(message) => messages.push(message),
            Err(_) => errors += 1,
        }
    }
    (messages, errors)
}

#[test]
fn garbage_in_front_is_skipped_and_reported() {
    let mut decoder = Decoder::new();
    decoder.push(b"some stale noise BNG BN B");
    decoder.push(&hello(5).encode(0).unwrap());
    let first = decoder.next_frame().unwrap();
    assert!(
        matches!(first, Err(DecodeError::Garbage { skipped }) if skipped == 25),
        "{first:?}"
    );
    let frame = decoder.next_frame().unwrap().unwrap();
    assert_eq!(Message::from_frame(frame).unwrap(), hello(5));
    assert!(decoder.next_frame().is_none());
    assert_eq!(decoder.buffered(), 0);
}

#[test]
fn a_frame_split_byte_by_byte_arrives_whole() {
    let mut bytes = b"xx".to_vec();
    bytes.extend(hello(1).encode(0).unwrap());
    bytes.extend(Message::Stdout(vec![9; 300]).encode(7).unwrap());
    bytes.extend(Message::Ok.encode(8).unwrap());
    let mut decoder = Decoder::new();
    let mut messages = Vec::new();
    let mut errors = 0;
    for byte in bytes {
        decoder.push(&[byte]);
        let (got, errs) = drain(&mut decoder);
        messages.extend(got);
        errors += errs;
    }
    assert_eq!(
        messages,
        vec![
            (0, hello(1)),
            (7, Message::Stdout(vec![9; 300])),
            (8, Message::Ok)
        ]
    );
    assert!(errors >= 1, "the leading garbage is reported");
}

#[test]
fn a_truncated_frame_waits_for_the_rest() {
    let bytes = Message::Stderr(b"abcdef".to_vec()).encode(3).unwrap();
    let mut decoder = Decoder::new();
    decoder.push(&bytes[..HEADER_LEN + 2]);
    assert!(decoder.next_frame().is_none());
    decoder.push(&bytes[HEADER_LEN + 2..]);
    let (messages, errors) = drain(&mut decoder);
    assert_eq!(messages, vec![(3, Message::Stderr(b"abcdef".to_vec()))]);
    assert_eq!(errors, 0);
}

#[test]
fn an_oversize_header_is_an_error_and_the_next_frame_still_decodes() {
    let mut bytes = MAGIC.to_vec();
    bytes.push(Kind::Stdout as u8);
    bytes.extend(1u32.to_be_bytes());
    bytes.extend(u32::try_from(MAX_PAYLOAD + 1).unwrap().to_be_bytes());
    bytes.extend(Message::Pong.encode(4).unwrap());
    let mut decoder = Decoder::new();
    decoder.push(&bytes);
    let first = decoder.next_frame().unwrap();
    assert!(
        matches!(first, Err(DecodeError::Oversize { .. })),
        "{first:?}"
    );
    let (messages, _) = drain(&mut decoder);
    assert_eq!(messages, vec![(4, Message::Pong)]);
}

#[test]
fn an_unknown_kind_is_an_error_and_the_next_frame_still_decodes() {
    let mut bytes = Vec::new();
    bytes.extend(MAGIC);
    bytes.push(0x7f);
    bytes.extend(2u32.to_be_bytes());
    bytes.extend(3u32.to_be_bytes());
    bytes.extend(b"abc");
    bytes.extend(Message::Ping.encode(2).unwrap());
    let mut decoder = Decoder::new();
    decoder.push(&bytes);
    let first = decoder.next_frame().unwrap();
    assert!(
        matches!(first, Err(DecodeError::UnknownKind { kind: 0x7f })),
        "{first:?}"
    );
    let (messages, errors) = drain(&mut decoder);
    assert_eq!(messages, vec![(2, Message::Ping)]);
    assert_eq!(
        errors, 1,
        "the rest of the bad frame is reported as garbage once"
    );
}

#[test]
fn bad_json_consumes_the_frame_and_names_its_stream() {
    let mut bytes = Vec::new();
    encode_frame(Kind::Exec, 11, b"not json", &mut bytes).unwrap();
    bytes.extend(Message::Ping.encode(12).unwrap());
    let mut decoder = Decoder::new();
    decoder.push(&bytes);
    let first = decoder.next_message().unwrap();
    assert!(
        matches!(&first, Err(err) if err.stream() == Some(11)),
        "{first:?}"
    );
    let (messages, errors) = drain(&mut decoder);
    assert_eq!(messages, vec![(12, Message::Ping)]);
    assert_eq!(errors, 0);
}

#[test]
fn a_magic_split_across_pushes_is_kept() {
    let bytes = Message::Ok.encode(1).unwrap();
    let mut decoder = Decoder::new();
    decoder.push(b"junkBN");
    assert!(matches!(
        decoder.next_frame(),
        Some(Err(DecodeError::Garbage { skipped: 4 }))
    ));
    assert!(decoder.next_frame().is_none());
    assert_eq!(decoder.buffered(), 2);
    decoder.push(&bytes[2..]);
    let (messages, errors) = drain(&mut decoder);
    assert_eq!(messages, vec![(1, Message::Ok)]);
    assert_eq!(errors, 0);
}

/// Tiny deterministic PRNG (xorshift64*), so the random test needs no dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n).unwrap()).unwrap()
    }
}

#[test]
fn random_garbage_mixed_with_frames_never_panics_and_frames_survive() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let sample = Message::Exec(Exec {
        argv: vec!["cat".into()],
        env: Default::default(),
        cwd: None,
        stdin: true,
        tty: None,
        user: None,
    });
    for round in 0..300u32 {
        // Odd rounds also inject fake headers, whose claimed payload may swallow real frames:
        // those rounds only prove the decoder survives; even rounds must lose nothing.
        let fakes = round % 2 == 1;
        let mut bytes = Vec::new();
        let mut expected = Vec::new();
        for item in 0..20u32 {
            match rng.below(if fakes { 4 } else { 3 }) {
                0 => {
                    let len = rng.below(64);
                    bytes.extend((0..len).map(|_| rng.next() as u8));
                }
                1 => {
                    bytes.extend(&MAGIC[..rng.below(4)]);
                    bytes.push(b'!');
                }
                2 => {
                    let stream = round * 100 + item;
                    let message = if rng.below(2) == 0 {
                        sample.clone()
                    } else {
                        Message::Stdout((0..rng.below(200)).map(|_| rng.next() as u8).collect())
                    };
                    bytes.extend(message.encode(stream).unwrap());
                    expected.push((stream, message));
                }
                _ => {
                    bytes.extend(MAGIC);
                    bytes.extend((0..9).map(|_| rng.next() as u8));
                }
            }
        }
        let mut decoder = Decoder::new();
        let mut got = Vec::new();
        let mut pos = 0;
        while pos < bytes.len() {
            let step = 1 + rng.below(97);
            let end = (pos + step).min(bytes.len());
            decoder.push(&bytes[pos..end]);
            pos = end;
            got.extend(drain(&mut decoder).0);
        }
        if !fakes {
            assert_eq!(got, expected, "round {round}");
        }
    }
}

#[test]
fn pure_random_bytes_never_panic() {
    let mut rng = XorShift(42);
    let mut decoder = Decoder::new();
    for _ in 0..2000 {
        let len = rng.below(300);
        let mut chunk: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        // Salt with magics so the header paths are exercised.
        if rng.below(3) == 0 && len > 4 {
            let at = rng.below(len - 4);
            chunk[at..at + 4].copy_from_slice(&MAGIC);
        }
        decoder.push(&chunk);
        while decoder.next_message().is_some() {}
        assert!(decoder.buffered() <= HEADER_LEN + MAX_PAYLOAD);
    }
}
