//! The resolution rule, and each membership attack of issue 12 reproduced
//! against it (every `attack*` test fails on the v1 log).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;

use super::*;
use crate::circle::InviteSecret;
use crate::entropy::SeededEntropy;
use crate::identity::{IdentitySecret, NoiseSecret};

struct World {
    rng: SeededEntropy,
    circle: CircleId,
    log: CircleLog,
    ana: IdentitySecret,
}

fn person(rng: &mut SeededEntropy) -> IdentitySecret {
    IdentitySecret::generate(rng)
}

fn clone_id(s: &IdentitySecret) -> IdentitySecret {
    IdentitySecret::from_seed(&s.expose_seed())
}

fn world() -> World {
    let mut rng = SeededEntropy::from_u64(42);
    let ana = person(&mut rng);
    let noise = NoiseSecret::generate(&mut rng);
    let (g, circle) = Op::create(&ana, &noise, &noise, "river", "Ana", 0, 1000, &mut rng).unwrap();
    World { log: CircleLog::from_genesis(g).unwrap(), circle, ana, rng }
}

fn binding(w: &mut World, who: &IdentitySecret) -> NoiseBinding {
    let n = NoiseSecret::generate(&mut w.rng);
    NoiseBinding::create(who, &w.circle, &n, &n)
}

fn add(w: &mut World, by: &IdentitySecret, who: &IdentitySecret, name: &str, role: Role, parents: Vec<OpId>) -> Op {
    let b = binding(w, who);
    Op::sign(
        by,
        &w.circle,
        parents,
        OpBody::Add { member: who.member_id(), binding: b, display_name: name.into(), role },
        2000,
    )
    .unwrap()
}

fn sign(w: &World, by: &IdentitySecret, parents: Vec<OpId>, body: OpBody, ts: u64) -> Op {
    Op::sign(by, &w.circle, parents, body, ts).unwrap()
}

fn applied(outcome: InsertOutcome) -> Vec<MembershipChange> {
    match outcome {
        InsertOutcome::Applied { changes } => changes,
        other => panic!("expected applied, got {other:?}"),
    }
}

/// Ana (creator) adds Bo as organiser and Cy as member.
fn with_organiser_and_member(w: &mut World) -> (IdentitySecret, IdentitySecret) {
    let ana = clone_id(&w.ana);
    let bo = person(&mut w.rng);
    let cy = person(&mut w.rng);
    let op = {
        let h = w.log.heads();
        add(w, &ana, &bo, "Bo", Role::Organiser, h)
    };
    w.log.insert(op).unwrap();
    let op = {
        let h = w.log.heads();
        add(w, &ana, &cy, "Cy", Role::Member, h)
    };
    w.log.insert(op).unwrap();
    (bo, cy)
}

fn invite(w: &mut World, by: &IdentitySecret, expires_at_ms: u64, role: Role) -> (InviteSecret, OpId) {
    let secret = InviteSecret::generate(&mut w.rng);
    let op = sign(w, by, w.log.heads(), OpBody::Invite { invite_public: secret.public(), expires_at_ms, role }, 1500);
    let id = op.id();
    w.log.insert(op).unwrap();
    (secret, id)
}

fn join_request(w: &mut World, who: &IdentitySecret, secret: &InviteSecret, invite_op: OpId, name: &str) -> Op {
    let b = binding(w, who);
    Op::sign_join(who, &w.circle, secret, invite_op, b, name, 2000).unwrap()
}

fn admit(w: &World, by: &IdentitySecret, parents: Vec<OpId>, join: Op, ts: u64) -> Op {
    sign(w, by, parents, OpBody::Admit { join: Box::new(join) }, ts)
}

