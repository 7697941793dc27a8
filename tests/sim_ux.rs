//! What members meet, on the deterministic simulator (issue 16): one text
//! limit for senders and receivers, acknowledgements as a person's act,
//! and leaving a circle so that the others see it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kolo::circle::CircleId;
use kolo::engine::message::{MAX_FIELD, MAX_TEXT, MAX_TITLE};
use kolo::engine::{Announcement, Command, EngineConfig, Event, MessageKind, Verdict};
use kolo::sim::{Faults, Sim};

fn circle_of(names: &[&str], config: EngineConfig) -> (Sim, CircleId) {
    let mut sim = Sim::new(16, names, Faults::NONE, config);
    sim.command(0, Command::CreateCircle { name: "riverside".into(), max_disappear_secs: None });
    let circle = sim.created_circle(0).expect("circle created");
    for (j, name) in names.iter().enumerate().skip(1) {
        assert!(sim.invite_and_join(circle, 0, j), "{name} could not join");
    }
    sim.run_for(5_000);
    (sim, circle)
}

fn texts(sim: &Sim, i: usize, circle: &CircleId) -> Vec<String> {
    sim.nodes[i]
        .engine
        .circle(circle)
        .map(|c| c.history().into_iter().filter(|m| m.kind != MessageKind::System).map(|m| m.text.clone()).collect())
        .unwrap_or_default()
}

