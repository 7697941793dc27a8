//! Catch-up between members (anti-entropy): when two members meet, each
//! says which frames it holds (8-byte id prefixes) and the other sends what
//! is missing, still within expiry. Frames are end-to-end encrypted
//! already, so any member can relay any other member's frames, including
//! pairwise frames addressed to someone who was offline (mailboxing).

use super::Ctx;
use super::circle_state::CircleState;
use super::frames;
use super::types::{Output, PeerRef};

/// Most bytes of frames sent in one catch-up answer; the peer asks again
/// for the rest.
const MAX_ANSWER_BYTES: usize = 2 * 1024 * 1024;

pub fn request(state: &CircleState, ctx: &mut Ctx<'_>, peer: PeerRef) {
    ctx.out.push(Output::SendDirect {
        circle: state.id(),
        peer,
        frame: frames::encode_sync_request(&state.frames.summary()),
    });
}

pub fn answer(state: &CircleState, ctx: &mut Ctx<'_>, peer: PeerRef, have: &[[u8; 8]]) {
    let missing = state.frames.missing_from(have, MAX_ANSWER_BYTES);
    if missing.is_empty() {
        return;
    }
    ctx.out.push(Output::SendDirect { circle: state.id(), peer, frame: frames::encode_sync_response(&missing) });
}