#[test]
fn attack1_removed_organiser_cannot_strike_back_with_backdated_removes() {
    let mut w = world();
    let ana = clone_id(&w.ana);
    let (bo, cy) = with_organiser_and_member(&mut w);
    let before = w.log.heads();
    let rm = sign(&w, &ana, before.clone(), OpBody::Remove { member: bo.member_id() }, 3000);
    w.log.insert(rm).unwrap();
    for (who, t) in [(ana.member_id(), 3001), (cy.member_id(), 3002)] {
        // Authorised in their own past (Bo was an organiser there), so they
        // are stored, and void: they are concurrent with Bo's removal.
        let strike = sign(&w, &bo, before.clone(), OpBody::Remove { member: who }, t);
        let changes = applied(w.log.insert(strike).unwrap());
        assert!(changes.iter().any(|c| matches!(c, MembershipChange::Ignored { .. })), "{changes:?}");
    }
    assert!(w.log.is_member(&ana.member_id()), "the remover was removed by the removed organiser");
    assert!(w.log.is_member(&cy.member_id()));
    assert!(!w.log.is_member(&bo.member_id()));
    // Anything Bo signs after seeing its removal is refused outright.
    let late = sign(&w, &bo, w.log.heads(), OpBody::Remove { member: ana.member_id() }, 4000);
    assert!(matches!(w.log.insert(late), Err(CircleError::Unauthorised(_))));
}

#[test]
fn attack2_demoted_organiser_cannot_undo_its_demotion_by_grinding() {
    let mut w = world();
    let ana = clone_id(&w.ana);
    let (bo, _cy) = with_organiser_and_member(&mut w);
    let before = w.log.heads();
    let demote = sign(&w, &ana, before.clone(), OpBody::SetRole { member: bo.member_id(), role: Role::Member }, 3000);
    let demote_id = demote.id();
    w.log.insert(demote).unwrap();
    // Bo grinds a backdated Remove of Ana whose id sorts before the demotion.
    let mut ts = 0;
    let strike = loop {
        let op = sign(&w, &bo, before.clone(), OpBody::Remove { member: ana.member_id() }, ts);
        if op.id() < demote_id {
            break op;
        }
        ts += 1;
    };
    let _ = w.log.insert(strike);
    assert!(w.log.is_member(&ana.member_id()), "the demoted organiser removed the organiser who demoted it");
    assert_eq!(w.log.role_of(&bo.member_id()), Some(Role::Member));
}

#[test]
fn attack3_removed_organiser_cannot_rejoin_through_its_own_invite() {
    let mut w = world();
    let ana = clone_id(&w.ana);
    let (bo, _cy) = with_organiser_and_member(&mut w);
    let (secret, inv_id) = invite(&mut w, &bo, 1_000_000, Role::Organiser);
    let rm = sign(&w, &ana, w.log.heads(), OpBody::Remove { member: bo.member_id() }, 3000);
    w.log.insert(rm).unwrap();
    assert_eq!(w.log.invite_status(&inv_id, 3000), InviteStatus::AuthorLostAuthority);
    let puppet = person(&mut w.rng);
    let join = join_request(&mut w, &puppet, &secret, inv_id, "Dee");
    // The bare join is refused; so is Bo admitting it, and so is Ana doing it
    // (only an invite's author admits with it).
    assert!(w.log.insert(join.clone()).is_err());
    let by_bo = admit(&w, &bo, w.log.heads(), join.clone(), 3500);
    assert!(matches!(w.log.insert(by_bo), Err(CircleError::Unauthorised(_))));
    let by_ana = admit(&w, &ana, w.log.heads(), join.clone(), 3500);
    assert!(matches!(w.log.insert(by_ana), Err(CircleError::Unauthorised(_))));
    // Bo admitting concurrently with its removal (backdated) is void too.
    let backdated = admit(&w, &bo, vec![inv_id], join, 2900);
    let _ = w.log.insert(backdated);
    assert!(!w.log.is_member(&puppet.member_id()), "an invite outlived its author's authority");
}

