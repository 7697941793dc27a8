//! The network harness: real kolo nodes (engine + profile + libp2p swarm,
//! the production `kolo::node::Node`) in one process over TCP on
//! 127.0.0.1, against plain libp2p gossipsub with default signing on the
//! same transport and topology. Every figure is paired with its baseline
//! from the same run. Loopback only; every loop is bounded in count and
//! time; seeds are fixed.
//!
//! ```text
//! cargo bench --bench net -- latency     [--sizes 10,25,50] [--messages 150]
//! cargo bench --bench net -- rekey       [--sizes 10,50,100] [--sim-sizes 100,500]
//! cargo bench --bench net -- rekey-sim   [--sizes 100,500] [--sim-timeout 900]
//! cargo bench --bench net -- catchup     [--messages 1000]
//! cargo bench --bench net -- memory
//! cargo bench --bench net -- saturation
//! cargo bench --bench net -- cpu         (runs itself under valgrind --tool=callgrind)
//! cargo bench --bench net -- all
//! ```
//!
//! To diagnose a run, `KOLO_BENCH_LOG=/tmp/bench.log KOLO_LOG=kolo=debug`
//! writes the nodes' logs to that file (frame types and sizes, never
//! contents).
//!
//! Results are printed and written to `target/bench-results/net-*.json`;
//! `latency` also writes `target/bench-results/latency.svg` (the chart in
//! `docs/performance.md`). See `docs/performance.md` for what each figure
//! means.

mod baseline;
mod kolo_nodes;
mod measure;
mod scenarios;
mod sim_rekey;
mod svg;

use anyhow::{Result, bail};

/// Options shared by the scenarios.
pub struct Opts {
    pub sizes: Option<Vec<usize>>,
    pub messages: Option<usize>,
    pub seed: u64,
    /// Circle sizes of the simulated-member rekey (`rekey-sim`, and `rekey`
    /// after its real nodes); `--sizes` stays the real nodes'.
    pub sim_sizes: Option<Vec<usize>>,
    /// Wall-clock cap per simulated size, in seconds.
    pub sim_timeout_s: Option<u64>,
    pub rest: Vec<String>,
}

fn parse(args: &[String]) -> Result<(String, Opts)> {
    let mut scenario = None;
    let mut opts =
        Opts { sizes: None, messages: None, seed: 7, sim_sizes: None, sim_timeout_s: None, rest: Vec::new() };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--bench" => {} // cargo bench passes this to harness = false targets.
            "--sizes" => {
                let v = it.next().map(String::as_str).unwrap_or("");
                opts.sizes = Some(v.split(',').filter_map(|s| s.trim().parse().ok()).collect());
            }
            "--sim-sizes" => {
                let v = it.next().map(String::as_str).unwrap_or("");
                opts.sim_sizes = Some(v.split(',').filter_map(|s| s.trim().parse().ok()).collect());
            }
            "--sim-timeout" => opts.sim_timeout_s = it.next().and_then(|v| v.parse().ok()),
            "--messages" => opts.messages = it.next().and_then(|v| v.parse().ok()),
            "--seed" => opts.seed = it.next().and_then(|v| v.parse().ok()).unwrap_or(7),
            other if scenario.is_none() && !other.starts_with('-') => scenario = Some(other.to_owned()),
            other => opts.rest.push(other.to_owned()),
        }
    }
    Ok((scenario.unwrap_or_else(|| "help".into()), opts))
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (scenario, opts) = parse(&args)?;
    if scenario == "help" {
        println!(
            "usage: cargo bench --bench net -- <latency|rekey|rekey-sim|catchup|memory|saturation|cpu|all> [options]"
        );
        return Ok(());
    }
    // Child processes (memory, callgrind) run one small thing and exit.
    if scenario.ends_with("-child") {
        return scenarios::child(&scenario, &opts);
    }
    // In-process engines only: no runtime, no sockets.
    if scenario == "rekey-sim" {
        return sim_rekey::run(&opts, true);
    }
    // A log file for diagnosing a run (never the terminal): the filter is
    // `KOLO_LOG` as for the daemon.
    if let Ok(path) = std::env::var("KOLO_BENCH_LOG") {
        let file = std::fs::File::create(&path)?;
        let filter = tracing_subscriber::EnvFilter::new(std::env::var("KOLO_LOG").unwrap_or_else(|_| "warn".into()));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::sync::Mutex::new(file))
            .with_ansi(false)
            .try_init();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async move {
        match scenario.as_str() {
            "latency" => scenarios::latency(&opts).await,
            "rekey" => {
                scenarios::rekey(&opts).await?;
                sim_rekey::run(&opts, false)
            }
            "catchup" => scenarios::catchup(&opts).await,
            "saturation" => scenarios::saturation(&opts).await,
            "memory" => scenarios::memory(&opts),
            "node-cost" => scenarios::node_cost(&opts).await,
            "cpu" => scenarios::cpu(&opts),
            "all" => {
                scenarios::latency(&opts).await?;
                scenarios::rekey(&opts).await?;
                sim_rekey::run(&opts, false)?;
                scenarios::catchup(&opts).await?;
                scenarios::saturation(&opts).await?;
                scenarios::memory(&opts)?;
                scenarios::cpu(&opts)
            }
            other => bail!("unknown scenario {other}"),
        }
    })
}
