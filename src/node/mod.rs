//! The node: the one running instance of a profile. It owns the engine,
//! the encrypted profile and one network per circle, and drives them:
//! network events and API requests become engine inputs; engine outputs
//! are persisted first (one transaction per input) and only then sent or
//! answered, so nothing is acknowledged before it is durable. The one
//! output that does not wait for the write is the verdict on a gossip
//! frame (relay it or not, and the relaying peer's score): relaying
//! acknowledges nothing, and every member checks the frame itself.
//!
//! Owns: the mapping between the engine's opaque peer handles and libp2p
//! peer ids, which member is reachable at which transport id (learned from
//! encrypted presence messages), per-circle listen ports and address books
//! (kept in the profile so a restarted node comes back where members
//! expect it), catch-up scheduling, and the answers to control requests.

mod peers;
pub mod requests;

use crate::clock::now_ms;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use libp2p::gossipsub::MessageId;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::mpsc;

use crate::api::{Answer, Failure, Pending, Reply};
use crate::circle::{CircleId, MembershipChange};
use crate::engine::{Command, Engine, EngineConfig, Event, Input, NetworkAccess, Output, Record, Verdict};
use crate::entropy::OsEntropy;
use crate::net::{CircleNetConfig, CircleNetwork, NetCommand, NetEvent, NetEventKind, spawn_circle};
use crate::store::Profile;
use peers::PeerBook;

/// How often members who are connected compare notes (catch-up).
const SYNC_EVERY: Duration = Duration::from_secs(5);
/// How often presence is re-announced and lost members redialled.
const PRESENCE_EVERY: Duration = Duration::from_secs(300);
const REDIAL_EVERY: Duration = Duration::from_secs(30);
const PURGE_EVERY: Duration = Duration::from_secs(10);
/// How long after a removal we close the links of peers that no current
/// member's presence names (SPEC §2a): time for the rekey to finish and
/// for members' presence to arrive. An honest peer closed by mistake links
/// again, on the new key or with a member proof.
const SWEEP_AFTER: Duration = Duration::from_secs(20);
/// Most network events handled together; their frames share one profile
/// transaction. Small, because the first frame's message is shown only
/// when the whole batch is saved.
const MAX_NET_BATCH: usize = 32;
/// How long `join` waits for a member to admit us.
const JOIN_TIMEOUT: Duration = Duration::from_secs(90);

/// What a watcher (the terminal UI) hears from the node.
#[derive(Clone, Debug)]
pub enum NodeEvent {
    Engine(Box<Event>),
    /// Connections in a circle changed (online state, direct or relayed).
    Peers {
        circle: CircleId,
    },
    /// Frames missed while offline are arriving from another member.
    CatchUp {
        circle: CircleId,
    },
}

#[derive(Clone)]
pub struct NodeConfig {
    /// Where circle networks listen; the port is per circle and remembered.
    pub listen: Vec<Multiaddr>,
    pub mdns: bool,
    /// Addresses to give out in invites and presence instead of the ones we
    /// listen on (a port forward, or the demo's recording relay).
    pub announce: Vec<Multiaddr>,
    pub engine: EngineConfig,
    /// How new circles' networks connect; a circle keeps the transport it
    /// started with (remembered in the profile).
    pub transport: Transport,
}

/// A circle network's transport.
#[derive(Clone, Default)]
pub enum Transport {
    /// TCP straight to members' addresses (LAN, trusted networks): members
    /// and the networks in between see each other's IP addresses.
    #[default]
    Direct,
    /// Onion services through this tor: nobody learns anyone's IP address.
    Tor(crate::net::tor::TorRuntime),
}

impl Transport {
    pub fn name(&self) -> &'static str {
        match self {
            Transport::Direct => "direct",
            Transport::Tor(_) => "tor",
        }
    }
}

impl Default for NodeConfig {
    fn default() -> Self {
        let any: Multiaddr = "/ip4/0.0.0.0/tcp/0".parse().unwrap_or_else(|_| Multiaddr::empty());
        Self {
            listen: vec![any],
            mdns: false,
            announce: Vec::new(),
            engine: EngineConfig::default(),
            transport: Transport::Direct,
        }
    }
}

