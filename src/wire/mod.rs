//! Byte-exact encoding primitives shared by every frame kolo puts on a wire.
//!
//! This module owns the low-level codec (big-endian integers, length-prefixed
//! byte strings, fixed arrays) and the frame-level constants: the protocol
//! version byte and the frame type codes. It performs no I/O and never
//! panics on input: every read is bounds-checked and returns a [`WireError`].
//!
//! Each higher layer (envelopes, pairwise frames, membership operations,
//! invites) builds its own frame layout on top of [`Writer`] and [`Reader`];
//! the layouts are specified byte by byte in `protocol/SPEC.md`.

mod codec;
mod padding;
pub mod text;

pub use codec::{Reader, Writer};
pub use padding::{PADDING_BUCKETS, pad, unpad};

/// The only wire version this build speaks. Every frame starts with it.
pub const VERSION: u8 = 2;

/// Upper bound on any frame kolo accepts from outside, checked before decoding.
pub const MAX_FRAME_LEN: usize = 72 * 1024;

/// Frame type codes: the second byte of every frame.
pub mod frame_type {
    /// A group message sealed under a sender's chain.
    pub const GROUP: u8 = 0x01;
    /// A one-way Noise KK first message carrying one pairwise payload.
    pub const PAIR_HELLO: u8 = 0x02;
    /// v1's session reply and data frames (0x03, 0x04) are not used in v2.
    pub const PAIR_REPLY: u8 = 0x03;
    /// A member's new chain for an epoch, sealed under its announce key
    /// and signed by its previous chain, broadcast once (SPEC §5.1a).
    pub const CHAIN_ANNOUNCE: u8 = 0x05;
    /// Joiner's first Noise XX message.
    pub const JOIN_HELLO: u8 = 0x10;
    /// Member's Noise XX reply.
    pub const JOIN_REPLY: u8 = 0x11;
    /// Joiner's final XX message carrying the join request.
    pub const JOIN_REQUEST: u8 = 0x12;
    /// Member's answer to a join request (welcome or refusal), in transport.
    pub const JOIN_ANSWER: u8 = 0x13;
    /// Member's refusal of a hello whose invite it cannot accept, in clear
    /// and without any member identity (protocol v2).
    pub const JOIN_REFUSED: u8 = 0x14;
    /// Anti-entropy: what I hold.
    pub const SYNC_REQUEST: u8 = 0x20;
    /// Anti-entropy: frames you lack.
    pub const SYNC_RESPONSE: u8 = 0x21;
}

/// Why bytes from outside could not be decoded. Carries no secret material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("frame is truncated")]
    Truncated,
    #[error("frame has {0} unexpected trailing bytes")]
    TrailingBytes(usize),
    #[error("frame is too long ({0} bytes)")]
    TooLong(usize),
    #[error("unsupported wire version {0}; this build speaks version 2")]
    UnsupportedVersion(u8),
    #[error("frame from an older kolo (wire version {0}); this build speaks version 2 only: update that peer")]
    OlderVersion(u8),
    #[error("unknown frame type 0x{0:02x}")]
    UnknownType(u8),
    #[error("unknown {what} code {code}")]
    UnknownCode { what: &'static str, code: u8 },
    #[error("{0} is not valid UTF-8")]
    BadUtf8(&'static str),
    #[error("{what} exceeds its limit of {limit}")]
    LimitExceeded { what: &'static str, limit: usize },
    #[error("padding is malformed")]
    BadPadding,
    #[error("invalid field: {0}")]
    Invalid(&'static str),
}

/// Read and check the two-byte frame prefix (version, type).
pub fn read_prefix(bytes: &[u8]) -> Result<u8, WireError> {
    read_prefix_within(bytes, MAX_FRAME_LEN)
}

/// [`read_prefix`] for frames with their own, larger cap (direct frames,
/// whose catch-up answers carry many frames at once).
pub fn read_prefix_within(bytes: &[u8], max_len: usize) -> Result<u8, WireError> {
    if bytes.len() > max_len {
        return Err(WireError::TooLong(bytes.len()));
    }
    let (&version, rest) = bytes.split_first().ok_or(WireError::Truncated)?;
    if version < VERSION {
        return Err(WireError::OlderVersion(version));
    }
    if version != VERSION {
        return Err(WireError::UnsupportedVersion(version));
    }
    rest.first().copied().ok_or(WireError::Truncated)
}
