//! The terminal client, driven as a user and a node would drive it: keys go
//! into the model, its requests are answered by a fake node that keeps
//! circles the way the real one does, and the screen is drawn on ratatui's
//! `TestBackend` and compared with snapshots in tests/snapshots/.
//!
//! Set `KOLO_UPDATE_SNAPSHOTS=1` to rewrite the snapshots after a
//! deliberate change to the screen, then review the diff.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::VecDeque;

use kolo::api::{self, Answer, Request};
use kolo::engine::{Announcement, EnvelopeInfo, Event, MessageKind, MessageView};
use kolo::identity::{IdentitySecret, MemberId, hex, safety_number};
use kolo::node::NodeEvent;
use kolo::ui::keymap::{Key, KeyCode, Keymap};
use kolo::ui::model::{App, DemoKey, Effect};
use kolo::ui::view;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

/// 2026-11-23 09:00 UTC.
const T0: u64 = 1_795_424_400_000;

fn member(seed: u8) -> MemberId {
    IdentitySecret::from_seed(&[seed; 32]).member_id()
}

struct FakeMember {
    name: &'static str,
    id: MemberId,
    role: &'static str,
    link: &'static str,
    verified: bool,
}

struct FakeCircle {
    id: [u8; 32],
    name: &'static str,
    epoch: u32,
    disappear: Option<u32>,
    members: Vec<FakeMember>,
    messages: Vec<MessageView>,
    pinned: Option<[u8; 16]>,
    acked_by: Vec<&'static str>,
    key_changes: Vec<&'static str>,
    peers: u64,
}

/// Answers the model's requests like the node does (the same typed answers).
struct FakeNode {
    me: MemberId,
    circles: Vec<FakeCircle>,
    counter: u8,
    /// Events the node would have sent to watchers after a request.
    events: VecDeque<NodeEvent>,
    requests: Vec<Request>,
    /// The demo's script, as `kolo demo` runs it: paused?, steps asked.
    demo_paused: bool,
    demo_steps: u32,
    /// What `/invite` answers, and what the model asked to copy.
    invite_code: String,
    copied: Option<String>,
}

fn view_of(circle: [u8; 32], n: u8, sender: &FakeMember, kind: MessageKind, text: &str, at: u64) -> MessageView {
    let mut frame = vec![1u8, 1];
    frame.extend_from_slice(&[n; 24]);
    frame.extend(std::iter::repeat_n(0xA5, 256 + 16 + 64));
    MessageView {
        circle,
        id: [n; 16],
        sender: sender.id,
        sender_name: sender.name.into(),
        kind,
        text: text.into(),
        sent_at_ms: at,
        received_at_ms: at,
        expires_at_ms: None,
        envelope: Some(EnvelopeInfo { key_id: [n; 16], epoch: 3, counter: u32::from(n), frame }),
    }
}

impl FakeNode {
    fn riverside() -> FakeNode {
        let me = member(1);
        let members = vec![
            FakeMember { name: "You", id: me, role: "organiser", link: "you", verified: false },
            FakeMember { name: "Ana", id: member(2), role: "organiser", link: "direct", verified: true },
            FakeMember { name: "Bongani", id: member(3), role: "member", link: "relayed", verified: false },
            FakeMember { name: "Chen", id: member(4), role: "member", link: "offline", verified: false },
        ];
        let id = [7u8; 32];
        let lines = [
            (1, "Welcome, everyone. This circle is end-to-end encrypted."),
            (2, "Who is coming to the assembly on Saturday?"),
            (3, "Me. I'll bring the banner 🚩 and 横断幕."),
            (1, "Great. Remember: phones off at the door."),
        ];
        let messages = lines
            .iter()
            .enumerate()
            .map(|(i, (who, text))| {
                view_of(id, i as u8 + 1, &members[*who], MessageKind::Text, text, T0 + i as u64 * 60_000)
            })
            .collect();
        let other = FakeCircle {
            id: [9u8; 32],
            name: "legal-support",
            epoch: 1,
            disappear: Some(86_400),
            members: vec![FakeMember { name: "You", id: me, role: "member", link: "you", verified: false }],
            messages: Vec::new(),
            pinned: None,
            acked_by: Vec::new(),
            key_changes: Vec::new(),
            peers: 0,
        };
        FakeNode {
            me,
            circles: vec![
                FakeCircle {
                    id,
                    name: "riverside",
                    epoch: 3,
                    disappear: None,
                    members,
                    messages,
                    pinned: None,
                    acked_by: Vec::new(),
                    key_changes: Vec::new(),
                    peers: 2,
                },
                other,
            ],
            counter: 50,
            events: VecDeque::new(),
            requests: Vec::new(),
            demo_paused: false,
            demo_steps: 0,
            invite_code: "kolo1-abcdefghijklmnopqrstuvwxyz234567".into(),
            copied: None,
        }
    }

    fn circle(&mut self, q: &str) -> Result<&mut FakeCircle, String> {
        self.circles.iter_mut().find(|c| c.name == q || hex(&c.id) == q).ok_or_else(|| format!("no circle {q}"))
    }

    fn pin(&mut self, title: &str, place: &str) {
        let c = &mut self.circles[0];
        let ana = &c.members[1];
        let a = Announcement {
            title: title.into(),
            when: "Saturday 10:00".into(),
            place: place.into(),
            details: "Bring water.".into(),
            supersedes: None,
        };
        let n = c.messages.len() as u8 + 1;
        let m = view_of(c.id, n, ana, MessageKind::Announcement(a), "", T0 + 10 * 60_000);
        c.pinned = Some(m.id);
        c.acked_by = vec!["Bongani", "You"];
        c.messages.push(m.clone());
        self.events.push_back(NodeEvent::Engine(Box::new(Event::Message(m))));
    }

