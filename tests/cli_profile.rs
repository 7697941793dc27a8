//! The profile commands as a user runs them: exit codes and one-line errors.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn home(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn kolo(home: &Path, pass: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kolo"))
        .args(args)
        .env("KOLO_HOME", home)
        .env("KOLO_PASSPHRASE", pass)
        .env_remove("KOLO_NEW_PASSPHRASE")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn init_wrong_passphrase_change_and_panic() {
    let h = home("lifecycle");
    let out = kolo(&h, "first pass", &["init", "--name", "Ana"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("safety number"));
    // A second init refuses.
    let out = kolo(&h, "first pass", &["init", "--name", "Ana"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("already exists"));

    let before: Vec<Vec<u8>> =
        ["profile.header", "profile.db"].iter().map(|f| std::fs::read(h.join(f)).unwrap()).collect();
    let out = kolo(&h, "wrong", &["passphrase"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("wrong passphrase"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    let after: Vec<Vec<u8>> =
        ["profile.header", "profile.db"].iter().map(|f| std::fs::read(h.join(f)).unwrap()).collect();
    assert_eq!(before, after, "a wrong passphrase changes nothing");

    let out = Command::new(env!("CARGO_BIN_EXE_kolo"))
        .args(["passphrase"])
        .env("KOLO_HOME", &h)
        .env("KOLO_PASSPHRASE", "first pass")
        .env("KOLO_NEW_PASSPHRASE", "second pass")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(kolo(&h, "first pass", &["passphrase"]).status.code() == Some(1));

    // Panic needs --yes when not on a terminal.
    let out = kolo(&h, "", &["panic"]);
    assert!(!out.status.success());
    assert!(h.join("profile.header").exists());
    let out = kolo(&h, "", &["panic", "--yes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!h.exists());
}

#[test]
fn passphrase_file_and_missing_profile() {
    let h = home("file");
    let file = h.with_extension("pass");
    std::fs::create_dir_all(h.parent().unwrap()).unwrap();
    std::fs::write(&file, "from a file\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kolo"))
        .args(["--passphrase-file", file.to_str().unwrap(), "init", "--name", "Bo"])
        .env("KOLO_HOME", &h)
        .env_remove("KOLO_PASSPHRASE")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = kolo(&home("nothing-here"), "x", &["passphrase"]);
    assert!(stderr(&out).contains("no kolo profile"), "{}", stderr(&out));
    let out = Command::new(env!("CARGO_BIN_EXE_kolo"))
        .args(["init", "--name", "Cy"])
        .env("KOLO_HOME", home("no-pass"))
        .env_remove("KOLO_PASSPHRASE")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(stderr(&out).contains("no passphrase"), "{}", stderr(&out));
}

/// The entries directly in `dir` (path and size; directories count as 0).
/// For the system temp directories: SQLite and libc put temporary files
/// at their top level, and walking them whole would read every build tree
/// that happens to live there.
fn top_level(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out: Vec<(PathBuf, u64)> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| (e.path(), e.metadata().map(|m| if m.is_dir() { 0 } else { m.len() }).unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Every file (path and size) under `dir`, recursively.
fn listing(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(listing(&p));
            } else {
                out.push((p.clone(), e.metadata().map(|m| m.len()).unwrap_or(0)));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn an_ephemeral_node_writes_no_file_anywhere() {
    let h = home("ephemeral");
    std::fs::create_dir_all(&h).unwrap();
    let tmp = home("ephemeral-tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let system_tmp: Vec<PathBuf> = vec![std::env::temp_dir(), PathBuf::from("/var/tmp")];
    let system_listing = || system_tmp.iter().flat_map(|d| top_level(d)).collect::<Vec<_>>();
    let (home_before, tmp_before, sys_before) = (listing(&h), listing(&tmp), system_listing());
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_kolo"))
            .arg("--ephemeral")
            .args(args)
            .env("KOLO_HOME", &h)
            .env("TMPDIR", &tmp)
            .env_remove("KOLO_PASSPHRASE")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_kolo"))
        .args(["--ephemeral", "daemon", "--name", "Guest", "--listen", "/ip4/127.0.0.1/tcp/0"])
        .env("KOLO_HOME", &h)
        .env("TMPDIR", &tmp)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !run(&["status"]).status.success() {
        assert!(std::time::Instant::now() < deadline, "ephemeral daemon did not start");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // A second ephemeral node for the same home is refused.
    let second = run(&["daemon", "--name", "Other", "--listen", "/ip4/127.0.0.1/tcp/0"]);
    assert!(stderr(&second).contains("already running"), "{}", stderr(&second));
    assert!(run(&["circle", "create", "cafe"]).status.success());
    for i in 0..20 {
        assert!(run(&["send", "cafe", &format!("message {i}"), "--disappear", "1m"]).status.success());
    }
    let out = run(&["messages", "cafe"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("message 19"));
    assert!(run(&["stop"]).status.success());
    let _ = daemon.wait();
    assert_eq!(listing(&h), home_before, "files appeared in the home directory");
    assert_eq!(listing(&tmp), tmp_before, "files appeared in TMPDIR");
    let sys_after = system_listing();
    let new: Vec<_> = sys_after
        .iter()
        .filter(|f| !sys_before.contains(f))
        .filter(|(p, _)| {
            let n = p.to_string_lossy();
            n.contains("kolo") || n.contains("sqlite") || n.contains("etilqs")
        })
        .collect();
    assert!(new.is_empty(), "files appeared in the system temp directory: {new:?}");
}
