//! The bodies of the fuzz targets: one plain function per decoder of
//! outside input, each taking arbitrary bytes. `fuzz/` wraps them in
//! libFuzzer targets; `tests/fuzz_corpus.rs` replays the committed corpus
//! (`fuzz/corpus/<target>/`) through the same functions in `cargo test`.
//!
//! Every function must return normally on any input: a panic is a bug,
//! either a decoder that is not total or a round-trip that does not hold
//! (where an encoder exists, what decodes must re-encode to the same bytes,
//! or at least to bytes that decode to the same value).
//!
//! Not part of the API: hidden from the docs, pure (no I/O), deterministic.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::OnceLock;

use crate::circle::{CircleId, CircleLog, InviteCode, InviteSecret, Op, OpBody, Role};
use crate::crypto::envelope;
use crate::crypto::kdf::hash;
use crate::crypto::pairwise::{self, KkContext, Session, XxInitiator, XxResponder};
use crate::engine::frames::{self, DirectFrame, JoinAnswer, MemberProof, PairPayload};
use crate::engine::message::Inner;
use crate::engine::{Command, Engine, EngineConfig, Input, Output, StoredCircle};
use crate::entropy::{Entropy, SeededEntropy};
use crate::identity::{IdentitySecret, MemberId, NoiseSecret};
use crate::wire::{self, frame_type};

/// Every target, by the name of its `fuzz/fuzz_targets/<name>.rs` and its
/// corpus directory.
pub const TARGETS: &[&str] = &[
    "topic_frame",
    "direct_frame",
    "pair_payload",
    "group_plaintext",
    "membership_op",
    "membership_log",
    "invite_code",
    "control_request",
    "handshake",
    "store_header",
    "engine",
];

/// Run target `name` on `data`; false if there is no such target.
pub fn run(name: &str, data: &[u8]) -> bool {
    let f: fn(&[u8]) = match name {
        "topic_frame" => topic_frame,
        "direct_frame" => direct_frame,
        "pair_payload" => pair_payload,
        "group_plaintext" => group_plaintext,
        "membership_op" => membership_op,
        "membership_log" => membership_log,
        "invite_code" => invite_code,
        "control_request" => control_request,
        "handshake" => handshake,
        "store_header" => store_header,
        "engine" => engine,
        _ => return false,
    };
    f(data);
    true
}

/// Frames from the circle topic: the group envelope and the pairwise
/// frames. Whatever parses must re-encode to exactly the same bytes.
pub fn topic_frame(data: &[u8]) {
    let _ = wire::read_prefix(data);
    if let Ok(frame) = envelope::parse(data) {
        assert_eq!(&frame.header.encode()[..], frame.header_bytes);
        let mut again = frame.header_bytes.to_vec();
        again.extend_from_slice(frame.ciphertext);
        assert_eq!(&again[..], frame.signed);
        again.extend_from_slice(&frame.signature);
        assert_eq!(again, data);
        assert!(wire::PADDING_BUCKETS.iter().any(|b| b + envelope::TAG_LEN == frame.ciphertext.len()));
    }
    if let Ok(frame) = frames::parse_pair(data) {
        let again = frames::encode_hello(&frame);
        // The body re-encodes to the bytes before the authenticator.
        assert_eq!(again, data[..data.len() - frames::FRAME_MAC_TRAILER]);
    }
}

/// Direct frames (join handshake, catch-up requests and answers).
pub fn direct_frame(data: &[u8]) {
    let Ok(frame) = frames::parse_direct(data) else {
        return;
    };
    let again = match &frame {
        DirectFrame::JoinHello { invite_op, invite_proof, join_tag, noise } => {
            frames::encode_join_hello(invite_op, invite_proof, join_tag, noise)
        }
        DirectFrame::JoinReply { noise } => frames::encode_join_noise(frame_type::JOIN_REPLY, noise),
        DirectFrame::JoinRefused { invite_op, reason } => frames::encode_join_refused(invite_op, *reason),
        DirectFrame::JoinRequest { noise } => frames::encode_join_noise(frame_type::JOIN_REQUEST, noise),
        DirectFrame::JoinAnswer { nonce, header, ciphertext } => {
            let h = frames::join_answer_header(*nonce);
            assert_eq!(&h[..], *header);
            [h, ciphertext.to_vec()].concat()
        }
        DirectFrame::SyncRequest { sent_at_ms, have } => {
            // The authenticator is carried along, not re-encoded.
            let mut f = frames::encode_sync_request(*sent_at_ms, have);
            f.extend_from_slice(&data[data.len() - frames::FRAME_MAC_TRAILER..]);
            f
        }
        DirectFrame::SyncResponse { frames: list } => frames::encode_sync_response(list),
        DirectFrame::Pairwise { frame } => frame.to_vec(),
    };
    assert_eq!(again, data);
}

