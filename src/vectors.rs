//! Test vectors for `protocol/vectors/`: fixed inputs run through the real
//! code. `cargo run --example gen_vectors` writes them; `tests/vectors.rs`
//! recomputes them and compares with the committed files, so the spec,
//! the vectors and the code cannot drift apart.

use serde_json::{Value, json};

use crate::circle::{CircleLog, InviteCode, InviteSecret, Op, OpBody, Role};
use crate::crypto::pairwise::{KkContext, KkInitiator, kk_respond};
use crate::crypto::ratchet::SendingChain;
use crate::crypto::{envelope, kdf};
use crate::engine::message::{Announcement, Body, Inner};
use crate::entropy::{Entropy, SeededEntropy};
use crate::identity::{IdentitySecret, MemberId, NoiseBinding, NoiseSecret, hex, safety_number};
use crate::wire::{Writer, pad};

/// Every vector file: (file name, contents).
pub fn all() -> Vec<(&'static str, Value)> {
    vec![
        ("kdf.json", kdf_vectors()),
        ("identity.json", identity_vectors()),
        ("padding.json", padding_vectors()),
        ("ratchet.json", ratchet_vectors()),
        ("envelope.json", envelope_vectors()),
        ("operations.json", operation_vectors()),
        ("resolution.json", resolution_vectors()),
        ("invite.json", invite_vectors()),
        ("pairwise.json", pairwise_vectors()),
        ("join_hello.json", join_hello_vectors()),
        ("frame_mac.json", frame_mac_vectors()),
        ("epochs.json", epoch_vectors()),
        ("link.json", link_vectors()),
    ]
}

/// 32 bytes counting up from `byte`: the fixed keys of the vectors.
pub(crate) fn seed(byte: u8) -> [u8; 32] {
    let mut s = [0u8; 32];
    for (i, b) in s.iter_mut().enumerate() {
        *b = byte.wrapping_add(i as u8);
    }
    s
}

fn kdf_vectors() -> Value {
    let h = kdf::hash(b"kolo/v1/vector", &[b"abc", b""]);
    let d: [u8; 32] = kdf::derive(b"salt", b"input key material", b"kolo/v1/vector", &[b"ctx"]);
    json!({
        "description": "hash(label, parts) and derive_32(salt, ikm, label, context), SPEC §1",
        "hash": { "label": "kolo/v1/vector", "parts_utf8": ["abc", ""], "output": hex(&h) },
        "derive": { "salt_utf8": "salt", "ikm_utf8": "input key material", "label": "kolo/v1/vector",
                    "context_utf8": ["ctx"], "output": hex(&d) },
    })
}

fn identity_vectors() -> Value {
    let id = IdentitySecret::from_seed(&seed(1));
    let noise = NoiseSecret::from_bytes(seed(2));
    let circle_id = seed(3);
    let binding = NoiseBinding::create(&id, &circle_id, &noise);
    json!({
        "description": "member id, fingerprint, safety number and Noise key binding, SPEC §3",
        "identity_seed": hex(&seed(1)),
        "member_id": id.member_id().to_hex(),
        "fingerprint": id.member_id().fingerprint().to_string(),
        "safety_number": safety_number(&id.member_id()).to_string(),
        "noise_secret": hex(&seed(2)),
        "noise_public": hex(&noise.public()),
        "circle_id": hex(&circle_id),
        "binding_signature": hex(&binding.signature),
    })
}

fn padding_vectors() -> Value {
    let cases: Vec<Value> = [0usize, 1, 255, 256, 1023, 5000]
        .iter()
        .map(|n| {
            let padded = pad(&vec![0x41; *n]).unwrap_or_default();
            json!({ "content_len": n, "padded_len": padded.len(), "marker_at": n })
        })
        .collect();
    json!({ "description": "content || 0x80 || zeros to the smallest bucket, SPEC §5.3", "cases": cases })
}

fn chain_from(signing_seed: [u8; 32], chain_key: [u8; 32], epoch: u32) -> Option<SendingChain> {
    let mut w = Writer::new();
    w.raw(&signing_seed).raw(&chain_key).u32(epoch).u32(0).u64(0);
    SendingChain::import(&w.finish()).ok()
}

