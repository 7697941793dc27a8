//! Real kolo nodes for the harness: a keyed circle built through the
//! library's public API, then one `kolo::node::Node` per member (engine +
//! profile + its own libp2p swarm on 127.0.0.1), driven through the same
//! request channel the control socket feeds.
//!
//! Setting up a circle of 100 by 99 invite/join round trips would rekey the
//! circle 99 times (each join starts an epoch) before the first measurement.
//! Instead the organiser signs `Add` operations (a membership operation of
//! the protocol, validated by every member's log like any other), every
//! member builds its `CircleState` from that log, and the first key
//! distribution (KK handshakes carrying each member's sender key, and the
//! replies that complete the sessions) runs through the engines in the
//! deterministic in-memory router (`kolo::sim`). The nodes then start with
//! every sender key and pairwise session in place, as after any rekey.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use kolo::api::{Pending, Request};
use kolo::circle::{CircleId, CircleLog, Op, OpBody, Role};
use kolo::engine::{CircleState, Ctx, Engine, EngineConfig, Event, Record, StoredCircle};
use kolo::entropy::{SeededEntropy, random_array};
use kolo::identity::{IdentitySecret, MemberId, NoiseBinding, NoiseSecret, hex};
use kolo::node::{Node, NodeConfig};
use kolo::sim::{Faults, Sim};
use kolo::store::{KdfParams, Profile};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::measure::{Delivery, free_port, now_ms};

pub const CIRCLE_NAME: &str = "bench";

/// One member's keyed state, ready to become a node.
pub struct Member {
    pub name: String,
    pub identity: IdentitySecret,
    pub snapshot: zeroize::Zeroizing<Vec<u8>>,
}

pub struct KeyedCircle {
    pub circle: CircleId,
    pub members: Vec<Member>,
    /// In the roster but never run: the members the rekey scenario removes.
    pub dummies: Vec<MemberId>,
}

fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("{e}")
}

/// A circle of `identities.len()` members plus `dummies` members who never
/// run, with every running member holding every other running member's
/// sender key and a pairwise session with each.
pub fn key_circle(identities: Vec<(String, IdentitySecret)>, dummies: usize, seed: u64) -> Result<KeyedCircle> {
    let n = identities.len();
    if n < 2 {
        bail!("a circle needs two members");
    }
    let now = now_ms();
    let mut rng = SeededEntropy::from_u64(seed);
    let noises: Vec<NoiseSecret> = (0..n).map(|_| NoiseSecret::generate(&mut rng)).collect();
    let firsts: Vec<NoiseSecret> = (0..n).map(|_| NoiseSecret::generate(&mut rng)).collect();
    let organiser = &identities[0].1;
    let (genesis, circle) =
        Op::create(organiser, &noises[0], &firsts[0], CIRCLE_NAME, &identities[0].0, 0, now, &mut rng).map_err(err)?;
    let mut log = CircleLog::from_genesis(genesis.clone()).map_err(err)?;
    let mut ops = vec![genesis];
    let add = |who: &IdentitySecret, noise: &NoiseSecret, first: &NoiseSecret, name: &str, log: &mut CircleLog| {
        let body = OpBody::Add {
            member: who.member_id(),
            binding: NoiseBinding::create(who, &circle, noise, first),
            display_name: name.to_owned(),
            role: Role::Member,
        };
        let op = Op::sign(organiser, &circle, log.heads(), body, now).map_err(err)?;
        log.insert(op.clone()).map_err(err)?;
        Result::<Op>::Ok(op)
    };
    for i in 1..n {
        ops.push(add(&identities[i].1, &noises[i], &firsts[i], &identities[i].0, &mut log)?);
    }
    let mut dummy_ids = Vec::new();
    for d in 0..dummies {
        let who = IdentitySecret::generate(&mut rng);
        let noise = NoiseSecret::generate(&mut rng);
        ops.push(add(&who, &noise, &noise, &format!("away{d:03}"), &mut log)?);
        dummy_ids.push(who.member_id());
    }
    let secret: [u8; 32] = random_array(&mut rng);
    let epoch_meta: [u8; 32] = random_array(&mut rng);

    // Every member's engine, with the full roster and a chain that rotates
    // on the first tick (that tick distributes it to everyone).
    let setup_config = EngineConfig { rotate_after_ms: 0, send_acks: false, ..EngineConfig::default() };
    let names: Vec<&str> = identities.iter().map(|(n, _)| n.as_str()).collect();
    let mut sim = Sim::new(seed, &names, Faults::NONE, setup_config.clone());
    for (i, (name, identity)) in identities.iter().enumerate() {
        let mut out = Vec::new();
        let mut node_rng = SeededEntropy::from_u64(seed ^ (i as u64 + 1));
        let mut ctx = Ctx {
            now,
            rng: &mut node_rng,
            out: &mut out,
            identity,
            me: identity.member_id(),
            display_name: name,
            config: &setup_config,
        };
        let log = CircleLog::from_ops(ops.clone()).map_err(err)?;
        // Every member holds the current epoch's pairwise secret, as a
        // joiner does from its welcome (SPEC §5.1a).
        let (epoch, raiser) = (log.epoch(), log.rekeyer().map(|(op, _)| op).unwrap_or_default());
        let network = kolo::circle::network_key(&secret, &log.circle_id());
        let start = kolo::engine::EpochStart::Welcomed { epoch, raiser, meta: epoch_meta, network };
        let state = CircleState::new(log, secret, start, noises[i].duplicate(), firsts[i].duplicate(), &mut ctx);
        let stored =
            StoredCircle { snapshot: state.export(), chains: Vec::new(), messages: Vec::new(), frames: Vec::new() };
        let engine = Engine::restore(
            IdentitySecret::from_seed(&identity.expose_seed()),
            name.clone(),
            setup_config.clone(),
            vec![stored],
        )
        .map_err(err)?;
        sim.nodes[i].engine = engine;
    }
    sim.networks.insert(circle, (0..n).collect());
    sim.now = now;
    sim.sync_every_ms = 3_600_000;
    // As running nodes do when connected: each key frame goes to its
    // recipient only, not to all n members (n^2 deliveries, not n^3).
    sim.direct_pairwise = true;
    // One tick (at once), then well under a second of deliveries: hellos
    // out, replies back. The next tick (which would rotate again) is 1 s on.
    sim.run_for(900);
    for (i, node) in sim.nodes.iter().enumerate() {
        let keys = node.engine.circle(&circle).map_or(0, CircleState::receiving_key_count);
        if keys != n - 1 {
            bail!("member {i} holds {keys} sender keys after setup, expected {}", n - 1);
        }
    }
    let mut members = Vec::with_capacity(n);
    for (i, (name, identity)) in identities.into_iter().enumerate() {
        let snapshot = sim.nodes[i].engine.export_circle(&circle).context("circle missing after setup")?;
        members.push(Member { name, identity, snapshot });
    }
    Ok(KeyedCircle { circle, members, dummies: dummy_ids })
}

