//! The host side of the banger agent protocol.
//!
//! [`AgentClient::handshake`] takes any byte stream to a `banger-agent` (the Unix socket of a
//! QEMU virtio-serial chardev, a Firecracker hybrid-vsock socket after its `CONNECT`, a test
//! socket) and returns a client whose methods may be called concurrently: each exec or request
//! gets its own stream id, a background task demultiplexes the agent's frames to them, and a
//! writer task serialises outgoing frames.
//!
//! ```no_run
//! # async fn demo(stream: tokio::net::UnixStream) -> Result<(), banger_agent_client::ClientError> {
//! use std::time::Duration;
//! use banger_agent_client::{AgentClient, ExecRequest};
//!
//! let (client, ready) = AgentClient::handshake(stream, Duration::from_secs(30)).await?;
//! println!("guest kernel {}", ready.kernel_release);
//! let output = client.exec(ExecRequest::new(["uname", "-a"])).await?.wait_with_output().await?;
//! assert!(output.status.success());
//! # Ok(()) }
//! ```

mod client;
mod conn;
mod error;
mod exec;
mod police;

pub use banger_agent_proto::{BootTimings, PROTO_VERSION, Ready as ReadyInfo, TtySize};
pub use client::{AgentClient, AgentStream, MAX_GUEST_MESSAGE, MAX_READY_FIELD, REQUEST_TIMEOUT};
pub use conn::{BACKPRESSURE_BUDGET, CONTROL_SLACK, CloseReason};
pub use error::ClientError;
pub use exec::{
    ExecControl, ExecEvent, ExecOutput, ExecRequest, ExecSession, ExecStdin, ExitStatus,
};
pub use police::{JUNK_INTERVAL, JUNK_LIMIT};