/// What travels inside pairwise and join sessions: padding, the pairwise
/// payloads, the join answer and the member's proof.
pub fn pair_payload(data: &[u8]) {
    if let Ok(content) = wire::unpad(data) {
        assert_eq!(wire::pad(content).ok().as_deref(), Some(data), "unpad then pad is the identity");
    }
    if let Ok(p) = PairPayload::decode(data) {
        assert_eq!(p.encode(), data);
    }
    if let Ok(a) = JoinAnswer::decode(data) {
        // `fatal` is any non-zero byte on the wire; compare canonical forms.
        let canonical = a.encode();
        let again = JoinAnswer::decode(&canonical).expect("a canonical answer decodes");
        assert_eq!(again.encode(), canonical);
    }
    if let Ok(p) = MemberProof::decode(data) {
        assert_eq!(p.encode(), data);
    }
}

/// The plaintext inside a group envelope.
pub fn group_plaintext(data: &[u8]) {
    if let Ok(inner) = Inner::decode(data) {
        assert_eq!(inner.encode(), data);
    }
}

/// One encoded membership operation: decode, re-encode, and offer it to a
/// real log (it must be refused or applied, never crash the resolver).
pub fn membership_op(data: &[u8]) {
    let Ok(op) = Op::decode(data) else {
        return;
    };
    assert_eq!(op.encode(), data);
    let fixture = log_fixture();
    let mut log = fixture.log();
    let _ = log.insert(op);
    let _ = log.members();
    let _ = log.epoch();
}

/// A sequence of correctly signed operations chosen by the input (authors
/// among an organiser, a member and an outsider; kinds, targets, parents
/// and timestamps from the bytes), inserted into two logs in opposite
/// orders. Both must resolve to the same roster, roles, settings and epoch:
/// membership resolution may not depend on arrival order.
pub fn membership_log(data: &[u8]) {
    let fixture = log_fixture();
    let mut log = fixture.log();
    let circle = log.circle_id();
    let mut ops: Vec<Op> = Vec::new();
    let mut known: Vec<[u8; 32]> = log.ops_in_order().iter().map(|o| o.id()).collect();
    for step in data.chunks(4).take(24) {
        let [a, b, c, d] = [0, 1, 2, 3].map(|i| step.get(i).copied().unwrap_or(0));
        let author = &fixture.people[usize::from(a % 3)];
        let target = fixture.people[usize::from(b % 3)].member_id();
        let body = match b >> 4 {
            0..=3 => OpBody::Remove { member: target },
            4..=6 => OpBody::SetRole { member: target, role: if c & 1 == 0 { Role::Member } else { Role::Organiser } },
            7..=8 => OpBody::Rotate,
            9..=10 => OpBody::SetDisappear { max_secs: u32::from(c) * 60 },
            11..=12 => OpBody::Invite {
                invite_public: fixture.invite.public(),
                expires_at_ms: 2_000_000_000_000,
                role: Role::Member,
            },
            _ => {
                let who = &fixture.people[usize::from(b % 3)];
                let noise = NoiseSecret::from_bytes([b; 32]);
                OpBody::Add {
                    member: who.member_id(),
                    binding: crate::identity::NoiseBinding::create(who, &circle, &noise, &noise),
                    display_name: format!("p{}", b % 3),
                    role: if c & 2 == 0 { Role::Member } else { Role::Organiser },
                }
            }
        };
        // Parents: one or two earlier operations picked by the input, so
        // the DAG gets concurrent branches.
        let mut parents = vec![known[usize::from(c) % known.len()]];
        let second = known[usize::from(d) % known.len()];
        if d & 0x80 != 0 && second != parents[0] {
            parents.push(second);
        }
        let Ok(op) = Op::sign(author, &circle, parents, body, 1_700_000_000_000 + u64::from(d)) else {
            continue;
        };
        known.push(op.id());
        ops.push(op);
    }
    for op in ops.iter().cloned() {
        let _ = log.insert(op);
    }
    let mut reversed = fixture.log();
    // Reverse arrival: children before parents; the log must hold them
    // until their parents arrive and end in the same state.
    for op in ops.iter().rev().cloned() {
        let _ = reversed.insert(op);
    }
    let view = |l: &CircleLog| {
        let mut m: Vec<(MemberId, Role, String)> =
            l.members().iter().map(|r| (r.id, r.role, r.display_name.clone())).collect();
        m.sort_by_key(|x| x.0.0);
        (m, l.epoch(), l.max_disappear_secs(), l.len())
    };
    assert_eq!(view(&log), view(&reversed), "resolution depends on arrival order");
}

