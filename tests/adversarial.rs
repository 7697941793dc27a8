//! Attacks on real nodes over 127.0.0.1: honest `kolo daemon` processes,
//! and an in-process rogue peer (`common/rogue.rs`) that holds a member's
//! keys (or only the network key) and injects crafted frames. Each test
//! asserts that the attack fails *and* that the honest circle keeps
//! working afterwards; each names the defence it exercises. The results
//! are tabled in `docs/security-testing.md`.
//!
//! Negative checks ("bo never shows X") are fenced: after the attack the
//! rogue sends an honest message over the same path, and absence is only
//! judged once the fence arrived.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "common/rogue.rs"]
mod rogue;

use std::time::Duration;

use common::{Daemon, wait_until};
use kolo::api::Request;
use kolo::circle::{self, CircleId, Op, OpBody, Role};
use kolo::crypto::envelope;
use kolo::crypto::pairwise::{KkContext, KkInitiator};
use kolo::crypto::ratchet::SendingChain;
use kolo::engine::message::{Announcement, Body, Inner};
use kolo::engine::{Command, Input};
use kolo::entropy::OsEntropy;
use kolo::identity::{IdentitySecret, MemberId, NoiseSecret};
use rogue::{Loop, Rogue, now_ms};
use serde_json::Value;

const WAIT: u64 = 60;

fn messages(d: &Daemon, circle: &str) -> Vec<Value> {
    d.call(Request::Messages { circle: circle.into() }).as_array().unwrap().clone()
}

fn count(d: &Daemon, circle: &str, text: &str) -> usize {
    d.texts(circle).iter().filter(|t| *t == text).count()
}

fn member_names(d: &Daemon, circle: &str) -> Vec<String> {
    let v = d.call(Request::Members { circle: circle.into() });
    let mut names: Vec<String> = v.as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap().to_owned()).collect();
    names.sort();
    names
}

fn role_of(d: &Daemon, circle: &str, name: &str) -> Option<String> {
    let v = d.call(Request::Members { circle: circle.into() });
    v.as_array().unwrap().iter().find(|m| m["name"] == name).map(|m| m["role"].as_str().unwrap().to_owned())
}

/// An organiser daemon with a circle, and `others` daemons joined to it.
fn circle_of(group: &str, circle: &str, disappear: Option<u32>, others: &[&str]) -> (Daemon, Vec<Daemon>) {
    let ana = Daemon::loopback(group, "ana");
    ana.call(Request::CircleCreate { name: circle.into(), disappear_secs: disappear });
    let mut joined = Vec::new();
    for name in others {
        let d = Daemon::loopback(group, name);
        d.call(Request::Join { code: ana.invite(circle) });
        joined.push(d);
    }
    (ana, joined)
}

fn invite(d: &Daemon, circle: &str, organiser: bool) -> String {
    let v = d.call(Request::Invite { circle: circle.into(), expires_secs: Some(600), organiser: Some(organiser) });
    v["code"].as_str().unwrap().to_owned()
}

/// The rogue joins and waits until `d` lists it (so its frames are judged
/// as a member's).
fn rogue_member(d: &Daemon, circle: &str, name: &str, organiser: bool) -> (Rogue, CircleId) {
    let r = Rogue::new(name);
    let id = r.join(&invite(d, circle, organiser));
    assert!(wait_until(WAIT, || member_names(d, circle).contains(&name.to_owned())), "{name} admitted");
    (r, id)
}

/// The rogue sends `text` honestly; true once `d` shows it.
fn fence(r: &Rogue, circle: CircleId, d: &Daemon, name: &str, text: &str) -> bool {
    let t = text.to_owned();
    r.run(move |l| l.handle(Input::Command(Command::SendText { circle, text: t, timer_secs: None })));
    d.wait_for_text(name, text, WAIT)
}

fn inner(circle: CircleId, sender: MemberId, epoch: u32, body: Body) -> Inner {
    Inner { circle_id: circle, sender, epoch, sent_at_ms: now_ms(), timer_secs: 0, body }
}

fn text(s: &str) -> Body {
    Body::Text(s.into())
}

/// Seal `inner` under the rogue's own current chain and publish it.
fn seal_raw(r: &Rogue, circle: CircleId, inner: Inner) {
    r.run(move |l| {
        let outputs = l.engine.seal_raw(now_ms(), &circle, &inner, &mut OsEntropy);
        l.route(outputs);
    });
}

/// A group frame sealed by hand under `chain` (a chain the test holds).
fn seal_with(chain: &mut SendingChain, inner: &Inner) -> Vec<u8> {
    let padded = kolo::wire::pad(&inner.encode()).unwrap();
    envelope::seal(chain, &padded).unwrap().1
}

/// A sender-key distribution payload (SPEC §6.3), padded.
/// A SenderKey payload (SPEC §6.3) for `chain`, claimed by `owner` under
/// the group context `context`, with the owner proof the chain key signs.
fn sender_key_payload(chain: &SendingChain, circle: CircleId, owner: MemberId, context: [u8; 32]) -> Vec<u8> {
    let d = chain.distribution();
    let mut p = vec![1u8];
    p.extend_from_slice(&d.epoch.to_be_bytes());
    p.extend_from_slice(&d.signing_public);
    p.extend_from_slice(&d.chain_key);
    p.extend_from_slice(&d.counter.to_be_bytes());
    p.extend_from_slice(&context);
    let claim = [&b"kolo/v2/chain-owner"[..], &circle, owner.as_bytes(), &d.epoch.to_be_bytes(), &context].concat();
    p.extend_from_slice(&chain.sign(&claim));
    p.extend_from_slice(&[0, 0]); // no previous chain, no heads
    kolo::wire::pad(&p).unwrap()
}

fn context_of(r: &Rogue, circle: CircleId) -> [u8; 32] {
    r.run(move |l| l.engine.circle(&circle).unwrap().log().group_context())
}

/// A PAIR_HELLO to `to`, claiming to come from `from`, made with the static
/// key `local` and a KK prologue naming circle `prologue_circle` (SPEC §6).
fn kk_hello(
    l: &Loop,
    circle: CircleId,
    from: MemberId,
    to: MemberId,
    local: &NoiseSecret,
    prologue_circle: CircleId,
    payload: &[u8],
) -> Vec<u8> {
    let c = l.engine.circle(&circle).unwrap();
    let (secret, id, epoch) = (*c.secret(), c.id(), c.log().epoch());
    // To the recipient's first pairwise key (id 1, bound in its operation).
    let remote = c.log().member(&to).unwrap().binding.first_pairwise;
    let psk = circle::pair_psk(&secret, &id, &from, &to);
    let context = KkContext { circle_id: prologue_circle, epoch, initiator: from, responder: to };
    let (_, noise) = KkInitiator::start(local, &remote, &psk, &context, payload, &mut OsEntropy).unwrap();
    let mut frame = vec![kolo::wire::VERSION, 0x02];
    frame.extend_from_slice(&circle::pair_tag(&secret, &id, &to));
    frame.extend_from_slice(&circle::pair_tag(&secret, &id, &from));
    frame.extend_from_slice(&epoch.to_be_bytes());
    frame.extend_from_slice(&1u32.to_be_bytes()); // the recipient's first pairwise key
    frame.extend_from_slice(&noise);
    // A member holds the frame key, so its forgeries carry a valid
    // authenticator: what is tested is the check behind it.
    c.authenticate_pair(frame)
}

fn member_id_of(d: &Daemon, circle: &str, name: &str) -> MemberId {
    let v = d.call(Request::Members { circle: circle.into() });
    let hex = v.as_array().unwrap().iter().find(|m| m["name"] == name).unwrap()["id"].as_str().unwrap().to_owned();
    let bytes: Vec<u8> = (0..64).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
    MemberId(bytes.try_into().unwrap())
}

fn epoch_of(r: &Rogue, circle: CircleId) -> u32 {
    r.run(move |l| l.engine.circle(&circle).unwrap().log().epoch())
}

