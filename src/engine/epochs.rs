//! Epoch secrets (protocol v2, SPEC §5.1a): what a circle's epoch keys
//! come from, one epoch at a time.
//!
//! Every epoch has a 32-byte *epoch secret* chosen by its rekeyer (the
//! author of the operation that started it, see `CircleLog::rekeyer`) and
//! sent to each member in a pairwise frame: O(n) frames per removal or
//! rotation. From it each member derives, and then erases it:
//!
//! * the epoch's *meta* secret: topic, pair tags, pair psks and frame key
//!   of that epoch (v1 derived them from a circle secret that never
//!   changed, so a removed member could follow the circle forever);
//! * one *announce key* per member, with which that member seals the
//!   announcement of its new chain for the epoch, broadcast once to the
//!   whole circle instead of sent to each member pairwise. An announce key
//!   is erased once its member's announcement is read (or at the horizon),
//!   so a later copy of the profile cannot reopen a captured announcement.
//!
//! A member that joins gets the meta secret of its first epoch in its
//! welcome, and chains pairwise.
//!
//! Each entry also carries its *network generation's* key (SPEC §2a): an
//! epoch started by a Remove or a Rotate ("closing") begins a new
//! generation, whose key derives from its meta; any other epoch keeps the
//! generation before it. Links to the closed network are keyed by it, so
//! a removed member's key stops opening the network.

use std::collections::{BTreeMap, HashMap};

use zeroize::Zeroizing;

use crate::circle::{self, CircleId, OpId};
use crate::identity::MemberId;

/// Epoch keys received before our log reached their epoch, kept to try
/// again when it does.
pub const MAX_PENDING_EPOCH_KEYS: usize = 8;
/// Epochs whose meta secret is kept (besides age): the current and a few
/// before it, for frames still in flight and members catching up.
pub const KEPT_EPOCHS: usize = 8;

pub struct EpochEntry {
    pub raiser: OpId,
    pub meta: Zeroizing<[u8; 32]>,
    /// Announce keys not yet used, by member.
    pub announce: HashMap<MemberId, Zeroizing<[u8; 32]>>,
    pub since_ms: u64,
    /// Started by a Remove or Rotate: a new network generation.
    pub closing: bool,
    /// The network generation's key in this epoch (see the module doc).
    pub network: Zeroizing<[u8; 32]>,
}

/// An epoch secret from a rekeyer our log does not (yet) confirm.
pub struct PendingEpochKey {
    pub from: MemberId,
    pub epoch: u32,
    pub raiser: OpId,
    pub secret: Zeroizing<[u8; 32]>,
}

#[derive(Default)]
pub struct Epochs {
    pub entries: BTreeMap<u32, EpochEntry>,
    pub pending: Vec<PendingEpochKey>,
}

impl Epochs {
    /// Install `epoch` from its secret: derive its meta secret and every
    /// member's announce key. The caller erases the secret. `closing`:
    /// the epoch starts a network generation; `base` is the generation
    /// key before any epoch we hold.
    #[allow(clippy::too_many_arguments)]
    pub fn install(
        &mut self,
        circle_id: &CircleId,
        epoch: u32,
        raiser: OpId,
        secret: &[u8; 32],
        members: &[MemberId],
        closing: bool,
        base: &[u8; 32],
        now_ms: u64,
    ) {
        let meta = Zeroizing::new(circle::epoch_meta(secret, circle_id, epoch, &raiser));
        let announce = members
            .iter()
            .map(|m| (*m, Zeroizing::new(circle::chain_announce_key(secret, circle_id, epoch, m))))
            .collect();
        let network = Zeroizing::new([0; 32]);
        self.entries.insert(epoch, EpochEntry { raiser, meta, announce, since_ms: now_ms, closing, network });
        self.pending.retain(|p| p.epoch > epoch);
        self.settle_network(circle_id, epoch, base);
    }

    /// Install `epoch` from its meta secret alone (a joiner's welcome;
    /// `network` is the invite's network key, the one it got in with).
    pub fn install_meta(&mut self, epoch: u32, raiser: OpId, meta: [u8; 32], network: [u8; 32], now_ms: u64) {
        self.entries.insert(
            epoch,
            EpochEntry {
                raiser,
                meta: Zeroizing::new(meta),
                announce: HashMap::new(),
                since_ms: now_ms,
                closing: false,
                network: Zeroizing::new(network),
            },
        );
    }

