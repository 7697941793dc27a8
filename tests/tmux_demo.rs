//! A real terminal: `kolo demo` under tmux. It waits for the scripted
//! members, sends a line as a user would, checks what is on the screen,
//! quits with the key the help names, and checks the shell got its
//! terminal back. Skips with a reason where tmux is missing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::time::{Duration, Instant};

mod common;

struct Session(String);

impl Drop for Session {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["kill-session", "-t", &self.0]).output();
    }
}

fn tmux(args: &[&str]) -> String {
    let out = Command::new("tmux").args(args).output().expect("run tmux");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wait_for(session: &str, what: &[&str], limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let screen = tmux(&["capture-pane", "-p", "-t", session]);
        if what.iter().all(|w| screen.contains(w)) {
            return screen;
        }
        assert!(Instant::now() < deadline, "waited {limit:?} for {what:?}; the screen shows:\n{screen}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One demo at a time: two (four nodes and a terminal each) on two loaded
/// cores made the first test miss its screen (CI, 2026-12-03).
static ONE_DEMO: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn the_demo_runs_in_a_real_terminal_and_gives_it_back() {
    let _one = ONE_DEMO.lock().unwrap_or_else(|e| e.into_inner());
    if Command::new("tmux").arg("-V").output().map(|o| !o.status.success()).unwrap_or(true) {
        println!("SKIPPED: tmux is not installed");
        return;
    }
    let name = format!("kolo-test-{}", std::process::id());
    let home = std::env::temp_dir().join(format!("kolo-tmux-home-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&home);
    // The shell prints a marker after kolo exits, proving it has its terminal back.
    let command = format!(
        "KOLO_HOME={} {} demo; stty -a >/dev/null && echo SHELL-IS-BACK; sleep 30",
        home.display(),
        env!("CARGO_BIN_EXE_kolo")
    );
    let status = Command::new("tmux")
        .args(["new-session", "-d", "-s", &name, "-x", "130", "-y", "40", &command])
        .status()
        .expect("start tmux");
    assert!(status.success(), "tmux could not start a session");
    let session = Session(name.clone());

    let screen = wait_for(&name, &["Who is coming to the assembly", "📌 Assembly"], Duration::from_secs(60));
    assert!(screen.contains("riverside"), "{screen}");

    tmux(&["send-keys", "-t", &name, "-l", "Hello from the test 👋"]);
    tmux(&["send-keys", "-t", &name, "Enter"]);
    let screen =
        wait_for(&name, &["you: Hello from the test", "Noted: \"Hello from the test"], Duration::from_secs(30));
    assert!(screen.contains("📌"), "the announcement stays pinned:\n{screen}");
    // The scripted members acknowledge explicitly; the pinned line shows it.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let screen = tmux(&["capture-pane", "-p", "-t", &name]);
        if screen.lines().any(|l| l.contains("acknowledged by") && l.contains("Bongani")) {
            break;
        }
        assert!(Instant::now() < deadline, "no acknowledgement on the pinned line:\n{screen}");
        std::thread::sleep(Duration::from_millis(200));
    }

    // The help names the quit key; use the first one it lists.
    tmux(&["send-keys", "-t", &name, "F1"]);
    let help = wait_for(&name, &["quit kolo"], Duration::from_secs(10));
    let line = help.lines().find(|l| l.contains("quit kolo")).unwrap_or_default();
    let quit = line.trim_start_matches(['│', ' ']).split([',', ' ']).next().unwrap_or("ctrl-q");
    assert!(quit.starts_with("ctrl-"), "expected a ctrl key for quit, help says: {line}");
    tmux(&["send-keys", "-t", &name, "Escape"]);
    let tmux_key = format!("C-{}", &quit["ctrl-".len()..]);
    tmux(&["send-keys", "-t", &name, &tmux_key]);
    wait_for(&name, &["SHELL-IS-BACK"], Duration::from_secs(20));
    let alternate = tmux(&["display-message", "-p", "-t", &name, "#{alternate_on}"]);
    assert_eq!(alternate.trim(), "0", "the terminal left the alternate screen");
    drop(session);
    assert!(std::fs::read_dir(&home).map(|d| d.count() == 0).unwrap_or(true), "the demo wrote into the home");
    let _ = std::fs::remove_dir_all(&home);
}

/// Issue 16 item 12, in a real terminal: space pauses the demo's script
/// (the status line says so and the next scripted line does not come), n
/// runs the next step, space resumes.
#[test]
fn a_trainer_pauses_and_steps_the_demo_script() {
    let _one = ONE_DEMO.lock().unwrap_or_else(|e| e.into_inner());
    if Command::new("tmux").arg("-V").output().map(|o| !o.status.success()).unwrap_or(true) {
        println!("SKIPPED: tmux is not installed");
        return;
    }
    let name = format!("kolo-pace-{}", std::process::id());
    let home = std::env::temp_dir().join(format!("kolo-pace-home-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&home);
    let command = format!("KOLO_HOME={} {} demo; sleep 30", home.display(), env!("CARGO_BIN_EXE_kolo"));
    let status = Command::new("tmux")
        .args(["new-session", "-d", "-s", &name, "-x", "130", "-y", "40", &command])
        .status()
        .expect("start tmux");
    assert!(status.success(), "tmux could not start a session");
    let session = Session(name.clone());
    wait_for(&name, &["Welcome, everyone"], Duration::from_secs(60));
    tmux(&["send-keys", "-t", &name, "Space"]);
    let at_pause = wait_for(&name, &["⏸"], Duration::from_secs(10));
    // A step the script sent just before the key (its message still on
    // its way through the members' nodes) may still arrive: the pause
    // holds the *next* step. That was the CI failure of 2026-12-02. Let
    // what is in flight land, then nothing more may come.
    std::thread::sleep(Duration::from_secs(6));
    // The script's opening, in order, each step 2.5 s after the last; under
    // load the terminal may show "Welcome" only when the script is some
    // steps further on, so the hold is checked on the later steps too.
    let script = ["Who is coming to the assembly", "Me. I'll bring the banner", "📌 Assembly"];
    let later = ["The door code for the back room", "Chen's phone was taken"];
    let shown = |screen: &str| -> Vec<bool> { script.iter().chain(&later).map(|l| screen.contains(l)).collect() };
    let before = tmux(&["capture-pane", "-p", "-t", &name]);
    // Paused, the script waits for us.
    std::thread::sleep(Duration::from_secs(8));
    let still = tmux(&["capture-pane", "-p", "-t", &name]);
    assert_eq!(shown(&before), shown(&still), "the paused script went on by itself:\n{at_pause}\n{still}");
    match script.iter().position(|l| !still.contains(l)) {
        Some(next) => {
            tmux(&["send-keys", "-t", &name, "n"]);
            let stepped = wait_for(&name, &[script[next]], Duration::from_secs(20));
            // The status line says "paused" (shortened where the line is full).
            assert!(stepped.contains("⏸"), "after a step the script stays paused:\n{stepped}");
            if let Some(after) = script.get(next + 1) {
                std::thread::sleep(Duration::from_secs(6));
                let held = tmux(&["capture-pane", "-p", "-t", &name]);
                assert!(!held.contains(after), "after one step the script went on by itself:\n{held}");
            }
        }
        None => println!("the terminal showed the opening late; the hold was checked on the later steps"),
    }
    tmux(&["send-keys", "-t", &name, "Space"]);
    wait_for(&name, &["Chen's phone was taken"], Duration::from_secs(60));
    let resumed = tmux(&["capture-pane", "-p", "-t", &name]);
    assert!(!resumed.contains("⏸"), "resumed, the status line still says paused:\n{resumed}");
    tmux(&["send-keys", "-t", &name, "C-q"]);
    drop(session);
    let _ = std::fs::remove_dir_all(&home);
}

/// Issue 16, item 6, in a real terminal: `kolo chat` while `kolo daemon`
/// runs for the profile attaches to it (v1: "kolo is already running"),
/// sends what is typed through it, and on quit leaves it running.
#[test]
fn kolo_chat_attaches_to_the_running_daemon() {
    let _one = ONE_DEMO.lock().unwrap_or_else(|e| e.into_inner());
    if Command::new("tmux").arg("-V").output().map(|o| !o.status.success()).unwrap_or(true) {
        println!("SKIPPED: tmux is not installed");
        return;
    }
    let ana = common::Daemon::loopback("tmux-attach", "ana");
    ana.call(kolo::api::Request::CircleCreate { name: "riverside".into(), disappear_secs: None });
    let name = format!("kolo-attach-{}", std::process::id());
    let command = format!(
        "KOLO_HOME={} KOLO_PASSPHRASE='{}' {} chat; echo CHAT-ENDED; sleep 30",
        ana.home.display(),
        common::PASS,
        env!("CARGO_BIN_EXE_kolo")
    );
    let status = Command::new("tmux")
        .args(["new-session", "-d", "-s", &name, "-x", "120", "-y", "36", &command])
        .status()
        .expect("start tmux");
    assert!(status.success(), "tmux could not start a session");
    let session = Session(name.clone());
    let screen = wait_for(&name, &["riverside"], Duration::from_secs(30));
    assert!(!screen.contains("already running"), "{screen}");
    tmux(&["send-keys", "-t", &name, "-l", "typed beside the daemon"]);
    tmux(&["send-keys", "-t", &name, "Enter"]);
    assert!(ana.wait_for_text("riverside", "typed beside the daemon", 30), "the running node did not send it");
    wait_for(&name, &["you: typed beside the daemon"], Duration::from_secs(30));
    tmux(&["send-keys", "-t", &name, "C-q"]);
    wait_for(&name, &["CHAT-ENDED"], Duration::from_secs(20));
    drop(session);
    assert!(kolo::api::call(&ana.home, &kolo::api::Request::Status).is_ok(), "quitting the chat stopped the node");
}
