//! `kolo demo`: a live circle for trainers, with no set-up.
//!
//! Owns: starting four real nodes in this process (the user and three
//! scripted members, each with an in-memory profile and its own libp2p
//! swarm on 127.0.0.1), a non-member relay in front of the user's node,
//! and the script the members follow (they chat, pin an announcement, move
//! the meeting, remove a member whose phone was taken, and answer the user).
//! The terminal UI runs on the user's node; `--headless` runs the same
//! script and prints what happened, what each side could read, and what the
//! relay carried.

pub mod pace;
pub mod relay;

use std::io::Write;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::api::{self, Answer, Pending, Request};
use crate::engine::{Engine, Event, MessageKind};
use crate::entropy::OsEntropy;
use crate::node::{Node, NodeConfig, NodeEvent};
use crate::store::Profile;
use relay::Relay;

pub const CIRCLE: &str = "riverside";
const MEMBERS: [&str; 3] = ["Ana", "Bongani", "Chen"];
const ANA: usize = 0;
const BONGANI: usize = 1;
const CHEN: usize = 2;
/// The scripted members answer the user this many times at most.
const MAX_REPLIES: usize = 10;
/// The script's disappearing message lives this long.
pub const DOOR_CODE_SECS: u32 = 20;
const DOOR_CODE: &str = "The door code for the back room is 4471.";
const LAST_LINE: &str = "Got it. See you at the mill.";
const JOIN_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("demo set-up failed: {0}")]
    Setup(String),
}

/// A node running in this process, reached like the control socket.
pub struct Handle {
    pub name: String,
    pub requests: mpsc::Sender<Pending>,
}

impl Handle {
    pub async fn call(&self, request: Request) -> Result<Answer, String> {
        let (tx, rx) = oneshot::channel();
        self.requests.send((request, tx)).await.map_err(|_| format!("{} stopped", self.name))?;
        rx.await.map_err(|_| format!("{} gave no answer", self.name))?.map_err(|f| f.message)
    }

    /// [`call`](Self::call), the answer as the type its request gives.
    pub async fn ask<T: TryFrom<Answer>>(&self, request: Request) -> Result<T, String> {
        T::try_from(self.call(request).await?).map_err(|_| format!("{} gave an answer of the wrong kind", self.name))
    }
}

/// The running demo: the user's node (not yet started: the caller runs it
/// beside the UI or headless), the members' handles, the relay.
pub struct Demo {
    pub user: Node,
    pub user_requests: mpsc::Sender<Pending>,
    pub user_inbox: mpsc::Receiver<Pending>,
    pub members: Vec<Handle>,
    pub relay: Relay,
}

fn loopback() -> Vec<libp2p::Multiaddr> {
    "/ip4/127.0.0.1/tcp/0".parse().into_iter().collect()
}

fn make_node(name: &str, announce: Vec<libp2p::Multiaddr>) -> Result<Node, DemoError> {
    let mut rng = OsEntropy;
    let opened = Profile::ephemeral(name, &mut rng).map_err(|e| DemoError::Setup(e.to_string()))?;
    let config = NodeConfig { listen: loopback(), mdns: false, announce, ..NodeConfig::default() };
    let engine = Engine::restore(opened.identity, opened.display_name, config.engine.clone(), opened.circles)
        .map_err(|e| DemoError::Setup(e.to_string()))?;
    Ok(Node::new(engine, opened.profile, config))
}

/// Start the relay and the three members' nodes, and build the user's.
pub async fn start(user_name: &str) -> Result<Demo, DemoError> {
    let relay = Relay::start().await.map_err(|e| DemoError::Setup(format!("relay: {e}")))?;
    let via_relay: libp2p::Multiaddr = format!("/ip4/127.0.0.1/tcp/{}", relay.port)
        .parse()
        .map_err(|e: libp2p::multiaddr::Error| DemoError::Setup(e.to_string()))?;
    let user = make_node(user_name, vec![via_relay])?;
    let (user_requests, user_inbox) = mpsc::channel(64);
    let mut members = Vec::new();
    for name in MEMBERS {
        let node = make_node(name, Vec::new())?;
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(node.run(rx));
        members.push(Handle { name: name.to_owned(), requests: tx });
    }
    Ok(Demo { user, user_requests, user_inbox, members, relay })
}