#[test]
fn attack4_a_backdated_join_does_not_beat_the_expiry() {
    let mut w = world();
    let ana = clone_id(&w.ana);
    let (secret, inv_id) = invite(&mut w, &ana, 3000, Role::Member);
    // Long after the expiry, the code holder signs a Join dated before it:
    // the joiner's date counts for nothing, the admitting organiser's does.
    let late = person(&mut w.rng);
    let join = join_request(&mut w, &late, &secret, inv_id, "Late");
    assert!(w.log.insert(join.clone()).is_err());
    let after_expiry = admit(&w, &ana, w.log.heads(), join, 3001);
    assert_eq!(w.log.insert(after_expiry), Err(CircleError::Unauthorised("the invite had expired")));
    assert!(!w.log.is_member(&late.member_id()), "the joiner's own date admitted it after the expiry");
}

#[test]
fn attack5_one_code_admits_one_person_and_a_second_use_is_refused() {
    let mut w = world();
    let ana = clone_id(&w.ana);
    let (secret, inv_id) = invite(&mut w, &ana, 1_000_000, Role::Member);
    let real = person(&mut w.rng);
    let thief = person(&mut w.rng);
    let real_join = join_request(&mut w, &real, &secret, inv_id, "Real");
    let thief_join = join_request(&mut w, &thief, &secret, inv_id, "Thief");
    let heads = w.log.heads();
    w.log.insert(admit(&w, &ana, heads.clone(), real_join, 2000)).unwrap();
    assert_eq!(w.log.invite_status(&inv_id, 2000), InviteStatus::Used);
    // After the first use, a second admission is refused at insert...
    assert!(w.log.insert(admit(&w, &ana, w.log.heads(), thief_join.clone(), 2001)).is_err());
    // ...and one the inviter signed concurrently (a compromised inviter)
    // voids both rather than ejecting anyone in favour of the other: the
    // real member stays out of reach of a double-signed code only if the
    // inviter is honest, which is the point of only the inviter admitting.
    let concurrent = admit(&w, &ana, heads, thief_join, 2002);
    let _ = w.log.insert(concurrent);
    assert!(!w.log.is_member(&thief.member_id()));
    // Neither Admit counts, and the code can admit nobody again: it is used,
    // not open, so its holders get no link (SPEC §2a) and no member reply
    // to a hello (§8) until its expiry (found in the spec review).
    assert_eq!(w.log.invite_status(&inv_id, 2003), InviteStatus::Used);
    assert!(w.log.open_invites().iter().all(|(op, _, _)| *op != inv_id));
}

#[test]
fn attack6_a_plain_member_cannot_fill_the_log_and_become_unremovable() {
    let mut w = world();
    let ana = clone_id(&w.ana);
    let (_bo, cy) = with_organiser_and_member(&mut w);
    let heads = w.log.heads();
    let junk: Vec<Op> =
        (0..MAX_OPS as u64).map(|t| Op::sign(&cy, &w.circle, heads.clone(), OpBody::Rotate, t).unwrap()).collect();
    assert!(w.log.insert_many(junk).is_err());
    assert!(w.log.len() < 100, "unauthorised operations were stored: {}", w.log.len());
    // Operations it may make (renames) stop at its quota.
    let renames: Vec<Op> = (0..200u64)
        .map(|t| {
            Op::sign(&cy, &w.circle, heads.clone(), OpBody::Rename { display_name: format!("Cy {t}") }, t).unwrap()
        })
        .collect();
    let _ = w.log.insert_many(renames);
    assert!(w.log.len() <= 4 + MEMBER_QUOTA, "{}", w.log.len());
    let rm = sign(&w, &ana, w.log.heads(), OpBody::Remove { member: cy.member_id() }, 9000);
    w.log.insert(rm).unwrap();
    assert!(!w.log.is_member(&cy.member_id()));
}

/// How many stored operations `who` authored.
fn stored_by(log: &CircleLog, who: &IdentitySecret) -> usize {
    log.ops_in_order().iter().filter(|op| op.author == who.member_id()).count()
}

