//! The scenarios of the network harness. Each runs kolo and its baseline
//! back to back in the same process and reports both with their ratio.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use kolo::api::Request;
use kolo::engine::message::{Body, Inner};
use kolo::engine::{Command, EngineConfig, Input, Output, Record};
use kolo::entropy::SeededEntropy;
use kolo::identity::{IdentitySecret, MemberId, hex};
use kolo::store::{KdfParams, Profile};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;

use crate::Opts;
use crate::baseline::BaseCircle;
use crate::kolo_nodes::{KoloCircle, PASSPHRASE, key_circle, restore_engine, start_node};
use crate::measure::{
    Delivery, Ledger, drain_until, loopback_bytes, now_ms, pct_ms, process_cpu_secs, rss_kib, tagged,
};

/// Time for presence announcements and the first catch-up rounds to pass
/// before anything is measured.
const SETTLE: Duration = Duration::from_secs(3);

fn results_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("target"));
    let dir = target.join("bench-results");
    let _ = std::fs::create_dir_all(&dir);
    dir
}

pub(crate) fn write_result(name: &str, value: &Value) {
    let path = results_dir().join(format!("net-{name}.json"));
    if let Err(e) = std::fs::write(&path, serde_json::to_string_pretty(value).unwrap_or_default()) {
        eprintln!("could not write {}: {e}", path.display());
    } else {
        println!("wrote {}", path.display());
    }
}

pub(crate) fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned()))
        .unwrap_or_default();
    let mem_kib: u64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:").and_then(|v| v.split_whitespace().next()?.parse().ok()))
        .unwrap_or(0);
    json!({
        "cpu": cpu,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "mem_gib": mem_kib / (1024 * 1024),
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
    })
}

/// Either system, driven the same way.
pub enum Net {
    Kolo(KoloCircle),
    Base(BaseCircle),
}

impl Net {
    async fn start(kolo: bool, n: usize, seed: u64) -> Result<Self> {
        Self::start_in(kolo, n, seed, None).await
    }

    /// With `disk`, every kolo node keeps a file profile under that directory.
    async fn start_in(kolo: bool, n: usize, seed: u64, disk: Option<&Path>) -> Result<Self> {
        Ok(if kolo {
            Net::Kolo(match disk {
                Some(home) => KoloCircle::start_on_disk(n, seed, home).await?,
                None => KoloCircle::start(n, 0, seed).await?,
            })
        } else {
            Net::Base(BaseCircle::start(n, seed).await?)
        })
    }

    fn name(&self) -> &'static str {
        match self {
            Net::Kolo(_) => "kolo",
            Net::Base(_) => "baseline",
        }
    }

    fn len(&self) -> usize {
        match self {
            Net::Kolo(c) => c.nodes.len(),
            Net::Base(b) => b.nodes.len(),
        }
    }

    fn ports(&self) -> HashSet<u16> {
        match self {
            Net::Kolo(c) => c.ports().into_iter().collect(),
            Net::Base(b) => b.ports().into_iter().collect(),
        }
    }

    fn rx(&mut self) -> &mut mpsc::UnboundedReceiver<Delivery> {
        match self {
            Net::Kolo(c) => &mut c.deliveries,
            Net::Base(b) => &mut b.deliveries,
        }
    }

    async fn publish(&self, from: usize, seq: u64, size: usize) -> Result<()> {
        match self {
            Net::Kolo(c) => c.nodes[from].send_text(&c.circle, tagged(seq, size)).await,
            Net::Base(b) => b.publish(from, tagged(seq, size).into_bytes()).await,
        }
    }

    async fn stop(self) {
        match self {
            Net::Kolo(c) => c.stop().await,
            Net::Base(b) => b.stop().await,
        }
    }
}

pub struct Run {
    pub latencies: Vec<Duration>,
    pub missing: usize,
    pub bytes: u64,
    pub deliveries: usize,
}

impl Run {
    fn p(&self, pct: f64) -> f64 {
        pct_ms(&self.latencies, pct)
    }
    fn bytes_per_delivery(&self) -> f64 {
        self.bytes as f64 / self.deliveries.max(1) as f64
    }
}

