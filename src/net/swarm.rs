//! Building and running one circle's swarm.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::upgrade::Version;
use libp2p::gossipsub::{
    self, IdentTopic, MessageAcceptance, MessageAuthenticity, MessageId, PeerScoreParams, PeerScoreThresholds,
    TopicScoreParams, ValidationMode,
};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, Transport, connection_limits, dcutr, identify, kad, mdns, noise, ping,
    relay, tcp, yamux,
};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::NetError;
use super::codec::{DIRECT_PROTOCOL, DirectCodec};
use super::gate::MembersOnly;
use super::limits::{ConnectionLedger, InboundLimits};
use super::topic_hold::{Released, TopicHolds};
use crate::circle::CircleId;
use crate::engine::{MAX_GOSSIP_FRAME, Verdict};

/// What identify tells peers: nothing that says "kolo" or "activist".
const AGENT: &str = "node/1.0";
const PROTOCOL_VERSION: &str = "/p2p/1.0.0";
/// Direct requests a peer may make per second (burst of `DIRECT_BURST`).
const DIRECT_RATE_PER_SEC: f64 = 50.0;
const DIRECT_BURST: f64 = 200.0;
/// Kademlia among the circle's members (inside the closed network only).
const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/kolo/1/kad");
const KAD_BOOTSTRAP_EVERY: Duration = Duration::from_secs(120);
/// How many members we keep a relay reservation with, so that members who
/// cannot reach us directly still can through them.
const MAX_RESERVATIONS: usize = 2;
const RESERVE_RETRY_EVERY: Duration = Duration::from_secs(15);
/// Frames a peer may relay that we cannot judge (duplicates, frames
/// waiting for a key, refusals that depend on our own view) before further
/// ones count as invalid: an honest peer relays only what it could check,
/// so a steady stream of such frames is a flood of made-up ones.
const IGNORED_PER_SEC: f64 = 5.0;
const IGNORED_BURST: f64 = 300.0;
/// A peer that relayed this many invalid frames (decaying by
/// `STRIKE_DECAY_PER_SEC`) is disconnected and refused for `BAN_TIME`.
/// Counted by us, from the engine's verdicts, rather than read off the
/// total gossipsub score: that score also falls for honest peers that are
/// merely slow (broken IWANT promises, a GRAFT during backoff), and a
/// 100-member circle on one loaded machine cut off thousands of honest
/// links that way. 2.24 is where the invalid-delivery penalty alone
/// (-20 × n²) crosses -100: three invalid frames in quick succession.
/// Gossipsub graylists at the same point (-80 is passed at n = 3), and a
/// graylisted peer's frames are no longer validated, so the cut must not
/// wait for more.
const STRIKES_TO_BAN: f64 = 2.24;
const STRIKE_DECAY_PER_SEC: f64 = 0.99;
const BAN_TIME: Duration = Duration::from_secs(600);
/// How long a circle's swarm keeps running after it was asked to close.
const LINGER: Duration = Duration::from_secs(2);
const SCORE_CHECK_EVERY: Duration = Duration::from_millis(250);
/// Connections to one peer (direct, relayed, and one being upgraded).
const MAX_CONNECTIONS_PER_PEER: u32 = 8;
/// Our own dials in progress.
const MAX_PENDING_DIALS: u32 = 64;
/// Direct deliveries awaiting the recipient's receipt; beyond this many,
/// frames go straight to the topic.
const MAX_PENDING_DELIVERIES: usize = 4096;

/// Per-topic scoring. P4 (invalid deliveries) is what cuts a flooder off:
/// -20 × n², decaying ~1 %/s, so three invalid frames graylist a peer and
/// hundreds keep it out for many minutes. Honest peers never relay a frame
/// the engine rejects (rejections are kept to what every member detects
/// alike, see `engine::Verdict`), so they are not penalised. Mesh-delivery
/// rates (P3) are off: chat traffic is sparse and quiet peers are honest.
fn topic_score_params() -> TopicScoreParams {
    TopicScoreParams {
        topic_weight: 1.0,
        time_in_mesh_weight: 0.01,
        time_in_mesh_quantum: Duration::from_secs(1),
        time_in_mesh_cap: 100.0,
        first_message_deliveries_weight: 1.0,
        first_message_deliveries_decay: 0.9,
        first_message_deliveries_cap: 20.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: -20.0,
        invalid_message_deliveries_decay: 0.99,
        ..TopicScoreParams::default()
    }
}

fn peer_score_params() -> PeerScoreParams {
    // No IP colocation penalty: only key holders can connect at all (link),
    // and members who share an address (one NAT, one relay, one machine) are
    // normal here. With the default weight, an eleventh peer on one address
    // graylisted all of them.
    PeerScoreParams {
        topic_score_cap: 25.0,
        app_specific_weight: 1.0,
        ip_colocation_factor_weight: 0.0,
        ..PeerScoreParams::default()
    }
}

