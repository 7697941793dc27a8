//! Agreement attacks of issue 12 against the engine: a member passing on
//! another's chain as its own (key-id squatting), a flood of chains from
//! one member, two frames signed as one message (equivocation), and a
//! distribution whose roster its own heads do not give (split view).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::circle_state::MAX_CHAINS_PER_MEMBER;
use super::frames::{PairPayload, chain_owner_message};
use super::*;
use crate::crypto::ratchet::SendingChain;
use crate::entropy::SeededEntropy;
use crate::identity::IdentitySecret;
use crate::sim::{Faults, Sim};
use crate::wire::pad;

fn circle_of_three() -> (Sim, CircleId) {
    let mut sim = Sim::new(7, &["ana", "bo", "cy"], Faults::NONE, EngineConfig::default());
    sim.command(0, Command::CreateCircle { name: "riverside".into(), max_disappear_secs: None });
    let circle = sim.created_circle(0).unwrap();
    assert!(sim.invite_and_join(circle, 0, 1));
    assert!(sim.invite_and_join(circle, 0, 2));
    sim.run_for(5_000);
    (sim, circle)
}

fn member(sim: &Sim, i: usize) -> MemberId {
    sim.nodes[i].engine.identity.member_id()
}

/// Hand `payload` to node `to` as a pairwise payload from `from` (what a
/// modified client can make its own pairwise channel carry).
fn deliver_payload(sim: &mut Sim, to: usize, circle: CircleId, from: MemberId, payload: &PairPayload) -> Vec<Output> {
    let padded = pad(&payload.encode()).unwrap();
    let mut rng = SeededEntropy::from_u64(99);
    let now = sim.now;
    let mut result = Ok(false);
    let out = sim.nodes[to].engine.with_ctx(now, &mut rng, |circles, _, ctx| {
        result = circles.get_mut(&circle).unwrap().on_pair_payload(ctx, from, &padded);
    });
    let _ = result;
    out
}

/// A fresh chain of `owner`'s with a valid ownership proof.
fn distribution_of(sim: &Sim, circle: CircleId, owner: usize, seed: u64) -> (PairPayload, KeyIdOf) {
    let state = sim.nodes[owner].engine.circle(&circle).unwrap();
    let chain = SendingChain::generate(state.log.epoch(), sim.now, &mut SeededEntropy::from_u64(seed));
    let context = state.log.group_context();
    let proof = chain.sign(&chain_owner_message(&circle, &member(sim, owner), chain.epoch(), &context));
    let key = chain.key_id();
    (
        PairPayload::SenderKey {
            distribution: chain.distribution(),
            context,
            owner_proof: proof,
            previous: None,
            heads: state.log.heads(),
        },
        key,
    )
}

type KeyIdOf = crate::crypto::ratchet::KeyId;

#[test]
fn attack8_a_member_cannot_squat_on_another_members_chain() {
    let (mut sim, circle) = circle_of_three();
    let (ana, bo) = (member(&sim, 0), member(&sim, 1));
    // Ana's new chain, exactly as Bo received it from Ana (proof included),
    // reaches Cy first from Bo, as Bo's own.
    let (payload, key) = distribution_of(&sim, circle, 0, 1);
    deliver_payload(&mut sim, 2, circle, bo, &payload);
    let held = |sim: &Sim| sim.nodes[2].engine.circle(&circle).unwrap().receiving.get(&key).map(|r| r.sender);
    assert_ne!(held(&sim), Some(bo), "Bo's claim on Ana's chain was accepted");
    // Ana's own distribution still binds the chain to Ana.
    deliver_payload(&mut sim, 2, circle, ana, &payload);
    assert_eq!(held(&sim), Some(ana), "Ana was silenced");
}

#[test]
fn attack9_one_member_cannot_grow_anothers_state_without_bound() {
    let (mut sim, circle) = circle_of_three();
    let bo = member(&sim, 1);
    let before = sim.nodes[2].engine.circle(&circle).unwrap().export().len();
    for seed in 0..150 {
        let (payload, _) = distribution_of(&sim, circle, 1, 1000 + seed);
        deliver_payload(&mut sim, 2, circle, bo, &payload);
    }
    let state = sim.nodes[2].engine.circle(&circle).unwrap();
    let chains = state.receiving.values().filter(|r| r.sender == bo).count();
    assert!(chains <= MAX_CHAINS_PER_MEMBER, "{chains} chains held for one member");
    let after = state.export().len();
    assert!(after < before + 64 * 1024, "snapshot grew from {before} to {after} bytes");
}