/// Which transport a circle's network uses: the one remembered for it; for
/// a circle from before transports were remembered (it has a saved TCP
/// port), direct; for a new circle, the node's.
fn circle_transport(saved: Option<&str>, saved_port: u16, node: &str) -> String {
    match saved {
        Some(name) => name.to_string(),
        None if saved_port != 0 => "direct".to_string(),
        None => node.to_string(),
    }
}

/// A gossip frame's swarm message id and the peer that relayed it.
type Relay = (CircleId, MessageId, PeerId);

/// A network event sorted for [`Node::on_net_batch`].
enum Arrival {
    /// A frame, as the engine's input.
    Frame(Input, Option<Relay>),
    /// Anything else, handled on its own.
    Other(NetEvent),
    /// For a circle we no longer run.
    Gone,
}

/// An invite request held until its circle's network listens.
type InviteWaiter = (CircleId, crate::api::Request, Reply, Instant);

struct JoinWaiter {
    reply: Reply,
    deadline: Instant,
}

pub struct Node {
    engine: Engine,
    profile: Profile,
    rng: OsEntropy,
    config: NodeConfig,
    networks: HashMap<CircleId, CircleNetwork>,
    /// Each circle's link access (SPEC §2a), shared with its swarm's
    /// transport and updated as the membership and keys change.
    accesses: HashMap<CircleId, crate::net::link::SharedAccess>,
    books: HashMap<CircleId, PeerBook>,
    net_tx: mpsc::Sender<NetEvent>,
    net_rx: Option<mpsc::Receiver<NetEvent>>,
    join_waiters: HashMap<CircleId, Vec<JoinWaiter>>,
    /// Invite requests waiting for their circle's network to listen, so the
    /// code can carry a reachable address.
    invite_waiters: Vec<InviteWaiter>,
    presence_due: HashSet<CircleId>,
    /// Circles whose unattributed links are to be closed, and when.
    sweeps: HashMap<CircleId, Instant>,
    /// Events for anyone watching (the terminal UI); bounded, lossy.
    watchers: Vec<mpsc::Sender<NodeEvent>>,
    /// Our safety number, computed once: it costs 1,024 SHA-512 rounds
    /// and `status` is asked for often (the UI, scripts polling it).
    own_safety_number: String,
    /// Inbound connections across all our circles' swarms (`net::limits`).
    connections: crate::net::limits::ConnectionLedger,
    stop: bool,
}