/// Invite codes as pasted by a person: arbitrary text, and codes whose
/// checksum is right (so the fuzzer gets past it into the body).
pub fn invite_code(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(code) = InviteCode::parse(&text) {
        let again = InviteCode::parse(&code.encode()).expect("an encoded code parses");
        assert_eq!(again.encode(), code.encode());
    }
    let _ = crate::wire::text::base32_decode(&text);
    let sum = hash(b"kolo/v1/invite-checksum", &[data]);
    let body = [data, &sum[..4]].concat();
    let text = format!("kolo1-{}", crate::wire::text::base32(&body, crate::wire::text::Case::Lower));
    if let Ok(code) = InviteCode::parse(&text) {
        assert_eq!(code.encode(), text, "a canonical code re-encodes to itself");
    }
}

/// One line on the control socket.
pub fn control_request(data: &[u8]) {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    // Whatever the line, an answer can be given (an id to echo, a code).
    match crate::api::parse_call(line) {
        Ok(call) => {
            let id = call.id.clone().unwrap_or(crate::api::Id::Null);
            let text = crate::api::rpc::request_line(&id, &call.request).expect("a request serialises");
            let again = crate::api::parse_call(&text).expect("a serialised request parses");
            assert_eq!(again.request, call.request);
            assert_eq!(again.id, Some(id));
        }
        Err((id, failure)) => {
            let answer = crate::api::rpc::response_line::<()>(&id, Err(&failure));
            assert!(answer.starts_with("{\"jsonrpc\":\"2.0\""), "{answer}");
        }
    }
}

/// Noise handshakes and transport messages from a peer: a KK first
/// message and reply (keys and prologue of `protocol/vectors/pairwise.json`,
/// so its message_1 is a valid seed), XX messages, transport ciphertexts
/// and a stored session's bytes.
pub fn handshake(data: &[u8]) {
    use crate::vectors::{PairwiseFixture, pairwise_fixture, seed};
    let PairwiseFixture { a_noise, b_noise, psk, context } = pairwise_fixture();
    let mut rng = SeededEntropy::new(seed(15));
    if let Ok((mut session, _payload, _reply)) =
        pairwise::kk_respond(&b_noise, &a_noise.public(), &psk, &context, data, b"", &mut rng)
    {
        let _ = session.open(b"header", 0, data);
    }
    let mut rng_a = SeededEntropy::new(seed(14));
    if let Ok((init, _)) = pairwise::KkInitiator::start(&a_noise, &b_noise.public(), &psk, &context, b"x", &mut rng_a) {
        let _ = init.finish(data);
    }
    let (circle, invite_op) = (seed(3), seed(11));
    if let Ok((responder, _)) = XxResponder::respond(&b_noise, &circle, &invite_op, data, b"proof", &mut rng) {
        let _ = responder.finish(data);
    }
    if let Ok((mut joiner, _)) = XxInitiator::start(&a_noise, &circle, &invite_op, &mut rng) {
        let _ = joiner.read_reply(data);
    }
    if let Ok(mut s) = Session::import(data) {
        let exported = s.export();
        let again = Session::import(&exported).expect("an exported session imports");
        assert_eq!(again.export(), exported);
        let _ = s.open(b"", 0, data);
    }
}

/// The profile header, the one unencrypted file of a profile (a tampered
/// or truncated disk).
pub fn store_header(data: &[u8]) {
    if let Ok(h) = crate::store::header::Header::decode(data, Path::new("profile.header")) {
        assert_eq!(h.encode(), data);
    }
}