fn errors(sim: &Sim, i: usize) -> Vec<String> {
    sim.nodes[i]
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Error { reason } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

/// Issue 16 item 1: a text at the limit arrives and costs its sender no
/// strike; one byte more is refused before sealing, with the limit in
/// characters and bytes, and nothing reaches the network.
#[test]
fn the_text_limit_is_the_same_for_sender_and_receiver() {
    let (mut sim, circle) = circle_of(&["ana", "bo"], EngineConfig::default());
    sim.nodes[1].verdicts.clear();
    // Multi-byte characters count in bytes: 20000 × 3 bytes is exactly the limit.
    let longest = "✊".repeat(MAX_TEXT / 3) + &"z".repeat(MAX_TEXT % 3);
    assert_eq!(longest.len(), MAX_TEXT);
    sim.command(0, Command::SendText { circle, text: longest.clone(), timer_secs: None });
    let announcement = Announcement {
        title: "t".repeat(MAX_TITLE),
        when: "w".repeat(MAX_FIELD),
        place: "p".repeat(MAX_FIELD),
        details: "d".repeat(MAX_TEXT),
        supersedes: None,
    };
    sim.command(0, Command::SendAnnouncement { circle, announcement, timer_secs: None });
    sim.run_for(3_000);
    assert!(errors(&sim, 0).is_empty(), "{:?}", errors(&sim, 0));
    let got = texts(&sim, 1, &circle);
    assert!(got.contains(&longest), "the longest valid text arrives");
    assert!(got.contains(&"t".repeat(MAX_TITLE)), "the largest valid announcement arrives");
    assert!(
        !sim.nodes[1].verdicts.contains(&Verdict::Reject),
        "a valid frame is no strike: {:?}",
        sim.nodes[1].verdicts
    );

    let published = sim.captured.len();
    let too_long = "z".repeat(65_000);
    sim.command(0, Command::SendText { circle, text: too_long.clone(), timer_secs: None });
    sim.run_for(3_000);
    let errs = errors(&sim, 0);
    assert!(
        errs.iter().any(|e| e.contains("65000 characters") && e.contains("65000 bytes") && e.contains("60000 bytes")),
        "the sender is told, with both figures: {errs:?}"
    );
    assert!(!texts(&sim, 0, &circle).contains(&too_long), "not in the sender's history as if sent");
    assert!(!sim.captured[published..].iter().any(|c| c.bytes.len() > 60_000), "nothing of it went onto the network");
    assert!(!sim.nodes[1].verdicts.contains(&Verdict::Reject));

    // Announcement fields too.
    let long_title = Announcement {
        title: "t".repeat(MAX_TITLE + 1),
        when: String::new(),
        place: String::new(),
        details: String::new(),
        supersedes: None,
    };
    sim.command(0, Command::SendAnnouncement { circle, announcement: long_title, timer_secs: None });
    assert!(errors(&sim, 0).iter().any(|e| e.contains("title") && e.contains("200 bytes")), "{:?}", errors(&sim, 0));
}

fn pinned_acks(sim: &Sim, i: usize, circle: &CircleId) -> Vec<String> {
    let c = sim.nodes[i].engine.circle(circle).unwrap();
    let pinned = c.pinned().expect("an announcement is pinned").id;
    c.acks(&pinned).iter().map(|m| c.member_name(m)).collect()
}

/// Issue 16 item 5: nobody acknowledges an announcement by merely
/// receiving it; a member's explicit act reaches the organiser, once.
#[test]
fn acknowledging_is_a_person_s_act() {
    let (mut sim, circle) = circle_of(&["ana", "bo", "cy"], EngineConfig::default());
    let announcement = Announcement {
        title: "Assembly".into(),
        when: "Sat 10:00".into(),
        place: "square".into(),
        details: String::new(),
        supersedes: None,
    };
    sim.command(0, Command::SendAnnouncement { circle, announcement, timer_secs: None });
    sim.run_for(5_000);
    for i in 1..3 {
        assert!(texts(&sim, i, &circle).contains(&"Assembly".to_owned()), "member {i} got it");
    }
    assert!(
        pinned_acks(&sim, 0, &circle).is_empty(),
        "no automatic acknowledgement: {:?}",
        pinned_acks(&sim, 0, &circle)
    );
    sim.command(1, Command::Acknowledge { circle, announcement: None });
    sim.run_for(3_000);
    assert_eq!(pinned_acks(&sim, 0, &circle), ["bo"], "the organiser sees who acknowledged");
    assert_eq!(pinned_acks(&sim, 2, &circle), ["bo"], "and so does every member");
    assert!(sim.nodes[0].events.iter().any(|e| matches!(e, Event::AnnouncementAcked { .. })));
    sim.command(1, Command::Acknowledge { circle, announcement: None });
    assert!(errors(&sim, 1).iter().any(|e| e.contains("already acknowledged")), "{:?}", errors(&sim, 1));
    sim.command(0, Command::Acknowledge { circle, announcement: None });
    assert!(errors(&sim, 0).iter().any(|e| e.contains("your own announcement")), "{:?}", errors(&sim, 0));
}

/// Issue 16 item 3: leaving publishes a self-removal every other member
/// applies; the only organiser cannot leave (or remove themself) while
/// others remain, unless forced.
#[test]
fn leaving_reaches_the_others_and_the_last_organiser_is_kept() {
    let (mut sim, circle) = circle_of(&["ana", "bo", "cy"], EngineConfig::default());
    let bo = sim.nodes[1].engine.member_id();
    sim.command(1, Command::Leave { circle, force: false });
    sim.run_for(5_000);
    assert!(errors(&sim, 1).is_empty(), "{:?}", errors(&sim, 1));
    for i in [0, 2] {
        let c = sim.nodes[i].engine.circle(&circle).unwrap();
        assert!(!c.log().is_member(&bo), "member {i} still lists bo");
        assert!(c.history().iter().any(|m| m.text == "bo left the circle"), "member {i} is told");
    }
    assert!(sim.nodes[1].engine.circle(&circle).unwrap().is_removed());
    // Messages after the leave stay readable for those who remain.
    sim.command(2, Command::SendText { circle, text: "after bo left".into(), timer_secs: None });
    sim.run_for(5_000);
    assert!(texts(&sim, 0, &circle).contains(&"after bo left".to_owned()));
    assert!(!texts(&sim, 1, &circle).contains(&"after bo left".to_owned()), "bo reads nothing new");

    let ana = sim.nodes[0].engine.member_id();
    sim.command(0, Command::Leave { circle, force: false });
    sim.command(0, Command::Remove { circle, member: ana });
    let refusals: Vec<String> = errors(&sim, 0).into_iter().filter(|e| e.contains("only organiser")).collect();
    assert_eq!(refusals.len(), 2, "{:?}", errors(&sim, 0));
    sim.run_for(3_000);
    assert!(sim.nodes[2].engine.circle(&circle).unwrap().log().is_member(&ana), "ana is still the organiser");
    sim.command(0, Command::Leave { circle, force: true });
    sim.run_for(5_000);
    assert!(!sim.nodes[2].engine.circle(&circle).unwrap().log().is_member(&ana), "forced: ana left");
}
