//! Catch-up between members (anti-entropy): when two members meet, each
//! says which frames it holds (8-byte id prefixes) and the other sends what
//! is missing, still within expiry. Frames are end-to-end encrypted
//! already, so any member can relay any other member's frames, including
//! pairwise frames addressed to someone who was offline (mailboxing).
//!
//! Since protocol v2 (SPEC §7) catch-up is for proven members only and
//! scored like gossip:
//!
//! * a request carries the circle's frame authenticator (only current
//!   members hold the key) and the time it was made; a request that does
//!   not verify gets no answer and counts against the peer, a stale or
//!   replayed one gets no answer;
//! * an answer is taken only in reply to a request of ours to that peer;
//!   frames in it that every member would refuse count against the peer
//!   that sent them, as on the topic. Both reach the network as
//!   [`Verdict::Reject`] outputs for a direct input, which the node turns
//!   into strikes against the peer.

use std::collections::{HashMap, HashSet, VecDeque};

use super::Ctx;
use super::circle_state::CircleState;
use super::frames;
use super::types::{Event, Output, PeerRef, Verdict};

/// Most bytes of frames sent in one catch-up answer; the peer asks again
/// for the rest.
const MAX_ANSWER_BYTES: usize = 2 * 1024 * 1024;
/// How long we take answers to a request of ours.
const ANSWER_WITHIN_MS: u64 = 120_000;
/// Requests outstanding per peer (older ones are forgotten).
const MAX_ASKED_PER_PEER: usize = 8;
/// Peers we keep outstanding requests for.
const MAX_ASKED_PEERS: usize = 1024;
/// How far a request's time may be from ours and still be served.
const REQUEST_FRESH_MS: u64 = 120_000;
/// Authenticators of requests served, remembered to refuse replays.
const SERVED_MEMORY: usize = 4096;
/// Bad frames in one answer after which the rest is not looked at.
const MAX_BAD_PER_ANSWER: usize = 3;

#[derive(Default)]
pub struct SyncState {
    /// When we asked each peer, oldest first.
    asked: HashMap<PeerRef, VecDeque<u64>>,
    served: HashSet<[u8; 16]>,
    served_order: VecDeque<[u8; 16]>,
}

impl SyncState {
    fn note_request(&mut self, peer: PeerRef, now: u64) {
        self.asked.retain(|_, times| {
            times.retain(|t| now.saturating_sub(*t) <= ANSWER_WITHIN_MS);
            !times.is_empty()
        });
        if self.asked.len() >= MAX_ASKED_PEERS && !self.asked.contains_key(&peer) {
            return; // No answer will be taken from this peer; harmless.
        }
        let times = self.asked.entry(peer).or_default();
        times.push_back(now);
        while times.len() > MAX_ASKED_PER_PEER {
            times.pop_front();
        }
    }

    /// Take one outstanding request to `peer`; false if there is none.
    fn take_request(&mut self, peer: PeerRef, now: u64) -> bool {
        let Some(times) = self.asked.get_mut(&peer) else {
            return false;
        };
        times.retain(|t| now.saturating_sub(*t) <= ANSWER_WITHIN_MS);
        let took = times.pop_front().is_some();
        if times.is_empty() {
            self.asked.remove(&peer);
        }
        took
    }

    /// Remember a served request's authenticator; false if seen before.
    fn first_time(&mut self, mac: [u8; 16]) -> bool {
        if !self.served.insert(mac) {
            return false;
        }
        self.served_order.push_back(mac);
        while self.served_order.len() > SERVED_MEMORY {
            if let Some(old) = self.served_order.pop_front() {
                self.served.remove(&old);
            }
        }
        true
    }
}

