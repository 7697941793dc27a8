//! Membership log resolution at scale (issue 12): building a circle's log
//! of 10,000 operations from scratch, as a restart or a join's welcome
//! does, against the baseline of verifying the same operations'
//! signatures alone (the least any implementation must do).
//!
//! Three shapes: a linear history (each operation on the one before), a
//! history where every tenth operation is concurrent with its neighbour
//! (two organisers acting at once), and one whole resolution of a
//! 10,000-operation log with many concurrent heads.
//!
//! Run: `cargo bench --bench log --no-default-features` (the pure core
//! only; no I/O dependencies are built).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use kolo::circle::{CircleLog, Op, OpBody, Role};
use kolo::entropy::SeededEntropy;
use kolo::identity::{IdentitySecret, NoiseBinding, NoiseSecret};

const OPS: usize = 10_000;

/// Organisers who take turns adding members, rotating and setting the
/// timer; every `fork`-th operation is signed on the heads before the
/// previous one (concurrent with it).
fn history(fork: usize) -> Vec<Op> {
    let mut rng = SeededEntropy::from_u64(1);
    let ana = IdentitySecret::generate(&mut rng);
    let (genesis, circle) = Op::create(
        &ana,
        &NoiseSecret::generate(&mut rng),
        &NoiseSecret::generate(&mut rng),
        "c",
        "Ana",
        0,
        0,
        &mut rng,
    )
    .unwrap();
    let mut log = CircleLog::from_genesis(genesis.clone()).unwrap();
    let mut ops = vec![genesis];
    // Five organisers take turns: each may author at most 2,000 operations.
    let mut organisers = vec![ana];
    for i in 0..4 {
        let who = IdentitySecret::generate(&mut rng);
        let binding =
            NoiseBinding::create(&who, &circle, &NoiseSecret::generate(&mut rng), &NoiseSecret::generate(&mut rng));
        let add = Op::sign(
            &organisers[0],
            &circle,
            log.heads(),
            OpBody::Add { member: who.member_id(), binding, display_name: format!("org{i}"), role: Role::Organiser },
            1,
        )
        .unwrap();
        log.insert(add.clone()).unwrap();
        ops.push(add);
        organisers.push(who);
    }
    let mut previous_heads = log.heads();
    for k in 0..(2 * OPS) as u64 {
        if ops.len() >= OPS {
            break;
        }
        let author = &organisers[k as usize % organisers.len()];
        let heads = if fork > 0 && (k as usize).is_multiple_of(fork) { previous_heads.clone() } else { log.heads() };
        let who = IdentitySecret::generate(&mut rng);
        let body = match k % 3 {
            0 => OpBody::Rotate,
            1 => OpBody::SetDisappear { max_secs: (k % 1000) as u32 + 1 },
            _ => OpBody::Add {
                member: who.member_id(),
                binding: NoiseBinding::create(
                    &who,
                    &circle,
                    &NoiseSecret::generate(&mut rng),
                    &NoiseSecret::generate(&mut rng),
                ),
                display_name: format!("m{k}"),
                role: Role::Member,
            },
        };
        let op = Op::sign(author, &circle, heads, body, k + 2).unwrap();
        previous_heads = log.heads();
        if log.insert(op.clone()).is_ok() {
            ops.push(op);
        }
    }
    ops
}

fn time<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed().as_secs_f64())
}

fn main() {
    for (name, fork) in [("linear", 0), ("every 10th concurrent", 10)] {
        let ops = history(fork);
        let circle = kolo::circle::op::circle_id_of(
            &ops[0].author,
            &match &ops[0].body {
                OpBody::Create { nonce, .. } => *nonce,
                _ => unreachable!(),
            },
        );
        let (_, verify) = time(|| ops.iter().filter(|o| o.verify_author(&circle).is_ok()).count());
        let encoded: Vec<Vec<u8>> = ops.iter().map(Op::encode).collect();
        let (log, build) = time(|| {
            let decoded: Vec<Op> = encoded.iter().map(|b| Op::decode(b).unwrap()).collect();
            CircleLog::from_ops(decoded).unwrap()
        });
        assert_eq!(log.len(), ops.len());
        println!(
            "{name}: {} ops, {} members, {} heads: rebuild {:.0} ms, signatures alone {:.0} ms, ratio {:.2}",
            log.len(),
            log.members().len(),
            log.heads().len(),
            build * 1e3,
            verify * 1e3,
            build / verify
        );
    }
}