fn peer_score_thresholds() -> PeerScoreThresholds {
    PeerScoreThresholds {
        gossip_threshold: -10.0,
        publish_threshold: -50.0,
        graylist_threshold: -80.0,
        accept_px_threshold: 10.0,
        opportunistic_graft_threshold: 5.0,
    }
}

pub struct CircleNetConfig {
    pub circle: CircleId,
    /// Who may link to the circle's network (SPEC §2a), kept current by
    /// the node.
    pub access: super::link::SharedAccess,
    pub listen: Vec<Multiaddr>,
    pub dial: Vec<Multiaddr>,
    pub mdns: bool,
    /// Tor mode (`None`: direct TCP): see [`super::tor`].
    pub tor: Option<super::CircleTor>,
    /// The node's inbound connections, shared by all its circles' swarms.
    pub ledger: ConnectionLedger,
}

/// Commands from the node to a circle's swarm task.
#[derive(Debug)]
pub enum NetCommand {
    /// Listen on `topics`. `members` are the connected peers whose members
    /// are in the roster: what we publish on a topic new to us waits until
    /// they are there too (see [`super::topic_hold`]).
    Subscribe {
        topics: Vec<String>,
        members: Vec<PeerId>,
    },
    Publish {
        topic: String,
        frame: Vec<u8>,
    },
    SendDirect {
        peer: PeerId,
        frame: Vec<u8>,
    },
    /// Hand a frame meant for one peer's member to that peer directly;
    /// if it does not take it (disconnect, timeout), publish it on
    /// `topic` instead, where members keep it as a mailbox frame.
    Deliver {
        peer: PeerId,
        topic: String,
        frame: Vec<u8>,
    },
    Dial(Vec<Multiaddr>),
    /// Close every connection to `peer` (a member who was removed: its
    /// links were admitted while it was one).
    Disconnect {
        peer: PeerId,
    },
    /// Link again to everyone we dialled, and close those connections
    /// (after our join: our links so far proved only an invite).
    Relink,
    /// Count `count` invalid frames against `peer` that came outside
    /// gossip (a catch-up answer or request the engine refused): scored
    /// like invalid gossip, so the same cut-off applies.
    Strike {
        peer: PeerId,
        count: u32,
    },
    Validate {
        message_id: MessageId,
        source: PeerId,
        verdict: Verdict,
    },
    Shutdown,
}

#[derive(Debug)]
pub struct NetEvent {
    pub circle: CircleId,
    pub kind: NetEventKind,
}

#[derive(Debug)]
pub enum NetEventKind {
    Gossip {
        frame: Vec<u8>,
        message_id: MessageId,
        source: PeerId,
    },
    Direct {
        peer: PeerId,
        frame: Vec<u8>,
    },
    PeerConnected {
        peer: PeerId,
        relayed: bool,
        address: Multiaddr,
    },
    PeerDisconnected {
        peer: PeerId,
    },
    /// A connected peer's link changed between direct and relayed (a
    /// relayed link upgraded by DCUtR, or the last direct connection gone
    /// while a relayed one remains).
    LinkChanged {
        peer: PeerId,
        relayed: bool,
    },
    Listening {
        address: Multiaddr,
    },
    /// The addresses a peer says it listens on (from identify).
    PeerAddresses {
        peer: PeerId,
        addresses: Vec<Multiaddr>,
    },
    DialFailed {
        reason: String,
        /// A member's refusal at the link handshake, which a joiner acts on.
        refusal: Option<super::link::LinkRefusal>,
    },
    /// A peer scored so low (invalid frames) that it was disconnected and
    /// is refused for a while.
    PeerBanned {
        peer: PeerId,
    },
}

/// The node's handle on a running circle swarm.
pub struct CircleNetwork {
    pub peer_id: PeerId,
    pub commands: mpsc::Sender<NetCommand>,
}

