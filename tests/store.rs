//! The encrypted profile (issue "The encrypted profile"): forensic erasure,
//! expiry while closed, duress, ephemeral mode, crashes, bad input.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::needless_range_loop)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kolo::circle::CircleId;
use kolo::engine::{Command, Engine, EngineConfig, Input, Output, Record};
use kolo::entropy::SeededEntropy;
use kolo::sim::{Faults, Sim};
use kolo::store::{self, KdfParams, Profile, StoreError};

const PASS: &str = "correct horse battery staple";
const CANARY: &str = "CANARY-forensic-5d1c-meet-at-the-bakery";

fn fresh_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("profiles").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
    dir
}

/// Every file under `dir`, with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(snapshot(&p));
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap_or_default());
            }
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// A two-member circle where node 0's records are kept for a store.
fn circle_with_store() -> (Sim, CircleId) {
    let mut sim = Sim::new(77, &["ana", "bongani"], Faults::NONE, EngineConfig::default());
    sim.nodes[0].keep_records = true;
    sim.command(0, Command::CreateCircle { name: "bakery".into(), max_disappear_secs: None });
    let circle = sim.created_circle(0).unwrap();
    assert!(sim.invite_and_join(circle, 0, 1));
    sim.run_for(3_000);
    (sim, circle)
}

fn flush(sim: &mut Sim, profile: &mut Profile, rng: &mut SeededEntropy) {
    let records: Vec<Record> = std::mem::take(&mut sim.nodes[0].records);
    profile.apply(&records, &sim.nodes[0].engine, rng).unwrap();
}

#[test]
fn expired_messages_leave_no_trace_in_any_file() {
    let dir = fresh_dir("forensic");
    let mut rng = SeededEntropy::from_u64(1);
    let (mut sim, circle) = circle_with_store();
    let mut profile = Profile::create(&dir, PASS, "ana", KdfParams::TESTING, &mut rng).unwrap().profile;
    sim.command(1, Command::SendText { circle, text: CANARY.into(), timer_secs: Some(60) });
    sim.command(0, Command::SendText { circle, text: format!("{CANARY}-own"), timer_secs: Some(60) });
    sim.run_for(2_000);
    flush(&mut sim, &mut profile, &mut rng);
    let msg =
        sim.nodes[0].engine.circle(&circle).unwrap().history().into_iter().find(|m| m.text == CANARY).cloned().unwrap();
    let bucket = store::bucket_for(msg.expires_at_ms);
    let wrapped_before = profile.wrapped_bucket_key(bucket).expect("bucket key stored");
    let (bucket_key, wrapping_key) = profile.expose_keys_for_tests(bucket).unwrap();

    // Past the deadline: the engine deletes, the store shreds.
    sim.run_for(130_000);
    flush(&mut sim, &mut profile, &mut rng);
    profile.purge_expired(sim.now, &mut rng).unwrap();
    assert!(profile.wrapped_bucket_key(bucket).is_none(), "bucket key destroyed");
    assert!(!profile.can_unwrap(bucket, &wrapped_before), "an old copy of the bucket key no longer unwraps");
    drop(profile);

    let files = snapshot(&dir);
    assert!(files.keys().any(|p| p.ends_with(store::DB_FILE)));
    for (path, bytes) in &files {
        assert!(!contains(bytes, CANARY.as_bytes()), "{} holds the canary", path.display());
        assert!(!contains(bytes, &bucket_key), "{} holds the message bucket key", path.display());
        assert!(!contains(bytes, &wrapping_key), "{} holds the old wrapping key", path.display());
        assert!(!contains(bytes, b"SQLite format 3"), "{} has a plaintext SQLite header", path.display());
    }
    // With the passphrase, the message is gone too.
    let opened = Profile::open(&dir, PASS, sim.now, &mut rng).unwrap();
    for c in &opened.circles {
        assert!(c.messages.iter().all(|m| !m.text.contains(CANARY)));
    }
}