#[test]
fn attack6_operations_waiting_for_a_parent_stay_within_a_plain_members_quota() {
    let mut w = world();
    let ana = clone_id(&w.ana);
    let (_bo, cy) = with_organiser_and_member(&mut w);
    let before = w.log.heads();
    w.log.insert(sign(&w, &ana, before.clone(), OpBody::Rotate, 3000)).unwrap();
    // Cy's first rename is concurrent with the rotation (so it is not placed
    // at once); 100 more name it as their parent and arrive before it.
    let first = sign(&w, &cy, before, OpBody::Rename { display_name: "Cy 0".into() }, 3001);
    let waiting: Vec<Op> = (1..=100u64)
        .map(|t| sign(&w, &cy, vec![first.id()], OpBody::Rename { display_name: format!("Cy {t}") }, 3001 + t))
        .collect();
    assert_eq!(w.log.insert_many(waiting).unwrap(), InsertOutcome::Pending);
    let _ = w.log.insert(first);
    assert!(
        stored_by(&w.log, &cy) <= MEMBER_QUOTA,
        "a plain member stored {} operations through the pending queue (quota {MEMBER_QUOTA})",
        stored_by(&w.log, &cy)
    );
    assert_eq!(stored_by(&w.log, &cy), MEMBER_QUOTA, "the quota is filled, not undershot");
    let rm = sign(&w, &ana, w.log.heads(), OpBody::Remove { member: cy.member_id() }, 9000);
    w.log.insert(rm).unwrap();
    assert!(!w.log.is_member(&cy.member_id()));
}

#[test]
fn attack6_a_batch_descending_from_an_unplaced_operation_stays_within_the_quota() {
    let mut w = world();
    let ana = clone_id(&w.ana);
    let (_bo, cy) = with_organiser_and_member(&mut w);
    let before = w.log.heads();
    w.log.insert(sign(&w, &ana, before.clone(), OpBody::Rotate, 3000)).unwrap();
    // One batch: a rename concurrent with the rotation, then a chain of 100
    // renames on top of it (each waits for the resolution at the batch's end).
    let mut batch = vec![sign(&w, &cy, before, OpBody::Rename { display_name: "Cy 0".into() }, 3001)];
    for t in 1..=100u64 {
        let parent = batch.last().map(Op::id).unwrap();
        batch.push(sign(&w, &cy, vec![parent], OpBody::Rename { display_name: format!("Cy {t}") }, 3001 + t));
    }
    assert_eq!(w.log.insert_many(batch).map(|_| ()), Ok(()), "what fits the quota is applied");
    assert_eq!(
        stored_by(&w.log, &cy),
        MEMBER_QUOTA,
        "a plain member stored {} operations in one batch (quota {MEMBER_QUOTA})",
        stored_by(&w.log, &cy)
    );
    // An organiser's quota is judged by its standing in the operation's past:
    // Ana, an organiser, is not held to the plain member's.
    let before = w.log.heads();
    w.log.insert(sign(&w, &ana, before.clone(), OpBody::Rotate, 5000)).unwrap();
    let mut batch = vec![sign(&w, &ana, before, OpBody::Rotate, 5001)];
    for t in 1..=100u64 {
        let parent = batch.last().map(Op::id).unwrap();
        batch.push(sign(&w, &ana, vec![parent], OpBody::Rotate, 5001 + t));
    }
    let ana_before = stored_by(&w.log, &ana);
    w.log.insert_many(batch).unwrap();
    assert_eq!(stored_by(&w.log, &ana), ana_before + 101);
}

/// Ana (creator) adds Bo, then Cy, as organisers.
fn two_more_organisers(w: &mut World) -> (IdentitySecret, IdentitySecret) {
    let ana = clone_id(&w.ana);
    let bo = person(&mut w.rng);
    let cy = person(&mut w.rng);
    for (p, n) in [(&bo, "Bo"), (&cy, "Cy")] {
        let op = {
            let h = w.log.heads();
            add(w, &ana, p, n, Role::Organiser, h)
        };
        w.log.insert(op).unwrap();
    }
    (bo, cy)
}

