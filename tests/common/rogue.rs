//! An in-process peer for adversarial tests against real daemons: a kolo
//! engine driven over a real libp2p swarm (`kolo::net`), like a node but
//! without a profile and with hooks to do what an attacker with the same
//! keys could do: publish raw frames on the circle topic, send raw direct
//! frames, seal arbitrary plaintext under its own chain, craft pairwise
//! handshakes. It joins a circle the honest way (an invite code), or only
//! enters the closed network (`outsider`). Everything it received is
//! recorded. Runs on its own tokio runtime thread; stops when dropped.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kolo::circle::{CircleId, InviteCode};
use kolo::engine::{Command, Engine, EngineConfig, Event, Input, NetworkAccess, Output, PeerRef};
use kolo::entropy::OsEntropy;
use kolo::identity::IdentitySecret;
use kolo::net::{CircleNetConfig, CircleNetwork, NetCommand, NetEvent, NetEventKind, spawn_circle};
use libp2p::{Multiaddr, PeerId};
use tokio::sync::mpsc;

/// What the rogue saw, shared with the test thread.
#[derive(Default)]
pub struct Seen {
    pub events: Vec<Event>,
    /// Every frame received: (direct?, bytes).
    pub frames: Vec<(bool, Vec<u8>)>,
    pub connected: HashSet<PeerId>,
    pub disconnects: usize,
    /// Frames the flood got onto the network queue.
    pub flood_sent: usize,
    /// Catch-up requests answered with `Loop::answer_requests_with`.
    pub answered: usize,
    /// Where its swarm listens (direct and relayed addresses).
    pub listening: Vec<Multiaddr>,
    /// Listen addresses peers told it (identify), per peer.
    pub addresses: Vec<(PeerId, Vec<Multiaddr>)>,
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

/// The rogue's side: engine, network, peers.
pub struct Loop {
    pub engine: Engine,
    pub rng: OsEntropy,
    pub net: Option<CircleNetwork>,
    pub circle: Option<CircleId>,
    net_tx: mpsc::Sender<NetEvent>,
    handles: HashMap<PeerId, PeerRef>,
    peers: HashMap<PeerRef, PeerId>,
    pub seen: Arc<Mutex<Seen>>,
    /// Answer gossip validation honestly (a member that relays) or not.
    pub validate: bool,
    /// When set, every catch-up request a peer sends us is also answered
    /// with these bytes (a crafted SYNC_RESPONSE: since v2 only answers to
    /// a peer's own request are taken).
    pub answer_requests_with: Option<Vec<u8>>,
    /// Answer catch-up requests (an honest member does; an attacker
    /// keeping what others sent from a peer does not).
    pub serve_catch_up: bool,
    /// The link access its transport reads (SPEC §2a).
    access: Option<kolo::net::link::SharedAccess>,
}

type Job = Box<dyn FnOnce(&mut Loop) + Send>;

pub struct Rogue {
    jobs: mpsc::UnboundedSender<Job>,
    pub seen: Arc<Mutex<Seen>>,
    pub identity_seed: [u8; 32],
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Loop {
    pub fn handle(&mut self, input: Input) {
        let outputs = self.engine.handle(now_ms(), input, &mut self.rng);
        self.route(outputs);
    }

    pub fn route(&mut self, outputs: Vec<Output>) {
        for o in outputs {
            match o {
                Output::Publish { topic, frame, .. } => self.command(NetCommand::Publish { topic, frame }),
                Output::SendDirect { peer, frame, .. } => {
                    let catch_up = frame.get(1) == Some(&kolo::wire::frame_type::SYNC_RESPONSE);
                    if let Some(p) = self.peers.get(&peer).copied()
                        && (self.serve_catch_up || !catch_up)
                    {
                        self.command(NetCommand::SendDirect { peer: p, frame });
                    }
                }
                Output::Subscribe { circle, access, topics } => {
                    self.ensure_net(circle, access, Vec::new());
                    self.command(NetCommand::Subscribe { topics, members: Vec::new() });
                }
                Output::Dial { circle, access, addresses } => {
                    let addrs: Vec<Multiaddr> = addresses.iter().filter_map(|a| a.parse().ok()).collect();
                    self.ensure_net(circle, access, addrs.clone());
                    self.command(NetCommand::Dial(addrs));
                }
                Output::Event(e) => {
                    // Like a real node: a joiner's links are served only
                    // the join (`net::gate`), so link again as a member.
                    if matches!(e, Event::Joined { .. }) {
                        self.command(NetCommand::Relink);
                    }
                    self.seen.lock().unwrap().events.push(e)
                }
                Output::Access { access, .. } => {
                    if let Some(shared) = &self.access {
                        shared.set(access);
                    }
                }
                Output::Unsubscribe { .. } | Output::Persist(_) | Output::Verdict { .. } => {}
            }
        }
    }

    pub fn command(&self, c: NetCommand) {
        if let Some(net) = &self.net {
            // Bounded queue: a full one drops, as a real node's does.
            let _ = net.commands.try_send(c);
        }
    }

    /// Start the rogue's swarm, or (like a real node) give its transport
    /// the engine's current link access (SPEC §2a).
    pub fn ensure_net(&mut self, circle: CircleId, access: NetworkAccess, dial: Vec<Multiaddr>) {
        let access = self.engine.circle(&circle).map(|s| s.network_access()).unwrap_or(access);
        if let Some(shared) = &self.access {
            shared.set(access);
            return;
        }
        let shared = kolo::net::link::LinkShared::new(access);
        self.access = Some(shared.clone());
        let config = CircleNetConfig {
            circle,
            access: shared,
            listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
            dial,
            mdns: false,
            tor: None,
            ledger: Default::default(),
        };
        self.net = Some(spawn_circle(config, self.net_tx.clone()).unwrap());
        self.circle = Some(circle);
    }

    fn handle_of(&mut self, peer: PeerId) -> PeerRef {
        if let Some(h) = self.handles.get(&peer) {
            return *h;
        }
        let h = self.handles.len() as PeerRef + 1;
        self.handles.insert(peer, h);
        self.peers.insert(h, peer);
        h
    }

    fn on_net(&mut self, event: NetEvent) {
        let circle = event.circle;
        match event.kind {
            NetEventKind::Gossip { frame, message_id, source } => {
                self.seen.lock().unwrap().frames.push((false, frame.clone()));
                let outputs = self.engine.handle(now_ms(), Input::Frame { circle, bytes: frame }, &mut self.rng);
                let verdict = outputs.iter().find_map(|o| match o {
                    Output::Verdict { verdict, .. } => Some(*verdict),
                    _ => None,
                });
                self.route(outputs);
                if self.validate {
                    let verdict = verdict.unwrap_or(kolo::engine::Verdict::Ignore);
                    self.command(NetCommand::Validate { message_id, source, verdict });
                }
            }
            NetEventKind::Direct { peer, frame } => {
                self.seen.lock().unwrap().frames.push((true, frame.clone()));
                if frame.get(1) == Some(&0x20)
                    && let Some(answer) = self.answer_requests_with.clone()
                {
                    self.command(NetCommand::SendDirect { peer, frame: answer });
                    self.seen.lock().unwrap().answered += 1;
                }
                let peer = self.handle_of(peer);
                self.handle(Input::Direct { circle, peer, bytes: frame });
            }
            NetEventKind::PeerConnected { peer, .. } => {
                self.seen.lock().unwrap().connected.insert(peer);
                let handle = self.handle_of(peer);
                self.handle(Input::PeerAvailable { circle, peer: handle });
            }
            NetEventKind::PeerDisconnected { peer } => {
                let mut seen = self.seen.lock().unwrap();
                seen.connected.remove(&peer);
                seen.disconnects += 1;
            }
            NetEventKind::Listening { address } => self.seen.lock().unwrap().listening.push(address),
            NetEventKind::PeerAddresses { peer, addresses } => {
                self.seen.lock().unwrap().addresses.push((peer, addresses));
            }
            _ => {}
        }
    }

    /// Publish raw bytes on the circle's current topic.
    pub fn publish_raw(&mut self, frame: Vec<u8>) {
        let Some(topic) = self.circle.and_then(|c| self.engine.circle(&c)).map(|c| c.topic()) else {
            return;
        };
        self.command(NetCommand::Publish { topic, frame });
    }

    /// Flood the current topic with up to `count` frames for at most
    /// `limit`, as fast as the network queue takes them: half garbage
    /// (random type and length), half valid-looking group frames (right
    /// layout and size, made-up key ids). Runs in the background.
    pub fn flood(&mut self, count: usize, limit: Duration) {
        let (Some(net), Some(topic)) = (&self.net, self.circle.and_then(|c| self.engine.circle(&c)).map(|c| c.topic()))
        else {
            return;
        };
        let commands = net.commands.clone();
        let seen = self.seen.clone();
        tokio::spawn(async move {
            use kolo::entropy::Entropy;
            let start = std::time::Instant::now();
            let mut rng = OsEntropy;
            for i in 0..count {
                if start.elapsed() > limit {
                    break;
                }
                let mut len = [0u8; 2];
                rng.fill(&mut len);
                let frame = if i % 2 == 0 {
                    let mut f = vec![0u8; 26 + 256 + 16 + 64];
                    rng.fill(&mut f);
                    f[0] = 1;
                    f[1] = 1;
                    f
                } else {
                    let mut f = vec![0u8; 2 + usize::from(u16::from_be_bytes(len)) % 2000];
                    rng.fill(&mut f);
                    f[0] = 1;
                    f
                };
                let publish = NetCommand::Publish { topic: topic.clone(), frame };
                if tokio::time::timeout(Duration::from_secs(1), commands.send(publish)).await.is_err() {
                    continue;
                }
                seen.lock().unwrap().flood_sent += 1;
            }
        });
    }

    /// Send a raw direct frame to every connected peer.
    pub fn direct_to_all(&mut self, frame: &[u8]) {
        let peers: Vec<PeerId> = self.seen.lock().unwrap().connected.iter().copied().collect();
        for p in peers {
            self.command(NetCommand::SendDirect { peer: p, frame: frame.to_vec() });
        }
    }
}

impl Rogue {
    /// A fresh identity called `name`, not yet in any circle.
    pub fn new(name: &str) -> Rogue {
        let identity = IdentitySecret::generate(&mut OsEntropy);
        let identity_seed = identity.expose_seed();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (jobs, mut job_rx) = mpsc::unbounded_channel::<Job>();
        let shared = seen.clone();
        let name = name.to_owned();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            runtime.block_on(async move {
                let (net_tx, mut net_rx) = mpsc::channel(4096);
                let mut l = Loop {
                    engine: Engine::new(identity, name, EngineConfig::default()),
                    rng: OsEntropy,
                    net: None,
                    circle: None,
                    net_tx,
                    handles: HashMap::new(),
                    peers: HashMap::new(),
                    seen: shared,
                    validate: true,
                    answer_requests_with: None,
                    serve_catch_up: true,
                    access: None,
                };
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                let mut rounds = 0u64;
                loop {
                    tokio::select! {
                        job = job_rx.recv() => match job {
                            Some(job) => job(&mut l),
                            None => break,
                        },
                        Some(event) = net_rx.recv() => l.on_net(event),
                        _ = tick.tick() => {
                            l.handle(Input::Tick);
                            rounds += 1;
                            // Catch up with a connected peer now and then, as a node does.
                            if rounds.is_multiple_of(5) && let Some(circle) = l.circle {
                                let peers: Vec<PeerId> = l.seen.lock().unwrap().connected.iter().copied().collect();
                                if let Some(p) = peers.get(rounds as usize % peers.len().max(1)) {
                                    let h = l.handle_of(*p);
                                    l.handle(Input::PeerAvailable { circle, peer: h });
                                }
                            }
                        }
                    }
                }
                if let Some(net) = &l.net {
                    let _ = net.commands.try_send(NetCommand::Shutdown);
                }
            });
        });
        Rogue { jobs, seen, identity_seed, thread: Some(thread) }
    }

