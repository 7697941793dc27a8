//! Network namespaces for tests that need real links: create them, wire
//! them with veth pairs and bridges, shape or cut their links, and always
//! remove them (on drop, so also when an assertion fails).
//!
//! Names carry the process id and a counter, so parallel test binaries
//! and other checkouts on the same machine never share a namespace.
//! Everything here needs root and `ip`; [`can_use_netns`] says why not.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A name no other lab on this machine uses right now (short: interface
/// names are limited to 15 bytes, and these also name bridges' ports).
pub fn unique(tag: &str) -> String {
    format!("k{tag}{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

pub fn is_root() -> bool {
    std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0).unwrap_or(false)
}

/// Root, `ip`, and a kernel that lets us add a namespace.
pub fn can_use_netns() -> Result<(), String> {
    if !is_root() {
        return Err("not root".into());
    }
    let probe = unique("probe");
    let ok = Command::new("ip")
        .args(["netns", "add", &probe])
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    let _ = Command::new("ip").args(["netns", "del", &probe]).stderr(Stdio::null()).status();
    if ok { Ok(()) } else { Err("`ip netns add` is not available".into()) }
}

/// Whether `tc qdisc ... netem` works here (many minimal kernels lack
/// `sch_netem`). Probed inside a throwaway namespace.
pub fn has_netem() -> bool {
    let probe = unique("netem");
    if !run(&["ip", "netns", "add", &probe]) {
        return false;
    }
    let ok = run(&["ip", "-n", &probe, "link", "set", "lo", "up"])
        && run(&["tc", "-n", &probe, "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"]);
    let _ = run(&["ip", "netns", "del", &probe]);
    ok
}

/// Run `f` on a thread inside network namespace `ns` (sockets it opens
/// stay in that namespace).
pub fn in_namespace<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let handle = std::fs::File::open(path)?;
        nix::sched::setns(&handle, nix::sched::CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
        f()
    })
    .join()
    .unwrap_or_else(|_| Err(std::io::Error::other("namespace thread panicked")))
}

/// Whether a TCP connection from inside `ns` reaches `ip` at all (an
/// answer, even a refusal, means it does).
pub fn reaches(ns: &str, ip: &str) -> bool {
    let addr: std::net::SocketAddr = format!("{ip}:9").parse().unwrap();
    let r = in_namespace(ns, move || std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(2)));
    r.is_ok() || matches!(r, Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused)
}

/// Run a command quietly; whether it succeeded.
pub fn run(argv: &[&str]) -> bool {
    Command::new(argv[0])
        .args(&argv[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Run a command that must succeed.
pub fn must(argv: &[&str]) {
    let out = Command::new(argv[0]).args(&argv[1..]).output().unwrap();
    assert!(out.status.success(), "{argv:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// Namespaces this lab created; deleting a namespace also removes its
/// interfaces, bridges and qdiscs.
pub struct Lab {
    namespaces: Vec<String>,
}

impl Lab {
    pub fn new() -> Lab {
        Lab { namespaces: Vec::new() }
    }

    /// A fresh namespace with loopback up; returns its name.
    pub fn namespace(&mut self, tag: &str) -> String {
        let name = unique(tag);
        must(&["ip", "netns", "add", &name]);
        self.namespaces.push(name.clone());
        must(&["ip", "-n", &name, "link", "set", "lo", "up"]);
        name
    }

    /// A veth pair between two namespaces with an address on each end.
    pub fn link(&self, a: &str, a_if: &str, a_addr: &str, b: &str, b_if: &str, b_addr: &str) {
        must(&["ip", "link", "add", a_if, "netns", a, "type", "veth", "peer", "name", b_if, "netns", b]);
        must(&["ip", "-n", a, "addr", "add", a_addr, "dev", a_if]);
        must(&["ip", "-n", b, "addr", "add", b_addr, "dev", b_if]);
        must(&["ip", "-n", a, "link", "set", a_if, "up"]);
        must(&["ip", "-n", b, "link", "set", b_if, "up"]);
    }

    /// `n` member namespaces, each with `eth0` at `{subnet}.{i+1}/24`. The
    /// other end of each link is port `p{i}`: with `bridge`, all ports are
    /// in one hub namespace, joined by bridge `br0`; without, each port is
    /// alone in a namespace of its own, for a forwarder that opens one
    /// packet socket per namespace (see `impair`).
    pub fn star(&mut self, tag: &str, n: usize, subnet: &str, bridge: bool) -> Star {
        let shared_hub = bridge.then(|| self.namespace(&format!("{tag}h")));
        if let Some(hub) = &shared_hub {
            must(&["ip", "-n", hub, "link", "add", "br0", "type", "bridge"]);
            must(&["ip", "-n", hub, "link", "set", "br0", "up"]);
        }
        let (mut members, mut addrs, mut hubs) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..n {
            let ns = self.namespace(&format!("{tag}{i}"));
            let hub = shared_hub.clone().unwrap_or_else(|| self.namespace(&format!("{tag}p{i}")));
            let port = format!("p{i}");
            let addr = format!("{subnet}.{}", i + 1);
            must(&["ip", "link", "add", "eth0", "netns", &ns, "type", "veth", "peer", "name", &port, "netns", &hub]);
            must(&["ip", "-n", &ns, "addr", "add", &format!("{addr}/24"), "dev", "eth0"]);
            // The hub side sends nothing of its own (no IPv6 autoconfiguration).
            must(&["ip", "-n", &hub, "link", "set", &port, "addrgenmode", "none"]);
            if bridge {
                must(&["ip", "-n", &hub, "link", "set", &port, "master", "br0"]);
            } else {
                // A userspace forwarder handles whole frames only: no
                // segmentation offload, so every frame fits the MTU.
                must(&["ip", "-n", &ns, "link", "set", "eth0", "gso_max_segs", "1"]);
            }
            must(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
            must(&["ip", "-n", &hub, "link", "set", &port, "up"]);
            members.push(ns);
            addrs.push(addr);
            hubs.push(hub);
        }
        Star { hubs, members, addrs }
    }
}

impl Default for Lab {
    fn default() -> Self {
        Lab::new()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for n in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", n]).stderr(Stdio::null()).status();
        }
    }
}

/// Member namespaces around a hub (see [`Lab::star`]).
pub struct Star {
    /// The namespace holding each member's hub port `p{i}` (all the same
    /// namespace when bridged).
    pub hubs: Vec<String>,
    pub members: Vec<String>,
    /// Each member's IPv4 address.
    pub addrs: Vec<String>,
}

impl Star {
    /// Where member `i`'s daemon listens.
    pub fn listen(&self, i: usize) -> String {
        format!("/ip4/{}/tcp/0", self.addrs[i])
    }

    /// Move member `i`'s hub port to `bridge` (created if missing):
    /// members on different bridges cannot reach each other.
    pub fn plug(&self, i: usize, bridge: &str) {
        let hub = &self.hubs[i];
        if !run(&["ip", "-n", hub, "link", "show", bridge]) {
            must(&["ip", "-n", hub, "link", "add", bridge, "type", "bridge"]);
            must(&["ip", "-n", hub, "link", "set", bridge, "up"]);
        }
        must(&["ip", "-n", hub, "link", "set", &format!("p{i}"), "master", bridge]);
    }

    /// Shape what member `i` sends with netem (`args` after `netem`).
    pub fn netem(&self, i: usize, args: &[&str]) {
        let mut argv = vec!["tc", "-n", &self.members[i], "qdisc", "replace", "dev", "eth0", "root", "netem"];
        argv.extend_from_slice(args);
        must(&argv);
    }
}
