//! A libp2p transport over tor onion services.
//!
//! Listening: the onion service (set up by the node through the control
//! port) forwards its virtual port to a 127.0.0.1 port; this transport
//! listens there with libp2p's TCP transport and reports the onion address
//! (`/onion3/<id>:<port>`) as the listen address. Nothing else can be
//! listened on: a `/ip4/...` listen address is refused.
//!
//! Dialling: only `/onion3/<id>:<port>`, through tor's SOCKS port, with
//! the circle's SOCKS username/password so that tor (`IsolateSOCKSAuth`)
//! keeps each circle on its own circuits. Before the first dial of an onion
//! the circle's client-authorisation key is given to tor. Any other address
//! is refused, so nothing ever leaves outside Tor.
//!
//! The output is the same TCP stream type as libp2p's TCP transport, so
//! pnet, Noise and yamux upgrade it unchanged.

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::FutureExt;
use futures::future::BoxFuture;
use libp2p::core::transport::{DialOpts, ListenerId, TransportError, TransportEvent};
use libp2p::multiaddr::Protocol;
use libp2p::tcp::tokio::TcpStream;
use libp2p::{Multiaddr, Transport, tcp};

use super::TorError;
use super::control::TorControl;
use super::keys::ClientAuth;
use super::socks::{self, Isolation};
use crate::wire::text::{Case, base32};

/// `/onion3/<id>:<port>` split into the service id and port.
pub fn onion_parts(address: &Multiaddr) -> Option<(String, u16)> {
    let mut it = address.iter();
    let first = it.next()?;
    // Only the onion itself, optionally followed by the peer id.
    if !it.all(|p| matches!(p, Protocol::P2p(_))) {
        return None;
    }
    match first {
        Protocol::Onion3(a) => Some((base32(a.hash(), Case::Lower), a.port())),
        _ => None,
    }
}

/// The multiaddr of service `id` on `port`.
pub fn onion_address(id: &str, port: u16) -> Result<Multiaddr, TorError> {
    format!("/onion3/{id}:{port}").parse().map_err(|_| TorError::Protocol("not an onion service id".into()))
}

/// What a circle's transport needs to reach tor.
#[derive(Clone)]
pub struct TorClient {
    pub socks: SocketAddr,
    /// Shared control connection (client-auth keys are per tor process).
    pub control: Arc<tokio::sync::Mutex<TorControl>>,
}

pub struct TorTransport {
    tcp: tcp::tokio::Transport,
    client: TorClient,
    isolation: Isolation,
    auth: Arc<ClientAuth>,
    /// The onion we may listen on and the loopback port tor forwards it to.
    service: Option<(Multiaddr, SocketAddr)>,
    /// Our listeners and the onion address each stands for.
    listeners: HashMap<ListenerId, Multiaddr>,
    /// Onions whose client-auth key tor already has.
    authorized: Arc<Mutex<HashSet<String>>>,
}

impl TorTransport {
    pub fn new(
        client: TorClient,
        isolation: Isolation,
        auth: Arc<ClientAuth>,
        service: Option<(Multiaddr, SocketAddr)>,
    ) -> Self {
        TorTransport {
            tcp: tcp::tokio::Transport::new(tcp::Config::default().nodelay(true)),
            client,
            isolation,
            auth,
            service,
            listeners: HashMap::new(),
            authorized: Arc::new(Mutex::new(HashSet::new())),
        }
    }
}

fn io_error(e: std::io::Error) -> TorError {
    TorError::Io(e.to_string())
}

impl Transport for TorTransport {
    type Output = TcpStream;
    type Error = TorError;
    type ListenerUpgrade = BoxFuture<'static, Result<TcpStream, TorError>>;
    type Dial = BoxFuture<'static, Result<TcpStream, TorError>>;

