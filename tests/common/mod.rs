//! Helpers shared by the tests that run real `kolo` processes.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kolo::api::{self, Request};
use serde_json::Value;

pub mod impair;
pub mod netlab;
pub mod seeded;
pub mod tinyfs;

pub const PASS: &str = "test passphrase, not a real one";

/// A fresh profile directory under the test's target dir.
pub fn fresh_home(group: &str, name: &str) -> PathBuf {
    let home = Path::new(env!("CARGO_TARGET_TMPDIR")).join(group).join(name);
    let _ = std::fs::remove_dir_all(&home);
    home
}

/// `kolo` with the profile and passphrase set, no stdin.
pub fn kolo(home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kolo"));
    c.env("KOLO_HOME", home).env("KOLO_PASSPHRASE", PASS).stdin(Stdio::null());
    c
}

pub fn init(home: &Path, name: &str) {
    let out = kolo(home).args(["init", "--name", name]).output().unwrap();
    assert!(out.status.success(), "init {name}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A running `kolo daemon`, stopped when dropped.
pub struct Daemon {
    pub home: PathBuf,
    child: Option<Child>,
    netns: Option<String>,
    listen: Vec<String>,
    mdns: bool,
}

impl Daemon {
    /// Create a profile and start its daemon listening on `listen`,
    /// inside network namespace `netns` if given.
    pub fn new(home: PathBuf, name: &str, listen: &[&str], netns: Option<&str>, mdns: bool) -> Daemon {
        init(&home, name);
        let mut d = Daemon {
            home,
            child: None,
            netns: netns.map(str::to_owned),
            listen: listen.iter().map(|s| s.to_string()).collect(),
            mdns,
        };
        d.start();
        d
    }

    /// On 127.0.0.1 with a random port.
    pub fn loopback(group: &str, name: &str) -> Daemon {
        Daemon::new(fresh_home(group, name), name, &["/ip4/127.0.0.1/tcp/0"], None, false)
    }

    pub fn start(&mut self) {
        let bin = env!("CARGO_BIN_EXE_kolo");
        let mut args: Vec<String> = vec!["daemon".into()];
        for l in &self.listen {
            args.push("--listen".into());
            args.push(l.clone());
        }
        if self.mdns {
            args.push("--mdns".into());
        }
        let mut command = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, bin]);
                c
            }
            None => Command::new(bin),
        };
        let child = command
            .args(&args)
            .env("KOLO_HOME", &self.home)
            .env("KOLO_PASSPHRASE", PASS)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while api::call(&self.home, &Request::Status).is_err() {
            assert!(Instant::now() < deadline, "daemon in {} did not start", self.home.display());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn stop(&mut self) {
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

    /// The daemon's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL, as a crash or a pulled plug would: no shutdown, no cleanup.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn call(&self, r: Request) -> Value {
        api::call(&self.home, &r).unwrap_or_else(|e| panic!("{r:?}: {e}"))
    }

    /// Join with `code`, over links that may be very slow: when the wait
    /// times out, the node is still trying, and the same code again waits
    /// for that same attempt (as a user would run it again).
    pub fn join(&self, code: &str) -> Value {
        let request = Request::Join { code: code.to_owned() };
        for _ in 0..2 {
            match api::call(&self.home, &request) {
                Err(e) if e.code() == Some(kolo::api::ErrorCode::Timeout) => eprintln!("join: {e}; waiting again"),
                other => return other.unwrap_or_else(|e| panic!("join: {e}")),
            }
        }
        self.call(request)
    }

    pub fn texts(&self, circle: &str) -> Vec<String> {
        match api::call(&self.home, &Request::Messages { circle: circle.into() }) {
            Ok(v) => v.as_array().unwrap().iter().map(|m| m["text"].as_str().unwrap_or("").to_owned()).collect(),
            Err(_) => Vec::new(),
        }
    }

    pub fn has_text(&self, circle: &str, text: &str) -> bool {
        self.texts(circle).iter().any(|t| t == text)
    }

    pub fn wait_for_text(&self, circle: &str, text: &str, secs: u64) -> bool {
        wait_until(secs, || self.has_text(circle, text))
    }

    pub fn invite(&self, circle: &str) -> String {
        let v = self.call(Request::Invite { circle: circle.into(), expires_secs: Some(600), organiser: None });
        v["code"].as_str().unwrap().to_owned()
    }

    pub fn send(&self, circle: &str, text: &str) {
        self.call(Request::Send { circle: circle.into(), text: text.into(), disappear_secs: None });
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn wait_until(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}