#[test]
fn mutual_removal_leaves_the_senior_organiser() {
    let mut w = world();
    let ana = clone_id(&w.ana);
    let (bo, cy) = two_more_organisers(&mut w);
    let heads = w.log.heads();
    let a = sign(&w, &bo, heads.clone(), OpBody::Remove { member: cy.member_id() }, 3000);
    let b = sign(&w, &cy, heads, OpBody::Remove { member: bo.member_id() }, 3000);
    w.log.insert(a).unwrap();
    w.log.insert(b).unwrap();
    // Bo was made organiser before Cy: Bo's removal of Cy wins.
    assert!(w.log.is_member(&bo.member_id()));
    assert!(!w.log.is_member(&cy.member_id()));
    assert!(w.log.is_member(&ana.member_id()));
    assert_eq!(w.log.organisers(), 2);
}

#[test]
fn a_three_way_removal_cycle_leaves_the_most_senior() {
    let mut w = world();
    let ana = clone_id(&w.ana);
    let (bo, cy) = two_more_organisers(&mut w);
    let heads = w.log.heads();
    let ops = [
        sign(&w, &ana, heads.clone(), OpBody::Remove { member: bo.member_id() }, 3000),
        sign(&w, &bo, heads.clone(), OpBody::Remove { member: cy.member_id() }, 3000),
        sign(&w, &cy, heads, OpBody::Remove { member: ana.member_id() }, 3000),
    ];
    w.log.insert_many(ops.to_vec()).unwrap();
    assert!(w.log.is_member(&ana.member_id()), "the creator is the most senior");
    assert!(!w.log.is_member(&bo.member_id()));
    assert!(w.log.is_member(&cy.member_id()), "Bo's removal of Cy lost with Bo");
}

#[test]
fn concurrent_add_by_a_removed_organiser_loses() {
    let mut w = world();
    let ana = clone_id(&w.ana);
    let bo = person(&mut w.rng);
    let x = person(&mut w.rng);
    let add_bo = {
        let h = w.log.heads();
        add(&mut w, &ana, &bo, "Bo", Role::Organiser, h)
    };
    w.log.insert(add_bo).unwrap();
    let heads = w.log.heads();
    let bo_adds_x = add(&mut w, &bo, &x, "X", Role::Member, heads.clone());
    let ana_removes_bo = sign(&w, &ana, heads, OpBody::Remove { member: bo.member_id() }, 3000);
    w.log.insert(bo_adds_x).unwrap();
    w.log.insert(ana_removes_bo).unwrap();
    assert!(!w.log.is_member(&bo.member_id()));
    assert!(!w.log.is_member(&x.member_id()));
}

#[test]
fn concurrent_remove_and_promote_remove_wins() {
    let mut w = world();
    let ana = clone_id(&w.ana);
    let bo = person(&mut w.rng);
    let x = person(&mut w.rng);
    for (p, n, r) in [(&bo, "Bo", Role::Organiser), (&x, "X", Role::Member)] {
        let op = {
            let h = w.log.heads();
            add(&mut w, &ana, p, n, r, h)
        };
        w.log.insert(op).unwrap();
    }
    let heads = w.log.heads();
    let promote = sign(&w, &ana, heads.clone(), OpBody::SetRole { member: x.member_id(), role: Role::Organiser }, 3000);
    let remove = sign(&w, &bo, heads, OpBody::Remove { member: x.member_id() }, 3000);
    w.log.insert(remove).unwrap();
    w.log.insert(promote).unwrap();
    assert!(!w.log.is_member(&x.member_id()));
}

