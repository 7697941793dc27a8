//! Snapshot of one circle's key and membership state, for the encrypted
//! store, and the way back. Messages and frames are persisted as separate
//! records (so the store can give each its own expiry) and handed back in
//! [`CircleState::restore`].
//!
//! The snapshot holds secrets (circle secret, our pairwise keys, chain
//! keys); it is returned in a zeroizing buffer and must only ever be
//! written inside the encrypted profile. There are no pairwise sessions
//! to save (protocol v2: every pairwise payload has its own handshake),
//! and replaced pairwise keys are saved only until their horizon.

use std::collections::{BTreeSet, HashMap};

use zeroize::{Zeroize, Zeroizing};

use super::EngineConfig;
use super::circle_state::{BoundedSet, CONSUMED_FRAMES, CircleState, RETIRED_KEYS, Receiver, SEEN_HELLOS};
use super::epochs::{EpochEntry, Epochs, PendingEpochKey};
use super::prekeys::{MAX_RETIRED_PREKEYS, Prekey, Prekeys};
use super::store::FrameStore;
use super::types::MessageView;
use crate::circle::{CircleLog, Op};
use crate::crypto::ratchet::{KeyId, ReceivingChain, SendingChain};
use crate::identity::{MemberId, NoiseSecret};
use crate::wire::{Reader, WireError, Writer};

/// 2: protocol v2 membership (operations of format 2); 3: the v2 key
/// schedule (rotating pairwise keys, no sessions, consumed frame ids); 4:
/// network generations (each epoch keeps its generation secret, SPEC §2a).
/// 5: pairwise keys start at id 1 (bound in the operation) and members'
/// announced keys are kept with their signatures.
const SNAPSHOT_VERSION: u8 = 5;
const MAX_ITEMS: usize = 1 << 20;

/// Why a stored snapshot could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("stored circle state is corrupt: {0}")]
    Corrupt(#[from] WireError),
    #[error("stored circle state is from a newer version ({0})")]
    NewerVersion(u8),
    #[error(
        "this circle was stored by an older kolo (state format {0}, protocol v1), which this kolo cannot read; \
         v1 circles are not carried over: create or join the circle again"
    )]
    OlderVersion(u8),
    #[error("stored membership log is invalid: {0}")]
    Log(String),
    #[error("stored key material is invalid: {0}")]
    Keys(String),
}

fn count(r: &mut Reader<'_>) -> Result<usize, WireError> {
    let n = r.u32()? as usize;
    if n > MAX_ITEMS {
        return Err(WireError::LimitExceeded { what: "snapshot items", limit: MAX_ITEMS });
    }
    Ok(n)
}

/// Leading byte of a saved chain: ours or a member's.
const CHAIN_SENDING: u8 = 0;
const CHAIN_RECEIVING: u8 = 1;

impl CircleState {
    /// One chain alone (`Record::Chain`): what changes when a message is
    /// sent or read, so the store need not rewrite the whole snapshot.
    pub fn export_chain(&self, key_id: &KeyId) -> Option<Zeroizing<Vec<u8>>> {
        let (kind, bytes) = if *key_id == self.chain.key_id() {
            (CHAIN_SENDING, self.chain.export())
        } else {
            (CHAIN_RECEIVING, self.receiving.get(key_id)?.chain.export())
        };
        let mut out = Zeroizing::new(Vec::with_capacity(bytes.len() + 1));
        out.push(kind);
        out.extend_from_slice(&bytes);
        let mut bytes = bytes;
        bytes.zeroize();
        Some(out)
    }

