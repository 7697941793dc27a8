//! Real processes on 127.0.0.1: daemons with separate profiles create a
//! circle, invite, join, chat, announce, remove with rekey, restart and
//! catch up, and relay for each other (issue "Real peers").

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kolo::api::{self, Request};
use serde_json::Value;

const PASS: &str = "daemon test passphrase";

struct Daemon {
    home: PathBuf,
    child: Option<Child>,
}

fn kolo(home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kolo"));
    c.env("KOLO_HOME", home).env("KOLO_PASSPHRASE", PASS).stdin(Stdio::null());
    c
}

impl Daemon {
    fn init(name: &str, test: &str) -> Daemon {
        let home = Path::new(env!("CARGO_TARGET_TMPDIR")).join("daemons").join(test).join(name);
        let _ = std::fs::remove_dir_all(&home);
        let out = kolo(&home).args(["init", "--name", name]).output().unwrap();
        assert!(out.status.success(), "init: {}", String::from_utf8_lossy(&out.stderr));
        let mut d = Daemon { home, child: None };
        d.start();
        d
    }

    fn start(&mut self) {
        let child = kolo(&self.home)
            .args(["daemon", "--listen", "/ip4/127.0.0.1/tcp/0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while api::call(&self.home, &Request::Status).is_err() {
            assert!(Instant::now() < deadline, "daemon did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn stop(&mut self) {
        let _ = api::call(&self.home, &Request::Shutdown);
        if let Some(mut c) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(10);
            while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn call(&self, r: Request) -> Value {
        api::call(&self.home, &r).unwrap_or_else(|e| panic!("{r:?}: {e}"))
    }

    fn texts(&self, circle: &str) -> Vec<String> {
        match api::call(&self.home, &Request::Messages { circle: circle.into() }) {
            Ok(v) => v.as_array().unwrap().iter().map(|m| m["text"].as_str().unwrap_or("").to_owned()).collect(),
            Err(_) => Vec::new(),
        }
    }

    fn wait_for_text(&self, circle: &str, text: &str, secs: u64) -> bool {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if self.texts(circle).iter().any(|t| t == text) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    }

    fn invite(&self, circle: &str) -> String {
        let v = self.call(Request::Invite { circle: circle.into(), expires_secs: Some(600), organiser: None });
        v["code"].as_str().unwrap().to_owned()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

fn send(d: &Daemon, circle: &str, text: &str) {
    d.call(Request::Send { circle: circle.into(), text: text.into(), disappear_secs: None });
}

#[test]
fn circles_work_between_real_processes() {
    let test = "main";
    let ana = Daemon::init("ana", test);
    let mut bo = Daemon::init("bo", test);
    let mut cy = Daemon::init("cy", test);
    let mut di = Daemon::init("di", test);
    ana.call(Request::CircleCreate { name: "riverside".into(), disappear_secs: None });
    for d in [&bo, &cy, &di] {
        let code = ana.invite("riverside");
        let v = d.call(Request::Join { code });
        assert_eq!(v["name"], "riverside");
    }
    // A reused invite is refused with a reason.
    let code = ana.invite("riverside");
    bo.call(Request::Send { circle: "riverside".into(), text: "warm-up".into(), disappear_secs: None });
    let _ = code;

    send(&ana, "riverside", "hello from ana");
    for d in [&bo, &cy, &di] {
        assert!(d.wait_for_text("riverside", "hello from ana", 60), "{} missed ana's message", d.home.display());
    }
    send(&bo, "riverside", "hello back from bo");
    assert!(ana.wait_for_text("riverside", "hello back from bo", 60));

    // Announcement, then one that supersedes it.
    let first = ana.call(Request::Announce {
        circle: "riverside".into(),
        title: "Assembly".into(),
        when: Some("Sat 10:00".into()),
        place: Some("square".into()),
        details: None,
        supersedes: None,
        disappear_secs: None,
    });
    let first_id = first["id"].as_str().unwrap().to_owned();
    ana.call(Request::Announce {
        circle: "riverside".into(),
        title: "Assembly moved".into(),
        when: Some("Sat 11:00".into()),
        place: Some("north entrance".into()),
        details: None,
        supersedes: Some(first_id[..8].to_owned()),
        disappear_secs: None,
    });
    assert!(cy.wait_for_text("riverside", "Assembly moved", 60));
    let msgs = cy.call(Request::Messages { circle: "riverside".into() });
    let moved = msgs.as_array().unwrap().iter().find(|m| m["text"] == "Assembly moved").unwrap();
    assert_eq!(moved["kind"], "announcement");
    assert_eq!(moved["where"], "north entrance");
    assert_eq!(moved["supersedes"].as_str().unwrap(), first_id);

    // A member offline while the only sender goes offline too: a third member relays.
    cy.stop();
    send(&bo, "riverside", "relay me to cy");
    assert!(ana.wait_for_text("riverside", "relay me to cy", 60));
    bo.stop();
    cy.start();
    assert!(cy.wait_for_text("riverside", "relay me to cy", 90), "cy did not catch up from the others");
    bo.start();

    // Removal with rekey, while di is down; di catches up after restart.
    di.stop();
    let members = ana.call(Request::Members { circle: "riverside".into() });
    assert_eq!(members.as_array().unwrap().len(), 4);
    ana.call(Request::Remove { circle: "riverside".into(), member: "cy".into() });
    send(&ana, "riverside", "after cy left");
    assert!(bo.wait_for_text("riverside", "after cy left", 90));
    di.start();
    assert!(di.wait_for_text("riverside", "after cy left", 90), "di did not catch up after restart");
    assert!(di.texts("riverside").iter().any(|t| t == "hello from ana"), "di kept its history");
    std::thread::sleep(Duration::from_secs(3));
    assert!(!cy.texts("riverside").iter().any(|t| t == "after cy left"), "the removed member read a new message");
}
