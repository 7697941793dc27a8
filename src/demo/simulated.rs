//! `kolo demo --headless`: a scripted circle run on the deterministic
//! in-memory network, printed as a transcript a trainer can read aloud.
//!
//! For every message it shows three views side by side: what the author
//! wrote, what each member decrypted, and what a non-member relay saw on
//! the wire (sizes, header fields and the first bytes of ciphertext).

use std::io::Write;

use crate::circle::CircleId;
use crate::engine::{Announcement, Command, EngineConfig, MessageKind, MessageView};
use crate::identity::hex;
use crate::sim::{Faults, Sim};

const NAMES: [&str; 4] = ["Ana", "Bongani", "Chen", "Dara"];

pub fn run_transcript(out: &mut dyn Write) -> std::io::Result<()> {
    let mut sim = Sim::new(2026, &NAMES, Faults::NONE, EngineConfig::default());
    writeln!(out, "kolo demo: a circle of four on an in-memory network, plus a non-member relay")?;
    writeln!(out, "==========================================================================\n")?;

    sim.command(0, Command::CreateCircle { name: "riverside".into(), max_disappear_secs: None });
    let Some(circle) = sim.created_circle(0) else {
        writeln!(out, "could not create the circle")?;
        return Ok(());
    };
    writeln!(out, "Ana creates the circle \"riverside\" and invites the others with one-time codes.")?;
    for (j, name) in NAMES.iter().enumerate().skip(1) {
        if !sim.invite_and_join(circle, 0, j) {
            writeln!(out, "  {name} could not join")?;
            return Ok(());
        }
        writeln!(out, "  {name} joined (Noise XX handshake with a member, then the signed log)")?;
    }
    sim.run_for(5_000);
    show_members(out, &sim, &circle)?;

    say(out, &mut sim, circle, 1, "Who is coming on Saturday?", None)?;
    say(out, &mut sim, circle, 2, "Me. I'll bring the banner.", None)?;

    writeln!(out, "\n--- Ana posts an announcement (organisers only); members acknowledge it ---")?;
    let before = sim.captured.len();
    sim.command(
        0,
        Command::SendAnnouncement {
            circle,
            announcement: Announcement {
                title: "Assembly".into(),
                when: "Saturday 10:00".into(),
                place: "Market square".into(),
                details: "Bring water.".into(),
                supersedes: None,
            },
            timer_secs: None,
        },
    );
    sim.run_for(5_000);
    show_pinned(out, &sim, circle, before)?;

    writeln!(out, "\n--- Ana removes Dara: every remaining member replaces its sending key ---")?;
    let dara = sim.nodes[3].engine.member_id();
    sim.command(0, Command::Remove { circle, member: dara });
    sim.run_for(10_000);
    // Dara keeps listening to the network: she still holds the network key.
    if let Some(net) = sim.networks.get_mut(&circle) {
        net.insert(3);
    }
    show_members(out, &sim, &circle)?;
    say(out, &mut sim, circle, 2, "Dara is out. New plan: we meet at the mill.", None)?;

    writeln!(out, "\n--- A disappearing message (timer 30 s) ---")?;
    say(out, &mut sim, circle, 1, "Door code is 4471.", Some(30))?;
    sim.run_for(35_000);
    let gone = (0..3).all(|i| !history(&sim, i, &circle).iter().any(|m| m.text == "Door code is 4471."));
    writeln!(
        out,
        "  35 s later: {} (on every member's engine, message and key erased)",
        if gone { "gone" } else { "STILL PRESENT" }
    )?;

    let frames = sim.captured.len();
    let bytes: usize = sim.captured.iter().map(|c| c.bytes.len()).sum();
    writeln!(out, "\nThe relay saw {frames} frames, {bytes} bytes in all, and could read none of them.")?;
    Ok(())
}

fn history(sim: &Sim, i: usize, circle: &CircleId) -> Vec<MessageView> {
    sim.nodes[i].engine.circle(circle).map(|c| c.history().into_iter().cloned().collect()).unwrap_or_default()
}

fn show_members(out: &mut dyn Write, sim: &Sim, circle: &CircleId) -> std::io::Result<()> {
    let members = sim.nodes[0].engine.members(circle);
    let list: Vec<String> =
        members.iter().map(|m| format!("{} ({:?}, {})", m.name, m.role, m.id.fingerprint())).collect();
    writeln!(out, "\nMembers now: {}", list.join(", "))
}

fn say(
    out: &mut dyn Write,
    sim: &mut Sim,
    circle: CircleId,
    author: usize,
    text: &str,
    timer_secs: Option<u32>,
) -> std::io::Result<()> {
    let before = sim.captured.len();
    sim.command(author, Command::SendText { circle, text: text.into(), timer_secs });
    sim.run_for(3_000);
    writeln!(out, "\n{} writes: \"{}\"", NAMES[author], text)?;
    let id = history(sim, author, &circle).iter().rev().find(|m| m.text == text).map(|m| m.id);
    for (i, name) in NAMES.iter().enumerate() {
        if i == author {
            continue;
        }
        let seen = history(sim, i, &circle).into_iter().find(|m| Some(m.id) == id);
        match seen {
            Some(m) => writeln!(out, "  {name:8} decrypts: \"{}\"{}", m.text, expiry_note(&m, sim.now))?,
            None => writeln!(out, "  {name:8} cannot read it (no key: not a member any more)")?,
        }
    }
    show_wire(out, sim, before)
}

fn expiry_note(m: &MessageView, now: u64) -> String {
    match m.expires_at_ms {
        Some(d) => format!("  [disappears in {} s]", d.saturating_sub(now) / 1000),
        None => String::new(),
    }
}

fn show_wire(out: &mut dyn Write, sim: &Sim, from: usize) -> std::io::Result<()> {
    let group: Vec<_> = sim.captured[from..]
        .iter()
        .filter(|c| !c.direct && c.bytes.get(1) == Some(&crate::wire::frame_type::GROUP))
        .collect();
    let Some(first) = group.first() else {
        return Ok(());
    };
    let b = &first.bytes;
    writeln!(
        out,
        "  relay sees: {} bytes | key id {} | epoch {} | counter {} | ciphertext {}… | signature {}…",
        b.len(),
        hex(&b[2..10]),
        u32::from_be_bytes([b[18], b[19], b[20], b[21]]),
        u32::from_be_bytes([b[22], b[23], b[24], b[25]]),
        hex(&b[26..42]),
        hex(&b[b.len() - 64..b.len() - 56]),
    )?;
    writeln!(out, "              no name, no identity key, no text; size padded to a fixed bucket")
}

fn show_pinned(out: &mut dyn Write, sim: &Sim, circle: CircleId, before: usize) -> std::io::Result<()> {
    for (i, name) in NAMES.iter().enumerate().skip(1) {
        if let Some(p) = sim.nodes[i].engine.circle(&circle).and_then(|c| c.pinned())
            && let MessageKind::Announcement(a) = &p.kind
        {
            writeln!(out, "  {name:8} pins: {} | {} | {} | {}", a.title, a.when, a.place, a.details)?;
        }
    }
    if let Some(c) = sim.nodes[0].engine.circle(&circle)
        && let Some(p) = c.pinned()
    {
        let names: Vec<String> = c.acks(&p.id).iter().map(|m| c.member_name(m)).collect();
        writeln!(out, "  acknowledged by: {}", names.join(", "))?;
    }
    show_wire(out, sim, before)
}
