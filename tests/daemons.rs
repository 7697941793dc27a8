//! Real processes on 127.0.0.1: daemons with separate profiles create a
//! circle, invite, join, chat, announce, remove with rekey, restart and
//! catch up, and relay for each other (issue "Real peers").

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Daemon;
use kolo::api::Request;

#[test]
fn circles_work_between_real_processes() {
    let ana = Daemon::loopback("daemons", "ana");
    let mut bo = Daemon::loopback("daemons", "bo");
    let mut cy = Daemon::loopback("daemons", "cy");
    let mut di = Daemon::loopback("daemons", "di");
    ana.call(Request::CircleCreate { name: "riverside".into(), disappear_secs: None });
    for d in [&bo, &cy, &di] {
        let code = ana.invite("riverside");
        let v = d.call(Request::Join { code });
        assert_eq!(v["name"], "riverside");
    }
    ana.send("riverside", "hello from ana");
    for d in [&bo, &cy, &di] {
        assert!(d.wait_for_text("riverside", "hello from ana", 60), "{} missed ana's message", d.home.display());
    }
    bo.send("riverside", "hello back from bo");
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
    bo.send("riverside", "relay me to cy");
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
    ana.send("riverside", "after cy left");
    assert!(bo.wait_for_text("riverside", "after cy left", 90));
    di.start();
    assert!(di.wait_for_text("riverside", "after cy left", 90), "di did not catch up after restart");
    assert!(di.texts("riverside").iter().any(|t| t == "hello from ana"), "di kept its history");
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert!(!cy.texts("riverside").iter().any(|t| t == "after cy left"), "the removed member read a new message");
}