#[derive(NetworkBehaviour)]
struct CircleBehaviour {
    /// First, so that a refused connection costs the others nothing:
    /// inbound caps per address and in total (`limits.rs`)...
    inbound: InboundLimits,
    /// ...and per peer, and on our own dials.
    connections: connection_limits::Behaviour,
    /// Served only on members' links (`gate.rs`), as are identify,
    /// Kademlia, the relay (both sides) and DCUtR; a joiner's link gets
    /// the direct protocol (the join handshake) and ping.
    gossipsub: MembersOnly<gossipsub::Behaviour>,
    identify: MembersOnly<identify::Behaviour>,
    direct: request_response::Behaviour<DirectCodec>,
    ping: ping::Behaviour,
    mdns: Toggle<mdns::tokio::Behaviour>,
    /// Off in Tor mode (no address records), as are relay and DCUtR.
    kad: MembersOnly<Toggle<kad::Behaviour<kad::store::MemoryStore>>>,
    /// Every member can relay for the others (circuit relay v2)...
    relay: MembersOnly<Toggle<relay::Behaviour>>,
    /// ...and use others as relays.
    relay_client: MembersOnly<relay::client::Behaviour>,
    /// Upgrade relayed links to direct ones where NATs allow.
    dcutr: MembersOnly<Toggle<dcutr::Behaviour>>,
}

/// Our own dials go out from a fresh port. With libp2p's default (reuse
/// the listening port), two nodes that dial each other at the same moment
/// (both hearing the other on mDNS) meet in one TCP simultaneous open
/// where both sides play the dialer, and the link handshake, like
/// multistream-select after it, cannot tell who is who. Behaviours'
/// dials (DCUtR's hole punching among them) keep their own choice.
fn dial_opts(address: Multiaddr) -> libp2p::swarm::dial_opts::DialOpts {
    libp2p::swarm::dial_opts::DialOpts::unknown_peer_id().address(address).allocate_new_port().build()
}

fn content_id(message: &gossipsub::Message) -> MessageId {
    let digest = Sha256::digest(&message.data);
    MessageId::from(digest[..20].to_vec())
}

/// The relay's limits. libp2p's defaults (2 minutes, 128 KiB a circuit)
/// suit hole punching, not a member who can be reached only through a
/// relay: one padded message is up to 64 KiB, so its link would be cut
/// after a few. Only peers past the link handshake reach the relay, and
/// the circuit counts stay libp2p's (16, 4 per peer), so a circuit may
/// carry a conversation: 30 minutes and 64 MiB, then it is made again.
fn relay_config() -> relay::Config {
    relay::Config {
        max_circuit_duration: Duration::from_secs(30 * 60),
        max_circuit_bytes: 64 * 1024 * 1024,
        ..relay::Config::default()
    }
}

fn build_swarm(
    config: &CircleNetConfig,
    identity: libp2p::identity::Keypair,
) -> Result<Swarm<CircleBehaviour>, NetError> {
    let access = config.access.clone();
    let circle = config.circle;
    let setup = |e: &dyn std::fmt::Display| NetError::Setup(e.to_string());
    let tor = config.tor.is_some();
    // Built by hand rather than by the builder's `with_relay_client`, so
    // that relayed links pass the link handshake too: a relay (any member,
    // or a removed one whose old link a member kept) must not let a peer
    // reach us around it.
    let mut relay_client = None;
    let swarm = libp2p::SwarmBuilder::with_existing_identity(identity)
        .with_tokio()
        .with_other_transport(|key| {
            let noise = noise::Config::new(key)?;
            let (relay_transport, relay_behaviour) = relay::client::new(key.public().to_peer_id());
            relay_client = Some(relay_behaviour);
            let relay_access = access.clone();
            let relayed = relay_transport
                .and_then(move |socket, endpoint| super::link::upgrade(socket, endpoint, circle, relay_access.clone()))
                .upgrade(Version::V1Lazy)
                .authenticate(noise::Config::new(key)?)
                .multiplex(yamux::Config::default())
                .timeout(Duration::from_secs(20))
                .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)));
            // Tor mode: onions only (no TCP listener or dial outside tor);
            // the same link + Noise + yamux upgrade on top.
            let base = match &config.tor {
                Some(t) => super::tor::TorTransport::new(
                    t.runtime.client.clone(),
                    t.isolation.clone(),
                    t.auth.clone(),
                    t.service.clone(),
                )
                .map_err(std::io::Error::other)
                .boxed(),
                None => tcp::tokio::Transport::new(tcp::Config::default().nodelay(true)).boxed(),
            };
            let transport = base
                .and_then(move |socket, endpoint| super::link::upgrade(socket, endpoint, circle, access.clone()))
                .upgrade(Version::V1Lazy)
                .authenticate(noise)
                .multiplex(yamux::Config::default())
                .timeout(Duration::from_secs(if tor { 120 } else { 20 }))
                .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)));
            let transport = relayed.or_transport(transport).map(|either, _| either.into_inner());
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(transport)
        })
        .map_err(|e| setup(&e))?
        .with_behaviour(|key| {
            let relay_client = relay_client.take().ok_or("relay client not built")?;
            let gossip_config = gossipsub::ConfigBuilder::default()
                .validation_mode(ValidationMode::Anonymous)
                .validate_messages()
                .message_id_fn(content_id)
                .max_transmit_size(MAX_GOSSIP_FRAME + 1024)
                .heartbeat_interval(Duration::from_millis(700))
                .build()?;
            let mut gossipsub = gossipsub::Behaviour::new(MessageAuthenticity::Anonymous, gossip_config)?;
            gossipsub.with_peer_score(peer_score_params(), peer_score_thresholds())?;
            let identify = identify::Behaviour::new(
                identify::Config::new(PROTOCOL_VERSION.into(), key.public()).with_agent_version(AGENT.into()),
            );
            let direct = request_response::Behaviour::with_codec(
                DirectCodec,
                [(DIRECT_PROTOCOL, ProtocolSupport::Full)],
                request_response::Config::default().with_request_timeout(Duration::from_secs(30)),
            );
            let mdns = if config.mdns && !tor {
                Some(mdns::tokio::Behaviour::new(mdns::Config::default(), key.public().to_peer_id())?)
            } else {
                None
            };
            let peer_id = key.public().to_peer_id();
            let mut kad = kad::Behaviour::with_config(
                peer_id,
                kad::store::MemoryStore::new(peer_id),
                kad::Config::new(KAD_PROTOCOL),
            );
            kad.set_mode(Some(kad::Mode::Server));
            let connections = connection_limits::Behaviour::new(
                connection_limits::ConnectionLimits::default()
                    .with_max_established_per_peer(Some(MAX_CONNECTIONS_PER_PEER))
                    .with_max_pending_outgoing(Some(MAX_PENDING_DIALS)),
            );
            let access = &config.access;
            Ok(CircleBehaviour {
                inbound: InboundLimits::new(config.ledger.clone()),
                connections,
                gossipsub: MembersOnly::new(gossipsub, access.clone()),
                identify: MembersOnly::new(identify, access.clone()),
                direct,
                ping: ping::Behaviour::default(),
                mdns: mdns.into(),
                kad: MembersOnly::new((!tor).then_some(kad).into(), access.clone()),
                relay: MembersOnly::new(
                    (!tor).then(|| relay::Behaviour::new(peer_id, relay_config())).into(),
                    access.clone(),
                ),
                relay_client: MembersOnly::new(relay_client, access.clone()),
                dcutr: MembersOnly::new((!tor).then(|| dcutr::Behaviour::new(peer_id)).into(), access.clone()),
            })
        })
        .map_err(|e| setup(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(600)))
        .build();
    Ok(swarm)
}