/// Something the script reports as it goes (printed by `--headless`).
pub type Say = Box<dyn FnMut(String) + Send>;

/// Create the circle on the user's node, point the relay at it, invite the
/// members (Ana as an organiser) and let them join. Returns once every
/// member is in, or with the first failure.
pub async fn form_circle(user: &Handle, members: &[Handle], relay: &Relay, say: &mut Say) -> Result<(), String> {
    user.call(Request::CircleCreate { name: CIRCLE.into(), disappear_secs: None }).await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let port = loop {
        let status: api::Status = user.ask(Request::Status).await?;
        let port = status
            .circles
            .first()
            .and_then(|c| c.listen.as_ref())
            .into_iter()
            .flatten()
            .find_map(|a| a.rsplit_once("/tcp/").and_then(|(_, p)| p.split('/').next()?.parse::<u16>().ok()));
        if let Some(port) = port {
            break port;
        }
        if Instant::now() > deadline {
            return Err("the circle's network did not start listening".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    relay.set_target(port);
    say(format!("{} created the circle \"{CIRCLE}\" and invited {} with one-time codes.", user.name, names(members)));
    let mut joins = Vec::new();
    for (i, m) in members.iter().enumerate() {
        let invite = Request::Invite { circle: CIRCLE.into(), expires_secs: Some(600), organiser: Some(i == ANA) };
        let code = user.ask::<api::InviteCreated>(invite).await?.code;
        let requests = m.requests.clone();
        let name = m.name.clone();
        joins.push(tokio::spawn(async move {
            let h = Handle { name, requests };
            tokio::time::timeout(JOIN_WAIT, h.call(Request::Join { code }))
                .await
                .map_err(|_| format!("{} could not join in time", h.name))?
                .map_err(|e| format!("{} could not join: {e}", h.name))
        }));
    }
    for j in joins {
        j.await.map_err(|e| e.to_string())??;
    }
    say(format!("{} joined: a Noise handshake with a member, then the signed membership log.", names(members)));
    Ok(())
}

fn names(members: &[Handle]) -> String {
    members.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", ")
}

async fn pause(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

async fn text(h: &Handle, text: &str, timer: Option<u32>) -> Result<(), String> {
    h.call(Request::Send { circle: CIRCLE.into(), text: text.into(), disappear_secs: timer }).await.map(|_| ())
}

/// `h` acknowledges the announcement `id` (hex), as a member pressing the
/// key would: acknowledgements are never automatic. Retried for a while
/// the announcement may still be on its way to them (a loaded machine);
/// a member who never got it just does not acknowledge, and the script
/// goes on.
async fn acknowledge(h: &Handle, id: Option<&str>, say: &mut Say) {
    let mut last = String::new();
    for _ in 0..60 {
        match h.call(Request::Ack { circle: CIRCLE.into(), message: id.map(str::to_owned) }).await {
            Ok(_) => return,
            Err(e) => last = e,
        }
        pause(250).await;
    }
    say(format!("{} could not acknowledge the announcement: {last}", h.name));
}

/// The members' script, after the circle formed.
pub async fn script(members: &[Handle], say: &mut Say, pacer: &mut pace::Pacer) -> Result<(), String> {
    let (ana, bongani, chen) = (&members[ANA], &members[BONGANI], &members[CHEN]);
    text(ana, "Welcome, everyone. This circle is end-to-end encrypted: press F2 to see what the network sees.", None)
        .await?;
    say("Ana welcomes everyone.".into());
    pacer.wait(2500).await;
    text(bongani, "Who is coming to the assembly on Saturday?", None).await?;
    pacer.wait(2500).await;
    text(chen, "Me. I'll bring the banner.", None).await?;
    pacer.wait(2500).await;
    let first: api::Sent = ana
        .ask(Request::Announce {
            circle: CIRCLE.into(),
            title: "Assembly".into(),
            when: Some("Saturday 10:00".into()),
            place: Some("Market square".into()),
            details: Some("Bring water and a charged phone.".into()),
            supersedes: None,
            disappear_secs: None,
        })
        .await?;
    say("Ana (an organiser) pins an announcement: Assembly, Saturday 10:00, Market square.".into());
    pacer.wait(1500).await;
    let first_id = first.id.as_deref();
    acknowledge(bongani, first_id, say).await;
    acknowledge(chen, first_id, say).await;
    say("Bongani and Chen acknowledge it (a key press each): Ana sees who read it.".into());
    pacer.wait(1500).await;
    text(bongani, DOOR_CODE, Some(DOOR_CODE_SECS)).await?;
    say(format!("Bongani sends a message that disappears after {DOOR_CODE_SECS} s."));
    pacer.wait(4000).await;
    text(ana, "Chen's phone was taken by the police this morning. I am removing it from the circle.", None).await?;
    pacer.wait(1500).await;
    ana.call(Request::Remove { circle: CIRCLE.into(), member: chen.name.clone() }).await?;
    say("Ana removes Chen: every remaining member replaces its sending key.".into());
    pacer.wait(3000).await;
    let second: api::Sent = ana
        .ask(Request::Announce {
            circle: CIRCLE.into(),
            title: "Assembly: new place".into(),
            when: Some("Saturday 10:00".into()),
            place: Some("The old mill, Riverside Road".into()),
            details: Some("The square is watched. Same time, new place.".into()),
            supersedes: first.id.clone(),
            disappear_secs: None,
        })
        .await?;
    say("Ana moves the meeting to the old mill; the new announcement replaces the pinned one.".into());
    pacer.wait(1500).await;
    acknowledge(bongani, second.id.as_deref(), say).await;
    say("Bongani acknowledges the new place.".into());
    pacer.wait(1000).await;
    text(bongani, LAST_LINE, None).await?;
    Ok(())
}

/// Bongani answers what the user writes (a bounded number of times).
pub async fn answer_user(bongani: Handle, mut user_events: mpsc::Receiver<NodeEvent>, user_fingerprint: String) {
    let mut replies = 0;
    while let Some(event) = user_events.recv().await {
        let NodeEvent::Engine(event) = event else { continue };
        let Event::Message(m) = *event else { continue };
        if m.kind != MessageKind::Text || m.sender.fingerprint().to_string() != user_fingerprint {
            continue;
        }
        let quote: String = m.text.chars().take(40).collect();
        let reply = format!("Thanks, {}! Noted: \"{quote}\"", m.sender_name);
        pause(1200).await;
        if text(&bongani, &reply, None).await.is_err() {
            return;
        }
        replies += 1;
        if replies >= MAX_REPLIES {
            return;
        }
    }
}

/// `kolo demo --headless`: the same circle and script, no terminal. Prints
/// what happened, what members and the removed member could read, and what
/// the relay carried.
pub async fn headless(out: &mut (dyn Write + Send)) -> Result<(), String> {
    let started = Instant::now();
    let mut demo = start("You").await.map_err(|e| e.to_string())?;
    let user_events = demo.user.watch();
    let user = Handle { name: "You".into(), requests: demo.user_requests.clone() };
    tokio::spawn(demo.user.run(demo.user_inbox));
    let (lines_tx, mut lines_rx) = mpsc::channel::<String>(256);
    let mut say: Say = Box::new(move |line| {
        let _ = lines_tx.try_send(format!("[{:>5.1}s] {line}", started.elapsed().as_secs_f32()));
    });
    let flush = |out: &mut (dyn Write + Send), rx: &mut mpsc::Receiver<String>| {
        while let Ok(line) = rx.try_recv() {
            let _ = writeln!(out, "{line}");
        }
    };
    let _ = writeln!(out, "kolo demo (headless): four real nodes on 127.0.0.1 and a non-member relay\n");
    form_circle(&user, &demo.members, &demo.relay, &mut say).await?;
    flush(out, &mut lines_rx);
    let me = user.ask::<api::Status>(Request::Status).await?.fingerprint;
    let bongani = Handle { name: "Bongani".into(), requests: demo.members[BONGANI].requests.clone() };
    tokio::spawn(answer_user(bongani, user_events, me));
    let script_members: Vec<Handle> =
        demo.members.iter().map(|m| Handle { name: m.name.clone(), requests: m.requests.clone() }).collect();
    let script = tokio::spawn(async move {
        // Headless: nobody to pause it, the script runs on its timers.
        let (_pace, mut pacer) = pace::pace();
        let result = script(&script_members, &mut say, &mut pacer).await;
        (result, say)
    });
    pause(5000).await;
    text(&user, "I'll be there too.", None).await?;
    let (result, _say) = script.await.map_err(|e| e.to_string())?;
    result?;
    flush(out, &mut lines_rx);
    pause(2500).await;

    let _ = writeln!(out, "\nWhat you decrypted (your node's history):");
    let history: Vec<api::Message> = user.ask(Request::Messages { circle: CIRCLE.into() }).await?;
    let mut texts: Vec<String> = Vec::new();
    let mut shown_envelope = false;
    for m in &history {
        let sender = crate::ui::safe_text::clean_line(&m.sender);
        let body = match &m.body {
            api::Body::Announcement { title, when, place, details, .. } => {
                for t in [title, place, details] {
                    texts.push(t.clone());
                }
                format!("📌 {title} | {when} | {place}")
            }
            _ => crate::ui::safe_text::clean(&m.text),
        };
        let timer = if m.expires_at.is_some() { "  [disappearing]" } else { "" };
        let _ = writeln!(out, "  {sender:>8}: {body}{timer}");
        texts.push(m.text.clone());
        // The newest message's envelope: its sender's current key still checks it.
        if m.body == api::Body::Text && m.text == LAST_LINE && !shown_envelope {
            shown_envelope = true;
            let env: api::Envelope =
                user.ask(Request::Inspect { circle: CIRCLE.into(), message: m.id.clone() }).await?;
            let _ = writeln!(
                out,
                "            the envelope: {} bytes | key id {} | epoch {} | counter {} | ciphertext {}… | signature {}",
                env.frame_len,
                env.key_id,
                env.epoch,
                env.counter,
                env.ciphertext.chars().take(24).collect::<String>(),
                if env.signature_ok == Some(true) { "valid" } else { "unchecked" },
            );
        }
    }
    texts.retain(|t| t.len() >= 6);

    let circles: Vec<api::CircleInfo> = demo.members[ANA].ask(Request::Circles).await?;
    let acked: Vec<String> =
        circles.first().and_then(|c| c.pinned.as_ref()).map(|p| p.acked_by.clone()).unwrap_or_default();
    let _ = writeln!(
        out,
        "\nAna, an organiser, sees the pinned announcement acknowledged by {}.",
        if acked.is_empty() { "nobody".to_owned() } else { acked.join(", ") }
    );

    let chen: Vec<api::Message> = demo.members[CHEN].ask(Request::Messages { circle: CIRCLE.into() }).await?;
    let chen_saw_mill = chen.iter().any(|m| mentions(m, "old mill"));
    let _ = writeln!(
        out,
        "\nChen, removed, {} the new meeting place.",
        if chen_saw_mill { "COULD READ" } else { "could not read" }
    );

    let wait = Duration::from_secs(u64::from(DOOR_CODE_SECS) + 2);
    let deadline = Instant::now() + wait;
    let mut gone = false;
    while Instant::now() < deadline && !gone {
        pause(500).await;
        let now: Vec<api::Message> = user.ask(Request::Messages { circle: CIRCLE.into() }).await?;
        gone = !now.iter().any(|m| mentions(m, "4471"));
    }
    let _ = writeln!(
        out,
        "The door code, after its {DOOR_CODE_SECS} s: {}",
        if gone { "gone from your node (message and key erased)" } else { "STILL PRESENT" }
    );

    // Needles shorter than four bytes would turn up in random bytes by chance.
    let mut needles: Vec<&str> = texts.iter().map(String::as_str).collect();
    needles.extend(["Bongani", "Chen", CIRCLE, "4471", "You"]);
    needles.retain(|n| n.len() >= 4);
    let found = demo.relay.found(&needles);
    let stats = demo.relay.stats();
    let _ = writeln!(
        out,
        "\nThe relay carried {} bytes on {} connections. It searched them for every text, title, place and name.",
        stats.bytes, stats.connections
    );
    if found.is_empty() {
        let _ = writeln!(out, "It found none of them: it could read none of them.");
    } else {
        let _ = writeln!(out, "IT FOUND: {}", found.join(", "));
    }
    for m in &demo.members {
        let _ = m.call(Request::Shutdown).await;
    }
    let _ = user.call(Request::Shutdown).await;
    if found.is_empty() && !chen_saw_mill && gone { Ok(()) } else { Err("the demo's checks failed".into()) }
}

/// Whether a message's text or announcement fields contain `needle`.
fn mentions(m: &api::Message, needle: &str) -> bool {
    let fields = match &m.body {
        api::Body::Announcement { title, when, place, details, .. } => vec![title, when, place, details],
        _ => Vec::new(),
    };
    m.text.contains(needle) || fields.into_iter().any(|f| f.contains(needle))
}

/// `kolo demo`: the terminal UI on the user's node while the members follow
/// the script; members stop when the user quits.
pub async fn interactive(keymap: crate::ui::keymap::Keymap) -> Result<(), String> {
    let mut demo = start("You").await.map_err(|e| e.to_string())?;
    let ui_events = demo.user.watch();
    let script_events = demo.user.watch();
    let user = Handle { name: "You".into(), requests: demo.user_requests.clone() };
    let members: Vec<Handle> =
        demo.members.iter().map(|m| Handle { name: m.name.clone(), requests: m.requests.clone() }).collect();
    let relay = demo.relay.clone();
    let (pace, mut pacer) = pace::pace();
    let director = tokio::spawn(async move {
        let mut say: Say = Box::new(|_| {});
        form_circle(&user, &members, &relay, &mut say).await?;
        let me = user.ask::<api::Status>(Request::Status).await?.fingerprint;
        let bongani = Handle { name: "Bongani".into(), requests: members[BONGANI].requests.clone() };
        tokio::spawn(answer_user(bongani, script_events, me));
        script(&members, &mut say, &mut pacer).await
    });
    let tap_relay = demo.relay.clone();
    let options = crate::ui::runtime::Options {
        keymap,
        relay: Some(std::sync::Arc::new(move || tap_relay.stats())),
        trainer: false,
        demo: Some(std::sync::Arc::new(move |key| match key {
            crate::ui::model::DemoKey::TogglePause => pace.toggle(),
            crate::ui::model::DemoKey::NextStep => {
                pace.next_step();
                pace.is_paused()
            }
        })),
    };
    let ended =
        crate::ui::runtime::run_beside(demo.user, demo.user_requests, demo.user_inbox, ui_events, options).await;
    director.abort();
    for m in &demo.members {
        let _ = m.call(Request::Shutdown).await;
    }
    ended.map(|_| ()).map_err(|e| e.to_string())
}
