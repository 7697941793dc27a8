//! The engine's in-memory copy of encrypted frames: what it relays to
//! members who were offline (mailbox) and answers catch-up requests from.
//! Bounded by count; each frame carries its own expiry.
//!
//! Every frame has an owner: the member it comes from (the sender of a
//! group frame's chain, the `from` of an authenticated pairwise frame), or
//! [`UNVERIFIED`] while that is not known. Over the cap, the owner holding
//! the most frames loses its soonest-expiring one, so one member flooding
//! the store evicts its own frames, never another member's while it holds
//! more than they do.

use std::collections::{BTreeSet, HashMap};

use crate::crypto::kdf::{LABEL_FRAME_ID, hash};

pub type FrameId = [u8; 32];

pub fn frame_id(bytes: &[u8]) -> FrameId {
    hash(LABEL_FRAME_ID, &[bytes])
}

/// Whose frame it is, for the store's per-sender quota: a member id.
pub type Owner = [u8; 32];
/// The owner of frames whose sender is not (yet) known.
pub const UNVERIFIED: Owner = [0xff; 32];

pub struct StoredFrame {
    pub bytes: Vec<u8>,
    pub expires_at_ms: u64,
    pub owner: Owner,
}

#[derive(Default)]
pub struct FrameStore {
    frames: HashMap<FrameId, StoredFrame>,
    by_expiry: BTreeSet<(u64, FrameId)>,
    by_owner: HashMap<Owner, BTreeSet<(u64, FrameId)>>,
    cap: usize,
}

impl FrameStore {
    pub fn new(cap: usize) -> Self {
        Self { cap, ..Self::default() }
    }

