//! Tests across real network namespaces (`ip netns` + veth), created and
//! removed by the test itself. They need root; without it, or without
//! `ip`, they print why and pass without running (`.ci/run` runs them
//! where it can). Addresses are private ones inside our own namespaces.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::{Command, Stdio};

use common::{Daemon, fresh_home, wait_until};
use kolo::api::{self, Request};

fn can_use_netns() -> Result<(), String> {
    let uid = std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m)).unwrap_or(1);
    if uid != 0 {
        return Err("not root".into());
    }
    let probe = "kolo-probe-ns";
    let ok = Command::new("ip").args(["netns", "add", probe]).status().map(|s| s.success()).unwrap_or(false);
    let _ = Command::new("ip").args(["netns", "del", probe]).status();
    if ok { Ok(()) } else { Err("`ip netns add` is not available".into()) }
}

fn ip(args: &[&str]) {
    let st = Command::new("ip").args(args).status().unwrap();
    assert!(st.success(), "ip {args:?} failed");
}

/// Namespaces and links that are removed when dropped.
struct Lab {
    namespaces: Vec<String>,
}

impl Lab {
    fn new(names: &[&str]) -> Lab {
        for n in names {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
            ip(&["netns", "add", n]);
            ip(&["-n", n, "link", "set", "lo", "up"]);
        }
        Lab { namespaces: names.iter().map(|s| s.to_string()).collect() }
    }

    /// A veth pair between two namespaces with an address on each end.
    fn link(&self, a: &str, a_if: &str, a_addr: &str, b: &str, b_if: &str, b_addr: &str) {
        ip(&["link", "add", a_if, "netns", a, "type", "veth", "peer", "name", b_if, "netns", b]);
        ip(&["-n", a, "addr", "add", a_addr, "dev", a_if]);
        ip(&["-n", b, "addr", "add", b_addr, "dev", b_if]);
        ip(&["-n", a, "link", "set", a_if, "up"]);
        ip(&["-n", b, "link", "set", b_if, "up"]);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for n in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

#[test]
fn two_namespaces_find_each_other_by_mdns_alone() {
    if let Err(why) = can_use_netns() {
        eprintln!("skipping mDNS namespace test: {why}");
        return;
    }
    let lab = Lab::new(&["kolo-mdns-a", "kolo-mdns-b"]);
    lab.link("kolo-mdns-a", "kma0", "10.77.1.1/24", "kolo-mdns-b", "kmb0", "10.77.1.2/24");
    let ana = Daemon::new(fresh_home("netns-mdns", "ana"), "ana", &["/ip4/10.77.1.1/tcp/0"], Some("kolo-mdns-a"), true);
    let bo = Daemon::new(fresh_home("netns-mdns", "bo"), "bo", &["/ip4/10.77.1.2/tcp/0"], Some("kolo-mdns-b"), true);
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
    let lab = Lab::new(&["kolo-relay-a", "kolo-relay-b", "kolo-relay-c"]);
    lab.link("kolo-relay-a", "kra1", "10.77.2.1/24", "kolo-relay-b", "krb0", "10.77.2.2/24");
    lab.link("kolo-relay-a", "kra2", "10.77.3.1/24", "kolo-relay-c", "krc0", "10.77.3.2/24");
    let unreachable = Command::new("ip")
        .args(["netns", "exec", "kolo-relay-c", "ping", "-c", "1", "-W", "1", "10.77.2.2"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| !s.success())
        .unwrap_or(true);
    assert!(unreachable, "Cy must not reach Bo directly");
    let ana = Daemon::new(
        fresh_home("netns-relay", "ana"),
        "ana",
        &["/ip4/10.77.2.1/tcp/0", "/ip4/10.77.3.1/tcp/0"],
        Some("kolo-relay-a"),
        false,
    );
    let bo = Daemon::new(fresh_home("netns-relay", "bo"), "bo", &["/ip4/10.77.2.2/tcp/0"], Some("kolo-relay-b"), false);
    let cy = Daemon::new(fresh_home("netns-relay", "cy"), "cy", &["/ip4/10.77.3.2/tcp/0"], Some("kolo-relay-c"), false);
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
