//! The single writer of frames to the host, shared by every thread of the agent.
//!
//! Frames carry the session generation they belong to. A new connection or a new `Hello`
//! starts a new generation, and frames of older generations are dropped under the same lock
//! that orders writes: once `Ready` is out, nothing from an old session follows it.

use std::io::{self, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use banger_agent_proto::{Kind, Message, encode_frame};

use crate::util::lock;

pub struct FrameWriter {
    out: Mutex<Option<Box<dyn Write + Send>>>,
    generation: AtomicU64,
}

impl FrameWriter {
    pub fn new() -> FrameWriter {
        FrameWriter {
            out: Mutex::new(None),
            generation: AtomicU64::new(0),
        }
    }

    /// Routes frames to a new connection; returns the generation of its first session.
    pub fn attach(&self, out: Box<dyn Write + Send>) -> u64 {
        let mut guard = lock(&self.out);
        *guard = Some(out);
        self.generation.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Starts a new generation without taking the lock, so a writer blocked on a dead
    /// connection cannot hold up the session reset; its frame is the last stale one.
    pub fn new_generation(&self) -> u64 {
        self.generation.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Sends a message if `generation` is still current; stale frames are silently dropped.
    pub fn send(&self, generation: u64, stream: u32, message: &Message) -> io::Result<()> {
        let frame = message
            .encode(stream)
            .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err))?;
        self.write_frame(generation, &frame)
    }

    /// Sends raw data (stdout, stderr, file chunk) without copying it into a `Message` first.
    pub fn send_data(
        &self,
        generation: u64,
        kind: Kind,
        stream: u32,
        data: &[u8],
    ) -> io::Result<()> {
        let mut frame = Vec::with_capacity(banger_agent_proto::HEADER_LEN + data.len());
        encode_frame(kind, stream, data, &mut frame)
            .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err))?;
        self.write_frame(generation, &frame)
    }

    fn write_frame(&self, generation: u64, frame: &[u8]) -> io::Result<()> {
        let mut guard = lock(&self.out);
        if self.generation.load(Ordering::SeqCst) != generation {
            return Ok(());
        }
        let out = guard
            .as_mut()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "no host connected"))?;
        out.write_all(frame)?;
        out.flush()
    }
}

impl Default for FrameWriter {
    fn default() -> Self {
        FrameWriter::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            lock(&self.0).extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn frames_of_an_old_generation_are_dropped() {
        let writer = FrameWriter::new();
        let sink = Sink::default();
        let first = writer.attach(Box::new(sink.clone()));
        writer.send(first, 1, &Message::Pong).unwrap();
        let second = writer.new_generation();
        writer.send(first, 1, &Message::Ok).unwrap();
        writer.send_data(second, Kind::Stdout, 2, b"x").unwrap();
        let mut decoder = banger_agent_proto::Decoder::new();
        decoder.push(&lock(&sink.0));
        let got: Vec<_> = std::iter::from_fn(|| decoder.next_message())
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            got,
            vec![(1, Message::Pong), (2, Message::Stdout(b"x".to_vec()))]
        );
    }
}
