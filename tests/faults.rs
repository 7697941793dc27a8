//! Broken machines and hostile networks (issue 7, "Faults"): real `kolo`
//! processes through partitions, SIGKILLs at random moments, lossy and
//! jittery links, and a full disk. What each proves, and how to run it,
//! is in `docs/fault-testing.md`.
//!
//! The crash test and the failed-write regression run everywhere on
//! 127.0.0.1. The others need root, `ip netns` and (for the disk) mount
//! namespaces; without them they print why and pass without running.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use kolo::api::Request;
use kolo::engine::{Engine, EngineConfig};
use kolo::entropy::OsEntropy;
use kolo::node::{Node, NodeConfig};
use kolo::store::{KdfParams, Profile};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use common::PASS;

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

/// One request to an in-process node.
async fn ask(api: &mpsc::Sender<kolo::api::Pending>, request: Request) -> Result<Value, String> {
    let (tx, rx) = oneshot::channel();
    api.send((request, tx)).await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), rx).await.unwrap().unwrap()
}

fn texts(v: &Value) -> Vec<String> {
    v.as_array().unwrap().iter().map(|m| m["text"].as_str().unwrap_or("").to_owned()).collect()
}

/// Regression (fixed in `Node::handle`): when the profile write of a send
/// failed, the user got an error but the engine kept the message in its
/// history and frame store with its chain advanced, so catch-up could
/// later serve a message the user was told had failed, and after a
/// restart the same message key would be used again. A full database is
/// made without root by capping SQLite's page count on the node's own
/// connection.
#[test]
fn a_failed_profile_write_leaves_nothing_unsaved_behind() {
    let dir = common::fresh_home("faults-failed-write", "ana");
    let opened = Profile::create(&dir, PASS, "ana", KdfParams::TESTING, &mut OsEntropy).unwrap();
    let engine =
        Engine::restore(opened.identity, opened.display_name, EngineConfig::default(), opened.circles).unwrap();
    let conn = opened.profile.raw_connection_for_tests();
    let pages: u32 = conn.pragma_query_value(None, "page_count", |r| r.get(0)).unwrap();
    // Room for the circle and some messages, then SQLITE_FULL.
    conn.pragma_update(None, "max_page_count", pages + 6).unwrap();
    let config = NodeConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
        mdns: false,
        engine: EngineConfig::default(),
    };
    let node = Node::new(engine, opened.profile, config);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (acked, failed) = runtime.block_on(async move {
        let (api, api_rx) = mpsc::channel(8);
        let running = tokio::spawn(node.run(api_rx));
        ask(&api, Request::CircleCreate { name: "print-shop".into(), disappear_secs: None }).await.unwrap();
        let mut acked = Vec::new();
        let mut failed = None;
        // Bounded: the cap is a few pages, each send stores a frame and a message.
        for i in 0..2000 {
            let text = format!("leaflet draft {i}");
            let r = ask(&api, Request::Send { circle: "print-shop".into(), text: text.clone(), disappear_secs: None })
                .await;
            match r {
                Ok(_) => acked.push(text),
                Err(e) => {
                    failed = Some((text, e));
                    break;
                }
            }
        }
        let (failed_text, error) = failed.expect("the capped database never filled up");
        assert!(error.contains("could not save") && error.contains("full"), "unclear error: {error}");
        // The node is still up and shows exactly what was saved.
        ask(&api, Request::Status).await.unwrap();
        let history = texts(&ask(&api, Request::Messages { circle: "print-shop".into() }).await.unwrap());
        assert!(!history.contains(&failed_text), "the failed message stayed in the node's memory");
        for t in &acked {
            assert_eq!(history.iter().filter(|h| *h == t).count(), 1, "{t}");
        }
        ask(&api, Request::Shutdown).await.unwrap();
        tokio::time::timeout(Duration::from_secs(30), running).await.unwrap().unwrap();
        (acked, failed_text)
    });
    assert!(!acked.is_empty());
    // The profile reopens with every acknowledged message and nothing else.
    let reopened = Profile::open(&dir, PASS, now_ms(), &mut OsEntropy).unwrap();
    let stored: Vec<String> = reopened.circles.iter().flat_map(|c| c.messages.iter().map(|m| m.text.clone())).collect();
    for t in &acked {
        assert_eq!(stored.iter().filter(|s| *s == t).count(), 1, "{t} after reopening");
    }
    assert!(!stored.contains(&failed));
}