#[test]
fn plain_members_and_outsiders_are_refused_at_insert() {
    let mut w = world();
    let (bo, cy) = with_organiser_and_member(&mut w);
    let epoch = w.log.epoch();
    let len = w.log.len();
    let dee = person(&mut w.rng);
    let by_member = {
        let h = w.log.heads();
        add(&mut w, &cy, &dee, "Dee", Role::Member, h)
    };
    assert!(matches!(w.log.insert(by_member), Err(CircleError::Unauthorised(_))));
    let rm = sign(&w, &cy, w.log.heads(), OpBody::Remove { member: bo.member_id() }, 3000);
    assert!(w.log.insert(rm).is_err());
    let outsider = person(&mut w.rng);
    let by_outsider = sign(&w, &outsider, w.log.heads(), OpBody::Rotate, 3000);
    assert!(w.log.insert(by_outsider).is_err());
    assert_eq!((w.log.epoch(), w.log.len()), (epoch, len), "nothing refused was stored");
    // Leaving and renaming oneself are a member's own.
    let rename = sign(&w, &cy, w.log.heads(), OpBody::Rename { display_name: "Cyrus".into() }, 3500);
    let changes = applied(w.log.insert(rename).unwrap());
    assert!(matches!(&changes[0], MembershipChange::Renamed { to, .. } if to == "Cyrus"));
    let leave = sign(&w, &cy, w.log.heads(), OpBody::Remove { member: cy.member_id() }, 4000);
    let changes = applied(w.log.insert(leave).unwrap());
    assert!(matches!(changes[0], MembershipChange::Removed { .. }));
}

#[test]
fn invites_admit_once_can_be_revoked_and_die_with_their_author() {
    let mut w = world();
    let ana = clone_id(&w.ana);
    let (secret, inv_id) = invite(&mut w, &ana, 5000, Role::Member);
    assert!(matches!(w.log.invite_status(&inv_id, 2000), InviteStatus::Open { .. }));
    assert_eq!(w.log.invite_status(&inv_id, 6000), InviteStatus::Expired);
    let bo = person(&mut w.rng);
    let join = join_request(&mut w, &bo, &secret, inv_id, "Bo");
    let changes = applied(w.log.insert(admit(&w, &ana, w.log.heads(), join.clone(), 2000)).unwrap());
    assert!(matches!(&changes[0], MembershipChange::Joined { name, role: Role::Member, .. } if name == "Bo"));
    assert_eq!(w.log.invite_status(&inv_id, 2000), InviteStatus::Used);
    assert_eq!(w.log.admitted_join(&inv_id).map(Op::id), Some(join.id()));
    // A join signed with another key than the invite's is refused.
    let (_, inv2) = invite(&mut w, &ana, 9000, Role::Member);
    let wrong = InviteSecret::generate(&mut w.rng);
    let cy = person(&mut w.rng);
    let forged = join_request(&mut w, &cy, &wrong, inv2, "Cy");
    assert_eq!(w.log.insert(admit(&w, &ana, w.log.heads(), forged, 2500)), Err(CircleError::BadSignature));
    // Revoked: an admission after it is refused, one concurrent with it void.
    let (secret3, inv3) = invite(&mut w, &ana, 9000, Role::Member);
    let before_revoke = w.log.heads();
    let revoke = sign(&w, &ana, w.log.heads(), OpBody::RevokeInvite { invite_op: inv3 }, 3000);
    let changes = applied(w.log.insert(revoke).unwrap());
    assert!(matches!(changes[0], MembershipChange::InviteRevoked { .. }));
    assert_eq!(w.log.invite_status(&inv3, 3000), InviteStatus::Revoked);
    let dee = person(&mut w.rng);
    let join3 = join_request(&mut w, &dee, &secret3, inv3, "Dee");
    assert!(w.log.insert(admit(&w, &ana, w.log.heads(), join3.clone(), 3100)).is_err());
    let _ = w.log.insert(admit(&w, &ana, before_revoke, join3, 2900));
    assert!(!w.log.is_member(&dee.member_id()));
}

#[test]
fn children_before_parents_wait_and_then_apply() {
    let mut w = world();
    let ana = clone_id(&w.ana);
    let bo = person(&mut w.rng);
    let cy = person(&mut w.rng);
    let first = {
        let h = w.log.heads();
        add(&mut w, &ana, &bo, "Bo", Role::Member, h)
    };
    let second = add(&mut w, &ana, &cy, "Cy", Role::Member, vec![first.id()]);
    assert_eq!(w.log.insert(second).unwrap(), InsertOutcome::Pending);
    assert!(!w.log.is_member(&cy.member_id()));
    let changes = applied(w.log.insert(first).unwrap());
    assert_eq!(changes.len(), 2);
    assert!(w.log.is_member(&cy.member_id()));
}

