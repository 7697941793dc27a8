//! Three members with `--transport tor` on a private Tor network on
//! loopback (3 authorities, 5 relays; `tests/tor/private-net.sh`), inside
//! a fresh network namespace (`unshare -n`) so that nothing can reach the
//! public Tor network: create, invite (the code carries the inviter's
//! onion only), join, chat, remove, restart and catch up. Checked from
//! the sockets: no kolo listens anywhere but 127.0.0.1, and no kolo opens
//! a connection to another kolo (everything goes through tor).
//!
//! `cargo test` skips it, with the reason, when tor, tor-gencert or
//! network namespaces are not available.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kolo::api::{self, Request};

const INSIDE_ENV: &str = "KOLO_TOR_PRIVATE_INSIDE";

fn works(program: &str, args: &[&str]) -> bool {
    Command::new(program).args(args).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

fn skip_reason() -> Option<String> {
    if !works("tor", &["--version"]) {
        return Some("tor is not installed (apt-get install tor)".into());
    }
    if !works("tor-gencert", &["--help"]) && !Path::new("/usr/bin/tor-gencert").exists() {
        return Some("tor-gencert is not installed".into());
    }
    if !works("unshare", &["-n", "true"]) {
        return Some("cannot create a network namespace (unshare -n; needs root or user namespaces)".into());
    }
    if !works("ip", &["-V"]) || !works("ss", &["-V"]) {
        return Some("ip or ss (iproute2) is missing".into());
    }
    None
}

/// The outer test: build the private network in a fresh namespace and run
/// the inner test there.
#[test]
fn three_members_over_a_private_tor_network() {
    if std::env::var_os(INSIDE_ENV).is_some() {
        return; // We are the inner run; `inside_private_network` does the work.
    }
    if let Some(reason) = skip_reason() {
        eprintln!("tor_private skipped: {reason}");
        return;
    }
    let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tor_private");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tor/private-net.sh");
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new("unshare")
        .arg("-n")
        .arg(&script)
        .arg(work.join("net"))
        .arg(&exe)
        .args(["--exact", "inside_private_network", "--nocapture", "--test-threads=1"])
        .env(INSIDE_ENV, "1")
        .env("KOLO_TOR_PRIVATE_WORK", &work)
        .spawn()
        .unwrap();
    // Bounded: the network and three tors take ~1-2 minutes to come up.
    let deadline = Instant::now() + Duration::from_secs(900);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the private Tor network test did not finish in 15 minutes");
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(status.success(), "the run inside the private Tor network failed (logs in {})", work.display());
}

struct Member {
    name: String,
    home: PathBuf,
    child: Option<Child>,
}

impl Member {
    fn new(work: &Path, name: &str) -> Member {
        let home = work.join(name);
        let _ = std::fs::remove_dir_all(&home);
        common::init(&home, name);
        Member { name: name.into(), home, child: None }
    }

