//! The network adapter: one closed libp2p swarm per circle.
//!
//! Owns: building a circle's swarm (TCP or onion, then the link handshake
//! of [`link`] keyed by the circle's network generations, then Noise and
//! yamux; QUIC is not used because the link layer cannot wrap it and it
//! would bypass the closed network), its behaviours (gossipsub in anonymous mode with our own
//! validation, identify with a neutral agent string, request-response for
//! direct frames, ping, optional mDNS; all but the direct protocol, ping
//! and mDNS served only on member links, see [`gate`]), and the task that
//! runs it.
//!
//! Each swarm has a fresh transport key (PeerId) unrelated to the member
//! identity and to other circles. The task talks to the node over bounded
//! channels: [`NetCommand`] in, [`NetEvent`] out. It knows nothing of the
//! protocol beyond "frames are bytes"; the engine judges them, and the
//! node reports the verdict back so gossipsub can score peers.

pub mod codec;
mod gate;
pub mod limits;
pub mod link;
mod swarm;
mod topic_hold;
pub mod tor;

pub use limits::{MAX_CONTROL_CONNECTIONS, raise_fd_limit};
pub use swarm::{CircleNetConfig, CircleNetwork, NetCommand, NetEvent, NetEventKind, spawn_circle};

/// A circle's Tor set-up: the node's tor, this member's onion key for the
/// circle (from the profile), the circle's client-auth keys and SOCKS
/// credentials. The onion is published when the circle's network starts.
pub struct CircleTor {
    pub runtime: tor::TorRuntime,
    pub onion_key: tor::OnionKey,
    pub auth: std::sync::Arc<tor::ClientAuth>,
    pub isolation: tor::Isolation,
    /// Filled in when the onion is published: the onion address and the
    /// 127.0.0.1 address tor forwards it to.
    pub service: Option<(libp2p::Multiaddr, std::net::SocketAddr)>,
}

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("invalid network address {0}")]
    BadAddress(String),
    #[error("cannot listen on {address}: {reason}")]
    Listen { address: String, reason: String },
    #[error("network setup failed: {0}")]
    Setup(String),
    #[error("the circle's network task has stopped")]
    Stopped,
}