/// `n` ephemeral (in-memory) profiles with seeded identities.
pub fn ephemeral_profiles(n: usize, seed: u64) -> Result<Vec<(String, Profile, IdentitySecret)>> {
    (0..n)
        .map(|i| {
            let name = format!("m{i:03}");
            let mut rng = SeededEntropy::from_u64(seed.wrapping_mul(1000).wrapping_add(i as u64));
            let opened = Profile::ephemeral(&name, &mut rng).map_err(err)?;
            Ok((name, opened.profile, opened.identity))
        })
        .collect()
}

/// A running node and how to talk to it.
pub struct RunningNode {
    pub index: usize,
    pub port: u16,
    pub api: mpsc::Sender<Pending>,
    pub task: JoinHandle<()>,
}

impl RunningNode {
    pub async fn call(&self, request: Request) -> Result<Value> {
        let (tx, rx) = oneshot::channel();
        self.api.send((request, tx)).await.map_err(|_| anyhow!("node {} stopped", self.index))?;
        let answer = rx.await.map_err(|_| anyhow!("node {} dropped a request", self.index))?.map_err(|e| anyhow!(e))?;
        // As the control socket would carry it.
        Ok(serde_json::to_value(answer)?)
    }

    /// Send without waiting for the answer (the answer channel is dropped).
    pub async fn send_text(&self, circle: &CircleId, text: String) -> Result<()> {
        let (tx, _rx) = oneshot::channel();
        let request = Request::Send { circle: hex(circle), text, disappear_secs: None };
        self.api.send((request, tx)).await.map_err(|_| anyhow!("node {} stopped", self.index))
    }

    pub async fn peers(&self) -> usize {
        match self.call(Request::Status).await {
            Ok(v) => v["circles"][0]["peers"].as_u64().unwrap_or(0) as usize,
            Err(_) => 0,
        }
    }

