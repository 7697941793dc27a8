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
use crate::identity::{IdentitySecret, MemberId, NoiseBinding, NoiseSecret, SignedPairwiseKey, hex, safety_number};
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
        ("rotation.json", rotation_vectors()),
        ("join.json", join_vectors()),
        ("sync.json", sync_vectors()),
        ("refusals.json", refusal_vectors()),
        ("payloads.json", payload_vectors()),
    ]
}

/// Lowercase hex (the vectors' encoding) back to bytes; `None` if malformed.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len() / 2).map(|i| u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()).collect()
}

/// 32 bytes counting up from `byte`: the fixed keys of the vectors.
pub(crate) fn seed(byte: u8) -> [u8; 32] {
    let mut s = [0u8; 32];
    for (i, b) in s.iter_mut().enumerate() {
        *b = byte.wrapping_add(i as u8);
    }
    s
}

/// The first pairwise key the vectors bind beside a static key: the static
/// secret's bytes in reverse order (any fixed key would do).
fn first_of(noise: &NoiseSecret) -> NoiseSecret {
    let mut bytes = *noise.expose_bytes();
    bytes.reverse();
    NoiseSecret::from_bytes(bytes)
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
    let binding = NoiseBinding::create(&id, &circle_id, &noise, &first_of(&noise));
    json!({
        "description": "member id, fingerprint, safety number and Noise key binding, SPEC §3",
        "identity_seed": hex(&seed(1)),
        "member_id": id.member_id().to_hex(),
        "fingerprint": id.member_id().fingerprint().to_string(),
        "safety_number": safety_number(&id.member_id()).to_string(),
        "noise_secret": hex(&seed(2)),
        "noise_public": hex(&noise.public()),
        "first_pairwise_secret": hex(first_of(&noise).expose_bytes()),
        "first_pairwise_public": hex(&binding.first_pairwise),
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

/// A SenderKey payload (SPEC §6.3) for `chain`, owned by `owner`.
fn sender_key_payload(
    circle_id: &[u8; 32],
    owner: &MemberId,
    chain: &SendingChain,
    context: [u8; 32],
    previous: Option<(crate::crypto::ratchet::KeyId, u32)>,
    heads: Vec<[u8; 32]>,
) -> crate::engine::frames::PairPayload {
    let distribution = chain.distribution();
    let claim = crate::engine::frames::chain_owner_message(circle_id, owner, distribution.epoch, &context);
    let owner_proof = chain.sign(&claim);
    crate::engine::frames::PairPayload::SenderKey { distribution, context, owner_proof, previous, heads }
}

/// A CHAIN_ANNOUNCE (SPEC §5.1a): `payload` signed by `previous`, padded,
/// sealed under `announce_key` with the header as associated data.
/// Returns the signature and the frame.
fn chain_announce(
    circle_id: &[u8; 32],
    epoch: u32,
    tag: &[u8; 16],
    announce_key: &[u8; 32],
    nonce: &[u8; 12],
    previous: &SendingChain,
    payload: &[u8],
) -> Option<([u8; 64], Vec<u8>)> {
    use crate::engine::frames;
    let signature = previous.sign(&frames::chain_announce_signed(circle_id, epoch, payload));
    let padded = pad(&[payload, &signature].concat()).ok()?;
    let mut frame = frames::chain_announce_header(epoch, tag, nonce);
    let ct = crate::crypto::aead::seal(announce_key, nonce, &frame, &padded).ok()?;
    frame.extend_from_slice(&ct);
    Some((signature, frame))
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
        Op::create(&creator, &noise, &first_of(&noise), "riverside", "Ana", 86_400, 1_700_000_000_000, &mut rng)
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
    let binding = NoiseBinding::create(&joiner, &circle_id, &joiner_noise, &first_of(&joiner_noise));
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
    let adder_binding = NoiseBinding::create(
        &adder,
        &circle_id,
        &NoiseSecret::from_bytes(seed(14)),
        &first_of(&NoiseSecret::from_bytes(seed(14))),
    );
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
    let Ok((genesis, c)) = Op::create(
        &ana,
        &NoiseSecret::from_bytes(seed(2)),
        &first_of(&NoiseSecret::from_bytes(seed(2))),
        "riverside",
        "Ana",
        0,
        1_700_000_000_000,
        &mut rng,
    ) else {
        return Value::Null;
    };
    let people: Vec<IdentitySecret> = (20..24).map(|b| IdentitySecret::from_seed(&seed(b))).collect();
    let [bo, cy, dee, eve] = [&people[0], &people[1], &people[2], &people[3]];
    let t = 1_700_000_000_000u64;
    let add = |by: &IdentitySecret, who: &IdentitySecret, name: &str, role: Role, parents: Vec<[u8; 32]>, k: u8| {
        let binding = NoiseBinding::create(
            who,
            &c,
            &NoiseSecret::from_bytes(seed(40 + k)),
            &first_of(&NoiseSecret::from_bytes(seed(40 + k))),
        );
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
    let eve_binding = NoiseBinding::create(
        eve,
        &c,
        &NoiseSecret::from_bytes(seed(31)),
        &first_of(&NoiseSecret::from_bytes(seed(31))),
    );
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
    let payload =
        sender_key_payload(&circle_id, &member, &new, context, Some((previous.key_id(), 17)), vec![raiser]).encode();
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(&seed(0x68)[..12]);
    let tag = crate::circle::pair_tag(&meta, &circle_id, &member);
    let Some((signature, frame)) = chain_announce(&circle_id, epoch, &tag, &announce_key, &nonce, &previous, &payload)
    else {
        return Value::Null;
    };
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

/// The inputs of `rotation.json`, shared with the replay test below.
struct RotationFixture {
    organiser: IdentitySecret,
    organiser_noise: NoiseSecret,
    ops: Vec<Op>,
    circle_id: [u8; 32],
    /// The epoch secret of the epoch before the removal (epoch 3, started by
    /// adding the member who is then removed).
    old_epoch_secret: [u8; 32],
    new_epoch_secret: [u8; 32],
}

const ROTATION_T0: u64 = 1_700_100_000_000;

fn rotation_fixture() -> Option<RotationFixture> {
    let organiser = IdentitySecret::from_seed(&seed(0x80));
    let organiser_noise = NoiseSecret::from_bytes(seed(0x81));
    let mut rng = SeededEntropy::new(seed(0x82));
    let (genesis, circle_id) = Op::create(
        &organiser,
        &organiser_noise,
        &first_of(&organiser_noise),
        "harbour",
        "Ana",
        86_400,
        ROTATION_T0,
        &mut rng,
    )
    .ok()?;
    let add = |parent: [u8; 32], seed_byte: u8, name: &str, t: u64| -> Option<Op> {
        let member = IdentitySecret::from_seed(&seed(seed_byte));
        let binding = NoiseBinding::create(
            &member,
            &circle_id,
            &NoiseSecret::from_bytes(seed(seed_byte + 1)),
            &first_of(&NoiseSecret::from_bytes(seed(seed_byte + 1))),
        );
        let body = OpBody::Add { member: member.member_id(), binding, display_name: name.into(), role: Role::Member };
        Op::sign(&organiser, &circle_id, vec![parent], body, t).ok()
    };
    let add_b = add(genesis.id(), 0x83, "Bongani", ROTATION_T0 + 1_000)?;
    let add_c = add(add_b.id(), 0x85, "Chen", ROTATION_T0 + 2_000)?;
    let removed = IdentitySecret::from_seed(&seed(0x85)).member_id();
    let remove =
        Op::sign(&organiser, &circle_id, vec![add_c.id()], OpBody::Remove { member: removed }, ROTATION_T0 + 3_000)
            .ok()?;
    Some(RotationFixture {
        organiser,
        organiser_noise,
        ops: vec![genesis, add_b, add_c, remove],
        circle_id,
        old_epoch_secret: seed(0x87),
        new_epoch_secret: seed(0x88),
    })
}

/// A whole removal, end to end (SPEC §2a, §4.3, §5.1a, §6): the operations,
/// the epoch the Remove starts and its rekeyer, the EpochKey the rekeyer
/// sends the remaining member in a PAIR_HELLO under the old epoch's keys,
/// what both derive from the new secret (pairwise secret, announce key,
/// topic, tags, frame key, the new network generation), the rekeyer's
/// CHAIN_ANNOUNCE signed by its previous chain, and its first two group
/// frames of the new epoch.
fn rotation_vectors() -> Value {
    use crate::engine::frames::{self, PairFrame, PairPayload};
    let Some(f) = rotation_fixture() else {
        return Value::Null;
    };
    let Ok(log) = CircleLog::from_ops(f.ops.clone()) else {
        return Value::Null;
    };
    let cid = f.circle_id;
    let (Some((raiser, rekeyer)), Some(old_raiser)) = (log.rekeyer(), f.ops.get(2).map(Op::id)) else {
        return Value::Null;
    };
    let epoch = log.epoch();
    let old_epoch = epoch - 1;
    let a = f.organiser.member_id();
    let b = IdentitySecret::from_seed(&seed(0x83)).member_id();
    let b_noise = NoiseSecret::from_bytes(seed(0x84));
    let old_meta = crate::circle::epoch_meta(&f.old_epoch_secret, &cid, old_epoch, &old_raiser);

    // The rekeyer's EpochKey to the remaining member, under epoch 3's keys,
    // to B's first pairwise key (id 1, bound in its Add: B announced no
    // other). Never to B's static key.
    let epoch_key =
        PairPayload::EpochKey { epoch, raiser, secret: zeroize::Zeroizing::new(f.new_epoch_secret) }.encode();
    let Ok(padded_epoch_key) = pad(&epoch_key) else {
        return Value::Null;
    };
    let psk = crate::circle::pair_psk(&old_meta, &cid, &a, &b);
    let context = KkContext { circle_id: cid, epoch: old_epoch, initiator: a, responder: b };
    let mut rng = SeededEntropy::new(seed(0x89));
    let Ok((_, noise_message)) = KkInitiator::start(
        &f.organiser_noise,
        &first_of(&b_noise).public(),
        &psk,
        &context,
        &padded_epoch_key,
        &mut rng,
    ) else {
        return Value::Null;
    };
    let hello = frames::encode_hello(&PairFrame {
        to: crate::circle::pair_tag(&old_meta, &cid, &b),
        from: crate::circle::pair_tag(&old_meta, &cid, &a),
        epoch: old_epoch,
        to_key: 1,
        noise: &noise_message,
    });
    let pair_hello = frames::add_frame_mac(hello, &old_meta, &cid, old_epoch);

    // What every member of the new epoch derives.
    let meta = crate::circle::epoch_meta(&f.new_epoch_secret, &cid, epoch, &raiser);
    let announce_key = crate::circle::chain_announce_key(&f.new_epoch_secret, &cid, epoch, &a);
    let network_key = crate::circle::generation_network_key(&meta, &cid, epoch);

    // The rekeyer's new chain, announced under its previous one.
    let (Some(previous), Some(mut chain)) =
        (chain_from(seed(0x8a), seed(0x8b), old_epoch), chain_from(seed(0x8c), seed(0x8d), epoch))
    else {
        return Value::Null;
    };
    let group_context = log.group_context();
    let sender_key =
        sender_key_payload(&cid, &a, &chain, group_context, Some((previous.key_id(), 5)), vec![raiser]).encode();
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(&seed(0x8e)[..12]);
    let tag = crate::circle::pair_tag(&meta, &cid, &a);
    let Some((signature, announce)) = chain_announce(&cid, epoch, &tag, &announce_key, &nonce, &previous, &sender_key)
    else {
        return Value::Null;
    };

    let mut messages = Vec::new();
    for (i, text) in ["Meeting is still on.", "Bring the banners."].iter().enumerate() {
        let inner = Inner {
            circle_id: cid,
            sender: a,
            epoch,
            sent_at_ms: ROTATION_T0 + 10_000 + i as u64,
            timer_secs: 0,
            body: Body::Text((*text).into()),
        };
        let plaintext = inner.encode();
        let Ok(padded) = pad(&plaintext) else {
            return Value::Null;
        };
        let Ok((header, frame)) = envelope::seal(&mut chain, &padded) else {
            return Value::Null;
        };
        messages.push(json!({ "counter": header.counter, "plaintext": hex(&plaintext), "frame": hex(&frame),
                              "message_id": hex(&crate::engine::message_id(&header.key_id, header.counter)) }));
    }
    let roster: Vec<String> = log.members().iter().map(|m| hex(m.id.as_bytes())).collect();
    json!({
        "description": "A removal end to end: the organiser removes C; the Remove starts epoch 4 and closes the network generation; the rekeyer (the organiser) sends B the EpochKey in a PAIR_HELLO under epoch 3's keys (pair psk, tags, prologue and frame key of meta(3)) to B's first pairwise key (key id 1, bound in its Add; its secret is b_noise_secret reversed); both derive meta(4), the organiser's announce key, topic, tags, frame key and generation network key; the organiser announces its new chain (signed by its epoch-3 chain, final counter 5) and sends two group frames (counters 0 and 1). SPEC §2a, §4.3, §5.1a, §5.2, §6.1-6.3",
        "organiser_seed": hex(&seed(0x80)),
        "organiser_noise_secret": hex(&seed(0x81)),
        "b_seed": hex(&seed(0x83)),
        "b_noise_secret": hex(&seed(0x84)),
        "b_first_pairwise_secret": hex(first_of(&b_noise).expose_bytes()),
        "c_seed": hex(&seed(0x85)),
        "c_noise_secret": hex(&seed(0x86)),
        "circle_id": hex(&cid),
        "ops": f.ops.iter().map(|o| hex(&o.encode())).collect::<Vec<_>>(),
        "roster_after": roster,
        "epoch": epoch,
        "raiser_op_id": hex(&raiser),
        "rekeyer": hex(rekeyer.as_bytes()),
        "old_epoch": old_epoch,
        "old_epoch_secret": hex(&f.old_epoch_secret),
        "old_meta": hex(&old_meta),
        "old_pair_psk_a_b": hex(&psk),
        "old_prologue": hex(&context.prologue()),
        "initiator_ephemeral_secret": hex(&ephemeral_for(seed(0x89))),
        "new_epoch_secret": hex(&f.new_epoch_secret),
        "epoch_key_payload": hex(&epoch_key),
        "pair_hello": hex(&pair_hello),
        "meta": hex(&meta),
        "topic": crate::circle::topic(&meta, &cid, epoch),
        "pair_tag_a": hex(&crate::circle::pair_tag(&meta, &cid, &a)),
        "pair_tag_b": hex(&crate::circle::pair_tag(&meta, &cid, &b)),
        "frame_key": hex(&frames::frame_mac_key(&meta, &cid, epoch)[..]),
        "network_key": hex(&network_key),
        "announce_key_a": hex(&announce_key),
        "previous_chain_signing_seed": hex(&seed(0x8a)),
        "previous_chain_key": hex(&seed(0x8b)),
        "new_chain_signing_seed": hex(&seed(0x8c)),
        "new_chain_key_0": hex(&seed(0x8d)),
        "group_context": hex(&group_context),
        "sender_key_payload": hex(&sender_key),
        "announce_signature": hex(&signature),
        "announce_nonce": hex(&nonce),
        "chain_announce": hex(&announce),
        "messages": messages,
    })
}

/// A whole join over Noise XX (SPEC §8), with fixed keys and ephemerals:
/// the JOIN_HELLO, the member's JOIN_REPLY (its identity and binding
/// signature), the joiner's JOIN_REQUEST (its Join), the JOIN_ANSWER with
/// the welcome, and a JOIN_REFUSED.
fn join_vectors() -> Value {
    use crate::crypto::pairwise::{XxInitiator, XxResponder};
    use crate::engine::frames::{self, JoinAnswer, MemberProof};
    use crate::wire::frame_type;
    let creator = IdentitySecret::from_seed(&seed(0xa0));
    let creator_noise = NoiseSecret::from_bytes(seed(0xa1));
    let mut rng = SeededEntropy::new(seed(0xa2));
    let t0 = 1_700_200_000_000u64;
    let Ok((genesis, cid)) =
        Op::create(&creator, &creator_noise, &first_of(&creator_noise), "allotment", "Ana", 86_400, t0, &mut rng)
    else {
        return Value::Null;
    };
    let invite = InviteSecret::from_seed(&seed(0xa3));
    let body = OpBody::Invite { invite_public: invite.public(), expires_at_ms: t0 + 3_600_000, role: Role::Member };
    let Ok(invite_op) = Op::sign(&creator, &cid, vec![genesis.id()], body, t0 + 1_000) else {
        return Value::Null;
    };
    let joiner = IdentitySecret::from_seed(&seed(0xa4));
    let joiner_noise = NoiseSecret::from_bytes(seed(0xa5));
    let binding = NoiseBinding::create(&joiner, &cid, &joiner_noise, &first_of(&joiner_noise));
    let Ok(join) = Op::sign_join(&joiner, &cid, &invite, invite_op.id(), binding, "Bongani", t0 + 2_000) else {
        return Value::Null;
    };
    let Ok(log) = CircleLog::from_ops(vec![genesis.clone(), invite_op.clone()]) else {
        return Value::Null;
    };
    let Some(creator_record) = log.member(&creator.member_id()) else {
        return Value::Null;
    };

    // Joiner: XX message 1, the tag and the invite proof.
    let mut joiner_rng = SeededEntropy::new(seed(0xa6));
    let Ok((mut initiator, xx1)) = XxInitiator::start(&joiner_noise, &cid, &invite_op.id(), &mut joiner_rng) else {
        return Value::Null;
    };
    let join_tag = frames::join_tag(&join.id(), &xx1);
    let proof = invite.sign(&frames::join_hello_signed(&cid, &invite_op.id(), &join_tag, &xx1));
    let hello = frames::encode_join_hello(&invite_op.id(), &proof, &join_tag, &xx1);

    // Member: XX message 2 with its identity.
    let member_proof = MemberProof {
        member: *creator.member_id().as_bytes(),
        first_pairwise: creator_record.binding.first_pairwise,
        binding_signature: creator_record.binding.signature,
    }
    .encode();
    let mut member_rng = SeededEntropy::new(seed(0xa7));
    let Ok((responder, xx2)) =
        XxResponder::respond(&creator_noise, &cid, &invite_op.id(), &xx1, &member_proof, &mut member_rng)
    else {
        return Value::Null;
    };
    let reply = frames::encode_join_noise(frame_type::JOIN_REPLY, &xx2);
    if initiator.read_reply(&xx2).is_err() {
        return Value::Null;
    }

    // Joiner: XX message 3 with its Join.
    let Ok((_, xx3)) = initiator.finish(&join.encode()) else {
        return Value::Null;
    };
    let request = frames::encode_join_noise(frame_type::JOIN_REQUEST, &xx3);
    let Ok((_, _, mut member_session)) = responder.finish(&xx3) else {
        return Value::Null;
    };

    // Member: the Admit and the welcome under the XX transport keys.
    let Ok(admit) =
        Op::sign(&creator, &cid, vec![invite_op.id()], OpBody::Admit { join: Box::new(join.clone()) }, t0 + 3_000)
    else {
        return Value::Null;
    };
    let Ok(admitted) = CircleLog::from_ops(vec![genesis, invite_op.clone(), admit.clone()]) else {
        return Value::Null;
    };
    let epoch = admitted.epoch();
    let epoch_secret = seed(0xa8);
    let meta = crate::circle::epoch_meta(&epoch_secret, &cid, epoch, &admit.id());
    let Some(chain) = chain_from(seed(0xa9), seed(0xaa), epoch) else {
        return Value::Null;
    };
    let context = admitted.group_context();
    let chain_payload =
        sender_key_payload(&cid, &creator.member_id(), &chain, context, None, vec![admit.id()]).encode();
    let circle_secret = seed(0xab);
    // The admitter replaced its first pairwise key once: the welcome
    // carries its key 2, signed.
    let admitter_key = SignedPairwiseKey::create(&creator, &cid, 2, &NoiseSecret::from_bytes(seed(0xd1)));
    let welcome = JoinAnswer::Welcome {
        circle_secret: zeroize::Zeroizing::new(circle_secret),
        epoch,
        raiser: admit.id(),
        epoch_meta: zeroize::Zeroizing::new(meta),
        chain: zeroize::Zeroizing::new(chain_payload),
        ops: admitted.ops_in_order().into_iter().map(Op::encode).collect(),
        pairwise_keys: vec![(creator.member_id(), admitter_key)],
    }
    .encode();
    let header = frames::join_answer_header(member_session.next_nonce());
    let Ok((_, ct)) = member_session.seal(&header, &welcome) else {
        return Value::Null;
    };
    let answer = [header, ct].concat();
    let refused_answer = JoinAnswer::Refused { fatal: true, reason: "this invite has expired".into() }.encode();
    let refused = frames::encode_join_refused(&invite_op.id(), frames::REFUSED_EXPIRED);
    json!({
        "description": "A join over Noise_XX_25519_ChaChaPoly_BLAKE2s with the prologue of SPEC §8: JOIN_HELLO (XX message 1, empty payload; join tag; invite proof), JOIN_REPLY (message 2, payload member_id || binding signature), JOIN_REQUEST (message 3, payload the Join operation alone), JOIN_ANSWER (u64 nonce 0, the Welcome unpadded, sealed with the member's XX sending key and the 10 header bytes as associated data), a Refused answer's plaintext, and a JOIN_REFUSED (reason 2, expired)",
        "creator_seed": hex(&seed(0xa0)),
        "creator_noise_secret": hex(&seed(0xa1)),
        "invite_seed": hex(&seed(0xa3)),
        "joiner_seed": hex(&seed(0xa4)),
        "joiner_noise_secret": hex(&seed(0xa5)),
        "joiner_ephemeral_secret": hex(&ephemeral_for(seed(0xa6))),
        "member_ephemeral_secret": hex(&ephemeral_for(seed(0xa7))),
        "circle_id": hex(&cid),
        "invite_op": hex(&invite_op.encode()),
        "invite_op_id": hex(&invite_op.id()),
        "join_op": hex(&join.encode()),
        "join_op_id": hex(&join.id()),
        "join_tag": hex(&join_tag),
        "join_hello": hex(&hello),
        "member_proof": hex(&member_proof),
        "join_reply": hex(&reply),
        "join_request": hex(&request),
        "admit_op": hex(&admit.encode()),
        "epoch": epoch,
        "epoch_secret": hex(&epoch_secret),
        "epoch_meta": hex(&meta),
        "circle_secret": hex(&circle_secret),
        "admitter_chain_signing_seed": hex(&seed(0xa9)),
        "admitter_chain_key": hex(&seed(0xaa)),
        "admitter_pairwise_key_2_secret": hex(&seed(0xd1)),
        "welcome": hex(&welcome),
        "join_answer": hex(&answer),
        "refused_answer": hex(&refused_answer),
        "join_refused": hex(&refused),
    })
}

/// Catch-up frames (SPEC §7): a request naming two held frames by their
/// 8-byte prefixes, with its authenticator, and a response carrying two
/// frames from the other vectors.
fn sync_vectors() -> Value {
    use crate::engine::frames;
    let circle_secret = seed(0xb0);
    let circle_id = seed(0xb1);
    let epoch = 2u32;
    let (Some(group), Some(pair)) = (
        envelope_vectors()["frame"].as_str().map(str::to_owned),
        rotation_vectors()["pair_hello"].as_str().map(str::to_owned),
    ) else {
        return Value::Null;
    };
    let (Some(group), Some(pair)) = (unhex(&group), unhex(&pair)) else {
        return Value::Null;
    };
    let held = [crate::engine::frame_id(&group), crate::engine::frame_id(&pair)];
    let have: Vec<[u8; 8]> = held.iter().map(|id| id[..8].try_into().unwrap_or_default()).collect();
    let request = frames::encode_sync_request(1_700_300_000_000, &have);
    let request = frames::add_frame_mac(request, &circle_secret, &circle_id, epoch);
    let response = frames::encode_sync_response(&[&group, &pair]);
    json!({
        "description": "SYNC_REQUEST (u64 sent_at_ms, u32 n, [8] frame id prefix x n, authenticator of SPEC §6.2b under frame_key(epoch)) and SYNC_RESPONSE (u32 n, bytes32 frame x n), SPEC §7; the response's frames are envelope.json's group frame and rotation.json's PAIR_HELLO",
        "circle_secret": hex(&circle_secret),
        "circle_id": hex(&circle_id),
        "epoch": epoch,
        "held_frame_ids": held.iter().map(|h| hex(h)).collect::<Vec<_>>(),
        "sync_request": hex(&request),
        "sync_response": hex(&response),
    })
}

/// Every plaintext kind (SPEC §5.4) and every pairwise payload kind (§6.3),
/// encoded and padded; a PAIR_HELLO carrying a padded SenderKey; the
/// generation-0 network key of a circle secret (§4.1); and an invite code
/// built from the Invite operation of `operations.json` (§4.4).
fn payload_vectors() -> Value {
    use crate::engine::frames::{self, PairFrame, PairPayload};
    use crate::engine::message::Presence;
    let circle_id = seed(0xc0);
    let sender_identity = IdentitySecret::from_seed(&seed(0xc1));
    let sender = sender_identity.member_id();
    let inner =
        |body: Body| Inner { circle_id, sender, epoch: 5, sent_at_ms: 1_700_400_000_000, timer_secs: 600, body };
    let bodies = [
        ("text", Body::Text("We meet at the library.".into())),
        (
            "announcement",
            Body::Announcement(Announcement {
                title: "Moved".into(),
                when: "Sunday 10:00".into(),
                place: "the library".into(),
                details: String::new(),
                supersedes: None,
            }),
        ),
        ("ack", Body::Ack([0xc2; 16])),
        ("operation", Body::Op(vec![0xc3; 40])),
        (
            "presence",
            Body::Presence(Presence { transport: vec![0xc4; 38], addresses: vec!["/ip4/127.0.0.1/tcp/4001".into()] }),
        ),
        (
            "pairwise_key",
            Body::Prekey(SignedPairwiseKey::create(
                &sender_identity,
                &circle_id,
                3,
                &NoiseSecret::from_bytes(seed(0xc5)),
            )),
        ),
    ];
    let mut plaintexts = Vec::new();
    for (name, body) in bodies {
        let encoded = inner(body).encode();
        let Ok(padded) = pad(&encoded) else {
            return Value::Null;
        };
        plaintexts
            .push(json!({ "kind": name, "code": encoded[0], "encoded": hex(&encoded), "padded_len": padded.len() }));
    }
    let Some(chain) = chain_from(seed(0xc6), seed(0xc7), 5) else {
        return Value::Null;
    };
    let sender_key = sender_key_payload(&circle_id, &sender, &chain, seed(0xc8), None, vec![seed(0xc9)]);
    let payloads = [
        ("sender_key", sender_key.encode()),
        ("log_request", PairPayload::LogRequest.encode()),
        ("log_ops", PairPayload::LogOps(vec![vec![0xca; 10], vec![0xcb; 3]]).encode()),
        (
            "epoch_key",
            PairPayload::EpochKey { epoch: 6, raiser: seed(0xcc), secret: zeroize::Zeroizing::new(seed(0xcd)) }
                .encode(),
        ),
        ("chain_request", PairPayload::ChainRequest.encode()),
    ];
    let pair_payloads: Vec<Value> =
        payloads.iter().map(|(name, bytes)| json!({ "kind": name, "code": bytes[0], "encoded": hex(bytes) })).collect();
    // The padded SenderKey in a PAIR_HELLO between the pairwise fixture's members.
    let PairwiseFixture { a_noise, b_noise, psk, context: kk } = pairwise_fixture();
    let Ok(padded) = pad(&sender_key.encode()) else {
        return Value::Null;
    };
    let mut rng = SeededEntropy::new(seed(0xce));
    let Ok((_, noise)) = KkInitiator::start(&a_noise, &b_noise.public(), &psk, &kk, &padded, &mut rng) else {
        return Value::Null;
    };
    let meta = seed(0xcf);
    let hello = frames::encode_hello(&PairFrame {
        to: crate::circle::pair_tag(&meta, &kk.circle_id, &kk.responder),
        from: crate::circle::pair_tag(&meta, &kk.circle_id, &kk.initiator),
        epoch: kk.epoch,
        to_key: 1,
        noise: &noise,
    });
    let pair_hello = frames::add_frame_mac(hello, &meta, &kk.circle_id, kk.epoch);
    // Generation 0's network key, and an invite for the Invite operation.
    let circle_secret = seed(0xd0);
    let ops = operation_vectors();
    let (Some(cid), Some(invite_op)) = (ops["circle_id"].as_str(), ops["invite"]["op_id"].as_str()) else {
        return Value::Null;
    };
    let from_hex = |s: &str| -> Option<[u8; 32]> { unhex(s)?.try_into().ok() };
    let (Some(cid), Some(invite_op)) = (from_hex(cid), from_hex(invite_op)) else {
        return Value::Null;
    };
    let network_key = crate::circle::network_key(&circle_secret, &cid);
    let code = InviteCode {
        circle_id: cid,
        network_key,
        invite_op,
        secret: InviteSecret::from_seed(&seed(7)),
        expires_at_ms: 1_700_000_600_000,
        inviter: IdentitySecret::from_seed(&seed(1)).member_id(),
        addresses: vec!["/ip4/127.0.0.1/tcp/4001".into(), "/ip4/127.0.0.1/tcp/4002".into()],
    };
    json!({
        "description": "every plaintext kind (inner encoding, SPEC §5.4, with the padded size), every pairwise payload kind (§6.3), a PAIR_HELLO carrying the padded SenderKey (the initiator, responder, psk and prologue of pairwise.json, tags and frame key from `meta`), generation 0's network key of a circle secret (§4.1), and the invite code for the Invite operation of operations.json (its circle, op id and invite seed, §4.4)",
        "circle_id": hex(&circle_id),
        "sender": hex(sender.as_bytes()),
        "plaintexts": plaintexts,
        "pair_payloads": pair_payloads,
        "sender_key_chain_signing_seed": hex(&seed(0xc6)),
        "sender_key_chain_key": hex(&seed(0xc7)),
        "pair_hello_initiator_ephemeral_secret": hex(&ephemeral_for(seed(0xce))),
        "pair_hello_meta": hex(&meta),
        "pair_hello_sender_key": hex(&pair_hello),
        "circle_secret": hex(&circle_secret),
        "network_key_generation_0": hex(&network_key),
        "invite_for_operation": { "circle_id": hex(&cid), "invite_op": hex(&invite_op), "invite_seed": hex(&seed(7)),
                                  "expires_at_ms": 1_700_000_600_000u64, "network_key": hex(&network_key),
                                  "code": code.encode() },
    })
}

/// `a + b` for 256-bit little-endian integers (no carry out: the callers'
/// sums stay below 2^256).
fn add_le(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = u16::from(a[i]) + u16::from(b[i]) + carry;
        out[i] = sum as u8;
        carry = sum >> 8;
    }
    out
}

/// Inputs every implementation must refuse (SPEC §1, §5.3, §4.2): a
/// signature with S + L in place of S, a small-order key with a signature
/// that passes the cofactorless equation, paddings that are not the
/// canonical one, and an operation with a byte after its end.
fn refusal_vectors() -> Value {
    // The group order L, little-endian.
    const ORDER: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let id = IdentitySecret::from_seed(&seed(1));
    let message = b"kolo refusal vector";
    let signature = id.sign(message);
    let mut s = [0u8; 32];
    s.copy_from_slice(&signature[32..]);
    let mut malleated = signature;
    malleated[32..].copy_from_slice(&add_le(&s, &ORDER));
    // The identity point as key and R, S = 0: [S]B = R + [k]A holds for
    // every message, so only the small-order check refuses it.
    let mut identity_point = [0u8; 32];
    identity_point[0] = 1;
    let mut small_order_signature = [0u8; 64];
    small_order_signature[0] = 1;
    let oversized = [vec![0x41; 69], vec![0x80], vec![0; 1024 - 70]].concat();
    let no_marker = [vec![0x41; 69], vec![0; 256 - 69]].concat();
    let not_a_bucket = [vec![0x41; 69], vec![0x80], vec![0; 257 - 70]].concat();
    let wrong_marker = [vec![0x41; 69], vec![0x01], vec![0; 256 - 70]].concat();
    let mut rng = SeededEntropy::new(seed(6));
    let Ok((genesis, _)) = Op::create(
        &id,
        &NoiseSecret::from_bytes(seed(2)),
        &first_of(&NoiseSecret::from_bytes(seed(2))),
        "riverside",
        "Ana",
        86_400,
        1_700_000_000_000,
        &mut rng,
    ) else {
        return Value::Null;
    };
    let trailing = [genesis.encode(), vec![0]].concat();
    // Invite codes (SPEC §4.4): a valid one, the same with non-zero bits
    // after its last whole byte, and one with a byte after its addresses
    // (its checksum recomputed, so only the strict decoding refuses it).
    let invite = InviteCode {
        circle_id: seed(3),
        network_key: seed(10),
        invite_op: seed(11),
        secret: InviteSecret::from_seed(&seed(7)),
        expires_at_ms: 1_700_000_600_000,
        inviter: MemberId(seed(12)),
        addresses: vec![],
    };
    let valid_code = invite.encode();
    let prefix = crate::circle::invite::INVITE_PREFIX;
    let Some(raw) = crate::wire::text::base32_decode(&valid_code[prefix.len()..]) else {
        return Value::Null;
    };
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let last = valid_code.as_bytes()[valid_code.len() - 1];
    let Some(v) = ALPHABET.iter().position(|a| *a == last) else {
        return Value::Null;
    };
    let trailing_bits = format!("{}{}", &valid_code[..valid_code.len() - 1], ALPHABET[v ^ 1] as char);
    let mut content = raw[..raw.len() - 4].to_vec();
    content.push(0);
    let sum = crate::crypto::kdf::hash(b"kolo/v1/invite-checksum", &[&content]);
    content.extend_from_slice(&sum[..4]);
    let trailing_byte_code = format!("{prefix}{}", crate::wire::text::base32(&content, crate::wire::text::Case::Lower));
    json!({
        "description": "inputs that must be refused: Ed25519 with S + L (non-canonical S), a small-order public key (the identity point) with R = identity and S = 0, which the cofactorless equation accepts for any message (SPEC §1); paddings that are not canonical (SPEC §5.3); an operation followed by one byte (strict decoding, SPEC §1.1); an invite code with non-zero trailing base32 bits, and one with a byte after its addresses under a correct checksum (SPEC §4.4)",
        "signer_seed": hex(&seed(1)),
        "signer_public": hex(id.member_id().as_bytes()),
        "message_utf8": String::from_utf8_lossy(message),
        "valid_signature": hex(&signature),
        "signature_s_plus_l": hex(&malleated),
        "small_order_public": hex(&identity_point),
        "small_order_signature": hex(&small_order_signature),
        "padding_oversized_bucket": hex(&oversized),
        "padding_without_marker": hex(&no_marker),
        "padding_not_a_bucket": hex(&not_a_bucket),
        "padding_wrong_marker": hex(&wrong_marker),
        "operation": hex(&genesis.encode()),
        "operation_with_trailing_byte": hex(&trailing),
        "invite_code": valid_code,
        "invite_code_nonzero_trailing_bits": trailing_bits,
        "invite_code_trailing_byte": trailing_byte_code,
    })
}

/// The frame type of a vector's hex string, if the string is a complete,
/// well-formed frame by the code's own decoders (so the test listing the
/// frame types of SPEC §2 can check that each has a vector).
pub fn frame_type_of(hex_text: &str) -> Option<u8> {
    use crate::engine::frames;
    if hex_text.len() < 4 || !hex_text.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Vec<u8> = (0..hex_text.len() / 2)
        .map(|i| u8::from_str_radix(hex_text.get(2 * i..2 * i + 2)?, 16).ok())
        .collect::<Option<_>>()?;
    let kind = crate::wire::read_prefix(&bytes).ok()?;
    let well_formed = match kind {
        crate::wire::frame_type::GROUP => envelope::parse(&bytes).is_ok(),
        crate::wire::frame_type::CHAIN_ANNOUNCE => frames::parse_chain_announce(&bytes).is_ok(),
        crate::wire::frame_type::PAIR_HELLO => frames::parse_pair(&bytes).is_ok(),
        _ => frames::parse_direct(&bytes).is_ok(),
    };
    well_formed.then_some(kind)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    /// `rotation.json` replayed from the receiving side: the remaining
    /// member opens the EpochKey with its own key and the old epoch's psk,
    /// derives the announce key, opens and verifies the announcement, and
    /// reads both group frames; the removed member's key opens nothing.
    #[test]
    fn the_rotation_vector_replays_from_the_remaining_members_side() {
        use crate::crypto::ratchet::ReceivingChain;
        use crate::engine::frames::{self, PairPayload};
        let v = rotation_vectors();
        let from_hex = |s: &str| -> Vec<u8> { unhex(s).unwrap() };
        let unhex = |k: &str| from_hex(v[k].as_str().unwrap());
        let array = |k: &str| -> [u8; 32] { unhex(k).try_into().unwrap() };
        let cid = array("circle_id");
        let a = IdentitySecret::from_seed(&array("organiser_seed")).member_id();
        let b = IdentitySecret::from_seed(&array("b_seed")).member_id();
        let a_noise = NoiseSecret::from_bytes(array("organiser_noise_secret")).public();
        let old_meta = array("old_meta");
        let hello_bytes = unhex("pair_hello");
        assert!(frames::frame_mac_valid(&hello_bytes, &old_meta, &cid));
        let hello = frames::parse_pair(&hello_bytes).unwrap();
        assert_eq!(hello.to, crate::circle::pair_tag(&old_meta, &cid, &b));
        let psk = crate::circle::pair_psk(&old_meta, &cid, &a, &b);
        let context = KkContext { circle_id: cid, epoch: hello.epoch, initiator: a, responder: b };
        let mut rng = SeededEntropy::new(seed(0));
        assert_eq!(hello.to_key, 1, "to B's first pairwise key");
        let b_noise = NoiseSecret::from_bytes(array("b_noise_secret"));
        assert!(
            kk_respond(&b_noise, &a_noise, &psk, &context, hello.noise, &[], &mut rng).is_err(),
            "B's static key never opens key material"
        );
        let b_first = NoiseSecret::from_bytes(array("b_first_pairwise_secret"));
        let (_, padded, _) = kk_respond(&b_first, &a_noise, &psk, &context, hello.noise, &[], &mut rng).unwrap();
        let PairPayload::EpochKey { epoch, raiser, secret } =
            PairPayload::decode(crate::wire::unpad(&padded).unwrap()).unwrap()
        else {
            panic!("not an EpochKey");
        };
        assert_eq!(u64::from(epoch), v["epoch"].as_u64().unwrap());
        // The removed member, even holding epoch 3's keys, cannot open it.
        let c_noise = NoiseSecret::from_bytes(array("c_noise_secret"));
        assert!(kk_respond(&c_noise, &a_noise, &psk, &context, hello.noise, &[], &mut rng).is_err());

        let meta = crate::circle::epoch_meta(&secret, &cid, epoch, &raiser);
        assert_eq!(meta, array("meta"));
        assert_eq!(crate::circle::generation_network_key(&meta, &cid, epoch), array("network_key"));
        let announce_key = crate::circle::chain_announce_key(&secret, &cid, epoch, &a);
        let announce = unhex("chain_announce");
        let parsed = frames::parse_chain_announce(&announce).unwrap();
        assert_eq!(parsed.from, crate::circle::pair_tag(&meta, &cid, &a));
        let padded = crate::crypto::aead::open(&announce_key, &parsed.nonce, parsed.header, parsed.ciphertext).unwrap();
        let content = crate::wire::unpad(&padded).unwrap();
        let (payload, signature) = content.split_at(content.len() - 64);
        let previous =
            chain_from(array("previous_chain_signing_seed"), array("previous_chain_key"), epoch - 1).unwrap();
        let signed = frames::chain_announce_signed(&cid, epoch, payload);
        assert!(previous.verify(&signed, &signature.try_into().unwrap()).is_ok());
        let PairPayload::SenderKey { distribution, .. } = PairPayload::decode(payload).unwrap() else {
            panic!("not a SenderKey");
        };
        let mut chain = ReceivingChain::from_distribution(&distribution).unwrap();
        for m in v["messages"].as_array().unwrap() {
            let frame = from_hex(m["frame"].as_str().unwrap());
            let padded = envelope::open(&mut chain, &envelope::parse(&frame).unwrap()).unwrap();
            assert_eq!(hex(crate::wire::unpad(&padded).unwrap()), m["plaintext"].as_str().unwrap());
        }
    }

    /// `join.json` replayed from the joiner's side: its seeded XX start
    /// gives the hello's message 1; it reads the member's reply (static key
    /// bound by the binding signature), its message 3 is the request, and
    /// its session opens the answer to a welcome whose log admits it.
    #[test]
    fn the_join_vector_replays_from_the_joiners_side() {
        use crate::crypto::pairwise::XxInitiator;
        use crate::engine::frames::{self, DirectFrame, JoinAnswer, MemberProof};
        let v = join_vectors();
        let from_hex = |s: &str| -> Vec<u8> { unhex(s).unwrap() };
        let unhex = |k: &str| from_hex(v[k].as_str().unwrap());
        let cid: [u8; 32] = unhex("circle_id").try_into().unwrap();
        let invite_op: [u8; 32] = unhex("invite_op_id").try_into().unwrap();
        let joiner_noise = NoiseSecret::from_bytes(unhex("joiner_noise_secret").try_into().unwrap());
        let mut rng = SeededEntropy::new(seed(0xa6));
        let (mut initiator, xx1) = XxInitiator::start(&joiner_noise, &cid, &invite_op, &mut rng).unwrap();
        let hello = unhex("join_hello");
        let DirectFrame::JoinHello { noise, join_tag, .. } = frames::parse_direct(&hello).unwrap() else {
            panic!("not a hello");
        };
        assert_eq!(noise, &xx1[..]);
        assert_eq!(join_tag, frames::join_tag(&unhex("join_op_id").try_into().unwrap(), &xx1));
        let reply = unhex("join_reply");
        let DirectFrame::JoinReply { noise } = frames::parse_direct(&reply).unwrap() else {
            panic!("not a reply");
        };
        let (member_static, payload) = initiator.read_reply(noise).unwrap();
        let proof = MemberProof::decode(&payload).unwrap();
        let creator_noise = NoiseSecret::from_bytes(unhex("creator_noise_secret").try_into().unwrap());
        assert_eq!(member_static, creator_noise.public());
        let binding = NoiseBinding {
            noise_public: member_static,
            first_pairwise: proof.first_pairwise,
            signature: proof.binding_signature,
        };
        assert!(binding.verify(&MemberId(proof.member), &cid).is_ok());
        let (mut session, xx3) = initiator.finish(&unhex("join_op")).unwrap();
        let request = unhex("join_request");
        let DirectFrame::JoinRequest { noise } = frames::parse_direct(&request).unwrap() else {
            panic!("not a request");
        };
        assert_eq!(noise, &xx3[..]);
        let answer = unhex("join_answer");
        let DirectFrame::JoinAnswer { nonce, header, ciphertext } = frames::parse_direct(&answer).unwrap() else {
            panic!("not an answer");
        };
        assert_eq!(nonce, 0);
        let welcome = session.open(header, nonce, ciphertext).unwrap();
        let JoinAnswer::Welcome { ops, epoch, pairwise_keys, .. } = JoinAnswer::decode(&welcome).unwrap() else {
            panic!("not a welcome");
        };
        let ops: Vec<Op> = ops.iter().map(|o| Op::decode(o).unwrap()).collect();
        let log = CircleLog::from_ops(ops).unwrap();
        assert_eq!(log.epoch(), epoch);
        // The admitter's newest pairwise key, signed by it, and its public
        // key the one whose secret the vector gives.
        let [(member, key)] = pairwise_keys[..] else { panic!("one pairwise key") };
        assert!(key.verify(&member, &cid).is_ok());
        let secret = NoiseSecret::from_bytes(unhex("admitter_pairwise_key_2_secret").try_into().unwrap());
        assert_eq!((key.key.id, key.key.public), (2, secret.public()));
        assert!(log.is_member(&IdentitySecret::from_seed(&seed(0xa4)).member_id()));
    }

    /// `payloads.json` holds every plaintext kind of SPEC §5.4 and every
    /// pairwise payload kind of §6.3, each decoding to its kind, and its
    /// PAIR_HELLO opens to the SenderKey with the responder's key.
    #[test]
    fn the_payload_vector_has_every_kind_and_each_decodes() {
        use crate::engine::frames::{self, PairPayload};
        let v = payload_vectors();
        let from_hex = |s: &str| -> Vec<u8> { unhex(s).unwrap() };
        let mut codes: Vec<u8> = Vec::new();
        for p in v["plaintexts"].as_array().unwrap() {
            let bytes = from_hex(p["encoded"].as_str().unwrap());
            let inner = Inner::decode(&bytes).unwrap();
            assert_eq!(inner.body.code(), bytes[0]);
            codes.push(bytes[0]);
        }
        assert_eq!(codes, (1..=6).collect::<Vec<u8>>(), "every plaintext kind of SPEC §5.4");
        let mut codes: Vec<u8> = Vec::new();
        for p in v["pair_payloads"].as_array().unwrap() {
            let bytes = from_hex(p["encoded"].as_str().unwrap());
            assert!(PairPayload::decode(&bytes).is_ok(), "{}", p["kind"]);
            codes.push(bytes[0]);
        }
        assert_eq!(codes, (1..=5).collect::<Vec<u8>>(), "every pairwise payload kind of SPEC §6.3");
        let PairwiseFixture { a_noise, b_noise, psk, context } = pairwise_fixture();
        let hello = from_hex(v["pair_hello_sender_key"].as_str().unwrap());
        let meta: [u8; 32] = from_hex(v["pair_hello_meta"].as_str().unwrap()).try_into().unwrap();
        assert!(frames::frame_mac_valid(&hello, &meta, &context.circle_id));
        let frame = frames::parse_pair(&hello).unwrap();
        let mut rng = SeededEntropy::new(seed(0));
        let (_, padded, _) =
            kk_respond(&b_noise, &a_noise.public(), &psk, &context, frame.noise, &[], &mut rng).unwrap();
        let payload = PairPayload::decode(crate::wire::unpad(&padded).unwrap()).unwrap();
        assert!(matches!(payload, PairPayload::SenderKey { .. }));
        let code = v["invite_for_operation"]["code"].as_str().unwrap();
        let parsed = InviteCode::parse(code).unwrap();
        assert_eq!(hex(&parsed.invite_op), v["invite_for_operation"]["invite_op"].as_str().unwrap());
    }
}