#[test]
fn attack7_two_frames_signed_as_one_message_are_flagged() {
    let (mut sim, circle) = circle_of_three();
    let ana = member(&sim, 0);
    // Ana's client seals two different texts under the same key and counter.
    let saved = sim.nodes[0].engine.circles.get(&circle).unwrap().chain.export();
    let inner = |text: &str, sim: &Sim| message::Inner {
        circle_id: circle,
        sender: ana,
        epoch: sim.nodes[0].engine.circle(&circle).unwrap().chain.epoch(),
        sent_at_ms: sim.now,
        timer_secs: 0,
        body: message::Body::Text(text.into()),
    };
    let first = inner("meet at the north gate", &sim);
    sim.seal_raw(0, circle, &first);
    sim.run_for(1_000);
    sim.nodes[0].engine.circles.get_mut(&circle).unwrap().chain = SendingChain::import(&saved).unwrap();
    let second = inner("meet at the south gate", &sim);
    sim.seal_raw(0, circle, &second);
    sim.run_for(1_000);
    for i in [1, 2] {
        let state = sim.nodes[i].engine.circle(&circle).unwrap();
        assert_eq!(state.equivocations().len(), 1, "node {i} did not flag the equivocation");
        assert_eq!(state.equivocations()[0].member, ana);
        assert!(sim.nodes[i].events.iter().any(|e| matches!(e, Event::Equivocation { member, .. } if *member == ana)));
    }
}

#[test]
fn a_distribution_whose_heads_do_not_give_its_roster_is_a_split_view() {
    let (mut sim, circle) = circle_of_three();
    let bo = member(&sim, 1);
    let (mut payload, _) = distribution_of(&sim, circle, 1, 5);
    // Bo claims a roster (context) other than the one its heads resolve to.
    if let PairPayload::SenderKey { context, owner_proof, distribution, .. } = &mut payload {
        *context = [7; 32];
        let chain = SendingChain::generate(distribution.epoch, sim.now, &mut SeededEntropy::from_u64(5));
        *owner_proof = chain.sign(&chain_owner_message(&circle, &bo, distribution.epoch, context));
    }
    let out = deliver_payload(&mut sim, 2, circle, bo, &payload);
    assert!(out.iter().any(|o| matches!(o, Output::Event(Event::SplitView { member, .. }) if *member == bo)));
}

fn four_with_two_organisers() -> (Sim, CircleId) {
    let mut sim = Sim::new(11, &["ana", "bo", "cy", "dee"], Faults::NONE, EngineConfig::default());
    sim.command(0, Command::CreateCircle { name: "riverside".into(), max_disappear_secs: None });
    let circle = sim.created_circle(0).unwrap();
    for j in 1..4 {
        assert!(sim.invite_and_join(circle, 0, j));
    }
    let bo = member(&sim, 1);
    sim.command(0, Command::SetRole { circle, member: bo, role: Role::Organiser });
    sim.run_for(5_000);
    (sim, circle)
}

fn roster(sim: &Sim, i: usize, circle: &CircleId) -> Vec<MemberId> {
    sim.nodes[i].engine.circle(circle).unwrap().log.members().iter().map(|m| m.id).collect()
}