    pub async fn stop(self) {
        let _ = self.call(Request::Shutdown).await;
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

/// Forward a node's events to the harness as deliveries.
async fn collect(
    index: usize,
    me: MemberId,
    mut events: mpsc::Receiver<kolo::node::NodeEvent>,
    out: mpsc::UnboundedSender<Delivery>,
) {
    while let Some(event) = events.recv().await {
        let at = Instant::now();
        let kolo::node::NodeEvent::Engine(event) = event else { continue };
        let d = match *event {
            Event::Message(m) if m.sender != me => match crate::measure::parse_tag(&m.text) {
                Some(seq) => Delivery::Message { node: index, seq, at },
                None => continue,
            },
            Event::Membership { change: kolo::circle::MembershipChange::Removed { .. }, .. } => {
                Delivery::Removed { node: index, at }
            }
            _ => continue,
        };
        if out.send(d).is_err() {
            return;
        }
    }
}

/// Start a node for `member` with `profile`, listening on `port` and
/// dialling `peers` (multiaddrs) at start.
pub fn start_node(
    index: usize,
    engine: Engine,
    mut profile: Profile,
    circle: &CircleId,
    port: u16,
    peers: &[u16],
    deliveries: mpsc::UnboundedSender<Delivery>,
) -> Result<RunningNode> {
    let info = serde_json::json!({
        "port": port,
        "peers": peers.iter().map(|p| format!("/ip4/127.0.0.1/tcp/{p}")).collect::<Vec<_>>(),
    });
    profile.set_net_info(circle, info.to_string().as_bytes()).map_err(err)?;
    let member = engine.member_id();
    let config = NodeConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().map_err(err)?],
        mdns: false,
        announce: Vec::new(),
        engine: EngineConfig::default(),
        transport: Default::default(),
    };
    let mut node = Node::new(engine, profile, config);
    let events = node.watch();
    // Deliveries are stamped on the observer thread (see `measure::observer`).
    crate::measure::observer().spawn(collect(index, member, events, deliveries));
    let (api, api_rx) = mpsc::channel(16_384);
    let task = tokio::spawn(node.run(api_rx));
    Ok(RunningNode { index, port, api, task })
}

/// An engine for `member` as the store would restore it (default config).
pub fn restore_engine(member: &Member) -> Result<Engine> {
    let stored = StoredCircle {
        snapshot: member.snapshot.clone(),
        chains: Vec::new(),
        messages: Vec::new(),
        frames: Vec::new(),
    };
    Engine::restore(
        IdentitySecret::from_seed(&member.identity.expose_seed()),
        member.name.clone(),
        EngineConfig::default(),
        vec![stored],
    )
    .map_err(err)
}

/// The passphrase of the harness's file profiles.
pub const PASSPHRASE: &str = "bench passphrase";

/// A whole circle of running nodes on 127.0.0.1, fully connected.
pub struct KoloCircle {
    pub circle: CircleId,
    pub nodes: Vec<RunningNode>,
    pub dummies: Vec<MemberId>,
    pub deliveries: mpsc::UnboundedReceiver<Delivery>,
    tx: mpsc::UnboundedSender<Delivery>,
    pub setup: Duration,
}

impl KoloCircle {
    /// Build, key and start `n` nodes (plus `dummies` roster-only members);
    /// every node dials every node started before it. Profiles are in memory.
    pub async fn start(n: usize, dummies: usize, seed: u64) -> Result<Self> {
        Self::start_inner(n, dummies, seed, None).await
    }

    /// As [`start`](Self::start), but the last node keeps a file profile in
    /// `home` so it can be stopped and restarted ([`restart_durable`](Self::restart_durable)).
    pub async fn start_durable_last(n: usize, seed: u64, home: &Path) -> Result<Self> {
        Self::start_inner(n, 0, seed, Some(home)).await
    }

    /// As [`start`](Self::start), but every node keeps a file profile (SQLCipher
    /// on disk, as a user's node does) under `home`.
    pub async fn start_on_disk(n: usize, seed: u64, home: &Path) -> Result<Self> {
        Self::start_with(n, 0, seed, Some(home), true).await
    }

    async fn start_inner(n: usize, dummies: usize, seed: u64, durable: Option<&Path>) -> Result<Self> {
        Self::start_with(n, dummies, seed, durable, false).await
    }