/// Impersonation, forged handshakes, counter jumps, clocks and timers, and
/// organiser-only actions by a plain member: all from a member of the
/// circle with its real keys.
#[test]
fn a_member_cannot_impersonate_forge_handshakes_jump_counters_or_bend_time_and_roles() {
    let (ana, others) = circle_of("adv-member", "mill", Some(3600), &["bo"]);
    let bo = &others[0];
    let (r, circle) = rogue_member(&ana, "mill", "rex", false);
    let me = r.member_id();
    let ana_id = member_id_of(bo, "mill", "ana");
    let bo_id = member_id_of(bo, "mill", "bo");
    // Control: the rogue's honest messages do arrive.
    assert!(fence(&r, circle, bo, "mill", "rex says hello"), "bo never heard the rogue at all");
    let epoch = epoch_of(&r, circle);

    // 1. Wrong static key: a handshake to bo claiming to be ana, made with
    //    the rogue's own Noise key, carrying a chain the rogue controls.
    //    Defence: KK authenticates both static keys (the roster's).
    let mut forged_chain = SendingChain::generate(epoch, now_ms(), &mut OsEntropy);
    let context = context_of(&r, circle);
    let payload = sender_key_payload(&forged_chain, circle, ana_id, context);
    let hello = r.run(move |l| {
        let mine = l.engine.circle(&circle).unwrap().noise().duplicate();
        kk_hello(l, circle, ana_id, bo_id, &mine, circle, &payload)
    });
    r.run(move |l| l.publish_raw(hello));
    std::thread::sleep(Duration::from_millis(500));
    let as_ana = seal_with(&mut forged_chain, &inner(circle, ana_id, epoch, text("FORGED via a stolen name")));
    r.run(move |l| l.publish_raw(as_ana));

    // 2. Another circle's prologue, with the rogue's own (right) key; and a
    //    control with the right prologue, which must work.
    //    Defence: the KK prologue binds circle, epoch and both members.
    let mut wrong = SendingChain::generate(epoch, now_ms(), &mut OsEntropy);
    let mut right = SendingChain::generate(epoch, now_ms(), &mut OsEntropy);
    let (wrong_payload, right_payload) =
        (sender_key_payload(&wrong, circle, me, context), sender_key_payload(&right, circle, me, context));
    let hellos = r.run(move |l| {
        let mine = l.engine.circle(&circle).unwrap().noise().duplicate();
        let other_circle: CircleId = [0x5a; 32];
        (
            kk_hello(l, circle, me, bo_id, &mine, other_circle, &wrong_payload),
            kk_hello(l, circle, me, bo_id, &mine, circle, &right_payload),
        )
    });
    r.run(move |l| {
        l.publish_raw(hellos.0);
        l.publish_raw(hellos.1);
    });
    std::thread::sleep(Duration::from_millis(500));
    let f_wrong = seal_with(&mut wrong, &inner(circle, me, epoch, text("under a wrong-prologue key")));
    let f_right = seal_with(&mut right, &inner(circle, me, epoch, text("under a right-prologue key")));
    r.run(move |l| {
        l.publish_raw(f_wrong);
        l.publish_raw(f_right);
    });
    assert!(bo.wait_for_text("mill", "under a right-prologue key", WAIT), "the control handshake did not work");

    // 3. A counter a million ahead, validly signed and encrypted.
    //    Defence: the counter window (at most 2000 skipped keys).
    let mut ahead = SendingChain::import(&right.export()).unwrap();
    for _ in 0..1_000_000 {
        ahead.next_message_key().unwrap();
    }
    let far = seal_with(&mut ahead, &inner(circle, me, epoch, text("a million ahead")));
    let near = seal_with(&mut right, &inner(circle, me, epoch, text("next in line")));
    r.run(move |l| {
        l.publish_raw(far);
        l.publish_raw(near);
    });
    assert!(bo.wait_for_text("mill", "next in line", WAIT), "the chain stopped working after the jump");

    // 4. A day ahead, and a timer thirty days long in a circle whose maximum is an hour.
    //    Defences: future-skew limit (5 min); deadline = receipt + min(timer, maximum).
    let mut tomorrow = inner(circle, me, epoch, text("dated tomorrow"));
    tomorrow.sent_at_ms += 24 * 3600 * 1000;
    seal_raw(&r, circle, tomorrow);
    let mut long = inner(circle, me, epoch, text("kept thirty days"));
    long.timer_secs = 30 * 24 * 3600;
    seal_raw(&r, circle, long);

    // 5. Organiser-only actions by a plain member: an announcement, removing
    //    bo, promoting itself. Defence: authority checked when applied.
    let ann = Announcement {
        title: "fake assembly".into(),
        when: "now".into(),
        place: "trap".into(),
        details: String::new(),
        supersedes: None,
    };
    seal_raw(&r, circle, inner(circle, me, epoch, Body::Announcement(ann)));
    let seed = r.identity_seed;
    let ops = r.run(move |l| {
        let c = l.engine.circle(&circle).unwrap();
        let heads = c.log().heads();
        let id = IdentitySecret::from_seed(&seed);
        let remove = Op::sign(&id, &circle, heads.clone(), OpBody::Remove { member: bo_id }, now_ms()).unwrap();
        let promote =
            Op::sign(&id, &circle, heads.clone(), OpBody::SetRole { member: me, role: Role::Organiser }, now_ms())
                .unwrap();
        // 6. A non-member forging operations: one in its own name, one
        //    claiming to be ana. Defences: roster and author signatures.
        let outsider = IdentitySecret::generate(&mut OsEntropy);
        let noise = NoiseSecret::generate(&mut OsEntropy);
        let add_self = Op::sign(
            &outsider,
            &circle,
            heads.clone(),
            OpBody::Add {
                member: outsider.member_id(),
                binding: kolo::identity::NoiseBinding::create(&outsider, &circle, &noise, &noise),
                display_name: "mallory".into(),
                role: Role::Organiser,
            },
            now_ms(),
        )
        .unwrap();
        let mut as_ana = Op::sign(&outsider, &circle, heads, OpBody::Remove { member: bo_id }, now_ms()).unwrap();
        as_ana.author = ana_id;
        [remove, promote, add_self, as_ana].map(|o| o.encode())
    });
    for op in ops {
        seal_raw(&r, circle, inner(circle, me, epoch, Body::Op(op)));
    }

    // 7. Last, as it costs the rogue its score: a message sealed under the
    //    rogue's own chain that claims ana as its sender.
    //    Defence: the inner sender must be the chain's owner.
    seal_raw(&r, circle, inner(circle, ana_id, epoch, text("FORGED as ana")));

    assert!(fence(&r, circle, bo, "mill", "rex fence"), "the fence never arrived");
    std::thread::sleep(Duration::from_secs(2));
    for (who, d) in [("ana", &ana), ("bo", bo)] {
        let texts = d.texts("mill");
        for bad in [
            "FORGED via a stolen name",
            "under a wrong-prologue key",
            "a million ahead",
            "dated tomorrow",
            "fake assembly",
            "FORGED as ana",
        ] {
            assert!(!texts.iter().any(|t| t == bad), "{who} shows {bad:?}");
        }
        assert_eq!(member_names(d, "mill"), ["ana", "bo", "rex"], "{who}'s roster changed");
        assert_eq!(role_of(d, "mill", "rex").as_deref(), Some("member"), "{who} promoted the rogue");
    }
    let long = messages(bo, "mill").into_iter().find(|m| m["text"] == "kept thirty days").expect("timer message");
    let kept = long["expires_at"].as_u64().unwrap() - long["received_at"].as_u64().unwrap();
    assert!(kept <= 3600 * 1000, "kept {kept} ms, beyond the circle's maximum");

    // The honest circle still works both ways.
    ana.send("mill", "still here, ana");
    assert!(bo.wait_for_text("mill", "still here, ana", WAIT));
    bo.send("mill", "still here, bo");
    assert!(ana.wait_for_text("mill", "still here, bo", WAIT));
}

