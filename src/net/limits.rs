//! Bounded resources: file descriptors and inbound connections.
//!
//! Anyone who can reach a listening port can open TCP connections without
//! holding the network key: the private-network handshake only starts after
//! the socket was accepted. Each accepted socket is a file descriptor, and a
//! process that runs out of them cannot accept its owner's control-socket
//! connections or open its database. So:
//!
//! * at start-up the soft `RLIMIT_NOFILE` is raised to the hard limit
//!   ([`raise_fd_limit`]);
//! * inbound connections are capped per remote IP and in total, pending
//!   (still in the pnet/Noise/yamux handshake) and established, across all
//!   of the process's circle swarms, with caps derived from that limit so
//!   that they always stay below it ([`Caps::for_fd_limit`]). A refused
//!   connection is closed at once, so its descriptor is freed again.
//!
//! One [`ConnectionLedger`] serves every circle swarm of a node (connection
//! ids are unique in the process: libp2p numbers them from one counter). A
//! kolo process runs one node, so the node's ledger is the process's. A
//! harness that runs many nodes in one process (the benchmarks, on one
//! loopback address) gives each its own ledger, as separate processes
//! would have: one shared ledger capped a 50-node circle at 256
//! connections from 127.0.0.1 in all, and a third of its nodes never
//! connected.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};

use libp2p::core::transport::PortUse;
use libp2p::core::{ConnectedPoint, Endpoint};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{
    ConnectionClosed, ConnectionDenied, ConnectionId, FromSwarm, ListenFailure, NetworkBehaviour, THandler,
    THandlerInEvent, THandlerOutEvent, ToSwarm, dummy,
};
use libp2p::{Multiaddr, PeerId};

/// Descriptors kept out of the network's budget: the profile database and
/// its journal, the log, the control socket and its clients, listeners,
/// outbound dials, the runtime's own.
const RESERVED_FDS: u64 = 160;
/// Control-socket clients served at once (`api::serve`); counted in
/// `RESERVED_FDS`.
pub const MAX_CONTROL_CONNECTIONS: usize = 32;

/// Raise the soft limit on open files to the hard limit. Returns the soft
/// limit in force afterwards (the old one if raising failed).
pub fn raise_fd_limit() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 1024;
    };
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return hard;
    }
    soft
}

/// The soft limit on open files now.
pub fn fd_limit() -> u64 {
    use nix::sys::resource::{Resource, getrlimit};
    getrlimit(Resource::RLIMIT_NOFILE).map(|(soft, _)| soft).unwrap_or(1024)
}

/// Inbound connection caps for the whole process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caps {
    pub pending_total: usize,
    pub pending_per_ip: usize,
    pub established_total: usize,
    pub established_per_ip: usize,
}

impl Caps {
    /// Caps that leave `RESERVED_FDS` descriptors free under `limit`
    /// (pending and established together stay within the rest).
    pub fn for_fd_limit(limit: u64) -> Caps {
        let budget = usize::try_from(limit.saturating_sub(RESERVED_FDS)).unwrap_or(usize::MAX).max(16);
        let pending_total = (budget / 8).clamp(4, 128);
        let established_total = (budget - pending_total).clamp(8, 1024);
        Caps {
            pending_total,
            // One address may hold a quarter of the handshakes in progress,
            // so one flooder leaves the others room.
            pending_per_ip: (pending_total / 4).max(2),
            // Members behind one NAT (or, in tests, on one machine) share
            // an address: generous, but below the total.
            established_per_ip: (established_total / 2).clamp(4, 256),
            established_total,
        }
    }
}

#[derive(Default)]
struct Ledger {
    pending: HashMap<ConnectionId, Option<IpAddr>>,
    established: HashMap<ConnectionId, Option<IpAddr>>,
}

impl Ledger {
    fn count(map: &HashMap<ConnectionId, Option<IpAddr>>, ip: Option<IpAddr>) -> usize {
        match ip {
            Some(ip) => map.values().filter(|v| **v == Some(ip)).count(),
            None => 0,
        }
    }
}

/// The inbound connections of one node's swarms, pending and established.
#[derive(Clone, Default)]
pub struct ConnectionLedger(Arc<Mutex<Ledger>>);

