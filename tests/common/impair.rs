//! Packet loss and jitter for kernels without `sch_netem`: a userspace
//! hub that forwards whole Ethernet frames between the ports of a
//! [`Star`](super::netlab::Star) built without a bridge, dropping each
//! frame towards each port with the given probability and delaying the
//! rest by `delay ± jitter` (uniform, so frames reorder as under netem).
//!
//! One raw packet socket per port, each opened in the port's own
//! namespace (where it is the only interface), so a socket's frames all
//! come from, and go back out through, that one port. Senders may leave
//! TCP/UDP checksums to offload (the bytes we read then hold only a
//! partial sum), so the forwarder completes them before sending on.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::netlab::in_namespace;
use super::seeded::Rng;

#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub loss_percent: u64,
    pub delay_ms: u64,
    pub jitter_ms: u64,
}

/// Frames waiting for their moment, at most this many (memory stays bounded).
const MAX_QUEUED: usize = 20_000;
const ETH_P_ALL: u16 = 0x0003;

struct Port {
    socket: Socket,
    /// Learned from the first frame the port delivers; frames for a port
    /// not heard from yet are dropped (see [`Impairment::wait_ports`]).
    addr: Mutex<Option<SockAddr>>,
}

type Queue = BinaryHeap<Reverse<(Instant, u64, usize, Vec<u8>)>>;

struct Shared {
    ports: Vec<Port>,
    shape: Mutex<Shape>,
    queue: Mutex<Queue>,
    wake: Condvar,
    stop: AtomicBool,
    rng: Mutex<Rng>,
    seq: AtomicU64,
    forwarded: AtomicU64,
    dropped: AtomicU64,
}

/// The running forwarder; stops its threads when dropped.
pub struct Impairment {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

/// A raw packet socket in namespace `ns`.
fn packet_socket(ns: &str) -> std::io::Result<Socket> {
    in_namespace(ns, || {
        let s = Socket::new(Domain::PACKET, Type::RAW, Some(Protocol::from(i32::from(ETH_P_ALL.to_be()))))?;
        s.set_read_timeout(Some(Duration::from_millis(100)))?;
        Ok(s)
    })
}

impl Impairment {
    /// Forward among the ports in `port_namespaces` (one port each).
    pub fn start(port_namespaces: &[String], shape: Shape, seed: u64) -> std::io::Result<Impairment> {
        let mut ports = Vec::new();
        for ns in port_namespaces {
            ports.push(Port { socket: packet_socket(ns)?, addr: Mutex::new(None) });
        }
        let shared = Arc::new(Shared {
            ports,
            shape: Mutex::new(shape),
            queue: Mutex::new(BinaryHeap::new()),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
            rng: Mutex::new(Rng::new(seed)),
            seq: AtomicU64::new(0),
            forwarded: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        });
        let mut threads = Vec::new();
        for i in 0..shared.ports.len() {
            let s = shared.clone();
            threads.push(std::thread::spawn(move || receive(&s, i)));
        }
        let s = shared.clone();
        threads.push(std::thread::spawn(move || transmit(&s)));
        Ok(Impairment { shared, threads })
    }

    /// Change the loss and delay from now on.
    pub fn set_shape(&self, shape: Shape) {
        *self.shared.shape.lock().unwrap() = shape;
    }

    /// How many ports have sent a frame (and so can be sent to).
    pub fn ports_known(&self) -> usize {
        self.shared.ports.iter().filter(|p| p.addr.lock().unwrap().is_some()).count()
    }