    /// Run `f` on the rogue's loop and wait for its result.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce(&mut Loop) -> T + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        self.jobs
            .send(Box::new(move |l: &mut Loop| {
                let _ = tx.send(f(l));
            }))
            .unwrap();
        rx.recv_timeout(Duration::from_secs(60)).expect("the rogue loop answered")
    }

    pub fn member_id(&self) -> kolo::identity::MemberId {
        IdentitySecret::from_seed(&self.identity_seed).member_id()
    }

    /// Join with an invite code, as an honest joiner would; waits until admitted.
    pub fn join(&self, code: &str) -> CircleId {
        let code = code.to_owned();
        self.run(move |l| l.handle(Input::Command(Command::Join { code })));
        for _ in 0..600 {
            let joined = self.run(|l| l.circle.filter(|c| l.engine.circle(c).is_some()));
            if let Some(c) = joined {
                return c;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the rogue was not admitted");
    }

    /// Enter the circle's closed network with the invite's network key only
    /// (a leaked invite, never used to join).
    pub fn outsider(&self, code: &str) {
        let invite = InviteCode::parse(code).unwrap();
        let addrs: Vec<Multiaddr> = invite.addresses.iter().filter_map(|a| a.parse().ok()).collect();
        self.run(move |l| {
            l.ensure_net(invite.circle_id, NetworkAccess::joining(&invite), addrs.clone());
            l.command(NetCommand::Dial(addrs));
        });
    }

    pub fn connected(&self) -> usize {
        self.seen.lock().unwrap().connected.len()
    }

    /// Texts the rogue's own engine shows for its circle.
    pub fn texts(&self) -> Vec<String> {
        self.run(|l| {
            let Some(c) = l.circle.and_then(|c| l.engine.circle(&c)) else {
                return Vec::new();
            };
            c.history().iter().map(|m| m.text.clone()).collect()
        })
    }
}

impl Drop for Rogue {
    fn drop(&mut self) {
        let (jobs, _) = mpsc::unbounded_channel();
        drop(std::mem::replace(&mut self.jobs, jobs));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
