//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`, grown and
//! minimised by libFuzzer, crashes kept) through the same functions the
//! fuzz targets call, as an ordinary `cargo test`. See
//! `docs/security-testing.md` for running the fuzzers themselves.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use kolo::fuzz_targets::{TARGETS, run, seeds};

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz").join("corpus").join(target)
}

#[test]
fn every_corpus_file_replays_without_a_crash() {
    let mut total = 0;
    for target in TARGETS {
        let dir = corpus_dir(target);
        let entries: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .collect();
        assert!(!entries.is_empty(), "the corpus of {target} is empty");
        for path in entries {
            let data = std::fs::read(&path).unwrap();
            assert!(run(target, &data), "unknown target {target}");
            total += 1;
        }
    }
    println!("replayed {total} corpus files");
}

#[test]
fn every_target_has_a_fuzz_binary_and_the_seeds_pass() {
    let fuzz_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz").join("fuzz_targets");
    for target in TARGETS {
        assert!(fuzz_dir.join(format!("{target}.rs")).is_file(), "no fuzz/fuzz_targets/{target}.rs");
    }
    for (target, data) in seeds() {
        assert!(run(target, &data));
    }
}

/// `cargo test --test fuzz_corpus -- --ignored write_seeds` adds the seeds
/// (real encodings) to the corpus, named by content hash.
#[test]
#[ignore]
fn write_seeds() {
    for (target, data) in seeds().into_iter().chain(vector_seeds()) {
        let dir = corpus_dir(target);
        std::fs::create_dir_all(&dir).unwrap();
        let name = kolo::identity::hex(&kolo::crypto::kdf::hash(b"seed", &[&data])[..20]);
        std::fs::write(dir.join(format!("seed-{name}")), &data).unwrap();
    }
}

/// The frames of `protocol/vectors/` as seeds: (target, bytes).
fn vector_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("protocol").join("vectors");
    let read = |file: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join(file)).unwrap()).unwrap()
    };
    let unhex = |v: &serde_json::Value| -> Vec<u8> {
        let h = v.as_str().unwrap();
        (0..h.len()).step_by(2).map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap()).collect()
    };
    let envelope = read("envelope.json");
    let operations = read("operations.json");
    let pairwise = read("pairwise.json");
    let invite = read("invite.json");
    let mut out = vec![
        ("topic_frame", unhex(&envelope["frame"])),
        ("handshake", unhex(&pairwise["message_1"])),
        ("handshake", unhex(&pairwise["message_2"])),
        ("invite_code", invite["code"].as_str().unwrap().as_bytes().to_vec()),
    ];
    for op in ["create", "invite", "join"] {
        out.push(("membership_op", unhex(&operations[op]["encoded"])));
    }
    out
}