fn ratchet_vectors() -> Value {
    let Some(mut chain) = chain_from(seed(4), seed(5), 7) else {
        return Value::Null;
    };
    let key_id = chain.key_id();
    let steps: Vec<Value> = (0..3)
        .filter_map(|_| {
            let (counter, mk) = chain.next_message_key().ok()?;
            let next_chain_key = chain.export()[32..64].to_vec();
            Some(json!({ "counter": counter, "message_key": hex(&mk.key), "nonce": hex(&mk.nonce),
                         "next_chain_key": hex(&next_chain_key) }))
        })
        .collect();
    json!({
        "description": "sender-key chain: key id and the first message keys, SPEC §5.1",
        "signing_seed": hex(&seed(4)),
        "signing_public": hex(&chain.signing_public()),
        "key_id": hex(&key_id),
        "chain_key_0": hex(&seed(5)),
        "steps": steps,
    })
}

fn envelope_vectors() -> Value {
    let Some(mut chain) = chain_from(seed(4), seed(5), 7) else {
        return Value::Null;
    };
    let sender = IdentitySecret::from_seed(&seed(1)).member_id();
    let inner = Inner {
        circle_id: seed(3),
        sender,
        epoch: 7,
        sent_at_ms: 1_700_000_000_000,
        timer_secs: 3600,
        body: Body::Announcement(Announcement {
            title: "Assembly moved".into(),
            when: "Saturday 11:00".into(),
            place: "north entrance".into(),
            details: "Bring water.".into(),
            supersedes: Some([9; 16]),
        }),
    };
    let plaintext = inner.encode();
    let Ok(padded) = pad(&plaintext) else {
        return Value::Null;
    };
    let Ok((header, frame)) = envelope::seal(&mut chain, &padded) else {
        return Value::Null;
    };
    json!({
        "description": "a group frame: chain state, plaintext, and the exact frame, SPEC §5.2-5.4",
        "signing_seed": hex(&seed(4)),
        "chain_key_0": hex(&seed(5)),
        "epoch": header.epoch,
        "counter": header.counter,
        "plaintext": hex(&plaintext),
        "padded_len": padded.len(),
        "frame": hex(&frame),
        "message_id": hex(&crate::engine::message_id(&header.key_id, header.counter)),
    })
}

fn operation_vectors() -> Value {
    let creator = IdentitySecret::from_seed(&seed(1));
    let noise = NoiseSecret::from_bytes(seed(2));
    let mut rng = SeededEntropy::new(seed(6));
    let Ok((genesis, circle_id)) =
        Op::create(&creator, &noise, "riverside", "Ana", 86_400, 1_700_000_000_000, &mut rng)
    else {
        return Value::Null;
    };
    let sign = |parents: Vec<[u8; 32]>, body: OpBody, t: u64| Op::sign(&creator, &circle_id, parents, body, t).ok();
    let invite = InviteSecret::from_seed(&seed(7));
    let Some(invite_op) = sign(
        vec![genesis.id()],
        OpBody::Invite { invite_public: invite.public(), expires_at_ms: 1_700_000_600_000, role: Role::Member },
        1_700_000_001_000,
    ) else {
        return Value::Null;
    };
    let joiner = IdentitySecret::from_seed(&seed(8));
    let joiner_noise = NoiseSecret::from_bytes(seed(9));
    let binding = NoiseBinding::create(&joiner, &circle_id, &joiner_noise);
    let Ok(join) = Op::sign_join(&joiner, &circle_id, &invite, invite_op.id(), binding, "Bongani", 1_700_000_002_000)
    else {
        return Value::Null;
    };
    let Some(admit) = sign(vec![invite_op.id()], OpBody::Admit { join: Box::new(join.clone()) }, 1_700_000_003_000)
    else {
        return Value::Null;
    };
    let after = vec![admit.id()];
    let member = joiner.member_id();
    let t = 1_700_000_004_000;
    let (Some(set_role), Some(rotate), Some(disappear), Some(revoke), Some(rename), Some(remove)) = (
        sign(after.clone(), OpBody::SetRole { member, role: Role::Organiser }, t),
        sign(after.clone(), OpBody::Rotate, t),
        sign(after.clone(), OpBody::SetDisappear { max_secs: 3600 }, t),
        sign(after.clone(), OpBody::RevokeInvite { invite_op: invite_op.id() }, t),
        sign(after.clone(), OpBody::Rename { display_name: "Ana M".into() }, t),
        sign(after.clone(), OpBody::Remove { member }, t),
    ) else {
        return Value::Null;
    };
    let adder = IdentitySecret::from_seed(&seed(13));
    let adder_binding = NoiseBinding::create(&adder, &circle_id, &NoiseSecret::from_bytes(seed(14)));
    let Some(add) = sign(
        after.clone(),
        OpBody::Add {
            member: adder.member_id(),
            binding: adder_binding,
            display_name: "Chen".into(),
            role: Role::Member,
        },
        t,
    ) else {
        return Value::Null;
    };
    let op = |o: &Op| json!({ "encoded": hex(&o.encode()), "op_id": hex(&o.id()) });
    json!({
        "description": "membership operations of every kind, SPEC §4.2 (each signed by the creator but the join, signed by the joiner and the invite key)",
        "creator_seed": hex(&seed(1)),
        "creator_noise_secret": hex(&seed(2)),
        "circle_id": hex(&circle_id),
        "create": op(&genesis),
        "invite_seed": hex(&seed(7)),
        "invite": op(&invite_op),
        "joiner_seed": hex(&seed(8)),
        "joiner_noise_secret": hex(&seed(9)),
        "join": op(&join),
        "admit": op(&admit),
        "added_seed": hex(&seed(13)),
        "added_noise_secret": hex(&seed(14)),
        "add": op(&add),
        "set_role": op(&set_role),
        "rotate": op(&rotate),
        "set_disappear": op(&disappear),
        "revoke_invite": op(&revoke),
        "rename": op(&rename),
        "remove": op(&remove),
    })
}

