//! A seized laptop (issue #15) and a panic that must stop the node (issue
//! #16 item 2), with real `kolo` processes: the environment, core dumps and
//! memory of a running node; `kolo panic` and the duress passphrase while
//! a node runs; the small leaks (permissions, files touched before the
//! passphrase is known, SQLCipher's stderr, addresses in debug logs).
//! The device-level carve is in tests/raw_image.rs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, SystemTime};

use common::{Daemon, PASS, fresh_home, kolo, wait_until};
use kolo::api::{self, Request};

const DURESS: &str = "duress passphrase, not a real one";

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `kolo daemon` on 127.0.0.1 for `home` with `pass`, started in `cwd`.
fn spawn_daemon(home: &Path, pass: &str, cwd: &Path, env: &[(&str, &str)]) -> Child {
    std::fs::create_dir_all(cwd).unwrap();
    Command::new(env!("CARGO_BIN_EXE_kolo"))
        .args(["daemon", "--listen", "/ip4/127.0.0.1/tcp/0"])
        .env("KOLO_HOME", home)
        .env("KOLO_PASSPHRASE", pass)
        .envs(env.iter().copied())
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn wait_up(home: &Path) {
    assert!(wait_until(30, || api::call(home, &Request::Status).is_ok()), "no node answers for {}", home.display());
}

/// Whether process `pid` has exited (gone, or a zombie nobody reaped yet).
fn exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// (name, size, mtime) of every entry of a profile directory.
fn entries(dir: &Path) -> Vec<(String, u64, SystemTime)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            let m = e.metadata().unwrap();
            (e.file_name().to_string_lossy().into_owned(), m.len(), m.modified().unwrap())
        })
        .collect();
    v.sort();
    v
}

fn stop(home: &Path, child: &mut Child) {
    let _ = api::call(home, &Request::Shutdown);
    let _ = wait_until(10, || child.try_wait().ok().flatten().is_some());
    let _ = child.kill();
    let _ = child.wait();
}

// -- panic and duress with a running node ---------------------------------

#[test]
fn panic_with_a_running_node_stops_it_and_leaves_nothing() {
    let d = Daemon::loopback("seizure", "panic-running");
    d.call(Request::CircleCreate { name: "cafe".into(), disappear_secs: None });
    d.send("cafe", "the whole history");
    std::fs::write(d.home.join("keys.conf"), "ctrl-x = quit\n").unwrap();
    let pid = d.pid().unwrap();
    let out = kolo(&d.home).args(["panic", "--yes"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("profile destroyed"));
    assert!(exited(pid), "the node is still running after panic");
    assert!(api::call(&d.home, &Request::Messages { circle: "cafe".into() }).is_err());
    assert!(!d.home.exists(), "left behind: {:?}", std::fs::read_dir(&d.home).map(|r| r.count()));
}

#[test]
fn the_duress_passphrase_from_another_process_stops_the_node_and_leaves_a_fresh_looking_profile() {
    let home = fresh_home("seizure", "duress-running");
    common::init(&home, "Ana");
    let out = kolo(&home).arg("duress").env("KOLO_DURESS_PASSPHRASE", DURESS).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let cwd = home.with_extension("cwd");
    let mut first = spawn_daemon(&home, PASS, &cwd, &[]);
    wait_up(&home);
    api::call(&home, &Request::CircleCreate { name: "cafe".into(), disappear_secs: None }).unwrap();
    let first_pid = first.id();

    // Timestamps of the old profile are at least a second older than anything new.
    std::thread::sleep(Duration::from_millis(1100));
    let before = SystemTime::now();
    let mut second = spawn_daemon(&home, DURESS, &cwd, &[]);
    assert!(wait_until(30, || first.try_wait().ok().flatten().is_some()), "the first node did not stop");
    assert!(exited(first_pid));
    wait_up(&home);
    let status = api::call(&home, &Request::Status).unwrap();
    assert_eq!(status["name"], "Ana");
    assert!(status["circles"].as_array().unwrap().is_empty(), "{status}");
    stop(&home, &mut second);

    // A profile made from scratch that ran a node once, for comparison.
    let fresh = fresh_home("seizure", "duress-reference");
    common::init(&fresh, "Ana");
    let mut node = spawn_daemon(&fresh, PASS, &cwd, &[]);
    wait_up(&fresh);
    stop(&fresh, &mut node);

    let shape = |d: &Path| entries(d).into_iter().map(|(n, s, _)| (n, s)).collect::<Vec<_>>();
    assert_eq!(shape(&home), shape(&fresh), "file set or sizes differ from a fresh profile");
    for (name, _, mtime) in entries(&home) {
        assert!(mtime >= before, "{name} is older than the duress");
    }
    let dir_meta = std::fs::metadata(&home).unwrap();
    assert!(dir_meta.modified().unwrap() >= before, "the directory is older than the duress");
    // The real passphrase opens nothing any more.
    let out = kolo(&home).arg("passphrase").env("KOLO_NEW_PASSPHRASE", "x").output().unwrap();
    assert!(stderr(&out).contains("wrong passphrase"), "{}", stderr(&out));
}

#[test]
fn passphrase_and_duress_refuse_while_a_node_runs() {
    let d = Daemon::loopback("seizure", "refuse-running");
    let header = std::fs::read(d.home.join("profile.header")).unwrap();
    let out = kolo(&d.home).arg("passphrase").env("KOLO_NEW_PASSPHRASE", "new one").output().unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("running"), "{}", stderr(&out));
    let out = kolo(&d.home).arg("duress").env("KOLO_DURESS_PASSPHRASE", DURESS).output().unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("running"), "{}", stderr(&out));
    assert_eq!(std::fs::read(d.home.join("profile.header")).unwrap(), header, "the header changed under the node");
}