#[test]
fn look_alike_names_are_found() {
    let mut w = world();
    let ana = clone_id(&w.ana);
    let fake = person(&mut w.rng);
    let op = {
        let h = w.log.heads();
        add(&mut w, &ana, &fake, "\u{410}na", Role::Member, h)
    };
    w.log.insert(op).unwrap();
    assert_eq!(w.log.lookalike_of(&fake.member_id()), Some(ana.member_id()));
}

#[test]
fn incremental_and_full_resolution_agree() {
    let (g, ops) = random_history(7, 40);
    let mut one_by_one = CircleLog::from_genesis(g.clone()).unwrap();
    for op in ops.iter().cloned() {
        let _ = one_by_one.insert(op);
    }
    let mut all = vec![g];
    all.extend(one_by_one.ops_in_order().into_iter().skip(1).cloned());
    let rebuilt = CircleLog::from_ops(all).unwrap();
    assert_eq!(summary(&one_by_one), summary(&rebuilt));
    assert_eq!(one_by_one.epoch(), rebuilt.epoch());
}

fn summary(l: &CircleLog) -> Vec<(MemberId, Role)> {
    l.members().iter().map(|m| (m.id, m.role)).collect()
}

/// A random history of operations with concurrency: organisers and members
/// add, remove, promote and demote each other, from random earlier points.
fn random_history(seed: u64, n: usize) -> (Op, Vec<Op>) {
    let mut rng = SeededEntropy::from_u64(seed);
    let ana = IdentitySecret::generate(&mut rng);
    let noise = NoiseSecret::generate(&mut rng);
    let (g, circle) = Op::create(&ana, &noise, &noise, "c", "Ana", 0, 0, &mut rng).unwrap();
    let people: Vec<IdentitySecret> = (0..5).map(|_| IdentitySecret::generate(&mut rng)).collect();
    // Grow a log as the authors saw it, so operations are mostly authorised.
    let mut log = CircleLog::from_genesis(g.clone()).unwrap();
    let mut all: Vec<Op> = vec![];
    let mut ids: Vec<OpId> = vec![g.id()];
    for k in 0..n * 4 {
        if all.len() >= n {
            break;
        }
        let r: [u8; 4] = crate::entropy::Entropy::array(&mut rng);
        let p1 = ids[r[0] as usize % ids.len()];
        let p2 = ids[r[1] as usize % ids.len()];
        let author = if r[2].is_multiple_of(3) { &ana } else { &people[r[2] as usize % people.len()] };
        let target = &people[r[3] as usize % people.len()];
        let body = match k % 4 {
            0 | 1 => OpBody::Add {
                member: target.member_id(),
                binding: NoiseBinding::create(
                    target,
                    &circle,
                    &NoiseSecret::generate(&mut rng),
                    &NoiseSecret::generate(&mut rng),
                ),
                display_name: "p".into(),
                role: if r[3].is_multiple_of(2) { Role::Organiser } else { Role::Member },
            },
            2 => OpBody::Remove { member: target.member_id() },
            _ => OpBody::SetRole {
                member: target.member_id(),
                role: if r[1].is_multiple_of(2) { Role::Member } else { Role::Organiser },
            },
        };
        let op = Op::sign(author, &circle, vec![p1, p2], body, k as u64).unwrap();
        if log.insert(op.clone()).is_ok() {
            ids.push(op.id());
            all.push(op);
        }
    }
    (g, all)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    #[test]
    fn any_delivery_order_converges(seed in 0u64..1000, shuffle in any::<u64>()) {
        let (g, ops) = random_history(seed, 24);
        let mut a = CircleLog::from_genesis(g.clone()).unwrap();
        for op in ops.iter().cloned() {
            a.insert(op).unwrap();
        }
        let mut order: Vec<usize> = (0..ops.len()).collect();
        let mut rng = SeededEntropy::from_u64(shuffle);
        for i in (1..order.len()).rev() {
            let r: [u8; 8] = crate::entropy::Entropy::array(&mut rng);
            order.swap(i, u64::from_le_bytes(r) as usize % (i + 1));
        }
        let mut b = CircleLog::from_genesis(g).unwrap();
        for i in order {
            let _ = b.insert(ops[i].clone());
        }
        prop_assert_eq!(summary(&a), summary(&b));
        prop_assert_eq!(a.epoch(), b.epoch());
        prop_assert_eq!(a.heads(), b.heads());
        prop_assert_eq!(a.len(), ops.len() + 1);
        prop_assert!(a.organisers() >= 1, "a circle always keeps an organiser");
    }
}

