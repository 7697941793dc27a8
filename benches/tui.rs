//! TUI render time per frame against history size (issue #6, item 8).
//!
//! Draws the main screen on ratatui's `TestBackend` (120x40) for a circle
//! holding 100 and then 10,000 messages, 2,000 frames each, and prints p50
//! and p99 per frame and their ratio. The view lays out only what is
//! visible, so the ratio should stay near 1.
//!
//! Run: `cargo bench --bench tui`

#![allow(clippy::expect_used)]

use std::time::Instant;

use kolo::api::{self, Answer};
use kolo::engine::{EnvelopeInfo, Event, MessageKind, MessageView};
use kolo::identity::IdentitySecret;
use kolo::node::NodeEvent;
use kolo::ui::keymap::Keymap;
use kolo::ui::model::App;
use kolo::ui::view;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

const FRAMES: usize = 2_000;
const T0: u64 = 1_795_424_400_000;

fn app_with(messages: usize) -> App {
    let mut app = App::new(Keymap::default());
    let circle = [7u8; 32];
    // Tag 2 is the circles request `App::start` makes second.
    let _ = app.start();
    let _ = app.reply(
        2,
        Ok(Answer::Circles(vec![api::CircleInfo {
            id: kolo::identity::hex(&circle),
            name: "riverside".into(),
            members: 3,
            epoch: 1,
            disappear_secs: None,
            role: Some(api::Role::Member),
            removed: false,
            pinned: None,
            key_changes: Vec::new(),
        }])),
    );
    let sender = IdentitySecret::from_seed(&[2; 32]).member_id();
    for i in 0..messages {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&(i as u64).to_be_bytes());
        let view = MessageView {
            circle,
            id,
            sender,
            sender_name: "Ana".into(),
            kind: MessageKind::Text,
            text: format!("message {i}: the meeting is at the usual place, bring the banners and water"),
            sent_at_ms: T0 + i as u64 * 1000,
            received_at_ms: T0 + i as u64 * 1000,
            expires_at_ms: None,
            envelope: Some(EnvelopeInfo { key_id: [1; 16], epoch: 1, counter: i as u32, frame: Vec::new() }),
        };
        let event = NodeEvent::Engine(Box::new(Event::Message(view)));
        if let Some(push) = kolo::api::convert::node_event(&event) {
            let _ = app.event(&push, T0);
        }
    }
    app
}

fn measure(messages: usize) -> (f64, f64) {
    let app = app_with(messages);
    assert_eq!(app.circle().map(|c| c.messages.len()), Some(messages));
    let mut terminal = Terminal::new(TestBackend::new(120, 40)).expect("backend");
    let mut times = Vec::with_capacity(FRAMES);
    for _ in 0..FRAMES {
        let start = Instant::now();
        terminal.draw(|f| view::draw(f, &app, T0)).expect("draw");
        times.push(start.elapsed().as_secs_f64() * 1e6);
    }
    times.sort_by(f64::total_cmp);
    (times[FRAMES / 2], times[FRAMES * 99 / 100])
}

/// The median over rounds of each figure (the machines are shared and noisy).
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // Warm up, then alternate the two sizes for several rounds.
    let _ = measure(100);
    let (mut small, mut large) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        small.push(measure(100));
        large.push(measure(10_000));
    }
    let (small_p50, small_p99) =
        (median(small.iter().map(|x| x.0).collect()), median(small.iter().map(|x| x.1).collect()));
    let (large_p50, large_p99) =
        (median(large.iter().map(|x| x.0).collect()), median(large.iter().map(|x| x.1).collect()));
    println!("tui render, 120x40, {FRAMES} frames per round, median of 5 rounds");
    println!("  100 messages:    p50 {small_p50:8.1} µs  p99 {small_p99:8.1} µs");
    println!("  10,000 messages: p50 {large_p50:8.1} µs  p99 {large_p99:8.1} µs");
    println!("  ratio 10,000/100: p50 {:.2}x  p99 {:.2}x", large_p50 / small_p50, large_p99 / small_p99);
}