pub fn request(state: &mut CircleState, ctx: &mut Ctx<'_>, peer: PeerRef) {
    // Pairwise frames for us are not kept once opened, only their ids:
    // list those too, or every answer would bring them again.
    let mut have = state.frames.summary();
    have.extend(state.consumed.iter().map(|id| {
        let mut prefix = [0u8; 8];
        prefix.copy_from_slice(&id[..8]);
        prefix
    }));
    let body = frames::encode_sync_request(ctx.now, &have);
    let frame = frames::add_frame_mac(body, state.secret(), &state.id(), state.key_epoch());
    state.sync.note_request(peer, ctx.now);
    ctx.out.push(Output::SendDirect { circle: state.id(), peer, frame });
}

/// Serve a catch-up request if it proves membership; see the module notes.
pub fn on_request(
    state: &mut CircleState,
    ctx: &mut Ctx<'_>,
    peer: PeerRef,
    bytes: &[u8],
    sent_at_ms: u64,
    have: &[[u8; 8]],
) -> Result<(), String> {
    match state.mac_valid(bytes) {
        Some(true) => {}
        Some(false) => {
            // Only a peer outside the circle sends these: every member checks alike.
            ctx.out.push(Output::Verdict { circle: state.id(), verdict: Verdict::Reject });
            return Err("catch-up request without a valid circle authenticator; not answered".into());
        }
        None => return Err("catch-up request under an epoch whose keys we do not hold; not answered".into()),
    }
    if ctx.now.abs_diff(sent_at_ms) > REQUEST_FRESH_MS {
        return Err("stale catch-up request; not answered".into());
    }
    let mut mac = [0u8; 16];
    mac.copy_from_slice(&bytes[bytes.len() - 16..]);
    if !state.sync.first_time(mac) {
        return Err("replayed catch-up request; not answered".into());
    }
    let mut missing = state.frames.missing_from(have, MAX_ANSWER_BYTES);
    // A requester still in an older epoch (offline through a rotation,
    // or removed by it) gets what was sent up to its epoch and the
    // pairwise frames (its new epoch key is among them if it is still a
    // member), but nothing of a newer epoch's traffic (SPEC §7).
    if let Some(theirs) = frames::frame_mac_epoch(bytes).filter(|e| *e < state.key_epoch()) {
        missing.retain(|f| frame_epoch(f).is_none_or(|e| e <= theirs));
    }
    if missing.is_empty() {
        return Ok(());
    }
    ctx.out.push(Output::SendDirect { circle: state.id(), peer, frame: frames::encode_sync_response(&missing) });
    Ok(())
}

/// The epoch a group frame or chain announcement was sent in (`None`
/// for pairwise frames, which name none we could compare).
fn frame_epoch(frame: &[u8]) -> Option<u32> {
    match frame.get(1).copied() {
        Some(crate::wire::frame_type::GROUP) => crate::crypto::envelope::parse(frame).ok().map(|f| f.header.epoch),
        Some(crate::wire::frame_type::CHAIN_ANNOUNCE) => frames::parse_chain_announce(frame).ok().map(|a| a.epoch),
        _ => None,
    }
}

/// Take a catch-up answer, if we asked this peer; see the module notes.
pub fn on_response(state: &mut CircleState, ctx: &mut Ctx<'_>, peer: PeerRef, list: &[&[u8]]) -> Result<(), String> {
    if !state.sync.take_request(peer, ctx.now) {
        ctx.out.push(Output::Verdict { circle: state.id(), verdict: Verdict::Reject });
        return Err("catch-up answer we did not ask for; ignored".into());
    }
    let mut bad = 0;
    for f in list {
        if state.on_topic_frame(ctx, f.to_vec()) == Verdict::Reject {
            ctx.out.push(Output::Verdict { circle: state.id(), verdict: Verdict::Reject });
            bad += 1;
            if bad >= MAX_BAD_PER_ANSWER {
                ctx.event(Event::Rejected {
                    circle: state.id(),
                    reason: "catch-up answer full of invalid frames; the rest was dropped".into(),
                });
                break;
            }
        }
    }
    Ok(())
}