#[test]
fn a_deadline_that_passed_while_closed_is_enforced_on_open() {
    let dir = fresh_dir("expiry-closed");
    let mut rng = SeededEntropy::from_u64(2);
    let (mut sim, circle) = circle_with_store();
    let mut profile = Profile::create(&dir, PASS, "ana", KdfParams::TESTING, &mut rng).unwrap().profile;
    sim.command(1, Command::SendText { circle, text: "short-lived".into(), timer_secs: Some(60) });
    sim.command(1, Command::SendText { circle, text: "kept".into(), timer_secs: None });
    sim.run_for(2_000);
    flush(&mut sim, &mut profile, &mut rng);
    drop(profile);
    // Reopen ten minutes later: purged before anything is returned.
    let later = sim.now + 600_000;
    let opened = Profile::open(&dir, PASS, later, &mut rng).unwrap();
    let texts: Vec<String> = opened.circles.iter().flat_map(|c| c.messages.iter().map(|m| m.text.clone())).collect();
    assert!(texts.contains(&"kept".to_string()));
    assert!(!texts.contains(&"short-lived".to_string()));
    let engine =
        Engine::restore(opened.identity, opened.display_name, EngineConfig::default(), opened.circles).unwrap();
    let shown: Vec<String> = engine.circle(&circle).unwrap().history().iter().map(|m| m.text.clone()).collect();
    assert!(!shown.contains(&"short-lived".to_string()));
}

#[test]
fn the_duress_passphrase_destroys_everything_and_opens_a_new_looking_profile() {
    let dir = fresh_dir("duress");
    let fresh = fresh_dir("duress-reference");
    let mut rng = SeededEntropy::from_u64(3);
    let (mut sim, circle) = circle_with_store();
    let created = Profile::create(&dir, PASS, "ana", KdfParams::TESTING, &mut rng).unwrap();
    let old_id = created.identity.member_id();
    let mut profile = created.profile;
    sim.command(1, Command::SendText { circle, text: CANARY.into(), timer_secs: None });
    sim.run_for(2_000);
    flush(&mut sim, &mut profile, &mut rng);
    let (bucket_key, wrapping_key) = profile.expose_keys_for_tests(0).unwrap();
    profile.set_duress("they are watching", "ana", &mut rng).unwrap();
    drop(profile);

    let opened = Profile::open(&dir, "they are watching", sim.now, &mut rng).unwrap();
    assert!(opened.circles.is_empty());
    assert_ne!(opened.identity.member_id(), old_id);
    assert_eq!(opened.display_name, "ana");
    drop(opened);
    // The real passphrase opens nothing any more.
    assert!(matches!(Profile::open(&dir, PASS, sim.now, &mut rng), Err(StoreError::WrongPassphrase(_))));
    for (path, bytes) in snapshot(&dir) {
        assert!(!contains(&bytes, &bucket_key), "{} holds an old key", path.display());
        assert!(!contains(&bytes, &wrapping_key), "{} holds an old key", path.display());
    }
    // Same shape as a profile created from scratch: same files, same sizes.
    drop(Profile::create(&fresh, "they are watching", "ana", KdfParams::TESTING, &mut rng).unwrap());
    let shape = |d: &Path| -> Vec<(String, usize)> {
        snapshot(d).into_iter().map(|(p, b)| (p.file_name().unwrap().to_string_lossy().into_owned(), b.len())).collect()
    };
    assert_eq!(shape(&dir), shape(&fresh));
}

#[test]
fn ephemeral_mode_writes_no_file() {
    let home = fresh_dir("ephemeral-home");
    std::fs::create_dir_all(&home).unwrap();
    let tmp = std::env::temp_dir();
    let names = |d: &Path| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> =
            std::fs::read_dir(d).map(|r| r.flatten().map(|e| e.path()).collect()).unwrap_or_default();
        v.sort();
        v
    };
    let (home_before, tmp_before) = (snapshot(&home), names(&tmp));
    let mut rng = SeededEntropy::from_u64(4);
    let (mut sim, circle) = circle_with_store();
    let mut profile = Profile::ephemeral("ana", &mut rng).unwrap().profile;
    assert!(profile.is_ephemeral());
    for i in 0..50 {
        sim.command(1, Command::SendText { circle, text: format!("{CANARY} {i}"), timer_secs: Some(60) });
    }
    sim.run_for(120_000);
    flush(&mut sim, &mut profile, &mut rng);
    profile.purge_expired(sim.now, &mut rng).unwrap();
    drop(profile);
    assert_eq!(snapshot(&home), home_before);
    let tmp_after = names(&tmp);
    let new: Vec<&PathBuf> = tmp_after.iter().filter(|p| !tmp_before.contains(p)).collect();
    assert!(
        new.iter().all(|p| !p.to_string_lossy().contains("etilqs") && !p.to_string_lossy().contains("sqlite")),
        "temp files: {new:?}"
    );
}

