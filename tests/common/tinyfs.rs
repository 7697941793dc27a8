//! A tiny filesystem for a profile, to fill up: tmpfs with a size limit,
//! mounted in a private mount namespace that a holder process keeps
//! alive. Nothing is mounted on the host; the mount goes away with the
//! holder, which is killed on drop and also exits by itself when the test
//! process dies (its stdin closes).
//!
//! Programs that must see the mount (the daemon, `kolo init`) run inside
//! the namespace (`nsenter -m`); the test reaches the same files, and the
//! control socket, through `/proc/<holder>/root`. (SQLite itself cannot
//! open a database through that path: it resolves the magic link.)

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kolo::api::{self, Request};
use serde_json::Value;

use super::netlab::{is_root, run, unique};
use super::{PASS, wait_until};

pub struct TinyFs {
    holder: Child,
    /// The mount point: an empty directory on the host, the tmpfs inside.
    mountpoint: PathBuf,
}

impl TinyFs {
    /// Mount a tmpfs of `size_kib` KiB; `Err` says why it cannot be done here.
    pub fn mount(size_kib: u64) -> Result<TinyFs, String> {
        if !is_root() {
            return Err("not root".into());
        }
        for tool in ["unshare", "nsenter", "mount"] {
            if !run(&["sh", "-c", &format!("command -v {tool}")]) {
                return Err(format!("`{tool}` is not installed"));
            }
        }
        // Short, so the control socket's path stays under the 108-byte limit.
        let mountpoint = std::env::temp_dir().join(unique("disk"));
        std::fs::create_dir_all(&mountpoint).map_err(|e| e.to_string())?;
        let script = format!("mount -t tmpfs -o size={size_kib}k,mode=0700 kolo-tiny \"$0\" && echo ready && read x");
        let mut holder = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .arg(&mountpoint)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        let mut line = String::new();
        let stdout = holder.stdout.take().ok_or("no stdout")?;
        let _ = BufReader::new(stdout).read_line(&mut line);
        if line.trim() != "ready" {
            let _ = holder.kill();
            let out = holder.wait_with_output().map(|o| String::from_utf8_lossy(&o.stderr).into_owned());
            let _ = std::fs::remove_dir(&mountpoint);
            return Err(format!(
                "cannot mount a tmpfs in a private mount namespace: {}",
                out.unwrap_or_default().trim()
            ));
        }
        Ok(TinyFs { holder, mountpoint })
    }

    /// `rel` as programs inside the namespace see it.
    pub fn inside(&self, rel: &str) -> PathBuf {
        self.mountpoint.join(rel)
    }

    /// `rel` as the test (outside the namespace) reaches it.
    pub fn outside(&self, rel: &str) -> PathBuf {
        let inner = self.inside(rel);
        let inner = inner.strip_prefix("/").unwrap_or(&inner);
        PathBuf::from(format!("/proc/{}/root", self.holder.id())).join(inner)
    }

    /// `program` run inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.args(["-t", &self.holder.id().to_string(), "-m", "--", program]);
        c
    }

    /// Write a file until the filesystem is full; returns how many bytes fit.
    pub fn fill(&self) -> u64 {
        std::fs::File::create(self.outside("filler")).unwrap();
        self.fill_tail()
    }

    /// Like [`fill`](Self::fill), a chunk at a time with a pause between
    /// chunks, so that writes in progress meet the moment it fills up.
    pub fn fill_slowly(&self, chunk: usize, pause: Duration) -> u64 {
        let mut f = std::fs::File::create(self.outside("filler")).unwrap();
        let data = vec![0u8; chunk];
        let mut written = 0u64;
        loop {
            match f.write(&data) {
                Ok(n) if n == data.len() => written += n as u64,
                Ok(n) => {
                    written += n as u64;
                    break;
                }
                Err(_) => break,
            }
            std::thread::sleep(pause);
        }
        drop(f);
        written + self.fill_tail()
    }

    /// Take whatever is left after `filler` was written (appending).
    fn fill_tail(&self) -> u64 {
        let mut f = std::fs::OpenOptions::new().append(true).open(self.outside("filler")).unwrap();
        let mut written = 0u64;
        let chunk = [0u8; 4096];
        for size in [4096, 1] {
            while let Ok(n @ 1..) = f.write(&chunk[..size]) {
                written += n as u64;
            }
        }
        written
    }

    pub fn free(&self) {
        std::fs::remove_file(self.outside("filler")).unwrap();
    }
}

impl Drop for TinyFs {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
        let _ = std::fs::remove_dir(&self.mountpoint);
    }
}

/// A `kolo daemon` whose profile lives on a [`TinyFs`]; stopped on drop.
pub struct InnerDaemon {
    /// The profile as the test reaches it (for the control socket).
    pub home: PathBuf,
    inner_home: PathBuf,
    nsenter_target: String,
    listen: String,
    /// The daemon's standard error, kept on the ordinary disk.
    pub stderr: PathBuf,
    child: Option<Child>,
}

impl InnerDaemon {
    pub fn new(fs: &TinyFs, name: &str, listen: &str, stderr: PathBuf) -> InnerDaemon {
        let out = fs
            .command(env!("CARGO_BIN_EXE_kolo"))
            .args(["init", "--name", name])
            .env("KOLO_HOME", fs.inside(name))
            .env("KOLO_PASSPHRASE", PASS)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "init {name}: {}", String::from_utf8_lossy(&out.stderr));
        let mut d = InnerDaemon {
            home: fs.outside(name),
            inner_home: fs.inside(name),
            nsenter_target: fs.holder.id().to_string(),
            listen: listen.to_owned(),
            stderr,
            child: None,
        };
        d.start();
        d
    }

    pub fn start(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.stderr).unwrap();
        let child = Command::new("nsenter")
            .args(["-t", &self.nsenter_target, "-m", "--", env!("CARGO_BIN_EXE_kolo"), "daemon", "--listen"])
            .arg(&self.listen)
            .env("KOLO_HOME", &self.inner_home)
            .env("KOLO_PASSPHRASE", PASS)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while api::call(&self.home, &Request::Status).is_err() {
            assert!(Instant::now() < deadline, "daemon in {} did not start", self.home.display());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether the process is still running (it did not exit or panic).
    pub fn alive(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn stop(&mut self) {
        let _ = api::call(&self.home, &Request::Shutdown);
        if let Some(c) = self.child.as_mut() {
            let _ = wait_until(10, || c.try_wait().ok().flatten().is_some());
        }
        self.kill();
    }

    pub fn call(&self, r: Request) -> Value {
        api::call(&self.home, &r).unwrap_or_else(|e| panic!("{r:?}: {e}"))
    }

    /// `kolo` (the command line, outside the namespace) for this profile.
    pub fn kolo(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_kolo"));
        c.env("KOLO_HOME", &self.home).env("KOLO_PASSPHRASE", PASS).stdin(Stdio::null());
        c
    }
}

impl Drop for InnerDaemon {
    fn drop(&mut self) {
        self.stop();
    }
}