/// One resolution case: the operations (genesis first, then in the order
/// given, which any order must match), and the roster they resolve to.
fn resolution_case(name: &str, description: &str, ops: &[&Op]) -> Value {
    let Ok(log) = CircleLog::from_ops(ops.iter().map(|o| (*o).clone()).collect()) else {
        return Value::Null;
    };
    let roster: Vec<Value> = log
        .members()
        .iter()
        .map(|m| json!({ "member": hex(m.id.as_bytes()), "role": m.role.label(), "name": m.display_name }))
        .collect();
    let order: Vec<String> = log.ops_in_order().iter().map(|o| hex(&o.id())).collect();
    json!({
        "name": name,
        "description": description,
        "ops": ops.iter().map(|o| hex(&o.encode())).collect::<Vec<_>>(),
        "order": order,
        "heads": log.heads().iter().map(|h| hex(h)).collect::<Vec<_>>(),
        "epoch": log.epoch(),
        "roster": roster,
        "ignored": log.ignored_ops().iter().map(|(id, why)| json!({ "op_id": hex(id), "reason": why })).collect::<Vec<_>>(),
    })
}

fn resolution_vectors() -> Value {
    let ana = IdentitySecret::from_seed(&seed(1));
    let mut rng = SeededEntropy::new(seed(6));
    let Ok((genesis, c)) =
        Op::create(&ana, &NoiseSecret::from_bytes(seed(2)), "riverside", "Ana", 0, 1_700_000_000_000, &mut rng)
    else {
        return Value::Null;
    };
    let people: Vec<IdentitySecret> = (20..24).map(|b| IdentitySecret::from_seed(&seed(b))).collect();
    let [bo, cy, dee, eve] = [&people[0], &people[1], &people[2], &people[3]];
    let t = 1_700_000_000_000u64;
    let add = |by: &IdentitySecret, who: &IdentitySecret, name: &str, role: Role, parents: Vec<[u8; 32]>, k: u8| {
        let binding = NoiseBinding::create(who, &c, &NoiseSecret::from_bytes(seed(40 + k)));
        Op::sign(by, &c, parents, OpBody::Add { member: who.member_id(), binding, display_name: name.into(), role }, t)
            .ok()
    };
    let sign = |by: &IdentitySecret, parents: Vec<[u8; 32]>, body: OpBody, dt: u64| {
        Op::sign(by, &c, parents, body, t + dt).ok()
    };
    let (Some(add_bo), Some(add_cy)) = (
        add(&ana, bo, "Bo", Role::Organiser, vec![genesis.id()], 0),
        add(&ana, cy, "Cy", Role::Organiser, vec![genesis.id()], 1),
    ) else {
        return Value::Null;
    };
    let base = vec![add_bo.id(), add_cy.id()];
    let Some(merge) = add(&ana, dee, "Dee", Role::Member, base.clone(), 2) else {
        return Value::Null;
    };
    let h = vec![merge.id()];
    // Mutual removal: the senior (Bo, added first in the order) wins.
    let (Some(bo_rm_cy), Some(cy_rm_bo)) = (
        sign(bo, h.clone(), OpBody::Remove { member: cy.member_id() }, 10),
        sign(cy, h.clone(), OpBody::Remove { member: bo.member_id() }, 10),
    ) else {
        return Value::Null;
    };
    // A demotion concurrent with the demoted organiser's own operations.
    let (Some(demote_bo), Some(bo_promotes_dee)) = (
        sign(&ana, h.clone(), OpBody::SetRole { member: bo.member_id(), role: Role::Member }, 20),
        sign(bo, h.clone(), OpBody::SetRole { member: dee.member_id(), role: Role::Organiser }, 20),
    ) else {
        return Value::Null;
    };
    // An admission concurrent with the removal of the inviter.
    let invite = InviteSecret::from_seed(&seed(30));
    let Some(inv) = sign(
        bo,
        h.clone(),
        OpBody::Invite { invite_public: invite.public(), expires_at_ms: t + 1_000_000, role: Role::Member },
        30,
    ) else {
        return Value::Null;
    };
    let eve_binding = NoiseBinding::create(eve, &c, &NoiseSecret::from_bytes(seed(31)));
    let Ok(join) = Op::sign_join(eve, &c, &invite, inv.id(), eve_binding, "Eve", t + 31) else {
        return Value::Null;
    };
    let (Some(admit), Some(ana_rm_bo)) = (
        sign(bo, vec![inv.id()], OpBody::Admit { join: Box::new(join) }, 32),
        sign(&ana, vec![inv.id()], OpBody::Remove { member: bo.member_id() }, 32),
    ) else {
        return Value::Null;
    };
    json!({
        "description": "log resolution, SPEC §4.3: each case lists operations (genesis first); resolving them in any order gives this order, heads, epoch, roster and set of stored-but-uncounted operations",
        "circle_id": hex(&c),
        "cases": [
            resolution_case("linear", "create, two organisers added concurrently, a member added by a merge",
                &[&genesis, &add_bo, &add_cy, &merge]),
            resolution_case("mutual-removal", "two organisers remove each other concurrently: the more senior (earlier standing) wins",
                &[&genesis, &add_bo, &add_cy, &merge, &bo_rm_cy, &cy_rm_bo]),
            resolution_case("demotion", "an organiser is demoted while promoting someone: the promotion, concurrent with the demotion, does not count",
                &[&genesis, &add_bo, &add_cy, &merge, &demote_bo, &bo_promotes_dee]),
            resolution_case("admit-vs-removal", "an inviter admits a joiner concurrently with its own removal: the admission does not count",
                &[&genesis, &add_bo, &add_cy, &merge, &inv, &admit, &ana_rm_bo]),
        ],
    })
}