/// Start a circle's swarm: listen, dial, and run its task. Events go to `events`.
pub fn spawn_circle(config: CircleNetConfig, events: mpsc::Sender<NetEvent>) -> Result<CircleNetwork, NetError> {
    let identity = libp2p::identity::Keypair::generate_ed25519();
    let peer_id = identity.public().to_peer_id();
    let (tx, rx) = mpsc::channel(256);
    if config.tor.is_some() {
        // The onion is published first (through tor's control port), then
        // the swarm listens behind it; commands wait in the channel.
        tokio::spawn(async move {
            match start_tor_circle(config, identity).await {
                Ok((swarm, config)) => run_swarm(swarm, &config, events, rx).await,
                Err((circle, e)) => {
                    tracing::error!("could not start a circle's Tor network: {e}");
                    let kind = NetEventKind::DialFailed { reason: e.to_string(), refusal: None };
                    let _ = events.send(NetEvent { circle, kind }).await;
                }
            }
        });
        return Ok(CircleNetwork { peer_id, commands: tx });
    }
    let mut swarm = build_swarm(&config, identity)?;
    listen_all(&mut swarm, &config)?;
    tokio::spawn(async move { run_swarm(swarm, &config, events, rx).await });
    Ok(CircleNetwork { peer_id, commands: tx })
}

fn listen_all(swarm: &mut Swarm<CircleBehaviour>, config: &CircleNetConfig) -> Result<(), NetError> {
    for address in &config.listen {
        swarm
            .listen_on(address.clone())
            .map_err(|e| NetError::Listen { address: address.to_string(), reason: e.to_string() })?;
    }
    Ok(())
}

/// Tor mode: publish the circle's onion, then build the swarm and listen
/// behind it (on the onion only; onion addresses only are dialled).
async fn start_tor_circle(
    mut config: CircleNetConfig,
    identity: libp2p::identity::Keypair,
) -> Result<(Swarm<CircleBehaviour>, CircleNetConfig), (CircleId, NetError)> {
    let circle = config.circle;
    let Some(tor) = config.tor.as_mut() else {
        return Err((circle, NetError::Setup("not a Tor circle".into())));
    };
    let (onion, local) =
        tor.runtime.publish(&tor.onion_key, &tor.auth).await.map_err(|e| (circle, NetError::Setup(e.to_string())))?;
    tor.service = Some((onion.clone(), local));
    config.listen = vec![onion];
    config.dial.retain(|a| super::tor::onion_parts(a).is_some());
    let mut swarm = build_swarm(&config, identity).map_err(|e| (circle, e))?;
    listen_all(&mut swarm, &config).map_err(|e| (circle, e))?;
    Ok((swarm, config))
}