/// Bit flips in the header (key id, epoch, counter), the ciphertext and
/// the signature of a fresh frame bo has not seen, published by the rogue
/// (which bo then cuts off: invalid frames are scored, on the topic and,
/// since v2, in catch-up answers too), then the genuine frame on the topic
/// through another member. Defences: signature
/// over header and ciphertext checked first, AEAD with the header as
/// associated data, chain state committed only after every check.
#[test]
fn bit_flips_in_header_ciphertext_or_signature_are_refused_and_later_messages_decrypt() {
    let (ana, others) = circle_of("adv-flips", "quay", None, &["bo"]);
    let bo = &others[0];
    let (r, circle) = rogue_member(&ana, "quay", "rex", false);
    assert!(fence(&r, circle, bo, "quay", "rex before"));
    // Since v2 catch-up answers are scored (SPEC §7): bo cuts rex off for
    // the flipped frames, so the genuine ones come through sam.
    let (sam, _) = rogue_member(&ana, "quay", "sam", false);
    assert!(wait_until(WAIT, || sam.connected() >= 2), "sam reached bo");
    // Sam's admission starts an epoch: the chain below must come after
    // rex's chain for it, or that chain (arriving later) closes this one.
    let settled = move |l: &mut Loop| {
        let c = l.engine.circle(&circle).unwrap();
        !c.waiting_for_keys() && c.key_epoch() == c.log().epoch()
    };
    assert!(wait_until(WAIT, || r.run(settled) && sam.run(settled)), "rex and sam have the keys of sam's epoch");
    assert!(fence(&r, circle, bo, "quay", "rex after sam"), "bo reads rex's chain of sam's epoch");
    // A chain bo learns through an honest handshake, held by the test so
    // the genuine frame exists nowhere else (not in any catch-up store).
    let epoch = epoch_of(&r, circle);
    let me = r.member_id();
    let bo_id = member_id_of(bo, "quay", "bo");
    let mut chain = SendingChain::generate(epoch, now_ms(), &mut OsEntropy);
    let payload = sender_key_payload(&chain, circle, me, context_of(&r, circle));
    let hello = r.run(move |l| {
        let mine = l.engine.circle(&circle).unwrap().noise().duplicate();
        kk_hello(l, circle, me, bo_id, &mine, circle, &payload)
    });
    r.run(move |l| l.publish_raw(hello));
    let genuine = seal_with(&mut chain, &inner(circle, me, epoch, text("the genuine one")));
    let n = genuine.len();
    let mut flipped = Vec::new();
    for (pos, bit) in [(5, 0), (20, 3), (25, 7), (26, 0), (100, 5), (n - 65, 1), (n - 64, 2), (n - 1, 7)] {
        let mut f = genuine.clone();
        f[pos] ^= 1 << bit;
        flipped.push(f);
    }
    r.run(move |l| {
        for f in flipped {
            l.publish_raw(f);
        }
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(count(bo, "quay", "the genuine one"), 0, "a flipped frame was shown");
    sam.run(move |l| l.publish_raw(genuine));
    assert!(bo.wait_for_text("quay", "the genuine one", WAIT), "the genuine frame did not open after the flips");
    let next = seal_with(&mut chain, &inner(circle, me, epoch, text("and the next one")));
    sam.run(move |l| l.publish_raw(next));
    assert!(bo.wait_for_text("quay", "and the next one", WAIT), "later messages stopped decrypting");
    assert_eq!(count(bo, "quay", "the genuine one"), 1);
    ana.send("quay", "ana after the flips");
    assert!(bo.wait_for_text("quay", "ana after the flips", WAIT));
}

/// Replays: every frame the rogue captured, sent again straight to the
/// members in answers to their catch-up requests (no gossip duplicate cache on that path,
/// the strongest form of "long after gossip forgot"), after a new member
/// joined and everyone rekeyed, so the captured sender-key distributions
/// are replayed into new pairwise sessions. Defences: frame-id dedup, the
/// counter replay window, replayed-handshake refusal and known/retired key
/// ids for distributions.
#[test]
fn replays_of_old_frames_and_old_key_distributions_change_nothing() {
    let (ana, others) = circle_of("adv-replay", "dock", None, &["bo"]);
    let bo = &others[0];
    let (r, circle) = rogue_member(&ana, "dock", "rex", false);
    for t in ["before one", "before two"] {
        ana.send("dock", t);
        assert!(bo.wait_for_text("dock", t, WAIT));
    }
    assert!(wait_until(WAIT, || r.texts().iter().any(|t| t == "before two")), "the rogue reads the circle");
    let epoch_before = epoch_of(&r, circle);
    // A new member: new epoch, new chains, new pairwise sessions.
    let cy = Daemon::loopback("adv-replay", "cy");
    cy.call(Request::Join { code: ana.invite("dock") });
    assert!(wait_until(WAIT, || epoch_of(&r, circle) > epoch_before));
    ana.send("dock", "after the rekey");
    assert!(bo.wait_for_text("dock", "after the rekey", WAIT));
    let before = bo.texts("dock").len();

    let captured: Vec<Vec<u8>> =
        r.seen.lock().unwrap().frames.iter().filter(|(d, _)| !d).map(|(_, f)| f.clone()).collect();
    assert!(captured.iter().any(|f| f[1] == 0x02), "the rogue captured key distributions");
    let mut response = vec![kolo::wire::VERSION, 0x21];
    response.extend_from_slice(&(captured.len() as u32).to_be_bytes());
    for f in &captured {
        response.extend_from_slice(&(f.len() as u32).to_be_bytes());
        response.extend_from_slice(f);
    }
    // Since v2 only answers to a peer's own request are taken: the rogue
    // answers the members' next catch-up requests with the replays.
    r.run(move |l| l.answer_requests_with = Some(response));
    assert!(wait_until(WAIT, || r.seen.lock().unwrap().answered >= 2), "members asked the rogue to catch them up");
    r.run(|l| l.answer_requests_with = None);
    // And on the topic, for whatever gossip no longer remembers.
    r.run(move |l| {
        for f in captured {
            l.publish_raw(f);
        }
    });
    assert!(fence(&r, circle, bo, "dock", "rex fence"));
    std::thread::sleep(Duration::from_secs(2));
    for t in ["before one", "before two", "after the rekey"] {
        assert_eq!(count(bo, "dock", t), 1, "bo shows {t:?} again");
        assert_eq!(count(&ana, "dock", t), 1, "ana shows {t:?} again");
    }
    assert_eq!(bo.texts("dock").len(), before + 1, "only the fence is new");
    ana.send("dock", "after the replay");
    for d in [bo, &cy] {
        assert!(d.wait_for_text("dock", "after the replay", WAIT));
    }
}

fn listen_addresses(d: &Daemon) -> Vec<libp2p::Multiaddr> {
    d.call(Request::Status)["circles"][0]["listen"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()?.parse().ok()).collect())
        .unwrap_or_default()
}

/// A fresh node (new transport id) that dials `d` holding `access`.
fn link_with(access: kolo::engine::NetworkAccess, circle: CircleId, d: &Daemon) -> Rogue {
    let node = Rogue::new("relink");
    let addresses = listen_addresses(d);
    assert!(!addresses.is_empty(), "the daemon listens");
    node.run(move |l| {
        l.ensure_net(circle, access, addresses.clone());
        l.command(kolo::net::NetCommand::Dial(addresses));
    });
    node
}

/// Issue 13, failure 3 with real nodes: a removed member kept the network
/// key, so it could link to the closed network again, compute its topics
/// and watch who sends what and when. Since SPEC §2a a removal starts a
/// new network generation; the old key still opens a link, but only with
/// a proof of current membership, which the removed member cannot give.
/// Holding everything its node held while a member (the key, its member
/// id and per-circle Noise key) and a fresh transport id, it links to no
/// remaining member.
#[test]
fn a_removed_member_cannot_link_to_the_circle_network_again() {
    let (ana, others) = circle_of("adv-relink", "yard", None, &["bo"]);
    let bo = &others[0];
    let (r, circle) = rogue_member(&ana, "yard", "rex", false);
    assert!(wait_until(WAIT, || member_names(bo, "yard").contains(&"rex".to_owned())));
    let held = r.run(move |l| l.engine.circle(&circle).unwrap().network_access());
    assert!(held.me.is_some(), "rex holds its proof material");
    // Control: with what rex holds, a fresh node links while rex is a member.
    for d in [&ana, bo] {
        let control = link_with(held.clone(), circle, d);
        assert!(wait_until(WAIT, || control.connected() >= 1), "control: rex's keys opened a link");
    }
    ana.call(Request::Remove { circle: "yard".into(), member: "rex".into() });
    for d in [&ana, bo] {
        assert!(wait_until(WAIT, || !member_names(d, "yard").contains(&"rex".to_owned())));
    }
    ana.send("yard", "after rex left");
    assert!(bo.wait_for_text("yard", "after rex left", WAIT), "the remaining members moved on");
    let renewed = circle::InviteCode::parse(&invite(&ana, "yard", false)).unwrap();
    assert_ne!(renewed.network_key, *held.dial, "the removal started a new network generation");
    // rex never told its transport id, so nobody could close its links at
    // once; the sweep after the removal does.
    assert!(wait_until(WAIT, || r.connected() == 0), "rex kept its links to the circle");
    let rex_peer = r.run(|l| l.net.as_ref().map(|n| n.peer_id));
    for d in [&ana, bo] {
        let again = link_with(held.clone(), circle, d);
        std::thread::sleep(Duration::from_secs(6));
        // Only rex's own node (it relays for nobody now) may take it.
        let members: Vec<_> =
            again.seen.lock().unwrap().connected.iter().filter(|p| Some(**p) != rex_peer).copied().collect();
        assert!(members.is_empty(), "the removed member linked to the circle's network again: {members:?}");
    }
    bo.send("yard", "bo after rex left");
    assert!(ana.wait_for_text("yard", "bo after rex left", WAIT));
}

/// A relay must not connect anyone to a member around the link handshake
/// (SPEC §2a). libp2p's stock relay client transport runs only Noise and
/// yamux over a circuit, so a peer that could link to some relay (say a
/// removed member's node that a member still held a link and a
/// reservation with) reached every member with a reservation there. Bare
/// nodes: ana holds a reservation at rex; mallory can link to rex (rex
/// takes her proof) but holds none of ana's keys; her circuit to ana
/// through rex is refused, while a friend holding ana's key gets through
/// the same circuit.
#[test]
fn a_relay_cannot_connect_a_peer_to_a_member_around_the_link_handshake() {
    use kolo::engine::NetworkAccess;
    let circle: CircleId = [3; 32];
    let (ana_key, mallory_key) = ([1u8; 32], [2u8; 32]);
    let mallory_id = MemberId([5; 32]);
    let mallory_noise = NoiseSecret::from_bytes([6; 32]);
    // Every link proves a member's key (SPEC §2a): ana, rex and the
    // friend are members of one another's rosters; mallory is on rex's
    // only, and on an old key.
    let (ana_id, rex_id, friend_id) = (MemberId([7; 32]), MemberId([8; 32]), MemberId([9; 32]));
    let (ana_noise, rex_noise, friend_noise) =
        (NoiseSecret::from_bytes([10; 32]), NoiseSecret::from_bytes([11; 32]), NoiseSecret::from_bytes([12; 32]));
    let roster = [(ana_id, ana_noise.public()), (rex_id, rex_noise.public()), (friend_id, friend_noise.public())];
    let ana = Rogue::new("ana");
    let ana_access = NetworkAccess::member(ana_key, ana_id, &ana_noise, &roster);
    ana.run(move |l| l.ensure_net(circle, ana_access, Vec::new()));
    let listening = |r: &Rogue| -> Vec<libp2p::Multiaddr> {
        assert!(wait_until(WAIT, || !r.seen.lock().unwrap().listening.is_empty()), "the node listens");
        r.seen.lock().unwrap().listening.clone()
    };
    let peer_of = |r: &Rogue| r.run(|l| l.net.as_ref().map(|n| n.peer_id)).unwrap();
    let ana_addresses = listening(&ana);
    let ana_peer = peer_of(&ana);
    // rex dials ana on her key and takes mallory (an old key, her proof).
    let mut rex_access = NetworkAccess::member(ana_key, rex_id, &rex_noise, &roster);
    rex_access.grace.push(zeroize::Zeroizing::new(mallory_key));
    rex_access.members.insert(mallory_id, mallory_noise.public());
    let rex = Rogue::new("rex");
    rex.run(move |l| l.ensure_net(circle, rex_access, ana_addresses));
    assert!(wait_until(WAIT, || ana.connected() >= 1), "rex linked to ana");
    let rex_peer = peer_of(&rex);
    let rex_address = listening(&rex)[0].clone();
    // ana's reservation at rex shows as a relayed listen address.
    assert!(
        wait_until(WAIT, || ana.seen.lock().unwrap().listening.iter().any(|a| a.to_string().contains("p2p-circuit"))),
        "ana reserved at rex"
    );
    let circuit: libp2p::Multiaddr =
        format!("{rex_address}/p2p/{rex_peer}/p2p-circuit/p2p/{ana_peer}").parse().unwrap();
    // Control: a friend with ana's key reaches her through the circuit.
    let friend = Rogue::new("friend");
    let (to_rex, via) = (rex_address.clone(), circuit.clone());
    let friend_access = NetworkAccess::member(ana_key, friend_id, &friend_noise, &roster);
    friend.run(move |l| {
        l.ensure_net(circle, friend_access, vec![to_rex]);
    });
    assert!(wait_until(WAIT, || friend.connected() >= 1), "the friend linked to rex");
    friend.run(move |l| l.command(kolo::net::NetCommand::Dial(vec![via])));
    assert!(
        wait_until(WAIT, || friend.seen.lock().unwrap().connected.contains(&ana_peer)),
        "control: the circuit through rex reaches ana"
    );
    drop(friend);
    let mut mallory_access = NetworkAccess::with_key(mallory_key);
    mallory_access.me = Some((mallory_id, mallory_noise.duplicate()));
    let mallory = Rogue::new("mallory");
    mallory.run(move |l| l.ensure_net(circle, mallory_access, vec![rex_address]));
    assert!(wait_until(WAIT, || mallory.connected() >= 1), "rex took mallory's link");
    mallory.run(move |l| l.command(kolo::net::NetCommand::Dial(vec![circuit])));
    std::thread::sleep(Duration::from_secs(6));
    assert!(
        !mallory.seen.lock().unwrap().connected.contains(&ana_peer),
        "mallory reached ana through rex's relay without her key"
    );
}

/// A removed member keeps its keys, its connections and the circle secret:
/// it keeps sending under its old chain and epoch (and on the new topic),
/// keeps listening and asks for catch-up. Defences: frames of non-members
/// refused; new chains distributed only to the remaining members.
#[test]
fn a_removed_member_keeps_sending_and_listening_in_vain() {
    let (ana, others) = circle_of("adv-removed", "yard", None, &["bo"]);
    let bo = &others[0];
    let (r, circle) = rogue_member(&ana, "yard", "rex", false);
    ana.send("yard", "while rex was in");
    assert!(wait_until(WAIT, || r.texts().iter().any(|t| t == "while rex was in")), "control: the rogue read it");
    let me = r.member_id();
    let old_epoch = epoch_of(&r, circle);
    ana.call(Request::Remove { circle: "yard".into(), member: "rex".into() });
    assert!(wait_until(WAIT, || !member_names(bo, "yard").contains(&"rex".to_owned())));
    assert!(wait_until(WAIT, || r.run(move |l| l.engine.circle(&circle).unwrap().is_removed())));
    // Still sending: raw seals under the old chain, on the current topic.
    for i in 0..5 {
        seal_raw(&r, circle, inner(circle, me, old_epoch, text(&format!("from the removed member {i}"))));
    }
    ana.send("yard", "after rex left");
    assert!(bo.wait_for_text("yard", "after rex left", WAIT));
    // Listening and catching up for a while.
    std::thread::sleep(Duration::from_secs(3));
    r.run(move |l| {
        let peers: Vec<_> = (1..=4).collect();
        for p in peers {
            l.handle(Input::PeerAvailable { circle, peer: p });
        }
    });
    std::thread::sleep(Duration::from_secs(4));
    bo.send("yard", "bo after rex left");
    assert!(ana.wait_for_text("yard", "bo after rex left", WAIT));
    std::thread::sleep(Duration::from_secs(2));
    for d in [&ana, bo] {
        assert!(!d.texts("yard").iter().any(|t| t.starts_with("from the removed member")));
    }
    let texts = r.texts();
    assert!(!texts.iter().any(|t| t == "after rex left" || t == "bo after rex left"), "the removed member read on");
    let seen = r.seen.lock().unwrap();
    assert!(seen.frames.len() > 3, "the removed member kept receiving frames");
    for (_, f) in &seen.frames {
        assert!(!f.windows(14).any(|w| w == b"after rex left"), "plaintext on the wire");
    }
}

/// Two organisers act "concurrently": rex (the in-process peer) signs
/// ana's removal on the heads it has, then ana invites and admits di, and
/// only after every member (rex's own node included) has acknowledged the
/// admission does rex publish the removal. Since protocol v2 that removal
/// is backdated (SPEC §4.6) and refused everywhere; in v1 it voided di's
/// admission after the fact. Every member converges on the same roster,
/// and the circle, di included, talks on. (Truly concurrent removals are
/// tested in `circle::log::tests` and `engine::agreement_tests`.)
#[test]
fn concurrent_add_and_remove_by_two_organisers_resolve_the_same_everywhere() {
    let (ana, others) = circle_of("adv-concurrent", "hall", None, &["bo"]);
    let bo = &others[0];
    let (r, circle) = rogue_member(&ana, "hall", "rex", true);
    assert!(wait_until(WAIT, || role_of(bo, "hall", "rex").as_deref() == Some("organiser")));
    let ana_id = member_id_of(bo, "hall", "ana");
    let seed = r.identity_seed;
    // rex signs ana's removal on the heads it has now...
    let remove = r.run(move |l| {
        let heads = l.engine.circle(&circle).unwrap().log().heads();
        Op::sign(&IdentitySecret::from_seed(&seed), &circle, heads, OpBody::Remove { member: ana_id }, now_ms())
            .unwrap()
            .encode()
    });
    // ...while ana, unaware, invites di, who joins.
    let di = Daemon::loopback("adv-concurrent", "di");
    di.call(Request::Join { code: ana.invite("hall") });
    assert!(wait_until(WAIT, || member_names(bo, "hall").contains(&"di".to_owned())));
    let epoch = epoch_of(&r, circle);
    let me = r.member_id();
    // Every member has acknowledged di's admission (its key distribution
    // carries heads that hold it) before the removal is published.
    assert!(wait_until(WAIT, || member_names(&di, "hall").len() == 4), "di never saw the whole circle");
    // di reads rex: it holds rex's chain, whose distribution carried rex's
    // heads (rex's acknowledgement of di's admission).
    assert!(fence(&r, circle, &di, "hall", "rex greets di"), "di never heard rex");
    ana.send("hall", "ana greets di");
    bo.send("hall", "bo greets di");
    di.send("hall", "di greets the circle");
    // A message under a chain of the new epoch shows that its key
    // distribution (and the heads it carries) arrived. Each member judges
    // backdating by what *it* heard, so every observer must have heard
    // every other member since the admission; di's distribution reaching
    // bo late was enough for bo to take the removal as concurrent.
    for (who, d, texts) in [
        ("di", &di, ["ana greets di", "bo greets di", "rex greets di"]),
        ("ana", &ana, ["bo greets di", "di greets the circle", "rex greets di"]),
        ("bo", bo, ["ana greets di", "di greets the circle", "rex greets di"]),
    ] {
        for t in texts {
            assert!(d.wait_for_text("hall", t, WAIT), "{who} never read {t:?}");
        }
    }
    std::thread::sleep(Duration::from_secs(3));
    seal_raw(&r, circle, inner(circle, me, epoch, Body::Op(remove)));
    std::thread::sleep(Duration::from_secs(3));
    let expected = ["ana", "bo", "di", "rex"];
    for (who, d) in [("bo", bo), ("ana", &ana), ("di", &di)] {
        assert!(
            wait_until(WAIT, || member_names(d, "hall") == expected),
            "{who} resolved to {:?}; it shows {:?}",
            member_names(d, "hall"),
            d.texts("hall")
        );
    }
    // The circle works, di included.
    bo.send("hall", "bo after the backdated removal");
    assert!(di.wait_for_text("hall", "bo after the backdated removal", WAIT));
    assert!(ana.wait_for_text("hall", "bo after the backdated removal", WAIT));
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A member floods the topic with garbage and with valid-looking group
/// frames (right layout and sizes, made-up key ids), as fast as its
/// connection allows, while ana keeps talking to bo. Defences: engine
/// verdicts + gossipsub peer scoring (invalid-delivery penalty, budget for
/// unjudgeable frames, graylist, disconnect and ban), the waiting-frame
/// cap. bo keeps receiving; the flooder is cut off; memory stays bounded.
#[test]
fn a_flooding_peer_is_scored_down_and_cut_off_while_the_circle_talks_on() {
    let (ana, others) = circle_of("adv-flood", "dam", None, &["bo"]);
    let bo = &others[0];
    let (r, circle) = rogue_member(&ana, "dam", "rex", false);
    assert!(fence(&r, circle, bo, "dam", "rex before the flood"));
    assert!(wait_until(WAIT, || r.connected() >= 2), "the rogue is connected to both");
    let rss_before: Vec<u64> = [&ana, bo].iter().map(|d| rss_kib(d.pid().unwrap())).collect();
    r.run(|l| l.flood(FLOOD_FRAMES, Duration::from_secs(20)));
    // ana keeps talking during the flood; bo must hear every message.
    for i in 0..10 {
        ana.send("dam", &format!("during the flood {i}"));
        std::thread::sleep(Duration::from_millis(300));
    }
    for i in 0..10 {
        assert!(bo.wait_for_text("dam", &format!("during the flood {i}"), WAIT), "bo missed message {i}");
    }
    for (who, d) in [("ana", &ana), ("bo", bo)] {
        let banned = wait_until(WAIT, || d.call(Request::Status)["circles"][0]["banned_peers"].as_u64() >= Some(1));
        assert!(banned, "{who} never cut the flooder off");
    }
    assert!(wait_until(WAIT, || r.connected() == 0), "the flooder is still connected");
    let sent = r.seen.lock().unwrap().flood_sent;
    assert!(sent > 1000, "the flood was real ({sent} frames)");
    for (i, d) in [&ana, bo].into_iter().enumerate() {
        let grown = rss_kib(d.pid().unwrap()).saturating_sub(rss_before[i]);
        assert!(grown < 64 * 1024, "memory grew by {grown} KiB under the flood");
    }
    // After the flood, the circle works both ways.
    ana.send("dam", "after the flood, ana");
    assert!(bo.wait_for_text("dam", "after the flood, ana", WAIT));
    bo.send("dam", "after the flood, bo");
    assert!(ana.wait_for_text("dam", "after the flood, bo", WAIT));
}

const FLOOD_FRAMES: usize = 30_000;

/// Honest delivery latency (ana → bo, from the message's own sent and
/// received times) without and during a flood. A measurement, not a test:
/// `cargo test --release --test adversarial -- --ignored flood_latency --nocapture`.
/// The result is recorded in docs/security-testing.md.
#[test]
#[ignore]
fn flood_latency_bench() {
    let (ana, others) = circle_of("adv-latency", "dam", None, &["bo"]);
    let bo = &others[0];
    let (r, circle) = rogue_member(&ana, "dam", "rex", false);
    assert!(fence(&r, circle, bo, "dam", "rex before"));
    let measure = |label: &str| -> Vec<u64> {
        let mut lat = Vec::new();
        for i in 0..20 {
            let t = format!("{label} {i}");
            ana.send("dam", &t);
            assert!(bo.wait_for_text("dam", &t, WAIT));
            let m = messages(bo, "dam").into_iter().find(|m| m["text"] == t.as_str()).unwrap();
            lat.push(m["received_at"].as_u64().unwrap().saturating_sub(m["sent_at"].as_u64().unwrap()));
            std::thread::sleep(Duration::from_millis(100));
        }
        lat.sort_unstable();
        lat
    };
    let quiet = measure("quiet");
    r.run(|l| l.flood(FLOOD_FRAMES, Duration::from_secs(20)));
    let flooded = measure("flooded");
    let stats = |v: &[u64]| (v[v.len() / 2], v[v.len() * 9 / 10], v[v.len() - 1]);
    let (q, f) = (stats(&quiet), stats(&flooded));
    println!("latency ms (median, p90, max): quiet {q:?}, during flood {f:?}");
    println!("median ratio {:.2}", f.0.max(1) as f64 / q.0.max(1) as f64);
    println!("flood frames queued: {}", r.seen.lock().unwrap().flood_sent);
}

/// A `kolo daemon` started under `sh` with the open-files limit set to
/// `hard` (and the soft limit to `soft`), as a service manager might.
struct LimitedDaemon {
    home: std::path::PathBuf,
    child: std::process::Child,
}

impl LimitedDaemon {
    fn new(group: &str, name: &str, soft: u32, hard: u32) -> LimitedDaemon {
        let home = common::fresh_home(group, name);
        common::init(&home, name);
        let script =
            format!("ulimit -S -n {soft} && ulimit -H -n {hard} && exec \"$0\" daemon --listen /ip4/127.0.0.1/tcp/0");
        let child = std::process::Command::new("sh")
            .args(["-c", &script, env!("CARGO_BIN_EXE_kolo")])
            .env("KOLO_HOME", &home)
            .env("KOLO_PASSPHRASE", common::PASS)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let d = LimitedDaemon { home, child };
        assert!(wait_until(30, || d.status().is_ok()), "the limited daemon started");
        d
    }

    /// `kolo status`, given up on after 20 s (a node out of descriptors
    /// may accept the connection and never answer).
    fn status(&self) -> Result<Value, String> {
        let home = self.home.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(kolo::api::call(&home, &Request::Status).map_err(|e| e.to_string()));
        });
        rx.recv_timeout(Duration::from_secs(20)).unwrap_or_else(|_| Err("no answer in 20 s".into()))
    }

    fn call(&self, r: Request) -> Value {
        kolo::api::call(&self.home, &r).unwrap_or_else(|e| panic!("{r:?}: {e}"))
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_none()
    }

    /// Soft and hard "Max open files" of the running daemon.
    fn nofile(&self) -> (u64, u64) {
        let limits = std::fs::read_to_string(format!("/proc/{}/limits", self.child.id())).unwrap();
        let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
        let mut numbers = line.split_whitespace().filter_map(|w| w.parse::<u64>().ok());
        (numbers.next().unwrap(), numbers.next().unwrap())
    }
}