fn invite_vectors() -> Value {
    let code = InviteCode {
        circle_id: seed(3),
        network_key: seed(10),
        invite_op: seed(11),
        secret: InviteSecret::from_seed(&seed(7)),
        expires_at_ms: 1_700_000_600_000,
        inviter: MemberId(seed(12)),
        addresses: vec!["/ip4/127.0.0.1/tcp/4001".into()],
    };
    json!({
        "description": "invite code text, SPEC §4.4",
        "circle_id": hex(&seed(3)),
        "network_key": hex(&seed(10)),
        "invite_op": hex(&seed(11)),
        "invite_seed": hex(&seed(7)),
        "expires_at_ms": 1_700_000_600_000u64,
        "inviter": hex(&seed(12)),
        "addresses": ["/ip4/127.0.0.1/tcp/4001"],
        "code": code.encode(),
    })
}

/// The X25519 ephemeral secret snow draws for a handshake started with an
/// entropy source seeded by `handshake_seed` (see `crypto::pairwise`).
fn ephemeral_for(handshake_seed: [u8; 32]) -> [u8; 32] {
    let mut outer = SeededEntropy::new(handshake_seed);
    let inner_seed: [u8; 32] = outer.array();
    SeededEntropy::new(inner_seed).array()
}

/// The two members, keys and prologue of `pairwise.json` (also the fuzz
/// target's, so the vector's first message is a valid seed there).
pub(crate) struct PairwiseFixture {
    pub a_noise: NoiseSecret,
    pub b_noise: NoiseSecret,
    pub psk: [u8; 32],
    pub context: KkContext,
}

