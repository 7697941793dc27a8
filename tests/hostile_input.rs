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
    sim.input(1, Input::Frame { circle, bytes: vec![2, 1, 0, 0] });
    sim.input(1, Input::Frame { circle, bytes: vec![1, 0x7f] });
    let reasons: Vec<String> = sim.nodes[1]
        .events
        .iter()
        .filter_map(|e| match e {
            kolo::engine::Event::Rejected { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect();
    assert!(reasons.iter().any(|r| r.contains("unsupported wire version 2")), "{reasons:?}");
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
                bytes[0] = 1;
                bytes[1] = prefixes[i % prefixes.len()];
            }
            sim.input(1, Input::Frame { circle, bytes: bytes.clone() });
            sim.input(1, Input::Direct { circle, peer: 0, bytes: bytes.clone() });
            sim.input(2, Input::Direct { circle, peer: 0, bytes });
        }
        prop_assert_eq!(sim.nodes[1].engine.circle(&circle).unwrap().history().len(), before);
    }
}