#[test]
fn wrong_passphrase_corrupt_files_and_newer_versions_fail_clearly_and_change_nothing() {
    let dir = fresh_dir("bad-input");
    let mut rng = SeededEntropy::from_u64(5);
    drop(Profile::create(&dir, PASS, "ana", KdfParams::TESTING, &mut rng).unwrap());
    let before = snapshot(&dir);

    let err = Profile::open(&dir, "wrong", 0, &mut rng).err().unwrap();
    assert!(matches!(err, StoreError::WrongPassphrase(_)));
    assert!(err.to_string().contains("wrong passphrase"));
    assert_eq!(snapshot(&dir), before);

    // A damaged database: a clear error naming the file, files unchanged.
    let db = dir.join(store::DB_FILE);
    let mut bytes = before[&db].clone();
    for b in bytes.iter_mut().skip(2000).take(2000) {
        *b ^= 0x5a;
    }
    std::fs::write(&db, &bytes).unwrap();
    let damaged = snapshot(&dir);
    let err = Profile::open(&dir, PASS, 0, &mut rng).err().unwrap();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains(store::DB_FILE), "{err}");
    assert_eq!(snapshot(&dir), damaged);

    // A truncated database.
    std::fs::write(&db, &before[&db][..100]).unwrap();
    let err = Profile::open(&dir, PASS, 0, &mut rng).err().unwrap();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");

    // A truncated header.
    std::fs::write(&db, &before[&db]).unwrap();
    let header = dir.join(store::HEADER_FILE);
    std::fs::write(&header, &before[&header][..30]).unwrap();
    let err = Profile::open(&dir, PASS, 0, &mut rng).err().unwrap();
    assert!(err.to_string().contains(store::HEADER_FILE), "{err}");
    std::fs::write(&header, &before[&header]).unwrap();

    // A database from a newer schema.
    {
        let opened = Profile::open(&dir, PASS, 0, &mut rng).unwrap();
        opened.profile.raw_connection_for_tests().pragma_update(None, "user_version", 99).unwrap();
    }
    let newer = snapshot(&dir);
    let err = Profile::open(&dir, PASS, 0, &mut rng).err().unwrap();
    assert!(matches!(err, StoreError::Newer { found: 99, .. }), "{err}");
    assert!(err.to_string().contains("newer"));
    assert_eq!(snapshot(&dir), newer);
}

#[test]
fn passphrase_change_and_panic_wipe() {
    let dir = fresh_dir("change-panic");
    let mut rng = SeededEntropy::from_u64(6);
    let mut opened = Profile::create(&dir, PASS, "ana", KdfParams::TESTING, &mut rng).unwrap();
    opened.profile.change_passphrase("new secret", &mut rng).unwrap();
    drop(opened);
    assert!(matches!(Profile::open(&dir, PASS, 0, &mut rng), Err(StoreError::WrongPassphrase(_))));
    assert!(Profile::open(&dir, "new secret", 0, &mut rng).is_ok());
    store::destroy(&dir).unwrap();
    assert!(!dir.exists());
    assert!(matches!(Profile::open(&dir, "new secret", 0, &mut rng), Err(StoreError::NoProfile(_))));
}

const CHILD_ENV: &str = "KOLO_CRASH_CHILD_DIR";

/// Run in a child process by `acknowledged_messages_survive_sigkill`: open
/// (or create) the profile, then send messages forever, printing each one
/// only after the store committed it.
#[test]
fn crash_child_entry() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let mut rng = kolo::entropy::OsEntropy;
    let now = || {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
    };
    let (mut profile, mut engine) = match Profile::open(&dir, PASS, now(), &mut rng) {
        Ok(o) => {
            let e = Engine::restore(o.identity, o.display_name, EngineConfig::default(), o.circles).unwrap();
            (o.profile, e)
        }
        Err(StoreError::NoProfile(_)) => {
            let o = Profile::create(&dir, PASS, "ana", KdfParams::TESTING, &mut rng).unwrap();
            (o.profile, Engine::new(o.identity, o.display_name, EngineConfig::default()))
        }
        Err(e) => panic!("reopen failed: {e}"),
    };
    let persist = |profile: &mut Profile, engine: &Engine, outs: Vec<Output>, rng: &mut kolo::entropy::OsEntropy| {
        let records: Vec<Record> =
            outs.into_iter().filter_map(|o| if let Output::Persist(r) = o { Some(r) } else { None }).collect();
        profile.apply(&records, engine, rng).unwrap();
    };
    let circle = match engine.circle_ids().first() {
        Some(c) => *c,
        None => {
            let outs = engine.handle(
                now(),
                Input::Command(Command::CreateCircle { name: "c".into(), max_disappear_secs: None }),
                &mut rng,
            );
            persist(&mut profile, &engine, outs, &mut rng);
            engine.circle_ids()[0]
        }
    };
    let start: usize = std::env::var("KOLO_CRASH_START").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    for i in start..start + 400 {
        let text = format!("message {i}");
        let outs = engine.handle(now(), Input::Command(Command::SendText { circle, text, timer_secs: None }), &mut rng);
        persist(&mut profile, &engine, outs, &mut rng);
        println!("ack {i}");
    }
}