async fn run_swarm(
    mut swarm: Swarm<CircleBehaviour>,
    config: &CircleNetConfig,
    events: mpsc::Sender<NetEvent>,
    rx: mpsc::Receiver<NetCommand>,
) {
    for address in &config.dial {
        let _ = swarm.dial(dial_opts(address.clone()));
    }
    let task = SwarmTask {
        access: config.access.clone(),
        tor: config.tor.is_some(),
        circle: config.circle,
        swarm,
        events,
        buckets: HashMap::new(),
        ignored: HashMap::new(),
        strikes: HashMap::new(),
        banned: HashMap::new(),
        reservations: HashMap::new(),
        dialed: HashMap::new(),
        outbound: HashMap::new(),
        links: HashMap::new(),
        deliveries: HashMap::new(),
        holds: TopicHolds::default(),
    };
    task.run(rx).await;
}

/// How many connections to one peer are direct and how many relayed.
#[derive(Clone, Copy, Debug, Default)]
struct Links {
    direct: u32,
    relayed: u32,
}

impl Links {
    fn add(&mut self, relayed: bool, change: i32) {
        let count = if relayed { &mut self.relayed } else { &mut self.direct };
        *count = count.saturating_add_signed(change);
    }

    fn total(&self) -> u32 {
        self.direct + self.relayed
    }

    /// Only a relay carries our traffic to this peer: it cannot see our IP.
    fn relayed_only(&self) -> bool {
        self.direct == 0 && self.relayed > 0
    }
}

/// A token bucket per peer (direct requests, unjudged gossip).
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// `count` strikes counted at `at`, decayed to `now`.
fn decayed_strikes(count: f64, at: Instant, now: Instant) -> f64 {
    count * STRIKE_DECAY_PER_SEC.powf(now.duration_since(at).as_secs_f64())
}

/// Take one token from `peer`'s bucket (refilled at `rate` per second up
/// to `burst`); false when empty.
fn take_token(buckets: &mut HashMap<PeerId, Bucket>, peer: PeerId, rate: f64, burst: f64) -> bool {
    let now = Instant::now();
    let bucket = buckets.entry(peer).or_insert(Bucket { tokens: burst, at: now });
    let refill = now.duration_since(bucket.at).as_secs_f64() * rate;
    bucket.tokens = (bucket.tokens + refill).min(burst);
    bucket.at = now;
    if bucket.tokens >= 1.0 {
        bucket.tokens -= 1.0;
        true
    } else {
        false
    }
}

struct SwarmTask {
    /// Shared with the link handshakes: where a member's refusal of our
    /// dial is noted.
    access: super::link::SharedAccess,
    /// Tor mode: no relay reservations, no Kademlia address records.
    tor: bool,
    circle: CircleId,
    swarm: Swarm<CircleBehaviour>,
    events: mpsc::Sender<NetEvent>,
    buckets: HashMap<PeerId, Bucket>,
    /// Per relaying peer: budget for frames we could not judge.
    ignored: HashMap<PeerId, Bucket>,
    /// Invalid frames each peer relayed (decaying), and when last counted.
    strikes: HashMap<PeerId, (f64, Instant)>,
    /// Peers cut off for invalid frames, until when.
    banned: HashMap<PeerId, Instant>,
    /// Members we asked to relay for us, by the listener that holds it.
    reservations: HashMap<libp2p::core::transport::ListenerId, PeerId>,
    /// Addresses we reached peers at (known to work from here).
    dialed: HashMap<PeerId, Multiaddr>,
    /// Every connection we dialled, relayed ones too, and where to.
    outbound: HashMap<libp2p::swarm::ConnectionId, Multiaddr>,
    /// Open connections per peer, direct and relayed.
    links: HashMap<PeerId, Links>,
    /// Frames handed to a peer directly, kept until it confirms them so
    /// they can go to the topic if it does not.
    deliveries: HashMap<request_response::OutboundRequestId, (String, Vec<u8>)>,
    /// What we published on topics the members have not all moved to yet.
    holds: TopicHolds,
}

