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

/// The control socket of a real daemon answers a line it cannot read with
/// a JSON-RPC parse error whose id is null (it used to say `"id": 0`, an
/// id no request had), and echoes the id of a request it refuses.
#[test]
fn the_control_socket_echoes_ids_and_gives_null_for_unreadable_lines() {
    use std::io::{BufRead, BufReader, Write};
    let ana = Daemon::loopback("socket-ids", "ana");
    let stream = std::os::unix::net::UnixStream::connect(kolo::api::socket_path(&ana.home)).unwrap();
    stream.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut ask = |line: &str| {
        (&stream).write_all(format!("{line}\n").as_bytes()).unwrap();
        let mut answer = String::new();
        reader.read_line(&mut answer).unwrap();
        serde_json::from_str::<serde_json::Value>(&answer).unwrap()
    };
    let v = ask("{\"id\": 7, \"cmd\": ");
    assert!(v.get("id").is_some_and(|id| id.is_null()), "{v}");
    assert_eq!(v["error"]["code"], -32700, "{v}");
    let v = ask(r#"{"jsonrpc":"2.0","id":41,"method":"messages","params":{"circle":"nowhere"}}"#);
    assert_eq!(v["id"], 41, "{v}");
    assert_eq!(v["error"]["code"], -32001, "{v}");
    let v = ask(r#"{"jsonrpc":"2.0","id":"h","method":"hello"}"#);
    assert_eq!((v["id"].as_str(), v["result"]["api_version"].as_u64()), (Some("h"), Some(1)), "{v}");
}

/// `examples/echo_bot.rs` against a real daemon: the bot (its logic,
/// `kolo::api::echo::run`) subscribes on Ana's node, Bo writes in the
/// circle, and Bo reads the echo. The bot answers Bo's message only once
/// and never its own echo.
#[test]
fn the_echo_bot_answers_over_a_subscription() {
    use kolo::api::{Client, Endpoint, echo};
    let mut ana = Daemon::loopback("echo-bot", "ana");
    let bo = Daemon::loopback("echo-bot", "bo");
    ana.call(Request::CircleCreate { name: "riverside".into(), disappear_secs: None });
    let code = ana.invite("riverside");
    bo.call(Request::Join { code });

    let mut client = Client::open(&Endpoint::for_profile(&ana.home, false), &ana.home).unwrap();
    // Subscribed before Bo writes, so the bot cannot miss it (the bot's
    // own subscribe on the same connection changes nothing).
    client.subscribe().unwrap();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(180);
    let bot = std::thread::spawn(move || {
        echo::run(&mut client, echo::Limits { max_echoes: Some(5), until: Some(until) }, |_, _| {})
    });
    bo.send("riverside", "ping from bo");
    assert!(bo.wait_for_text("riverside", "echo: ping from bo", 90), "no echo arrived: {:?}", bo.texts("riverside"));
    // Stopping the node ends the bot (its connection closes).
    ana.stop();
    let report = bot.join().unwrap().unwrap();
    assert_eq!(report.echoes, 1, "one message, one echo: {report:?}");
    assert_eq!(report.refused, 0);
    let echoes = bo.texts("riverside").iter().filter(|t| t.starts_with("echo: ")).count();
    assert_eq!(echoes, 1, "{:?}", bo.texts("riverside"));
}

/// Issue 16, item 6: the terminal client beside a running `kolo daemon`
/// (v1 refused with "already running"). `kolo::api::attach` gives the
/// client a node over the control socket; the client's model is driven
/// with it exactly as the terminal runtime drives it (keys in, requests
/// out, answers and pushed events back), without a terminal.
#[test]
fn the_chat_attaches_to_a_running_daemon_and_leaves_it_running() {
    use kolo::api::{Endpoint, attach};
    use kolo::ui::keymap::{Key, KeyCode, Keymap};
    use kolo::ui::model::{App, Effect};
    use std::time::{Duration, Instant};

    let ana = Daemon::loopback("attach", "ana");
    let bo = Daemon::loopback("attach", "bo");
    ana.call(Request::CircleCreate { name: "riverside".into(), disappear_secs: None });
    let code = ana.invite("riverside");
    bo.call(Request::Join { code });

    let mut attached = attach(&Endpoint::for_profile(&ana.home, false), &ana.home).unwrap();
    let mut app = App::new(Keymap::default());
    // Carry out the model's effects, then take pushed events, until
    // `done` holds or the time is up.
    let mut drive = |app: &mut App, mut effects: Vec<Effect>, secs: u64, done: &dyn Fn(&App) -> bool| -> bool {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            while let Some(effect) = effects.pop() {
                if let Effect::Request(tag, request) = effect {
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    attached.requests.blocking_send((request, tx)).unwrap();
                    let answer = rx.blocking_recv().unwrap().map_err(|f| f.message);
                    effects.extend(app.reply(tag, answer));
                }
            }
            if done(app) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            match attached.events.try_recv() {
                Ok(event) => effects.extend(app.event(&event, kolo::clock::now_ms())),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    };
    let has =
        |text: &'static str| move |app: &App| app.circles.iter().any(|c| c.messages.iter().any(|m| m.text == text));
    let started = app.start();
    assert!(drive(&mut app, started, 30, &|app: &App| app.circles.iter().any(|c| c.name == "riverside")));

    // Written in the attached chat: the running node sends it.
    let mut effects = Vec::new();
    for c in "written in the attached chat".chars() {
        effects.extend(app.key(Key::plain(KeyCode::Char(c))));
    }
    effects.extend(app.key(Key::plain(KeyCode::Enter)));
    assert!(drive(&mut app, effects, 30, &has("written in the attached chat")));
    assert!(bo.wait_for_text("riverside", "written in the attached chat", 90), "{:?}", bo.texts("riverside"));

    // Bo's answer reaches the attached chat as a pushed event.
    bo.send("riverside", "bo answers");
    assert!(drive(&mut app, Vec::new(), 90, &has("bo answers")), "the attached chat never showed bo's message");

    // Quitting the chat (dropping its ends) leaves the node running.
    drop(attached);
    std::thread::sleep(Duration::from_millis(800));
    assert!(ana.has_text("riverside", "bo answers"), "the node stopped with the chat");
}