// -- small leaks ------------------------------------------------------------

#[test]
fn a_wrong_passphrase_touches_no_file_and_profile_files_are_owner_only() {
    let home = fresh_home("seizure", "wrong-pass");
    common::init(&home, "Ana");
    // As an older build left them: world-readable.
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(home.join("profile.db"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let before = entries(&home);
    let cwd = home.with_extension("cwd");
    let mut wrong = spawn_daemon(&home, "not the passphrase", &cwd, &[]);
    let status = wrong.wait().unwrap();
    assert!(!status.success());
    assert_eq!(entries(&home), before, "a wrong passphrase created or changed files");

    let mut node = spawn_daemon(&home, PASS, &cwd, &[]);
    wait_up(&home);
    stop(&home, &mut node);
    assert_eq!(std::fs::metadata(&home).unwrap().permissions().mode() & 0o777, 0o700);
    for entry in std::fs::read_dir(&home).unwrap().flatten() {
        let mode = entry.metadata().unwrap().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "{} is {mode:o}", entry.path().display());
    }
}

#[test]
fn an_empty_or_damaged_database_is_one_line_of_error_and_is_not_written() {
    let home = fresh_home("seizure", "empty-db");
    common::init(&home, "Ana");
    let db = home.join("profile.db");
    let good = std::fs::read(&db).unwrap();
    std::fs::write(&db, b"").unwrap();
    let out = kolo(&home).arg("passphrase").env("KOLO_NEW_PASSPHRASE", "x").output().unwrap();
    assert!(!out.status.success());
    assert_eq!(std::fs::metadata(&db).unwrap().len(), 0, "a schema was written into the empty database");

    // Damage: kolo's one line, no SQLCipher log lines before it.
    let mut bad = good.clone();
    for b in bad.iter_mut().skip(100).take(3000) {
        *b ^= 0x5a;
    }
    std::fs::write(&db, &bad).unwrap();
    let out = kolo(&home).arg("passphrase").env("KOLO_NEW_PASSPHRASE", "x").output().unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.starts_with("kolo: ") && err.contains("profile.db"), "{err}");
}