impl SwarmTask {
    async fn run(mut self, mut commands: mpsc::Receiver<NetCommand>) {
        let mut bootstrap = tokio::time::interval(KAD_BOOTSTRAP_EVERY);
        let mut reserve = tokio::time::interval(RESERVE_RETRY_EVERY);
        let mut scores = tokio::time::interval(SCORE_CHECK_EVERY);
        loop {
            tokio::select! {
                _ = scores.tick() => {
                    if !self.holds.is_empty() {
                        let released = self.holds.expired(Instant::now());
                        self.publish_released(released);
                    }
                    for peer in self.cut_off_strikers() {
                        let event = NetEvent { circle: self.circle, kind: NetEventKind::PeerBanned { peer } };
                        if self.events.send(event).await.is_err() {
                            return;
                        }
                    }
                }
                _ = reserve.tick() => {
                    let dialed: Vec<(PeerId, Multiaddr)> = self.dialed.iter().map(|(p, a)| (*p, a.clone())).collect();
                    for (peer, address) in dialed {
                        self.reserve_with(peer, &[address]);
                    }
                }
                _ = bootstrap.tick() => {
                    // Fails harmlessly while we know no peer yet.
                    if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() {
                        let _ = kad.bootstrap();
                    }
                }
                command = commands.recv() => match command {
                    None => break,
                    Some(NetCommand::Shutdown) => {
                        self.linger().await;
                        break;
                    }
                    Some(c) => self.command(c),
                },
                event = self.swarm.select_next_some() => {
                    if let Some(kind) = self.event(event) {
                        let event = NetEvent { circle: self.circle, kind };
                        if self.events.send(event).await.is_err() {
                            break; // The node is gone.
                        }
                    }
                }
            }
        }
    }

    /// Before closing on request (the user left the circle), keep the
    /// swarm running a moment so that what was published just before, the
    /// leave operation itself, reaches the peers instead of dying queued.
    async fn linger(&mut self) {
        let _ = tokio::time::timeout(LINGER, async {
            loop {
                let _ = self.swarm.select_next_some().await;
            }
        })
        .await;
    }

    fn command(&mut self, command: NetCommand) {
        let b = self.swarm.behaviour_mut();
        match command {
            NetCommand::Subscribe { topics, members } => {
                for t in topics {
                    let topic = IdentTopic::new(t.clone());
                    if let Err(e) = b.gossipsub.set_topic_params(topic.clone(), topic_score_params()) {
                        tracing::warn!("peer scoring not set for a topic: {e}");
                    }
                    if b.gossipsub.subscribe(&topic).unwrap_or(false) {
                        let hash = topic.hash();
                        let there: HashSet<PeerId> =
                            b.gossipsub.all_peers().filter(|(_, ts)| ts.contains(&&hash)).map(|(p, _)| *p).collect();
                        let waiting = members
                            .iter()
                            .filter(|p| self.links.contains_key(p) && !there.contains(p))
                            .copied()
                            .collect();
                        self.holds.start(t, waiting, Instant::now());
                    }
                }
            }
            NetCommand::Publish { topic, frame } => self.publish(topic, frame),
            NetCommand::SendDirect { peer, frame } => {
                b.direct.send_request(&peer, frame);
            }
            NetCommand::Deliver { peer, topic, frame } => {
                let direct = &mut self.swarm.behaviour_mut().direct;
                if self.deliveries.len() < MAX_PENDING_DELIVERIES && direct.is_connected(&peer) {
                    let request = direct.send_request(&peer, frame.clone());
                    self.deliveries.insert(request, (topic, frame));
                } else {
                    self.publish(topic, frame);
                }
            }
            NetCommand::Dial(addresses) => {
                for a in addresses {
                    let _ = self.swarm.dial(dial_opts(a));
                }
            }
            NetCommand::Disconnect { peer } => {
                let _ = self.swarm.disconnect_peer_id(peer);
            }
            NetCommand::Relink => {
                // Dial every peer we dialled again, then close the old
                // connections: a joiner's links, which members serve only
                // the join (`gate.rs`), give way to a member's.
                for (connection, address) in std::mem::take(&mut self.outbound) {
                    let _ = self.swarm.dial(dial_opts(address));
                    self.swarm.close_connection(connection);
                }
            }
            NetCommand::Strike { peer, count } => {
                for _ in 0..count.min(16) {
                    self.strike(peer);
                }
            }
            NetCommand::Validate { message_id, source, verdict } => {
                let acceptance = match verdict {
                    Verdict::Accept => MessageAcceptance::Accept,
                    Verdict::Reject => MessageAcceptance::Reject,
                    Verdict::Ignore if take_token(&mut self.ignored, source, IGNORED_PER_SEC, IGNORED_BURST) => {
                        MessageAcceptance::Ignore
                    }
                    Verdict::Ignore => MessageAcceptance::Reject,
                };
                if matches!(acceptance, MessageAcceptance::Reject) {
                    self.strike(source);
                }
                self.swarm.behaviour_mut().gossipsub.report_message_validation_result(&message_id, &source, acceptance);
            }
            NetCommand::Shutdown => {}
        }
    }