/// Publish `count` messages of `size` bytes from node `from` at `rate` per
/// second; wait (at most `limit`) until every other node has each.
async fn run_messages(
    net: &mut Net,
    from: usize,
    count: usize,
    size: usize,
    rate: f64,
    seq_base: u64,
    limit: Duration,
) -> Result<Run> {
    let receivers = net.len() - 1;
    while net.rx().try_recv().is_ok() {}
    let ports = net.ports();
    let bytes_before = loopback_bytes(&ports)?;
    let mut ledger = Ledger::default();
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
    for k in 0..count {
        ticker.tick().await;
        let seq = seq_base + k as u64;
        ledger.sent.insert(seq, Instant::now());
        net.publish(from, seq, size).await?;
        while let Ok(d) = net.rx().try_recv() {
            ledger.record(&d);
        }
    }
    drain_until(net.rx(), &mut ledger, limit, |l| l.all_complete(receivers)).await;
    // Let trailing gossip (IHAVE, acknowledgements) land in the same window.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let bytes = loopback_bytes(&ports)?.saturating_sub(bytes_before);
    if std::env::var_os("BENCH_DEBUG").is_some() {
        // Per receiver rank: how long until the k-th member had each message.
        let mut ranks: Vec<Vec<f64>> = vec![Vec::new(); receivers];
        for (seq, at) in &ledger.sent {
            if let Some(r) = ledger.received.get(seq) {
                let mut v: Vec<f64> =
                    r.values().map(|t| t.saturating_duration_since(*at).as_secs_f64() * 1e3).collect();
                v.sort_by(f64::total_cmp);
                for (k, x) in v.into_iter().enumerate() {
                    ranks[k].push(x);
                }
            }
        }
        let med = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
        };
        let line: Vec<String> = ranks.iter_mut().map(|v| format!("{:.2}", med(v))).collect();
        eprintln!("{} size {size}: median ms to the k-th receiver: {}", net.name(), line.join(" "));
    }
    Ok(Run {
        latencies: ledger.latencies(receivers),
        missing: ledger.missing(receivers),
        bytes,
        deliveries: count * receivers,
    })
}

/// The size of kolo's group frame for a text of `size` bytes.
fn kolo_frame_len(size: usize) -> usize {
    let inner = Inner {
        circle_id: [0; 32],
        sender: MemberId([0; 32]),
        epoch: 1,
        sent_at_ms: 0,
        timer_secs: 0,
        body: Body::Text(tagged(0, size)),
    };
    let padded = kolo::wire::pad(&inner.encode()).map(|p| p.len()).unwrap_or(0);
    kolo::crypto::envelope::HEADER_LEN
        + padded
        + kolo::crypto::envelope::TAG_LEN
        + kolo::crypto::envelope::SIGNATURE_LEN
}

pub(crate) fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { f64::NAN }
}

// -------------------------------------------------------------------
// 2 + 4: end-to-end latency and bytes on the wire
// -------------------------------------------------------------------

pub async fn latency(opts: &Opts) -> Result<()> {
    let sizes = opts.sizes.clone().unwrap_or_else(|| vec![10, 25, 50]);
    let count = opts.messages.unwrap_or(150);
    // `--disk`: kolo nodes keep file profiles (SQLCipher on disk, fsync per
    // transaction) instead of in-memory ones.
    let on_disk = opts.rest.iter().any(|a| a == "--disk");
    let mut rows = Vec::new();
    for &n in &sizes {
        let mut per_system = Vec::new();
        let only_kolo = opts.rest.iter().any(|a| a == "--kolo-only");
        for kolo in [true, false] {
            if only_kolo && !kolo {
                return Ok(());
            }
            let home = if on_disk { Some(tempdir(&format!("latency-{n}"))?) } else { None };
            let mut net = Net::start_in(kolo, n, opts.seed, home.as_deref()).await?;
            tokio::time::sleep(SETTLE).await;
            // Warm-up (mesh formed, caches filled); not counted.
            run_messages(&mut net, 0, 10, 64, 20.0, 1_000_000, Duration::from_secs(30)).await?;
            let rate = latency_rate(n);
            let small = run_messages(&mut net, 0, count, 64, rate, 0, Duration::from_secs(60)).await?;
            let large = run_messages(&mut net, 0, count / 2, 1024, rate, 100_000, Duration::from_secs(60)).await?;
            println!(
                "{:>8} n={n:<3} 64 B: p50 {:.2} ms p99 {:.2} ms missing {} | {:.0} B/delivery; 1 KiB: p50 {:.2} ms p99 {:.2} ms | {:.0} B/delivery",
                net.name(),
                small.p(50.0),
                small.p(99.0),
                small.missing,
                small.bytes_per_delivery(),
                large.p(50.0),
                large.p(99.0),
                large.bytes_per_delivery()
            );
            net.stop().await;
            if let Some(home) = home {
                let _ = std::fs::remove_dir_all(home);
            }
            per_system.push((small, large));
        }
        let (ks, kl) = &per_system[0];
        let (bs, bl) = &per_system[1];
        // Duplicate factor: the growth in bytes per delivery between the two
        // payload sizes, divided by the growth of one copy of the message.
        let kolo_dup = (kl.bytes_per_delivery() - ks.bytes_per_delivery())
            / (kolo_frame_len(1024) as f64 - kolo_frame_len(64) as f64);
        let base_dup = (bl.bytes_per_delivery() - bs.bytes_per_delivery()) / (1024.0 - 64.0 + 1.0);
        let row = json!({
            "n": n,
            "kolo": { "p50_ms": ks.p(50.0), "p99_ms": ks.p(99.0), "missing": ks.missing,
                      "p50_1k_ms": kl.p(50.0), "p99_1k_ms": kl.p(99.0),
                      "bytes_per_delivery_64": ks.bytes_per_delivery(), "bytes_per_delivery_1k": kl.bytes_per_delivery(),
                      "frame_64": kolo_frame_len(64), "frame_1k": kolo_frame_len(1024), "dup_factor": kolo_dup },
            "baseline": { "p50_ms": bs.p(50.0), "p99_ms": bs.p(99.0), "missing": bs.missing,
                      "p50_1k_ms": bl.p(50.0), "p99_1k_ms": bl.p(99.0),
                      "bytes_per_delivery_64": bs.bytes_per_delivery(), "bytes_per_delivery_1k": bl.bytes_per_delivery(),
                      "dup_factor": base_dup },
            "ratio": { "p50": ratio(ks.p(50.0), bs.p(50.0)), "p99": ratio(ks.p(99.0), bs.p(99.0)),
                       "p50_1k": ratio(kl.p(50.0), bl.p(50.0)), "p99_1k": ratio(kl.p(99.0), bl.p(99.0)),
                       "bytes_64": ratio(ks.bytes_per_delivery(), bs.bytes_per_delivery()),
                       "bytes_1k": ratio(kl.bytes_per_delivery(), bl.bytes_per_delivery()) },
        });
        println!("n={n}: ratios {}", row["ratio"]);
        rows.push(row);
        // Written after every size, so a failure at a later size keeps these.
        write_latency(&rows, count, on_disk)?;
    }
    Ok(())
}

