//! What the network sees: every byte between two real daemons passes
//! through a recording TCP proxy on 127.0.0.1 (no root needed). No
//! plaintext, no display name, no member identity key may appear; and a
//! node without the circle's network key cannot even connect. Inside the
//! closed network, a non-member holding the network key (a leaked invite)
//! that asks members for every frame they keep gets only ciphertext.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "common/rogue.rs"]
mod rogue;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Daemon, fresh_home};
use kolo::api::{self, Request};

const CANARY: &str = "CANARY-wire-91f2-we-meet-at-the-old-mill";

fn start(name: &str, port: u16) -> Daemon {
    let listen = format!("/ip4/127.0.0.1/tcp/{port}");
    Daemon::new(fresh_home("capture", name), name, &[listen.as_str()], None, false)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Forward 127.0.0.1:`listen` to 127.0.0.1:`target`, recording both directions.
fn proxy(listen: u16, target: u16, log: Arc<Mutex<Vec<u8>>>) {
    let server = TcpListener::bind(("127.0.0.1", listen)).unwrap();
    std::thread::spawn(move || {
        for inbound in server.incoming().flatten() {
            let Ok(outbound) = TcpStream::connect(("127.0.0.1", target)) else {
                continue;
            };
            for (mut from, mut to) in
                [(inbound.try_clone().unwrap(), outbound.try_clone().unwrap()), (outbound, inbound)]
            {
                let log = log.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16384];
                    while let Ok(n) = from.read(&mut buf) {
                        if n == 0 || to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        log.lock().unwrap().extend_from_slice(&buf[..n]);
                    }
                    let _ = to.shutdown(std::net::Shutdown::Both);
                });
            }
        }
    });
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn the_wire_carries_no_plaintext_names_or_identity_keys() {
    let (ana_port, proxy_port) = (free_port(), free_port());
    let ana = start("anastasia", ana_port);
    let bo = start("bonaventure", 0);
    let wire = Arc::new(Mutex::new(Vec::new()));
    create_mill(&ana);
    // Bo reaches Ana only through the recording proxy: the invite names the proxy.
    let code = {
        let v =
            api::call(&ana.home, &Request::Invite { circle: "mill".into(), expires_secs: Some(600), organiser: None })
                .unwrap();
        let real = v["code"].as_str().unwrap().to_owned();
        let parsed = kolo::circle::InviteCode::parse(&real).unwrap();
        let rerouted =
            kolo::circle::InviteCode { addresses: vec![format!("/ip4/127.0.0.1/tcp/{proxy_port}")], ..parsed };
        rerouted.encode()
    };
    let _ = ana_port;
    // The invite's real port is Ana's circle port, which differs from the
    // daemon's --listen port only if it was remembered; point the proxy at it.
    let status = api::call(&ana.home, &Request::Status).unwrap();
    let listen = status["circles"][0]["listen"][0].as_str().unwrap().to_owned();
    let real_port: u16 = listen.rsplit('/').next().unwrap().parse().unwrap();
    proxy(proxy_port, real_port, wire.clone());

    api::call(&bo.home, &Request::Join { code }).unwrap();
    api::call(&ana.home, &Request::Send { circle: "mill".into(), text: CANARY.into(), disappear_secs: None }).unwrap();
    api::call(
        &bo.home,
        &Request::Send { circle: "mill".into(), text: format!("{CANARY} reply"), disappear_secs: None },
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = api::call(&bo.home, &Request::Messages { circle: "mill".into() }).unwrap();
        if v.as_array().unwrap().iter().any(|m| m["text"] == CANARY) {
            break;
        }
        assert!(Instant::now() < deadline, "bo never received the canary");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(2));

    let ids = member_ids(&api::call(&ana.home, &Request::Members { circle: "mill".into() }).unwrap());
    let wire = wire.lock().unwrap().clone();
    assert!(wire.len() > 2000, "the proxy saw the conversation ({} bytes)", wire.len());
    for needle in [CANARY.as_bytes(), b"anastasia", b"bonaventure", b"mill"] {
        assert!(!contains(&wire, needle), "{:?} crossed the wire in clear", String::from_utf8_lossy(needle));
    }
    for id in &ids {
        assert!(!contains(&wire, id), "a member identity key crossed the wire");
    }
    // "kolo" does not identify the software either.
    assert!(!contains(&wire, b"kolo"), "the protocol names itself on the wire");
}

fn create_mill(d: &Daemon) {
    d.call(Request::CircleCreate { name: "mill".into(), disappear_secs: None });
}