/// The caps in force, fixed at first use from the (raised) limit.
pub fn caps() -> Caps {
    static CAPS: OnceLock<Caps> = OnceLock::new();
    *CAPS.get_or_init(|| Caps::for_fd_limit(raise_fd_limit()))
}

/// The remote IP of a connection (none for relayed ones: their address is
/// the relay's, whose own connection was counted).
fn ip_of(address: &Multiaddr) -> Option<IpAddr> {
    if address.iter().any(|p| matches!(p, Protocol::P2pCircuit)) {
        return None;
    }
    address.iter().find_map(|p| match p {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    })
}

#[derive(Debug, thiserror::Error)]
#[error("inbound connection limit reached ({0})")]
pub struct LimitReached(&'static str);

/// The behaviour that enforces [`caps`] on inbound connections.
pub struct InboundLimits {
    caps: Caps,
    ledger: ConnectionLedger,
}

impl InboundLimits {
    pub fn new(ledger: ConnectionLedger) -> InboundLimits {
        InboundLimits { caps: caps(), ledger }
    }

    fn with_ledger<T>(&self, f: impl FnOnce(&mut Ledger) -> T) -> T {
        let mut guard = self.ledger.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }
}

fn deny(what: &'static str) -> ConnectionDenied {
    tracing::debug!("refused an inbound connection: {what}");
    ConnectionDenied::new(LimitReached(what))
}

impl NetworkBehaviour for InboundLimits {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        _local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        let caps = self.caps;
        let ip = ip_of(remote);
        self.with_ledger(|l| {
            if l.pending.len() >= caps.pending_total {
                return Err(deny("pending, total"));
            }
            if Ledger::count(&l.pending, ip) >= caps.pending_per_ip {
                return Err(deny("pending, per address"));
            }
            if l.pending.len() + l.established.len() >= caps.pending_total + caps.established_total {
                return Err(deny("all connections"));
            }
            l.pending.insert(connection_id, ip);
            Ok(())
        })
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        _peer: PeerId,
        _local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        let caps = self.caps;
        let ip = ip_of(remote);
        self.with_ledger(|l| {
            l.pending.remove(&connection_id);
            if l.established.len() >= caps.established_total {
                return Err(deny("established, total"));
            }
            if Ledger::count(&l.established, ip) >= caps.established_per_ip {
                return Err(deny("established, per address"));
            }
            l.established.insert(connection_id, ip);
            Ok(dummy::ConnectionHandler)
        })
    }

    fn handle_established_outbound_connection(
        &mut self,
        _connection_id: ConnectionId,
        _peer: PeerId,
        _addr: &Multiaddr,
        _role: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            // Refused here or by another behaviour, or the handshake failed.
            FromSwarm::ListenFailure(ListenFailure { connection_id, .. }) => self.with_ledger(|l| {
                l.pending.remove(&connection_id);
                l.established.remove(&connection_id);
            }),
            FromSwarm::ConnectionClosed(ConnectionClosed { connection_id, endpoint, .. }) => {
                if matches!(endpoint, ConnectedPoint::Listener { .. }) {
                    self.with_ledger(|l| {
                        l.established.remove(&connection_id);
                    });
                }
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(&mut self, _peer: PeerId, _id: ConnectionId, event: THandlerOutEvent<Self>) {
        match event {}
    }

    fn poll(&mut self, _cx: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_stay_below_the_descriptor_limit() {
        for limit in [64u64, 256, 512, 1024, 4096, 20_000, 1 << 20] {
            let c = Caps::for_fd_limit(limit);
            assert!(c.pending_per_ip <= c.pending_total, "{limit}: {c:?}");
            assert!(c.established_per_ip <= c.established_total, "{limit}: {c:?}");
            if limit >= 256 {
                let network = (c.pending_total + c.established_total) as u64;
                assert!(network + RESERVED_FDS <= limit, "{limit}: {c:?}");
            }
        }
    }

    #[test]
    fn raising_the_limit_leaves_it_at_least_where_it_was() {
        let before = fd_limit();
        let after = raise_fd_limit();
        assert!(after >= before);
        assert_eq!(after, fd_limit());
    }
}