    fn listen_on(&mut self, id: ListenerId, addr: Multiaddr) -> Result<(), TransportError<TorError>> {
        let Some((onion, local)) = self.service.clone() else {
            return Err(TransportError::MultiaddrNotSupported(addr));
        };
        if addr != onion {
            return Err(TransportError::MultiaddrNotSupported(addr));
        }
        if !local.ip().is_loopback() {
            return Err(TransportError::Other(TorError::Protocol("onion target must be loopback".into())));
        }
        let local_addr = Multiaddr::empty()
            .with(Protocol::Ip4(match local.ip() {
                std::net::IpAddr::V4(v4) => v4,
                std::net::IpAddr::V6(_) => Ipv4Addr::LOCALHOST,
            }))
            .with(Protocol::Tcp(local.port()));
        self.tcp.listen_on(id, local_addr).map_err(|e| e.map(io_error))?;
        self.listeners.insert(id, onion);
        Ok(())
    }

    fn remove_listener(&mut self, id: ListenerId) -> bool {
        self.listeners.remove(&id);
        self.tcp.remove_listener(id)
    }

    fn dial(&mut self, addr: Multiaddr, _opts: DialOpts) -> Result<Self::Dial, TransportError<TorError>> {
        let Some((id, port)) = onion_parts(&addr) else {
            return Err(TransportError::MultiaddrNotSupported(addr));
        };
        let client = self.client.clone();
        let isolation = self.isolation.clone();
        let auth = self.auth.clone();
        let authorized = self.authorized.clone();
        Ok(async move {
            let known = authorized.lock().map(|set| set.contains(&id)).unwrap_or(false);
            if !known {
                client.control.lock().await.client_auth_add(&id, &auth).await?;
                if let Ok(mut set) = authorized.lock() {
                    set.insert(id.clone());
                }
            }
            let stream = socks::connect(client.socks, &format!("{id}.onion"), port, &isolation).await?;
            Ok(TcpStream(stream))
        }
        .boxed())
    }

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<TransportEvent<Self::ListenerUpgrade, TorError>> {
        let event = match Pin::new(&mut self.tcp).poll(cx) {
            Poll::Ready(e) => e,
            Poll::Pending => return Poll::Pending,
        };
        let onion = |id: &ListenerId, fallback: Multiaddr| self.listeners.get(id).cloned().unwrap_or(fallback);
        let mapped = match event {
            TransportEvent::NewAddress { listener_id, listen_addr } => {
                TransportEvent::NewAddress { listener_id, listen_addr: onion(&listener_id, listen_addr) }
            }
            TransportEvent::AddressExpired { listener_id, listen_addr } => {
                TransportEvent::AddressExpired { listener_id, listen_addr: onion(&listener_id, listen_addr) }
            }
            TransportEvent::Incoming { listener_id, upgrade, local_addr, send_back_addr } => TransportEvent::Incoming {
                listener_id,
                upgrade: async move { upgrade.await.map_err(io_error) }.boxed(),
                local_addr: onion(&listener_id, local_addr),
                // Tor's own connection from loopback: says nothing about the peer.
                send_back_addr,
            },
            TransportEvent::ListenerClosed { listener_id, reason } => {
                TransportEvent::ListenerClosed { listener_id, reason: reason.map_err(io_error) }
            }
            TransportEvent::ListenerError { listener_id, error } => {
                TransportEvent::ListenerError { listener_id, error: io_error(error) }
            }
        };
        if let TransportEvent::ListenerClosed { listener_id, .. } = &mapped {
            let id = *listener_id;
            self.listeners.remove(&id);
        }
        Poll::Ready(mapped)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn only_onion_addresses_are_onions() {
        let id = "a".repeat(56);
        let a = onion_address(&id, 9000).unwrap();
        assert_eq!(onion_parts(&a), Some((id.clone(), 9000)));
        let tcp: Multiaddr = "/ip4/127.0.0.1/tcp/9000".parse().unwrap();
        assert_eq!(onion_parts(&tcp), None);
        let relayed = a.clone().with(Protocol::P2pCircuit);
        assert_eq!(onion_parts(&relayed), None);
        assert!(onion_address("nope", 1).is_err());
    }
}
