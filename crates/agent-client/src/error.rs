use std::time::Duration;

/// What went wrong talking to the guest agent.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No `Ready` carrying our nonce arrived in time.
    #[error(
        "the guest agent did not answer the handshake within {0:?}; check that the VM booted and that banger-agent runs (see the VM's console log)"
    )]
    HandshakeTimeout(Duration),
    /// The stream ended before the agent answered the handshake.
    #[error(
        "the agent connection closed during the handshake; the VM may have stopped, or its agent socket is held by another host"
    )]
    HandshakeClosed,
    /// The agent speaks another protocol version.
    #[error(
        "the guest agent speaks protocol version {agent}, this host version {host}; use an image whose banger-agent matches this banger"
    )]
    VersionMismatch { agent: u32, host: u32 },
    /// A request got no answer in time (its frames may not even have left: a guest that
    /// stops reading its port fills the connection's buffers).
    #[error(
        "the guest agent did not answer {what} within {after:?}; the guest may be hung or overloaded (see the VM's console log)"
    )]
    Timeout { what: &'static str, after: Duration },
    /// The agent is older than a request needs.
    #[error(
        "the guest agent in this VM does not support {what}; rebuild or re-import the VM's image with this banger to get a current agent"
    )]
    Unsupported { what: &'static str },
    /// The connection died (or the client was shut down); reconnect and handshake again.
    #[error("the connection to the guest agent is closed; reconnect and handshake again")]
    Closed,
    /// The agent refused or failed the request; the text is the agent's.
    #[error("the guest agent reported: {0}")]
    Agent(String),
    /// The agent answered with something the protocol does not allow here.
    #[error("unexpected answer from the guest agent: {0}")]
    Protocol(String),
    /// Reading from or writing to the stream failed.
    #[error("reading from or writing to the agent connection failed")]
    Io(#[from] std::io::Error),
    /// A message could not be encoded (e.g. a path too long for a frame).
    #[error("a message for the guest agent could not be encoded")]
    Encode(#[from] banger_agent_proto::EncodeError),
}
