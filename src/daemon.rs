//! `kolo daemon`: open the profile, take its lock, log to a file in the
//! profile, serve the control socket, and run the node until asked to stop
//! (control request, SIGINT or SIGTERM).

use kolo::clock::now_ms;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::sync::mpsc;
use zeroize::Zeroizing;

use kolo::engine::{Engine, EngineConfig};
use kolo::entropy::OsEntropy;
use kolo::node::{Node, NodeConfig};
use kolo::store::{Access, Profile};
use kolo::ui::keymap::Keymap;
use kolo::ui::runtime::{Options, Outcome};

pub use kolo::store::{KEYS_FILE, LOCK_FILE, LOG_FILE};

/// How long `kolo panic` and the duress passphrase wait for a running node
/// to stop after asking it to.
pub const STOP_WAIT: Duration = Duration::from_secs(15);

/// One node per profile: an exclusive lock held for the daemon's life.
pub fn lock(dir: &Path) -> anyhow::Result<std::fs::File> {
    match try_lock(dir)? {
        Some(file) => Ok(file),
        None => bail!("kolo is already running for the profile in {}", dir.display()),
    }
}

/// The profile lock, or `None` when a running node holds it.
pub fn try_lock(dir: &Path) -> anyhow::Result<Option<std::fs::File>> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(e).context("cannot lock the profile"),
    }
}