impl Drop for LimitedDaemon {
    fn drop(&mut self) {
        let _ = kolo::api::call(&self.home, &Request::Shutdown);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while self.running() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The TCP addresses on 127.0.0.1 an invite code lists.
fn invite_sockets(code: &str) -> Vec<std::net::SocketAddr> {
    let invite = circle::InviteCode::parse(code).unwrap();
    let mut out = Vec::new();
    for a in &invite.addresses {
        let parts: Vec<&str> = a.split('/').collect();
        if let [_, "ip4", "127.0.0.1", "tcp", port, ..] = parts.as_slice() {
            out.push(std::net::SocketAddr::from(([127, 0, 0, 1], port.parse().unwrap())));
        }
    }
    assert!(!out.is_empty(), "the invite lists a loopback address");
    out
}

/// Open up to `count` TCP connections to `to` within `limit` and hold them
/// (no byte sent: no network key needed).
fn tcp_flood(to: std::net::SocketAddr, count: usize, limit: Duration) -> Vec<std::net::TcpStream> {
    let start = std::time::Instant::now();
    let mut held = Vec::new();
    for _ in 0..count {
        if start.elapsed() > limit {
            break;
        }
        if let Ok(s) = std::net::TcpStream::connect_timeout(&to, Duration::from_millis(500)) {
            held.push(s);
        }
    }
    held
}

/// Attack 6 of issue 14: a flood of TCP connections (no key needed) used
/// to exhaust the daemon's file descriptors, after which the control
/// socket's accept failed and the server stopped: the owner's commands
/// went unanswered. Defence: the soft open-files limit is raised to the
/// hard one at start-up; inbound connections are capped per address and
/// in total, pending and established, below that limit (`net::limits`); a
/// failed accept on the control socket is waited out.
#[test]
fn a_tcp_connection_flood_leaves_the_daemon_running_and_its_owner_answered() {
    let mut ana = LimitedDaemon::new("tcp-flood", "ana", 256, 512);
    ana.call(Request::CircleCreate { name: "c".into(), disappear_secs: None });
    let code = ana.call(Request::Invite { circle: "c".into(), expires_secs: Some(600), organiser: None })["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let bo = Daemon::loopback("tcp-flood", "bo");
    bo.call(Request::Join { code });
    assert!(wait_until(WAIT, || member_names(&bo, "c").len() == 2), "bo joined");
    let invite = ana.call(Request::Invite { circle: "c".into(), expires_secs: Some(600), organiser: None });
    let target = invite_sockets(invite["code"].as_str().unwrap())[0];

    // Three times the hard limit, held open.
    let held = tcp_flood(target, 1536, Duration::from_secs(40));
    println!("flood: {} connections held", held.len());
    assert!(held.len() > 512, "the flood opened more connections than the daemon has descriptors");
    assert!(ana.running(), "the daemon survived the flood");
    let status = ana.status();
    assert!(status.is_ok(), "kolo status answered during the flood: {status:?}");
    // The circle still talks over the connection made before the flood.
    ana.call(Request::Send { circle: "c".into(), text: "during the flood".into(), disappear_secs: None });
    assert!(bo.wait_for_text("c", "during the flood", WAIT), "bo got the message sent during the flood");
    drop(held);
    assert!(ana.running());
    assert!(ana.status().is_ok(), "kolo status answered after the flood");
    // The soft limit (256 when started) was raised to the hard one.
    assert_eq!(ana.nofile(), (512, 512), "soft open-files limit raised at start-up");
}

/// The control socket reads at most its line limit: a longer line is
/// refused as soon as the limit is passed (the client gets the error
/// without ever sending a newline), and the node answers others on.
#[test]
fn an_overlong_control_line_is_refused_without_waiting_for_its_end() {
    use std::io::{BufRead, Read, Write};
    let ana = Daemon::loopback("control-limits", "ana");
    let mut stream = std::os::unix::net::UnixStream::connect(ana.home.join(kolo::api::SOCKET_FILE)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    // 300 KiB, no newline, then the connection stays open.
    let chunk = vec![b'x'; 64 * 1024];
    for _ in 0..5 {
        if stream.write_all(&chunk).is_err() {
            break; // Closed by the server: fine.
        }
    }
    let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
    let mut reply = String::new();
    let got = reader.read_line(&mut reply);
    assert!(got.is_ok() && reply.contains("too long"), "refused at once: {got:?} {reply:?}");
    let mut rest = Vec::new();
    assert_eq!(reader.read_to_end(&mut rest).unwrap_or(0), 0, "then closed");
    assert!(api_status(&ana), "other requests are answered");

    // Connections beyond the cap are closed at once, the node stays up,
    // and once they go the owner is answered again.
    let mut held = Vec::new();
    for _ in 0..CONTROL_FLOOD {
        held.push(std::os::unix::net::UnixStream::connect(ana.home.join(kolo::api::SOCKET_FILE)).unwrap());
    }
    let extra = held.last_mut().unwrap();
    extra.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut buf = [0u8; 1];
    assert_eq!(extra.read(&mut buf).unwrap_or(1), 0, "a connection over the cap is closed");
    drop(held);
    assert!(wait_until(10, || api_status(&ana)), "answered once the connections closed");
}

/// More control connections than the server serves at once (32).
const CONTROL_FLOOD: usize = 40;

fn api_status(d: &Daemon) -> bool {
    kolo::api::call(&d.home, &Request::Status).is_ok()
}

/// A JOIN_HELLO as SPEC §8 lays it out, for `invite_op` in `circle`,
/// signed with `invite_key` (any key: a made-up one proves nothing) and
/// tagged with a random tag.
fn join_hello(circle: CircleId, invite_op: [u8; 32], invite_key: &circle::InviteSecret) -> Vec<u8> {
    use kolo::entropy::Entropy;
    let noise = NoiseSecret::generate(&mut OsEntropy);
    let (_, msg) = kolo::crypto::pairwise::XxInitiator::start(&noise, &circle, &invite_op, &mut OsEntropy).unwrap();
    let mut tag = [0u8; 32];
    OsEntropy.fill(&mut tag);
    let signed = [&b"kolo/v2/join-hello"[..], &circle[..], &invite_op, &tag, &msg].concat();
    let proof = invite_key.sign(&signed);
    [&[kolo::wire::VERSION, 0x10][..], &invite_op, &proof, &tag, &msg].concat()
}

/// JOIN_REPLY frames (they carry the answering member's identity) the
/// rogue received so far.
fn join_replies(r: &Rogue) -> usize {
    r.seen.lock().unwrap().frames.iter().filter(|(direct, f)| *direct && f.get(1) == Some(&0x11)).count()
}

/// Attack 5 of issue 14: map the circle. Every invite carries the
/// network key, and in v1 that key alone opened a link served as a
/// member's: identify told an invite holder each member node's listen
/// addresses, and Kademlia and the relay served it too. Defence: every
/// link proves a member's or an open invite's key (SPEC §2a), and on an
/// invite holder's link a member serves only the join handshake (SPEC
/// §2b.5, `net::gate`). The fence: once admitted, the same node (now
/// proving as a member) is told the addresses.
#[test]
fn an_invite_holder_is_served_no_member_address() {
    let (ana, others) = circle_of("invite-map", "c", None, &["bo"]);
    let bo = &others[0];
    assert!(wait_until(WAIT, || member_names(&ana, "c").len() == 2), "bo joined");
    let leaked = invite(&ana, "c", false);
    let eve = Rogue::new("eve");
    eve.outsider(&leaked);
    assert!(wait_until(WAIT, || eve.connected() >= 1), "eve linked with the open invite");
    ana.send("c", "while eve is linked");
    assert!(bo.wait_for_text("c", "while eve is linked", WAIT));
    // Identify runs as soon as a connection is up: give it time to answer.
    std::thread::sleep(Duration::from_secs(4));
    let told = eve.seen.lock().unwrap().addresses.clone();
    assert!(told.is_empty(), "an invite holder was told member addresses: {told:?}");
    let gossip = eve.seen.lock().unwrap().frames.iter().filter(|(direct, _)| !direct).count();
    assert_eq!(gossip, 0, "an invite holder overheard gossip");
    drop(eve);

    // The fence: a member's link is served (identify tells it ana's address).
    let (fay, _) = rogue_member(&ana, "c", "fay", false);
    assert!(
        wait_until(WAIT, || !fay.seen.lock().unwrap().addresses.is_empty()),
        "a member's link was not served identify either (the test would show nothing)"
    );
}

/// Attack 4 of issue 14: a JOIN_HELLO with a made-up invite was answered
/// with the member's long-term identity and a signature binding it to the
/// circle, before the invite was checked. Defence: the hello carries a
/// signature by the invite key over the handshake's first message, and a
/// member answers only when it verifies against an invite open in its log
/// (or a tag proves the hello comes from the joiner that used it), SPEC
/// §8. A network-key holder with a made-up, used or expired invite gets no
/// reply at all; the fence is a hello with an open invite, which is
/// answered.
#[test]
fn a_join_hello_without_a_valid_open_invite_reveals_no_member() {
    let ana = Daemon::loopback("join-probe", "ana");
    ana.call(Request::CircleCreate { name: "c".into(), disappear_secs: None });
    let used = ana.invite("c");
    let mut bo = Daemon::loopback("join-probe", "bo");
    bo.call(Request::Join { code: used.clone() });
    assert!(wait_until(WAIT, || member_names(&ana, "c").len() == 2), "bo joined with the invite");
    bo.stop(); // The rogue reaches ana only.
    let expired = {
        let v = ana.call(Request::Invite { circle: "c".into(), expires_secs: Some(1), organiser: None });
        v["code"].as_str().unwrap().to_owned()
    };
    std::thread::sleep(Duration::from_millis(2_500));
    let open = ana.invite("c");

    // Eve holds the network key (every invite carries it) and the three codes.
    let eve = Rogue::new("eve");
    eve.outsider(&open);
    assert!(wait_until(WAIT, || eve.connected() >= 1), "eve entered the closed network");
    let (used, expired, open) = (
        circle::InviteCode::parse(&used).unwrap(),
        circle::InviteCode::parse(&expired).unwrap(),
        circle::InviteCode::parse(&open).unwrap(),
    );
    let circle_id = open.circle_id;
    let made_up_key = circle::InviteSecret::generate(&mut OsEntropy);
    let probes = [
        ("made-up invite", join_hello(circle_id, [7u8; 32], &made_up_key)),
        ("open invite signed with a made-up key", join_hello(circle_id, open.invite_op, &made_up_key)),
        ("used invite", join_hello(circle_id, used.invite_op, &used.secret)),
        ("expired invite", join_hello(circle_id, expired.invite_op, &expired.secret)),
    ];
    for (what, hello) in &probes {
        let hello = hello.clone();
        eve.run(move |l| l.direct_to_all(&hello));
        std::thread::sleep(Duration::from_millis(500));
        println!("sent a hello with a {what}");
    }
    // Fence: the same hello with the open invite's own key is answered.
    let fence = join_hello(circle_id, open.invite_op, &open.secret);
    eve.run(move |l| l.direct_to_all(&fence));
    assert!(wait_until(WAIT, || join_replies(&eve) >= 1), "a hello proving an open invite is answered");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(join_replies(&eve), 1, "only the hello that proved an open invite got a (member-identifying) reply");
    // The others got a JOIN_REFUSED, which names no member.
    let ana_id = member_id_of(&ana, "c", "ana");
    let seen = eve.seen.lock().unwrap();
    let refusals: Vec<&Vec<u8>> =
        seen.frames.iter().filter(|(d, f)| *d && f.get(1) == Some(&0x14)).map(|(_, f)| f).collect();
    assert!(refusals.len() >= 4, "each bad hello was refused ({} refusals)", refusals.len());
    assert!(refusals.iter().all(|f| f.len() == 35 && !contains(f, ana_id.as_bytes())));
}

/// Marks the made-up frames of the mailbox flood, so that any copy of
/// one is found in whatever a member later receives.
const JUNK_MARK: &[u8; 16] = b"made-up mailbox!";

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A PAIR_HELLO frame in the v2 layout (SPEC §6.2, §6.2b) with the given
/// tags (copied off the wire: tags travel in clear), random ciphertext and
/// a made-up authenticator: all an outsider with the network key can make.
fn junk_mailbox_frame(to: &[u8; 16], from: &[u8; 16], epoch: u32) -> Vec<u8> {
    use kolo::entropy::Entropy;
    let mut f = vec![kolo::wire::VERSION, 0x02];
    f.extend_from_slice(to);
    f.extend_from_slice(from);
    f.extend_from_slice(&epoch.to_be_bytes());
    f.extend_from_slice(&1u32.to_be_bytes());
    f.extend_from_slice(JUNK_MARK);
    let mut body = vec![0u8; 200 + 16];
    OsEntropy.fill(&mut body);
    f.extend_from_slice(&body[..200]);
    f.extend_from_slice(&epoch.to_be_bytes());
    f.extend_from_slice(&body[200..]);
    f
}

/// Attacks 1 and 2 of issue 14. An outsider holding only the network key
/// (and the topic and two members' tags, all visible on the wire to a
/// network-key holder) floods mailbox frames addressed to bo. In v1 every
/// member kept them for 14 days, relayed them and served them in
/// catch-up (1), and bo's "cannot open" verdicts on ~300 of them, relayed
/// by ana, cut honest ana off (2). Defence: the outer authenticator under
/// the per-epoch frame key (SPEC §6.2b) that only members hold, checked
/// before a pairwise frame is kept or relayed; a frame for us that fails
/// to open is never charged to the relay. Since every link proves a key
/// (SPEC §2a), the outsider, holding an open invite, links only as a
/// joiner, which members serve no gossip (§2b.5): the flood now stops
/// there, and the authenticator stays the defence against a removed
/// member's frames (`engine::store` and `hostile_input` tests).
/// Topology: the outsider reaches ana only; bo reaches ana only.
#[test]
fn made_up_mailbox_frames_are_not_kept_relayed_or_charged_to_honest_relays() {
    let (ana, others) = circle_of("mailbox-flood", "c", None, &["bo"]);
    let bo = &others[0];
    assert!(wait_until(WAIT, || member_names(&ana, "c").len() == 2), "bo joined");
    // A member's view, to learn what travels in clear: the topic and tags.
    let (eve, id) = rogue_member(&ana, "c", "eve", false);
    let (bo_id, eve_id) = (member_id_of(&ana, "c", "bo"), eve.member_id());
    let (topic, bo_tag, eve_tag, epoch) = eve.run(move |l| {
        let c = l.engine.circle(&id).unwrap();
        let tag = |m: &MemberId| circle::pair_tag(c.secret(), &id, m);
        (c.topic(), tag(&bo_id), tag(&eve_id), c.log().epoch())
    });
    drop(eve);

    let mallory = Rogue::new("mallory");
    // Only ana's own address: an invite also lists relayed addresses
    // through other members, and mallory must not reach bo.
    let leaked = circle::InviteCode::parse(&invite(&ana, "c", false)).unwrap();
    let direct: Vec<libp2p::Multiaddr> =
        leaked.addresses.iter().filter(|a| !a.contains("p2p-circuit")).filter_map(|a| a.parse().ok()).collect();
    let circle_id = leaked.circle_id;
    // The invite is open: mallory links, as a joiner (SPEC §2a).
    mallory.run(move |l| {
        l.ensure_net(circle_id, kolo::engine::NetworkAccess::joining(&leaked), direct.clone());
        l.command(kolo::net::NetCommand::Dial(direct));
    });
    assert!(wait_until(WAIT, || mallory.connected() >= 1), "mallory entered the closed network");
    let t = topic.clone();
    mallory.run(move |l| l.command(kolo::net::NetCommand::Subscribe { topics: vec![t], members: Vec::new() }));
    std::thread::sleep(Duration::from_secs(2));
    for _ in 0..4 {
        let (t, to, from) = (topic.clone(), bo_tag, eve_tag);
        mallory.run(move |l| {
            for _ in 0..150 {
                let frame = junk_mailbox_frame(&to, &from, epoch);
                l.command(kolo::net::NetCommand::Publish { topic: t.clone(), frame });
            }
        });
        std::thread::sleep(Duration::from_millis(400));
    }
    std::thread::sleep(Duration::from_secs(3));

    // (2) ana was not cut off by bo (bo may well have cut mallory off, if
    // they met): bo still has a link to ana, and her message reaches him.
    let banned = |d: &Daemon| d.call(Request::Status)["circles"][0]["banned_peers"].as_u64().unwrap();
    println!("banned peers after the flood: ana {}, bo {}", banned(&ana), banned(bo));
    let ana_online = || {
        let v = bo.call(Request::Members { circle: "c".into() });
        v.as_array().unwrap().iter().any(|m| m["name"] == "ana" && m["online"] == true)
    };
    assert!(mallory.connected() <= 1, "mallory reached ana only");
    assert!(ana_online(), "bo cut off ana, an honest relay");
    ana.send("c", "after the mailbox flood");
    assert!(bo.wait_for_text("c", "after the mailbox flood", WAIT), "bo still hears ana (no honest relay cut off)");

    // (1) Nothing of the flood was kept: a member joining now catches up
    // from ana and gets none of it.
    let (fay, _) = rogue_member(&ana, "c", "fay", false);
    let got_sync = || fay.seen.lock().unwrap().frames.iter().any(|(direct, f)| *direct && f.get(1) == Some(&0x21));
    assert!(wait_until(WAIT, got_sync), "fay caught up from ana");
    std::thread::sleep(Duration::from_secs(2));
    let seen = fay.seen.lock().unwrap();
    let junk = seen.frames.iter().filter(|(_, f)| contains(f, JUNK_MARK)).count();
    assert_eq!(junk, 0, "made-up mailbox frames were kept or relayed by ana");
}

/// Honest delivery during issue 14's floods (a benchmark, never run by
/// `cargo test`: `cargo test --test adversarial -- --ignored
/// closed_network_flood_latency --nocapture`). Ana → bo latency, 40
/// messages each: quiet; while a TCP flood churns connections against
/// ana (up to 1536 held, the oldest dropped and reopened, for at most
/// 30 s); while an outsider floods ana with made-up mailbox frames.
#[test]
#[ignore]
fn closed_network_flood_latency_bench() {
    let (ana, others) = circle_of("adv-latency-14", "dam", None, &["bo"]);
    let bo = &others[0];
    assert!(wait_until(WAIT, || member_names(&ana, "dam").len() == 2));
    let measure = |label: &str| -> Vec<u64> {
        let mut lat = Vec::new();
        for i in 0..40 {
            let t = format!("{label} {i}");
            ana.send("dam", &t);
            assert!(bo.wait_for_text("dam", &t, WAIT), "{t} arrived");
            let m = messages(bo, "dam").into_iter().find(|m| m["text"] == t.as_str()).unwrap();
            lat.push(m["received_at"].as_u64().unwrap().saturating_sub(m["sent_at"].as_u64().unwrap()));
            std::thread::sleep(Duration::from_millis(50));
        }
        lat.sort_unstable();
        lat
    };
    let stats = |v: &[u64]| (v[v.len() / 2], v[v.len() * 9 / 10], v[v.len() * 99 / 100], v[v.len() - 1]);
    // The first messages after a join wait for the mesh to form.
    let _ = measure("warm-up");
    let quiet = measure("quiet");

    let invite = ana.call(Request::Invite { circle: "dam".into(), expires_secs: Some(600), organiser: None });
    let target = invite_sockets(invite["code"].as_str().unwrap())[0];
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let churn = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let start = std::time::Instant::now();
            let mut held = std::collections::VecDeque::new();
            let mut opened = 0usize;
            while !stop.load(std::sync::atomic::Ordering::Relaxed)
                && start.elapsed() < Duration::from_secs(30)
                && opened < 50_000
            {
                if let Ok(s) = std::net::TcpStream::connect_timeout(&target, Duration::from_millis(200)) {
                    held.push_back(s);
                    opened += 1;
                }
                if held.len() > 1536 {
                    held.pop_front();
                }
            }
            opened
        })
    };
    std::thread::sleep(Duration::from_secs(2));
    let tcp = measure("tcp flood");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let opened = churn.join().unwrap();

    let mallory = Rogue::new("mallory");
    let (topic, to, from, epoch) = {
        let (eve, id) = rogue_member(&ana, "dam", "eve", false);
        let bo_id = member_id_of(&ana, "dam", "bo");
        let eve_id = eve.member_id();
        eve.run(move |l| {
            let c = l.engine.circle(&id).unwrap();
            let tag = |m: &MemberId| circle::pair_tag(c.secret(), &id, m);
            (c.topic(), tag(&bo_id), tag(&eve_id), c.log().epoch())
        })
    };
    mallory.outsider(invite["code"].as_str().unwrap());
    assert!(wait_until(WAIT, || mallory.connected() >= 1));
    let t = topic.clone();
    mallory.run(move |l| {
        for _ in 0..200 {
            l.command(kolo::net::NetCommand::Publish {
                topic: t.clone(),
                frame: junk_mailbox_frame(&to, &from, epoch),
            });
        }
    });
    let mailbox = measure("mailbox flood");
    println!("latency ms (median, p90, p99, max) over 40 messages each:");
    println!("  quiet          {:?}", stats(&quiet));
    println!("  tcp flood      {:?}  ({opened} connections opened)", stats(&tcp));
    println!("  mailbox flood  {:?}", stats(&mailbox));
}

/// Issue 12, attack 1, with real nodes: bo, an organiser, is removed while
/// dee is offline. Bo signs Removes of everyone on the heads from before
/// its removal and sends them (as it would any message, under the chain
/// dee still holds) once dee is back. In v1 "remove wins" exempted
/// Removes: dee, and then everyone who synced with it, removed ana, cy and
/// dee, and bo read on. Now a Remove concurrent with its author's removal
/// is void, and one that does not descend from what the members had
/// acknowledged is refused (SPEC §4.5–4.6); the engine half is
/// `agreement_tests::attack1_engines_…`.
#[test]
#[ignore = "passes alone; in the full binary on 2 loaded cores dee sometimes stays at {bo} (docs/security-testing.md): run with --ignored"]
fn attack1_a_removed_organiser_striking_back_through_an_offline_member_changes_nothing() {
    let (mut ana, mut others) = circle_of("adv-strike", "hall", None, &["cy", "dee"]);
    let (r, circle) = rogue_member(&ana, "hall", "bo", true);
    for d in [&ana, &others[0], &others[1]] {
        assert!(wait_until(WAIT, || role_of(d, "hall", "bo").as_deref() == Some("organiser")), "bo is an organiser");
        assert!(wait_until(WAIT, || member_names(d, "hall").len() == 4), "everyone sees the whole circle");
    }
    let before = r.run(move |l| l.engine.circle(&circle).unwrap().log().heads());
    let targets: Vec<MemberId> = ["ana", "cy", "dee"].iter().map(|n| member_id_of(&ana, "hall", n)).collect();
    let bo_epoch = epoch_of(&r, circle);
    others[1].stop();
    ana.call(Request::Remove { circle: "hall".into(), member: "bo".into() });
    assert!(wait_until(WAIT, || !member_names(&others[0], "hall").contains(&"bo".to_owned())), "cy saw the removal");
    // Only bo is there when dee comes back, and bo passes on nothing the
    // others sent (no catch-up, no relaying): dee hears bo's strike first.
    r.run(|l| {
        l.serve_catch_up = false;
        l.validate = false;
    });
    ana.stop();
    others[0].stop();
    others[1].start();
    // Bo finds dee (where it listens now) and connects.
    let dee_listens = wait_until(WAIT, || {
        others[1].call(Request::Status)["circles"][0]["listen"].as_array().is_some_and(|a| !a.is_empty())
    });
    assert!(dee_listens, "dee listens again");
    let addresses: Vec<libp2p::Multiaddr> = others[1].call(Request::Status)["circles"][0]["listen"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a.as_str()?.parse().ok())
        .collect();
    let seed = r.identity_seed;
    let me = r.member_id();
    let strike = |at: u64| {
        for (i, target) in targets.iter().enumerate() {
            let op = Op::sign(
                &IdentitySecret::from_seed(&seed),
                &circle,
                before.clone(),
                OpBody::Remove { member: *target },
                at - i as u64,
            )
            .unwrap();
            seal_raw(&r, circle, inner(circle, me, bo_epoch, Body::Op(op.encode())));
        }
    };
    // Dial and strike until dee took it (a loaded machine may need several
    // tries to connect; bounded).
    let dee = &others[1];
    let mut took = false;
    for attempt in 0..30u64 {
        let dial = addresses.clone();
        r.run(move |l| l.command(kolo::net::NetCommand::Dial(dial)));
        std::thread::sleep(Duration::from_secs(1));
        strike(now_ms() - 1 - 10 * attempt);
        if wait_until(2, || !member_names(dee, "hall").contains(&"ana".to_owned())) {
            took = true;
            break;
        }
    }
    assert!(took, "control: dee, hearing only bo, took bo's strike (it shows {:?})", member_names(dee, "hall"));
    // Everyone meets again.
    ana.start();
    others[0].start();
    strike(now_ms() - 20);
    let (cy, dee) = (&others[0], &others[1]);
    let expected = ["ana", "cy", "dee"];
    for (who, d) in [("ana", &ana), ("cy", cy), ("dee", dee)] {
        assert!(
            wait_until(WAIT, || member_names(d, "hall") == expected),
            "{who} resolved to {:?} after the strike-back",
            member_names(d, "hall")
        );
    }
    // The circle goes on without bo: ana's next message reaches cy and dee.
    ana.send("hall", "after the strike");
    assert!(cy.wait_for_text("hall", "after the strike", WAIT) && dee.wait_for_text("hall", "after the strike", WAIT));
    dee.send("hall", "dee is still here");
    assert!(ana.wait_for_text("hall", "dee is still here", WAIT));
    std::thread::sleep(Duration::from_secs(2));
    assert!(!r.texts().iter().any(|t| t == "after the strike" || t == "dee is still here"), "bo reads on");
    for (who, d) in [("ana", &ana), ("cy", cy), ("dee", dee)] {
        assert_eq!(member_names(d, "hall"), expected, "{who} changed its mind later");
    }
    others.clear();
}

/// Issue 12, attack 3, with real nodes: bo, an organiser, makes an invite,
/// is removed, and hands the invite to a friend afterwards. In v1 invites
/// outlived their author's authority and the friend was admitted; now an
/// invite dies with it (SPEC §4.4): nobody admits the friend, who learns
/// no circle secret. The engine half is `agreement_tests::attack3_engines_…`.
#[test]
fn attack3_a_removed_organisers_invite_admits_nobody() {
    let (ana, others) = circle_of("adv-invite", "hall", None, &["cy"]);
    let cy = &others[0];
    let (r, circle) = rogue_member(&ana, "hall", "bo", true);
    assert!(wait_until(WAIT, || role_of(cy, "hall", "bo").as_deref() == Some("organiser")));
    // Bo's invite names the honest members' addresses, as a real one would.
    let addresses = circle::InviteCode::parse(&invite(&ana, "hall", false)).unwrap().addresses;
    r.run(move |l| {
        l.handle(Input::Command(Command::CreateInvite {
            circle,
            expires_in_ms: 600_000,
            role: Role::Member,
            addresses,
        }))
    });
    let code = r.seen.lock().unwrap().events.iter().rev().find_map(|e| match e {
        kolo::engine::Event::InviteCreated { code, .. } => Some(code.clone()),
        _ => None,
    });
    let code = code.expect("bo made an invite");
    assert!(fence(&r, circle, &ana, "hall", "bo's invite is out"), "ana heard bo after the invite");
    ana.call(Request::Remove { circle: "hall".into(), member: "bo".into() });
    assert!(wait_until(WAIT, || !member_names(cy, "hall").contains(&"bo".to_owned())), "cy saw the removal");
    let friend = Daemon::loopback("adv-invite", "friend");
    let home = friend.home.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(kolo::api::call(&home, &Request::Join { code }));
    });
    // Every member refuses it, and says why (a refusal names no member);
    // bo, removed, says "try others". The members refuse already at the
    // link (SPEC §2a): the friend's proof by the invite's key is checked,
    // and the friend told at once that its author can no longer invite.
    match rx.recv_timeout(Duration::from_secs(45)) {
        Ok(Ok(v)) => panic!("the friend joined with a removed organiser's invite: {v}"),
        Ok(Err(e)) => {
            let e = e.to_string();
            // The link's typed refusal (SPEC §2a), not a timeout.
            assert!(
                e.contains("can no longer invite") || e.contains("member refused our proof"),
                "the friend was told: {e}"
            )
        }
        Err(_) => panic!("the friend's join was not answered within 45 s"),
    }
    std::thread::sleep(Duration::from_secs(2));
    for (who, d) in [("ana", &ana), ("cy", cy)] {
        assert_eq!(member_names(d, "hall"), ["ana", "cy"], "{who} admitted someone with bo's invite");
    }
    let circles = friend.call(Request::Circles);
    assert!(circles.as_array().is_none_or(|c| c.is_empty()), "the friend holds a circle: {circles}");
    // The circle works on.
    ana.send("hall", "no newcomers");
    assert!(cy.wait_for_text("hall", "no newcomers", WAIT));
}

