//! Per-message crypto cost: kolo's send and receive paths against bare
//! ChaCha20-Poly1305 plus one ed25519 signature of the same payload.
//!
//! Run: `cargo bench --bench crypto`. After criterion has measured every
//! case, the ratios (kolo / bare, median against median, same run) are
//! printed and written to `target/bench-results/crypto.json`, which
//! is where the table in `docs/performance.md` comes from.
//!
//! * kolo send: encode the plaintext message (`engine::message::Inner`),
//!   pad it to its size bucket, step the sender chain (HKDF), seal with
//!   ChaCha20-Poly1305 under the header, sign the frame: exactly
//!   `CircleState::send_group`'s crypto, through the library's own functions.
//! * kolo receive: parse the frame, verify the signature, check the counter,
//!   derive the message key, open, commit the chain, strip the padding and
//!   decode the message: the checks of `CircleState::open_group`.
//! * bare: one AEAD seal (open) of the payload and one ed25519 sign (strict
//!   verify) over the ciphertext, with keys set up in advance.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use chacha20poly1305::ChaCha20Poly1305;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use criterion::{BatchSize, BenchmarkId, Criterion};
use ed25519_dalek::{Signer, SigningKey};
use kolo::crypto::envelope;
use kolo::crypto::ratchet::{ReceivingChain, SendingChain};
use kolo::engine::message::{Body, Inner};
use kolo::entropy::SeededEntropy;
use kolo::identity::MemberId;
use kolo::wire::{pad, unpad};

const SIZES: [usize; 3] = [64, 1024, 16 * 1024];

fn text(size: usize) -> String {
    "k".repeat(size)
}

fn inner(size: usize, epoch: u32) -> Inner {
    Inner {
        circle_id: [7; 32],
        sender: MemberId([9; 32]),
        epoch,
        sent_at_ms: 1_700_000_000_000,
        timer_secs: 0,
        body: Body::Text(text(size)),
    }
}

/// The padded plaintext size kolo seals for a text of `size` bytes.
fn padded_len(size: usize) -> usize {
    pad(&inner(size, 1).encode()).map(|p| p.len()).unwrap_or(0)
}

/// kolo's send path: message encoding, padding, ratchet step, seal, sign.
fn kolo_send(chain: &mut SendingChain, message: &Inner) -> Vec<u8> {
    let padded = pad(&message.encode()).unwrap_or_default();
    envelope::seal(chain, &padded).map(|(_, frame)| frame).unwrap_or_default()
}

/// kolo's receive path: parse, verify, counter, ratchet, open, commit, unpad, decode.
fn kolo_receive(chain: &mut ReceivingChain, frame: &[u8]) -> Option<Inner> {
    let parsed = envelope::parse(frame).ok()?;
    let (padded, advance) = envelope::open_uncommitted(chain, &parsed).ok()?;
    let inner = Inner::decode(unpad(&padded).ok()?).ok()?;
    chain.commit(advance);
    Some(inner)
}

struct Bare {
    aead: ChaCha20Poly1305,
    signing: SigningKey,
}

impl Bare {
    fn new() -> Self {
        Self { aead: ChaCha20Poly1305::new(&[3u8; 32].into()), signing: SigningKey::from_bytes(&[5; 32]) }
    }

    fn seal_sign(&self, payload: &[u8]) -> (Vec<u8>, [u8; 64]) {
        let ct = self.aead.encrypt(&[1u8; 12].into(), Payload { msg: payload, aad: b"" }).unwrap_or_default();
        let sig = self.signing.sign(&ct).to_bytes();
        (ct, sig)
    }

    fn verify_open(&self, ct: &[u8], sig: &[u8; 64]) -> Option<Vec<u8>> {
        let key = self.signing.verifying_key();
        key.verify_strict(ct, &ed25519_dalek::Signature::from_bytes(sig)).ok()?;
        self.aead.decrypt(&[1u8; 12].into(), Payload { msg: ct, aad: b"" }).ok()
    }
}