/// Stop the node running for the profile in `dir`, if one runs: ask it
/// over the control socket, then wait (at most `wait`) until its profile
/// lock is free, and take the lock. `None`: a node still holds the lock.
pub fn stop_running_node(dir: &Path, wait: Duration) -> anyhow::Result<Option<std::fs::File>> {
    if let Some(file) = try_lock(dir)? {
        return Ok(Some(file));
    }
    // Its answer does not matter: the lock says when it is gone.
    let _ = kolo::api::call(dir, &kolo::api::Request::Shutdown);
    let deadline = Instant::now() + wait;
    loop {
        std::thread::sleep(Duration::from_millis(100));
        if let Some(file) = try_lock(dir)? {
            return Ok(Some(file));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
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
/// `KOLO_LOG` raises the level for kolo's own modules; the network
/// libraries' own lines (which name peer addresses) stay off unless
/// `KOLO_LOG_ADDRESSES=1` asks for them explicitly.
pub fn init_logging(dir: &Path) {
    use std::os::unix::fs::OpenOptionsExt;
    let Ok(file) = std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(dir.join(LOG_FILE)) else {
        return;
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(log_filter(std::env::var("KOLO_LOG").ok().as_deref(), addresses_allowed()))
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .try_init();
}

/// Whether the user asked, explicitly, for logs that name peer addresses.
pub fn addresses_allowed() -> bool {
    std::env::var("KOLO_LOG_ADDRESSES").is_ok_and(|v| v == "1")
}

/// Crates whose log lines name peer addresses (dials, listeners, mDNS).
/// (`kolo_addresses` is kolo's own target for such lines.)
const ADDRESS_LOGGERS: &[&str] = &[
    "kolo_addresses",
    "libp2p",
    "multistream_select",
    "yamux",
    "hickory",
    "if_watch",
    "netlink",
    "rtnetlink",
    "quinn",
    "snow",
];

/// The tracing filter: the user's `KOLO_LOG` (default `warn`), with the
/// network libraries silenced unless addresses are allowed.
pub fn log_filter(requested: Option<&str>, addresses: bool) -> tracing_subscriber::EnvFilter {
    let mut filter = tracing_subscriber::EnvFilter::try_new(requested.unwrap_or("warn"))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    if !addresses {
        for target in ADDRESS_LOGGERS {
            if let Ok(d) = format!("{target}=off").parse() {
                filter = filter.add_directive(d);
            }
        }
    }
    filter
}

/// How the daemon gets its profile.
pub enum Source<'a> {
    /// The encrypted profile in the home directory. The passphrase is
    /// dropped (and zeroed) as soon as the profile is open.
    Disk { passphrase: Zeroizing<String> },
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
    // Before any key is in memory: keep it out of swap where allowed.
    let unlocked_memory = crate::hardening::lock_memory();
    let mut rng = OsEntropy;
    let ephemeral = matches!(source, Source::Ephemeral { .. });
    let endpoint = kolo::api::Endpoint::for_profile(dir, ephemeral);
    let (_lock, opened) = match source {
        Source::Disk { passphrase } => {
            let (lock, opened) = open_disk(dir, passphrase, &mut rng)?;
            init_logging(dir);
            (Some(lock), opened)
        }
        Source::Ephemeral { name } => (None, Profile::ephemeral(name, &mut rng)?),
    };
    if let Some(warning) = &unlocked_memory {
        tracing::warn!("{warning}");
        if matches!(frontend, Frontend::Headless) {
            eprintln!("kolo: warning: {warning}");
        }
    }
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
        let pushes = kolo::api::pushes();
        let server = tokio::spawn(kolo::api::serve(listener, api_tx.clone(), pushes.clone(), closing_rx));
        let mut node = Node::new(engine, opened.profile, config);
        // Events for the control socket's subscribers (bounded, lossy).
        tokio::spawn(kolo::api::forward_events(node.watch(), pushes));
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
                let options = Options { keymap, relay: None, demo: None, trainer: false };
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
        // The node has stopped (its keys went with it); this process still
        // holds the lock, so nothing else opens the profile meanwhile.
        if !ephemeral {
            report_destroyed(dir, kolo::store::destroy(dir)?);
        } else {
            println!("profile destroyed");
        }
    }
    Ok(())
}

/// `kolo chat` while a node already runs for the profile: the terminal
/// client over the control socket (no passphrase: the socket is the
/// user's own, mode 0600, as for every subcommand). Quitting leaves the
/// node running; `/panic` stops it and destroys the profile, as
/// `kolo panic --yes` does.
pub fn attach(dir: &Path, attached: kolo::api::Attached, ephemeral: bool) -> anyhow::Result<()> {
    let keymap = load_keymap(dir, ephemeral)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let options = Options { keymap, relay: None, demo: None, trainer: false };
    let outcome = runtime.block_on(kolo::ui::runtime::run_attached(attached, options))?;
    if outcome == Outcome::Panic {
        if ephemeral {
            // Nothing on disk: stopping the node erases it.
            let endpoint = kolo::api::Endpoint::for_profile(dir, true);
            let _ = kolo::api::call_endpoint(&endpoint, dir, &kolo::api::Request::Shutdown);
            println!("profile destroyed");
            return Ok(());
        }
        stop_and_destroy(dir)?;
    }
    Ok(())
}

/// `kolo panic --yes`, and `/panic` in an attached chat: a node running for
/// the profile holds every key in memory and would go on serving the
/// history, so stop it first (control socket, then its lock), wipe under
/// the lock, and say what happened.
pub fn stop_and_destroy(dir: &Path) -> anyhow::Result<()> {
    let lock = stop_running_node(dir, STOP_WAIT)?;
    let removed = kolo::store::destroy(dir)?;
    let stuck = lock.is_none();
    drop(lock);
    if stuck {
        bail!(
            "the profile's files are destroyed, but the kolo node running for it did not stop; \
             it still holds keys in memory: end that process or power the machine off"
        );
    }
    report_destroyed(dir, removed);
    Ok(())
}

/// What `kolo panic` and `/panic` say after [`kolo::store::destroy`].
pub fn report_destroyed(dir: &Path, dir_removed: bool) {
    if dir_removed {
        println!("profile destroyed");
    } else {
        println!("profile destroyed; {} stays: it holds files that are not kolo's", dir.display());
    }
}

/// Verify the passphrase against the header (touching nothing), then:
/// the real passphrase takes the lock and opens the profile; the duress
/// passphrase stops a node running for the profile, destroys it and makes
/// a fresh one in its place. The passphrase is dropped before returning.
pub fn open_disk(
    dir: &Path,
    passphrase: Zeroizing<String>,
    rng: &mut OsEntropy,
) -> anyhow::Result<(std::fs::File, kolo::store::Opened)> {
    let access = kolo::store::unlock(dir, &passphrase)?;
    open_access(dir, access, passphrase, rng)
}

/// [`open_disk`] once the header said what the passphrase opens.
pub fn open_access(
    dir: &Path,
    access: Access,
    passphrase: Zeroizing<String>,
    rng: &mut OsEntropy,
) -> anyhow::Result<(std::fs::File, kolo::store::Opened)> {
    let result = match access {
        Access::Real(key) => {
            let lock = lock(dir)?;
            let opened = Profile::open_unlocked(dir, key, now_ms(), rng)?;
            (lock, opened)
        }
        Access::Duress(duress) => {
            let old_lock = stop_running_node(dir, STOP_WAIT)?;
            // Destroyed whether or not a stuck node still holds the lock:
            // the keys on disk go first.
            let stuck = old_lock.is_none();
            let opened = Profile::replace_after_duress(dir, &passphrase, duress, rng);
            drop(old_lock);
            let opened = opened?;
            if stuck {
                bail!("kolo is already running for the profile in {}", dir.display());
            }
            (lock(dir)?, opened)
        }
    };
    drop(passphrase);
    Ok(result)
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