    fn publish(&mut self, topic: String, frame: Vec<u8>) {
        if let Err(released) = self.holds.hold(&topic, frame) {
            self.publish_released(released);
        }
    }

    fn publish_released(&mut self, released: Released) {
        for (topic, frames) in released {
            for frame in frames {
                self.publish_now(topic.clone(), frame);
            }
        }
    }

    fn publish_now(&mut self, topic: String, frame: Vec<u8>) {
        if let Err(e) = self.swarm.behaviour_mut().gossipsub.publish(IdentTopic::new(topic), frame) {
            // No peers yet is normal; members catch up later.
            tracing::debug!("publish: {e}");
        }
    }

    /// Ask `peer` to relay for us, if we have fewer than enough relays.
    fn reserve_with(&mut self, peer: PeerId, addresses: &[Multiaddr]) {
        if self.tor || self.reservations.len() >= MAX_RESERVATIONS || self.reservations.values().any(|p| *p == peer) {
            return;
        }
        // Prefer the address we reached them at: it works from here.
        let Some(address) = self.dialed.get(&peer).or(addresses.first()).cloned() else { return };
        let circuit = address.clone().with(Protocol::P2p(peer)).with(Protocol::P2pCircuit);
        match self.swarm.listen_on(circuit) {
            Ok(listener) => {
                tracing::debug!("asked a member to relay for us");
                self.reservations.insert(listener, peer);
            }
            Err(e) => tracing::debug!("relay reservation not attempted: {e}"),
        }
    }

    fn allow_direct(&mut self, peer: PeerId) -> bool {
        take_token(&mut self.buckets, peer, DIRECT_RATE_PER_SEC, DIRECT_BURST)
    }

    /// Count an invalid frame against `peer`.
    fn strike(&mut self, peer: PeerId) {
        let now = Instant::now();
        let (count, at) = self.strikes.entry(peer).or_insert((0.0, now));
        *count = decayed_strikes(*count, *at, now) + 1.0;
        *at = now;
    }

    /// Disconnect and refuse peers with `STRIKES_TO_BAN` invalid frames.
    fn cut_off_strikers(&mut self) -> Vec<PeerId> {
        let now = Instant::now();
        self.banned.retain(|_, until| *until > now);
        let struck: Vec<PeerId> = self
            .strikes
            .iter()
            .filter(|(_, (count, at))| decayed_strikes(*count, *at, now) >= STRIKES_TO_BAN)
            .map(|(p, _)| *p)
            .collect();
        for peer in &struck {
            tracing::warn!("disconnected a peer that relayed invalid frames");
            self.strikes.remove(peer);
            self.banned.insert(*peer, now + BAN_TIME);
            let _ = self.swarm.disconnect_peer_id(*peer);
        }
        struck
    }