pub(crate) fn pairwise_fixture() -> PairwiseFixture {
    let a = IdentitySecret::from_seed(&seed(1)).member_id();
    let b = IdentitySecret::from_seed(&seed(8)).member_id();
    PairwiseFixture {
        a_noise: NoiseSecret::from_bytes(seed(2)),
        b_noise: NoiseSecret::from_bytes(seed(9)),
        psk: seed(13),
        context: KkContext { circle_id: seed(3), epoch: 2, initiator: a, responder: b },
    }
}

fn pairwise_vectors() -> Value {
    let PairwiseFixture { a_noise, b_noise, psk, context } = pairwise_fixture();
    let payload = b"sender key distribution goes here";
    let mut rng_a = SeededEntropy::new(seed(14));
    let mut rng_b = SeededEntropy::new(seed(15));
    let Ok((init, hello)) = KkInitiator::start(&a_noise, &b_noise.public(), &psk, &context, payload, &mut rng_a) else {
        return Value::Null;
    };
    let Ok((mut b_session, _, reply)) =
        kk_respond(&b_noise, &a_noise.public(), &psk, &context, &hello, b"", &mut rng_b)
    else {
        return Value::Null;
    };
    let Ok((mut a_session, _)) = init.finish(&reply) else {
        return Value::Null;
    };
    let Ok((nonce, ct)) = a_session.seal(b"header", b"second payload") else {
        return Value::Null;
    };
    let opened = b_session.open(b"header", nonce, &ct).unwrap_or_default();
    json!({
        "description": "Noise_KKpsk0_25519_ChaChaPoly_BLAKE2s between two members, SPEC §6.1: protocol v2 sends message_1 alone (one payload per handshake, the responder's static key being its pairwise key); message_2 and transport show the pattern's continuation",
        "initiator_noise_secret": hex(&seed(2)),
        "responder_noise_secret": hex(&seed(9)),
        "initiator_ephemeral_secret": hex(&ephemeral_for(seed(14))),
        "responder_ephemeral_secret": hex(&ephemeral_for(seed(15))),
        "psk": hex(&psk),
        "prologue": hex(&context.prologue()),
        "payload_utf8": String::from_utf8_lossy(payload),
        "message_1": hex(&hello),
        "message_2": hex(&reply),
        "session_id": hex(&a_session.id()),
        "transport": { "ad_utf8": "header", "nonce": nonce, "ciphertext": hex(&ct),
                       "plaintext_utf8": String::from_utf8_lossy(&opened) },
    })
}

/// The JOIN_HELLO of SPEC §8 (v2): the tag and the invite key's signature
/// over fixed inputs, and the frame they make.
fn join_hello_vectors() -> Value {
    let invite = InviteSecret::from_seed(&seed(0x30));
    let circle_id = seed(0x31);
    let invite_op = seed(0x32);
    let join_op_id = seed(0x33);
    // XX message 1 is the joiner's ephemeral public key (empty payload).
    let xx1 = seed(0x34);
    let tag = crate::engine::frames::join_tag(&join_op_id, &xx1);
    let signed = crate::engine::frames::join_hello_signed(&circle_id, &invite_op, &tag, &xx1);
    let proof = invite.sign(&signed);
    let frame = crate::engine::frames::encode_join_hello(&invite_op, &proof, &tag, &xx1);
    json!({
        "description": "JOIN_HELLO with its invite proof and join tag, SPEC §8",
        "invite_seed": hex(&seed(0x30)),
        "invite_public": hex(&invite.public()),
        "circle_id": hex(&circle_id),
        "invite_op": hex(&invite_op),
        "join_op_id": hex(&join_op_id),
        "xx_message_1": hex(&xx1),
        "join_tag": hex(&tag),
        "signed_message": hex(&signed),
        "invite_proof": hex(&proof),
        "frame": hex(&frame),
    })
}