/// The whole engine of a member of a two-member circle, fed a sequence of
/// topic frames, direct frames and ticks cut from the input. Input format,
/// repeated: `u8 kind, u16 length, bytes` (kind % 3: 0 topic frame,
/// 1 direct frame, 2 tick). Every frame it emits must carry the version
/// prefix (no plaintext leaves the engine).
pub fn engine(data: &[u8]) {
    let fixture = engine_fixture();
    let Some(mut engine) = fixture.engine() else {
        panic!("the engine fixture did not restore");
    };
    let mut rng = SeededEntropy::from_u64(99);
    let mut now = fixture.now;
    for (kind, bytes) in engine_chunks(data).into_iter().take(32) {
        let input = match kind % 3 {
            0 => Input::Frame { circle: fixture.circle, bytes: bytes.to_vec() },
            1 => Input::Direct { circle: fixture.circle, peer: 1, bytes: bytes.to_vec() },
            _ => {
                now += 1000 * u64::from(bytes.first().copied().unwrap_or(1));
                Input::Tick
            }
        };
        for out in engine.handle(now, input, &mut rng) {
            if let Output::Publish { frame, .. } | Output::SendDirect { frame, .. } = out {
                assert_eq!(frame.first(), Some(&wire::VERSION), "an emitted frame lacks the version prefix");
            }
        }
    }
}

/// Split an `engine` input into (kind, bytes) chunks.
pub fn engine_chunks(data: &[u8]) -> Vec<(u8, &[u8])> {
    let mut out = Vec::new();
    let mut rest = data;
    while let [kind, hi, lo, tail @ ..] = rest {
        let n = (usize::from(*hi) << 8 | usize::from(*lo)).min(tail.len());
        out.push((*kind, &tail[..n]));
        rest = &tail[n..];
    }
    out
}

/// Encode chunks in the `engine` input format.
pub fn engine_input(chunks: &[(u8, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (kind, bytes) in chunks {
        let n = bytes.len().min(u16::MAX as usize);
        out.push(*kind);
        out.extend_from_slice(&(n as u16).to_be_bytes());
        out.extend_from_slice(&bytes[..n]);
    }
    out
}

// -------------------------------------------------------------------
// Fixtures, built once per process and deterministic.
// -------------------------------------------------------------------

pub struct LogFixture {
    genesis: Vec<u8>,
    /// Organiser (creator), member, outsider.
    people: [IdentitySecret; 3],
    invite: InviteSecret,
    rest: Vec<Vec<u8>>,
}

impl LogFixture {
    fn log(&self) -> CircleLog {
        let mut log =
            CircleLog::from_genesis(Op::decode(&self.genesis).expect("genesis decodes")).expect("genesis is valid");
        for op in &self.rest {
            let _ = log.insert(Op::decode(op).expect("fixture op decodes"));
        }
        log
    }

    /// Every operation of the fixture, encoded (seeds for `membership_op`).
    pub fn encoded_ops(&self) -> Vec<Vec<u8>> {
        std::iter::once(self.genesis.clone()).chain(self.rest.iter().cloned()).collect()
    }
}

/// A circle created by person 0 with person 1 added as a member.
pub fn log_fixture() -> &'static LogFixture {
    static FIXTURE: OnceLock<LogFixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let mut rng = SeededEntropy::from_u64(0x10f);
        let people = [0u8, 1, 2].map(|_| IdentitySecret::generate(&mut rng));
        let noise = NoiseSecret::generate(&mut rng);
        let (genesis, circle) = Op::create(&people[0], &noise, &noise, "fuzz", "p0", 0, 1_700_000_000_000, &mut rng)
            .expect("genesis signs");
        let member_noise = NoiseSecret::generate(&mut rng);
        let add = Op::sign(
            &people[0],
            &circle,
            vec![genesis.id()],
            OpBody::Add {
                member: people[1].member_id(),
                binding: crate::identity::NoiseBinding::create(&people[1], &circle, &member_noise, &member_noise),
                display_name: "p1".into(),
                role: Role::Member,
            },
            1_700_000_000_001,
        )
        .expect("add signs");
        let invite = InviteSecret::generate(&mut rng);
        LogFixture { genesis: genesis.encode(), people, invite, rest: vec![add.encode()] }
    })
}

pub struct EngineFixture {
    identity_seed: [u8; 32],
    snapshot: Vec<u8>,
    pub circle: CircleId,
    pub now: u64,
    /// Frames the circle produced after the snapshot: valid input for the
    /// restored engine (seeds), as (is_direct, bytes).
    pub frames: Vec<(bool, Vec<u8>)>,
}