    /// Handle a swarm event; returns what the node should hear of it.
    fn event(&mut self, event: SwarmEvent<CircleBehaviourEvent>) -> Option<NetEventKind> {
        match event {
            SwarmEvent::Behaviour(CircleBehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => {
                return Some(NetEventKind::Gossip { frame: message.data, message_id, source: propagation_source });
            }
            SwarmEvent::Behaviour(CircleBehaviourEvent::Gossipsub(gossipsub::Event::Subscribed { peer_id, topic }))
                if !self.holds.is_empty() =>
            {
                let released = self.holds.subscribed(topic.as_str(), &peer_id);
                self.publish_released(released);
            }
            SwarmEvent::Behaviour(CircleBehaviourEvent::Direct(request_response::Event::Message {
                peer,
                message: request_response::Message::Request { request, channel, .. },
                ..
            })) => {
                if self.allow_direct(peer) {
                    // The empty answer is the receipt a direct delivery
                    // waits for; a dropped request gets none, so its sender
                    // falls back to the topic.
                    let _ = self.swarm.behaviour_mut().direct.send_response(channel, Vec::new());
                    return Some(NetEventKind::Direct { peer, frame: request });
                }
                tracing::warn!("direct requests from a peer over the rate limit were dropped");
            }
            SwarmEvent::Behaviour(CircleBehaviourEvent::Direct(request_response::Event::Message {
                message: request_response::Message::Response { request_id, .. },
                ..
            })) => {
                self.deliveries.remove(&request_id);
            }
            SwarmEvent::Behaviour(CircleBehaviourEvent::Direct(request_response::Event::OutboundFailure {
                request_id,
                error,
                ..
            })) => {
                if let Some((topic, frame)) = self.deliveries.remove(&request_id) {
                    tracing::debug!("direct delivery failed ({error}); publishing on the topic instead");
                    self.publish(topic, frame);
                }
            }
            SwarmEvent::Behaviour(CircleBehaviourEvent::Mdns(mdns::Event::Discovered(found))) => {
                for (_, address) in found {
                    let _ = self.swarm.dial(dial_opts(address));
                }
            }
            SwarmEvent::ConnectionEstablished { peer_id, .. } if self.banned.contains_key(&peer_id) => {
                let _ = self.swarm.disconnect_peer_id(peer_id);
            }
            SwarmEvent::ConnectionEstablished { peer_id, endpoint, connection_id, .. } => {
                // `is_relayed` looks at the right address for both sides: an
                // inbound relayed connection's remote address is just the
                // peer id; its local address carries the circuit.
                let relayed = endpoint.is_relayed();
                let address = endpoint.get_remote_address().clone();
                if endpoint.is_dialer() {
                    self.outbound.insert(connection_id, address.clone());
                }
                if endpoint.is_dialer() && !relayed {
                    self.dialed.insert(peer_id, address.clone());
                }
                let links = self.links.entry(peer_id).or_default();
                let was = *links;
                links.add(relayed, 1);
                if was.total() == 0 {
                    return Some(NetEventKind::PeerConnected { peer: peer_id, relayed: links.relayed_only(), address });
                }
                if was.relayed_only() != links.relayed_only() {
                    return Some(NetEventKind::LinkChanged { peer: peer_id, relayed: links.relayed_only() });
                }
            }
            SwarmEvent::ConnectionClosed { peer_id, endpoint, num_established, connection_id, .. } => {
                self.outbound.remove(&connection_id);
                let links = self.links.entry(peer_id).or_default();
                let was = *links;
                links.add(endpoint.is_relayed(), -1);
                let now = *links;
                if num_established == 0 {
                    self.links.remove(&peer_id);
                    self.buckets.remove(&peer_id);
                    self.ignored.remove(&peer_id);
                    self.strikes.remove(&peer_id);
                    self.dialed.remove(&peer_id);
                    let released = self.holds.disconnected(&peer_id);
                    self.publish_released(released);
                    return Some(NetEventKind::PeerDisconnected { peer: peer_id });
                }
                if was.relayed_only() != now.relayed_only() {
                    return Some(NetEventKind::LinkChanged { peer: peer_id, relayed: now.relayed_only() });
                }
            }
            SwarmEvent::NewListenAddr { address, .. } => {
                let circuit = address.iter().any(|p| matches!(p, Protocol::P2pCircuit));
                if !circuit {
                    // Members reach us here, so we can relay for those who
                    // cannot reach each other (the relay server only serves
                    // once it has an external address).
                    self.swarm.add_external_address(address.clone());
                }
                let address = if circuit && !matches!(address.iter().last(), Some(Protocol::P2p(_))) {
                    address.with(Protocol::P2p(*self.swarm.local_peer_id()))
                } else {
                    address
                };
                return Some(NetEventKind::Listening { address });
            }
            SwarmEvent::OutgoingConnectionError { error, .. } => {
                let refusal = self.access.take_refusal();
                return Some(NetEventKind::DialFailed { reason: error.to_string(), refusal });
            }
            SwarmEvent::Behaviour(CircleBehaviourEvent::Identify(identify::Event::Received {
                peer_id, info, ..
            })) => {
                let direct: Vec<Multiaddr> = info
                    .listen_addrs
                    .iter()
                    .filter(|a| !a.iter().any(|p| matches!(p, Protocol::P2pCircuit)))
                    .cloned()
                    .collect();
                if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() {
                    for a in &direct {
                        kad.add_address(&peer_id, a.clone());
                    }
                }
                // A peer we reach only through a relay cannot relay for us.
                if !self.links.get(&peer_id).is_some_and(Links::relayed_only) {
                    self.reserve_with(peer_id, &direct);
                }
                return Some(NetEventKind::PeerAddresses { peer: peer_id, addresses: info.listen_addrs });
            }
            SwarmEvent::Behaviour(CircleBehaviourEvent::RelayClient(
                relay::client::Event::ReservationReqAccepted { .. },
            )) => {
                tracing::debug!("relay reservation accepted");
            }
            SwarmEvent::ListenerClosed { listener_id, reason, .. } => {
                // A relay reservation ended or was refused: try again later.
                tracing::debug!("listener closed: {reason:?}");
                self.reservations.remove(&listener_id);
            }
            _ => {}
        }
        None
    }
}