    /// A member's message arrives (the node's watcher event).
    fn arrive(&mut self, circle: usize, who: usize, text: &str, at: u64, expires: Option<u64>) {
        self.counter += 1;
        let c = &mut self.circles[circle];
        let mut m = view_of(c.id, self.counter, &c.members[who], MessageKind::Text, text, at);
        m.expires_at_ms = expires;
        c.messages.push(m.clone());
        self.events.push_back(NodeEvent::Engine(Box::new(Event::Message(m))));
    }

    fn answer(&mut self, request: &Request) -> Result<Answer, String> {
        self.requests.push(request.clone());
        let role = |r: &str| if r == "organiser" { api::Role::Organiser } else { api::Role::Member };
        match request {
            Request::Status => Ok(Answer::Status(api::Status {
                name: "You".into(),
                fingerprint: self.me.fingerprint().to_string(),
                safety_number: safety_number(&self.me).to_string(),
                circles: self
                    .circles
                    .iter()
                    .map(|c| api::CircleStatus {
                        id: hex(&c.id),
                        name: Some(c.name.into()),
                        peers: c.peers,
                        banned_peers: 0,
                        listen: None,
                    })
                    .collect(),
            })),
            Request::Circles => Ok(Answer::Circles(
                self.circles
                    .iter()
                    .map(|c| {
                        let pinned =
                            c.pinned.and_then(|p| c.messages.iter().find(|m| m.id == p)).map(|m| api::Pinned {
                                message: api::convert::message(m, Some(false)),
                                acked_by: c.acked_by.iter().map(|n| n.to_string()).collect(),
                                acked_by_me: c.acked_by.contains(&"You"),
                            });
                        api::CircleInfo {
                            id: hex(&c.id),
                            name: c.name.into(),
                            members: c.members.len() as u64,
                            epoch: u64::from(c.epoch),
                            disappear_secs: c.disappear,
                            role: Some(role(c.members[0].role)),
                            removed: false,
                            pinned,
                            key_changes: c.key_changes.iter().map(|n| n.to_string()).collect(),
                        }
                    })
                    .collect(),
            )),
            Request::Messages { circle } => {
                let c = self.circle(circle)?;
                let verified: Vec<MemberId> = c.members.iter().filter(|m| m.verified).map(|m| m.id).collect();
                Ok(Answer::Messages(
                    c.messages.iter().map(|m| api::convert::message(m, Some(verified.contains(&m.sender)))).collect(),
                ))
            }
            Request::Members { circle } => {
                let c = self.circle(circle)?;
                Ok(Answer::Members(
                    c.members
                        .iter()
                        .map(|m| api::Member {
                            name: m.name.into(),
                            fingerprint: m.id.fingerprint().to_string(),
                            id: m.id.to_hex(),
                            role: role(m.role),
                            online: m.link != "offline",
                            link: match m.link {
                                "you" => api::Link::You,
                                "direct" => api::Link::Direct,
                                "relayed" => api::Link::Relayed,
                                "tor" => api::Link::Tor,
                                _ => api::Link::Offline,
                            },
                            verified: m.verified,
                            you: m.link == "you",
                            looks_like: None,
                        })
                        .collect(),
                ))
            }
            Request::Send { circle, text, disappear_secs } => {
                let circle = circle.clone();
                let idx = self.circles.iter().position(|c| hex(&c.id) == circle).ok_or("no circle")?;
                let expires = disappear_secs.map(|s| T0 + 3_600_000 + u64::from(s) * 1000);
                self.arrive(idx, 0, text, T0 + 3_600_000, expires);
                Ok(Answer::Sent(api::Sent { id: Some(hex(&[self.counter; 16])), queued: None }))
            }
            Request::Verify { circle, member, confirm } => {
                let me = self.me;
                let c = self.circle(circle)?;
                let m = c.members.iter_mut().find(|m| m.name == member).ok_or("no such member")?;
                if *confirm == Some(true) {
                    m.verified = true;
                }
                let (you, them) = (safety_number(&me).to_string(), safety_number(&m.id).to_string());
                Ok(Answer::Verification(api::Verification {
                    compare: [you.clone(), them.clone()],
                    you,
                    them,
                    verified: m.verified,
                }))
            }
            Request::Inspect { circle, message } => {
                let c = self.circle(circle)?;
                let m = c.messages.iter().find(|m| hex(&m.id) == *message).ok_or("no such message")?;
                let e = m.envelope.as_ref().ok_or("no envelope")?;
                let n = e.frame.len();
                Ok(Answer::Envelope(api::Envelope {
                    id: hex(&m.id),
                    frame_len: n as u64,
                    version: e.frame.first().copied(),
                    frame_type: e.frame.get(1).copied(),
                    key_id: hex(&e.key_id),
                    epoch: u64::from(e.epoch),
                    counter: u64::from(e.counter),
                    header: hex(&e.frame[..26]),
                    ciphertext: hex(&e.frame[26..n - 64]),
                    padded_len: (n - 26 - 64 - 16) as u64,
                    signature: hex(&e.frame[n - 64..]),
                    signature_ok: Some(true),
                }))
            }
            Request::Invite { .. } => {
                Ok(Answer::Invite(api::InviteCreated { code: self.invite_code.clone(), expires_at: T0 }))
            }
            Request::Ack { circle, message } => {
                let c = self.circle(circle)?;
                let pinned = c.pinned.map(|p| hex(&p));
                if message.is_some() && *message != pinned {
                    return Err("no such announcement".into());
                }
                c.acked_by.push("You");
                Ok(Answer::Acknowledged(api::Acknowledged { acknowledged: pinned, title: None }))
            }
            Request::Remove { circle, member } => {
                let c = self.circle(circle)?;
                c.members.retain(|m| m.name != member);
                Ok(Answer::Removed(api::Removed { removed: member.clone() }))
            }
            Request::Leave { circle, .. } => {
                self.circle(circle)?;
                Ok(Answer::Left(api::Left { left: Some(circle.clone()) }))
            }
            other => Err(format!("the fake node does not do {other:?}")),
        }
    }
}