fn write_latency(rows: &[Value], count: usize, on_disk: bool) -> Result<()> {
    let rates: Vec<f64> = rows.iter().filter_map(|r| r["n"].as_u64()).map(|n| latency_rate(n as usize)).collect();
    let profiles = if on_disk { "file (on disk)" } else { "in memory" };
    let doc = json!({ "scenario": "latency", "machine": machine(), "messages": count, "rate_per_s": rates,
                      "kolo_profiles": profiles, "rows": rows });
    if on_disk {
        write_result("latency-disk", &doc);
    } else {
        write_result("latency", &doc);
        crate::svg::latency_chart(&doc, &results_dir().join("latency.svg"))?;
    }
    Ok(())
}

/// Messages per second for the latency runs: low enough that neither
/// system queues on this 2-core machine (latency, not throughput; the
/// saturation scenario measures throughput).
fn latency_rate(n: usize) -> f64 {
    (300.0 / n as f64).min(15.0)
}

// -------------------------------------------------------------------
// 5: removal rekey
// -------------------------------------------------------------------

pub async fn rekey(opts: &Opts) -> Result<()> {
    let sizes = opts.sizes.clone().unwrap_or_else(|| vec![10, 50, 100]);
    let mut rows = Vec::new();
    for &n in &sizes {
        let kolo = rekey_kolo(n, opts.seed).await?;
        let base = broadcast_round(n, opts.seed).await?;
        let row = json!({
            "n": n,
            "kolo": kolo,
            "baseline": base,
            "ratio": { "time": ratio(kolo["time_ms"].as_f64().unwrap_or(0.0), base["time_ms"].as_f64().unwrap_or(0.0)),
                       "bytes": ratio(kolo["bytes"].as_f64().unwrap_or(0.0), base["bytes"].as_f64().unwrap_or(0.0)) },
        });
        println!("rekey n={n}: {row}");
        rows.push(row);
    }
    write_result("rekey", &json!({ "scenario": "rekey", "machine": machine(), "rows": rows }));
    Ok(())
}