/// The outer authenticator of pairwise frames and catch-up requests, SPEC
/// §4.1 (`frame_key`) and §6.2b, over fixed inputs.
fn frame_mac_vectors() -> Value {
    use crate::engine::frames;
    let circle_secret = seed(0x50);
    let circle_id = seed(0x51);
    let epoch = 3u32;
    let key = frames::frame_mac_key(&circle_secret, &circle_id, epoch);
    let noise = seed(0x52);
    let hello =
        frames::encode_hello(&frames::PairFrame { to: [0x11; 16], from: [0x22; 16], epoch, to_key: 2, noise: &noise });
    let frame = frames::add_frame_mac(hello.clone(), &circle_secret, &circle_id, epoch);
    let request = frames::encode_sync_request(1_700_000_000_000, &[[0x33; 8], [0x44; 8]]);
    let request_frame = frames::add_frame_mac(request.clone(), &circle_secret, &circle_id, epoch);
    json!({
        "description": "frame_key(epoch) and the trailer u32 mac_epoch || HMAC-SHA256(frame_key, bytes before the mac)[0..16], SPEC §4.1, §6.2b, §7",
        "circle_secret": hex(&circle_secret),
        "circle_id": hex(&circle_id),
        "epoch": epoch,
        "frame_key": hex(&key[..]),
        "pair_hello_without_trailer": hex(&hello),
        "pair_hello": hex(&frame),
        "sync_request_without_trailer": hex(&request),
        "sync_request": hex(&request_frame),
    })
}

/// An epoch's keys and a chain announcement (SPEC §4.1, §5.1a, §6.3) over
/// fixed inputs.
fn epoch_vectors() -> Value {
    use crate::engine::frames::{self, PairPayload};
    let epoch_secret = seed(0x60);
    let circle_id = seed(0x61);
    let epoch = 4u32;
    let raiser = seed(0x62);
    let member = MemberId(seed(0x63));
    let meta = crate::circle::epoch_meta(&epoch_secret, &circle_id, epoch, &raiser);
    let announce_key = crate::circle::chain_announce_key(&epoch_secret, &circle_id, epoch, &member);
    let (Some(previous), Some(new)) =
        (chain_from(seed(0x66), seed(0x67), 3), chain_from(seed(0x64), seed(0x65), epoch))
    else {
        return Value::Null;
    };
    let context = seed(0x69);
    let owner_proof = new.sign(&frames::chain_owner_message(&circle_id, &member, epoch, &context));
    let payload = PairPayload::SenderKey {
        distribution: new.distribution(),
        context,
        owner_proof,
        previous: Some((previous.key_id(), 17)),
        heads: vec![raiser],
    }
    .encode();
    let signature = previous.sign(&frames::chain_announce_signed(&circle_id, epoch, &payload));
    let Ok(padded) = pad(&[payload.as_slice(), &signature].concat()) else {
        return Value::Null;
    };
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(&seed(0x68)[..12]);
    let tag = crate::circle::pair_tag(&meta, &circle_id, &member);
    let mut frame = frames::chain_announce_header(epoch, &tag, &nonce);
    let Ok(ct) = crate::crypto::aead::seal(&announce_key, &nonce, &frame, &padded) else {
        return Value::Null;
    };
    frame.extend_from_slice(&ct);
    let epoch_key = PairPayload::EpochKey { epoch, raiser, secret: zeroize::Zeroizing::new(epoch_secret) }.encode();
    json!({
        "description": "An epoch's pairwise secret meta(e) and a member's announce key from the epoch secret; the topic, pair tag and frame key of the epoch; the EpochKey payload; a CHAIN_ANNOUNCE frame (SenderKey payload signed by the previous chain, padded, sealed under the announce key with the 34 header bytes as associated data), SPEC §4.1, §5.1a, §6.3",
        "epoch_secret": hex(&epoch_secret),
        "circle_id": hex(&circle_id),
        "epoch": epoch,
        "raiser_op_id": hex(&raiser),
        "member": hex(member.as_bytes()),
        "meta": hex(&meta),
        "announce_key": hex(&announce_key),
        "topic": crate::circle::topic(&meta, &circle_id, epoch),
        "pair_tag": hex(&tag),
        "frame_key": hex(&frames::frame_mac_key(&meta, &circle_id, epoch)[..]),
        "epoch_key_payload": hex(&epoch_key),
        "previous_chain_signing_seed": hex(&seed(0x66)),
        "new_chain_signing_seed": hex(&seed(0x64)),
        "new_chain_key": hex(&seed(0x65)),
        "sender_key_payload": hex(&payload),
        "signature": hex(&signature),
        "nonce": hex(&nonce),
        "chain_announce": hex(&frame),
    })
}