#[test]
fn debug_logs_name_no_peer_address() {
    let cwd = fresh_home("seizure", "debug-log-cwd");
    let (a, b) = (fresh_home("seizure", "debug-log-a"), fresh_home("seizure", "debug-log-b"));
    common::init(&a, "Ana");
    common::init(&b, "Bo");
    let mut na = spawn_daemon(&a, PASS, &cwd, &[("KOLO_LOG", "debug")]);
    let mut nb = spawn_daemon(&b, PASS, &cwd, &[("KOLO_LOG", "debug")]);
    wait_up(&a);
    wait_up(&b);
    api::call(&a, &Request::CircleCreate { name: "cafe".into(), disappear_secs: None }).unwrap();
    let v =
        api::call(&a, &Request::Invite { circle: "cafe".into(), expires_secs: Some(600), organiser: None }).unwrap();
    api::call(&b, &Request::Join { code: v["code"].as_str().unwrap().into() }).unwrap();
    let joined = wait_until(30, || {
        api::call(&a, &Request::Members { circle: "cafe".into() })
            .is_ok_and(|m| m.as_array().is_some_and(|m| m.len() == 2))
    });
    assert!(joined, "bo did not join");
    stop(&a, &mut na);
    stop(&b, &mut nb);
    for home in [&a, &b] {
        let log = std::fs::read_to_string(home.join("kolo.log")).unwrap();
        assert!(!log.contains("127.0.0.1"), "{} names an address:\n{}", home.display(), &log[..log.len().min(2000)]);
    }
}

// -- environment, core dumps, memory ---------------------------------------

#[test]
fn the_environment_of_a_running_node_holds_no_passphrase() {
    let d = Daemon::loopback("seizure", "environ");
    let pid = d.pid().unwrap();
    match std::fs::read(format!("/proc/{pid}/environ")) {
        Ok(env) => {
            assert!(!contains(&env, PASS.as_bytes()), "/proc/{pid}/environ holds the passphrase");
            assert!(!contains(&env, b"KOLO_PASSPHRASE="), "/proc/{pid}/environ names the variable");
            assert!(contains(&env, b"KOLO_HOME="), "the rest of the environment is kept");
        }
        // Not root: a non-dumpable process's environ is closed to its own user too.
        Err(e) => println!("/proc/{pid}/environ is not readable ({e}); nothing to check"),
    }
}

#[test]
fn a_crashing_node_writes_no_core_file() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_CORE).unwrap();
    if hard == 0 || setrlimit(Resource::RLIMIT_CORE, hard, hard).is_err() {
        println!("SKIPPED a_crashing_node_writes_no_core_file: core dumps are forbidden here anyway");
        return;
    }
    let pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap_or_default();
    let home = fresh_home("seizure", "core");
    common::init(&home, "Ana");
    let cwd = home.with_extension("cwd");
    let _ = std::fs::remove_dir_all(&cwd);
    let mut node = spawn_daemon(&home, PASS, &cwd, &[]);
    wait_up(&home);
    let pid = nix::unistd::Pid::from_raw(node.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGABRT).unwrap();
    let status = node.wait().unwrap();
    assert_eq!(status.signal(), Some(nix::sys::signal::Signal::SIGABRT as i32), "{status:?}");
    assert!(!status.core_dumped(), "the kernel dumped core (core_pattern {})", pattern.trim());
    let cores: Vec<PathBuf> = std::fs::read_dir(&cwd)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("core")))
        .collect();
    assert!(cores.is_empty(), "core files: {cores:?}");
}