/// Remove a roster-only member; every remaining member, once it applied
/// the removal, posts a message under its new chain. Done when every
/// remaining member decrypted every other's post: by then each holds every
/// new sending key.
async fn rekey_kolo(n: usize, seed: u64) -> Result<Value> {
    let mut circle = KoloCircle::start(n, 1, seed).await?;
    println!("kolo n={n}: set up and connected in {:.1} s", circle.setup.as_secs_f64());
    tokio::time::sleep(SETTLE).await;
    while circle.deliveries.try_recv().is_ok() {}
    let ports: HashSet<u16> = circle.ports().into_iter().collect();
    let bytes_before = loopback_bytes(&ports)?;
    let cpu_before = process_cpu_secs();
    let dummy = circle.dummies[0];
    let t0 = Instant::now();
    circle.nodes[0].call(Request::Remove { circle: hex(&circle.circle), member: dummy.to_hex() }).await?;
    let mut ledger = Ledger::default();
    let mut removed_seen = vec![None; n];
    let receivers = n - 1;
    let deadline = Instant::now() + Duration::from_secs(180);
    let probe = |node: usize| 5_000_000 + node as u64;
    while Instant::now() < deadline {
        let d = tokio::time::timeout(Duration::from_millis(200), circle.deliveries.recv()).await;
        match d {
            Ok(Some(Delivery::Removed { node, at })) if removed_seen[node].is_none() => {
                removed_seen[node] = Some(at);
                ledger.sent.insert(probe(node), t0);
                circle.nodes[node].send_text(&circle.circle, tagged(probe(node), 64)).await?;
            }
            Ok(Some(d)) => ledger.record(&d),
            Ok(None) => break,
            Err(_) => {}
        }
        if ledger.sent.len() == n && ledger.all_complete(receivers) {
            break;
        }
    }
    let cpu = process_cpu_secs() - cpu_before;
    let bytes = loopback_bytes(&ports)?.saturating_sub(bytes_before);
    let complete = ledger.sent.len() == n && ledger.all_complete(receivers);
    let time = ledger.latencies(receivers).last().copied().unwrap_or_default();
    let all_removed = removed_seen.iter().flatten().max().map(|t| t.saturating_duration_since(t0));
    let missing = ledger.missing(receivers) + (n - ledger.sent.len()) * receivers;
    circle.stop().await;
    if !complete {
        eprintln!("kolo rekey n={n}: incomplete after 180 s ({missing} probe deliveries missing)");
    }
    Ok(json!({
        "complete": complete,
        "missing": missing,
        "time_ms": time.as_secs_f64() * 1000.0,
        "removal_seen_ms": all_removed.map(|d| d.as_secs_f64() * 1000.0),
        "bytes": bytes,
        // All n nodes share this process: CPU per member is what one
        // member's own machine would spend on the rekey.
        "cpu_s": cpu,
        "cpu_per_member_ms": cpu * 1000.0 / n as f64,
        "key_deliveries": n * (n - 1),
    }))
}

/// Baseline for a rekey: every member broadcasts one 64-byte message at
/// once on plain gossipsub (the same n(n-1) deliveries a rekey makes).
async fn broadcast_round(n: usize, seed: u64) -> Result<Value> {
    let mut net = Net::start(false, n, seed).await?;
    tokio::time::sleep(SETTLE).await;
    let ports = net.ports();
    let bytes_before = loopback_bytes(&ports)?;
    let cpu_before = process_cpu_secs();
    let mut ledger = Ledger::default();
    let t0 = Instant::now();
    for node in 0..n {
        let seq = 5_000_000 + node as u64;
        ledger.sent.insert(seq, t0);
        net.publish(node, seq, 64).await?;
    }
    drain_until(net.rx(), &mut ledger, Duration::from_secs(120), |l| l.all_complete(n - 1)).await;
    let cpu = process_cpu_secs() - cpu_before;
    let bytes = loopback_bytes(&ports)?.saturating_sub(bytes_before);
    let time = ledger.latencies(n - 1).last().copied().unwrap_or_default();
    let missing = ledger.missing(n - 1);
    net.stop().await;
    Ok(json!({ "time_ms": time.as_secs_f64() * 1000.0, "bytes": bytes, "missing": missing,
               "cpu_s": cpu, "cpu_per_member_ms": cpu * 1000.0 / n as f64 }))
}

// -------------------------------------------------------------------
// 6: catch-up after reconnecting
// -------------------------------------------------------------------

pub async fn catchup(opts: &Opts) -> Result<()> {
    let n = 10;
    let count = opts.messages.unwrap_or(1000);
    let home = tempdir("catchup")?;
    let mut circle = KoloCircle::start_durable_last(n, opts.seed, &home).await?;
    tokio::time::sleep(SETTLE).await;
    let observer = n - 1;
    let sender = 1;

    // Live: the observer is online while the sender posts `count` messages.
    let live = send_and_wait(&mut circle, sender, count, 0, &[observer], Duration::from_secs(300)).await?;

    // Offline: stop the observer, post the same number, wait until the
    // others hold them all, restart the observer from its profile.
    let Some(node) = circle.nodes.pop() else { bail!("no observer") };
    let port = node.port;
    node.stop().await;
    let others: Vec<usize> = (0..n - 1).filter(|i| *i != sender).collect();
    send_and_wait(&mut circle, sender, count, 200_000, &others, Duration::from_secs(300)).await?;
    while circle.deliveries.try_recv().is_ok() {}
    let started = Instant::now();
    circle.restart_durable(observer, port, &home)?;
    let mut ledger = Ledger::default();
    for k in 0..count {
        ledger.sent.insert(200_000 + k as u64, started);
    }
    let done = drain_until(&mut circle.deliveries, &mut ledger, Duration::from_secs(300), |l| {
        l.sent.keys().all(|s| l.received.get(s).is_some_and(|r| r.contains_key(&observer)))
    })
    .await;
    let caught_up = ledger
        .received
        .values()
        .filter_map(|r| r.get(&observer))
        .max()
        .map(|t| t.saturating_duration_since(started))
        .unwrap_or_default();
    let got = ledger.received.values().filter(|r| r.contains_key(&observer)).count();
    circle.stop().await;
    let _ = std::fs::remove_dir_all(&home);
    if !done {
        bail!("catch-up incomplete: {got} of {count} after 300 s");
    }
    let doc = json!({
        "scenario": "catchup", "machine": machine(), "n": n, "messages": count,
        "live_ms": live.as_secs_f64() * 1000.0,
        "catchup_ms": caught_up.as_secs_f64() * 1000.0,
        "ratio": ratio(caught_up.as_secs_f64(), live.as_secs_f64()),
    });
    println!("catch-up: {doc}");
    write_result("catchup", &doc);
    Ok(())
}

