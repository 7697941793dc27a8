//! What the CLI prints, through the binary, with real daemons on 127.0.0.1
//! (issue 16): outside text made safe for the terminal, timestamps and
//! timers, acknowledgements as a person's act, leaving, limits and
//! durations refused with the right figures, `stop` that waits.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Output;

use common::{Daemon, fresh_home, wait_until};
use kolo::api::Request;
use serde_json::Value;

fn kolo(home: &Path, args: &[&str]) -> Output {
    common::kolo(home).args(args).output().unwrap()
}

fn ok(home: &Path, args: &[&str]) -> String {
    let out = kolo(home, args);
    assert!(out.status.success(), "kolo {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn fails_with(out: &Output, needles: &[&str]) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "expected failure: {err}");
    for n in needles {
        assert!(err.contains(n), "expected {n:?} in {err:?}");
    }
    assert_eq!(err.trim().lines().count(), 1, "one line: {err:?}");
    err
}

/// Anything a terminal would act on: ESC, BEL, C1 controls, bidi controls.
fn assert_inert(what: &str, text: &str) {
    for c in text.chars() {
        let bad = (c.is_control() && c != '\n')
            || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}');
        assert!(!bad, "{what} prints U+{:04X}: {text:?}", c as u32);
    }
}

fn pinned_acks(d: &Daemon) -> Vec<String> {
    let v = d.call(Request::Circles);
    v[0]["pinned"]["acked_by"].as_array().into_iter().flatten().map(|n| n.as_str().unwrap().to_owned()).collect()
}

#[test]
fn the_cli_prints_outside_text_safely_and_says_what_it_did() {
    let ana = Daemon::loopback("cli-output", "ana");
    let mut bo = Daemon::loopback("cli-output", "bo");
    let (a, b) = (ana.home.clone(), bo.home.clone());
    ok(&a, &["circle", "create", "riverside"]);

    // Invites: the code alone on stdout, its expiry for people on stderr;
    // a code that is dead on arrival is refused.
    fails_with(&kolo(&a, &["invite", "riverside", "--expires", "0s"]), &["--expires must be longer than 0s"]);
    let out = kolo(&a, &["invite", "riverside", "--expires", "2h"]);
    assert!(out.status.success());
    let code = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(code.starts_with("kolo") && !code.contains(char::is_whitespace), "{code}");
    let note = String::from_utf8_lossy(&out.stderr);
    assert!(note.contains("valid once, until") && (note.contains(" 2h from now") || note.contains("1h 59m")), "{note}");
    ok(&b, &["join", &code]);

    // Durations of nothing are refused, not turned into "no timer" or the default.
    fails_with(&kolo(&a, &["send", "riverside", "x", "--disappear", "0s"]), &["--disappear must be longer than 0s"]);

    // Item 1: a 100 KB message is refused before anything is sent, with the figures.
    let big = "z".repeat(100_000);
    fails_with(&kolo(&a, &["send", "riverside", &big]), &["100000 characters", "100000 bytes", "limit is 60000 bytes"]);
    fails_with(
        &kolo(&a, &["announce", "riverside", "--title", "t", "--details", &big]),
        &["details", "100000 bytes", "60000 bytes"],
    );

    // Item 4: hostile text from a member: OSC 52 clipboard write, window
    // title, clear screen, cursor home, a bidi override, C1 CSI.
    let hostile =
        "pay \u{1b}]52;c;cm0gLXJmIH4=\u{7}now\u{1b}]0;pwned\u{7}\u{1b}[2J\u{1b}[Hclean \u{202E}gnp.exe\u{9b}31m!";
    ok(&b, &["send", "riverside", hostile]);
    ok(&b, &["send", "riverside", "line one\nana: forged line", "--disappear", "1h"]);
    assert!(ana.wait_for_text("riverside", "line one\nana: forged line", 60));
    assert!(ana.has_text("riverside", hostile), "the text itself is kept as sent");
    let shown = ok(&a, &["messages", "riverside"]);
    assert_inert("kolo messages", &shown);
    let line = shown.lines().find(|l| l.contains("pay")).expect(&shown);
    assert!(line.contains("bo: pay now") && line.contains("clean gnp.exe"), "{line}");
    // A timestamp, the sender right before the colon, no stray space.
    let stamp = line.split("  ").next().unwrap();
    assert!(stamp.len() == 16 && stamp.as_bytes()[4] == b'-' && stamp.as_bytes()[13] == b':', "{line}");
    assert!(!shown.contains(" :"), "{shown}");
    // A message's second line cannot pass for a message of its own.
    assert!(shown.lines().any(|l| l.starts_with("    ana: forged line  ⏳ until ")), "{shown}");
    assert!(!shown.lines().any(|l| l.starts_with("ana: ")), "{shown}");
    assert!(shown.contains("⏳ until"), "the disappearing marker:\n{shown}");

    // --json: one object per line, the same data, nothing a terminal acts on.
    let json = ok(&a, &["messages", "riverside", "--json"]);
    assert_inert("kolo messages --json", &json);
    let texts: Vec<String> =
        json.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["text"].as_str().unwrap().to_owned()).collect();
    assert!(texts.iter().any(|t| t == hostile), "a parser gets the text exactly");

    // Names from outside are cleaned too, and you are not "direct" to yourself.
    let members = ok(&a, &["members", "riverside"]);
    let me = members.lines().find(|l| l.contains("  ana  ")).expect(&members);
    assert!(me.contains("(you)") && !me.contains("direct"), "{members}");
    for line in ok(&a, &["members", "riverside", "--json"]).lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        if v["you"] == true {
            assert_eq!(v["link"], "you");
        }
    }

    // Item 5: acknowledging is a person's act. Bo reads the announcement
    // and says so in a message; his node has not acknowledged it by itself.
    ok(&a, &["announce", "riverside", "--title", "Assembly", "--when", "Sat 10:00", "--where", "square"]);
    assert!(bo.wait_for_text("riverside", "Assembly", 60));
    ok(&b, &["send", "riverside", "saw the announcement"]);
    assert!(ana.wait_for_text("riverside", "saw the announcement", 60));
    assert!(pinned_acks(&ana).is_empty(), "no automatic acknowledgement: {:?}", pinned_acks(&ana));
    let said = ok(&b, &["ack", "riverside"]);
    assert!(said.contains("acknowledged \"Assembly\""), "{said}");
    assert!(wait_until(60, || pinned_acks(&ana) == ["bo"]), "the organiser sees who acknowledged");
    fails_with(&kolo(&b, &["ack", "riverside"]), &["already acknowledged"]);
    fails_with(&kolo(&a, &["ack", "riverside"]), &["your own announcement"]);
    let listed = ok(&a, &["messages", "riverside"]);
    assert!(listed.contains("ana: 📌 Assembly | Sat 10:00 | square"), "{listed}");

    // The circle-wide timer from the CLI.
    fails_with(&kolo(&a, &["disappear", "riverside", "0s"]), &["longer than 0s"]);
    ok(&a, &["disappear", "riverside", "1d"]);
    assert!(ok(&a, &["circles"]).contains("messages disappear after 1d"));
    ok(&a, &["disappear", "riverside", "off"]);
    assert!(!ok(&a, &["circles"]).contains("disappear after"));

    // Item 3: the only organiser may not leave members behind without a manager.
    fails_with(&kolo(&a, &["leave", "riverside"]), &["only organiser", "--force"]);
    // Bo leaves, and Ana's node sees it.
    let said = ok(&b, &["leave", "riverside"]);
    assert!(said.contains("you left riverside"), "{said}");
    let gone = || !ana.call(Request::Members { circle: "riverside".into() }).to_string().contains("\"bo\"");
    assert!(wait_until(60, gone), "bo's leaving reached ana");
    assert!(ana.wait_for_text("riverside", "bo left the circle", 10));

    // `stop` returns once the process is gone.
    let pid = bo.pid().unwrap();
    let said = ok(&b, &["stop"]);
    assert!(said.contains("stopped"), "{said}");
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let running = state.rsplit(')').next().map(|s| s.trim_start().chars().next()).unwrap_or(None);
    assert!(matches!(running, None | Some('Z' | 'X')), "bo's node still runs after `kolo stop`: {state}");
    bo.stop();
}