    fn start(&mut self) {
        let log = std::fs::File::create(self.home.join("daemon.out")).unwrap();
        let child = common::kolo(&self.home)
            .args(["daemon", "--transport", "tor", "--listen", "/ip4/127.0.0.1/tcp/0"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// Wait until its tor bootstrapped and its control socket answers.
    fn wait_ready(&self) {
        let ok = common::wait_until(300, || api::call(&self.home, &Request::Status).is_ok());
        let out = std::fs::read_to_string(self.home.join("daemon.out")).unwrap_or_default();
        assert!(ok, "{}'s daemon did not come up over tor:\n{out}", self.name);
        assert!(out.contains("tor is ready"), "{} reported no tor bootstrap:\n{out}", self.name);
    }

    fn stop(&mut self) {
        let _ = api::call(&self.home, &Request::Shutdown);
        if let Some(mut c) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(15);
            while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    fn call(&self, r: Request) -> serde_json::Value {
        api::call(&self.home, &r).unwrap_or_else(|e| panic!("{}: {r:?}: {e}", self.name))
    }

    fn texts(&self, circle: &str) -> Vec<String> {
        match api::call(&self.home, &Request::Messages { circle: circle.into() }) {
            Ok(v) => v.as_array().unwrap().iter().map(|m| m["text"].as_str().unwrap_or("").to_owned()).collect(),
            Err(_) => Vec::new(),
        }
    }

    fn wait_for_text(&self, circle: &str, text: &str, secs: u64) -> bool {
        common::wait_until(secs, || self.texts(circle).iter().any(|t| t == text))
    }

    /// Join with a fresh invite from `inviter`, retrying (a first onion
    /// connection can time out while descriptors propagate).
    fn join_through(&self, inviter: &Member, circle: &str) {
        for attempt in 1..=4 {
            let v = inviter.call(Request::Invite { circle: circle.into(), expires_secs: Some(1800), organiser: None });
            let code = v["code"].as_str().unwrap().to_owned();
            let invite = kolo::circle::InviteCode::parse(&code).unwrap();
            assert!(!invite.addresses.is_empty(), "the invite carries the inviter's address");
            for a in &invite.addresses {
                assert!(a.starts_with("/onion3/"), "a Tor invite carries onion addresses only, not {a}");
            }
            match api::call(&self.home, &Request::Join { code }) {
                Ok(v) => {
                    assert_eq!(v["name"], circle);
                    return;
                }
                Err(e) => eprintln!("{} join attempt {attempt}: {e}", self.name),
            }
        }
        panic!("{} could not join over tor", self.name);
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sockets (local port, remote port, state) of process `pid`, from `ss`.
fn sockets_of(pid: u32) -> Vec<(String, u16, u16, String)> {
    let out = Command::new("ss").args(["-Htanp"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let needle = format!("pid={pid},");
    text.lines()
        .filter(|l| l.contains(&needle))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let port = |s: &str| s.rsplit(':').next().and_then(|p| p.parse::<u16>().ok());
            let local_ip = f.get(3)?.rsplit_once(':')?.0.to_string();
            Some((local_ip, port(f.get(3)?)?, port(f.get(4)?).unwrap_or(0), f.first()?.to_string()))
        })
        .collect()
}

/// No kolo listens beyond loopback, and no kolo is connected to a port
/// another kolo listens on: members reach each other only through tor.
fn check_sockets(members: &[&Member]) {
    let mut listening: Vec<(u32, HashSet<u16>)> = Vec::new();
    for m in members {
        let socks = sockets_of(m.pid());
        let ports: HashSet<u16> = socks.iter().filter(|s| s.3 == "LISTEN").map(|s| s.1).collect();
        for s in socks.iter().filter(|s| s.3 == "LISTEN") {
            assert!(s.0 == "127.0.0.1", "{} listens on {}:{}", m.name, s.0, s.1);
        }
        listening.push((m.pid(), ports));
    }
    for m in members {
        for s in sockets_of(m.pid()).iter().filter(|s| s.3 == "ESTAB") {
            for (pid, ports) in &listening {
                assert!(
                    *pid == m.pid() || !ports.contains(&s.2),
                    "{} has a direct connection to another member (port {})",
                    m.name,
                    s.2
                );
            }
        }
    }
}

/// The inner test, run by the outer one inside the namespace.
#[test]
fn inside_private_network() {
    if std::env::var_os(INSIDE_ENV).is_none() || std::env::var_os("KOLO_TOR_EXTRA_TORRC").is_none() {
        eprintln!(
            "inside_private_network runs only inside the private Tor network (three_members_over_a_private_tor_network)"
        );
        return;
    }
    // Never start a tor outside the private network: only `lo` may exist
    // here (a fresh `unshare -n`), and the torrc must be the test network's.
    let links = Command::new("ip").args(["-o", "link", "show"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&links.stdout).lines().count(), 1, "not in a fresh network namespace");
    let extra = std::fs::read_to_string(std::env::var_os("KOLO_TOR_EXTRA_TORRC").unwrap()).unwrap_or_default();
    assert!(extra.contains("TestingTorNetwork 1"), "the torrc is not the private test network's");
    let work = PathBuf::from(std::env::var_os("KOLO_TOR_PRIVATE_WORK").unwrap()).join("members");
    std::fs::create_dir_all(&work).unwrap();
    let mut ana = Member::new(&work, "ana");
    let mut bo = Member::new(&work, "bo");
    let mut cy = Member::new(&work, "cy");
    let started = Instant::now();
    for m in [&mut ana, &mut bo, &mut cy] {
        m.start();
    }
    for m in [&ana, &bo, &cy] {
        m.wait_ready();
    }
    eprintln!("three tors bootstrapped in {:?}", started.elapsed());

    ana.call(Request::CircleCreate { name: "riverside".into(), disappear_secs: None });
    bo.join_through(&ana, "riverside");
    cy.join_through(&ana, "riverside");
    eprintln!("both joined after {:?}", started.elapsed());

    ana.call(Request::Send { circle: "riverside".into(), text: "hello over tor".into(), disappear_secs: None });
    for m in [&bo, &cy] {
        assert!(m.wait_for_text("riverside", "hello over tor", 240), "{} missed ana's message", m.name);
    }
    cy.call(Request::Send { circle: "riverside".into(), text: "cy here".into(), disappear_secs: None });
    assert!(ana.wait_for_text("riverside", "cy here", 240), "ana missed cy's message");
    eprintln!("chat works after {:?}", started.elapsed());
    check_sockets(&[&ana, &bo, &cy]);
    // The members list says honestly how members are linked: via Tor.
    let links = || -> Vec<String> {
        let v = ana.call(Request::Members { circle: "riverside".into() });
        v.as_array()
            .unwrap()
            .iter()
            .filter(|m| m["you"] == false)
            .map(|m| m["link"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(
        common::wait_until(120, || links().iter().any(|l| l == "tor")),
        "no member shown as linked via Tor: {:?}",
        links()
    );
    assert!(links().iter().all(|l| l == "tor" || l == "offline"), "a Tor circle's member shown as {:?}", links());

    // Remove cy; the others go on without her.
    ana.call(Request::Remove { circle: "riverside".into(), member: "cy".into() });
    ana.call(Request::Send { circle: "riverside".into(), text: "after cy left".into(), disappear_secs: None });
    assert!(bo.wait_for_text("riverside", "after cy left", 240), "bo missed the message after the removal");

    // bo restarts (same onion, key from the profile) and catches up.
    bo.stop();
    ana.call(Request::Send { circle: "riverside".into(), text: "while bo was away".into(), disappear_secs: None });
    bo.start();
    bo.wait_ready();
    assert!(bo.wait_for_text("riverside", "while bo was away", 300), "bo did not catch up over tor after a restart");
    assert!(
        !cy.texts("riverside").iter().any(|t| t == "after cy left" || t == "while bo was away"),
        "the removed member read a new message"
    );
    check_sockets(&[&ana, &bo, &cy]);
    eprintln!("done after {:?}", started.elapsed());
}