    /// Recompute the generation keys from `from` on: a closing epoch
    /// derives its own, the others inherit the one before.
    fn settle_network(&mut self, circle_id: &CircleId, from: u32, base: &[u8; 32]) {
        let mut previous: Zeroizing<[u8; 32]> =
            Zeroizing::new(self.entries.range(..from).next_back().map(|(_, e)| *e.network).unwrap_or(*base));
        for (epoch, entry) in self.entries.range_mut(from..) {
            if entry.closing {
                *entry.network = circle::generation_network_key(&entry.meta, circle_id, *epoch);
            } else {
                *entry.network = *previous;
            }
            *previous = *entry.network;
        }
    }

    /// The network generation key of the newest epoch we hold.
    pub fn newest_network(&self) -> Option<&[u8; 32]> {
        self.entries.values().next_back().map(|e| &*e.network)
    }

    /// Every distinct generation key we hold, oldest first.
    pub fn networks(&self) -> Vec<&[u8; 32]> {
        let mut out: Vec<&[u8; 32]> = Vec::new();
        for e in self.entries.values() {
            if out.last().is_none_or(|last| **last != *e.network) {
                out.push(&e.network);
            }
        }
        out
    }

    pub fn has(&self, epoch: u32) -> bool {
        self.entries.contains_key(&epoch)
    }

    pub fn meta(&self, epoch: u32) -> Option<&[u8; 32]> {
        self.entries.get(&epoch).map(|e| &*e.meta)
    }

    /// The newest epoch we hold keys for.
    pub fn newest(&self) -> Option<u32> {
        self.entries.keys().next_back().copied()
    }

    /// Take (and so erase) `member`'s announce key of `epoch`.
    pub fn take_announce_key(&mut self, epoch: u32, member: &MemberId) -> Option<Zeroizing<[u8; 32]>> {
        self.entries.get_mut(&epoch)?.announce.remove(member)
    }

    pub fn has_announce_key(&self, epoch: u32, member: &MemberId) -> bool {
        self.entries.get(&epoch).is_some_and(|e| e.announce.contains_key(member))
    }

    /// Keep an epoch key our log cannot confirm yet (bounded: one per
    /// sender, the newest epoch).
    pub fn hold(&mut self, key: PendingEpochKey) {
        self.pending.retain(|p| p.from != key.from);
        self.pending.push(key);
        while self.pending.len() > MAX_PENDING_EPOCH_KEYS {
            self.pending.remove(0);
        }
    }

    /// Erase what outlived its use: announce keys older than `horizon_ms`
    /// (their member never announced), and meta secrets of epochs older
    /// than `keep_ms` beyond the newest `KEPT_EPOCHS`. Returns whether
    /// anything went.
    pub fn prune(&mut self, now_ms: u64, horizon_ms: u64, keep_ms: u64) -> bool {
        let mut changed = false;
        for e in self.entries.values_mut() {
            if !e.announce.is_empty() && now_ms.saturating_sub(e.since_ms) >= horizon_ms {
                e.announce.clear();
                changed = true;
            }
        }
        let newest: Vec<u32> = self.entries.keys().rev().take(KEPT_EPOCHS).copied().collect();
        let before = self.entries.len();
        self.entries.retain(|epoch, e| newest.contains(epoch) || now_ms.saturating_sub(e.since_ms) < keep_ms);
        changed || self.entries.len() != before
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn announce_keys_are_used_once_and_erased_at_the_horizon() {
        let (a, b) = (MemberId([1; 32]), MemberId([2; 32]));
        let mut epochs = Epochs::default();
        epochs.install(&[9; 32], 3, [7; 32], &[5; 32], &[a, b], false, &[1; 32], 1000);
        let meta = *epochs.meta(3).unwrap();
        assert_eq!(meta, circle::epoch_meta(&[5; 32], &[9; 32], 3, &[7; 32]));
        assert!(epochs.take_announce_key(3, &a).is_some());
        assert!(epochs.take_announce_key(3, &a).is_none(), "used once");
        assert!(!epochs.prune(1500, 1000, 10_000));
        assert!(epochs.prune(2000, 1000, 10_000));
        assert!(!epochs.has_announce_key(3, &b), "erased at the horizon");
        assert!(epochs.has(3), "the meta secret stays longer");
    }

    #[test]
    fn old_epochs_go_but_the_newest_stay() {
        let mut epochs = Epochs::default();
        for e in 0..12 {
            epochs.install_meta(e, [0; 32], [e as u8; 32], [1; 32], u64::from(e));
        }
        epochs.prune(1_000_000, 10, 100);
        assert_eq!(epochs.entries.len(), KEPT_EPOCHS);
        assert_eq!(epochs.newest(), Some(11));
    }
}