#[test]
fn attack1_once_every_member_saw_the_removal_a_backdated_operation_is_refused() {
    let mut w = world();
    let ana = clone_id(&w.ana);
    let (bo, cy) = with_organiser_and_member(&mut w);
    let before = w.log.heads();
    let rm = sign(&w, &ana, before.clone(), OpBody::Remove { member: bo.member_id() }, 3000);
    w.log.insert(rm).unwrap();
    // Ana and Cy both echo heads that hold the removal (their key
    // distributions after it carry them).
    let heads = w.log.heads();
    w.log.acknowledge(ana.member_id(), &heads);
    w.log.acknowledge(cy.member_id(), &heads);
    let strike = sign(&w, &bo, before, OpBody::Remove { member: ana.member_id() }, 3001);
    let len = w.log.len();
    assert_eq!(w.log.insert(strike), Err(CircleError::Backdated));
    assert_eq!(w.log.len(), len, "a backdated operation was stored");
}

#[test]
fn an_offline_members_honest_concurrent_operation_is_kept() {
    let mut w = world();
    let ana = clone_id(&w.ana);
    let (bo, cy) = with_organiser_and_member(&mut w);
    let before = w.log.heads();
    w.log.acknowledge(cy.member_id(), &before);
    // While Cy is away, Ana rotates; Bo and Ana acknowledge it, Cy cannot.
    let rot = sign(&w, &ana, before.clone(), OpBody::Rotate, 3000);
    w.log.insert(rot).unwrap();
    let heads = w.log.heads();
    w.log.acknowledge(ana.member_id(), &heads);
    w.log.acknowledge(bo.member_id(), &heads);
    // Cy, back, renames itself from what it had: not settled, so accepted.
    let rename = sign(&w, &cy, before, OpBody::Rename { display_name: "Cyrus".into() }, 3500);
    w.log.insert(rename).unwrap();
    assert_eq!(w.log.member(&cy.member_id()).unwrap().display_name, "Cyrus");
}

/// Found in the spec review: operations waiting for a parent were kept
/// first in first out, 1024 in all, so any member could flush an honest
/// organiser's waiting operation with junk (under its own key or made-up
/// ones) and stall that member's catch-up. Each member now has a share.
#[test]
fn junk_waiting_for_parents_does_not_push_out_a_members_waiting_operation() {
    let mut w = world();
    let ana = clone_id(&w.ana);
    let (_bo, cy) = with_organiser_and_member(&mut w);
    let first = sign(&w, &ana, w.log.heads(), OpBody::Rotate, 3000);
    let second = sign(&w, &ana, vec![first.id()], OpBody::Rename { display_name: "Ana M".into() }, 3001);
    let _ = w.log.insert(second.clone());
    assert!(!w.log.contains(&second.id()), "it waits for its parent");
    let missing = [9u8; 32];
    let mut junk: Vec<Op> = (0..2 * MAX_PENDING as u64)
        .map(|t| sign(&w, &cy, vec![missing], OpBody::Rename { display_name: format!("Cy {t}") }, 3002 + t))
        .collect();
    for _ in 0..MAX_PENDING {
        let stranger = person(&mut w.rng);
        junk.push(sign(&w, &stranger, vec![missing], OpBody::Rotate, 5000));
    }
    for op in junk {
        let _ = w.log.insert(op);
    }
    w.log.insert(first).unwrap();
    assert!(w.log.contains(&second.id()), "ana's waiting operation was pushed out by junk");
}
