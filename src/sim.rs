//! A deterministic in-memory network for engines: the simulation harness
//! behind the property tests in `tests/simulation.rs` and behind the
//! transcript `kolo demo --headless` prints.
//!
//! The router delivers what engines publish to every engine in the circle's
//! network, after a random delay, and can drop, duplicate and reorder
//! frames (a seeded generator decides, so a run can be replayed). Members
//! meet at random to catch up, as real peers do when they connect. An
//! *observer* records every byte that crossed the network: it stands for a
//! non-member relay or a packet capture.

use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use crate::circle::CircleId;
use crate::engine::{Command, Engine, EngineConfig, Event, Input, Output, PeerRef};
use crate::entropy::{Entropy, SeededEntropy};
use crate::identity::IdentitySecret;

/// How hostile the network is.
#[derive(Clone, Copy, Debug)]
pub struct Faults {
    /// Probability (per mille) a gossip delivery is lost.
    pub drop_per_mille: u32,
    /// Probability (per mille) a gossip delivery arrives twice.
    pub duplicate_per_mille: u32,
    /// Deliveries take between 1 and this many milliseconds (reordering).
    pub max_delay_ms: u64,
}

impl Faults {
    pub const NONE: Faults = Faults { drop_per_mille: 0, duplicate_per_mille: 0, max_delay_ms: 5 };
    pub const HOSTILE: Faults = Faults { drop_per_mille: 200, duplicate_per_mille: 150, max_delay_ms: 400 };
}

/// One frame as the network saw it.
#[derive(Clone, Debug)]
pub struct Captured {
    pub at_ms: u64,
    pub from: usize,
    pub direct: bool,
    pub bytes: Vec<u8>,
}

struct Scheduled {
    at: u64,
    seq: u64,
    to: usize,
    input: Input,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // Min-heap on (time, sequence).
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

pub struct Node {
    pub engine: Engine,
    pub events: Vec<Event>,
    /// Off-line nodes receive nothing and are not ticked.
    pub online: bool,
    /// When set, the node's `Persist` records are kept in `records` (for
    /// tests that drive a real store).
    pub keep_records: bool,
    pub records: Vec<crate::engine::Record>,
    /// The engine's verdict on every topic frame it received, in order.
    pub verdicts: Vec<crate::engine::Verdict>,
}

pub struct Sim {
    pub now: u64,
    pub nodes: Vec<Node>,
    pub faults: Faults,
    pub captured: Vec<Captured>,
    /// Which nodes are in each circle's network (members and joiners).
    pub networks: BTreeMap<CircleId, BTreeSet<usize>>,
    /// Nodes dialling into a circle's network to join it.
    pub dialing: BTreeMap<CircleId, BTreeSet<usize>>,
    queue: BinaryHeap<Scheduled>,
    seq: u64,
    rng: SeededEntropy,
    node_rngs: Vec<SeededEntropy>,
    /// Each node's identity and the config, to rebuild an engine on `restart`.
    identity_seeds: Vec<zeroize::Zeroizing<[u8; 32]>>,
    config: EngineConfig,
    /// Milliseconds between catch-up rounds.
    pub sync_every_ms: u64,
    /// Hand pairwise frames to their recipient directly when it is online
    /// in the circle's network, as a node does when connected to it;
    /// otherwise (and when off) they go on the topic as mailbox frames.
    pub direct_pairwise: bool,
    next_sync: u64,
    next_tick: u64,
}

impl Sim {
    /// `names.len()` engines with fresh identities, deterministic in `seed`.
    pub fn new(seed: u64, names: &[&str], faults: Faults, config: EngineConfig) -> Self {
        let mut rng = SeededEntropy::from_u64(seed);
        let mut nodes = Vec::new();
        let mut node_rngs = Vec::new();
        let mut identity_seeds = Vec::new();
        for name in names {
            let mut node_rng = SeededEntropy::new(rng.array());
            let identity = IdentitySecret::generate(&mut node_rng);
            identity_seeds.push(zeroize::Zeroizing::new(identity.expose_seed()));
            nodes.push(Node {
                engine: Engine::new(identity, (*name).to_owned(), config.clone()),
                events: Vec::new(),
                online: true,
                keep_records: false,
                records: Vec::new(),
                verdicts: Vec::new(),
            });
            node_rngs.push(node_rng);
        }
        Self {
            now: 1_700_000_000_000,
            nodes,
            faults,
            captured: Vec::new(),
            networks: BTreeMap::new(),
            dialing: BTreeMap::new(),
            queue: BinaryHeap::new(),
            seq: 0,
            rng,
            node_rngs,
            identity_seeds,
            config,
            sync_every_ms: 500,
            direct_pairwise: false,
            next_sync: 0,
            next_tick: 0,
        }
    }

    fn roll(&mut self, per_mille: u32) -> bool {
        let x: [u8; 4] = self.rng.array();
        u32::from_be_bytes(x) % 1000 < per_mille
    }

    fn delay(&mut self) -> u64 {
        let x: [u8; 8] = self.rng.array();
        1 + u64::from_be_bytes(x) % self.faults.max_delay_ms.max(1)
    }