impl EngineFixture {
    /// Bongani's engine as it was at the snapshot.
    pub fn engine(&self) -> Option<Engine> {
        let identity = IdentitySecret::from_seed(&self.identity_seed);
        let stored = StoredCircle {
            snapshot: zeroize::Zeroizing::new(self.snapshot.clone()),
            chains: Vec::new(),
            messages: Vec::new(),
            frames: Vec::new(),
        };
        Engine::restore(identity, "bongani".into(), EngineConfig::default(), vec![stored]).ok()
    }
}

/// A circle of Ana (organiser) and Bongani run in the simulation; a
/// snapshot of Bongani's engine, then everything the circle sent after it
/// (texts, an announcement, a rotation, an invite, catch-up).
pub fn engine_fixture() -> &'static EngineFixture {
    static FIXTURE: OnceLock<EngineFixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        use crate::sim::{Faults, Sim};
        const SEED: u64 = 0xf022;
        let mut sim = Sim::new(SEED, &["ana", "bongani"], Faults::NONE, EngineConfig::default());
        // The same derivation as `Sim::new`, to hold Bongani's identity.
        let mut rng = SeededEntropy::from_u64(SEED);
        let _ana: [u8; 32] = rng.array();
        let mut bo_rng = SeededEntropy::new(rng.array());
        let bo = IdentitySecret::generate(&mut bo_rng);
        assert_eq!(bo.member_id(), sim.nodes[1].engine.member_id(), "fixture identity derivation");
        sim.command(0, Command::CreateCircle { name: "fuzz".into(), max_disappear_secs: Some(3600) });
        let circle = sim.created_circle(0).expect("circle created");
        assert!(sim.invite_and_join(circle, 0, 1), "bongani joins");
        sim.run_for(3000);
        let snapshot = sim.nodes[1].engine.export_circle(&circle).expect("snapshot").to_vec();
        let from = sim.captured.len();
        sim.command(0, Command::SendText { circle, text: "hello".into(), timer_secs: Some(60) });
        sim.command(
            0,
            Command::SendAnnouncement {
                circle,
                announcement: crate::engine::Announcement {
                    title: "meet".into(),
                    when: "now".into(),
                    place: "here".into(),
                    details: String::new(),
                    supersedes: None,
                },
                timer_secs: None,
            },
        );
        sim.command(0, Command::Rotate { circle });
        sim.run_for(1500);
        sim.command(0, Command::SendText { circle, text: "after rotation".into(), timer_secs: None });
        sim.command(0, Command::CreateInvite { circle, expires_in_ms: 600_000, role: Role::Member, addresses: vec![] });
        sim.run_for(1500);
        let frames = sim.captured[from..].iter().map(|c| (c.direct, c.bytes.clone())).collect();
        EngineFixture { identity_seed: bo.expose_seed(), snapshot, circle, now: sim.now, frames }
    })
}

