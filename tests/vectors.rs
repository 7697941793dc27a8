//! The committed vectors in `protocol/vectors/` equal what the code
//! produces from the same inputs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::needless_range_loop)]

#[test]
fn committed_vectors_match_the_code() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("protocol/vectors");
    for (name, expected) in kolo::vectors::all() {
        assert!(!expected.is_null(), "{name}: the generator failed");
        let path = dir.join(name);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}; run `cargo run --example gen_vectors`", path.display()));
        let committed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(committed, expected, "{name} differs from the code");
    }
}

#[test]
fn envelope_vector_opens_with_the_published_chain_key() {
    use kolo::crypto::envelope;
    use kolo::crypto::ratchet::{ReceivingChain, SenderKeyDistribution};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("protocol/vectors");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("envelope.json")).unwrap()).unwrap();
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("ratchet.json")).unwrap()).unwrap();
    let unhex = |s: &str| -> Vec<u8> { kolo::vectors::unhex(s).unwrap() };
    let frame = unhex(v["frame"].as_str().unwrap());
    let distribution = SenderKeyDistribution {
        epoch: v["epoch"].as_u64().unwrap() as u32,
        signing_public: unhex(r["signing_public"].as_str().unwrap()).try_into().unwrap(),
        chain_key: unhex(v["chain_key_0"].as_str().unwrap()).try_into().unwrap(),
        counter: 0,
    };
    let mut chain = ReceivingChain::from_distribution(&distribution).unwrap();
    let padded = envelope::open(&mut chain, &envelope::parse(&frame).unwrap()).unwrap();
    let plaintext = kolo::wire::unpad(&padded).unwrap();
    assert_eq!(kolo::identity::hex(plaintext), v["plaintext"].as_str().unwrap());
}

/// Every resolution case resolves to its roster whatever order its
/// operations arrive in (reversed here), as SPEC §4.3 requires.
#[test]
fn resolution_cases_hold_in_any_delivery_order() {
    use kolo::circle::{CircleLog, Op};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("protocol/vectors");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("resolution.json")).unwrap()).unwrap();
    let unhex = |s: &str| -> Vec<u8> { kolo::vectors::unhex(s).unwrap() };
    for case in v["cases"].as_array().unwrap() {
        let ops: Vec<Op> =
            case["ops"].as_array().unwrap().iter().map(|o| Op::decode(&unhex(o.as_str().unwrap())).unwrap()).collect();
        let (genesis, rest) = ops.split_first().unwrap();
        let mut log = CircleLog::from_genesis(genesis.clone()).unwrap();
        for op in rest.iter().rev() {
            let _ = log.insert(op.clone());
        }
        let roster: Vec<String> = log.members().iter().map(|m| kolo::identity::hex(m.id.as_bytes())).collect();
        let expected: Vec<String> =
            case["roster"].as_array().unwrap().iter().map(|m| m["member"].as_str().unwrap().to_owned()).collect();
        assert_eq!(roster, expected, "{}", case["name"]);
        assert_eq!(u64::from(log.epoch()), case["epoch"].as_u64().unwrap(), "{}", case["name"]);
    }
}

/// The link vector checks out from the listener's side (SPEC §2a): its
/// stream key decrypts the dialer's magic, and the challenge secret with
/// the member's public Noise key gives the dialer's tag.
#[test]
fn link_vector_verifies_from_the_listeners_side() {
    use kolo::crypto::link::{self, Challenge, LinkCipher, MAGIC, ProofContext};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("protocol/vectors");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("link.json")).unwrap()).unwrap();
    let unhex = |k: &str| -> Vec<u8> { kolo::vectors::unhex(v[k].as_str().unwrap()).unwrap() };
    let array = |k: &str| -> [u8; 32] { unhex(k).try_into().unwrap() };
    let nonce = |k: &str| -> [u8; 24] { unhex(k).try_into().unwrap() };
    let mut magic: [u8; 16] = unhex("sealed_magic").try_into().unwrap();
    LinkCipher::new(&array("stream_key_dialer_to_listener")).apply(&mut magic);
    assert_eq!(magic, MAGIC);
    let challenge = Challenge::from_seed(array("challenge_secret_seed"));
    assert_eq!(challenge.public, array("challenge_public"));
    let shared = challenge.shared_with(&array("member_noise_public"));
    assert_eq!(*shared, array("shared"));
    let (network_key, circle_id) = (array("network_key"), array("circle_id"));
    let (d, l) = (nonce("dialer_nonce"), nonce("listener_nonce"));
    let context = ProofContext {
        network_key: &network_key,
        circle_id: &circle_id,
        dialer_nonce: &d,
        listener_nonce: &l,
        challenge: &challenge.public,
    };
    let proof = link::proof(&context, link::PROOF_MEMBER, &array("member_id"), &shared).unwrap();
    assert_eq!(proof.tag, array("tag"));
}