    fn schedule(&mut self, to: usize, delay: u64, input: Input) {
        self.seq += 1;
        self.queue.push(Scheduled { at: self.now + delay, seq: self.seq, to, input });
    }

    /// Give node `i` an input now and route what comes out.
    pub fn input(&mut self, i: usize, input: Input) {
        if !self.nodes[i].online {
            return;
        }
        let outputs = self.nodes[i].engine.handle(self.now, input, &mut self.node_rngs[i]);
        self.route(i, outputs);
    }

    /// Have node `i` seal and publish arbitrary plaintext with its own
    /// chain (what a malicious member can do).
    pub fn seal_raw(&mut self, i: usize, circle: CircleId, inner: &crate::engine::message::Inner) {
        let outputs = self.nodes[i].engine.seal_raw(self.now, &circle, inner, &mut self.node_rngs[i]);
        self.route(i, outputs);
    }

    /// Deliver raw bytes to every node in the circle's network, as if
    /// `from` had published them (replays, garbage, captured frames).
    pub fn inject(&mut self, circle: CircleId, from: usize, bytes: Vec<u8>) {
        self.route(from, vec![Output::Publish { circle, topic: String::new(), frame: bytes, recipient: None }]);
    }

    pub fn command(&mut self, i: usize, command: Command) {
        self.input(i, Input::Command(command));
    }

    fn route(&mut self, from: usize, outputs: Vec<Output>) {
        for out in outputs {
            match out {
                Output::Publish { circle, frame, recipient: Some(member), .. }
                    if let Some(to) = self.direct_recipient(&circle, &member) =>
                {
                    self.captured.push(Captured { at_ms: self.now, from, direct: true, bytes: frame.clone() });
                    let d = self.delay();
                    self.schedule(to, d, Input::Direct { circle, peer: from as PeerRef, bytes: frame });
                }
                Output::Publish { circle, frame, .. } => {
                    self.captured.push(Captured { at_ms: self.now, from, direct: false, bytes: frame.clone() });
                    let peers: Vec<usize> = self
                        .networks
                        .get(&circle)
                        .map(|s| s.iter().copied().filter(|p| *p != from).collect())
                        .unwrap_or_default();
                    for p in peers {
                        if self.roll(self.faults.drop_per_mille) {
                            continue;
                        }
                        let copies = if self.roll(self.faults.duplicate_per_mille) { 2 } else { 1 };
                        for _ in 0..copies {
                            let d = self.delay();
                            self.schedule(p, d, Input::Frame { circle, bytes: frame.clone() });
                        }
                    }
                }
                Output::SendDirect { circle, peer, frame } => {
                    self.captured.push(Captured { at_ms: self.now, from, direct: true, bytes: frame.clone() });
                    // Direct exchanges ride a reliable stream: delayed, never lost.
                    let d = self.delay();
                    self.schedule(peer as usize, d, Input::Direct { circle, peer: from as PeerRef, bytes: frame });
                }
                Output::Subscribe { circle, .. } => {
                    self.networks.entry(circle).or_default().insert(from);
                    if let Some(d) = self.dialing.get_mut(&circle) {
                        d.remove(&from);
                    }
                }
                // The simulator has no link layer.
                Output::Access { .. } => {}
                Output::Unsubscribe { circle } => {
                    if let Some(s) = self.networks.get_mut(&circle) {
                        s.remove(&from);
                    }
                }
                Output::Dial { circle, .. } => {
                    self.dialing.entry(circle).or_default().insert(from);
                    // The joiner reaches every member of the network.
                    let peers: Vec<usize> =
                        self.networks.get(&circle).map(|s| s.iter().copied().collect()).unwrap_or_default();
                    for p in peers {
                        let d = self.delay();
                        self.schedule(from, d, Input::PeerAvailable { circle, peer: p as PeerRef });
                    }
                }
                Output::Persist(r) => {
                    if self.nodes[from].keep_records {
                        self.nodes[from].records.push(r);
                    }
                }
                Output::Event(e) => self.nodes[from].events.push(e),
                Output::Verdict { verdict, .. } => self.nodes[from].verdicts.push(verdict),
            }
        }
    }

    /// The node of `member`, if pairwise frames go directly and it is
    /// online in the circle's network.
    fn direct_recipient(&self, circle: &CircleId, member: &crate::identity::MemberId) -> Option<usize> {
        if !self.direct_pairwise {
            return None;
        }
        let present = self.networks.get(circle)?;
        (0..self.nodes.len())
            .find(|&j| present.contains(&j) && self.nodes[j].online && self.nodes[j].engine.member_id() == *member)
    }

