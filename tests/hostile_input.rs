//! Engine-level checks against bytes from a hostile peer: nothing panics,
//! nothing is shown, and state is unchanged so the genuine frame still
//! opens afterwards.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::needless_range_loop)]

use kolo::circle::CircleId;
use kolo::engine::{Command, EngineConfig, Input};
use kolo::sim::{Faults, Sim};
use proptest::prelude::*;

fn two_members(seed: u64) -> (Sim, CircleId) {
    let mut sim = Sim::new(seed, &["ana", "bongani", "chen"], Faults::NONE, EngineConfig::default());
    sim.command(0, Command::CreateCircle { name: "c".into(), max_disappear_secs: None });
    let circle = sim.created_circle(0).unwrap();
    assert!(sim.invite_and_join(circle, 0, 1));
    sim.run_for(5_000);
    (sim, circle)
}

fn shown(sim: &Sim, i: usize, circle: &CircleId, text: &str) -> usize {
    sim.nodes[i].engine.circle(circle).unwrap().history().iter().filter(|m| m.text == text).count()
}

#[test]
fn flipping_any_byte_of_a_group_frame_is_refused_and_changes_nothing() {
    let (mut sim, circle) = two_members(31);
    // Bongani goes offline so the genuine frame reaches him only at the end.
    sim.set_online(1, false);
    sim.command(0, Command::SendText { circle, text: "genuine".into(), timer_secs: None });
    let frame = sim.captured.iter().rev().find(|c| c.bytes[1] == 0x01).unwrap().bytes.clone();
    sim.set_online(1, true);
    let before = sim.nodes[1].engine.circle(&circle).unwrap().history().len();
    for pos in 0..frame.len() {
        for bit in [0u8, 3, 7] {
            let mut bad = frame.clone();
            bad[pos] ^= 1 << bit;
            sim.input(1, Input::Frame { circle, bytes: bad });
        }
    }
    assert_eq!(sim.nodes[1].engine.circle(&circle).unwrap().history().len(), before);
    sim.input(1, Input::Frame { circle, bytes: frame });
    assert_eq!(shown(&sim, 1, &circle, "genuine"), 1);
}

