//! The baseline: plain libp2p gossipsub with its default message signing
//! (`MessageAuthenticity::Signed`, `ValidationMode::Strict`, the default
//! message id) and nothing of kolo: no envelope, no padding, no membership,
//! no validation round trip, no store. Same transport as a circle swarm
//! (TCP with nodelay, pnet, Noise, yamux), same heartbeat and size limit,
//! same topology (every node dials every node started before it), so the
//! ratio isolates what the kolo layer costs.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use futures::StreamExt;
use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::upgrade::Version;
use libp2p::gossipsub::{self, IdentTopic, MessageAuthenticity};
use libp2p::pnet::{PnetConfig, PreSharedKey};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, Swarm, Transport, identity, noise, tcp, yamux};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::measure::{Delivery, free_port, parse_tag};

pub const TOPIC: &str = "bench";

pub enum BaseCommand {
    Publish(Vec<u8>),
    Shutdown,
}

pub struct BaseNode {
    pub port: u16,
    pub commands: mpsc::Sender<BaseCommand>,
    /// Peers subscribed to the topic, as this node sees them.
    pub subscribed: Arc<AtomicUsize>,
    pub task: JoinHandle<()>,
}

fn build(seed: u64) -> Result<Swarm<gossipsub::Behaviour>> {
    let mut secret = [0u8; 32];
    secret[..8].copy_from_slice(&seed.to_be_bytes());
    secret[31] = 1;
    let key = identity::Keypair::ed25519_from_bytes(secret).map_err(|e| anyhow!("{e}"))?;
    let psk = PreSharedKey::new([0x42; 32]);
    let swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_other_transport(|key| {
            let noise = noise::Config::new(key)?;
            let transport = tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
                .and_then(move |socket, _| PnetConfig::new(psk).handshake(socket))
                .upgrade(Version::V1Lazy)
                .authenticate(noise)
                .multiplex(yamux::Config::default())
                .timeout(Duration::from_secs(20))
                .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)));
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(transport)
        })
        .map_err(|e| anyhow!("{e}"))?
        .with_behaviour(|key| {
            let config = gossipsub::ConfigBuilder::default()
                .max_transmit_size(kolo::engine::MAX_GOSSIP_FRAME + 1024)
                .heartbeat_interval(Duration::from_millis(700))
                .build()?;
            Ok(gossipsub::Behaviour::new(MessageAuthenticity::Signed(key.clone()), config)?)
        })
        .map_err(|e| anyhow!("{e}"))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(600)))
        .build();
    Ok(swarm)
}

/// The baseline's application: like a kolo watcher, a bounded channel to a
/// task on the observer thread, which stamps the delivery.
fn spawn_collector(index: usize, deliveries: mpsc::UnboundedSender<Delivery>) -> mpsc::Sender<u64> {
    let (tx, mut rx) = mpsc::channel::<u64>(1024);
    crate::measure::observer().spawn(async move {
        while let Some(seq) = rx.recv().await {
            if deliveries.send(Delivery::Message { node: index, seq, at: Instant::now() }).is_err() {
                return;
            }
        }
    });
    tx
}

async fn run(
    index: usize,
    mut swarm: Swarm<gossipsub::Behaviour>,
    mut commands: mpsc::Receiver<BaseCommand>,
    subscribed: Arc<AtomicUsize>,
    deliveries: mpsc::UnboundedSender<Delivery>,
) {
    let topic = IdentTopic::new(TOPIC);
    let app = spawn_collector(index, deliveries);
    loop {
        tokio::select! {
            command = commands.recv() => match command {
                Some(BaseCommand::Publish(data)) => {
                    let _ = swarm.behaviour_mut().publish(topic.clone(), data);
                }
                Some(BaseCommand::Shutdown) | None => break,
            },
            event = swarm.select_next_some() => match event {
                SwarmEvent::Behaviour(gossipsub::Event::Message { message, .. }) => {
                    if let Some(seq) = std::str::from_utf8(&message.data).ok().and_then(parse_tag) {
                        let _ = app.try_send(seq);
                    }
                }
                SwarmEvent::Behaviour(gossipsub::Event::Subscribed { .. }) => {
                    subscribed.fetch_add(1, Ordering::Relaxed);
                }
                SwarmEvent::Behaviour(gossipsub::Event::Unsubscribed { .. }) => {
                    subscribed.fetch_sub(1, Ordering::Relaxed);
                }
                _ => {}
            },
        }
    }
}

pub struct BaseCircle {
    pub nodes: Vec<BaseNode>,
    pub deliveries: mpsc::UnboundedReceiver<Delivery>,
}

impl BaseCircle {
    pub async fn start(n: usize, seed: u64) -> Result<Self> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut nodes: Vec<BaseNode> = Vec::with_capacity(n);
        for i in 0..n {
            let mut swarm = build(seed.wrapping_mul(1000).wrapping_add(i as u64))?;
            let port = free_port()?;
            let listen: Multiaddr = format!("/ip4/127.0.0.1/tcp/{port}").parse()?;
            swarm.listen_on(listen)?;
            swarm.behaviour_mut().subscribe(&IdentTopic::new(TOPIC))?;
            for earlier in &nodes {
                let a: Multiaddr = format!("/ip4/127.0.0.1/tcp/{}", earlier.port).parse()?;
                let _ = swarm.dial(a);
            }
            let (ctx, crx) = mpsc::channel(16_384);
            let subscribed = Arc::new(AtomicUsize::new(0));
            let task = tokio::spawn(run(i, swarm, crx, subscribed.clone(), tx.clone()));
            nodes.push(BaseNode { port, commands: ctx, subscribed, task });
        }
        let circle = Self { nodes, deliveries: rx };
        circle.wait_ready(Duration::from_secs(60 + 2 * n as u64)).await?;
        Ok(circle)
    }

    /// Every node sees every other node subscribed to the topic.
    async fn wait_ready(&self, limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        let want = self.nodes.len() - 1;
        loop {
            let worst = self.nodes.iter().map(|n| n.subscribed.load(Ordering::Relaxed)).min().unwrap_or(0);
            if worst >= want {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("baseline: only {worst} of {want} peers subscribed after {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }

    pub async fn publish(&self, node: usize, data: Vec<u8>) -> Result<()> {
        self.nodes[node].commands.send(BaseCommand::Publish(data)).await.map_err(|_| anyhow!("baseline node stopped"))
    }

    pub async fn stop(self) {
        for n in self.nodes {
            let _ = n.commands.send(BaseCommand::Shutdown).await;
            let _ = tokio::time::timeout(Duration::from_secs(10), n.task).await;
        }
    }
}

impl BaseCircle {
    /// One node alone (for the idle-memory figure).
    pub async fn start_one(seed: u64) -> Result<Self> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut swarm = build(seed)?;
        let port = free_port()?;
        swarm.listen_on(format!("/ip4/127.0.0.1/tcp/{port}").parse()?)?;
        swarm.behaviour_mut().subscribe(&IdentTopic::new(TOPIC))?;
        let (ctx, crx) = mpsc::channel(16);
        let subscribed = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(run(0, swarm, crx, subscribed.clone(), tx));
        Ok(Self { nodes: vec![BaseNode { port, commands: ctx, subscribed, task }], deliveries: rx })
    }
}