/// Attack 1 with engines: Bo, removed while Dee was offline, signs Removes
/// of everyone on the heads from before its removal and gets them to Dee,
/// who still counts Bo as an organiser; then Dee meets the others.
#[test]
fn attack1_engines_a_removed_organiser_striking_back_through_an_offline_member_changes_nothing() {
    let (mut sim, circle) = four_with_two_organisers();
    let (ana, bo, cy, dee) = (member(&sim, 0), member(&sim, 1), member(&sim, 2), member(&sim, 3));
    let before = sim.nodes[1].engine.circle(&circle).unwrap().log.heads();
    sim.set_online(3, false);
    sim.command(0, Command::Remove { circle, member: bo });
    sim.run_for(5_000);
    assert!(!roster(&sim, 0, &circle).contains(&bo));
    // Only Dee hears Bo now.
    sim.set_online(0, false);
    sim.set_online(2, false);
    sim.set_online(3, true);
    let bo_identity = IdentitySecret::from_seed(&sim.nodes[1].engine.identity.expose_seed());
    sim.nodes[1].engine.circles.get_mut(&circle).unwrap().removed = false;
    for (t, target) in [(1, ana), (2, cy), (3, dee)] {
        let strike =
            Op::sign(&bo_identity, &circle, before.clone(), OpBody::Remove { member: target }, sim.now - t).unwrap();
        let inner = message::Inner {
            circle_id: circle,
            sender: bo,
            epoch: sim.nodes[1].engine.circle(&circle).unwrap().chain.epoch(),
            sent_at_ms: sim.now,
            timer_secs: 0,
            body: message::Body::Op(strike.encode()),
        };
        sim.seal_raw(1, circle, &inner);
    }
    sim.run_for(5_000);
    // Everyone meets again.
    sim.set_online(0, true);
    sim.set_online(2, true);
    sim.run_for(60_000);
    for i in [0, 2, 3] {
        let r = roster(&sim, i, &circle);
        assert!(
            r.contains(&ana) && r.contains(&cy) && r.contains(&dee),
            "node {i}: the strike-back removed members: {r:?}"
        );
        assert!(!r.contains(&bo), "node {i}: Bo is back");
    }
    // The circle goes on: a message from Ana reaches Cy and Dee, not Bo.
    sim.command(0, Command::SendText { circle, text: "after the strike".into(), timer_secs: None });
    sim.run_for(20_000);
    let has = |sim: &Sim, i: usize| {
        sim.nodes[i].engine.circle(&circle).unwrap().history().iter().any(|m| m.text == "after the strike")
    };
    assert!(has(&sim, 2) && has(&sim, 3));
    assert!(!has(&sim, 1), "the removed organiser reads new messages");
}

fn invite_code(sim: &mut Sim, circle: CircleId, organiser: usize) -> String {
    sim.command(
        organiser,
        Command::CreateInvite { circle, expires_in_ms: 3600 * 1000, role: Role::Member, addresses: vec![] },
    );
    let code = sim.nodes[organiser].events.iter().rev().find_map(|e| match e {
        Event::InviteCreated { code, .. } => Some(code.clone()),
        _ => None,
    });
    sim.run_for(2_000);
    code.unwrap()
}

/// Attack 5 with engines: one code used by two people at once (the real
/// invitee and someone who photographed it). At most one gets in, and the
/// other learns no circle secret.
#[test]
fn attack5_engines_one_code_two_joiners_admits_one_and_the_other_learns_nothing() {
    let mut sim = Sim::new(13, &["ana", "bo", "real", "thief"], Faults::NONE, EngineConfig::default());
    sim.command(0, Command::CreateCircle { name: "riverside".into(), max_disappear_secs: None });
    let circle = sim.created_circle(0).unwrap();
    assert!(sim.invite_and_join(circle, 0, 1));
    sim.run_for(3_000);
    let code = invite_code(&mut sim, circle, 0);
    sim.command(2, Command::Join { code: code.clone() });
    sim.command(3, Command::Join { code });
    sim.run_for(60_000);
    let admitted: Vec<usize> = [2, 3].into_iter().filter(|i| sim.nodes[*i].engine.circle(&circle).is_some()).collect();
    assert_eq!(admitted.len(), 1, "one code let {} people in", admitted.len());
    let winner = member(&sim, admitted[0]);
    for i in [0, 1] {
        assert!(roster(&sim, i, &circle).contains(&winner), "node {i} ejected the joiner that won");
    }
}

/// Attack 3 with engines: an organiser's invite dies with its author's
/// authority, even when handed to a friend after the removal.
#[test]
fn attack3_engines_a_removed_organisers_invite_admits_nobody() {
    let mut sim = Sim::new(17, &["ana", "bo", "friend"], Faults::NONE, EngineConfig::default());
    sim.command(0, Command::CreateCircle { name: "riverside".into(), max_disappear_secs: None });
    let circle = sim.created_circle(0).unwrap();
    assert!(sim.invite_and_join(circle, 0, 1));
    let bo = member(&sim, 1);
    sim.command(0, Command::SetRole { circle, member: bo, role: Role::Organiser });
    sim.run_for(3_000);
    let code = invite_code(&mut sim, circle, 1);
    sim.command(0, Command::Remove { circle, member: bo });
    sim.run_for(5_000);
    sim.command(2, Command::Join { code });
    sim.run_for(60_000);
    assert!(sim.nodes[2].engine.circle(&circle).is_none(), "the removed organiser's invite admitted someone");
    assert!(!roster(&sim, 0, &circle).contains(&member(&sim, 2)));
}

