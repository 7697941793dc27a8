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
use kolo::ui::keymap::Keymap;
use kolo::ui::runtime::{Options, Outcome};

pub const LOCK_FILE: &str = "daemon.lock";
pub const LOG_FILE: &str = "kolo.log";
/// Key bindings the user changed (`ctrl-x = quit` per line).
pub const KEYS_FILE: &str = "keys.conf";

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

/// Start kolo's own tor: its data in the profile directory, or for an
/// ephemeral node in a temporary directory removed when it stops.
/// Bootstrap progress goes to the terminal.
async fn start_tor(dir: &Path, ephemeral: bool) -> anyhow::Result<kolo::net::tor::TorRuntime> {
    let data_dir = if ephemeral {
        let tag: [u8; 8] = kolo::entropy::Entropy::array(&mut OsEntropy);
        std::env::temp_dir().join(format!("kolo-tor-{}", kolo::identity::hex(&tag)))
    } else {
        dir.join("tor")
    };
    eprintln!("starting tor (this can take a minute)...");
    let runtime = kolo::net::tor::start_own_tor(data_dir, ephemeral, |b| {
        eprintln!("tor: {:>3} % {}", b.progress, b.summary);
    })
    .await
    .context("tor did not start; is it installed (apt install tor)?")?;
    eprintln!("tor is ready: circles started now are reachable only as onion services");
    Ok(runtime)
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

/// What runs beside the node.
pub enum Frontend {
    /// Nothing: stop on `kolo stop`, SIGINT or SIGTERM.
    Headless,
    /// The terminal client, in the same process (one node per profile).
    Terminal,
}

pub fn run(
    dir: &Path,
    source: Source<'_>,
    listen: &[String],
    mdns: bool,
    transport: &str,
    frontend: Frontend,
) -> anyhow::Result<()> {
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
    let mut config = NodeConfig {
        listen,
        mdns,
        announce: Vec::new(),
        engine: EngineConfig::default(),
        transport: kolo::node::Transport::Direct,
    };
    let engine = Engine::restore(opened.identity, opened.display_name, config.engine.clone(), opened.circles)?;
    let keymap = match &frontend {
        Frontend::Terminal => Some(load_keymap(dir, ephemeral)?),
        Frontend::Headless => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let outcome = runtime.block_on(async move {
        // Tor first: the control socket answers once the node can reach members.
        if transport == "tor" {
            config.transport = kolo::node::Transport::Tor(start_tor(dir, ephemeral).await?);
        }
        let listener = kolo::api::bind(&endpoint).map_err(|e| match e.kind() {
            std::io::ErrorKind::AddrInUse => anyhow::anyhow!("kolo is already running for {}", dir.display()),
            _ => anyhow::anyhow!("cannot create the control socket: {e}"),
        })?;
        let (api_tx, api_rx) = mpsc::channel(64);
        let (closing_tx, closing_rx) = tokio::sync::watch::channel(false);
        let server = tokio::spawn(kolo::api::serve(listener, api_tx.clone(), closing_rx));
        let mut node = Node::new(engine, opened.profile, config);
        let outcome = match keymap {
            None => {
                drop(api_tx);
                println!("kolo is running; stop it with `kolo stop` or Ctrl-C");
                tokio::select! {
                    _ = node.run(api_rx) => {}
                    _ = stop_signal() => {}
                }
                Outcome::Quit
            }
            Some(keymap) => {
                let events = node.watch();
                let options = Options { keymap, relay: None, trainer: false };
                kolo::ui::runtime::run_beside(node, api_tx, api_rx, events, options).await?
            }
        };
        // Let answers already given (the `stop` answer among them) reach their clients.
        let _ = closing_tx.send(true);
        let _ = server.await;
        if let kolo::api::Endpoint::File(path) = &endpoint {
            let _ = std::fs::remove_file(path);
        }
        Ok::<Outcome, anyhow::Error>(outcome)
    })?;
    if outcome == Outcome::Panic {
        if !ephemeral {
            kolo::store::destroy(dir)?;
        }
        println!("profile destroyed");
    }
    Ok(())
}

/// SIGINT or SIGTERM.
async fn stop_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
    }
}

/// The default key bindings with the user's `keys.conf` (in the profile
/// directory) on top; a broken file is an error naming it, not a surprise.
fn load_keymap(dir: &Path, ephemeral: bool) -> anyhow::Result<Keymap> {
    let path = dir.join(KEYS_FILE);
    if ephemeral || !path.exists() {
        return Ok(Keymap::default());
    }
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    Keymap::with_overrides(&text).with_context(|| format!("in {}", path.display()))
}