#[test]
fn a_core_of_each_node_two_seconds_after_expiry_holds_no_copy_of_the_message() {
    if !nix::unistd::Uid::effective().is_root() {
        println!("SKIPPED gcore test: not root (gcore must attach to a non-dumpable process)");
        return;
    }
    if Command::new("sh").args(["-c", "command -v gcore"]).output().map(|o| !o.status.success()).unwrap_or(true) {
        println!("SKIPPED gcore test: gcore (gdb) is missing");
        return;
    }
    const CANARY: &str = "CANARY-in-memory-8d41-meet-at-the-old-mill";
    let a = Daemon::loopback("seizure", "gcore-a");
    let b = Daemon::loopback("seizure", "gcore-b");
    a.call(Request::CircleCreate { name: "cafe".into(), disappear_secs: None });
    let code = a.invite("cafe");
    b.call(Request::Join { code });
    assert!(
        wait_until(30, || a.call(Request::Members { circle: "cafe".into() }).as_array().is_some_and(|m| m.len() == 2)),
        "bo did not join"
    );
    // Until bo's node has the message (the circle's key may still be on its way).
    let mut sent = false;
    for _ in 0..10 {
        a.call(Request::Send { circle: "cafe".into(), text: CANARY.into(), disappear_secs: Some(4) });
        if b.wait_for_text("cafe", CANARY, 6) {
            sent = true;
            break;
        }
    }
    assert!(sent, "the message never reached bo");
    assert!(
        wait_until(30, || !a.has_text("cafe", CANARY) && !b.has_text("cafe", CANARY)),
        "the message did not expire"
    );
    std::thread::sleep(Duration::from_secs(2));
    let dir = fresh_home("seizure", "gcore-out");
    std::fs::create_dir_all(&dir).unwrap();
    for (who, d) in [("sender", &a), ("receiver", &b)] {
        let pid = d.pid().unwrap();
        let prefix = dir.join(who);
        let out = Command::new("gcore").arg("-o").arg(&prefix).arg(pid.to_string()).output().unwrap();
        let core = PathBuf::from(format!("{}.{pid}", prefix.display()));
        assert!(core.exists(), "gcore failed: {}", String::from_utf8_lossy(&out.stderr));
        let bytes = std::fs::read(&core).unwrap();
        std::fs::remove_file(&core).unwrap();
        let copies = bytes.windows(CANARY.len()).filter(|w| *w == CANARY.as_bytes()).count();
        assert_eq!(copies, 0, "the {who}'s memory holds {copies} copies of the expired message");
    }
}

/// `/panic` in the terminal client: the node beside it stops and nothing
/// of the profile remains (lock, log, directory). Needs tmux.
#[test]
fn panic_in_the_terminal_client_leaves_nothing() {
    if Command::new("tmux").arg("-V").output().map(|o| !o.status.success()).unwrap_or(true) {
        println!("SKIPPED panic_in_the_terminal_client_leaves_nothing: tmux is not installed");
        return;
    }
    let home = fresh_home("seizure", "tui-panic");
    common::init(&home, "Ana");
    let name = format!("kolo-seizure-{}", std::process::id());
    let command = format!(
        "KOLO_HOME={} KOLO_PASSPHRASE='{PASS}' {} chat --listen /ip4/127.0.0.1/tcp/0; echo KOLO-HAS-EXITED; sleep 30",
        home.display(),
        env!("CARGO_BIN_EXE_kolo")
    );
    let tmux = |args: &[&str]| Command::new("tmux").args(args).output().unwrap();
    assert!(tmux(&["new-session", "-d", "-s", &name, "-x", "120", "-y", "36", &command]).status.success());
    struct Kill(String);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = Command::new("tmux").args(["kill-session", "-t", &self.0]).output();
        }
    }
    let _session = Kill(name.clone());
    wait_up(&home);
    assert!(home.join("daemon.lock").exists() && home.join("kolo.log").exists());
    tmux(&["send-keys", "-t", &name, "/panic", "Enter"]);
    std::thread::sleep(Duration::from_millis(500));
    tmux(&["send-keys", "-t", &name, "y"]);
    let exited = wait_until(30, || {
        String::from_utf8_lossy(&tmux(&["capture-pane", "-p", "-t", &name]).stdout).contains("KOLO-HAS-EXITED")
    });
    let screen = String::from_utf8_lossy(&tmux(&["capture-pane", "-p", "-t", &name]).stdout).into_owned();
    assert!(exited, "kolo did not exit after /panic; the screen shows:\n{screen}");
    assert!(screen.contains("profile destroyed"), "{screen}");
    assert!(!home.exists(), "left behind: {:?}", std::fs::read_dir(&home).map(|r| r.flatten().count()));
}
