//! Removal rekey with simulated members: `kolo::engine::Engine`s driven
//! directly in a discrete-event loop of our own, through the engine's
//! public API only, so it measures whatever key schedule the engine has.
//!
//! The model (docs/performance.md §5, "Removal rekey, simulated members"):
//!
//! - every frame takes a fixed [`LINK_US`] from its sender to each receiver;
//! - each member is one CPU: an input waits until the member is free, the
//!   wall time its `Engine::handle` call really took (`Instant`) is added to
//!   that member's clock, and its outputs leave when the call ends;
//! - `Output::Publish` goes to every other member in the circle's network,
//!   except a pairwise frame whose recipient is in the network: that goes
//!   to the recipient only (as a connected node hands it over, and as
//!   `kolo::sim`'s `direct_pairwise` does); `Output::SendDirect` goes to its
//!   peer; every member gets `Input::Tick` every second of modelled time;
//!   no catch-up rounds (nothing is lost, so none is needed);
//! - the figure is modelled time, from the first input of the round to the
//!   end of the `handle` call in which the last remaining member decrypted
//!   the last message it was waiting for.
//!
//! Profile writes are not modelled (`Output::Persist` is dropped), nor is
//! any per-frame network CPU: only the engine's own work counts.
//!
//! Setup (not measured): the keyed circle of the real-node rekey
//! (`kolo_nodes::key_circle`: the organiser signs `Add` operations, every
//! member builds its state from that log, one round of key distribution),
//! then every engine restored from its snapshot with the default config.
//! Every loop is bounded in count, modelled time and wall time.

use std::collections::{BinaryHeap, HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use kolo::circle::CircleId;
use kolo::engine::{Command, Engine, Event, Input, MessageKind, Output};
use kolo::entropy::SeededEntropy;
use kolo::identity::{IdentitySecret, MemberId};
use serde_json::{Value, json};

use crate::Opts;
use crate::kolo_nodes::{key_circle, restore_engine};
use crate::scenarios::{machine, ratio, write_result};

/// The modelled link: 50 ms from sender to each receiver.
const LINK_US: u64 = 50_000;
/// `Input::Tick` to every member this often (modelled).
const TICK_US: u64 = 1_000_000;
/// A round that has not completed in this much modelled time has failed.
const MAX_MODELLED_US: u64 = 120_000_000;
/// At most this many inputs handled in one round.
const MAX_INPUTS: u64 = 200_000_000;
/// Default wall-clock cap per size (setup and both rounds), `--sim-timeout`.
/// The set-up itself (`key_circle`) is bounded but not interruptible: the
/// cap is checked after it and throughout both rounds.
const DEFAULT_WALL_LIMIT_S: u64 = 900;

/// n = 1000 is left out by default: on the 2-core benchmark machine it
/// took 30 minutes (17 of them set-up), see docs/performance.md §5.
pub const DEFAULT_SIZES: [usize; 2] = [100, 500];

/// One input for one member at a modelled time.
struct Arrival {
    at_us: u64,
    seq: u64,
    to: usize,
    input: Input,
}

impl PartialEq for Arrival {
    fn eq(&self, other: &Self) -> bool {
        (self.at_us, self.seq) == (other.at_us, other.seq)
    }
}
impl Eq for Arrival {}
impl PartialOrd for Arrival {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Arrival {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // Min-heap on (time, sequence): FIFO per arrival time.
        (other.at_us, other.seq).cmp(&(self.at_us, self.seq))
    }
}

struct Member {
    engine: Engine,
    rng: SeededEntropy,
    /// Modelled time at which this member's CPU is free.
    free_at_us: u64,
}

/// What one round sent and spent.
#[derive(Default)]
struct Tally {
    pairwise_frames: u64,
    pairwise_bytes: u64,
    group_frames: u64,
    group_bytes: u64,
    direct_frames: u64,
    direct_bytes: u64,
    /// Deliveries (one frame to one receiver).
    deliveries: u64,
    inputs: u64,
    /// Sum of measured `handle` time over all members.
    cpu_us: u64,
    /// Per member, measured `handle` time in this round.
    cpu_by_member: Vec<u64>,
    /// Per member, bytes it sent (each frame once per receiver it goes
    /// to, as on a link without multicast) and bytes it received.
    sent_by_member: Vec<u64>,
    received_by_member: Vec<u64>,
}

impl Tally {
    fn json(&self) -> Value {
        let max_cpu = self.cpu_by_member.iter().copied().max().unwrap_or(0);
        let max = |v: &[u64]| v.iter().copied().max().unwrap_or(0);
        json!({
            "frames": { "pairwise": self.pairwise_frames, "group": self.group_frames, "direct": self.direct_frames },
            "bytes": { "pairwise": self.pairwise_bytes, "group": self.group_bytes, "direct": self.direct_bytes,
                       "total": self.pairwise_bytes + self.group_bytes + self.direct_bytes },
            "deliveries": self.deliveries,
            "inputs": self.inputs,
            "cpu_total_ms": self.cpu_us as f64 / 1000.0,
            "cpu_max_member_ms": max_cpu as f64 / 1000.0,
            "max_member_bytes": { "sent": max(&self.sent_by_member), "received": max(&self.received_by_member) },
        })
    }
}

/// Why a round stopped.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Stop {
    Complete,
    WallLimit,
    ModelLimit,
    InputLimit,
    /// Nothing left in flight and not complete: a message will never come.
    Stuck,
}