/// The link handshake (SPEC §2a): a closing epoch's generation key, the
/// stream keys, the dialer's encrypted magic, the status bytes, a member
/// proof and the proven stream keys, with the first keystream bytes of
/// each direction after the switch.
fn link_vectors() -> Value {
    use crate::crypto::link::{self, Challenge, LinkCipher, MAGIC, ProofContext};
    let circle_id = seed(0x70);
    let meta = seed(0x71);
    let epoch = 6u32;
    let network_key = crate::circle::generation_network_key(&meta, &circle_id, epoch);
    let mut dialer_nonce = [0u8; 24];
    dialer_nonce.copy_from_slice(&seed(0x72)[..24]);
    let mut listener_nonce = [0u8; 24];
    listener_nonce.copy_from_slice(&seed(0x73)[..24]);
    let keys = link::stream_keys(&network_key, &circle_id, &dialer_nonce, &listener_nonce);
    let mut sealed_magic = MAGIC;
    let mut to_listener = LinkCipher::new(&keys.dialer_to_listener);
    to_listener.apply(&mut sealed_magic);
    let mut to_dialer = LinkCipher::new(&keys.listener_to_dialer);
    let mut status_prove = [link::STATUS_PROVE];
    to_dialer.apply(&mut status_prove);
    let challenge = Challenge::from_seed(seed(0x74));
    let member = seed(0x75);
    let noise = crate::identity::NoiseSecret::from_bytes(seed(0x76));
    let shared = link::dialer_shared(&noise, &challenge.public);
    let context = ProofContext {
        network_key: &network_key,
        circle_id: &circle_id,
        dialer_nonce: &dialer_nonce,
        listener_nonce: &listener_nonce,
        challenge: &challenge.public,
    };
    let Some(proof) = link::proof(&context, link::PROOF_MEMBER, &member, &shared) else {
        return Value::Null;
    };
    let mut after_d = [0u8; 8];
    LinkCipher::new(&proof.keys.dialer_to_listener).apply(&mut after_d);
    let mut after_l = [0u8; 8];
    LinkCipher::new(&proof.keys.listener_to_dialer).apply(&mut after_l);
    json!({
        "description": "Link handshake, SPEC §2a: gen_key of a closing epoch from its meta; stream keys S from the network key and both nonces; the dialer's magic encrypted under S[0..32]; the listener's first status byte (01, prove) under S[32..64]; the dialer's member proof (kind 01, tag) with its Noise static key against the challenge; the proven keys' first 8 keystream bytes",
        "circle_id": hex(&circle_id),
        "closing_epoch": epoch,
        "closing_epoch_meta": hex(&meta),
        "network_key": hex(&network_key),
        "dialer_nonce": hex(&dialer_nonce),
        "listener_nonce": hex(&listener_nonce),
        "stream_key_dialer_to_listener": hex(&keys.dialer_to_listener[..]),
        "stream_key_listener_to_dialer": hex(&keys.listener_to_dialer[..]),
        "sealed_magic": hex(&sealed_magic),
        "sealed_status_prove": hex(&status_prove),
        "challenge_secret_seed": hex(&seed(0x74)),
        "challenge_public": hex(&challenge.public),
        "member_id": hex(&member),
        "member_noise_secret": hex(&seed(0x76)),
        "member_noise_public": hex(&noise.public()),
        "shared": hex(&shared[..]),
        "tag": hex(&proof.tag),
        "proven_key_dialer_to_listener": hex(&proof.keys.dialer_to_listener[..]),
        "proven_key_listener_to_dialer": hex(&proof.keys.listener_to_dialer[..]),
        "proven_keystream_dialer_to_listener_8": hex(&after_d),
        "proven_keystream_listener_to_dialer_8": hex(&after_l),
    })
}