/// Carry out effects until the model asks for nothing more; deliver the
/// node's events too. Returns whether the model asked to quit.
fn pump(app: &mut App, node: &mut FakeNode, effects: Vec<Effect>, now: u64) -> bool {
    let mut queue: VecDeque<Effect> = effects.into();
    loop {
        while let Some(effect) = queue.pop_front() {
            match effect {
                Effect::Request(tag, request) => {
                    let answer = node.answer(&request);
                    queue.extend(app.reply(tag, answer));
                }
                Effect::Copy(text) => node.copied = Some(text),
                Effect::Demo(k) => {
                    match k {
                        DemoKey::TogglePause => node.demo_paused = !node.demo_paused,
                        DemoKey::NextStep => node.demo_steps += 1,
                    }
                    app.demo_paced(k, node.demo_paused);
                }
                Effect::Quit | Effect::Panic => return true,
            }
        }
        match node.events.pop_front() {
            Some(event) => {
                // The model reads events as the control socket pushes them.
                if let Some(push) = kolo::api::convert::node_event(&event) {
                    queue.extend(app.event(&push, now));
                }
            }
            None => return false,
        }
    }
}

fn started(node: &mut FakeNode) -> App {
    let mut app = App::new(Keymap::default());
    let effects = app.start();
    pump(&mut app, node, effects, T0);
    app
}

fn key(code: KeyCode) -> Key {
    Key::plain(code)
}

fn ctrl(c: char) -> Key {
    Key { code: KeyCode::Char(c), ctrl: true, alt: false }
}

fn type_text(app: &mut App, node: &mut FakeNode, text: &str) {
    for c in text.chars() {
        let effects = app.key(key(KeyCode::Char(c)));
        pump(app, node, effects, T0);
    }
}

fn press(app: &mut App, node: &mut FakeNode, k: Key, now: u64) -> bool {
    let effects = app.key(k);
    pump(app, node, effects, now)
}

fn screen(app: &App, width: u16, height: u16, now: u64) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test backend");
    terminal.draw(|f| view::draw(f, app, now)).expect("draw");
    let buffer = terminal.backend().buffer();
    let mut out = String::new();
    for y in 0..height {
        let mut skip = 0;
        for x in 0..width {
            if skip > 0 {
                skip -= 1;
                continue;
            }
            let symbol = buffer[(x, y)].symbol();
            skip = unicode_width::UnicodeWidthStr::width(symbol).saturating_sub(1);
            out.push_str(symbol);
        }
        out.push('\n');
    }
    out
}