impl Stop {
    fn as_str(self) -> &'static str {
        match self {
            Stop::Complete => "complete",
            Stop::WallLimit => "wall-clock limit",
            Stop::ModelLimit => "modelled-time limit",
            Stop::InputLimit => "input-count limit",
            Stop::Stuck => "stuck (nothing in flight)",
        }
    }
}

/// The engines of one circle and the modelled network between them.
struct World {
    circle: CircleId,
    members: Vec<Member>,
    index: HashMap<MemberId, usize>,
    /// Members in the circle's network (subscribed).
    network: Vec<bool>,
    queue: BinaryHeap<Arrival>,
    seq: u64,
    /// Wall-clock time of the setup's start; engines' clock at modelled 0.
    base_ms: u64,
    next_tick_us: u64,
    wall_deadline: Instant,
}

/// What a round waits for: receiver `r` decrypting text `tag(s)` from each
/// other sender `s`.
struct Expect {
    prefix: String,
    /// got[r * n + s]
    got: Vec<bool>,
    missing: u64,
    last_us: u64,
}

impl Expect {
    fn new(prefix: &str, n: usize) -> Self {
        let mut got = vec![false; n * n];
        for i in 0..n {
            got[i * n + i] = true;
        }
        Self { prefix: prefix.to_owned(), got, missing: (n * n.saturating_sub(1)) as u64, last_us: 0 }
    }

    fn text(&self, sender: usize) -> String {
        format!("{} from member {sender}", self.prefix)
    }
}

impl World {
    fn now_ms(&self, at_us: u64) -> u64 {
        self.base_ms + at_us / 1000
    }

    fn push(&mut self, at_us: u64, to: usize, input: Input) {
        self.seq += 1;
        self.queue.push(Arrival { at_us, seq: self.seq, to, input });
    }

    /// Run one input on member `i`, no earlier than `at_us`; route its
    /// outputs. Returns the modelled time the call ended and its outputs'
    /// events (for the caller to inspect).
    fn run(&mut self, i: usize, at_us: u64, input: Input, tally: &mut Tally) -> (u64, Vec<Event>) {
        let start = at_us.max(self.members[i].free_at_us);
        let now_ms = self.now_ms(start);
        let m = &mut self.members[i];
        let t = Instant::now();
        let outputs = m.engine.handle(now_ms, input, &mut m.rng);
        let took = t.elapsed().as_micros() as u64;
        let end = start + took.max(1);
        m.free_at_us = end;
        tally.cpu_us += took;
        tally.cpu_by_member[i] += took;
        tally.inputs += 1;
        let events = self.route(i, end, outputs, tally);
        (end, events)
    }

