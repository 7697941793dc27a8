//! The profile commands as a user runs them: exit codes and one-line errors.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn home(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("cli")
        .join(name);
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

    let before: Vec<Vec<u8>> = ["profile.header", "profile.db"]
        .iter()
        .map(|f| std::fs::read(h.join(f)).unwrap())
        .collect();
    let out = kolo(&h, "wrong", &["passphrase"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("wrong passphrase"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    let after: Vec<Vec<u8>> = ["profile.header", "profile.db"]
        .iter()
        .map(|f| std::fs::read(h.join(f)).unwrap())
        .collect();
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
        .args([
            "--passphrase-file",
            file.to_str().unwrap(),
            "init",
            "--name",
            "Bo",
        ])
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