    fn sync_round(&mut self) {
        // Joiners keep reaching members, as a real node redials.
        let dialing: Vec<(CircleId, Vec<usize>)> =
            self.dialing.iter().map(|(c, s)| (*c, s.iter().copied().collect())).collect();
        for (circle, joiners) in dialing {
            let members: Vec<usize> =
                self.networks.get(&circle).map(|s| s.iter().copied().collect()).unwrap_or_default();
            for &j in &joiners {
                if members.is_empty() {
                    break;
                }
                let x: [u8; 8] = self.rng.array();
                let m = members[(u64::from_be_bytes(x) % members.len() as u64) as usize];
                if self.nodes[m].online {
                    self.input(j, Input::PeerAvailable { circle, peer: m as PeerRef });
                }
            }
        }
        let circles: Vec<(CircleId, Vec<usize>)> =
            self.networks.iter().map(|(c, s)| (*c, s.iter().copied().collect())).collect();
        for (circle, members) in circles {
            for &i in &members {
                if members.len() < 2 {
                    continue;
                }
                let x: [u8; 8] = self.rng.array();
                let j = members[(u64::from_be_bytes(x) % members.len() as u64) as usize];
                if j != i && self.nodes[j].online {
                    self.input(i, Input::PeerAvailable { circle, peer: j as PeerRef });
                }
            }
        }
    }

    /// Advance virtual time by `ms`, delivering, ticking and syncing.
    pub fn run_for(&mut self, ms: u64) {
        let end = self.now + ms;
        loop {
            let next_event = self.queue.peek().map(|s| s.at).unwrap_or(u64::MAX);
            let next = next_event.min(self.next_sync).min(self.next_tick);
            if next > end {
                self.now = end;
                return;
            }
            self.now = self.now.max(next);
            if self.next_tick <= self.now {
                self.next_tick = self.now + 1000;
                for i in 0..self.nodes.len() {
                    self.input(i, Input::Tick);
                }
            } else if self.next_sync <= self.now {
                self.next_sync = self.now + self.sync_every_ms;
                self.sync_round();
            } else if let Some(s) = self.queue.pop() {
                self.input(s.to, s.input);
            }
        }
    }

    /// Restart node `i` from what it persisted (it must have had
    /// `keep_records` on from the start): its circles' snapshots, messages
    /// and stored frames, as a real node reopening its profile.
    pub fn restart(&mut self, i: usize) {
        // What a reopened profile gives back is what a copy of it holds.
        if let Some(e) = self.seize(i) {
            self.nodes[i].engine = e;
        }
    }

    /// A copy of node `i` made from everything its profile holds (it must
    /// have had `keep_records` on from the start): circle snapshots, saved
    /// chains, messages and stored frames, as a forensic examiner copying
    /// the profile (with its passphrase) gets them. The node itself runs on.
    pub fn seize(&self, i: usize) -> Option<Engine> {
        use crate::engine::{Record, StoredCircle};
        type Held = BTreeMap<[u8; 32], (Vec<u8>, u64)>;
        let mut frames: BTreeMap<CircleId, Held> = BTreeMap::new();
        for r in &self.nodes[i].records {
            match r {
                Record::Frame { circle, id, bytes, expires_at_ms } => {
                    frames.entry(*circle).or_default().insert(*id, (bytes.clone(), *expires_at_ms));
                }
                Record::DeleteFrame { circle, id } => {
                    frames.entry(*circle).or_default().remove(id);
                }
                _ => {}
            }
        }
        let engine = &self.nodes[i].engine;
        let now = self.now;
        let stored: Vec<StoredCircle> = engine
            .circle_ids()
            .into_iter()
            .filter_map(|c| {
                Some(StoredCircle {
                    snapshot: engine.export_circle(&c)?,
                    chains: Vec::new(),
                    messages: engine.circle(&c)?.history().into_iter().cloned().collect(),
                    // What the store still holds: unexpired frames.
                    frames: frames
                        .remove(&c)
                        .unwrap_or_default()
                        .into_values()
                        .filter(|(_, expires)| *expires > now)
                        .collect(),
                })
            })
            .collect();
        let identity = IdentitySecret::from_seed(&self.identity_seeds[i]);
        Engine::restore(identity, engine.display_name().to_owned(), self.config.clone(), stored).ok()
    }

    /// Take a node off the network (it keeps its state) or bring it back.
    pub fn set_online(&mut self, i: usize, online: bool) {
        self.nodes[i].online = online;
    }

    /// Have `organiser` invite node `joiner` into `circle` and run until admitted.
    pub fn invite_and_join(&mut self, circle: CircleId, organiser: usize, joiner: usize) -> bool {
        self.command(
            organiser,
            Command::CreateInvite {
                circle,
                expires_in_ms: 3600 * 1000,
                role: crate::circle::Role::Member,
                addresses: vec![],
            },
        );
        let code = self.nodes[organiser].events.iter().rev().find_map(|e| match e {
            Event::InviteCreated { code, .. } => Some(code.clone()),
            _ => None,
        });
        let Some(code) = code else { return false };
        self.run_for(2000);
        self.command(joiner, Command::Join { code });
        for _ in 0..60 {
            self.run_for(1000);
            if self.nodes[joiner].engine.circle(&circle).is_some() {
                return true;
            }
        }
        false
    }

    /// The circle id from node `i`'s most recent `CircleCreated` event.
    pub fn created_circle(&self, i: usize) -> Option<CircleId> {
        self.nodes[i].events.iter().rev().find_map(|e| match e {
            Event::CircleCreated { circle, .. } => Some(*circle),
            _ => None,
        })
    }
}
