//! Who is who in a circle's network: engine peer handles, libp2p peer ids,
//! members' transport ids, and the remembered listen port and addresses.

use std::collections::{BTreeSet, HashMap};

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};

use crate::circle::CircleId;
use crate::engine::PeerRef;
use crate::identity::MemberId;
use crate::store::Profile;

/// Most addresses remembered per circle.
const MAX_SAVED_ADDRESSES: usize = 32;

/// What the profile remembers of a circle's network.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct NetInfo {
    pub port: u16,
    pub peers: Vec<String>,
    /// "tor" or "direct", fixed when the circle's network first starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<String>,
    /// Tor mode: this member's onion service key for the circle (an
    /// Ed25519 seed). Kept only here, in the encrypted profile; tor gets it
    /// over the control port and never writes it to its data directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onion_key: Option<[u8; 32]>,
}

impl Drop for NetInfo {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        if let Some(key) = self.onion_key.as_mut() {
            key.zeroize();
        }
    }
}

impl NetInfo {
    pub fn load(profile: &Profile, circle: &CircleId) -> Self {
        profile.net_info(circle).and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
    }

    pub fn save(&self, profile: &mut Profile, circle: &CircleId) {
        if let Ok(bytes) = serde_json::to_vec(self)
            && let Err(e) = profile.set_net_info(circle, &bytes)
        {
            tracing::warn!("could not remember network addresses: {e}");
        }
    }
}

pub fn port_of(address: &Multiaddr) -> Option<u16> {
    address.iter().find_map(|p| match p {
        Protocol::Tcp(port) => Some(port),
        _ => None,
    })
}

/// `address` with its TCP port replaced by `port` (when non-zero).
pub fn with_port(address: &Multiaddr, port: u16) -> Multiaddr {
    if port == 0 {
        return address.clone();
    }
    address
        .iter()
        .map(|p| match p {
            Protocol::Tcp(_) => Protocol::Tcp(port),
            other => other,
        })
        .collect()
}

pub struct PeerBook {
    pub local: PeerId,
    next: PeerRef,
    by_handle: HashMap<PeerRef, PeerId>,
    by_peer: HashMap<PeerId, PeerRef>,
    /// Connected peers and whether the link is relayed.
    pub connected: HashMap<PeerId, bool>,
    /// Transport ids members announced.
    pub members: HashMap<MemberId, PeerId>,
    addresses: HashMap<PeerId, BTreeSet<Multiaddr>>,
    pub listen: Vec<Multiaddr>,
    pub saved: NetInfo,
    /// Peers cut off for relaying invalid frames (status, tests).
    pub banned: u64,
    /// Addresses from an invite being used: dialled again while nothing
    /// is connected (a first dial can fail on a bad network).
    pub bootstrap: Vec<Multiaddr>,
    round: usize,
}

impl PeerBook {
    pub fn new(local: PeerId) -> Self {
        Self {
            local,
            next: 1,
            by_handle: HashMap::new(),
            by_peer: HashMap::new(),
            connected: HashMap::new(),
            members: HashMap::new(),
            addresses: HashMap::new(),
            listen: Vec::new(),
            saved: NetInfo::default(),
            banned: 0,
            bootstrap: Vec::new(),
            round: 0,
        }
    }

    pub fn handle_of(&mut self, peer: PeerId) -> PeerRef {
        if let Some(h) = self.by_peer.get(&peer) {
            return *h;
        }
        let h = self.next;
        self.next += 1;
        self.by_peer.insert(peer, h);
        self.by_handle.insert(h, peer);
        h
    }

    pub fn peer_of(&self, handle: PeerRef) -> Option<PeerId> {
        self.by_handle.get(&handle).copied()
    }

    /// The transport peer of `member`, if it announced one and we are
    /// connected to it now.
    pub fn connected_peer_of_member(&self, member: &MemberId) -> Option<PeerId> {
        self.members.get(member).filter(|p| self.connected.contains_key(p)).copied()
    }

    /// Remember a peer's addresses; true if something new was saved.
    pub fn learn_addresses(&mut self, peer: PeerId, addresses: &[Multiaddr]) -> bool {
        if peer == self.local {
            return false;
        }
        let set = self.addresses.entry(peer).or_default();
        let mut changed = false;
        let dialable = |a: &&Multiaddr| port_of(a).is_some_and(|p| p != 0) || crate::net::tor::onion_parts(a).is_some();
        for a in addresses.iter().filter(dialable) {
            // Only dialable addresses; unspecified ones are useless to others.
            if a.iter().any(|p| matches!(p, Protocol::Ip4(ip) if ip.is_unspecified())) {
                continue;
            }
            if set.insert(a.clone()) {
                let text = a.to_string();
                if !self.saved.peers.contains(&text) {
                    self.saved.peers.push(text);
                    changed = true;
                }
            }
        }
        while self.saved.peers.len() > MAX_SAVED_ADDRESSES {
            self.saved.peers.remove(0);
        }
        changed
    }

    /// A connected peer, in turn, for a catch-up round.
    pub fn random_connected(&mut self) -> Option<PeerRef> {
        if self.connected.is_empty() {
            return None;
        }
        self.round = self.round.wrapping_add(1);
        let mut peers: Vec<PeerId> = self.connected.keys().copied().collect();
        peers.sort();
        let peer = peers[self.round % peers.len()];
        Some(self.handle_of(peer))
    }

    /// Addresses of known peers we are not connected to.
    pub fn addresses_to_redial(&self) -> Vec<Multiaddr> {
        let mut out: Vec<Multiaddr> = self
            .addresses
            .iter()
            .filter(|(p, _)| !self.connected.contains_key(p))
            .flat_map(|(_, a)| a.iter().cloned())
            .collect();
        if self.connected.is_empty() {
            out.extend(self.saved.peers.iter().filter_map(|a| a.parse().ok()));
            out.extend(self.bootstrap.iter().cloned());
        }
        out.sort();
        out.dedup();
        out
    }

    /// Is `member` connected to us, and is the link relayed?
    pub fn link_of(&self, member: &MemberId) -> Option<bool> {
        self.members.get(member).and_then(|p| self.connected.get(p).copied())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn onion_addresses_are_remembered_for_redial() {
        let mut book = PeerBook::new(PeerId::random());
        let peer = PeerId::random();
        let onion: Multiaddr = format!("/onion3/{}:443", "a".repeat(56)).parse().unwrap();
        let unspecified: Multiaddr = "/ip4/0.0.0.0/tcp/4001".parse().unwrap();
        assert!(book.learn_addresses(peer, &[onion.clone(), unspecified]));
        assert_eq!(book.saved.peers, vec![onion.to_string()]);
        assert_eq!(book.addresses_to_redial(), vec![onion]);
    }
}
