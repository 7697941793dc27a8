//! The demo's non-member relay: a TCP forwarder on 127.0.0.1 standing
//! between the user's node and everyone who dials it, like a router, an
//! ISP or a hostile Wi-Fi. It is not a circle member and holds no key, so
//! it carries bytes it cannot read; it keeps a bounded copy of them so the
//! trainer view and the headless transcript can show (and search) exactly
//! what it saw.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::ui::model::RelayStats;

/// Most bytes of traffic kept for searching.
const CAPTURE_LIMIT: usize = 8 * 1024 * 1024;
/// The tail shown in the trainer view.
const SAMPLE_BYTES: usize = 24;
/// Most connections the demo relay accepts (the demo has four nodes).
const MAX_CONNECTIONS: u64 = 64;

#[derive(Default)]
struct Seen {
    bytes: u64,
    connections: u64,
    capture: Vec<u8>,
    last: Vec<u8>,
}

#[derive(Clone)]
pub struct Relay {
    pub port: u16,
    seen: Arc<Mutex<Seen>>,
    target: Arc<Mutex<Option<u16>>>,
}

impl Relay {
    /// Listen on 127.0.0.1; forward to the target once it is set.
    pub async fn start() -> std::io::Result<Relay> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let port = listener.local_addr()?.port();
        let relay = Relay { port, seen: Arc::default(), target: Arc::default() };
        let me = relay.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let target = *me.target.lock().unwrap_or_else(|p| p.into_inner());
                let Some(target) = target else { continue };
                {
                    let mut seen = me.seen.lock().unwrap_or_else(|p| p.into_inner());
                    if seen.connections >= MAX_CONNECTIONS {
                        continue;
                    }
                    seen.connections += 1;
                }
                let me = me.clone();
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(("127.0.0.1", target)).await {
                        me.forward(client, server).await;
                    }
                });
            }
        });
        Ok(relay)
    }

    pub fn set_target(&self, port: u16) {
        *self.target.lock().unwrap_or_else(|p| p.into_inner()) = Some(port);
    }

    async fn forward(&self, client: TcpStream, server: TcpStream) {
        let (cr, cw) = client.into_split();
        let (sr, sw) = server.into_split();
        let up = self.clone().pump(cr, sw);
        let down = self.clone().pump(sr, cw);
        let _ = tokio::join!(up, down);
    }

    async fn pump(self, mut from: tokio::net::tcp::OwnedReadHalf, mut to: tokio::net::tcp::OwnedWriteHalf) {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            self.record(&buf[..n]);
            if to.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    }

    fn record(&self, bytes: &[u8]) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.bytes += bytes.len() as u64;
        let room = CAPTURE_LIMIT.saturating_sub(seen.capture.len());
        seen.capture.extend_from_slice(&bytes[..bytes.len().min(room)]);
        let tail = &bytes[bytes.len().saturating_sub(SAMPLE_BYTES)..];
        seen.last = tail.to_vec();
    }

    pub fn stats(&self) -> RelayStats {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        RelayStats { bytes: seen.bytes, connections: seen.connections, sample: crate::identity::hex(&seen.last) }
    }

    /// Which of `needles` appear anywhere in what the relay carried.
    pub fn found(&self, needles: &[&str]) -> Vec<String> {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        needles
            .iter()
            .filter(|n| !n.is_empty() && seen.capture.windows(n.len()).any(|w| w == n.as_bytes()))
            .map(|n| (*n).to_owned())
            .collect()
    }
}