#[test]
fn a_node_without_the_network_key_cannot_connect() {
    let ana = start("gatekeeper", 0);
    create_mill(&ana);
    let real =
        api::call(&ana.home, &Request::Invite { circle: "mill".into(), expires_secs: Some(600), organiser: None })
            .unwrap();
    let parsed = kolo::circle::InviteCode::parse(real["code"].as_str().unwrap()).unwrap();
    // Same circle and address, wrong network key: an outsider's guess.
    let forged = kolo::circle::InviteCode { network_key: [7u8; 32], ..parsed }.encode();
    let outsider = start("outsider", 0);
    let home = outsider.home.clone();
    // The join waits for an admission that never comes; watch meanwhile.
    std::thread::spawn(move || api::call(&home, &Request::Join { code: forged }));
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(500));
        let status = api::call(&ana.home, &Request::Status).unwrap();
        assert_eq!(status["circles"][0]["peers"], 0, "the outsider got a connection");
    }
    let circles = api::call(&outsider.home, &Request::Circles).unwrap();
    assert!(circles.as_array().unwrap().is_empty(), "the outsider joined without the network key");
}

/// A leaked invite's holder enters the closed network without joining and
/// asks every member for catch-up (in v1 members answered any peer, so it
/// got every frame the circle keeps, pairwise key distributions and
/// announcements included). Defence: end-to-end encryption, anonymous
/// envelopes (key ids, not member ids), pairwise tags, padding; and since
/// v2 catch-up only for members (SPEC §7): the outsider's request is not
/// answered at all, and what it overhears is ciphertext.
#[test]
fn a_non_member_inside_the_network_collects_only_ciphertext() {
    let ana = start("nadia", 0);
    let bo = start("bartholomew", 0);
    create_mill(&ana);
    bo.call(Request::Join { code: ana.invite("mill") });
    ana.send("mill", CANARY);
    ana.call(Request::Announce {
        circle: "mill".into(),
        title: format!("{CANARY} assembly"),
        when: Some("dawn".into()),
        place: Some("the old mill".into()),
        details: None,
        supersedes: None,
        disappear_secs: None,
    });
    bo.send("mill", &format!("{CANARY} from bartholomew"));
    assert!(ana.wait_for_text("mill", &format!("{CANARY} from bartholomew"), 60));
    let leaked = ana.invite("mill");
    let outsider = rogue::Rogue::new("eve");
    outsider.outsider(&leaked);
    assert!(common::wait_until(60, || outsider.connected() >= 1), "the outsider reached the network");
    // An empty SYNC_REQUEST: "I hold nothing, send me everything". In v1
    // members answered it with their whole store; since v2 a request must
    // carry the circle's frame authenticator (SPEC §7), which only members
    // can make, so the outsider gets no answer.
    let request = vec![1u8, 0x20, 0, 0, 0, 0];
    for _ in 0..4 {
        outsider.run({
            let request = request.clone();
            move |l| l.direct_to_all(&request)
        });
        std::thread::sleep(Duration::from_millis(500));
    }
    // A fence: a member's message, which the outsider may overhear on the
    // topic, shows the network carried traffic meanwhile.
    ana.send("mill", "fence");
    assert!(bo.wait_for_text("mill", "fence", 60));
    std::thread::sleep(Duration::from_secs(2));
    let collected: Vec<Vec<u8>> = outsider.seen.lock().unwrap().frames.iter().map(|(_, f)| f.clone()).collect();
    let answers = collected.iter().filter(|f| f.len() > 6 && f[1] == 0x21).count();
    assert_eq!(answers, 0, "a member answered an outsider's catch-up request");
    let all: Vec<u8> = collected.concat();
    let ids = member_ids(&ana.call(Request::Members { circle: "mill".into() }));
    for needle in [CANARY.as_bytes(), b"nadia", b"bartholomew", b"mill", b"dawn"] {
        assert!(!contains(&all, needle), "{:?} reached a non-member in clear", String::from_utf8_lossy(needle));
    }
    for id in &ids {
        assert!(!contains(&all, id), "a member identity key reached a non-member");
    }
    // The circle is unharmed and the outsider did not become a member.
    ana.send("mill", "after the outsider");
    assert!(bo.wait_for_text("mill", "after the outsider", 60));
    assert_eq!(ana.call(Request::Members { circle: "mill".into() }).as_array().unwrap().len(), 2);
}

/// The member ids (raw bytes) in a `members` answer, to look for on the wire.
fn member_ids(members: &serde_json::Value) -> Vec<Vec<u8>> {
    members
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let h = m["id"].as_str().unwrap();
            (0..h.len()).step_by(2).map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap()).collect()
        })
        .collect()
}
