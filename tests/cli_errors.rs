//! Bad input at the command line gets a one-line reason and a non-zero
//! exit, and loses nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const PASS: &str = "errors test passphrase";

fn home(name: &str) -> PathBuf {
    let h = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-errors").join(name);
    let _ = std::fs::remove_dir_all(&h);
    h
}

fn kolo(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kolo"))
        .args(args)
        .env("KOLO_HOME", home)
        .env("KOLO_PASSPHRASE", PASS)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn daemon(home: &Path) -> Child {
    let child = Command::new(env!("CARGO_BIN_EXE_kolo"))
        .args(["daemon", "--listen", "/ip4/127.0.0.1/tcp/0"])
        .env("KOLO_HOME", home)
        .env("KOLO_PASSPHRASE", PASS)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !kolo(home, &["status"]).status.success() {
        assert!(Instant::now() < deadline, "daemon did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    child
}

fn fails_with(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "expected failure: {err}");
    assert!(err.contains(needle), "expected {needle:?} in {err:?}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err:?}");
}

struct Kill(Vec<Child>);
impl Drop for Kill {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn every_mistake_gets_a_clear_one_line_answer() {
    let (a, b, c) = (home("a"), home("b"), home("c"));
    for (h, n) in [(&a, "ana"), (&b, "bo"), (&c, "cy")] {
        assert!(kolo(h, &["init", "--name", n]).status.success());
    }
    fails_with(&kolo(&a, &["status"]), "not running");
    let mut guard = Kill(vec![daemon(&a)]);
    fails_with(&kolo(&a, &["daemon", "--listen", "/ip4/127.0.0.1/tcp/0"]), "already running");
    guard.0.push(daemon(&b));
    guard.0.push(daemon(&c));

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
    for h in [&a, &b, &c] {
        let _ = kolo(h, &["stop"]);
    }
}