    fn route(&mut self, from: usize, end_us: u64, outputs: Vec<Output>, tally: &mut Tally) -> Vec<Event> {
        let arrive = end_us + LINK_US;
        let mut events = Vec::new();
        for out in outputs {
            match out {
                Output::Publish { circle, frame, recipient, .. } => {
                    let direct = recipient.and_then(|r| self.index.get(&r).copied()).filter(|&to| self.network[to]);
                    let len = frame.len() as u64;
                    if recipient.is_some() {
                        tally.pairwise_frames += 1;
                        tally.pairwise_bytes += len;
                    } else {
                        tally.group_frames += 1;
                        tally.group_bytes += len;
                    }
                    if let Some(to) = direct {
                        tally.deliveries += 1;
                        tally.sent_by_member[from] += len;
                        tally.received_by_member[to] += len;
                        self.push(arrive, to, Input::Direct { circle, peer: from as u64, bytes: frame });
                    } else {
                        let to: Vec<usize> =
                            (0..self.members.len()).filter(|&p| p != from && self.network[p]).collect();
                        for p in to {
                            tally.deliveries += 1;
                            tally.sent_by_member[from] += len;
                            tally.received_by_member[p] += len;
                            self.push(arrive, p, Input::Frame { circle, bytes: frame.clone() });
                        }
                    }
                }
                Output::SendDirect { circle, peer, frame } => {
                    tally.direct_frames += 1;
                    tally.direct_bytes += frame.len() as u64;
                    if let Ok(to) = usize::try_from(peer)
                        && to < self.members.len()
                    {
                        tally.deliveries += 1;
                        tally.sent_by_member[from] += frame.len() as u64;
                        tally.received_by_member[to] += frame.len() as u64;
                        self.push(arrive, to, Input::Direct { circle, peer: from as u64, bytes: frame });
                    }
                }
                Output::Subscribe { circle, .. } if circle == self.circle => self.network[from] = true,
                Output::Unsubscribe { circle } if circle == self.circle => self.network[from] = false,
                Output::Event(e) => events.push(e),
                // Profile writes and peer scoring are not modelled; there is
                // no dialling inside one circle.
                _ => {}
            }
        }
        events
    }

    /// Note every text of the round that member `r` decrypted at `end_us`.
    fn note(&self, r: usize, end_us: u64, events: &[Event], expect: &mut Expect) {
        let n = self.members.len();
        for e in events {
            let Event::Message(view) = e else { continue };
            if view.circle != self.circle || view.kind != MessageKind::Text {
                continue;
            }
            let Some(&s) = self.index.get(&view.sender) else { continue };
            if s == r || view.text != expect.text(s) {
                continue;
            }
            if !expect.got[r * n + s] {
                expect.got[r * n + s] = true;
                expect.missing -= 1;
                expect.last_us = expect.last_us.max(end_us);
            }
        }
    }

    /// Deliver, tick and handle until `expect` is met or a limit is hit.
    /// `on_handled(world, member, end_us, tally, expect)` runs after every
    /// input (the rekey round sends each member's message from there).
    fn drive(
        &mut self,
        start_us: u64,
        tally: &mut Tally,
        expect: &mut Expect,
        mut on_handled: impl FnMut(&mut World, usize, u64, &mut Tally, &mut Expect),
    ) -> Stop {
        self.next_tick_us = start_us + TICK_US;
        let mut handled = 0u64;
        // Ticks in a row that found nothing in flight.
        let mut idle_ticks = 0;
        loop {
            if expect.missing == 0 {
                return Stop::Complete;
            }
            if handled.is_multiple_of(256) && Instant::now() > self.wall_deadline {
                return Stop::WallLimit;
            }
            if handled >= MAX_INPUTS {
                return Stop::InputLimit;
            }
            let next = self.queue.peek().map(|a| a.at_us);
            if next.is_none_or(|at| at >= self.next_tick_us) {
                idle_ticks = if next.is_none() { idle_ticks + 1 } else { 0 };
                // Scheduled work gets a few seconds of ticks to show up.
                if idle_ticks > 10 {
                    return Stop::Stuck;
                }
                let at = self.next_tick_us;
                if at > start_us + MAX_MODELLED_US {
                    return Stop::ModelLimit;
                }
                self.next_tick_us += TICK_US;
                for i in 0..self.members.len() {
                    self.push(at, i, Input::Tick);
                }
                continue;
            }
            let Some(a) = self.queue.pop() else { continue };
            let (end, events) = self.run(a.to, a.at_us, a.input, tally);
            self.note(a.to, end, &events, expect);
            on_handled(self, a.to, end, tally, expect);
            handled += 1;
        }
    }