#[test]
fn a_first_run_without_a_profile_says_so_first() {
    let home = fresh_home("cli-output", "nobody");
    for args in [&[][..], &["--listen", "/ip4/127.0.0.1/tcp/0"][..], &["chat"][..], &["daemon"][..]] {
        let out = common::kolo(&home).env_remove("KOLO_PASSPHRASE").args(args).output().unwrap();
        fails_with(&out, &["no kolo profile", "kolo init --name NAME"]);
    }
    assert!(!home.exists(), "nothing was created");
    // Node options before another command are a mistake, said so, not ignored.
    fails_with(&kolo(&home, &["--listen", "/ip4/127.0.0.1/tcp/0", "status"]), &["put them after `chat` or `daemon`"]);
    // Issue 16 item 9: a name members could not be shown is refused at init.
    for bad in ["", "a\u{1b}[2Jb", &"x".repeat(300)] {
        fails_with(&kolo(&home, &["init", "--name", bad]), &["invalid name"]);
    }
    assert!(!home.exists(), "nothing was created");
}

/// Issue 16, item 6: `kolo circles`, `messages`, `members` and `status`
/// with no node running read the profile themselves (v1: "kolo is not
/// running ... start it with `kolo daemon`", a node listening on the
/// network just to answer). What needs the network still asks for the node,
/// and the profile is free again afterwards.
#[test]
fn reading_commands_work_without_a_running_node() {
    let mut ana = Daemon::loopback("cli-offline", "ana");
    ok(&ana.home, &["circle", "create", "riverside"]);
    ok(&ana.home, &["send", "riverside", "written while the node ran"]);
    ana.stop();
    let home = ana.home.clone();
    assert!(ok(&home, &["circles"]).contains("riverside"));
    assert!(ok(&home, &["messages", "riverside"]).contains("written while the node ran"));
    assert!(ok(&home, &["members", "riverside"]).contains("ana"));
    ok(&home, &["status"]);
    fails_with(&kolo(&home, &["send", "riverside", "no node"]), &["not running"]);
    // The lock went with the command: the node starts again.
    ana.start();
    assert!(ana.has_text("riverside", "written while the node ran"));
}
