//! What the harness measures with: message tags, delivery records,
//! percentiles, bytes on loopback TCP connections (from the kernel's
//! per-socket counters via `ss`), resident memory, free ports.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::sync::mpsc;

pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// A free TCP port on 127.0.0.1 (bound, read, released).
pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// The text of benchmark message `seq`, `size` bytes long.
pub fn tagged(seq: u64, size: usize) -> String {
    let mut t = format!("b{seq:010}.");
    while t.len() < size {
        t.push('x');
    }
    t
}

pub fn parse_tag(text: &str) -> Option<u64> {
    let rest = text.strip_prefix('b')?;
    rest.get(..10)?.parse().ok()
}

/// The observer: one thread of its own, outside the runtime the nodes run
/// in, where deliveries are time-stamped for both systems alike. Stamping
/// inside the nodes' busy 2-worker runtime measured how long a collector
/// task waited behind every node's network work (tens of tasks), not when
/// the node handed the message to its application.
#[allow(clippy::panic)] // Bench harness: without it nothing can be measured.
pub fn observer() -> &'static tokio::runtime::Runtime {
    static OBSERVER: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    OBSERVER.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("observer")
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("observer runtime: {e}"))
    })
}

/// What the nodes report back to the harness.
#[derive(Debug)]
pub enum Delivery {
    /// Node `node` decrypted (kolo) or received (baseline) message `seq`.
    Message { node: usize, seq: u64, at: Instant },
    /// Node `node` applied a removal.
    Removed { node: usize, at: Instant },
}

/// Deliveries per message, collected until every expected one arrived or
/// the time limit passed.
#[derive(Default)]
pub struct Ledger {
    pub sent: HashMap<u64, Instant>,
    pub received: HashMap<u64, HashMap<usize, Instant>>,
}

impl Ledger {
    pub fn record(&mut self, d: &Delivery) {
        if let Delivery::Message { node, seq, at } = d {
            self.received.entry(*seq).or_default().entry(*node).or_insert(*at);
        }
    }

    pub fn complete(&self, seq: u64, receivers: usize) -> bool {
        self.received.get(&seq).is_some_and(|r| r.len() >= receivers)
    }

    pub fn all_complete(&self, receivers: usize) -> bool {
        self.sent.keys().all(|s| self.complete(*s, receivers))
    }

    /// Publish-to-last-receiver latency of every complete message.
    pub fn latencies(&self, receivers: usize) -> Vec<Duration> {
        let mut out: Vec<Duration> = self
            .sent
            .iter()
            .filter_map(|(seq, at)| {
                let r = self.received.get(seq)?;
                if r.len() < receivers {
                    return None;
                }
                r.values().max().map(|last| last.saturating_duration_since(*at))
            })
            .collect();
        out.sort();
        out
    }

    pub fn missing(&self, receivers: usize) -> usize {
        self.sent.keys().map(|s| receivers.saturating_sub(self.received.get(s).map_or(0, HashMap::len))).sum()
    }
}

/// Drain deliveries into `ledger` until `done(ledger)` or `limit`.
pub async fn drain_until(
    rx: &mut mpsc::UnboundedReceiver<Delivery>,
    ledger: &mut Ledger,
    limit: Duration,
    mut done: impl FnMut(&Ledger) -> bool,
) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        while let Ok(d) = rx.try_recv() {
            ledger.record(&d);
        }
        if done(ledger) {
            return true;
        }
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(d)) => ledger.record(&d),
            Ok(None) | Err(_) => return done(ledger),
        }
    }
}

/// Percentile (nearest rank) of sorted durations, in milliseconds.
pub fn pct_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1].as_secs_f64() * 1000.0
}

/// Total TCP payload bytes received by every established loopback socket
/// that has one end on `ports` (both directions of every connection among
/// the harness's nodes, each counted once, at its receiver). From the
/// kernel's `tcp_info` via `ss` (iproute2).
pub fn loopback_bytes(ports: &HashSet<u16>) -> Result<u64> {
    let out = std::process::Command::new("ss")
        .args(["-tinH", "state", "established"])
        .output()
        .context("running ss (iproute2) to read per-socket byte counters")?;
    if !out.status.success() {
        bail!("ss failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut total = 0u64;
    let mut counting = false;
    let port_of = |s: &str| s.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok());
    for line in text.lines() {
        if !line.starts_with(char::is_whitespace) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            counting = fields.len() >= 4
                && fields[2].starts_with("127.0.0.1:")
                && [fields[2], fields[3]].iter().any(|a| port_of(a).is_some_and(|p| ports.contains(&p)));
            continue;
        }
        if counting {
            for tok in line.split_whitespace() {
                if let Some(v) = tok.strip_prefix("bytes_received:") {
                    total += v.parse::<u64>().unwrap_or(0);
                }
            }
        }
    }
    Ok(total)
}

/// This process's resident set size, in KiB.
pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// CPU time (user + system) this process has used so far, in seconds
/// (`/proc/self/stat` fields 14 and 15, in clock ticks of 1/100 s).
pub fn process_cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name (field 2) may hold spaces; count from after it.
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // After the name: state is field 3, so utime (14) and stime (15) sit at 11 and 12.
    (ticks(11) + ticks(12)) as f64 / 100.0
}

/// Bytes of every file under `dir`.
pub fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}