fn benches(c: &mut Criterion) {
    let bare = Bare::new();
    let mut group = c.benchmark_group("crypto");
    for size in SIZES {
        let message = inner(size, 1);
        let payload = vec![0x6bu8; size];

        let mut rng = SeededEntropy::from_u64(size as u64);
        let mut chain = SendingChain::generate(1, 0, &mut rng);
        group.bench_with_input(BenchmarkId::new("kolo_send", size), &size, |b, _| {
            b.iter(|| kolo_send(&mut chain, black_box(&message)))
        });
        group.bench_with_input(BenchmarkId::new("bare_send", size), &size, |b, _| {
            b.iter(|| bare.seal_sign(black_box(&payload)))
        });

        // Frames must be opened in order by one receiving chain: seal each
        // one outside the timed routine, open it inside.
        let mut rng = SeededEntropy::from_u64(1000 + size as u64);
        let mut sender = SendingChain::generate(1, 0, &mut rng);
        let distribution = sender.distribution();
        let Ok(mut receiver) = ReceivingChain::from_distribution(&distribution) else {
            eprintln!("could not set up a receiving chain");
            return;
        };
        group.bench_with_input(BenchmarkId::new("kolo_receive", size), &size, |b, _| {
            b.iter_batched(
                || kolo_send(&mut sender, &message),
                |frame| {
                    let out = kolo_receive(&mut receiver, black_box(&frame));
                    assert!(out.is_some(), "kolo frame did not open");
                    out
                },
                BatchSize::SmallInput,
            )
        });
        let (ct, sig) = bare.seal_sign(&payload);
        group.bench_with_input(BenchmarkId::new("bare_receive", size), &size, |b, _| {
            b.iter(|| {
                let out = bare.verify_open(black_box(&ct), black_box(&sig));
                assert!(out.is_some(), "bare frame did not open");
                out
            })
        });

        // The same bare operations on the padded size kolo actually seals:
        // what the padding buckets cost, apart from everything else.
        let padded = vec![0x6bu8; padded_len(size)];
        group.bench_with_input(BenchmarkId::new("bare_send_padded", size), &size, |b, _| {
            b.iter(|| bare.seal_sign(black_box(&padded)))
        });
        let (pct, psig) = bare.seal_sign(&padded);
        group.bench_with_input(BenchmarkId::new("bare_receive_padded", size), &size, |b, _| {
            b.iter(|| bare.verify_open(black_box(&pct), black_box(&psig)))
        });
    }
    group.finish();
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("target"))
}

/// Criterion's median estimate for one case, in nanoseconds.
fn median_ns(dir: &std::path::Path, case: &str, size: usize) -> Option<f64> {
    let path = dir.join("crypto").join(case).join(size.to_string()).join("new").join("estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["median"]["point_estimate"].as_f64()
}

fn main() {
    let out = target_dir().join("criterion");
    let mut c = Criterion::default()
        .output_directory(&out)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(60)
        .configure_from_args();
    benches(&mut c);
    c.final_summary();

    // Ratios, same run: kolo / bare per direction and size.
    let mut rows = Vec::new();
    println!(
        "\n{:>8} {:>10} {:>12} {:>12} {:>7} {:>16} {:>7}",
        "size", "path", "kolo ns", "bare ns", "ratio", "bare padded ns", "ratio"
    );
    for size in SIZES {
        for dir in ["send", "receive"] {
            let (Some(k), Some(b)) =
                (median_ns(&out, &format!("kolo_{dir}"), size), median_ns(&out, &format!("bare_{dir}"), size))
            else {
                continue;
            };
            let p = median_ns(&out, &format!("bare_{dir}_padded"), size).unwrap_or(f64::NAN);
            println!("{size:>8} {dir:>10} {k:>12.0} {b:>12.0} {:>7.2} {p:>16.0} {:>7.2}", k / b, k / p);
            rows.push(serde_json::json!({ "size": size, "padded": padded_len(size), "path": dir, "kolo_ns": k,
                "bare_ns": b, "ratio": k / b, "bare_padded_ns": p, "ratio_padded": k / p }));
        }
    }
    if rows.is_empty() {
        return; // `--list`, a filter, or `cargo test --benches`: nothing measured.
    }
    let results = target_dir().join("bench-results");
    let _ = std::fs::create_dir_all(&results);
    let doc = serde_json::json!({ "bench": "crypto", "rows": rows });
    if let Err(e) = std::fs::write(results.join("crypto.json"), doc.to_string()) {
        eprintln!("could not write crypto.json: {e}");
    }
}