/// The sender posts `count` messages back to back (each request answered
/// before the next); returns the time until every node in `watch` has all.
async fn send_and_wait(
    circle: &mut KoloCircle,
    sender: usize,
    count: usize,
    seq_base: u64,
    watch: &[usize],
    limit: Duration,
) -> Result<Duration> {
    while circle.deliveries.try_recv().is_ok() {}
    let mut ledger = Ledger::default();
    let t0 = Instant::now();
    for k in 0..count {
        let seq = seq_base + k as u64;
        ledger.sent.insert(seq, t0);
        let text = tagged(seq, 64);
        circle.nodes[sender].call(Request::Send { circle: hex(&circle.circle), text, disappear_secs: None }).await?;
        while let Ok(d) = circle.deliveries.try_recv() {
            ledger.record(&d);
        }
    }
    let all =
        |l: &Ledger| l.sent.keys().all(|s| l.received.get(s).is_some_and(|r| watch.iter().all(|w| r.contains_key(w))));
    if !drain_until(&mut circle.deliveries, &mut ledger, limit, all).await {
        bail!("{count} messages did not reach nodes {watch:?} within {limit:?}");
    }
    let last =
        ledger.received.values().flat_map(|r| watch.iter().filter_map(|w| r.get(w))).max().copied().unwrap_or(t0);
    Ok(last.saturating_duration_since(t0))
}