/// Seeds for every target from real encodings (a simulated circle, the
/// fixtures, `protocol/vectors`-style values): (target, bytes).
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut out: Vec<(&'static str, Vec<u8>)> = Vec::new();
    let fx = engine_fixture();
    for (direct, bytes) in &fx.frames {
        out.push((if *direct { "direct_frame" } else { "topic_frame" }, bytes.clone()));
        out.push(("engine", engine_input(&[(u8::from(*direct), bytes)])));
    }
    let all: Vec<(u8, &[u8])> = fx.frames.iter().map(|(d, b)| (u8::from(*d), b.as_slice())).collect();
    out.push(("engine", engine_input(&all)));
    out.push(("engine", engine_input(&[(2, &[30])])));
    for op in log_fixture().encoded_ops() {
        out.push(("membership_op", op));
    }
    out.push(("membership_log", vec![0, 0x51, 1, 0, 0, 0x71, 0, 0x81, 1, 0x01, 2, 3]));
    // Plaintexts and payloads, encoded by the real encoders.
    let mut rng = SeededEntropy::from_u64(5);
    let who = IdentitySecret::generate(&mut rng).member_id();
    for body in [
        crate::engine::message::Body::Text("hello".into()),
        crate::engine::message::Body::Ack([3; 16]),
        crate::engine::message::Body::Op(log_fixture().genesis.clone()),
        crate::engine::message::Body::Presence(crate::engine::message::Presence {
            transport: vec![0, 36, 8, 1],
            addresses: vec!["/ip4/127.0.0.1/tcp/4001".into()],
        }),
        crate::engine::message::Body::Announcement(crate::engine::Announcement {
            title: "t".into(),
            when: "w".into(),
            place: "p".into(),
            details: "d".into(),
            supersedes: Some([1; 16]),
        }),
    ] {
        let inner = Inner { circle_id: [7; 32], sender: who, epoch: 3, sent_at_ms: 1, timer_secs: 60, body };
        let encoded = inner.encode();
        out.push(("pair_payload", wire::pad(&encoded).unwrap_or_default()));
        out.push(("group_plaintext", encoded));
    }
    out.push(("pair_payload", PairPayload::LogRequest.encode()));
    out.push(("pair_payload", PairPayload::LogOps(log_fixture().encoded_ops()).encode()));
    out.push(("pair_payload", JoinAnswer::Refused { fatal: true, reason: "used".into() }.encode()));
    out.push((
        "pair_payload",
        JoinAnswer::Welcome {
            circle_secret: zeroize::Zeroizing::new([9; 32]),
            epoch: 1,
            raiser: [8; 32],
            epoch_meta: zeroize::Zeroizing::new([7; 32]),
            chain: zeroize::Zeroizing::new(vec![1]),
            ops: log_fixture().encoded_ops(),
            pairwise_keys: vec![(
                crate::identity::MemberId([3; 32]),
                crate::identity::SignedPairwiseKey {
                    key: crate::identity::PairwiseKey { id: 2, public: [4; 32] },
                    signature: [5; 64],
                },
            )],
        }
        .encode(),
    ));
    out.push((
        "pair_payload",
        MemberProof { member: [1; 32], first_pairwise: [3; 32], binding_signature: [2; 64] }.encode(),
    ));
    let code = InviteCode {
        circle_id: [3; 32],
        network_key: [10; 32],
        invite_op: [11; 32],
        secret: InviteSecret::from_seed(&[7; 32]),
        expires_at_ms: 1_700_000_600_000,
        inviter: who,
        addresses: vec!["/ip4/127.0.0.1/tcp/4001".into()],
    };
    out.push(("invite_code", code.encode().into_bytes()));
    for line in [
        r#"{"id":1,"cmd":"status"}"#,
        r#"{"id":2,"cmd":"send","circle":"mill","text":"hi","disappear_secs":60}"#,
        r#"{"id":3,"cmd":"announce","circle":"c","title":"t","where":"p","supersedes":"ab12"}"#,
        r#"{"id":4,"cmd":"invite","circle":"c","expires_secs":600,"organiser":true}"#,
        r#"{"id":5,"cmd":"join","code":"kolo1-abc"}"#,
        r#"{"id":6,"cmd":"verify","circle":"c","member":"bo","confirm":true}"#,
    ] {
        out.push(("control_request", line.as_bytes().to_vec()));
    }
    let header = crate::store::header::Header::new(crate::store::KdfParams::TESTING, b"pass", &[1; 32], &mut rng);
    if let Ok(h) = header {
        out.push(("store_header", h.encode()));
    }
    out.extend(handshake_seeds().into_iter().map(|h| ("handshake", h)));
    out
}

/// The messages `handshake` answers, made by the real initiators with the
/// same keys: the KK first message of `protocol/vectors/pairwise.json`, a
/// KK reply, an XX first message and an exported session.
fn handshake_seeds() -> Vec<Vec<u8>> {
    let seed = |n: u8| -> [u8; 32] { std::array::from_fn(|i| n.wrapping_add(i as u8)) };
    let a = IdentitySecret::from_seed(&seed(1)).member_id();
    let b = IdentitySecret::from_seed(&seed(8)).member_id();
    let (a_noise, b_noise, psk) = (NoiseSecret::from_bytes(seed(2)), NoiseSecret::from_bytes(seed(9)), seed(13));
    let context = KkContext { circle_id: seed(3), epoch: 2, initiator: a, responder: b };
    let mut out = Vec::new();
    let mut rng_a = SeededEntropy::new(seed(14));
    let payload = b"sender key distribution goes here";
    if let Ok((_, hello)) =
        pairwise::KkInitiator::start(&a_noise, &b_noise.public(), &psk, &context, payload, &mut rng_a)
    {
        let mut rng_b = SeededEntropy::new(seed(15));
        if let Ok((session, _, reply)) =
            pairwise::kk_respond(&b_noise, &a_noise.public(), &psk, &context, &hello, b"", &mut rng_b)
        {
            out.push(reply);
            out.push(session.export());
        }
        out.push(hello);
    }
    let mut rng = SeededEntropy::new(seed(16));
    if let Ok((_, first)) = XxInitiator::start(&a_noise, &seed(3), &seed(11), &mut rng) {
        out.push(first);
    }
    out
}