    /// Handle what is in flight (no ticks) until nothing is, bounded.
    fn drain(&mut self, tally: &mut Tally) -> bool {
        let mut handled = 0u64;
        while let Some(a) = self.queue.pop() {
            self.run(a.to, a.at_us, a.input, tally);
            handled += 1;
            if handled >= MAX_INPUTS || (handled.is_multiple_of(256) && Instant::now() > self.wall_deadline) {
                return false;
            }
        }
        true
    }

    /// A fresh starting point after everything so far.
    fn quiet_start(&self) -> u64 {
        let busy = self.members.iter().map(|m| m.free_at_us).max().unwrap_or(0);
        busy.div_ceil(TICK_US) * TICK_US + TICK_US
    }

    fn send_text(&mut self, i: usize, at_us: u64, text: String, tally: &mut Tally, expect: &mut Expect) -> u64 {
        let (end, events) = self.run(
            i,
            at_us,
            Input::Command(Command::SendText { circle: self.circle, text, timer_secs: None }),
            tally,
        );
        self.note(i, end, &events, expect);
        end
    }
}

/// Build the circle: `n` running members and one roster-only member (the
/// one the rekey removes), every running member holding every other's key.
fn build(n: usize, seed: u64, wall_deadline: Instant) -> Result<(World, MemberId)> {
    let identities: Vec<(String, IdentitySecret)> = (0..n)
        .map(|i| {
            let mut rng = SeededEntropy::from_u64(seed.wrapping_mul(7919).wrapping_add(i as u64));
            (format!("s{i:04}"), IdentitySecret::generate(&mut rng))
        })
        .collect();
    let keyed = key_circle(identities, 1, seed)?;
    let removed = *keyed.dummies.first().ok_or_else(|| anyhow!("no member to remove"))?;
    let mut members = Vec::with_capacity(n);
    let mut index = HashMap::new();
    for (i, m) in keyed.members.iter().enumerate() {
        let engine = restore_engine(m)?;
        index.insert(engine.member_id(), i);
        members.push(Member { engine, rng: SeededEntropy::from_u64(seed ^ (0x5eed_0000 + i as u64)), free_at_us: 0 });
    }
    let base_ms = crate::measure::now_ms();
    let world = World {
        circle: keyed.circle,
        members,
        index,
        network: vec![true; n],
        queue: BinaryHeap::new(),
        seq: 0,
        base_ms,
        next_tick_us: 0,
        wall_deadline,
    };
    Ok((world, removed))
}

fn fresh_tally(n: usize) -> Tally {
    Tally { cpu_by_member: vec![0; n], sent_by_member: vec![0; n], received_by_member: vec![0; n], ..Tally::default() }
}

/// Baseline: every member sends one message at once; done when every
/// member decrypted every other's.
fn broadcast_round(w: &mut World) -> (Stop, u64, Tally) {
    let n = w.members.len();
    let mut tally = fresh_tally(n);
    let mut expect = Expect::new("broadcast round", n);
    let t0 = w.quiet_start();
    for i in 0..n {
        let text = expect.text(i);
        w.send_text(i, t0, text, &mut tally, &mut expect);
    }
    let stop = w.drive(t0, &mut tally, &mut expect, |_, _, _, _, _| {});
    (stop, expect.last_us.saturating_sub(t0), tally)
}

struct RekeyOutcome {
    stop: Stop,
    time_us: u64,
    applied_us: Option<u64>,
    missing: u64,
    tally: Tally,
    /// Everything the removal caused, counted until nothing was in flight.
    total: Option<Tally>,
}