#[test]
fn rename_and_revoke_reach_every_member() {
    let (mut sim, circle) = circle_of_three();
    sim.command(2, Command::Rename { circle, name: "Ｃｙｒｕｓ".into() });
    sim.run_for(5_000);
    let cy = member(&sim, 2);
    for i in 0..3 {
        let name = sim.nodes[i].engine.circle(&circle).unwrap().log.member(&cy).unwrap().display_name.clone();
        assert_eq!(name, "Cyrus", "node {i}: the rename is normalised and applied everywhere");
    }
    let code = invite_code(&mut sim, circle, 0);
    sim.command(0, Command::RevokeInvite { circle, code: code.clone() });
    sim.run_for(3_000);
    let code = crate::circle::InviteCode::parse(&code).unwrap();
    for i in 0..3 {
        let status = sim.nodes[i].engine.circle(&circle).unwrap().log.invite_status(&code.invite_op, sim.now);
        assert_eq!(status, crate::circle::InviteStatus::Revoked, "node {i}");
    }
}

/// A chain can reach a member twice: first from a later counter (sent for
/// a request made after our welcome), then its first distribution. While
/// nothing was read under it, the earlier state replaces the later one,
/// so the messages in between open; once something was read, an earlier
/// copy is a replay and changes nothing.
#[test]
fn a_chain_from_an_earlier_counter_replaces_one_not_yet_read_from() {
    let (mut sim, circle) = circle_of_three();
    let ana = member(&sim, 0);
    let state = sim.nodes[0].engine.circle(&circle).unwrap();
    let (context, heads) = (state.log.group_context(), state.log.heads());
    let mut chain = SendingChain::generate(state.log.epoch(), sim.now, &mut SeededEntropy::from_u64(5));
    let proof = chain.sign(&chain_owner_message(&circle, &ana, chain.epoch(), &context));
    let payload_at = |chain: &SendingChain| PairPayload::SenderKey {
        distribution: chain.distribution(),
        context,
        owner_proof: proof,
        previous: None,
        heads: heads.clone(),
    };
    let first = payload_at(&chain);
    for _ in 0..5 {
        chain.next_message_key().unwrap();
    }
    let later = payload_at(&chain);
    let key = chain.key_id();
    let started = |sim: &Sim| sim.nodes[2].engine.circle(&circle).unwrap().receiving.get(&key).map(|r| r.started_at);
    deliver_payload(&mut sim, 2, circle, ana, &later);
    assert_eq!(started(&sim), Some(5));
    deliver_payload(&mut sim, 2, circle, ana, &first);
    assert_eq!(started(&sim), Some(0), "the earlier state replaced the later one");
    // Read under it (counter 0 taken): a copy from an earlier counter is
    // now a replay.
    let r = sim.nodes[2].engine.circles.get_mut(&circle).unwrap().receiving.get_mut(&key).unwrap();
    let (_, advance) = r.chain.look_up(0).unwrap();
    r.chain.commit(advance);
    deliver_payload(&mut sim, 2, circle, ana, &first);
    let r = sim.nodes[2].engine.circle(&circle).unwrap().receiving.get(&key).unwrap();
    assert_eq!(r.chain.next_counter(), 1, "a replayed first distribution rewound a chain in use");
}

/// Found in the spec review: a log answered with LogOps went out in chunks
/// that padded to 65,536 bytes, which no Noise message can carry (65,535
/// at most), so every full chunk failed to send and a member missing more
/// than ~32 KiB of log never repaired it. Every chunk of a full log now
/// fits one handshake.
#[test]
fn every_chunk_of_a_full_log_fits_one_pairwise_handshake() {
    use crate::crypto::pairwise::{KkContext, KkInitiator};
    let ops: Vec<Vec<u8>> = (0..10_000u32).map(|i| vec![(i % 251) as u8; 845]).collect();
    let chunks = super::circle_state::split_ops(ops);
    assert_eq!(chunks.iter().map(Vec::len).sum::<usize>(), 10_000);
    let local = crate::identity::NoiseSecret::from_bytes([1; 32]);
    let remote = crate::identity::NoiseSecret::from_bytes([2; 32]).public();
    let context =
        KkContext { circle_id: [3; 32], epoch: 1, initiator: MemberId([4; 32]), responder: MemberId([5; 32]) };
    let mut rng = SeededEntropy::from_u64(1);
    for (i, chunk) in chunks.into_iter().enumerate() {
        let padded = pad(&PairPayload::LogOps(chunk).encode()).unwrap();
        assert!(padded.len() <= super::frames::MAX_PAIR_PADDED, "chunk {i}: {} bytes padded", padded.len());
        assert!(KkInitiator::start(&local, &remote, &[6; 32], &context, &padded, &mut rng).is_ok(), "chunk {i}");
    }
}