impl Node {
    pub fn new(engine: Engine, profile: Profile, config: NodeConfig) -> Self {
        // Raise the open-files limit and fix the connection caps under it
        // before any swarm listens (`net::limits`).
        let caps = crate::net::limits::caps();
        tracing::debug!("inbound connection caps: {caps:?}");
        let (net_tx, net_rx) = mpsc::channel(1024);
        let own_safety_number = crate::identity::safety_number(&engine.member_id()).to_string();
        Self {
            own_safety_number,
            connections: Default::default(),
            engine,
            profile,
            rng: OsEntropy,
            config,
            networks: HashMap::new(),
            accesses: HashMap::new(),
            books: HashMap::new(),
            net_tx,
            net_rx: Some(net_rx),
            join_waiters: HashMap::new(),
            invite_waiters: Vec::new(),
            presence_due: HashSet::new(),
            sweeps: HashMap::new(),
            watchers: Vec::new(),
            stop: false,
        }
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Receive every event from now on (bounded; a slow watcher misses events).
    pub fn watch(&mut self) -> mpsc::Receiver<NodeEvent> {
        let (tx, rx) = mpsc::channel(1024);
        self.watchers.push(tx);
        rx
    }

    /// Run until a `Shutdown` request or until `api` closes.
    pub async fn run(mut self, mut api: mpsc::Receiver<Pending>) {
        let Some(mut net_rx) = self.net_rx.take() else {
            return;
        };
        let startup = self.engine.startup_outputs();
        self.route(startup);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let (mut last_sync, mut last_presence, mut last_redial, mut last_purge) =
            (Instant::now(), Instant::now(), Instant::now(), Instant::now());
        while !self.stop {
            tokio::select! {
                Some(event) = net_rx.recv() => {
                    // Whatever else has already arrived is handled with it,
                    // frames in one profile transaction (see `on_net_batch`).
                    let mut batch = vec![event];
                    while batch.len() < MAX_NET_BATCH {
                        match net_rx.try_recv() {
                            Ok(e) => batch.push(e),
                            Err(_) => break,
                        }
                    }
                    self.on_net_batch(batch);
                }
                request = api.recv() => match request {
                    Some((request, reply)) => self.on_request(request, reply),
                    None => break,
                },
                _ = tick.tick() => {
                    self.handle(Input::Tick);
                    self.announce_due_presence();
                    self.sweep_due_links();
                    self.expire_join_waiters();
                    if last_sync.elapsed() >= SYNC_EVERY {
                        last_sync = Instant::now();
                        self.sync_round();
                        self.redial_joins();
                    }
                    if last_presence.elapsed() >= PRESENCE_EVERY {
                        last_presence = Instant::now();
                        self.presence_due.extend(self.networks.keys().copied());
                    }
                    if last_redial.elapsed() >= REDIAL_EVERY {
                        last_redial = Instant::now();
                        self.redial();
                    }
                    if last_purge.elapsed() >= PURGE_EVERY {
                        last_purge = Instant::now();
                        if let Err(e) = self.profile.purge_expired(now_ms(), &mut self.rng) {
                            tracing::error!("purging expired messages failed: {e}");
                        }
                    }
                }
            }
        }
        for net in self.networks.values() {
            let _ = net.commands.try_send(NetCommand::Shutdown);
        }
    }

    /// Feed the engine, persist what it asks (one transaction), then act.
    fn handle(&mut self, input: Input) -> Vec<Event> {
        self.handle_all(vec![(input, None)])
    }

    /// Feed the engine several inputs, persist everything they asked for in
    /// one transaction, and only then act on their other outputs. A burst
    /// of frames (the key frames after a removal, a catch-up answer
    /// arriving with live traffic) so costs one commit instead of one each.
    ///
    /// For a gossip frame (`relay`: the swarm's message id and the peer
    /// that passed it on), the engine's verdict goes back to the swarm as
    /// soon as the engine has judged the frame, before the profile write.
    /// Forwarding then waits for the signature check and decryption only,
    /// as in plain gossipsub it waits for the signature check, not for our
    /// own database commit (on disk, an fsync). A frame the engine rejects
    /// or ignores is still never relayed, and the peer is scored on the
    /// engine's verdict alone. If the write then fails, the frame has been
    /// relayed (every member checks it for itself) but is not shown, and
    /// the engine returns to what is saved; catch-up fetches it again later.
    fn handle_all(&mut self, inputs: Vec<(Input, Option<Relay>)>) -> Vec<Event> {
        let mut records: Vec<Record> = Vec::new();
        let mut rest = Vec::new();
        for (input, relay) in inputs {
            let mut verdict = None;
            // A direct frame (catch-up) the engine refuses as every member
            // would counts against the peer that sent it, as gossip does.
            let direct_from = match &input {
                Input::Direct { circle, peer, .. } => Some((*circle, *peer)),
                _ => None,
            };
            let mut direct_rejects = 0u32;
            for o in self.engine.handle(now_ms(), input, &mut self.rng) {
                match o {
                    Output::Persist(r) => records.push(r),
                    Output::Verdict { verdict: v, .. } => {
                        verdict = Some(v);
                        if v == Verdict::Reject {
                            direct_rejects = direct_rejects.saturating_add(1);
                        }
                    }
                    other => rest.push(other),
                }
            }
            if let Some((circle, handle)) = direct_from
                && direct_rejects > 0
                && let Some(peer) = self.books.get(&circle).and_then(|b| b.peer_of(handle))
            {
                self.send_net(&circle, NetCommand::Strike { peer, count: direct_rejects });
            }
            if let Some((circle, message_id, source)) = relay {
                // The engine judges every frame; no verdict would be a bug: do
                // not relay, do not blame the peer.
                let verdict = verdict.unwrap_or(Verdict::Ignore);
                self.send_net(&circle, NetCommand::Validate { message_id, source, verdict });
            }
        }
        let mut events = Vec::new();
        if let Err(e) = self.profile.apply(&records, &self.engine, &mut self.rng) {
            // Nothing is sent or acknowledged when the profile could not record it,
            // and the engine forgets it too (see `Engine::reload`).
            tracing::error!("profile write failed: {e}");
            self.return_to_saved_state();
            events.push(Event::Error { reason: format!("could not save to the profile: {e}") });
            return events;
        }
        events.extend(self.route(rest));
        events
    }

    /// After a failed write: rebuild the engine's circles from the profile.
    /// If even that fails, stop rather than run on state that is not saved.
    fn return_to_saved_state(&mut self) {
        let reloaded = match self.profile.load_circles() {
            Ok(stored) => self.engine.reload(stored).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = reloaded {
            tracing::error!("could not re-read the profile after a failed write, stopping: {e}");
            self.stop = true;
        }
    }

    /// Carry out network outputs; returns the events among them.
    fn route(&mut self, outputs: Vec<Output>) -> Vec<Event> {
        let mut events = Vec::new();
        for output in outputs {
            match output {
                Output::Publish { circle, topic, frame, recipient } => {
                    // A pairwise frame goes straight to its recipient when we
                    // are connected to them: the other members need no copy
                    // (after a removal that is n(n-1) frames instead of each
                    // reaching all n members). Otherwise it travels on the
                    // topic, where members keep it as the recipient's mailbox.
                    let book = self.books.get(&circle);
                    let peer = recipient.and_then(|m| book?.connected_peer_of_member(&m));
                    let command = match peer {
                        Some(peer) => NetCommand::Deliver { peer, topic, frame },
                        None => NetCommand::Publish { topic, frame },
                    };
                    self.send_net(&circle, command);
                }
                Output::SendDirect { circle, peer, frame } => {
                    tracing::debug!("sending direct frame type {:?}, {} bytes", frame.get(1), frame.len());
                    if let Some(peer) = self.books.get(&circle).and_then(|b| b.peer_of(peer)) {
                        self.send_net(&circle, NetCommand::SendDirect { peer, frame });
                    }
                }
                Output::Subscribe { circle, access, topics } => {
                    self.ensure_network(circle, access, Vec::new());
                    let members = self.connected_roster_peers(&circle);
                    self.send_net(&circle, NetCommand::Subscribe { topics, members });
                }
                Output::Access { circle, access } => self.refresh_access(&circle, Some(access)),
                Output::Unsubscribe { circle } => {
                    if let Some(net) = self.networks.remove(&circle) {
                        let _ = net.commands.try_send(NetCommand::Shutdown);
                    }
                    self.books.remove(&circle);
                    self.accesses.remove(&circle);
                }
                Output::Dial { circle, access, addresses } => {
                    let addrs: Vec<Multiaddr> = addresses.iter().filter_map(|a| a.parse().ok()).collect();
                    self.ensure_network(circle, access, addrs.clone());
                    if let Some(book) = self.books.get_mut(&circle) {
                        book.bootstrap = addrs.clone();
                    }
                    self.send_net(&circle, NetCommand::Dial(addrs));
                }
                Output::Persist(_) => {}
                // Verdicts go to the swarm from `handle_all`; elsewhere
                // (catch-up) there is no relay to judge.
                Output::Verdict { .. } => {}
                Output::Event(e) => {
                    self.on_engine_event(&e);
                    events.push(e);
                }
            }
        }
        events
    }

    /// The connected peers of the circle's current members (as far as they
    /// told us their transport ids).
    fn connected_roster_peers(&self, circle: &CircleId) -> Vec<PeerId> {
        let (Some(book), Some(state)) = (self.books.get(circle), self.engine.circle(circle)) else {
            return Vec::new();
        };
        state.log().members().iter().filter_map(|r| book.connected_peer_of_member(&r.id)).collect()
    }

    fn send_net(&self, circle: &CircleId, command: NetCommand) {
        if let Some(net) = self.networks.get(circle)
            && let Err(e) = net.commands.try_send(command)
        {
            // A full queue is survivable: catch-up repairs what was not sent.
            tracing::warn!("network queue for a circle is full or closed: {e}");
        }
    }

    /// Who may link to `circle`'s network: the engine's view, or `access`
    /// while the engine has no circle yet (we are joining).
    fn refresh_access(&mut self, circle: &CircleId, access: Option<NetworkAccess>) {
        let Some(access) = self.engine.circle(circle).map(|s| s.network_access()).or(access) else {
            return;
        };
        if let Some(shared) = self.accesses.get(circle) {
            shared.set(access);
        }
    }

    fn ensure_network(&mut self, circle: CircleId, access: NetworkAccess, dial: Vec<Multiaddr>) {
        if self.networks.contains_key(&circle) {
            self.refresh_access(&circle, Some(access));
            return;
        }
        let mut saved = peers::NetInfo::load(&self.profile, &circle);
        let tor = match self.circle_tor(&circle, &mut saved) {
            Ok(tor) => tor,
            Err(e) => {
                tracing::error!("{e}");
                self.tell_watchers(NodeEvent::Engine(Box::new(Event::Error { reason: e })));
                return;
            }
        };
        let listen = self.config.listen.iter().map(|a| peers::with_port(a, saved.port)).collect();
        let mut dial = dial;
        dial.extend(saved.peers.iter().filter_map(|a| a.parse().ok()));
        let ledger = self.connections.clone();
        let shared = crate::net::link::LinkShared::new(access);
        let config =
            CircleNetConfig { circle, access: shared.clone(), listen, dial, mdns: self.config.mdns, tor, ledger };
        match spawn_circle(config, self.net_tx.clone()) {
            Ok(net) => {
                self.accesses.insert(circle, shared);
                self.refresh_access(&circle, None);
                let mut book = PeerBook::new(net.peer_id);
                book.saved = saved;
                self.books.insert(circle, book);
                self.networks.insert(circle, net);
            }
            Err(e) => tracing::error!("could not start a circle network: {e}"),
        }
    }

    /// The circle's transport: what it was first started with (saved), or
    /// this node's for a new circle; a circle that existed before
    /// transports were remembered (it has a saved port) stays direct. A
    /// Tor circle never falls back to direct: without tor it does not run.
    fn circle_tor(
        &mut self,
        circle: &CircleId,
        saved: &mut peers::NetInfo,
    ) -> Result<Option<crate::net::CircleTor>, String> {
        let chosen = circle_transport(saved.transport.as_deref(), saved.port, self.config.transport.name());
        let mut changed = saved.transport.as_deref() != Some(chosen.as_str());
        saved.transport = Some(chosen.clone());
        let result = match (chosen.as_str(), &self.config.transport) {
            ("direct", _) => Ok(None),
            ("tor", Transport::Tor(runtime)) => {
                let seed = match saved.onion_key {
                    Some(seed) => seed,
                    None => {
                        let mut seed = [0u8; 32];
                        crate::entropy::Entropy::fill(&mut self.rng, &mut seed);
                        saved.onion_key = Some(seed);
                        changed = true;
                        seed
                    }
                };
                Ok(Some(crate::net::CircleTor {
                    runtime: runtime.clone(),
                    onion_key: crate::net::tor::OnionKey::from_seed(seed),
                    auth: std::sync::Arc::new(crate::net::tor::ClientAuth::for_circle(circle)),
                    isolation: crate::net::tor::circle_isolation(circle),
                    service: None,
                }))
            }
            ("tor", Transport::Direct) => {
                Err("this circle uses Tor: start kolo with --transport tor to connect to it".to_string())
            }
            (other, _) => Err(format!("unknown transport {other:?} remembered for a circle")),
        };
        if changed {
            saved.save(&mut self.profile, circle);
        }
        result
    }

    /// Network events in arrival order; consecutive frames are handled
    /// together ([`handle_all`](Self::handle_all)), other events one by one
    /// between them.
    fn on_net_batch(&mut self, events: Vec<NetEvent>) {
        let mut frames: Vec<(Input, Option<Relay>)> = Vec::new();
        for event in events {
            match self.sort_arrival(event) {
                Arrival::Frame(input, relay) => frames.push((input, relay)),
                Arrival::Gone => {}
                Arrival::Other(other) => {
                    if !frames.is_empty() {
                        self.handle_all(std::mem::take(&mut frames));
                    }
                    self.on_net(other);
                }
            }
        }
        if !frames.is_empty() {
            self.handle_all(frames);
        }
    }

    /// A frame event becomes its engine input; any other event is handed back.
    fn sort_arrival(&mut self, event: NetEvent) -> Arrival {
        let circle = event.circle;
        match event.kind {
            NetEventKind::Gossip { frame, message_id, source } => {
                if !self.books.contains_key(&circle) {
                    return Arrival::Gone;
                }
                Arrival::Frame(Input::Frame { circle, bytes: frame }, Some((circle, message_id, source)))
            }
            NetEventKind::Direct { peer, frame } => {
                tracing::debug!("direct frame type {:?}, {} bytes", frame.get(1), frame.len());
                let Some(book) = self.books.get_mut(&circle) else {
                    return Arrival::Gone;
                };
                let peer = book.handle_of(peer);
                if frame.get(1) == Some(&crate::wire::frame_type::SYNC_RESPONSE) {
                    self.tell_watchers(NodeEvent::CatchUp { circle });
                }
                Arrival::Frame(Input::Direct { circle, peer, bytes: frame }, None)
            }
            kind => Arrival::Other(NetEvent { circle, kind }),
        }
    }

    fn on_net(&mut self, event: NetEvent) {
        let circle = event.circle;
        let Some(book) = self.books.get_mut(&circle) else {
            return;
        };
        match event.kind {
            // Frames go through `on_net_batch`.
            NetEventKind::Gossip { .. } | NetEventKind::Direct { .. } => {}
            NetEventKind::PeerConnected { peer, relayed, .. } => {
                book.connected.insert(peer, relayed);
                let handle = book.handle_of(peer);
                self.handle(Input::PeerAvailable { circle, peer: handle });
                self.tell_watchers(NodeEvent::Peers { circle });
            }
            NetEventKind::PeerDisconnected { peer } => {
                book.connected.remove(&peer);
                self.tell_watchers(NodeEvent::Peers { circle });
            }
            NetEventKind::LinkChanged { peer, relayed } => {
                book.connected.insert(peer, relayed);
                self.tell_watchers(NodeEvent::Peers { circle });
            }
            NetEventKind::Listening { address } => {
                if !book.listen.contains(&address) {
                    book.listen.push(address.clone());
                }
                let relayed = address.iter().any(|p| matches!(p, libp2p::multiaddr::Protocol::P2pCircuit));
                if !relayed
                    && let Some(port) = peers::port_of(&address)
                    && book.saved.port != port
                {
                    book.saved.port = port;
                    book.saved.save(&mut self.profile, &circle);
                }
                self.presence_due.insert(circle);
                self.release_invites(circle);
            }
            NetEventKind::PeerAddresses { peer, addresses } => {
                if book.learn_addresses(peer, &addresses) {
                    book.saved.save(&mut self.profile, &circle);
                }
            }
            NetEventKind::DialFailed { reason, refusal } => {
                tracing::debug!("dial failed");
                // The reason names the peer's address: logged only when
                // asked for explicitly (KOLO_LOG_ADDRESSES=1).
                tracing::debug!(target: "kolo_addresses", "dial failed: {reason}");
                // A joiner the members refuse at the link (SPEC §2a: its
                // invite is no longer open, and the network moved on since
                // it was made) is told so now, not after the join timeout.
                if let Some(refusal) = refusal
                    && self.engine.circle(&circle).is_none()
                {
                    for w in self.join_waiters.remove(&circle).unwrap_or_default() {
                        let _ = w.reply.send(Err(Failure::refused(refusal.error().to_string())));
                    }
                }
            }
            NetEventKind::PeerBanned { peer } => {
                book.connected.remove(&peer);
                book.banned += 1;
            }
        }
    }

    fn on_engine_event(&mut self, event: &Event) {
        match event {
            Event::Membership {
                circle,
                change: MembershipChange::Added { .. } | MembershipChange::Joined { .. },
                ..
            } => {
                // Newcomers cannot read presence sent before they joined.
                // (Other changes need none: the members who remain already
                // know where we are, and a second broadcast round from
                // every member would slow a rekey after a removal.)
                self.presence_due.insert(*circle);
                self.refresh_access(circle, None);
            }
            Event::Membership { circle, change: MembershipChange::Removed { member, .. }, .. } => {
                // Its links were admitted while it was a member; new ones
                // it cannot make (SPEC §2a).
                self.refresh_access(circle, None);
                let peer = self.books.get_mut(circle).and_then(|b| b.members.remove(member));
                if let Some(peer) = peer {
                    self.send_net(circle, NetCommand::Disconnect { peer });
                }
                // A removed member that never told its transport id (a
                // modified client) is among the links no member claims.
                self.sweeps.insert(*circle, Instant::now() + SWEEP_AFTER);
            }
            Event::Membership { circle, .. } => self.refresh_access(circle, None),
            Event::Joined { circle, name } => {
                // Our links so far are a joiner's, which members serve
                // nothing but the join (`net::gate`): link again, as a member.
                self.send_net(circle, NetCommand::Relink);
                self.presence_due.insert(*circle);
                for w in self.join_waiters.remove(circle).unwrap_or_default() {
                    let joined = crate::api::Joined { circle: crate::identity::hex(circle), name: name.clone() };
                    let _ = w.reply.send(Ok(Answer::Joined(joined)));
                }
            }
            Event::JoinFailed { circle, reason } => {
                for w in self.join_waiters.remove(circle).unwrap_or_default() {
                    let _ = w.reply.send(Err(Failure::refused(reason.clone())));
                }
            }
            Event::Presence { circle, member, transport, addresses } => {
                if let Some(book) = self.books.get_mut(circle)
                    && let Ok(peer) = PeerId::from_bytes(transport)
                {
                    book.members.insert(*member, peer);
                    let addrs: Vec<Multiaddr> = addresses.iter().filter_map(|a| a.parse().ok()).collect();
                    let known = book.connected.contains_key(&peer);
                    if book.learn_addresses(peer, &addrs) {
                        book.saved.save(&mut self.profile, circle);
                    }
                    if !known {
                        self.send_net(circle, NetCommand::Dial(addrs));
                    }
                }
            }
            // Reasons can name members: they go to the user, never to the log.
            Event::Rejected { .. } => tracing::debug!("refused a frame from the network"),
            Event::Error { .. } => tracing::debug!("a command failed"),
            _ => {}
        }
        self.tell_watchers(NodeEvent::Engine(Box::new(event.clone())));
    }

    fn tell_watchers(&mut self, event: NodeEvent) {
        self.watchers.retain(|w| !w.is_closed());
        for w in &self.watchers {
            let _ = w.try_send(event.clone());
        }
    }

    /// After a removal: close every link to a peer that is not the
    /// announced transport of a current member. Links are admitted before
    /// the peer says who it is, so this is how a removed member's old link
    /// ends when it hid its transport id.
    fn sweep_due_links(&mut self) {
        let now = Instant::now();
        let due: Vec<CircleId> = self.sweeps.iter().filter(|(_, at)| **at <= now).map(|(c, _)| *c).collect();
        for circle in due {
            self.sweeps.remove(&circle);
            let Some(state) = self.engine.circle(&circle) else { continue };
            if state.is_removed() {
                continue;
            }
            let Some(book) = self.books.get(&circle) else { continue };
            let claimed: HashSet<PeerId> =
                state.log().members().iter().filter_map(|r| book.members.get(&r.id).copied()).collect();
            let strangers: Vec<PeerId> = book.connected.keys().filter(|p| !claimed.contains(p)).copied().collect();
            if !strangers.is_empty() {
                tracing::debug!("closing {} links no member claims after a removal", strangers.len());
            }
            for peer in strangers {
                self.send_net(&circle, NetCommand::Disconnect { peer });
            }
        }
    }

    fn announce_due_presence(&mut self) {
        let due: Vec<CircleId> = self.presence_due.drain().collect();
        for circle in due {
            let Some(book) = self.books.get(&circle) else {
                continue;
            };
            if book.listen.is_empty() || self.engine.circle(&circle).is_none() {
                self.presence_due.insert(circle);
                continue;
            }
            let transport = book.local.to_bytes();
            let addresses = self.advertised(&circle);
            self.handle(Input::Command(Command::AnnouncePresence { circle, transport, addresses }));
        }
    }

    /// The addresses members should dial us on for `circle`.
    fn advertised(&self, circle: &CircleId) -> Vec<String> {
        // A Tor circle gives out its onion only, whatever else is configured.
        let onions: Vec<String> = self
            .books
            .get(circle)
            .map(|b| {
                b.listen.iter().filter(|a| crate::net::tor::onion_parts(a).is_some()).map(ToString::to_string).collect()
            })
            .unwrap_or_default();
        if !onions.is_empty() {
            return onions;
        }
        if !self.config.announce.is_empty() {
            return self.config.announce.iter().map(ToString::to_string).collect();
        }
        self.books.get(circle).map(|b| b.listen.iter().map(ToString::to_string).collect()).unwrap_or_default()
    }

    fn sync_round(&mut self) {
        let picks: Vec<(CircleId, u64)> =
            self.books.iter_mut().filter_map(|(c, b)| b.random_connected().map(|h| (*c, h))).collect();
        for (circle, peer) in picks {
            self.handle(Input::PeerAvailable { circle, peer });
        }
    }

    fn redial(&mut self) {
        let plans: Vec<(CircleId, Vec<Multiaddr>)> =
            self.books.iter().map(|(c, b)| (*c, b.addresses_to_redial())).collect();
        for (circle, addrs) in plans {
            if !addrs.is_empty() {
                self.send_net(&circle, NetCommand::Dial(addrs));
            }
        }
    }

    /// A join waits for a member to admit us: while we reach nobody in the
    /// circle's network, keep dialling (sooner than the general redial; the
    /// join gives up after `JOIN_TIMEOUT`).
    fn redial_joins(&mut self) {
        let plans: Vec<(CircleId, Vec<Multiaddr>)> = self
            .join_waiters
            .keys()
            .filter_map(|c| self.books.get(c).filter(|b| b.connected.is_empty()).map(|b| (*c, b.addresses_to_redial())))
            .collect();
        for (circle, addrs) in plans {
            if !addrs.is_empty() {
                self.send_net(&circle, NetCommand::Dial(addrs));
            }
        }
    }

    fn release_invites(&mut self, circle: CircleId) {
        let (ready, waiting): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.invite_waiters).into_iter().partition(|(c, ..)| *c == circle);
        self.invite_waiters = waiting;
        for (_, request, reply, _) in ready {
            self.on_request(request, reply);
        }
    }

    fn expire_join_waiters(&mut self) {
        let now = Instant::now();
        let (late, waiting): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.invite_waiters).into_iter().partition(|(.., at)| *at <= now);
        self.invite_waiters = waiting;
        for (_, _, reply, _) in late {
            let _ = reply.send(Err(Failure::unavailable("the circle's network is not listening on any address yet")));
        }
        for waiters in self.join_waiters.values_mut() {
            let (late, keep): (Vec<JoinWaiter>, Vec<JoinWaiter>) = waiters.drain(..).partition(|w| w.deadline <= now);
            *waiters = keep;
            for w in late {
                let _ = w.reply.send(Err(Failure::new(
                    crate::api::ErrorCode::Timeout,
                    "no member of the circle admitted us within 90 seconds; is the inviter online? kolo keeps trying \
                     for up to 10 minutes: run the same join again to wait for it",
                )));
            }
        }
        self.join_waiters.retain(|_, v| !v.is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::circle_transport;

    #[test]
    fn a_circle_keeps_its_transport() {
        // A new circle takes the node's transport.
        assert_eq!(circle_transport(None, 0, "tor"), "tor");
        assert_eq!(circle_transport(None, 0, "direct"), "direct");
        // A Tor circle stays Tor on a node started without tor (which then
        // refuses to run it), and a direct one stays direct under Tor.
        assert_eq!(circle_transport(Some("tor"), 0, "direct"), "tor");
        assert_eq!(circle_transport(Some("direct"), 4001, "tor"), "direct");
        // A circle from before transports were remembered was direct.
        assert_eq!(circle_transport(None, 4001, "tor"), "direct");
    }
}