/// Every frame type SPEC §2 lists (but those v2 refuses) has a vector: some
/// string in `protocol/vectors/` is a well-formed frame of that type by
/// the code's own decoders. A frame type added to the table without a
/// vector fails here.
#[test]
fn every_frame_type_of_the_spec_has_a_vector() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let spec = std::fs::read_to_string(root.join("protocol/SPEC.md")).unwrap();
    let section = spec.split("## 2. Versioning").nth(1).unwrap().split("## 2a.").next().unwrap();
    let listed: Vec<(u8, String)> = section
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let code = cells.get(1)?.strip_prefix("`0x")?.strip_suffix('`')?;
            let name = cells.get(2)?;
            (!name.starts_with('(')).then(|| (u8::from_str_radix(code, 16).unwrap(), (*name).to_owned()))
        })
        .collect();
    assert!(listed.len() >= 10, "the frame table of SPEC §2 was not found: {listed:?}");
    fn strings(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::String(s) => out.push(s.clone()),
            serde_json::Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
            serde_json::Value::Object(o) => o.values().for_each(|x| strings(x, out)),
            _ => {}
        }
    }
    let mut covered = std::collections::BTreeSet::new();
    for (name, value) in kolo::vectors::all() {
        let mut found = Vec::new();
        strings(&value, &mut found);
        for s in found {
            if let Some(kind) = kolo::vectors::frame_type_of(&s) {
                covered.insert(kind);
            }
        }
        assert!(!value.is_null(), "{name}: the generator failed");
    }
    let missing: Vec<&String> = listed.iter().filter(|(code, _)| !covered.contains(code)).map(|(_, n)| n).collect();
    assert!(missing.is_empty(), "frame types of SPEC §2 without a vector: {missing:?}");
}

/// The refusal vectors are refused, and their valid counterparts accepted
/// (SPEC §1 strict verification and decoding, §5.3 canonical padding).
#[test]
fn refusal_vectors_are_refused() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("protocol/vectors");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("refusals.json")).unwrap()).unwrap();
    let unhex = |k: &str| -> Vec<u8> { kolo::vectors::unhex(v[k].as_str().unwrap()).unwrap() };
    let key = |k: &str| kolo::identity::MemberId(unhex(k).try_into().unwrap());
    let sig = |k: &str| -> [u8; 64] { unhex(k).try_into().unwrap() };
    let message = v["message_utf8"].as_str().unwrap().as_bytes();
    assert!(key("signer_public").verify(message, &sig("valid_signature")).is_ok());
    assert!(key("signer_public").verify(message, &sig("signature_s_plus_l")).is_err());
    assert!(key("small_order_public").verify(message, &sig("small_order_signature")).is_err());
    assert!(key("small_order_public").verify(b"any other message", &sig("small_order_signature")).is_err());
    // The vector is meaningful: a verifier without the small-order check
    // (ed25519-dalek's plain `verify`) accepts it, for any message.
    use ed25519_dalek::Verifier;
    let lax = ed25519_dalek::VerifyingKey::from_bytes(&unhex("small_order_public").try_into().unwrap()).unwrap();
    let forged = ed25519_dalek::Signature::from_bytes(&sig("small_order_signature"));
    assert!(lax.verify(b"any other message", &forged).is_ok());
    for k in ["padding_oversized_bucket", "padding_without_marker", "padding_not_a_bucket", "padding_wrong_marker"] {
        assert!(kolo::wire::unpad(&unhex(k)).is_err(), "{k} was accepted");
    }
    assert!(kolo::circle::Op::decode(&unhex("operation")).is_ok());
    assert!(kolo::circle::Op::decode(&unhex("operation_with_trailing_byte")).is_err());
    let code = |k: &str| kolo::circle::InviteCode::parse(v[k].as_str().unwrap());
    assert!(code("invite_code").is_ok());
    assert!(code("invite_code_nonzero_trailing_bits").is_err());
    assert!(code("invite_code_trailing_byte").is_err());
}