    async fn start_with(
        n: usize,
        dummies: usize,
        seed: u64,
        durable: Option<&Path>,
        all_on_disk: bool,
    ) -> Result<Self> {
        let started = Instant::now();
        let mut profiles = ephemeral_profiles(n, seed)?;
        if let (Some(home), true) = (durable, all_on_disk) {
            for (i, slot) in profiles.iter_mut().enumerate() {
                let mut rng = SeededEntropy::from_u64(seed ^ 0xd5_d5 ^ i as u64);
                let name = format!("m{i:03}");
                let opened =
                    Profile::create(&home.join(&name), PASSPHRASE, &name, KdfParams::TESTING, &mut rng).map_err(err)?;
                *slot = (name, opened.profile, opened.identity);
            }
        } else if let Some(home) = durable {
            let mut rng = SeededEntropy::from_u64(seed ^ 0xd0_d0);
            let name = format!("m{:03}", n - 1);
            let opened = Profile::create(&home.join("observer"), PASSPHRASE, &name, KdfParams::TESTING, &mut rng)
                .map_err(err)?;
            profiles[n - 1] = (name, opened.profile, opened.identity);
        }
        let mut ids = Vec::with_capacity(n);
        let mut stores = Vec::with_capacity(n);
        for (name, profile, identity) in profiles {
            ids.push((name, identity));
            stores.push(profile);
        }
        let keyed = tokio::task::block_in_place(|| key_circle(ids, dummies, seed))?;
        let (tx, rx) = mpsc::unbounded_channel();
        let ports: Vec<u16> = (0..n).map(|_| free_port()).collect::<Result<_>>()?;
        let mut nodes = Vec::with_capacity(n);
        for (i, (member, mut profile)) in keyed.members.iter().zip(stores).enumerate() {
            let engine = restore_engine(member)?;
            if !profile.is_ephemeral() {
                // What a node that joined would have on disk.
                let mut rng = SeededEntropy::from_u64(seed ^ 0xd1_d1);
                profile.apply(&[Record::CircleState { circle: keyed.circle }], &engine, &mut rng).map_err(err)?;
            }
            nodes.push(start_node(i, engine, profile, &keyed.circle, ports[i], &ports[..i], tx.clone())?);
        }
        let circle =
            Self { circle: keyed.circle, nodes, dummies: keyed.dummies, deliveries: rx, tx, setup: Duration::ZERO };
        // Generous: on 2 shared cores a 50- or 100-node circle can take minutes
        // (a failed dial is retried on the node's 30 s redial).
        circle.wait_connected(Duration::from_secs(60 + 4 * n as u64)).await?;
        Ok(Self { setup: started.elapsed(), ..circle })
    }

    /// Start node `index` again from its file profile in `home`, on `port`,
    /// dialling every other node; it is pushed as the last node.
    pub fn restart_durable(&mut self, index: usize, port: u16, home: &Path) -> Result<()> {
        let mut rng = SeededEntropy::from_u64(index as u64 ^ 0xd2_d2);
        let opened = Profile::open(&home.join("observer"), PASSPHRASE, now_ms(), &mut rng).map_err(err)?;
        let engine = Engine::restore(opened.identity, opened.display_name, EngineConfig::default(), opened.circles)
            .map_err(err)?;
        let peers: Vec<u16> = self.nodes.iter().map(|n| n.port).collect();
        let node = start_node(index, engine, opened.profile, &self.circle, port, &peers, self.tx.clone())?;
        self.nodes.push(node);
        Ok(())
    }

    /// Wait until every node has a connection to every other node.
    pub async fn wait_connected(&self, limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        let want = self.nodes.len() - 1;
        loop {
            let mut worst = usize::MAX;
            for node in &self.nodes {
                worst = worst.min(node.peers().await);
            }
            if worst >= want {
                return Ok(());
            }
            // In circles of 50 and more on two loaded cores, a pair of nodes
            // sometimes never connects (a dial lost in the start-up storm);
            // gossipsub does not need a full mesh. After half the limit,
            // one or two missing links per node are accepted and reported.
            if want >= 40 && worst + 2 >= want && Instant::now() + limit / 2 > deadline {
                eprintln!("kolo circle: every node has at least {worst} of {want} peers; going on");
                return Ok(());
            }
            if Instant::now() > deadline {
                let mut banned = 0;
                let mut counts = Vec::new();
                for node in &self.nodes {
                    match node.call(Request::Status).await {
                        Ok(v) => {
                            banned += v["circles"][0]["banned_peers"].as_u64().unwrap_or(0);
                            counts.push(v["circles"][0]["peers"].to_string());
                        }
                        Err(e) => counts.push(format!("({e})")),
                    }
                }
                bail!(
                    "kolo circle: only {worst} of {want} peers connected after {limit:?} ({banned} peers cut off for invalid frames in all); per node: {}",
                    counts.join(" ")
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }

    pub async fn stop(self) {
        for node in self.nodes {
            node.stop().await;
        }
    }
}