    /// Wait (bounded) until every port has sent a frame, nudging each
    /// member namespace to send one (an ARP request for `{subnet}.250`,
    /// which nobody has). Whether all ports are known.
    pub fn wait_ports(&self, members: &[String], subnet: &str) -> bool {
        for _ in 0..50 {
            if self.ports_known() == self.shared.ports.len() {
                return true;
            }
            for ns in members {
                let target = format!("{subnet}.250:9");
                let _ = in_namespace(ns, move || std::net::UdpSocket::bind("0.0.0.0:0")?.send_to(b"", target));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    }

    /// (frames forwarded, frames dropped on purpose).
    pub fn counts(&self) -> (u64, u64) {
        (self.shared.forwarded.load(Ordering::Relaxed), self.shared.dropped.load(Ordering::Relaxed))
    }
}

impl Drop for Impairment {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.wake.notify_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn receive(s: &Shared, i: usize) {
    let port = &s.ports[i];
    let mut buf = vec![0u8; 65_600];
    while !s.stop.load(Ordering::Relaxed) {
        if port.addr.lock().unwrap().is_none() {
            match port.socket.peek_sender() {
                Ok(a) => *port.addr.lock().unwrap() = Some(a),
                Err(_) => continue, // timeout: look at `stop` again
            }
        }
        let n = match (&port.socket).read(&mut buf) {
            Ok(n) => n,
            Err(_) => continue,
        };
        let mut frame = buf[..n].to_vec();
        complete_checksums(&mut frame);
        let now = Instant::now();
        let shape = *s.shape.lock().unwrap();
        let mut q = s.queue.lock().unwrap();
        let mut rng = s.rng.lock().unwrap();
        for j in (0..s.ports.len()).filter(|j| *j != i) {
            if rng.chance(shape.loss_percent) || q.len() >= MAX_QUEUED {
                s.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let spread = rng.below(2 * shape.jitter_ms + 1);
            let delay = (shape.delay_ms + spread).saturating_sub(shape.jitter_ms);
            let seq = s.seq.fetch_add(1, Ordering::Relaxed);
            q.push(Reverse((now + Duration::from_millis(delay), seq, j, frame.clone())));
        }
        drop(rng);
        drop(q);
        s.wake.notify_all();
    }
}

fn transmit(s: &Shared) {
    loop {
        let (port, frame) = {
            let mut q = s.queue.lock().unwrap();
            loop {
                if s.stop.load(Ordering::Relaxed) {
                    return;
                }
                let now = Instant::now();
                let wait = match q.peek() {
                    Some(Reverse((due, ..))) if *due <= now => None,
                    Some(Reverse((due, ..))) => Some(*due - now),
                    None => Some(Duration::from_millis(100)),
                };
                match wait {
                    None => break,
                    Some(w) => q = s.wake.wait_timeout(q, w).unwrap().0,
                }
            }
            let Some(Reverse((_, _, port, frame))) = q.pop() else { continue };
            (port, frame)
        };
        let p = &s.ports[port];
        let addr = p.addr.lock().unwrap().clone();
        match addr {
            Some(a) if p.socket.send_to(&frame, &a).is_ok() => {
                s.forwarded.fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                s.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Fill in the TCP or UDP checksum of an IPv4 frame (not fragments).
fn complete_checksums(f: &mut [u8]) {
    if f.len() < 14 + 20 || f[12..14] != [0x08, 0x00] || f[14] >> 4 != 4 {
        return;
    }
    let ihl = usize::from(f[14] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([f[16], f[17]]));
    let fragment = u16::from_be_bytes([f[20], f[21]]) & 0x3fff;
    if ihl < 20 || total < ihl || 14 + total > f.len() || fragment != 0 {
        return;
    }
    let proto = f[14 + 9];
    let at = match proto {
        6 => 16,
        17 => 6,
        _ => return,
    };
    let (l4, len) = (14 + ihl, total - ihl);
    if len < at + 2 {
        return;
    }
    f[l4 + at] = 0;
    f[l4 + at + 1] = 0;
    let mut sum: u32 = 0;
    let mut add = |bytes: &[u8]| {
        for pair in bytes.chunks(2) {
            let hi = u32::from(pair[0]) << 8;
            sum += hi | pair.get(1).map_or(0, |b| u32::from(*b));
        }
    };
    add(&f[14 + 12..14 + 20]); // source and destination addresses
    add(&[0, proto]);
    add(&(len as u16).to_be_bytes());
    add(&f[l4..l4 + len]);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let mut c = !(sum as u16);
    if proto == 17 && c == 0 {
        c = 0xffff;
    }
    f[l4 + at..l4 + at + 2].copy_from_slice(&c.to_be_bytes());
}
