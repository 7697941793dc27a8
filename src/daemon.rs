//! `kolo daemon`: open the profile, take its lock, log to a file in the
//! profile, serve the control socket, and run the node until asked to stop
//! (control request, SIGINT or SIGTERM).

use std::path::Path;

use anyhow::{Context, bail};
use tokio::sync::mpsc;

use kolo::engine::{Engine, EngineConfig};
use kolo::entropy::OsEntropy;
use kolo::node::{Node, NodeConfig};
use kolo::store::Profile;

pub const LOCK_FILE: &str = "daemon.lock";
pub const LOG_FILE: &str = "kolo.log";

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// One node per profile: an exclusive lock held for the daemon's life.
pub fn lock(dir: &Path) -> anyhow::Result<std::fs::File> {
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            bail!("kolo is already running for the profile in {}", dir.display())
        }
        Err(std::fs::TryLockError::Error(e)) => Err(e).context("cannot lock the profile"),
    }
}

/// Logs go to a file in the profile, never to the terminal. They hold
/// warnings and errors only: no message content, names or addresses.
pub fn init_logging(dir: &Path) {
    let Ok(file) = std::fs::OpenOptions::new().create(true).append(true).open(dir.join(LOG_FILE)) else {
        return;
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("KOLO_LOG").unwrap_or_else(|_| "warn".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .try_init();
}

/// How the daemon gets its profile.
pub enum Source<'a> {
    /// The encrypted profile in the home directory.
    Disk { passphrase: &'a str },
    /// Everything in memory; nothing is written anywhere (`--ephemeral`).
    Ephemeral { name: &'a str },
}

pub fn run(dir: &Path, source: Source<'_>, listen: &[String], mdns: bool) -> anyhow::Result<()> {
    let mut rng = OsEntropy;
    let ephemeral = matches!(source, Source::Ephemeral { .. });
    let endpoint = kolo::api::Endpoint::for_profile(dir, ephemeral);
    let (_lock, opened) = match source {
        Source::Disk { passphrase } => {
            if !dir.join(kolo::store::HEADER_FILE).exists() {
                bail!("no kolo profile in {}; create one with `kolo init --name NAME`", dir.display());
            }
            let lock = lock(dir)?;
            let opened = Profile::open(dir, passphrase, now_ms(), &mut rng)?;
            init_logging(dir);
            (Some(lock), opened)
        }
        Source::Ephemeral { name } => (None, Profile::ephemeral(name, &mut rng)?),
    };
    let listen = listen
        .iter()
        .map(|a| a.parse().with_context(|| format!("not a network address: {a}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let config = NodeConfig { listen, mdns, engine: EngineConfig::default() };
    let engine = Engine::restore(opened.identity, opened.display_name, config.engine.clone(), opened.circles)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async move {
        let listener = kolo::api::bind(&endpoint).map_err(|e| match e.kind() {
            std::io::ErrorKind::AddrInUse => anyhow::anyhow!("kolo is already running for {}", dir.display()),
            _ => anyhow::anyhow!("cannot create the control socket: {e}"),
        })?;
        let (api_tx, api_rx) = mpsc::channel(64);
        let (closing_tx, closing_rx) = tokio::sync::watch::channel(false);
        let server = tokio::spawn(kolo::api::serve(listener, api_tx, closing_rx));
        let node = Node::new(engine, opened.profile, config);
        println!("kolo is running; stop it with `kolo stop` or Ctrl-C");
        let signals = async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
            }
        };
        tokio::select! {
            _ = node.run(api_rx) => {}
            _ = signals => {}
        }
        // Let answers already given (the `stop` answer among them) reach their clients.
        let _ = closing_tx.send(true);
        let _ = server.await;
        if let kolo::api::Endpoint::File(path) = &endpoint {
            let _ = std::fs::remove_file(path);
        }
        Ok::<(), anyhow::Error>(())
    })
}