fn epoch_seen_by(d: &Daemon) -> u64 {
    d.call(Request::Circles).as_array().unwrap()[0]["epoch"].as_u64().unwrap()
}

/// Issue 12, attack 6, with real nodes: rex, a plain member, sends
/// 900 operations it may not make (Rotates, Removes, making itself an
/// organiser) and more renames than its quota. (900: below the 1,000
/// messages after which its chain rotates. A burst under a new chain that
/// reaches a member before the chain does is charged to the members that
/// relay it, and can get an honest relay cut off: a residual risk in
/// `docs/threat-model.md`, not what this test is about.) In v1 they were
/// stored as "ignored" until the log was full (`LogFull`) and no Remove was
/// accepted again: rex was unremovable. Now they are refused at insert
/// (none starts an epoch or changes a role) and rex is removed like anyone.
/// The engine half is `circle::log::tests::attack6_…`.
#[test]
#[ignore = "passes alone; in the full binary on 2 loaded cores cy sometimes misses the removal for over 60 s (docs/security-testing.md): run with --ignored"]
fn attack6_a_plain_member_flooding_operations_stays_removable() {
    let (ana, others) = circle_of("adv-opflood", "hall", None, &["cy"]);
    let cy = &others[0];
    let (r, circle) = rogue_member(&ana, "hall", "rex", false);
    assert!(wait_until(WAIT, || member_names(cy, "hall").len() == 3));
    // Both hold rex's chain before the flood (frames under a chain not yet
    // received are the residual risk named above, not this attack).
    assert!(fence(&r, circle, &ana, "hall", "rex says hello") && cy.wait_for_text("hall", "rex says hello", WAIT));
    let epoch_before = epoch_seen_by(&ana);
    let seed = r.identity_seed;
    let me = r.member_id();
    let ana_id = member_id_of(&ana, "hall", "ana");
    let heads = r.run(move |l| l.engine.circle(&circle).unwrap().log().heads());
    let epoch = epoch_of(&r, circle);
    let identity = IdentitySecret::from_seed(&seed);
    let mut sent = 0;
    for i in 0..900u64 {
        let body = match i % 4 {
            0 => OpBody::Rotate,
            1 => OpBody::Remove { member: ana_id },
            2 => OpBody::SetRole { member: me, role: Role::Organiser },
            _ => OpBody::Rename { display_name: format!("rex {i}") },
        };
        let op = Op::sign(&identity, &circle, heads.clone(), body, now_ms() - i).unwrap();
        seal_raw(&r, circle, inner(circle, me, epoch, Body::Op(op.encode())));
        sent += 1;
    }
    assert_eq!(sent, 900);
    std::thread::sleep(Duration::from_secs(5));
    // Renames within its quota count (the newest one it got in names it).
    let rex_name = member_names(&ana, "hall").into_iter().find(|n| n.starts_with("rex")).expect("rex is listed");
    for (who, d) in [("ana", &ana), ("cy", cy)] {
        let names = member_names(d, "hall");
        assert!(names.len() == 3 && names[..2] == ["ana", "cy"], "{who}: the flood changed the roster: {names:?}");
        assert_eq!(role_of(d, "hall", "ana").as_deref(), Some("organiser"), "{who}");
        let rex = names[2].clone();
        assert_eq!(role_of(d, "hall", &rex).as_deref(), Some("member"), "{who}: rex made itself an organiser");
    }
    assert_eq!(epoch_seen_by(&ana), epoch_before, "rex's Rotates started epochs");
    ana.call(Request::Remove { circle: "hall".into(), member: rex_name });
    for (who, d) in [("ana", &ana), ("cy", cy)] {
        assert!(
            wait_until(WAIT, || member_names(d, "hall") == ["ana", "cy"]),
            "{who}: rex could not be removed after its flood: {:?}",
            member_names(d, "hall")
        );
    }
    ana.send("hall", "rex is out");
    assert!(cy.wait_for_text("hall", "rex is out", WAIT));
    assert!(!r.texts().iter().any(|t| t == "rex is out"), "rex reads on");
}
