//! The engine's in-memory copy of encrypted frames: what it relays to
//! members who were offline (mailbox) and answers catch-up requests from.
//! Bounded by count; each frame carries its own expiry.

use std::collections::{BTreeSet, HashMap};

use crate::crypto::kdf::{LABEL_FRAME_ID, hash};

pub type FrameId = [u8; 32];

pub fn frame_id(bytes: &[u8]) -> FrameId {
    hash(LABEL_FRAME_ID, &[bytes])
}

pub struct StoredFrame {
    pub bytes: Vec<u8>,
    pub expires_at_ms: u64,
}

#[derive(Default)]
pub struct FrameStore {
    frames: HashMap<FrameId, StoredFrame>,
    by_expiry: BTreeSet<(u64, FrameId)>,
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

    /// Insert; returns the ids evicted to stay under the cap.
    pub fn insert(&mut self, id: FrameId, bytes: Vec<u8>, expires_at_ms: u64) -> Vec<FrameId> {
        if let Some(old) = self.frames.insert(id, StoredFrame { bytes, expires_at_ms }) {
            self.by_expiry.remove(&(old.expires_at_ms, id));
        }
        self.by_expiry.insert((expires_at_ms, id));
        let mut evicted = Vec::new();
        while self.frames.len() > self.cap {
            let Some((_, victim)) = self.by_expiry.pop_first() else {
                break;
            };
            self.frames.remove(&victim);
            evicted.push(victim);
        }
        evicted
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
        self.by_expiry.remove(&(f.expires_at_ms, *id));
        f.expires_at_ms = expires_at_ms;
        self.by_expiry.insert((expires_at_ms, *id));
        true
    }

    /// Remove and return every frame due at `now_ms`.
    pub fn expire(&mut self, now_ms: u64) -> Vec<FrameId> {
        let mut gone = Vec::new();
        while let Some(&(at, id)) = self.by_expiry.first() {
            if at > now_ms {
                break;
            }
            self.by_expiry.pop_first();
            self.frames.remove(&id);
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
        s.insert([1; 32], vec![1], 10);
        s.insert([2; 32], vec![2], 20);
        let evicted = s.insert([3; 32], vec![3], 30);
        assert_eq!(evicted, vec![[1; 32]]);
        assert!(s.shorten(&[3; 32], 5));
        assert_eq!(s.expire(6), vec![[3; 32]]);
        assert_eq!(s.len(), 1);
        assert_eq!(s.missing_from(&[], 100), vec![&[2u8][..]]);
        assert!(s.missing_from(&s.summary(), 100).is_empty());
    }
}