    pub fn contains(&self, id: &FrameId) -> bool {
        self.frames.contains_key(id)
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn get(&self, id: &FrameId) -> Option<&StoredFrame> {
        self.frames.get(id)
    }

    /// Insert; returns the ids evicted to stay under the cap (from the
    /// owner that holds the most frames, soonest expiry first).
    pub fn insert(&mut self, id: FrameId, bytes: Vec<u8>, expires_at_ms: u64, owner: Owner) -> Vec<FrameId> {
        self.remove(&id);
        self.frames.insert(id, StoredFrame { bytes, expires_at_ms, owner });
        self.by_expiry.insert((expires_at_ms, id));
        self.by_owner.entry(owner).or_default().insert((expires_at_ms, id));
        let mut evicted = Vec::new();
        while self.frames.len() > self.cap {
            let Some(victim) = self
                .by_owner
                .values()
                .max_by_key(|set| set.len())
                .and_then(|set| set.first())
                .map(|(_, victim)| *victim)
            else {
                break;
            };
            self.remove(&victim);
            evicted.push(victim);
        }
        evicted
    }

    /// Frames held per owner.
    #[cfg(test)]
    pub fn count_of(&self, owner: &Owner) -> usize {
        self.by_owner.get(owner).map_or(0, BTreeSet::len)
    }

    /// Give a held frame its owner once known (its key or sender arrived).
    pub fn set_owner(&mut self, id: &FrameId, owner: Owner) {
        let Some(f) = self.frames.get_mut(id) else {
            return;
        };
        if f.owner == owner {
            return;
        }
        let entry = (f.expires_at_ms, *id);
        let old = std::mem::replace(&mut f.owner, owner);
        self.unlink_owner(&old, &entry);
        self.by_owner.entry(owner).or_default().insert(entry);
    }

    fn unlink_owner(&mut self, owner: &Owner, entry: &(u64, FrameId)) {
        if let Some(set) = self.by_owner.get_mut(owner) {
            set.remove(entry);
            if set.is_empty() {
                self.by_owner.remove(owner);
            }
        }
    }

    /// Every frame held, with its id.
    pub fn iter(&self) -> impl Iterator<Item = (&FrameId, &StoredFrame)> {
        self.frames.iter()
    }

    /// Forget a frame; true if it was held.
    pub fn remove(&mut self, id: &FrameId) -> bool {
        match self.frames.remove(id) {
            Some(old) => {
                self.by_expiry.remove(&(old.expires_at_ms, *id));
                self.unlink_owner(&old.owner, &(old.expires_at_ms, *id));
                true
            }
            None => false,
        }
    }

    /// Move a frame's expiry earlier (it carried a disappearing message).
    pub fn shorten(&mut self, id: &FrameId, expires_at_ms: u64) -> bool {
        let Some(f) = self.frames.get_mut(id) else {
            return false;
        };
        if expires_at_ms >= f.expires_at_ms {
            return false;
        }
        let (old, owner) = ((f.expires_at_ms, *id), f.owner);
        f.expires_at_ms = expires_at_ms;
        self.by_expiry.remove(&old);
        self.by_expiry.insert((expires_at_ms, *id));
        self.unlink_owner(&owner, &old);
        self.by_owner.entry(owner).or_default().insert((expires_at_ms, *id));
        true
    }

    /// Remove and return every frame due at `now_ms`.
    pub fn expire(&mut self, now_ms: u64) -> Vec<FrameId> {
        let mut gone = Vec::new();
        while let Some(&(at, id)) = self.by_expiry.first() {
            if at > now_ms {
                break;
            }
            self.remove(&id);
            gone.push(id);
        }
        gone
    }

    /// Short prefixes of every id, for a catch-up request.
    pub fn summary(&self) -> Vec<[u8; 8]> {
        self.frames
            .keys()
            .map(|id| {
                let mut p = [0u8; 8];
                p.copy_from_slice(&id[..8]);
                p
            })
            .collect()
    }

    /// Frames whose id prefix is not in `have`, oldest expiry first, up to
    /// `max_bytes` in total.
    pub fn missing_from(&self, have: &[[u8; 8]], max_bytes: usize) -> Vec<&[u8]> {
        let have: std::collections::HashSet<&[u8; 8]> = have.iter().collect();
        let mut out = Vec::new();
        let mut total = 0usize;
        for (_, id) in &self.by_expiry {
            let mut p = [0u8; 8];
            p.copy_from_slice(&id[..8]);
            if have.contains(&p) {
                continue;
            }
            let Some(f) = self.frames.get(id) else {
                continue;
            };
            if total + f.bytes.len() > max_bytes {
                break;
            }
            total += f.bytes.len();
            out.push(f.bytes.as_slice());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_expiry_and_summary() {
        let mut s = FrameStore::new(2);
        s.insert([1; 32], vec![1], 10, UNVERIFIED);
        s.insert([2; 32], vec![2], 20, UNVERIFIED);
        let evicted = s.insert([3; 32], vec![3], 30, UNVERIFIED);
        assert_eq!(evicted, vec![[1; 32]]);
        assert!(s.shorten(&[3; 32], 5));
        assert_eq!(s.expire(6), vec![[3; 32]]);
        assert_eq!(s.len(), 1);
        assert_eq!(s.missing_from(&[], 100), vec![&[2u8][..]]);
        assert!(s.missing_from(&s.summary(), 100).is_empty());
    }

    /// Attack 1 of issue 14 (the member half): one member filling the
    /// store used to push out the soonest-expiring frames of everyone;
    /// now the member holding most frames loses its own.
    #[test]
    fn one_sender_flooding_the_store_evicts_only_its_own_frames() {
        let (honest, flooder) = ([1u8; 32], [2u8; 32]);
        let mut s = FrameStore::new(100);
        for i in 0..40u8 {
            // The honest member's frames expire first: the old rule took them.
            s.insert([i; 32], vec![i], 1_000 + u64::from(i), honest);
        }
        let mut evicted = Vec::new();
        for i in 0..1_000u32 {
            let mut id = [0xee; 32];
            id[1..5].copy_from_slice(&i.to_be_bytes());
            evicted.extend(s.insert(id, vec![0], 10_000 + u64::from(i), flooder));
        }
        assert_eq!(s.count_of(&honest), 40, "no honest frame was evicted");
        assert_eq!(s.count_of(&flooder), 60);
        assert_eq!(s.len(), 100);
        assert!(evicted.iter().all(|id| id[0] == 0xee));
        // Owners learned later count from then on; shortening keeps the owner.
        s.set_owner(&[0; 32], flooder);
        assert_eq!(s.count_of(&honest), 39);
        assert!(s.shorten(&[1; 32], 5));
        assert_eq!(s.expire(6), vec![[1; 32]]);
        assert_eq!(s.count_of(&honest), 38);
    }
}