fn snapshot(name: &str, text: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots").join(format!("{name}.txt"));
    if std::env::var_os("KOLO_UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, text).expect("write snapshot");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("missing snapshot {}; run with KOLO_UPDATE_SNAPSHOTS=1", path.display()));
    assert!(expected == text, "screen {name} differs from its snapshot:\n--- expected\n{expected}\n--- got\n{text}");
}

#[test]
fn main_screen_narrow_and_wide() {
    let mut node = FakeNode::riverside();
    let app = started(&mut node);
    let main = screen(&app, 110, 24, T0 + 3_600_000);
    assert!(main.contains("Who is coming to the assembly"), "{main}");
    assert!(main.contains("Ana✓"), "verified mark next to Ana:\n{main}");
    assert!(main.contains("relayed") && main.contains("direct") && main.contains("offline"), "{main}");
    assert!(main.contains("● 2 peers"), "{main}");
    snapshot("main_110x24", &main);
    let narrow = screen(&app, 60, 20, T0 + 3_600_000);
    assert!(!narrow.contains("they see your IP"), "no members pane at 60 columns:\n{narrow}");
    assert!(narrow.contains("Remember: phones off"), "{narrow}");
    snapshot("narrow_60x20", &narrow);
    let wide = screen(&app, 180, 30, T0 + 3_600_000);
    snapshot("wide_180x30", &wide);
}

#[test]
fn pinned_announcement_sits_on_top_with_acknowledgements() {
    let mut node = FakeNode::riverside();
    let mut app = started(&mut node);
    node.pin("Assembly", "Market square");
    pump(&mut app, &mut node, Vec::new(), T0);
    let s = screen(&app, 110, 24, T0 + 3_600_000);
    let pin_line = s.lines().position(|l| l.contains("📌 Assembly  Saturday 10:00  @ Market square")).expect(&s);
    let first_message = s.lines().position(|l| l.contains("Welcome, everyone")).expect(&s);
    assert!(pin_line < first_message, "the announcement is pinned above the messages:\n{s}");
    assert!(s.contains("acknowledged by Bongani, You"), "{s}");
    snapshot("pinned_110x24", &s);
}

#[test]
fn trainer_view_shows_both_sides_of_the_selected_message() {
    let mut node = FakeNode::riverside();
    let mut app = started(&mut node);
    assert!(!press(&mut app, &mut node, key(KeyCode::F(2)), T0));
    let s = screen(&app, 120, 34, T0 + 3_600_000);
    assert!(s.contains("What a member sees") && s.contains("What a non-member relay sees"), "{s}");
    assert!(s.contains("text  Great. Remember: phones off"), "newest message selected:\n{s}");
    assert!(s.contains("signature valid"), "{s}");
    assert!(s.contains("ciphertext a5a5"), "{s}");
    snapshot("trainer_120x34", &s);
    // Choosing an older message asks the node about that envelope.
    press(&mut app, &mut node, Key { code: KeyCode::Up, ctrl: false, alt: true }, T0);
    let s = screen(&app, 120, 34, T0 + 3_600_000);
    assert!(s.contains("text  Me. I'll bring the banner"), "{s}");
    assert!(matches!(node.requests.last(), Some(Request::Inspect { .. })));
}

#[test]
fn help_is_generated_from_the_key_bindings() {
    let mut node = FakeNode::riverside();
    let mut app = started(&mut node);
    press(&mut app, &mut node, key(KeyCode::Char('?')), T0);
    let s = screen(&app, 110, 40, T0);
    assert!(s.contains("ctrl-c, ctrl-q") && s.contains("quit kolo"), "{s}");
    assert!(s.contains("/verify NAME"), "{s}");
    snapshot("help_110x40", &s);
    // Issue 16 item 11: at 80x24 the help does not fit; it scrolls and says so.
    let small = screen(&app, 80, 24, T0);
    assert!(small.contains("scroll (↓ more)") && small.contains("quit kolo"), "{small}");
    assert!(!small.contains("/quit"), "{small}");
    for _ in 0..6 {
        press(&mut app, &mut node, key(KeyCode::PageDown), T0);
    }
    let end = screen(&app, 80, 24, T0);
    assert!(end.contains("scroll (end)") && end.contains("/quit") && end.contains("close kolo (you stay"), "{end}");
    snapshot("help_80x24_end", &end);
    assert!(app.overlay.is_some(), "scrolling keeps the help open");
    // Any key closes it; `?` inside a message is just a character.
    press(&mut app, &mut node, key(KeyCode::Esc), T0);
    type_text(&mut app, &mut node, "why?");
    assert_eq!(app.input.text(), "why?");
    assert!(app.overlay.is_none());
    // Rebinding quit changes the help and the status line.
    let app = App::new(Keymap::with_overrides("ctrl-x = quit\n").expect("keys"));
    let s = screen(&app, 110, 20, T0);
    assert!(s.contains("ctrl-x quit"), "{s}");
}

#[test]
fn a_disappearing_message_is_on_screen_before_its_deadline_and_gone_after() {
    let mut node = FakeNode::riverside();
    let mut app = started(&mut node);
    let deadline = T0 + 3_600_000 + 30_000;
    node.arrive(0, 2, "Door code is 4471.", T0 + 3_600_000, Some(deadline));
    pump(&mut app, &mut node, Vec::new(), T0 + 3_600_000);
    let before = screen(&app, 110, 24, deadline - 12_000);
    assert!(before.contains("Door code is 4471. ⏳12s"), "countdown shown:\n{before}");
    assert_eq!(app.next_wake(deadline - 12_000), Some(deadline - 11_000), "redraw at the next second, not by polling");
    app.tick(deadline);
    let after = screen(&app, 110, 24, deadline);
    assert!(!after.contains("4471"), "gone at the deadline:\n{after}");
}

#[test]
fn typing_sending_scrolling_and_switching_circles() {
    let mut node = FakeNode::riverside();
    let mut app = started(&mut node);
    type_text(&mut app, &mut node, "See you at 10 — 日本 too");
    press(&mut app, &mut node, key(KeyCode::Left), T0);
    press(&mut app, &mut node, key(KeyCode::Backspace), T0);
    assert_eq!(app.input.text(), "See you at 10 — 日本 to");
    press(&mut app, &mut node, key(KeyCode::End), T0);
    press(&mut app, &mut node, key(KeyCode::Enter), T0);
    assert!(matches!(node.requests.last(), Some(Request::Send { text, .. }) if text == "See you at 10 — 日本 to"));
    assert!(app.input.is_empty());
    let s = screen(&app, 110, 24, T0 + 3_600_000);
    assert!(s.contains("you: See you at 10 — 日本 to"), "{s}");
    // Up recalls the line just sent.
    press(&mut app, &mut node, key(KeyCode::Up), T0);
    assert_eq!(app.input.text(), "See you at 10 — 日本 to");
    press(&mut app, &mut node, key(KeyCode::Esc), T0);
    // A multi-line message.
    type_text(&mut app, &mut node, "line one");
    press(&mut app, &mut node, ctrl('n'), T0);
    type_text(&mut app, &mut node, "line two");
    press(&mut app, &mut node, key(KeyCode::Enter), T0);
    assert!(matches!(node.requests.last(), Some(Request::Send { text, .. }) if text == "line one\nline two"));

    // Many messages: page up shows older ones, page down returns.
    for i in 0..40 {
        node.arrive(0, 1 + i % 3, &format!("filler message number {i}"), T0 + 4_000_000 + i as u64, None);
    }
    pump(&mut app, &mut node, Vec::new(), T0);
    let bottom = screen(&app, 110, 24, T0 + 5_000_000);
    assert!(bottom.contains("filler message number 39") && !bottom.contains("filler message number 20"));
    press(&mut app, &mut node, key(KeyCode::PageUp), T0);
    let up = screen(&app, 110, 24, T0 + 5_000_000);
    assert!(!up.contains("filler message number 39") && up.contains("filler message number 29"), "{up}");
    app.wheel(true);
    let wheel = screen(&app, 110, 24, T0 + 5_000_000);
    assert!(!wheel.contains("filler message number 29") && wheel.contains("filler message number 26"), "{wheel}");
    press(&mut app, &mut node, key(KeyCode::PageDown), T0);
    app.wheel(false);
    assert!(screen(&app, 110, 24, T0 + 5_000_000).contains("filler message number 39"));

    // A message in another circle counts as unread until the user goes there.
    node.circles[1].members.push(FakeMember {
        name: "Dara",
        id: member(5),
        role: "organiser",
        link: "direct",
        verified: false,
    });
    node.arrive(1, 1, "Court date moved to Monday.", T0 + 5_000, None);
    pump(&mut app, &mut node, Vec::new(), T0);
    let s = screen(&app, 110, 24, T0 + 5_000_000);
    assert!(s.lines().any(|l| l.contains("legal-suppo… 1")), "unread count:\n{s}");
    press(&mut app, &mut node, key(KeyCode::Tab), T0);
    let s = screen(&app, 110, 24, T0 + 5_000_000);
    assert!(s.contains("Court date moved to Monday.") && s.contains("disappearing 1d"), "{s}");
    assert!(!s.lines().any(|l| l.contains("legal-suppo… 1")), "read now:\n{s}");
    press(&mut app, &mut node, key(KeyCode::BackTab), T0);
    assert_eq!(app.circle().map(|c| c.name.as_str()), Some("riverside"));
}

#[test]
fn verifying_a_member_compares_safety_numbers_then_marks_them() {
    let mut node = FakeNode::riverside();
    let mut app = started(&mut node);
    type_text(&mut app, &mut node, "/verify Bongani");
    press(&mut app, &mut node, key(KeyCode::Enter), T0);
    let s = screen(&app, 110, 24, T0);
    let mine = safety_number(&member(1)).to_string();
    let theirs = safety_number(&member(3)).to_string();
    assert!(s.contains(&mine) && s.contains(&theirs), "both numbers side by side:\n{s}");
    assert!(s.contains(&member(3).fingerprint().to_string()), "their fingerprint is shown:\n{s}");
    assert!(s.contains("y: the numbers match"), "{s}");
    press(&mut app, &mut node, key(KeyCode::Char('y')), T0);
    assert!(matches!(node.requests.iter().rev().nth(1), Some(Request::Verify { confirm: Some(true), .. })));
    let s = screen(&app, 110, 24, T0);
    assert!(s.contains("Bongani is verified ✓"), "{s}");
    press(&mut app, &mut node, key(KeyCode::Esc), T0);
    let s = screen(&app, 110, 24, T0);
    assert!(s.lines().any(|l| l.contains("Bongani✓")), "members pane marks Bongani:\n{s}");
}

#[test]
fn a_changed_key_blocks_sending_until_accepted() {
    let mut node = FakeNode::riverside();
    node.circles[0].key_changes = vec!["Ana"];
    let mut app = started(&mut node);
    type_text(&mut app, &mut node, "meet at 6");
    press(&mut app, &mut node, key(KeyCode::Enter), T0);
    assert!(!node.requests.iter().any(|r| matches!(r, Request::Send { .. })), "nothing sent");
    assert_eq!(app.input.text(), "meet at 6", "the typed text is kept");
    let s = screen(&app, 110, 24, T0);
    assert!(s.contains("key changed: Ana") && s.contains("sending is blocked"), "{s}");
}

#[test]
fn invites_show_the_code_and_a_qr_code_and_quit_is_a_key() {
    let mut node = FakeNode::riverside();
    let mut app = started(&mut node);
    type_text(&mut app, &mut node, "/invite");
    press(&mut app, &mut node, key(KeyCode::Enter), T0);
    let s = screen(&app, 110, 40, T0);
    assert!(s.contains("kolo1-abcdefghijklmnopqrstuvwxyz234567"), "{s}");
    assert!(s.contains('█') || s.contains('▀'), "a QR code is drawn:\n{s}");
    press(&mut app, &mut node, key(KeyCode::Esc), T0);
    // Pasting a code joins with it.
    app.paste("/join kolo1-pasted");
    assert_eq!(app.input.text(), "/join kolo1-pasted");
    assert!(press(&mut app, &mut node, ctrl('q'), T0), "ctrl-q quits");
}

/// Issue 16 item 8: `/verify NAME`, `y`, then `/invite` sent the word
/// "invite" to the circle: the dialog ate the `/`. Dialogs now close only
/// on their own keys, say which, and typed text never becomes a message.
#[test]
fn a_dialog_never_turns_the_next_command_into_a_message() {
    let mut node = FakeNode::riverside();
    let mut app = started(&mut node);
    type_text(&mut app, &mut node, "/verify Bongani");
    press(&mut app, &mut node, key(KeyCode::Enter), T0);
    press(&mut app, &mut node, key(KeyCode::Char('y')), T0);
    type_text(&mut app, &mut node, "/invite");
    press(&mut app, &mut node, key(KeyCode::Enter), T0);
    assert!(!node.requests.iter().any(|r| matches!(r, Request::Send { .. })), "nothing was sent as chat");
    assert!(app.overlay.is_none(), "enter closed the dialog");
    assert!(app.input.is_empty(), "what was typed into the dialog went nowhere: {:?}", app.input.text());
    // The dialog says how it closes, on screen.
    type_text(&mut app, &mut node, "/verify Bongani");
    press(&mut app, &mut node, key(KeyCode::Enter), T0);
    let s = screen(&app, 110, 24, T0);
    assert!(s.contains("esc or enter: close"), "{s}");
    type_text(&mut app, &mut node, "x");
    let s = screen(&app, 110, 24, T0);
    assert!(s.contains("a dialog is open: esc or enter closes it"), "a stray key is answered:\n{s}");
    // Typing on, a y or n in the words is no answer.
    type_text(&mut app, &mut node, "yes no");
    assert!(app.overlay.is_some());
    press(&mut app, &mut node, key(KeyCode::Esc), T0);
    // Now the command works as typed.
    type_text(&mut app, &mut node, "/invite");
    press(&mut app, &mut node, key(KeyCode::Enter), T0);
    assert!(matches!(node.requests.last(), Some(Request::Invite { .. })), "{:?}", node.requests.last());
    assert!(matches!(app.overlay, Some(kolo::ui::model::Overlay::Invite { .. })));
    // Help closes on esc, enter, q, ? or its key; other keys are not typed.
    press(&mut app, &mut node, key(KeyCode::Enter), T0);
    press(&mut app, &mut node, key(KeyCode::F(1)), T0);
    type_text(&mut app, &mut node, "hello");
    assert!(app.overlay.is_some() && app.input.is_empty());
    press(&mut app, &mut node, key(KeyCode::F(1)), T0);
    assert!(app.overlay.is_none());
    // Esc pressed just before ctrl-q arrives as alt-ctrl-q: it closes the
    // dialog, then ctrl-q quits.
    press(&mut app, &mut node, key(KeyCode::F(1)), T0);
    assert!(press(&mut app, &mut node, Key { code: KeyCode::Char('q'), ctrl: true, alt: true }, T0), "quits");
}

/// Issue 16 item 5: acknowledging the pinned announcement is a key (and
/// `/ack`), shown on the pinned line until done.
#[test]
fn acknowledging_the_pinned_announcement_is_a_key() {
    let mut node = FakeNode::riverside();
    let mut app = started(&mut node);
    node.pin("Assembly", "Market square");
    node.circles[0].acked_by = vec!["Bongani"];
    pump(&mut app, &mut node, Vec::new(), T0);
    let s = screen(&app, 110, 24, T0 + 3_600_000);
    assert!(s.contains("acknowledged by Bongani · f3 to acknowledge"), "{s}");
    press(&mut app, &mut node, key(KeyCode::F(3)), T0);
    assert!(matches!(node.requests.iter().rev().find(|r| matches!(r, Request::Ack { .. })), Some(Request::Ack { .. })));
    let s = screen(&app, 110, 24, T0 + 3_600_000);
    assert!(s.contains("acknowledged by Bongani, You") && !s.contains("to acknowledge"), "{s}");
    assert!(s.contains("acknowledged \"Assembly\""), "{s}");
    // Once is enough.
    let before = node.requests.len();
    type_text(&mut app, &mut node, "/ack");
    press(&mut app, &mut node, key(KeyCode::Enter), T0);
    assert!(!node.requests[before..].iter().any(|r| matches!(r, Request::Ack { .. })));
    assert!(screen(&app, 110, 24, T0).contains("you already acknowledged it"));
}

/// Issue 16 item 3: `/remove NAME` and `/leave` ask first.
#[test]
fn removing_and_leaving_ask_first() {
    let mut node = FakeNode::riverside();
    let mut app = started(&mut node);
    type_text(&mut app, &mut node, "/remove Chen");
    press(&mut app, &mut node, key(KeyCode::Enter), T0);
    assert!(!node.requests.iter().any(|r| matches!(r, Request::Remove { .. })), "not removed before asking");
    let s = screen(&app, 110, 24, T0);
    assert!(s.contains("Remove Chen from this circle?") && s.contains("y: remove · n or esc: cancel"), "{s}");
    // Typing on as if no dialog were there: a later y is part of the typing.
    type_text(&mut app, &mut node, "hey");
    assert!(!node.requests.iter().any(|r| matches!(r, Request::Remove { .. })), "a y in a typed word removes nobody");
    press(&mut app, &mut node, key(KeyCode::Esc), T0);
    assert!(app.overlay.is_none() && app.input.is_empty());
    type_text(&mut app, &mut node, "/remove Chen");
    press(&mut app, &mut node, key(KeyCode::Enter), T0);
    press(&mut app, &mut node, key(KeyCode::Char('y')), T0);
    assert!(node.requests.iter().any(|r| matches!(r, Request::Remove { member, .. } if member == "Chen")));
    type_text(&mut app, &mut node, "/leave");
    press(&mut app, &mut node, key(KeyCode::Enter), T0);
    assert!(screen(&app, 110, 24, T0).contains("Leave riverside?"));
    press(&mut app, &mut node, key(KeyCode::Char('n')), T0);
    assert!(!node.requests.iter().any(|r| matches!(r, Request::Leave { .. })), "n keeps you in");
    type_text(&mut app, &mut node, "/leave");
    press(&mut app, &mut node, key(KeyCode::Enter), T0);
    press(&mut app, &mut node, key(KeyCode::Char('y')), T0);
    assert!(node.requests.iter().any(|r| matches!(r, Request::Leave { force: Some(false), .. })));
}

/// Issue 16 item 4: what members write reaches the screen without
/// escape sequences, controls or bidirectional overrides.
#[test]
fn hostile_text_is_shown_inert() {
    let mut node = FakeNode::riverside();
    let mut app = started(&mut node);
    let hostile = "pay \u{1b}]52;c;cm0gLXJmIH4=\u{7}now \u{1b}[2J\u{202E}gnp.exe\u{9b}31m!";
    node.arrive(0, 2, hostile, T0 + 3_000_000, None);
    pump(&mut app, &mut node, Vec::new(), T0);
    let m = app.circle().unwrap().messages.last().unwrap();
    assert_eq!(m.text, "pay now gnp.exe!");
    let s = screen(&app, 110, 24, T0 + 3_600_000);
    assert!(s.contains("Bongani: pay now gnp.exe!"), "{s}");
    assert!(!s.chars().any(|c| c.is_control() && c != '\n' || c == '\u{202E}'), "{s:?}");
}

/// Issue 16 item 14: the editing keys people know from shells and chat
/// clients; mouse capture only on request.
#[test]
fn editing_keys_work_as_in_a_shell() {
    let mut node = FakeNode::riverside();
    let mut app = started(&mut node);
    type_text(&mut app, &mut node, "meet at the old mill");
    press(&mut app, &mut node, ctrl('w'), T0);
    assert_eq!(app.input.text(), "meet at the old ");
    press(&mut app, &mut node, ctrl('w'), T0);
    assert_eq!(app.input.text(), "meet at the ");
    press(&mut app, &mut node, ctrl('a'), T0);
    type_text(&mut app, &mut node, "we ");
    assert_eq!(app.input.text(), "we meet at the ");
    press(&mut app, &mut node, ctrl('k'), T0);
    assert_eq!(app.input.text(), "we ");
    press(&mut app, &mut node, ctrl('e'), T0);
    type_text(&mut app, &mut node, "go");
    assert_eq!(app.input.text(), "we go");
    press(&mut app, &mut node, ctrl('u'), T0);
    assert!(app.input.is_empty());
    // Multi-line: ctrl-u and ctrl-k stay on the cursor's line.
    type_text(&mut app, &mut node, "first");
    press(&mut app, &mut node, ctrl('n'), T0);
    type_text(&mut app, &mut node, "second");
    press(&mut app, &mut node, ctrl('u'), T0);
    assert_eq!(app.input.text(), "first\n");
    press(&mut app, &mut node, ctrl('w'), T0);
    assert_eq!(app.input.text(), "first", "ctrl-w at a line start joins the lines");
    let help = app.keymap.help();
    for name in ["ctrl-w", "ctrl-u", "ctrl-k", "ctrl-a", "ctrl-e", "f3"] {
        assert!(help.iter().any(|(k, _)| k.split(", ").any(|k| k == name)), "{name} is in the help");
    }
    use kolo::ui::runtime::mouse_wanted;
    assert!(!mouse_wanted(None), "mouse capture is off by default");
    assert!(mouse_wanted(Some(std::ffi::OsStr::new("1"))) && !mouse_wanted(Some(std::ffi::OsStr::new("0"))));
}

/// Issue 16 item 11: everything essential is readable at 80x24 (the
/// meeting place whole, the members, the status line with the quit key),
/// and at 120x36.
#[test]
fn everything_essential_fits_80x24_and_120x36() {
    let mut node = FakeNode::riverside();
    node.circles[0].disappear = Some(7 * 86_400);
    let mut app = started(&mut node);
    node.pin("Assembly: new place", "The old mill, Riverside Road");
    pump(&mut app, &mut node, Vec::new(), T0);
    let small = screen(&app, 80, 24, T0 + 3_600_000);
    assert!(small.contains("The old mill, Riverside Road"), "the meeting place is whole:\n{small}");
    assert!(small.contains("Saturday 10:00"), "{small}");
    for name in ["Ana", "Bongani", "Chen"] {
        assert!(
            small.lines().any(|l| l.contains(&format!("● {name}")) || l.contains(&format!("○ {name}"))),
            "{name} is listed:\n{small}"
        );
    }
    assert!(small.contains("legal-support") || small.contains("legal-sup"), "{small}");
    let status = small.lines().last().unwrap();
    assert!(status.contains("ctrl-q quit") && status.contains("⏳ 7d") && status.contains("2 peers"), "{status}");
    snapshot("pinned_80x24", &small);
    let large = screen(&app, 120, 36, T0 + 3_600_000);
    assert!(large.contains("Saturday 10:00  @ The old mill, Riverside Road"), "{large}");
    assert!(large.lines().last().unwrap().contains("f2 trainer"), "{large}");
    snapshot("pinned_120x36", &large);
}

/// Issue 16 item 9: two circles of the same name do not look identical.
#[test]
fn circles_of_the_same_name_are_told_apart() {
    let mut node = FakeNode::riverside();
    node.circles[1].name = "riverside";
    let app = started(&mut node);
    let s = screen(&app, 110, 24, T0);
    assert!(s.contains("▶ riverside 0707") && s.contains("  riverside 0909"), "{s}");
    let mut node = FakeNode::riverside();
    let app = started(&mut node);
    assert!(!screen(&app, 110, 24, T0).contains("riverside 0707"), "a unique name needs no id");
}

/// Issue 16 item 12: a trainer pauses the demo's script with space and
/// runs its next step with n, without either key being taken from typing.
#[test]
fn the_demo_script_pauses_and_steps_on_keys_that_never_take_typing() {
    let mut node = FakeNode::riverside();
    let mut app = started(&mut node);
    app.demo_paused = Some(false); // as `kolo demo` starts the UI
    press(&mut app, &mut node, key(KeyCode::Char(' ')), T0);
    assert!(node.demo_paused, "space on an empty line pauses");
    assert!(screen(&app, 120, 36, T0).contains("demo paused: space resumes"), "the status line says so");
    press(&mut app, &mut node, key(KeyCode::Char('n')), T0);
    assert_eq!((node.demo_steps, node.demo_paused), (1, true), "n runs one step and stays paused");
    press(&mut app, &mut node, key(KeyCode::F(6)), T0);
    assert_eq!(node.demo_steps, 2, "f6 steps too");
    // Typing: a line that starts with n, with spaces in it.
    type_text(&mut app, &mut node, "h");
    press(&mut app, &mut node, key(KeyCode::Backspace), T0);
    press(&mut app, &mut node, key(KeyCode::Char(' ')), T0);
    assert!(!node.demo_paused, "space on an empty line resumes");
    type_text(&mut app, &mut node, "no, meet later");
    assert_eq!(app.input.text(), "no, meet later", "n and space type once a line is begun");
    assert_eq!(node.demo_steps, 2);
    assert!(!screen(&app, 120, 36, T0).contains("demo paused"));
    press(&mut app, &mut node, key(KeyCode::F(5)), T0);
    assert!(node.demo_paused, "f5 pauses whatever is typed");
    assert_eq!(app.input.text(), "no, meet later");
    // Outside the demo the keys are what they always were.
    let mut node = FakeNode::riverside();
    let mut app = started(&mut node);
    press(&mut app, &mut node, key(KeyCode::Char(' ')), T0);
    type_text(&mut app, &mut node, "n");
    assert_eq!(app.input.text(), " n");
    press(&mut app, &mut node, key(KeyCode::F(5)), T0);
    assert!(!node.demo_paused && app.notice.as_ref().is_some_and(|n| n.text.contains("kolo demo")));
}

/// Issue 16 item 7: a real invite (326 characters) was one line cut at the
/// window's edge and its QR code lost its bottom at 36 rows. The code is
/// now wrapped whole, the QR shown only where it fits (otherwise the size
/// it needs), and c copies the code through the terminal (OSC 52).
#[test]
fn a_long_invite_is_shown_whole_its_qr_only_where_it_fits_and_it_can_be_copied() {
    let mut node = FakeNode::riverside();
    let alphabet = "abcdefghijklmnopqrstuvwxyz234567";
    let code: String = "kolo1-".chars().chain(alphabet.chars().cycle().take(320)).collect();
    node.invite_code = code.clone();
    let mut app = started(&mut node);
    type_text(&mut app, &mut node, "/invite");
    press(&mut app, &mut node, key(KeyCode::Enter), T0);
    let small = screen(&app, 80, 24, T0);
    let chars: Vec<char> = code.chars().collect();
    for piece in chars.chunks(72) {
        let piece: String = piece.iter().collect();
        assert!(small.contains(&piece), "a piece of the code is missing at 80x24: {piece}\n{small}");
    }
    assert!(small.contains("enlarge it to scan") && small.contains("esc or enter: close"), "{small}");
    assert!(small.lines().all(|l| l.chars().count() <= 80));
    assert!(!small.contains('█') && !small.contains('▀'), "a QR code cut to fit is drawn:\n{small}");
    assert!(screen(&app, 80, 50, T0).contains('▀'), "the upper-case QR fits 80x50");
    let large = screen(&app, 130, 60, T0);
    assert!(large.contains('█') || large.contains('▀'), "no QR code at 130x60:\n{large}");
    assert!(!large.contains("enlarge it"), "{large}");
    press(&mut app, &mut node, key(KeyCode::Char('c')), T0);
    assert_eq!(node.copied.as_deref(), Some(code.as_str()), "c copies the code");
    assert!(matches!(app.overlay, Some(kolo::ui::model::Overlay::Invite { .. })), "the dialog stays open");
    use kolo::ui::runtime::osc52;
    assert_eq!(osc52("hi"), "\x1b]52;c;aGk=\x07");
    assert_eq!(osc52("kolo"), "\x1b]52;c;a29sbw==\x07");
    assert_eq!(osc52("kol"), "\x1b]52;c;a29s\x07");
}

/// Issue 16 item 14: tab completes commands and members' names, and never
/// switches circles with text typed (it would be sent to the other
/// circle); `/search` shows only the messages that contain a word.
#[test]
fn tab_completes_commands_and_names_and_search_filters_messages() {
    let mut node = FakeNode::riverside();
    let mut app = started(&mut node);
    let circle = app.circle().map(|c| c.name.clone());
    type_text(&mut app, &mut node, "/ver");
    press(&mut app, &mut node, key(KeyCode::Tab), T0);
    assert_eq!(app.input.text(), "/verify ");
    type_text(&mut app, &mut node, "bon");
    press(&mut app, &mut node, key(KeyCode::Tab), T0);
    assert_eq!(app.input.text(), "/verify Bongani");
    press(&mut app, &mut node, ctrl('u'), T0);
    // Several commands start with "a": extended to the common part, listed.
    type_text(&mut app, &mut node, "/a");
    press(&mut app, &mut node, key(KeyCode::Tab), T0);
    assert_eq!(app.input.text(), "/a");
    let notice = app.notice.as_ref().map(|n| n.text.clone()).unwrap_or_default();
    assert!(notice.contains("accept") && notice.contains("announce") && notice.contains("ack"), "{notice}");
    press(&mut app, &mut node, ctrl('u'), T0);
    // A name inside a message.
    type_text(&mut app, &mut node, "thanks ch");
    press(&mut app, &mut node, key(KeyCode::Tab), T0);
    assert_eq!(app.input.text(), "thanks Chen ");
    // Nothing to complete: the text stays, and so does the circle.
    type_text(&mut app, &mut node, "zz");
    press(&mut app, &mut node, key(KeyCode::Tab), T0);
    assert_eq!(app.input.text(), "thanks Chen zz");
    assert_eq!(app.circle().map(|c| c.name.clone()), circle, "tab with text typed switched circles");
    press(&mut app, &mut node, ctrl('u'), T0);
    // On an empty line tab still switches circles.
    press(&mut app, &mut node, key(KeyCode::Tab), T0);
    assert_ne!(app.circle().map(|c| c.name.clone()), circle);
    press(&mut app, &mut node, key(KeyCode::BackTab), T0);
    assert_eq!(app.circle().map(|c| c.name.clone()), circle);
    // Search.
    type_text(&mut app, &mut node, "/search banner");
    press(&mut app, &mut node, key(KeyCode::Enter), T0);
    let text = screen(&app, 120, 36, T0 + 600_000);
    assert!(text.contains("bring the banner"), "{text}");
    assert!(!text.contains("phones off"), "a message without the word still shows:\n{text}");
    type_text(&mut app, &mut node, "/search");
    press(&mut app, &mut node, key(KeyCode::Enter), T0);
    let text = screen(&app, 120, 36, T0 + 600_000);
    assert!(text.contains("phones off") && text.contains("bring the banner"), "{text}");
}
