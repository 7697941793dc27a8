//! Cryptographic building blocks of the protocol, all pure.
//!
//! Owns: the key schedule helpers ([`kdf`]), the per-sender hash ratchet
//! with its per-chain signing key ([`ratchet`]), the sealed group envelope
//! ([`envelope`]), pairwise Noise sessions over `snow` ([`pairwise`]) and
//! the network link handshake's keys and member proof ([`link`]).
//! Every label used in a derivation is a constant here and listed in
//! `protocol/SPEC.md`.

pub mod aead;
pub mod envelope;
pub mod kdf;
pub mod link;
pub mod pairwise;
pub mod ratchet;

/// Why a cryptographic operation failed. Deliberately coarse: callers
/// report these to users and peers, so they never carry key material or
/// say which byte of a forgery was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error(transparent)]
    Wire(#[from] crate::wire::WireError),
    #[error("signature does not verify")]
    BadSignature,
    #[error("decryption failed (tampered, or not for us)")]
    DecryptFailed,
    #[error("message counter {counter} was already used (replay)")]
    Replay { counter: u32 },
    #[error("message counter {counter} is too far ahead of {next} (limit {limit})")]
    TooFarAhead { counter: u32, next: u32, limit: u32 },
    #[error("sending chain is exhausted; rotate keys")]
    ChainExhausted,
    #[error("noise handshake failed: {0}")]
    Handshake(&'static str),
    #[error("remote static key does not match the roster")]
    WrongRemoteKey,
    #[error("pairwise session state is not ready for this frame")]
    SessionState,
}
