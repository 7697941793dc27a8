//! The key schedule against a forensic examiner (issue 13): a passive copy
//! of one member's whole profile, taken with its passphrase, plus every
//! frame captured off the network. Engines in the deterministic simulator;
//! the copy is made from exactly what the member's profile holds
//! (`Sim::seize`). Each test fails on the v1 key schedule.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::needless_range_loop)]

use kolo::circle::CircleId;
use kolo::engine::{Command, Engine, EngineConfig, Input, MessageKind};
use kolo::sim::{Faults, Sim};

const NAMES: [&str; 4] = ["ana", "bongani", "chen", "dara"];
/// The member whose profile is copied.
const CHEN: usize = 2;

fn circle(seed: u64, max_disappear_secs: Option<u32>, config: EngineConfig) -> (Sim, CircleId) {
    let mut sim = Sim::new(seed, &NAMES, Faults::NONE, config);
    sim.nodes[CHEN].keep_records = true;
    sim.command(0, Command::CreateCircle { name: "riverside".into(), max_disappear_secs });
    let circle = sim.created_circle(0).expect("circle created");
    for j in 1..NAMES.len() {
        assert!(sim.invite_and_join(circle, 0, j), "{} could not join", NAMES[j]);
    }
    sim.run_for(60_000);
    (sim, circle)
}

fn send(sim: &mut Sim, i: usize, circle: CircleId, text: &str, timer_secs: Option<u32>) {
    sim.command(i, Command::SendText { circle, text: text.into(), timer_secs });
}

fn texts(engine: &Engine, circle: &CircleId) -> Vec<String> {
    engine
        .circle(circle)
        .map(|c| {
            c.history().into_iter().filter(|m| !matches!(m.kind, MessageKind::System)).map(|m| m.text.clone()).collect()
        })
        .unwrap_or_default()
}

/// Two uses of a copy of Chen's profile made now: one as it is (its
/// chains read on), one that forgets which frames and chains it had seen,
/// so old key distributions in a capture are opened again (an examiner is
/// not bound by our replay checks).
fn seize(sim: &Sim) -> [Engine; 2] {
    let plain = sim.seize(CHEN).expect("profile copied");
    let mut forgetful = sim.seize(CHEN).expect("profile copied");
    forgetful.as_examiner();
    [plain, forgetful]
}

/// What the copies read from every frame the network carried from
/// capture index `from` on, as a passive listener in the circle's network.
fn examine(sim: &Sim, copies: [Engine; 2], circle: CircleId, from: usize) -> Vec<String> {
    let mut read = Vec::new();
    for mut copy in copies {
        let mut rng = kolo::entropy::SeededEntropy::from_u64(77);
        for c in sim.captured[from..].iter().filter(|c| !c.direct) {
            let _ = copy.handle(sim.now, Input::Frame { circle, bytes: c.bytes.clone() }, &mut rng);
        }
        read.extend(texts(&copy, &circle));
    }
    read
}

#[test]
fn a_copied_profile_stops_reading_once_the_member_updated_and_the_epoch_changed() {
    let config = EngineConfig { rotate_after_ms: 10 * 60 * 1000, ..EngineConfig::default() };
    let (mut sim, circle) = circle(31, None, config);
    // The examiner copies Chen's profile and gives the laptop back.
    let copies = seize(&sim);
    let start = sim.captured.len();
    send(&mut sim, 1, circle, "still readable", None);
    sim.run_for(5_000);
    // Chen's scheduled update (its chain is older than the rotation time),
    // then an organiser rotates the circle's keys.
    sim.run_for(11 * 60 * 1000);
    send(&mut sim, CHEN, circle, "chen after the update", None);
    sim.run_for(30_000);
    sim.command(0, Command::Rotate { circle });
    sim.run_for(30_000);
    for j in 0..NAMES.len() {
        send(&mut sim, j, circle, &format!("after healing {j}"), None);
    }
    sim.run_for(30_000);
    for j in 0..NAMES.len() {
        assert!(
            texts(&sim.nodes[j].engine, &circle).contains(&"after healing 0".to_string()),
            "{} misses it",
            NAMES[j]
        );
    }
    let read = examine(&sim, copies, circle, start);
    // The copy works: what was sent before the update, it reads.
    assert!(read.contains(&"still readable".to_string()), "the copy should read messages before healing: {read:?}");
    for j in 0..NAMES.len() {
        let text = format!("after healing {j}");
        assert!(!read.contains(&text), "the copied profile read {text:?} after the update and rotation");
    }
    assert!(!read.contains(&"chen after the update".to_string()), "the copy read Chen's own new chain");
}

#[test]
fn a_disappeared_message_cannot_be_recovered_from_the_profile_and_the_capture() {
    let (mut sim, circle) = circle(32, Some(60), EngineConfig::default());
    let start = 0;
    send(&mut sim, 1, circle, "meet at the back door", Some(60));
    sim.run_for(5_000);
    assert!(texts(&sim.nodes[CHEN].engine, &circle).contains(&"meet at the back door".to_string()));
    // Past its deadline it is gone from every member's history...
    sim.run_for(150_000);
    for j in 0..NAMES.len() {
        assert!(!texts(&sim.nodes[j].engine, &circle).contains(&"meet at the back door".to_string()));
    }
    // ...and the examiner who then copies Chen's profile, holding every
    // frame the network carried since the circle began, cannot read it.
    let read = examine(&sim, seize(&sim), circle, start);
    assert!(!read.contains(&"meet at the back door".to_string()), "a disappeared message came back: {read:?}");
}

#[test]
fn every_key_distribution_opens_a_fresh_handshake() {
    let config = EngineConfig { rotate_after_messages: 2, ..EngineConfig::default() };
    let (mut sim, circle) = circle(33, None, config);
    let start = sim.captured.len();
    for k in 0..6 {
        send(&mut sim, 1, circle, &format!("m{k}"), None);
        sim.run_for(2_000);
    }
    sim.run_for(10_000);
    let pairwise: Vec<u8> = sim.captured[start..]
        .iter()
        .filter(|c| !c.direct)
        .map(|c| c.bytes[1])
        .filter(|t| (0x02..=0x04).contains(t))
        .collect();
    assert!(pairwise.iter().filter(|t| **t == 0x02).count() >= 3, "new chains were distributed: {pairwise:?}");
    // No key travels in a reused session: every pairwise frame is a first
    // handshake message with its own ephemeral key.
    assert!(pairwise.iter().all(|t| *t == 0x02), "a pairwise frame reused a session: {pairwise:?}");
}
