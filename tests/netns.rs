//! Tests across real network namespaces (`ip netns` + veth), created and
//! removed by the test itself. They need root; without it, or without
//! `ip`, they print why and pass without running (`.ci/run` runs them
//! where it can). Addresses are private ones inside our own namespaces.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::netlab::{Lab, can_use_netns, reaches};
use common::{Daemon, fresh_home, wait_until};
use kolo::api::{self, Request};

#[test]
fn two_namespaces_find_each_other_by_mdns_alone() {
    if let Err(why) = can_use_netns() {
        eprintln!("skipping mDNS namespace test: {why}");
        return;
    }
    let mut lab = Lab::new();
    let (a, b) = (lab.namespace("mdnsa"), lab.namespace("mdnsb"));
    lab.link(&a, "kma0", "10.77.1.1/24", &b, "kmb0", "10.77.1.2/24");
    let ana = Daemon::new(fresh_home("netns-mdns", "ana"), "ana", &["/ip4/10.77.1.1/tcp/0"], Some(&a), true);
    let bo = Daemon::new(fresh_home("netns-mdns", "bo"), "bo", &["/ip4/10.77.1.2/tcp/0"], Some(&b), true);
    api::call(&ana.home, &Request::CircleCreate { name: "lan".into(), disappear_secs: None }).unwrap();
    let v = api::call(&ana.home, &Request::Invite { circle: "lan".into(), expires_secs: Some(600), organiser: None })
        .unwrap();
    // Strip every address: only mDNS can bring the two together.
    let parsed = kolo::circle::InviteCode::parse(v["code"].as_str().unwrap()).unwrap();
    let code = kolo::circle::InviteCode { addresses: Vec::new(), ..parsed }.encode();
    api::call(&bo.home, &Request::Join { code }).unwrap();
    api::call(&bo.home, &Request::Send { circle: "lan".into(), text: "found you".into(), disappear_secs: None })
        .unwrap();
    assert!(wait_until(60, || ana.has_text("lan", "found you")));
    drop(lab);
}

#[test]
fn a_member_out_of_direct_reach_is_reached_through_a_relay() {
    if let Err(why) = can_use_netns() {
        eprintln!("skipping relay namespace test: {why}");
        return;
    }
    // Ana's machine is on two networks; Bo and Cy are each on one of them,
    // and cannot reach each other directly.
    let mut lab = Lab::new();
    let (a, b, c) = (lab.namespace("relaya"), lab.namespace("relayb"), lab.namespace("relayc"));
    lab.link(&a, "kra1", "10.77.2.1/24", &b, "krb0", "10.77.2.2/24");
    lab.link(&a, "kra2", "10.77.3.1/24", &c, "krc0", "10.77.3.2/24");
    assert!(reaches(&c, "10.77.3.1") && !reaches(&c, "10.77.2.2"), "Cy must reach Ana but not Bo directly");
    let ana = Daemon::new(
        fresh_home("netns-relay", "ana"),
        "ana",
        &["/ip4/10.77.2.1/tcp/0", "/ip4/10.77.3.1/tcp/0"],
        Some(&a),
        false,
    );
    let bo = Daemon::new(fresh_home("netns-relay", "bo"), "bo", &["/ip4/10.77.2.2/tcp/0"], Some(&b), false);
    let cy = Daemon::new(fresh_home("netns-relay", "cy"), "cy", &["/ip4/10.77.3.2/tcp/0"], Some(&c), false);
    api::call(&ana.home, &Request::CircleCreate { name: "bridge".into(), disappear_secs: None }).unwrap();
    for d in [&bo, &cy] {
        let v = api::call(
            &ana.home,
            &Request::Invite { circle: "bridge".into(), expires_secs: Some(600), organiser: None },
        )
        .unwrap();
        api::call(&d.home, &Request::Join { code: v["code"].as_str().unwrap().into() }).unwrap();
    }
    // Messages are for the members the sender knows of: wait until Bo has
    // seen Cy join before Bo writes to Cy.
    assert!(wait_until(60, || bo.has_text("bridge", "cy joined (invited by ana)")));
    api::call(&bo.home, &Request::Send { circle: "bridge".into(), text: "hello cy".into(), disappear_secs: None })
        .unwrap();
    let got = wait_until(60, || cy.has_text("bridge", "hello cy"));
    if !got {
        for d in [&ana, &bo, &cy] {
            eprintln!(
                "{}: {:?}",
                d.home.display(),
                api::call(&d.home, &Request::Messages { circle: "bridge".into() }).map(|v| v
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| m["text"].clone())
                    .collect::<Vec<_>>())
            );
            eprintln!(
                "  members {:?}",
                api::call(&d.home, &Request::Members { circle: "bridge".into() }).map(|v| v
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| (m["name"].clone(), m["link"].clone()))
                    .collect::<Vec<_>>())
            );
            eprintln!("  status {:?}", api::call(&d.home, &Request::Status));
        }
    }
    assert!(got);
    // Cy's node connects to Bo's through Ana's relay, and says so.
    let relayed = wait_until(90, || {
        api::call(&cy.home, &Request::Members { circle: "bridge".into() })
            .map(|v| v.as_array().unwrap().iter().any(|m| m["name"] == "bo" && m["link"] == "relayed"))
            .unwrap_or(false)
    });
    assert!(relayed, "cy's link to bo should be relayed through ana");
    drop(lab);
}