fn tempdir(what: &str) -> Result<PathBuf> {
    let base = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("target"));
    let dir = base.join("bench-tmp").join(format!("{what}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(std::fs::canonicalize(&dir)?)
}

// -------------------------------------------------------------------
// 9: saturation
// -------------------------------------------------------------------

pub async fn saturation(opts: &Opts) -> Result<()> {
    let n = 10;
    let mut out = Vec::new();
    for kolo in [true, false] {
        let mut net = Net::start(kolo, n, opts.seed).await?;
        tokio::time::sleep(SETTLE).await;
        run_messages(&mut net, 0, 10, 64, 20.0, 1_000_000, Duration::from_secs(30)).await?;
        let mut steps = Vec::new();
        let mut reference = None;
        let mut sustained = 0.0;
        let mut rate = 25.0;
        let mut seq = 0u64;
        while rate <= 6400.0 {
            let count = ((rate * 2.0) as usize).clamp(50, 4000);
            let r = run_messages(&mut net, 0, count, 64, rate, seq, Duration::from_secs(30)).await?;
            seq += count as u64;
            let p99 = r.p(99.0);
            println!(
                "{:>8} {rate:>6.0} msg/s: p50 {:.2} ms p99 {:.2} ms missing {}",
                net.name(),
                r.p(50.0),
                p99,
                r.missing
            );
            steps.push(json!({ "rate": rate, "p50_ms": r.p(50.0), "p99_ms": p99, "missing": r.missing }));
            let reference_p99 = *reference.get_or_insert(p99);
            if r.missing > 0 || p99 > 2.0 * reference_p99 {
                break;
            }
            sustained = rate;
            rate *= 2.0;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        out.push(
            json!({ "system": net.name(), "sustained_rate": sustained, "reference_p99_ms": reference, "steps": steps }),
        );
        net.stop().await;
    }
    let k = out[0]["sustained_rate"].as_f64().unwrap_or(0.0);
    let b = out[1]["sustained_rate"].as_f64().unwrap_or(0.0);
    let doc = json!({ "scenario": "saturation", "machine": machine(), "n": n, "kolo": out[0], "baseline": out[1], "ratio": ratio(k, b) });
    println!("saturation: kolo {k} msg/s, baseline {b} msg/s");
    write_result("saturation", &doc);
    Ok(())
}

// -------------------------------------------------------------------
// 7: memory (child processes, so each figure is one node's own RSS)
// -------------------------------------------------------------------

pub fn memory(opts: &Opts) -> Result<()> {
    let exe = std::env::current_exe()?;
    let child = |args: &[&str]| -> Result<Value> {
        let out = std::process::Command::new(&exe).args(args).output()?;
        if !out.status.success() {
            bail!("{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().rev().find(|l| l.starts_with('{')).ok_or_else(|| anyhow!("no result from {args:?}"))?;
        Ok(serde_json::from_str(line)?)
    };
    let kolo_idle = child(&["memory-child", "kolo-idle"])?;
    let base_idle = child(&["memory-child", "base-idle"])?;
    println!("idle: kolo {kolo_idle} baseline {base_idle}");

    let home = tempdir("memory")?;
    let dir = home.join("profile");
    let prepared = tokio::task::block_in_place(|| prepare_loaded(&dir, 100, 10_000, opts.seed))?;
    println!("loaded profile prepared: {prepared}");
    let dir_text = dir.to_string_lossy().into_owned();
    let loaded = child(&["memory-child", "kolo-loaded", &dir_text])?;
    let _ = std::fs::remove_dir_all(&home);
    let k = kolo_idle["rss_kib"].as_f64().unwrap_or(0.0);
    let b = base_idle["rss_kib"].as_f64().unwrap_or(0.0);
    let l = loaded["rss_kib"].as_f64().unwrap_or(0.0);
    let doc = json!({
        "scenario": "memory", "machine": machine(),
        "kolo_idle": kolo_idle, "baseline_idle": base_idle, "kolo_loaded": loaded, "profile": prepared,
        "ratio": { "idle": ratio(k, b), "loaded_vs_baseline_idle": ratio(l, b), "loaded_vs_kolo_idle": ratio(l, k) },
    });
    println!("memory: {doc}");
    write_result("memory", &doc);
    Ok(())
}

/// A file profile for member 0 of a circle of `n` holding `messages`
/// messages received from the other members, each through the engine and
/// persisted in its own transaction as a running node does.
fn prepare_loaded(dir: &Path, n: usize, messages: usize, seed: u64) -> Result<Value> {
    let mut rng = SeededEntropy::from_u64(seed);
    let opened = Profile::create(dir, PASSPHRASE, "m000", KdfParams::TESTING, &mut rng).map_err(|e| anyhow!("{e}"))?;
    let mut profile = opened.profile;
    let mut ids = vec![("m000".to_owned(), opened.identity)];
    for i in 1..n {
        ids.push((format!("m{i:03}"), IdentitySecret::generate(&mut rng)));
    }
    let keyed = key_circle(ids, 0, seed)?;
    let circle = keyed.circle;
    let mut me = restore_engine(&keyed.members[0])?;
    profile.apply(&[Record::CircleState { circle }], &me, &mut rng).map_err(|e| anyhow!("{e}"))?;
    let empty = crate::measure::dir_bytes(dir);
    let mut senders = keyed.members[1..].iter().map(restore_engine).collect::<Result<Vec<_>>>()?;
    let started = Instant::now();
    let mut payload = 0usize;
    for seq in 0..messages {
        let s = seq % senders.len();
        let now = now_ms();
        let text = tagged(seq as u64, 64);
        payload += text.len();
        let outs =
            senders[s].handle(now, Input::Command(Command::SendText { circle, text, timer_secs: None }), &mut rng);
        for o in outs {
            if let Output::Publish { frame, .. } = o {
                let records: Vec<Record> = me
                    .handle(now, Input::Frame { circle, bytes: frame }, &mut rng)
                    .into_iter()
                    .filter_map(|o| match o {
                        Output::Persist(r) => Some(r),
                        _ => None,
                    })
                    .collect();
                profile.apply(&records, &me, &mut rng).map_err(|e| anyhow!("{e}"))?;
            }
        }
    }
    let took = started.elapsed();
    let held = me.circle(&circle).map_or(0, |c| c.history().len());
    drop(profile);
    let full = crate::measure::dir_bytes(dir);
    Ok(json!({
        "members": n, "messages": messages, "held": held,
        "bytes_empty": empty, "bytes_full": full,
        "bytes_per_message": (full.saturating_sub(empty)) as f64 / messages as f64,
        "plaintext_per_message": payload as f64 / messages as f64,
        "durable_receive_per_s": messages as f64 / took.as_secs_f64(),
    }))
}

// -------------------------------------------------------------------
// 3: CPU per delivered message (valgrind --tool=callgrind)
// -------------------------------------------------------------------

const CPU_MESSAGES: usize = 60;
const CPU_WINDOW: Duration = Duration::from_secs(40);

pub fn cpu(opts: &Opts) -> Result<()> {
    let exe = std::env::current_exe()?;
    let dir = tempdir("callgrind")?;
    let messages = opts.messages.unwrap_or(CPU_MESSAGES);
    let mut out = serde_json::Map::new();
    for system in ["kolo", "base"] {
        let mut counts = Vec::new();
        for m in [0, messages] {
            let file = dir.join(format!("{system}-{m}.out"));
            let status = std::process::Command::new("valgrind")
                .args(["--tool=callgrind", "--instr-atstart=no", "--fair-sched=yes"])
                .arg(format!("--callgrind-out-file={}", file.display()))
                .arg(&exe)
                .args(["cpu-child", system, "--messages", &m.to_string()])
                .status()
                .context("running valgrind (apt-get install valgrind)")?;
            if !status.success() {
                bail!("callgrind run {system} {m} failed");
            }
            let ir = callgrind_total(&file)?;
            println!("{system} {m} messages: {ir} instructions in the window");
            counts.push(ir);
        }
        let per = (counts[1] as f64 - counts[0] as f64) / (messages * 9) as f64;
        out.insert(system.into(), json!({ "idle_ir": counts[0], "busy_ir": counts[1], "ir_per_delivery": per }));
    }
    let k = out["kolo"]["ir_per_delivery"].as_f64().unwrap_or(0.0);
    let b = out["base"]["ir_per_delivery"].as_f64().unwrap_or(0.0);
    let doc = json!({ "scenario": "cpu", "machine": machine(), "n": 10, "messages": messages,
                      "window_s": CPU_WINDOW.as_secs(), "kolo": out["kolo"], "baseline": out["base"], "ratio": ratio(k, b) });
    println!("cpu: {doc}");
    write_result("cpu", &doc);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn callgrind_total(file: &Path) -> Result<u64> {
    let text = std::fs::read_to_string(file)?;
    // `summary:` comes first in the header and is 0 when instrumentation
    // starts off (`--instr-atstart=no`); `totals:` at the end is the count.
    let field = |key: &str| {
        text.lines().filter_map(|l| l.strip_prefix(key)).filter_map(|v| v.split_whitespace().next()?.parse().ok()).max()
    };
    field("totals:").or_else(|| field("summary:")).ok_or_else(|| anyhow!("no totals in {}", file.display()))
}

fn callgrind_instrumentation(on: bool) {
    let pid = std::process::id().to_string();
    let _ = std::process::Command::new("callgrind_control")
        .args(["-i", if on { "on" } else { "off" }, &pid])
        .stdout(std::process::Stdio::null())
        .status();
}

// -------------------------------------------------------------------
// Child processes
// -------------------------------------------------------------------

pub fn child(kind: &str, opts: &Opts) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async move {
        match (kind, opts.rest.first().map(String::as_str)) {
            ("memory-child", Some("kolo-idle")) => memory_kolo_idle().await,
            ("memory-child", Some("base-idle")) => {
                let base = BaseCircle::start_one(opts.seed).await?;
                tokio::time::sleep(SETTLE).await;
                println!("{}", json!({ "rss_kib": rss_kib() }));
                base.stop().await;
                Ok(())
            }
            ("memory-child", Some("kolo-loaded")) => {
                let dir = PathBuf::from(opts.rest.get(1).ok_or_else(|| anyhow!("profile dir missing"))?);
                memory_kolo_loaded(&dir).await
            }
            ("cpu-child", Some(system)) => cpu_child(system == "kolo", opts.messages.unwrap_or(0), opts.seed).await,
            _ => bail!("unknown child {kind} {:?}", opts.rest),
        }
    })
}

async fn memory_kolo_idle() -> Result<()> {
    let mut rng = SeededEntropy::from_u64(1);
    let opened = Profile::ephemeral("idle", &mut rng).map_err(|e| anyhow!("{e}"))?;
    let engine = kolo::engine::Engine::new(opened.identity, "idle".into(), EngineConfig::default());
    let (tx, _rx) = mpsc::unbounded_channel();
    let node = start_node(0, engine, opened.profile, &[0; 32], crate::measure::free_port()?, &[], tx)?;
    node.call(Request::CircleCreate { name: "idle".into(), disappear_secs: None }).await?;
    tokio::time::sleep(SETTLE).await;
    println!("{}", json!({ "rss_kib": rss_kib() }));
    node.stop().await;
    Ok(())
}

async fn memory_kolo_loaded(dir: &Path) -> Result<()> {
    let mut rng = SeededEntropy::from_u64(2);
    let before = rss_kib();
    let opened = Profile::open(dir, PASSPHRASE, now_ms(), &mut rng).map_err(|e| anyhow!("{e}"))?;
    let engine =
        kolo::engine::Engine::restore(opened.identity, opened.display_name, EngineConfig::default(), opened.circles)
            .map_err(|e| anyhow!("{e}"))?;
    let circle = engine.circle_ids().first().copied().ok_or_else(|| anyhow!("no circle in the profile"))?;
    let (tx, _rx) = mpsc::unbounded_channel();
    let node = start_node(0, engine, opened.profile, &circle, crate::measure::free_port()?, &[], tx)?;
    tokio::time::sleep(SETTLE).await;
    let held = node.call(Request::Messages { circle: hex(&circle) }).await?.as_array().map_or(0, Vec::len);
    println!("{}", json!({ "rss_kib": rss_kib(), "rss_before_open_kib": before, "messages_held": held }));
    node.stop().await;
    Ok(())
}

async fn cpu_child(kolo: bool, messages: usize, seed: u64) -> Result<()> {
    let mut net = Net::start(kolo, 10, seed).await?;
    tokio::time::sleep(SETTLE).await;
    run_messages(&mut net, 0, 5, 64, 5.0, 1_000_000, Duration::from_secs(120)).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    callgrind_instrumentation(true);
    let started = Instant::now();
    let mut missing = 0;
    if messages > 0 {
        let rate = messages as f64 / (CPU_WINDOW.as_secs_f64() / 2.0);
        let r = run_messages(&mut net, 0, messages, 64, rate, 0, CPU_WINDOW).await?;
        missing = r.missing;
    }
    tokio::time::sleep(CPU_WINDOW.saturating_sub(started.elapsed())).await;
    callgrind_instrumentation(false);
    eprintln!("cpu-child {}: {messages} messages, {missing} deliveries missing", net.name());
    net.stop().await;
    if missing > 0 {
        bail!("{missing} deliveries missing inside the measurement window");
    }
    Ok(())
}

// -------------------------------------------------------------------
// Where a node's time goes per message (engine, store), no network
// -------------------------------------------------------------------

/// Per-message cost of the node's own work on the critical path, split
/// into engine and profile write, for a sender and a receiver in circles
/// of each size: the figures the latency fixes are judged by.
pub async fn node_cost(opts: &Opts) -> Result<()> {
    let sizes = opts.sizes.clone().unwrap_or_else(|| vec![10, 100]);
    let count = opts.messages.unwrap_or(2000);
    let mut rows = Vec::new();
    for n in sizes {
        let row = tokio::task::block_in_place(|| node_cost_one(n, count, opts.seed))?;
        println!("node cost n={n}: {row}");
        rows.push(row);
    }
    write_result("node-cost", &json!({ "scenario": "node-cost", "machine": machine(), "rows": rows }));
    Ok(())
}

fn node_cost_one(n: usize, count: usize, seed: u64) -> Result<Value> {
    let mut rng = SeededEntropy::from_u64(seed);
    let profiles = crate::kolo_nodes::ephemeral_profiles(n, seed)?;
    let mut ids = Vec::new();
    let mut stores = Vec::new();
    for (name, profile, identity) in profiles {
        ids.push((name, identity));
        stores.push(profile);
    }
    let t = Instant::now();
    let keyed = key_circle(ids, 0, seed)?;
    eprintln!("circle of {n} keyed in {:.1} s", t.elapsed().as_secs_f64());
    let circle = keyed.circle;
    let mut sender = restore_engine(&keyed.members[1])?;
    let mut receiver = restore_engine(&keyed.members[0])?;
    let mut receiver_store = stores.swap_remove(0);
    let mut sender_store = stores.swap_remove(0);
    let persist = |outs: Vec<Output>| -> (Vec<Record>, Vec<Output>) {
        let mut records = Vec::new();
        let mut rest = Vec::new();
        for o in outs {
            match o {
                Output::Persist(r) => records.push(r),
                other => rest.push(other),
            }
        }
        (records, rest)
    };
    let (mut send_engine, mut send_store, mut recv_engine, mut recv_store) =
        (Duration::ZERO, Duration::ZERO, Duration::ZERO, Duration::ZERO);
    for seq in 0..count {
        let now = now_ms();
        let t = Instant::now();
        let text = tagged(seq as u64, 64);
        let outs = sender.handle(now, Input::Command(Command::SendText { circle, text, timer_secs: None }), &mut rng);
        let (records, rest) = persist(outs);
        send_engine += t.elapsed();
        let t = Instant::now();
        sender_store.apply(&records, &sender, &mut rng).map_err(|e| anyhow!("{e}"))?;
        send_store += t.elapsed();
        for o in rest {
            if let Output::Publish { frame, .. } = o {
                let t = Instant::now();
                let (records, _) = persist(receiver.handle(now, Input::Frame { circle, bytes: frame }, &mut rng));
                recv_engine += t.elapsed();
                let t = Instant::now();
                receiver_store.apply(&records, &receiver, &mut rng).map_err(|e| anyhow!("{e}"))?;
                recv_store += t.elapsed();
            }
        }
    }
    let us = |d: Duration| d.as_secs_f64() * 1e6 / count as f64;
    let held = receiver.circle(&circle).map_or(0, |c| c.history().len());
    Ok(json!({
        "n": n, "messages": count, "received": held,
        "send_engine_us": us(send_engine), "send_store_us": us(send_store),
        "receive_engine_us": us(recv_engine), "receive_store_us": us(recv_store),
        "snapshot_bytes": receiver.export_circle(&circle).map_or(0, |s| s.len()),
    }))
}