    /// Apply a chain saved after the snapshot. A chain the snapshot no
    /// longer holds (replaced or forgotten since) is ignored: a snapshot
    /// written later would have superseded its record.
    pub(super) fn apply_chain(&mut self, key_id: &KeyId, bytes: &[u8]) -> Result<(), RestoreError> {
        let keys = |e: crate::crypto::CryptoError| RestoreError::Keys(e.to_string());
        match bytes.split_first() {
            Some((&CHAIN_SENDING, rest)) if *key_id == self.chain.key_id() => {
                let chain = SendingChain::import(rest).map_err(keys)?;
                if chain.key_id() != *key_id {
                    return Err(RestoreError::Keys("saved sending chain has another id".into()));
                }
                self.chain = chain;
            }
            Some((&CHAIN_RECEIVING, rest)) => {
                if let Some(r) = self.receiving.get_mut(key_id) {
                    let chain = ReceivingChain::import(rest).map_err(keys)?;
                    if chain.key_id() != *key_id {
                        return Err(RestoreError::Keys("saved receiving chain has another id".into()));
                    }
                    r.chain = chain;
                }
            }
            Some((&CHAIN_SENDING, _)) => {}
            _ => return Err(RestoreError::Corrupt(WireError::Invalid("saved chain kind"))),
        }
        Ok(())
    }

    pub fn export(&self) -> Zeroizing<Vec<u8>> {
        let mut w = Writer::with_capacity(4096);
        w.u8(SNAPSHOT_VERSION);
        let ops = self.log.ops_in_order();
        w.u32(ops.len() as u32);
        for op in ops {
            w.bytes32(&op.encode());
        }
        w.raw(&self.secret[..]).raw(self.noise.expose_bytes());
        let keys = &self.prekeys;
        w.u32(keys.current.id).raw(keys.current.secret.expose_bytes()).u64(keys.current.since_ms);
        w.u64(keys.used_at_ms.unwrap_or(0)).u8(u8::from(keys.used_at_ms.is_some()));
        w.u32(keys.retired.len() as u32);
        for k in &keys.retired {
            w.u32(k.id).raw(k.secret.expose_bytes()).u64(k.since_ms);
        }
        w.u32(self.peer_keys.keys.len() as u32);
        for (m, k) in &self.peer_keys.keys {
            w.raw(m.as_bytes()).u32(k.key.id).raw(&k.key.public).raw(&k.signature);
        }
        let consumed: Vec<_> = self.consumed.iter().collect();
        w.u32(consumed.len() as u32);
        for id in consumed {
            w.raw(id);
        }
        w.u32(self.epochs.entries.len() as u32);
        for (epoch, e) in &self.epochs.entries {
            w.u32(*epoch).raw(&e.raiser).raw(&e.meta[..]).u64(e.since_ms);
            w.u8(u8::from(e.closing)).raw(&e.network[..]).u32(e.announce.len() as u32);
            for (m, k) in &e.announce {
                w.raw(m.as_bytes()).raw(&k[..]);
            }
        }
        w.u32(self.epochs.pending.len() as u32);
        for p in &self.epochs.pending {
            w.raw(p.from.as_bytes()).u32(p.epoch).raw(&p.raiser).raw(&p.secret[..]);
        }
        w.u32(self.chain_holders.len() as u32);
        for m in &self.chain_holders {
            w.raw(m.as_bytes());
        }
        w.bytes32(&self.chain.export());
        match &self.previous_chain {
            Some((id, last)) => w.u8(1).raw(id).u32(*last),
            None => w.u8(0),
        };
        w.u32(self.receiving.len() as u32);
        for (key_id, r) in &self.receiving {
            w.raw(key_id).raw(r.sender.as_bytes()).bytes32(&r.chain.export());
            w.u32(r.final_counter.map_or(u32::MAX, |c| c)).u8(u8::from(r.final_counter.is_some()));
            w.u64(r.retired_at_ms.unwrap_or(0)).u8(u8::from(r.retired_at_ms.is_some()));
            w.u32(r.started_at);
        }
        w.u32(self.latest_epoch_of.len() as u32);
        for (m, e) in &self.latest_epoch_of {
            w.raw(m.as_bytes()).u32(*e);
        }
        let retired: Vec<_> = self.retired_keys.iter().collect();
        w.u32(retired.len() as u32);
        for k in retired {
            w.raw(k);
        }
        let hellos: Vec<_> = self.seen_hellos.iter().collect();
        w.u32(hellos.len() as u32);
        for h in hellos {
            w.raw(h);
        }
        for set in [&self.verified, &self.unacked_key_changes] {
            w.u32(set.len() as u32);
            for m in set {
                w.raw(m.as_bytes());
            }
        }
        match self.pinned {
            Some(id) => w.u8(1).raw(&id),
            None => w.u8(0),
        };
        w.u32(self.acks.len() as u32);
        for (id, who) in &self.acks {
            w.raw(id).u32(who.len() as u32);
            for m in who {
                w.raw(m.as_bytes());
            }
        }
        w.u8(u8::from(self.removed)).u64(self.system_counter);
        let acknowledged = self.log.acknowledgements();
        w.u32(acknowledged.len() as u32);
        for (m, heads) in acknowledged {
            w.raw(m.as_bytes()).u32(heads.len() as u32);
            for h in heads {
                w.raw(&h);
            }
        }
        Zeroizing::new(w.finish())
    }

