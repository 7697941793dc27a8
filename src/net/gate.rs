//! Members-only behaviours: what a joiner's link is not served.
//!
//! Every inbound link proves a member's or an open invite's key
//! (`net::link`). A joiner may run the join handshake, over the direct
//! protocol, and nothing else: [`MembersOnly`] wraps a behaviour (gossip,
//! identify, Kademlia, the relay and DCUtR) so that on a joiner's inbound
//! connection it gets an inert handler, which refuses the behaviour's
//! streams, and never hears of the connection. So an invite holder learns
//! no member node's listen addresses, routing table or gossip, and cannot
//! use a member as a relay (issue 14, attack 5).
//!
//! Our own dials are served in full: we chose whom to dial, and a joiner
//! dials members, which serve it nothing.
//!
//! The wrapped behaviour sees only the connections it is served on, with
//! connection counts to match, and its messages for a handler never reach
//! an inert one (libp2p's `Either` handler would panic on that).

use std::collections::{HashMap, HashSet};
use std::ops::{Deref, DerefMut};
use std::task::{Context, Poll};

use libp2p::core::Endpoint;
use libp2p::core::transport::PortUse;
use libp2p::swarm::derive_prelude::Either;
use libp2p::swarm::{
    ConnectionClosed, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, NotifyHandler, THandler,
    THandlerInEvent, THandlerOutEvent, ToSwarm, dummy,
};
use libp2p::{Multiaddr, PeerId};

use super::link::{LinkClass, SharedAccess};

pub struct MembersOnly<B> {
    inner: B,
    access: SharedAccess,
    /// Connections the inner behaviour is served on, per peer, oldest first.
    served: HashMap<PeerId, Vec<ConnectionId>>,
    /// Joiners' inbound connections (inert handlers).
    inert: HashSet<ConnectionId>,
}

impl<B> MembersOnly<B> {
    pub fn new(inner: B, access: SharedAccess) -> Self {
        Self { inner, access, served: HashMap::new(), inert: HashSet::new() }
    }
}

impl<B> Deref for MembersOnly<B> {
    type Target = B;
    fn deref(&self) -> &B {
        &self.inner
    }
}

impl<B> DerefMut for MembersOnly<B> {
    fn deref_mut(&mut self) -> &mut B {
        &mut self.inner
    }
}

impl<B: NetworkBehaviour> NetworkBehaviour for MembersOnly<B> {
    type ConnectionHandler = Either<THandler<B>, dummy::ConnectionHandler>;
    type ToSwarm = B::ToSwarm;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.inner.handle_pending_inbound_connection(connection_id, local_addr, remote_addr)
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        if self.access.inbound_class(remote_addr) != LinkClass::Member {
            self.inert.insert(connection_id);
            return Ok(Either::Right(dummy::ConnectionHandler));
        }
        let handler = self.inner.handle_established_inbound_connection(connection_id, peer, local_addr, remote_addr)?;
        Ok(Either::Left(handler))
    }

    fn handle_pending_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        maybe_peer: Option<PeerId>,
        addresses: &[Multiaddr],
        effective_role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        self.inner.handle_pending_outbound_connection(connection_id, maybe_peer, addresses, effective_role)
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role_override: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        let handler =
            self.inner.handle_established_outbound_connection(connection_id, peer, addr, role_override, port_use)?;
        Ok(Either::Left(handler))
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(e) => {
                if self.inert.contains(&e.connection_id) {
                    return;
                }
                let served = self.served.entry(e.peer_id).or_default();
                let other_established = served.len();
                served.push(e.connection_id);
                let e = libp2p::swarm::derive_prelude::ConnectionEstablished { other_established, ..e };
                self.inner.on_swarm_event(FromSwarm::ConnectionEstablished(e));
            }
            FromSwarm::ConnectionClosed(e) => {
                if self.inert.remove(&e.connection_id) {
                    return;
                }
                let remaining_established = match self.served.get_mut(&e.peer_id) {
                    Some(served) => {
                        served.retain(|c| *c != e.connection_id);
                        served.len()
                    }
                    None => 0,
                };
                if remaining_established == 0 {
                    self.served.remove(&e.peer_id);
                }
                self.inner.on_swarm_event(FromSwarm::ConnectionClosed(ConnectionClosed { remaining_established, ..e }));
            }
            FromSwarm::AddressChange(e) if self.inert.contains(&e.connection_id) => {}
            // A connection denied after its handler was made (another
            // behaviour's limit) is never established.
            FromSwarm::ListenFailure(e) => {
                self.inert.remove(&e.connection_id);
                self.inner.on_swarm_event(event);
            }
            other => self.inner.on_swarm_event(other),
        }
    }

    fn on_connection_handler_event(
        &mut self,
        peer_id: PeerId,
        connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {
            Either::Left(event) => self.inner.on_connection_handler_event(peer_id, connection_id, event),
            Either::Right(never) => match never {},
        }
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        loop {
            let event = match self.inner.poll(cx) {
                Poll::Ready(event) => event,
                Poll::Pending => return Poll::Pending,
            };
            let event = match event {
                ToSwarm::NotifyHandler { peer_id, handler, event } => {
                    // Only ever to a connection the inner behaviour is served on.
                    let target = match handler {
                        NotifyHandler::One(c) if self.inert.contains(&c) => None,
                        NotifyHandler::One(c) => Some(c),
                        NotifyHandler::Any => self.served.get(&peer_id).and_then(|s| s.first().copied()),
                    };
                    match target {
                        Some(c) => ToSwarm::NotifyHandler {
                            peer_id,
                            handler: NotifyHandler::One(c),
                            event: Either::Left(event),
                        },
                        None => continue,
                    }
                }
                other => other.map_in(Either::Left),
            };
            return Poll::Ready(event);
        }
    }
}