/// The organiser (member 0) removes the roster-only member; each member,
/// once its log no longer lists it, sends one message.
fn rekey_round(w: &mut World, removed: MemberId) -> RekeyOutcome {
    let n = w.members.len();
    let mut tally = fresh_tally(n);
    let mut expect = Expect::new("after the removal", n);
    let t0 = w.quiet_start();
    let mut applied: Vec<Option<u64>> = vec![None; n];
    let circle = w.circle;
    let check =
        |w: &mut World, i: usize, end: u64, tally: &mut Tally, expect: &mut Expect, applied: &mut [Option<u64>]| {
            if applied[i].is_some() {
                return;
            }
            let gone = w.members[i].engine.circle(&circle).is_some_and(|c| !c.log().is_member(&removed));
            if gone {
                applied[i] = Some(end);
                let text = expect.text(i);
                w.send_text(i, end, text, tally, expect);
            }
        };
    let (end, events) = w.run(0, t0, Input::Command(Command::Remove { circle, member: removed }), &mut tally);
    w.note(0, end, &events, &mut expect);
    check(w, 0, end, &mut tally, &mut expect, &mut applied);
    let stop =
        w.drive(t0, &mut tally, &mut expect, |w, i, end, tally, expect| check(w, i, end, tally, expect, &mut applied));
    let applied_us = if applied.iter().all(Option::is_some) {
        applied.iter().flatten().max().map(|t| t.saturating_sub(t0))
    } else {
        None
    };
    let time_us = expect.last_us.saturating_sub(t0);
    let missing = expect.missing;
    // What is still in flight belongs to the rekey too: count it.
    let total = if stop == Stop::Complete {
        let mut rest = fresh_tally(n);
        let drained = w.drain(&mut rest);
        drained.then(|| {
            let mut all = fresh_tally(n);
            for t in [&tally, &rest] {
                all.pairwise_frames += t.pairwise_frames;
                all.pairwise_bytes += t.pairwise_bytes;
                all.group_frames += t.group_frames;
                all.group_bytes += t.group_bytes;
                all.direct_frames += t.direct_frames;
                all.direct_bytes += t.direct_bytes;
                all.deliveries += t.deliveries;
                all.inputs += t.inputs;
                all.cpu_us += t.cpu_us;
                for (a, b) in all.cpu_by_member.iter_mut().zip(&t.cpu_by_member) {
                    *a += *b;
                }
                for (a, b) in all.sent_by_member.iter_mut().zip(&t.sent_by_member) {
                    *a += *b;
                }
                for (a, b) in all.received_by_member.iter_mut().zip(&t.received_by_member) {
                    *a += *b;
                }
            }
            all
        })
    } else {
        None
    };
    RekeyOutcome { stop, time_us, applied_us, missing, tally, total }
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// One size: setup, baseline round, rekey round.
fn one(n: usize, seed: u64, limit: Duration) -> Value {
    let wall0 = Instant::now();
    let deadline = wall0 + limit;
    let (mut w, removed) = match build(n, seed, deadline) {
        Ok(x) => x,
        Err(e) => {
            println!("rekey-sim n={n}: setup failed: {e}");
            return json!({ "n": n, "complete": false, "error": format!("setup failed: {e}") });
        }
    };
    let setup_s = wall0.elapsed().as_secs_f64();
    println!("rekey-sim n={n}: set up in {setup_s:.1} s");
    if Instant::now() > deadline {
        println!("rekey-sim n={n}: did not complete in {} s (setup alone took {setup_s:.0} s)", limit.as_secs());
        return json!({ "n": n, "complete": false, "setup_s": setup_s,
                       "error": format!("did not complete in {} s", limit.as_secs()) });
    }
    let wall_b = Instant::now();
    let (bstop, btime, btally) = broadcast_round(&mut w);
    let baseline = json!({ "stop": bstop.as_str(), "time_ms": ms(btime), "wall_s": wall_b.elapsed().as_secs_f64(),
                           "sent": btally.json() });
    println!("rekey-sim n={n}: broadcast round {} in {:.1} ms modelled", bstop.as_str(), ms(btime));
    // Let the baseline's frames settle before the removal.
    w.drain(&mut fresh_tally(n));
    let wall_r = Instant::now();
    let cpu0 = crate::measure::process_cpu_secs();
    let r = rekey_round(&mut w, removed);
    let process_cpu_s = crate::measure::process_cpu_secs() - cpu0;
    let complete = r.stop == Stop::Complete && bstop == Stop::Complete;
    let wall_s = wall0.elapsed().as_secs_f64();
    if r.stop == Stop::Complete {
        println!(
            "rekey-sim n={n}: every member holds every new key after {:.1} ms modelled (broadcast round {:.1} ms, ratio {:.2}); {} pairwise + {} group frames, {:.1} MB, {:.1} s CPU in all",
            ms(r.time_us),
            ms(btime),
            ratio(ms(r.time_us), ms(btime)),
            r.tally.pairwise_frames,
            r.tally.group_frames,
            (r.tally.pairwise_bytes + r.tally.group_bytes + r.tally.direct_bytes) as f64 / 1e6,
            r.tally.cpu_us as f64 / 1e6
        );
        println!(
            "rekey-sim n={n}: busiest member: {:.1} ms CPU, {:.0} kB sent, {:.0} kB received",
            ms(r.tally.cpu_by_member.iter().copied().max().unwrap_or(0)),
            r.tally.sent_by_member.iter().copied().max().unwrap_or(0) as f64 / 1e3,
            r.tally.received_by_member.iter().copied().max().unwrap_or(0) as f64 / 1e3
        );
    } else {
        println!(
            "rekey-sim n={n}: did not complete in {} s ({}; {} of {} decryptions missing)",
            limit.as_secs(),
            r.stop.as_str(),
            r.missing,
            n * (n - 1)
        );
    }
    json!({
        "n": n,
        "complete": complete,
        "setup_s": setup_s,
        "wall_s": wall_s,
        "limit_s": limit.as_secs(),
        "link_ms": ms(LINK_US),
        "baseline": baseline,
        "rekey": {
            "stop": r.stop.as_str(),
            "time_ms": ms(r.time_us),
            "removal_applied_by_all_ms": r.applied_us.map(ms),
            "missing_decryptions": r.missing,
            "wall_s": wall_r.elapsed().as_secs_f64(),
            // The whole process's CPU over the round (loop and routing
            // included): a check on the sum of measured handle times.
            "process_cpu_s": process_cpu_s,
            "until_complete": r.tally.json(),
            "until_quiet": r.total.as_ref().map(Tally::json),
        },
        "ratio": { "time": ratio(ms(r.time_us), ms(btime)) },
    })
}

/// `cargo bench --bench net -- rekey-sim [--sizes|--sim-sizes 100,500] [--sim-timeout 900]`;
/// inside `rekey` (`standalone` false) `--sizes` are the real nodes' and
/// only `--sim-sizes` applies here.
pub fn run(opts: &Opts, standalone: bool) -> Result<()> {
    let given = if standalone { opts.sim_sizes.clone().or_else(|| opts.sizes.clone()) } else { opts.sim_sizes.clone() };
    if given.is_none() {
        println!(
            "rekey-sim: sizes {DEFAULT_SIZES:?}; n = 1000 takes about 30 min on 2 cores (17 of them set-up): \
             ask for it with --sim-sizes 1000 --sim-timeout 2400"
        );
    }
    let sizes = given.unwrap_or_else(|| DEFAULT_SIZES.to_vec());
    let limit = Duration::from_secs(opts.sim_timeout_s.unwrap_or(DEFAULT_WALL_LIMIT_S));
    let mut rows = Vec::new();
    let mut seen = HashSet::new();
    for &n in sizes.iter().filter(|&&n| n >= 2 && seen.insert(n)) {
        let row = one(n, opts.seed, limit);
        rows.push(row);
        // Write after every size: a long run leaves what it measured.
        write_result(
            "rekey-sim",
            &json!({ "scenario": "rekey-sim", "machine": machine(), "model": {
                "link_ms": ms(LINK_US), "tick_ms": ms(TICK_US),
                "cpu": "each member's measured Engine::handle wall time, one CPU per member" },
                "rows": rows }),
        );
    }
    Ok(())
}