    /// Rebuild a circle from its snapshot plus its stored messages and frames.
    pub fn restore(
        snapshot: &[u8],
        messages: Vec<MessageView>,
        frames: Vec<(Vec<u8>, u64)>,
        me: &MemberId,
        config: &EngineConfig,
    ) -> Result<Self, RestoreError> {
        let mut r = Reader::new(snapshot);
        let version = r.u8()?;
        if version > SNAPSHOT_VERSION {
            return Err(RestoreError::NewerVersion(version));
        }
        if version < SNAPSHOT_VERSION {
            return Err(RestoreError::OlderVersion(version));
        }
        let n = count(&mut r)?;
        let mut ops = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            ops.push(Op::decode(r.bytes32("op", 4096)?).map_err(|e| RestoreError::Log(e.to_string()))?);
        }
        // One resolution for the whole log (in order, each descends from
        // what came before it, so most are placed without resolving again).
        let log = CircleLog::from_ops(ops).map_err(|e| RestoreError::Log(e.to_string()))?;
        let secret: [u8; 32] = r.array()?;
        let noise = NoiseSecret::from_bytes(r.array()?);
        let current = Prekey { id: r.u32()?, secret: NoiseSecret::from_bytes(r.array()?), since_ms: r.u64()? };
        let (used, has_used) = (r.u64()?, r.u8()? == 1);
        let n = count(&mut r)?;
        if n > MAX_RETIRED_PREKEYS {
            return Err(RestoreError::Corrupt(WireError::Invalid("too many replaced pairwise keys")));
        }
        let mut retired = Vec::with_capacity(n);
        for _ in 0..n {
            retired.push(Prekey { id: r.u32()?, secret: NoiseSecret::from_bytes(r.array()?), since_ms: r.u64()? });
        }
        let prekeys = Prekeys { current, retired, used_at_ms: has_used.then_some(used) };
        let mut peer_keys = super::prekeys::PeerPrekeys::default();
        for _ in 0..count(&mut r)? {
            let m = MemberId(r.array()?);
            let key = crate::identity::PairwiseKey { id: r.u32()?, public: r.array()? };
            peer_keys.keys.insert(m, crate::identity::SignedPairwiseKey { key, signature: r.array()? });
        }
        let mut consumed = BoundedSet::new(CONSUMED_FRAMES);
        for _ in 0..count(&mut r)? {
            consumed.insert(r.array()?);
        }
        let mut epochs = Epochs::default();
        for _ in 0..count(&mut r)? {
            let epoch = r.u32()?;
            let raiser = r.array()?;
            let meta = Zeroizing::new(r.array()?);
            let since_ms = r.u64()?;
            let closing = match r.u8()? {
                0 => false,
                1 => true,
                _ => return Err(RestoreError::Corrupt(WireError::Invalid("saved epoch flag"))),
            };
            let network = Zeroizing::new(r.array()?);
            let mut announce = HashMap::new();
            for _ in 0..count(&mut r)? {
                announce.insert(MemberId(r.array()?), Zeroizing::new(r.array()?));
            }
            epochs.entries.insert(epoch, EpochEntry { raiser, meta, announce, since_ms, closing, network });
        }
        for _ in 0..count(&mut r)? {
            let from = MemberId(r.array()?);
            let (epoch, raiser) = (r.u32()?, r.array()?);
            epochs.hold(PendingEpochKey { from, epoch, raiser, secret: Zeroizing::new(r.array()?) });
        }
        let mut chain_holders = BTreeSet::new();
        for _ in 0..count(&mut r)? {
            chain_holders.insert(MemberId(r.array()?));
        }
        let keys = |e: crate::crypto::CryptoError| RestoreError::Keys(e.to_string());
        let chain = SendingChain::import(r.bytes32("chain", 256)?).map_err(keys)?;
        let previous_chain = match r.u8()? {
            0 => None,
            _ => Some((r.array()?, r.u32()?)),
        };
        let mut receiving = HashMap::new();
        for _ in 0..count(&mut r)? {
            let key_id = r.array()?;
            let sender = MemberId(r.array()?);
            let chain = ReceivingChain::import(r.bytes32("receiving chain", 1 << 20)?).map_err(keys)?;
            let (fc, has_fc) = (r.u32()?, r.u8()? == 1);
            let (ra, has_ra) = (r.u64()?, r.u8()? == 1);
            let started_at = r.u32()?;
            receiving.insert(
                key_id,
                Receiver {
                    sender,
                    chain,
                    started_at,
                    final_counter: has_fc.then_some(fc),
                    retired_at_ms: has_ra.then_some(ra),
                },
            );
        }
        let mut latest_epoch_of = HashMap::new();
        for _ in 0..count(&mut r)? {
            latest_epoch_of.insert(MemberId(r.array()?), r.u32()?);
        }
        let mut retired_keys = BoundedSet::new(RETIRED_KEYS);
        for _ in 0..count(&mut r)? {
            retired_keys.insert(r.array()?);
        }
        let mut seen_hellos = BoundedSet::new(SEEN_HELLOS);
        for _ in 0..count(&mut r)? {
            seen_hellos.insert(r.array()?);
        }
        let mut sets = [BTreeSet::new(), BTreeSet::new()];
        for set in &mut sets {
            for _ in 0..count(&mut r)? {
                set.insert(MemberId(r.array()?));
            }
        }
        let [verified, unacked_key_changes] = sets;
        let pinned = match r.u8()? {
            0 => None,
            _ => Some(r.array()?),
        };
        let mut acks = HashMap::new();
        for _ in 0..count(&mut r)? {
            let id = r.array()?;
            let mut who = BTreeSet::new();
            for _ in 0..count(&mut r)? {
                who.insert(MemberId(r.array()?));
            }
            acks.insert(id, who);
        }
        let removed = r.u8()? == 1;
        let system_counter = r.u64()?;
        let mut log = log;
        for _ in 0..count(&mut r)? {
            let m = MemberId(r.array()?);
            let heads: Vec<[u8; 32]> = (0..count(&mut r)?).map(|_| r.array()).collect::<Result<_, _>>()?;
            log.acknowledge(m, &heads);
        }
        r.finish()?;

        let mut store = FrameStore::new(config.max_stored_frames);
        for (bytes, expires) in frames {
            store.insert(super::store::frame_id(&bytes), bytes, expires, super::store::UNVERIFIED);
        }
        let mut state = CircleState::assemble(log, *me, secret, noise, prekeys, chain, store);
        state.epochs = epochs;
        state.chain_holders = chain_holders;
        state.awaiting_epoch_since = state.waiting_for_keys().then_some(0);
        state.peer_keys = peer_keys;
        state.consumed = consumed;
        state.previous_chain = previous_chain;
        state.receiving = receiving;
        state.latest_epoch_of = latest_epoch_of;
        state.retired_keys = retired_keys;
        state.seen_hellos = seen_hellos;
        state.verified = verified;
        state.unacked_key_changes = unacked_key_changes;
        state.pinned = pinned;
        state.acks = acks;
        state.removed = removed;
        state.system_counter = system_counter;
        state.messages = messages.into_iter().map(|m| (m.id, m)).collect();
        state.refresh_member_tags();
        state.reassign_frame_owners();
        state.requeue_waiting_frames();
        Ok(state)
    }
}