#[test]
fn unknown_versions_and_types_get_a_clear_reason() {
    let (mut sim, circle) = two_members(32);
    sim.input(1, Input::Frame { circle, bytes: vec![3, 1, 0, 0] });
    sim.input(1, Input::Frame { circle, bytes: vec![1, 1, 0, 0] });
    sim.input(1, Input::Frame { circle, bytes: vec![kolo::wire::VERSION, 0x7f] });
    let reasons: Vec<String> = sim.nodes[1]
        .events
        .iter()
        .filter_map(|e| match e {
            kolo::engine::Event::Rejected { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect();
    assert!(reasons.iter().any(|r| r.contains("unsupported wire version 3")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("older kolo (wire version 1)")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("0x7f")), "{reasons:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn arbitrary_bytes_never_panic_or_show(frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..700), 1..24),
                                           prefixes in proptest::collection::vec(0u8..0x30, 24)) {
        let (mut sim, circle) = two_members(33);
        let before = sim.nodes[1].engine.circle(&circle).unwrap().history().len();
        for (i, mut bytes) in frames.into_iter().enumerate() {
            // Half the inputs get a valid version and a plausible type so
            // they reach the deeper decoders.
            if i % 2 == 0 && bytes.len() >= 2 {
                bytes[0] = kolo::wire::VERSION;
                bytes[1] = prefixes[i % prefixes.len()];
            }
            sim.input(1, Input::Frame { circle, bytes: bytes.clone() });
            sim.input(1, Input::Direct { circle, peer: 0, bytes: bytes.clone() });
            sim.input(2, Input::Direct { circle, peer: 0, bytes });
        }
        prop_assert_eq!(sim.nodes[1].engine.circle(&circle).unwrap().history().len(), before);
    }
}

fn last_verdict(sim: &Sim, i: usize) -> kolo::engine::Verdict {
    *sim.nodes[i].verdicts.last().expect("a verdict for every topic frame")
}

/// The verdicts peer scoring is built on: only what every member detects
/// alike is `Reject` (so honest relays are never penalised); what depends
/// on the receiver's own keys, clock or view is `Ignore`; the genuine is
/// `Accept`.
#[test]
fn topic_frames_get_the_verdict_every_member_would_agree_on() {
    use kolo::engine::Verdict;
    let (mut sim, circle) = two_members(34);
    sim.set_online(1, false);
    sim.command(0, Command::SendText { circle, text: "genuine".into(), timer_secs: None });
    let genuine = sim.captured.iter().rev().find(|c| c.bytes[1] == 0x01).unwrap().bytes.clone();
    sim.set_online(1, true);
    let mut flipped = genuine.clone();
    flipped[40] ^= 1; // ciphertext: the signature no longer verifies
    sim.input(1, Input::Frame { circle, bytes: flipped });
    assert_eq!(last_verdict(&sim, 1), Verdict::Reject, "a forged frame under a known chain");
    sim.input(1, Input::Frame { circle, bytes: vec![kolo::wire::VERSION, 0x7f, 1, 2, 3] });
    assert_eq!(last_verdict(&sim, 1), Verdict::Reject, "an unknown frame type");
    let mut made_up = genuine.clone();
    made_up[2..18].copy_from_slice(&[0xab; 16]);
    sim.input(1, Input::Frame { circle, bytes: made_up });
    assert_eq!(last_verdict(&sim, 1), Verdict::Ignore, "a frame under a key id we do not hold (yet)");
    sim.input(1, Input::Frame { circle, bytes: genuine.clone() });
    assert_eq!(last_verdict(&sim, 1), Verdict::Accept, "the genuine frame");
    assert_eq!(shown(&sim, 1, &circle, "genuine"), 1);
    sim.input(1, Input::Frame { circle, bytes: genuine });
    assert_eq!(last_verdict(&sim, 1), Verdict::Ignore, "a duplicate");
    // Dated a day ahead: the receiver's clock decides, so no blame.
    let me = sim.nodes[0].engine.member_id();
    let epoch = sim.nodes[0].engine.circle(&circle).unwrap().log().epoch();
    let tomorrow = kolo::engine::message::Inner {
        circle_id: circle,
        sender: me,
        epoch,
        sent_at_ms: sim.now + 24 * 3600 * 1000,
        timer_secs: 0,
        body: kolo::engine::message::Body::Text("tomorrow".into()),
    };
    sim.set_online(1, false);
    sim.seal_raw(0, circle, &tomorrow);
    let ahead = sim.captured.iter().rev().find(|c| c.bytes[1] == 0x01).unwrap().bytes.clone();
    sim.set_online(1, true);
    sim.input(1, Input::Frame { circle, bytes: ahead });
    assert_eq!(last_verdict(&sim, 1), Verdict::Ignore);
    assert_eq!(shown(&sim, 1, &circle, "tomorrow"), 0);
}

/// Regression: once the frames waiting for a key reached their cap, a new
/// frame under a not-yet-known key was still kept (so catch-up never sent
/// it again) but never queued, so it stayed unreadable even after its key
/// arrived. A flood of frames under made-up key ids could thus make honest
/// messages disappear. Now such a frame is not kept, and catch-up brings it.
#[test]
fn a_flood_of_made_up_key_ids_cannot_make_an_honest_message_unreadable() {
    let (mut sim, circle) = two_members(35);
    let template = sim.captured.iter().find(|c| c.bytes[1] == 0x01).unwrap().bytes.clone();
    for i in 0..2_100u32 {
        let mut f = template.clone();
        f[2..6].copy_from_slice(&i.to_be_bytes());
        f[6..18].copy_from_slice(&[0xee; 12]);
        sim.input(1, Input::Frame { circle, bytes: f });
    }
    // Ana starts a new chain; Bongani gets the message before the key.
    sim.set_online(1, false);
    sim.command(0, Command::Rotate { circle });
    sim.command(0, Command::SendText { circle, text: "after the flood".into(), timer_secs: None });
    let ours: Vec<Vec<u8>> = sim.captured.iter().rev().take(8).map(|c| c.bytes.clone()).collect();
    sim.set_online(1, true);
    for f in ours.iter().filter(|f| f[1] == 0x01) {
        sim.input(1, Input::Frame { circle, bytes: f.clone() });
    }
    for f in ours.iter().filter(|f| f[1] != 0x01) {
        sim.input(1, Input::Frame { circle, bytes: f.clone() });
    }
    sim.run_for(20_000); // catch-up rounds
    assert_eq!(shown(&sim, 1, &circle, "after the flood"), 1);
}

/// Regression: frames every member refuses (here: forged signatures under
/// a known chain, delivered in a catch-up answer, which any peer of the
/// closed network can send) were kept in the frame store for the
/// retention time and served to everyone's catch-up, pushing honest
/// frames out of a full store. Now they are dropped once refused.
#[test]
fn refused_forgeries_are_not_kept_for_catch_up() {
    let (mut sim, circle) = two_members(36);
    sim.set_online(1, false);
    sim.command(0, Command::SendText { circle, text: "genuine".into(), timer_secs: None });
    let genuine = sim.captured.iter().rev().find(|c| c.bytes[1] == 0x01).unwrap().bytes.clone();
    sim.set_online(1, true);
    let held = sim.nodes[1].engine.circle(&circle).unwrap().stored_frames();
    let forgeries: Vec<Vec<u8>> = (0..50u8)
        .map(|i| {
            let mut f = genuine.clone();
            f[30 + usize::from(i)] ^= 0x40;
            f
        })
        .collect();
    let mut response = vec![kolo::wire::VERSION, 0x21];
    response.extend_from_slice(&(forgeries.len() as u32).to_be_bytes());
    for f in &forgeries {
        response.extend_from_slice(&(f.len() as u32).to_be_bytes());
        response.extend_from_slice(f);
    }
    sim.input(1, Input::Direct { circle, peer: 0, bytes: response });
    assert_eq!(sim.nodes[1].engine.circle(&circle).unwrap().stored_frames(), held, "forgeries kept");
    sim.input(1, Input::Frame { circle, bytes: genuine });
    assert_eq!(shown(&sim, 1, &circle, "genuine"), 1);
}

/// Regression: a frame kept while waiting for its sender's key was never
/// opened if the node restarted before the key came (the waiting list is
/// in memory, and catch-up does not resend a frame the node holds). Now
/// such frames are not persisted until they open (catch-up brings them
/// again after a restart), and stored ones are queued again on restore.
#[test]
fn a_message_waiting_for_its_key_survives_a_restart() {
    let mut sim = Sim::new(37, &["ana", "bongani"], Faults::NONE, EngineConfig::default());
    sim.nodes[1].keep_records = true;
    sim.command(0, Command::CreateCircle { name: "c".into(), max_disappear_secs: None });
    let circle = sim.created_circle(0).unwrap();
    assert!(sim.invite_and_join(circle, 0, 1));
    sim.run_for(5_000);
    sim.set_online(1, false);
    sim.command(0, Command::Rotate { circle });
    sim.command(0, Command::SendText { circle, text: "across a restart".into(), timer_secs: None });
    let ours: Vec<Vec<u8>> = sim.captured.iter().rev().take(8).map(|c| c.bytes.clone()).collect();
    sim.set_online(1, true);
    for f in ours.iter().filter(|f| f[1] == 0x01) {
        sim.input(1, Input::Frame { circle, bytes: f.clone() });
    }
    assert_eq!(shown(&sim, 1, &circle, "across a restart"), 0, "the key had not come yet");
    sim.restart(1);
    for f in ours.iter().filter(|f| f[1] != 0x01) {
        sim.input(1, Input::Frame { circle, bytes: f.clone() });
    }
    sim.run_for(20_000); // catch-up rounds
    assert_eq!(shown(&sim, 1, &circle, "across a restart"), 1);
}

fn sent_direct(outputs: &[kolo::engine::Output]) -> Vec<Vec<u8>> {
    outputs
        .iter()
        .filter_map(|o| match o {
            kolo::engine::Output::SendDirect { frame, .. } => Some(frame.clone()),
            _ => None,
        })
        .collect()
}

fn rejects(outputs: &[kolo::engine::Output]) -> usize {
    outputs
        .iter()
        .filter(|o| matches!(o, kolo::engine::Output::Verdict { verdict: kolo::engine::Verdict::Reject, .. }))
        .count()
}

/// A SYNC_RESPONSE (SPEC §7) carrying `frames`.
fn sync_response(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = vec![kolo::wire::VERSION, 0x21];
    out.extend_from_slice(&(frames.len() as u32).to_be_bytes());
    for f in frames {
        out.extend_from_slice(&(f.len() as u32).to_be_bytes());
        out.extend_from_slice(f);
    }
    out
}

/// Attack 3 of issue 14: catch-up was an unscored side channel. Requests
/// were served to anyone in the network (the whole store), and answers
/// were taken from any peer, asked or not, with nothing counted against a
/// peer whose answer was full of forgeries. Now (SPEC §7) a request must
/// carry the circle's frame authenticator and be fresh and new; an answer
/// is taken only from a peer we asked; invalid frames in it are reported
/// against that peer, as invalid gossip is.
#[test]
fn catch_up_serves_proven_members_only_and_takes_only_answers_we_asked_for() {
    let (mut sim, circle) = two_members(41);
    // Bo misses a message, so Ana has something to send him.
    sim.set_online(1, false);
    sim.command(0, Command::SendText { circle, text: "while you were away".into(), timer_secs: None });
    sim.run_for(1_000);
    let now = sim.now;
    let mut rng = kolo::entropy::SeededEntropy::from_u64(5);
    let (ana, bo) = (0usize, 1usize);
    let handle = |sim: &mut Sim, i: usize, input: Input, rng: &mut kolo::entropy::SeededEntropy| {
        sim.nodes[i].engine.handle(now, input, rng)
    };

    // Bo asks Ana (peer 1 in her view, peer 0 in his).
    let request = sent_direct(&handle(&mut sim, bo, Input::PeerAvailable { circle, peer: 0 }, &mut rng)).remove(0);
    assert_eq!(request[1], 0x20);

    // An outsider's request: the same list with a made-up authenticator.
    let mut forged = request.clone();
    let n = forged.len();
    forged[n - 1] ^= 0x55;
    let out = handle(&mut sim, ana, Input::Direct { circle, peer: 9, bytes: forged }, &mut rng);
    assert!(sent_direct(&out).is_empty(), "a request without the circle's authenticator is not served");
    assert_eq!(rejects(&out), 1, "and counts against the peer that sent it");
    // A v1 request (no authenticator at all) is not served either.
    let v1 = [&[kolo::wire::VERSION, 0x20][..], &0u32.to_be_bytes()].concat();
    assert!(sent_direct(&handle(&mut sim, ana, Input::Direct { circle, peer: 9, bytes: v1 }, &mut rng)).is_empty());

    // The member's own request is served, once.
    let out = handle(&mut sim, ana, Input::Direct { circle, peer: 1, bytes: request.clone() }, &mut rng);
    let answer = sent_direct(&out).remove(0);
    assert_eq!(answer[1], 0x21);
    let replay = handle(&mut sim, ana, Input::Direct { circle, peer: 9, bytes: request }, &mut rng);
    assert!(sent_direct(&replay).is_empty(), "a replayed request is not served again");

    // An answer from a peer Bo never asked is not taken, and counts against it.
    let shows = |sim: &Sim| {
        sim.nodes[bo].engine.circle(&circle).unwrap().history().iter().any(|m| m.text == "while you were away")
    };
    let out = handle(&mut sim, bo, Input::Direct { circle, peer: 7, bytes: answer.clone() }, &mut rng);
    assert!(!shows(&sim), "an unsolicited answer was taken");
    assert_eq!(rejects(&out), 1);
    // From Ana, whom he asked, it is.
    let out = handle(&mut sim, bo, Input::Direct { circle, peer: 0, bytes: answer.clone() }, &mut rng);
    assert!(shows(&sim));
    assert_eq!(rejects(&out), 0, "an honest answer costs its sender nothing");
    // One answer per request: a second answer to one request is unsolicited.
    let _ = handle(&mut sim, bo, Input::PeerAvailable { circle, peer: 3 }, &mut rng);
    let first = handle(&mut sim, bo, Input::Direct { circle, peer: 3, bytes: answer.clone() }, &mut rng);
    assert_eq!(rejects(&first), 0);
    let again = handle(&mut sim, bo, Input::Direct { circle, peer: 3, bytes: answer }, &mut rng);
    assert_eq!(rejects(&again), 1);

    // An answer to our request that is full of forgeries is scored like gossip.
    let _ = handle(&mut sim, bo, Input::PeerAvailable { circle, peer: 8 }, &mut rng);
    let junk: Vec<Vec<u8>> = (0..5u8).map(|i| [&[kolo::wire::VERSION, 0x02][..], &[i; 80]].concat()).collect();
    let out = handle(&mut sim, bo, Input::Direct { circle, peer: 8, bytes: sync_response(&junk) }, &mut rng);
    assert_eq!(rejects(&out), 3, "invalid frames in an answer count against its sender (up to the cut-off)");
}

/// The authenticator of SPEC §6.2b, computed here from the spec (not with
/// the crate's own helper): `u32 epoch || HMAC-SHA256(frame_key, ...)[..16]`.
fn authenticate(mut frame: Vec<u8>, secret: &[u8; 32], circle: &CircleId, epoch: u32) -> Vec<u8> {
    use hmac::{KeyInit, Mac};
    let key: [u8; 32] = kolo::crypto::kdf::derive(circle, secret, b"kolo/v2/frame-mac", &[&epoch.to_be_bytes()]);
    frame.extend_from_slice(&epoch.to_be_bytes());
    let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    m.update(&frame);
    frame.extend_from_slice(&m.finalize().into_bytes()[..16]);
    frame
}

/// Attack 2 of issue 14, at the recipient: a member (or anyone holding the
/// frame key) sends bo pairwise frames that do not open. In v1 bo judged
/// them `Ignore`, and past the network's budget for unjudged frames (300)
/// each counted against whichever honest member relayed them, which was
/// then cut off. Now bo gives them the verdict every other member gives
/// (`Accept`: authenticated, for a member): the relay is never charged.
/// Without the authenticator they are `Reject` everywhere.
#[test]
fn a_pairwise_frame_for_us_that_does_not_open_is_not_charged_to_the_relay() {
    let mut sim = Sim::new(43, &["ana", "bongani", "chen"], Faults::NONE, EngineConfig::default());
    sim.command(0, Command::CreateCircle { name: "c".into(), max_disappear_secs: None });
    let circle = sim.created_circle(0).unwrap();
    assert!(sim.invite_and_join(circle, 0, 1));
    assert!(sim.invite_and_join(circle, 0, 2));
    sim.run_for(5_000);
    let (bo, chen) = (sim.nodes[1].engine.member_id(), sim.nodes[2].engine.member_id());
    let c = sim.nodes[2].engine.circle(&circle).unwrap();
    let (secret, epoch) = (*c.secret(), c.log().epoch());
    let (to, from) = (kolo::circle::pair_tag(&secret, &circle, &bo), kolo::circle::pair_tag(&secret, &circle, &chen));
    let junk = |i: u8| {
        let mut f = vec![kolo::wire::VERSION, 0x02];
        f.extend_from_slice(&to);
        f.extend_from_slice(&from);
        f.extend_from_slice(&epoch.to_be_bytes());
        f.extend_from_slice(&1u32.to_be_bytes());
        f.extend_from_slice(&[i; 120]); // not a handshake anyone made
        f
    };
    let mut rng = kolo::entropy::SeededEntropy::from_u64(6);
    let verdict_of = |sim: &mut Sim, i: usize, bytes: Vec<u8>, rng: &mut kolo::entropy::SeededEntropy| {
        let out = sim.nodes[i].engine.handle(sim.now, Input::Frame { circle, bytes }, rng);
        out.iter()
            .find_map(|o| match o {
                kolo::engine::Output::Verdict { verdict, .. } => Some(*verdict),
                _ => None,
            })
            .unwrap()
    };
    for i in 0..5u8 {
        let frame = authenticate(junk(i), &secret, &circle, epoch);
        // Ana, relaying bo's mailbox, and bo, who cannot open it, agree.
        assert_eq!(verdict_of(&mut sim, 0, frame.clone(), &mut rng), kolo::engine::Verdict::Accept);
        assert_eq!(verdict_of(&mut sim, 1, frame, &mut rng), kolo::engine::Verdict::Accept, "frame {i}");
    }
    // Without a valid authenticator (an outsider's): refused by everyone.
    let forged = authenticate(junk(9), &[7u8; 32], &circle, epoch);
    assert_eq!(verdict_of(&mut sim, 0, forged.clone(), &mut rng), kolo::engine::Verdict::Reject);
    assert_eq!(verdict_of(&mut sim, 1, forged, &mut rng), kolo::engine::Verdict::Reject);
}
