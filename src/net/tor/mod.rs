//! Tor onion transport: kolo's own tor process driven over its control
//! port, one onion service per member per circle with client
//! authorisation, and a libp2p transport that listens behind the onion and
//! dials onions through tor's SOCKS port (`docs/networking.md`, "Tor").

pub mod control;
pub mod keys;
#[doc(hidden)]
pub mod mock;
pub mod process;
pub mod socks;
pub mod transport;

use std::net::SocketAddr;
use std::sync::Arc;

use libp2p::Multiaddr;

pub use control::{Bootstrap, ControlAuth, TorControl};
pub use keys::{ClientAuth, OnionKey};
pub use process::{TorConfig, TorProcess, tor_available};
pub use socks::Isolation;
pub use transport::{TorClient, TorTransport, onion_parts};

/// The virtual port of every kolo onion (the onion address tells them apart).
pub const ONION_PORT: u16 = 443;

#[derive(Debug, thiserror::Error)]
pub enum TorError {
    #[error("tor: {0}")]
    Io(String),
    #[error("tor control protocol: {0}")]
    Protocol(String),
    #[error("tor refused {command}: {reply}")]
    Refused { command: String, reply: String },
    #[error("tor control authentication failed: {0}")]
    Auth(String),
    #[error("tor did not bootstrap: {0}")]
    Bootstrap(String),
    #[error("cannot start tor: {0}")]
    Spawn(String),
    #[error("onion unreachable: {0}")]
    Unreachable(String),
}

/// A tor the node uses: the control connection and SOCKS port, and the
/// process if kolo started it (stopped when the last handle goes).
#[derive(Clone)]
pub struct TorRuntime {
    pub client: TorClient,
    _process: Option<Arc<TorProcess>>,
}

impl TorRuntime {
    pub fn new(control: TorControl, socks: SocketAddr, process: Option<TorProcess>) -> Self {
        TorRuntime {
            client: TorClient { socks, control: Arc::new(tokio::sync::Mutex::new(control)) },
            _process: process.map(Arc::new),
        }
    }

    /// Publish `key`'s onion, reachable only with `auth`, forwarding to a
    /// fresh 127.0.0.1 port. Returns the onion address and that port.
    pub async fn publish(&self, key: &OnionKey, auth: &ClientAuth) -> Result<(Multiaddr, SocketAddr), TorError> {
        // Pick a free loopback port for tor to forward to; the swarm
        // listens on it right after (a port taken in between fails the
        // listen, and the node reports it).
        let probe = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| TorError::Io(e.to_string()))?;
        let local = probe.local_addr().map_err(|e| TorError::Io(e.to_string()))?;
        drop(probe);
        let id = self.client.control.lock().await.add_onion(key, ONION_PORT, local, auth).await?;
        Ok((transport::onion_address(&id, ONION_PORT)?, local))
    }

    /// Take an onion down (a circle left, or the node stopping).
    pub async fn unpublish(&self, onion: &Multiaddr) -> Result<(), TorError> {
        let Some((id, _)) = onion_parts(onion) else {
            return Err(TorError::Protocol("not an onion address".into()));
        };
        self.client.control.lock().await.del_onion(&id).await
    }
}

/// Start kolo's own tor (data in `data_dir`, removed afterwards if
/// `remove_on_drop`), wait for it to bootstrap, calling `progress` on each
/// step, and return the runtime the node uses.
pub async fn start_own_tor(
    data_dir: std::path::PathBuf,
    remove_on_drop: bool,
    progress: impl FnMut(&Bootstrap),
) -> Result<TorRuntime, TorError> {
    let config = TorConfig::new(data_dir, remove_on_drop)?;
    let (process, control) = TorProcess::start_bootstrapped(&config, progress).await?;
    let socks = process.socks;
    Ok(TorRuntime::new(control, socks, Some(process)))
}

/// SOCKS credentials for one circle: tor keeps circles on separate circuits.
pub fn circle_isolation(circle: &[u8; 32]) -> Isolation {
    let tag = crate::crypto::kdf::hash(b"kolo/v1/tor-isolation", &[circle]);
    Isolation { username: crate::identity::hex(&tag[..16]), password: "kolo".into() }
}

#[cfg(test)]
mod tests;
