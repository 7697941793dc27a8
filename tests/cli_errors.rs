//! Bad input at the command line gets a one-line reason and a non-zero
//! exit, and loses nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::{Daemon, fresh_home};

fn kolo(home: &Path, args: &[&str]) -> Output {
    common::kolo(home).args(args).output().unwrap()
}

fn fails_with(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "expected failure: {err}");
    assert!(err.contains(needle), "expected {needle:?} in {err:?}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err:?}");
}

#[test]
fn every_mistake_gets_a_clear_one_line_answer() {
    let idle = fresh_home("cli-errors", "idle");
    common::init(&idle, "idle");
    fails_with(&kolo(&idle, &["send", "riverside", "hi"]), "not running");
    let ana = Daemon::loopback("cli-errors", "ana");
    let bo = Daemon::loopback("cli-errors", "bo");
    let cy = Daemon::loopback("cli-errors", "cy");
    let (a, b, c) = (ana.home.clone(), bo.home.clone(), cy.home.clone());
    fails_with(&kolo(&a, &["daemon", "--listen", "/ip4/127.0.0.1/tcp/0"]), "already running");

    assert!(kolo(&a, &["circle", "create", "riverside"]).status.success());
    fails_with(&kolo(&a, &["send", "nosuch", "hi"]), "no circle");
    fails_with(&kolo(&a, &["remove", "riverside", "zed"]), "no member");
    fails_with(&kolo(&a, &["send", "riverside", "x", "--disappear", "soon"]), "not a duration");
    fails_with(&kolo(&b, &["join", "hello"]), "not a kolo invite");

    let code = String::from_utf8(kolo(&a, &["invite", "riverside"]).stdout).unwrap().trim().to_owned();
    let mut typo: Vec<char> = code.chars().collect();
    typo[20] = if typo[20] == 'a' { 'b' } else { 'a' };
    fails_with(&kolo(&b, &["join", &typo.into_iter().collect::<String>()]), "damaged");
    assert!(kolo(&b, &["join", &code]).status.success());
    // The same code again, by someone else: refused, with the reason.
    fails_with(&kolo(&c, &["join", &code]), "already used");

    let short =
        String::from_utf8(kolo(&a, &["invite", "riverside", "--expires", "1s"]).stdout).unwrap().trim().to_owned();
    std::thread::sleep(Duration::from_millis(1500));
    fails_with(&kolo(&c, &["join", &short]), "expired");

    // A plain member cannot remove or announce.
    fails_with(&kolo(&b, &["remove", "riverside", "ana"]), "only organisers");
    fails_with(&kolo(&b, &["announce", "riverside", "--title", "x"]), "only organisers");
    // Nothing was lost on the way.
    assert!(kolo(&a, &["send", "riverside", "still fine"]).status.success());
    let out = kolo(&a, &["messages", "riverside", "--json"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("still fine"));
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        for key in ["id", "circle", "kind", "sender", "sender_fingerprint", "text", "sent_at", "expires_at", "verified"]
        {
            assert!(v.get(key).is_some(), "messages --json lacks {key}");
        }
    }
    let out = kolo(&a, &["members", "riverside", "--json"]);
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        for key in ["name", "fingerprint", "role", "online", "verified"] {
            assert!(v.get(key).is_some(), "members --json lacks {key}");
        }
    }
}