#[test]
fn acknowledged_messages_survive_sigkill() {
    use std::io::BufRead;
    let dir = fresh_dir("crash");
    let exe = std::env::current_exe().unwrap();
    let mut acked: Vec<usize> = Vec::new();
    let mut next = 0usize;
    let mut rng = SeededEntropy::from_u64(7);
    // A bounded number of runs, each killed after a pseudo-random number of acks.
    for round in 0..6 {
        let mut child = std::process::Command::new(&exe)
            .args(["--exact", "crash_child_entry", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &dir)
            .env("KOLO_CRASH_START", next.to_string())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let kill_after = 5 + (kolo::entropy::Entropy::array::<1>(&mut rng)[0] as usize % 40) + round;
        let mut seen = 0;
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(n) = line.strip_prefix("ack ").and_then(|n| n.parse::<usize>().ok()) {
                acked.push(n);
                seen += 1;
                if seen >= kill_after {
                    break;
                }
            }
        }
        child.kill().unwrap(); // SIGKILL on Unix
        let _ = child.wait();
        next = acked.iter().max().map_or(0, |m| m + 1);
    }
    let opened = Profile::open(&dir, PASS, 0, &mut rng).unwrap();
    let texts: std::collections::HashSet<String> =
        opened.circles.iter().flat_map(|c| c.messages.iter().map(|m| m.text.clone())).collect();
    assert!(acked.len() >= 30);
    for n in acked {
        assert!(texts.contains(&format!("message {n}")), "acknowledged message {n} was lost");
    }
}

/// Sending or reading a message saves only the chain that moved
/// (`Record::Chain`), not the whole circle snapshot; reopening must give
/// back exactly the live key state. Fails if chain records were not saved
/// or not applied over the snapshot: the restored sending chain would reuse
/// counters (same message ids, same message keys) and the receiving chain
/// would lag and hoard skipped keys.
#[test]
fn chain_advances_are_saved_alone_and_restore_exactly() {
    let dir = fresh_dir("chains");
    let mut rng = SeededEntropy::from_u64(3);
    let (mut sim, circle) = circle_with_store();
    let mut profile = Profile::create(&dir, PASS, "ana", KdfParams::TESTING, &mut rng).unwrap().profile;
    flush(&mut sim, &mut profile, &mut rng);
    for i in 0..5 {
        sim.command(0, Command::SendText { circle, text: format!("mine {i}"), timer_secs: None });
        sim.command(1, Command::SendText { circle, text: format!("theirs {i}"), timer_secs: None });
        sim.run_for(300);
    }
    let records = &sim.nodes[0].records;
    assert!(records.iter().any(|r| matches!(r, Record::Chain { .. })));
    assert!(!records.iter().any(|r| matches!(r, Record::CircleState { .. })), "plain messages rewrote the snapshot");
    flush(&mut sim, &mut profile, &mut rng);
    drop(profile);

    let opened = Profile::open(&dir, PASS, sim.now, &mut rng).unwrap();
    let mut restored = Engine::restore(opened.identity, opened.display_name, EngineConfig::default(), opened.circles)
        .expect("restore with saved chains");
    // A fresh frame from the other member: both copies open it the same way.
    sim.nodes[1].keep_records = false;
    sim.command(1, Command::SendText { circle, text: "after".into(), timer_secs: None });
    let fresh = sim.captured.iter().rev().find(|c| c.from == 1 && c.bytes[1] == 0x01).unwrap().bytes.clone();
    let now = sim.now;
    let live = &mut sim.nodes[0].engine;
    for engine in [&mut *live, &mut restored] {
        let outs = engine.handle(now, Input::Frame { circle, bytes: fresh.clone() }, &mut rng);
        assert!(outs.iter().any(|o| matches!(o, Output::Event(kolo::engine::Event::Message(m)) if m.text == "after")));
    }
    assert_eq!(restored.export_circle(&circle).unwrap().len(), live.export_circle(&circle).unwrap().len());
    // Our next message takes the same counter (hence the same id) in both.
    let sent_id = |engine: &mut Engine, rng: &mut SeededEntropy| {
        let outs = engine.handle(
            now,
            Input::Command(Command::SendText { circle, text: "next".into(), timer_secs: None }),
            rng,
        );
        outs.iter()
            .find_map(|o| match o {
                Output::Event(kolo::engine::Event::Message(m)) => Some(m.id),
                _ => None,
            })
            .unwrap()
    };
    assert_eq!(sent_id(&mut restored, &mut rng), sent_id(live, &mut rng));
}
