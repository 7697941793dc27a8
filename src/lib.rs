//! # kolo
//!
//! A peer-to-peer, end-to-end encrypted group chat for small trusted
//! circles. This crate is laid out as a pure protocol core with adapters
//! around it (see `docs/ARCHITECTURE.md` for the full map):
//!
//! | module | owns | may depend on |
//! |---|---|---|
//! | [`wire`] | byte codec, frame prefix, padding | nothing |
//! | [`entropy`] | randomness as an input | nothing |
//! | [`clock`] | the wall clock, read by the adapters only (the engine is handed the time) | nothing |
//! | [`identity`] | identity keys, Noise key binding, fingerprints, safety numbers | `wire` |
//! | [`crypto`] | KDFs, sender-key ratchet, group envelope, pairwise Noise | `wire`, `identity` |
//! | [`circle`] | membership log, roles, invites, epochs, topics | `wire`, `identity`, `crypto::kdf` |
//! | [`engine`] | the sans-IO state machine: `handle(input) -> outputs` | all of the above |
//! | [`store`] | adapter: the encrypted profile (SQLCipher, argon2id, shredding) | `engine` |
//! | [`net`] | adapter: one closed libp2p swarm per circle | `engine` (frame limits) |
//! | [`node`] | adapter: engine + store + networks + control requests | `engine`, `store`, `net`, `api` |
//! | [`api`] | adapter: the control socket (JSON-RPC 2.0, typed answers, pushed events) | `engine` types |
//! | [`sim`], [`demo`] | a deterministic in-memory network; the demo transcript | `engine` |
//! | [`vectors`] | test vectors for `protocol/vectors/` | the pure modules |
//! | `fuzz_targets` | the fuzz targets' bodies (`fuzz/`, `tests/fuzz_corpus.rs`) | the pure modules |
//!
//! The adapters that do I/O (`net`, `node`, the profile database in
//! `store`, the control-socket server in `api`) and the binary need the
//! default feature `app`; without it the crate is the pure core.
//!
//! Where to add things: a new message kind goes in `engine::message` and
//! `protocol/SPEC.md`; a new membership operation in `circle::op`; a new
//! frame type in `wire::frame_type` plus its codec next to its owner.

#![deny(unsafe_code)]

pub mod api;
pub mod circle;
pub mod clock;
pub mod crypto;
#[cfg(feature = "app")]
pub mod demo;
pub mod engine;
pub mod entropy;
#[doc(hidden)]
pub mod fuzz_targets;
pub mod identity;
#[cfg(feature = "app")]
pub mod net;
#[cfg(feature = "app")]
pub mod node;
pub mod sim;
pub mod store;
#[cfg(feature = "app")]
pub mod ui;
pub mod vectors;
pub mod wire;
