//! Everything the engine knows about one circle it belongs to, and the
//! send and receive paths for the circle topic.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use zeroize::Zeroizing;

use super::frames::{self, PairFrame, PairPayload, Tag};
use super::message::{Body, Inner};
use super::store::{FrameId, FrameStore, Owner, UNVERIFIED, frame_id};
use super::types::{EnvelopeInfo, Event, MessageId, MessageKind, MessageView, NetworkAccess, Output, Record, Verdict};
use super::{Ctx, EngineConfig};
use crate::circle::{self, Action, CircleId, CircleLog, Op};
use crate::crypto::envelope;
use crate::crypto::kdf::{LABEL_MESSAGE_ID, hash};
use crate::crypto::pairwise::{KkContext, KkInitiator, SessionId, kk_respond};
use crate::crypto::ratchet::{KeyId, ReceivingChain, SendingChain};
use crate::crypto::{CryptoError, pairwise};
use crate::identity::{MemberId, NoiseSecret, PairwiseKey, SignedPairwiseKey};
use crate::wire::{self, frame_type, pad, unpad};

use super::epochs::{Epochs, PendingEpochKey};
use super::prekeys::{MAX_PREKEY_AGE_AFTER_USE_MS, PeerPrekeys, Prekeys};

/// How many epochs past our log's a frame authenticator may name and be
/// left unjudged (not refused) while we wait for their secrets.
const UNJUDGED_EPOCHS_AHEAD: u32 = 4;
/// Messages held while we wait for a new epoch's keys (so nothing is sent
/// under keys a just-removed member holds).
const MAX_OUTBOX: usize = 64;
/// With no key for the current epoch after this long, an organiser rotates
/// (it becomes the rekeyer): the one who should have sent it is away.
pub(super) const REKEY_FALLBACK_MS: u64 = 2 * 60 * 1000;
/// How long before asking the same member for its chain again, or
/// sending ours again to a member that asks.
const CHAIN_REQUEST_INTERVAL_MS: u64 = 30_000;

/// Where a new circle's first epoch keys come from.
pub enum EpochStart {
    /// We created the circle: we choose the secret of its first epoch.
    Created,
    /// Our welcome gave the pairwise secret of the epoch we joined in;
    /// `network` is the network key our invite carried (SPEC §2a).
    Welcomed { epoch: u32, raiser: [u8; 32], meta: [u8; 32], network: [u8; 32] },
}

/// Ids of pairwise frames addressed to us that we opened, remembered
/// instead of their bytes (SPEC §6.2a): for de-duplication only.
pub(super) const CONSUMED_FRAMES: usize = 16_384;
/// Handshake ids remembered to refuse replayed first messages.
pub(super) const SEEN_HELLOS: usize = 8192;
/// Frames waiting for a sender key, in total. Past this, such frames are
/// not kept at all (catch-up brings them again once the key is here), so a
/// flood of frames under made-up key ids costs bounded memory and cannot
/// make an honest frame that arrives meanwhile unreadable.
pub(super) const AWAITING_KEY_MAX: usize = 2_000;
/// Retired chain ids remembered to refuse replayed distributions.
pub(super) const RETIRED_KEYS: usize = 4096;
/// A sender key this many epochs older than the sender's newest is refused.
const STALE_EPOCHS: u32 = 3;
/// How long before asking the same member for the log again.
const LOG_REQUEST_INTERVAL_MS: u64 = 30_000;
/// Receiving chains kept per member (the current one and a few it
/// replaced whose messages may still be in flight).
pub(super) const MAX_CHAINS_PER_MEMBER: usize = 4;
/// Evidence of equivocation kept per circle.
const MAX_EQUIVOCATIONS: usize = 16;
/// After our removal, how long we stay on the circle's network to learn
/// whether a concurrent, more senior revocation voids it (SPEC §4.3):
/// a removal by someone who was being removed at the same time is undone.
pub(super) const REMOVAL_GRACE_MS: u64 = 10 * 60 * 1000;

pub fn message_id(key_id: &KeyId, counter: u32) -> MessageId {
    let h = hash(LABEL_MESSAGE_ID, &[key_id, &counter.to_be_bytes()]);
    let mut id = [0u8; 16];
    id.copy_from_slice(&h[..16]);
    id
}

pub(super) struct Receiver {
    pub(super) sender: MemberId,
    pub(super) chain: ReceivingChain,
    /// The counter the chain was given to us at.
    pub(super) started_at: u32,
    /// Set once the sender announced its next chain: counters at or past
    /// this are stale.
    pub(super) final_counter: Option<u32>,
    pub(super) retired_at_ms: Option<u64>,
}

/// A bounded set that forgets its oldest entries.
pub(super) struct BoundedSet<T: std::hash::Hash + Eq + Copy> {
    set: HashSet<T>,
    order: VecDeque<T>,
    cap: usize,
}

impl<T: std::hash::Hash + Eq + Copy> BoundedSet<T> {
    pub(super) fn new(cap: usize) -> Self {
        Self { set: HashSet::new(), order: VecDeque::new(), cap }
    }
    fn contains(&self, v: &T) -> bool {
        self.set.contains(v)
    }
    pub(super) fn iter(&self) -> impl Iterator<Item = &T> {
        self.order.iter()
    }
    pub(super) fn insert(&mut self, v: T) {
        if self.set.insert(v) {
            self.order.push_back(v);
            while self.order.len() > self.cap {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }
}

/// Proof that a member signed two different frames as the same message:
/// both frames verify under its chain key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Equivocation {
    pub member: MemberId,
    pub key_id: KeyId,
    pub counter: u32,
    pub first: Vec<u8>,
    pub second: Vec<u8>,
}

pub struct CircleState {
    pub(super) log: CircleLog,
    pub(super) me: MemberId,
    /// The circle secret of the creator: gives the network key only (the
    /// epoch keys come from `epochs`).
    pub(super) secret: Zeroizing<[u8; 32]>,
    /// Epoch secrets' derived keys (SPEC §5.1a).
    pub(super) epochs: Epochs,
    /// Members who hold a chain of ours, so can verify our announcements.
    pub(super) chain_holders: BTreeSet<MemberId>,
    /// Our messages waiting for the current epoch's keys (memory only).
    pub(super) outbox: Vec<(Body, Option<u32>)>,
    /// Since when our log is in an epoch whose keys we lack.
    pub(super) awaiting_epoch_since: Option<u64>,
    pub(super) fallback_rotated_at: Option<u64>,
    pub(super) chain_requested_at: HashMap<MemberId, u64>,
    pub(super) chain_served_at: HashMap<MemberId, u64>,
    /// Our pair tags, in every epoch we hold keys for.
    pub(super) my_tags: HashSet<Tag>,
    /// The key our operation binds to our identity: we authenticate with
    /// it (as the initiator of pairwise handshakes, and to joiners).
    pub(super) noise: NoiseSecret,
    /// The keys we receive pairwise frames on, from id 1 (the one our
    /// operation binds); never `noise`.
    pub(super) prekeys: Prekeys,
    /// The newest pairwise key each member announced.
    pub(super) peer_keys: PeerPrekeys,
    /// Pairwise frames for us already opened (ids only).
    pub(super) consumed: BoundedSet<FrameId>,
    pub(super) my_tag: Tag,
    pub(super) tags: HashMap<Tag, MemberId>,
    pub(super) chain: SendingChain,
    pub(super) previous_chain: Option<(KeyId, u32)>,
    pub(super) receiving: HashMap<KeyId, Receiver>,
    pub(super) latest_epoch_of: HashMap<MemberId, u32>,
    pub(super) retired_keys: BoundedSet<KeyId>,
    pub(super) seen_hellos: BoundedSet<SessionId>,
    pub(super) frames: FrameStore,
    pub(super) awaiting_key: HashMap<KeyId, Vec<FrameId>>,
    pub(super) awaiting_count: usize,
    /// Each member's latest presence (sent_at, transport and addresses).
    pub(super) presence: HashMap<MemberId, (u64, super::message::Presence)>,
    /// Pairwise frames for us from a sender not (yet) in our roster.
    pub(super) awaiting_sender: Vec<FrameId>,
    pub(super) messages: BTreeMap<MessageId, MessageView>,
    pub(super) pinned: Option<MessageId>,
    pub(super) acks: HashMap<MessageId, BTreeSet<MemberId>>,
    pub(super) verified: BTreeSet<MemberId>,
    pub(super) unacked_key_changes: BTreeSet<MemberId>,
    pub(super) log_requested_at: HashMap<MemberId, u64>,
    /// Members told to be seeing another roster (warned once each).
    pub(super) split_views: BTreeSet<MemberId>,
    /// The group context each member last claimed in a key distribution.
    pub(super) claimed_context: HashMap<MemberId, [u8; 32]>,
    /// Two validly signed frames for one key id and counter: the evidence.
    pub(super) equivocations: Vec<Equivocation>,
    /// We were removed: no more sending; history kept until the user wipes.
    pub(super) removed: bool,
    /// Since when (in memory): until the grace period ends we stay on the
    /// network in case the removal is voided.
    pub(super) removed_since: Option<u64>,
    pub(super) system_counter: u64,
    /// A forensic examiner's copy (tests): see [`Self::as_examiner`].
    pub(super) examiner: bool,
    /// Catch-up requests we made and requests we served (`sync.rs`).
    pub(super) sync: super::sync::SyncState,
}

impl CircleState {
    /// `noise` is our bound static key, `first_pairwise` the first pairwise
    /// key our operation binds (id 1).
    pub fn new(
        log: CircleLog,
        secret: [u8; 32],
        start: EpochStart,
        noise: NoiseSecret,
        first_pairwise: NoiseSecret,
        ctx: &mut Ctx<'_>,
    ) -> Self {
        let epoch = log.epoch();
        let raiser = log.rekeyer().map(|(op, _)| op).unwrap_or_default();
        let chain = SendingChain::generate(epoch, ctx.now, ctx.rng);
        let frames = FrameStore::new(ctx.config.max_stored_frames);
        let prekeys = Prekeys::new(first_pairwise, ctx.now);
        let mut state = Self::assemble(log, ctx.me, secret, noise, prekeys, chain, frames);
        match start {
            EpochStart::Created => {
                let secret: Zeroizing<[u8; 32]> = Zeroizing::new(crate::entropy::random_array(ctx.rng));
                let members = vec![ctx.me];
                let base = state.root_network_key();
                state.epochs.install(&state.id(), epoch, raiser, &secret, &members, false, &base, ctx.now);
            }
            EpochStart::Welcomed { epoch, raiser, meta, network } => {
                state.epochs.install_meta(epoch, raiser, meta, network, ctx.now)
            }
        }
        state.refresh_member_tags();
        state
    }

    /// A circle with the given keys and nothing else yet.
    pub(super) fn assemble(
        log: CircleLog,
        me: MemberId,
        secret: [u8; 32],
        noise: NoiseSecret,
        prekeys: Prekeys,
        chain: SendingChain,
        frames: FrameStore,
    ) -> Self {
        let mut state = Self {
            log,
            me,
            secret: Zeroizing::new(secret),
            epochs: Epochs::default(),
            chain_holders: BTreeSet::new(),
            outbox: Vec::new(),
            awaiting_epoch_since: None,
            fallback_rotated_at: None,
            chain_requested_at: HashMap::new(),
            chain_served_at: HashMap::new(),
            my_tags: HashSet::new(),
            noise,
            prekeys,
            peer_keys: PeerPrekeys::default(),
            consumed: BoundedSet::new(CONSUMED_FRAMES),
            my_tag: [0; 16],
            tags: HashMap::new(),
            chain,
            previous_chain: None,
            receiving: HashMap::new(),
            latest_epoch_of: HashMap::new(),
            retired_keys: BoundedSet::new(RETIRED_KEYS),
            seen_hellos: BoundedSet::new(SEEN_HELLOS),
            frames,
            awaiting_key: HashMap::new(),
            awaiting_count: 0,
            awaiting_sender: Vec::new(),
            presence: HashMap::new(),
            messages: BTreeMap::new(),
            pinned: None,
            acks: HashMap::new(),
            verified: BTreeSet::new(),
            unacked_key_changes: BTreeSet::new(),
            log_requested_at: HashMap::new(),
            split_views: BTreeSet::new(),
            claimed_context: HashMap::new(),
            equivocations: Vec::new(),
            removed: false,
            removed_since: None,
            system_counter: 0,
            examiner: false,
            sync: super::sync::SyncState::default(),
        };
        state.refresh_member_tags();
        state
    }

    pub fn id(&self) -> CircleId {
        self.log.circle_id()
    }

    /// The pairwise secret of our key epoch (topic, tags, psks, frame key).
    pub fn secret(&self) -> &[u8; 32] {
        self.epochs.meta(self.key_epoch()).unwrap_or(&self.secret)
    }

    /// The newest epoch whose keys we hold: what we send and address in.
    /// Behind the log's epoch while we wait for the new epoch's secret.
    pub fn key_epoch(&self) -> u32 {
        self.epochs.newest().unwrap_or_else(|| self.log.epoch())
    }

    /// Whether our log is in an epoch whose keys have not reached us yet.
    pub fn waiting_for_keys(&self) -> bool {
        !self.removed && self.log.epoch() > self.key_epoch()
    }

    /// Whether `tag` names us, in any epoch we hold keys for.
    pub fn is_my_tag(&self, tag: &Tag) -> bool {
        self.my_tags.contains(tag)
    }

    /// The frame authenticator's verdict: `None` when it names an epoch
    /// whose keys we do not hold (we cannot judge it).
    ///
    /// An epoch a little ahead of our log's (its secret may still be on
    /// its way) or older than every epoch we keep (from before we joined,
    /// or long past) is left unjudged; one far ahead no member can be
    /// using honestly, and is refused like a wrong authenticator.
    pub(super) fn mac_valid(&self, bytes: &[u8]) -> Option<bool> {
        let Some(epoch) = frames::frame_mac_epoch(bytes) else {
            return Some(false);
        };
        match self.epochs.meta(epoch) {
            Some(meta) => Some(frames::frame_mac_valid(bytes, meta, &self.id())),
            None => {
                let ahead = self.log.epoch().max(self.key_epoch()).saturating_add(UNJUDGED_EPOCHS_AHEAD);
                if epoch <= ahead { None } else { Some(false) }
            }
        }
    }

    /// The key our operation binds (what we answer a join with).
    pub fn noise(&self) -> &NoiseSecret {
        &self.noise
    }

    /// Generation 0's network key, from the creator's circle secret.
    fn root_network_key(&self) -> [u8; 32] {
        circle::network_key(&self.secret, &self.id())
    }

    /// The newest network generation's key we hold (SPEC §2a): what
    /// invites carry and we dial with.
    pub fn network_key(&self) -> [u8; 32] {
        self.epochs.newest_network().copied().unwrap_or_else(|| self.root_network_key())
    }

    /// Who may link to the circle's network, with which keys (SPEC §2a).
    /// The newest generation's key opens links without a proof only while
    /// our log's epoch is one we hold: from the moment a Remove or Rotate
    /// reaches our log until its secret does, every key asks for a proof,
    /// so a removed member cannot slip in during the rekey.
    pub fn network_access(&self) -> NetworkAccess {
        let mut keys: Vec<Zeroizing<[u8; 32]>> =
            self.epochs.networks().into_iter().map(|k| Zeroizing::new(*k)).collect();
        if keys.is_empty() {
            keys.push(Zeroizing::new(self.root_network_key()));
        }
        let dial = keys.pop().unwrap_or_default();
        let open = self.epochs.has(self.log.epoch()) && !self.removed;
        let members = self.log.members().into_iter().map(|r| (r.id, r.binding.noise_public)).collect();
        // Even once removed in our own view: should the removal be voided
        // (a more senior concurrent revocation), the others take our proof
        // again, and we must still be able to give it.
        let me = Some((self.me, self.noise.duplicate()));
        let invites = self
            .log
            .open_invites()
            .into_iter()
            .filter_map(|(op, public, expires)| Some((op, (crate::crypto::link::invite_dh_public(&public)?, expires))))
            .collect();
        let closed_invites = self
            .log
            .closed_invites()
            .into_iter()
            .filter_map(|(op, public, why)| {
                let reason = match why {
                    crate::circle::ClosedInvite::Used => super::frames::REFUSED_USED,
                    crate::circle::ClosedInvite::Revoked => super::frames::REFUSED_REVOKED,
                };
                Some((op, (crate::crypto::link::invite_dh_public(&public)?, reason)))
            })
            .collect();
        NetworkAccess { dial, open, grace: keys, members, invites, closed_invites, me, invite: None }
    }

    pub fn topic(&self) -> String {
        circle::topic(self.secret(), &self.id(), self.key_epoch())
    }

    /// Topics to listen on: those of the two newest epochs we hold keys
    /// for, so members a moment apart in moving to a new epoch still hear
    /// each other. A member without an epoch's secret cannot name its topic.
    pub fn topics(&self) -> Vec<String> {
        self.epochs.entries.iter().rev().take(2).map(|(e, entry)| circle::topic(&entry.meta, &self.id(), *e)).collect()
    }

    pub fn subscribe_output(&self) -> Output {
        Output::Subscribe { circle: self.id(), access: self.network_access(), topics: self.topics() }
    }

    pub fn member_name(&self, m: &MemberId) -> String {
        self.log
            .member(m)
            .map(|r| r.display_name.clone())
            .or_else(|| self.log.former_members().into_iter().find(|(id, _)| id == m).map(|(_, n)| n))
            .unwrap_or_else(|| m.fingerprint().to_string())
    }

    /// Pair tags of every member (and ours) in every epoch we hold keys for.
    pub(super) fn refresh_member_tags(&mut self) {
        let id = self.id();
        let members: Vec<MemberId> = self.log.members().into_iter().map(|r| r.id).collect();
        self.tags.clear();
        self.my_tags.clear();
        for entry in self.epochs.entries.values() {
            for m in &members {
                self.tags.insert(circle::pair_tag(&entry.meta, &id, m), *m);
            }
            self.my_tags.insert(circle::pair_tag(&entry.meta, &id, &self.me));
        }
        self.my_tag = circle::pair_tag(self.secret(), &id, &self.me);
    }

    // ---------------------------------------------------------------
    // Sending
    // ---------------------------------------------------------------

    fn deadline(&self, start_ms: u64, timer_secs: Option<u32>) -> Option<u64> {
        let cap = self.log.max_disappear_secs();
        let secs = match (timer_secs.filter(|t| *t > 0), cap) {
            (Some(t), Some(c)) => Some(t.min(c)),
            (Some(t), None) => Some(t),
            (None, c) => c,
        }?;
        Some(start_ms.saturating_add(u64::from(secs) * 1000))
    }

    fn publish(&mut self, ctx: &mut Ctx<'_>, frame: Vec<u8>, expires_at_ms: u64) {
        self.publish_to(ctx, None, frame, expires_at_ms);
    }

    /// Publish; a pairwise frame names its recipient so that the node can
    /// deliver it directly (see [`Output::Publish`]). Either way we keep it,
    /// so a recipient who missed it gets it from us at the next catch-up.
    fn publish_to(&mut self, ctx: &mut Ctx<'_>, recipient: Option<MemberId>, frame: Vec<u8>, expires_at_ms: u64) {
        let id = frame_id(&frame);
        self.keep_frame(ctx, id, frame.clone(), expires_at_ms);
        ctx.out.push(Output::Publish { circle: self.id(), topic: self.topic(), frame, recipient });
    }

    fn keep_frame(&mut self, ctx: &mut Ctx<'_>, id: FrameId, bytes: Vec<u8>, expires_at_ms: u64) {
        let circle = self.id();
        ctx.out.push(Output::Persist(Record::Frame { circle, id, bytes: bytes.clone(), expires_at_ms }));
        self.hold_frame(ctx, id, bytes, expires_at_ms);
    }

    /// Keep a frame in memory only: one nobody has verified yet (waiting for
    /// its key or its sender's admission) costs no disk write, so a flood of
    /// made-up frames cannot slow the node down to its disk's pace. It is
    /// persisted once it opens; if the node restarts first, catch-up brings
    /// it again (the node no longer holds it).
    fn hold_frame(&mut self, ctx: &mut Ctx<'_>, id: FrameId, bytes: Vec<u8>, expires_at_ms: u64) {
        let circle = self.id();
        let owner = self.frame_owner(&bytes);
        for gone in self.frames.insert(id, bytes, expires_at_ms, owner) {
            ctx.out.push(Output::Persist(Record::DeleteFrame { circle, id: gone }));
        }
    }

    /// Whose frame this is, for the store's per-sender quota: the member
    /// whose chain sealed a group frame, or who an authenticated pairwise
    /// frame names as its sender; `UNVERIFIED` while not known.
    fn frame_owner(&self, bytes: &[u8]) -> Owner {
        let member = match bytes.get(1).copied() {
            Some(frame_type::GROUP) => {
                envelope::parse(bytes).ok().and_then(|f| self.receiving.get(&f.header.key_id).map(|r| r.sender))
            }
            Some(frame_type::CHAIN_ANNOUNCE) => {
                frames::parse_chain_announce(bytes).ok().and_then(|f| self.tags.get(&f.from).copied())
            }
            Some(_) => frames::parse_pair(bytes).ok().and_then(|f| self.tags.get(&f.from).copied()),
            None => None,
        };
        member.map_or(UNVERIFIED, |m| *m.as_bytes())
    }

    /// After a restore: give every held frame its owner.
    pub(super) fn reassign_frame_owners(&mut self) {
        let owners: Vec<(FrameId, Owner)> =
            self.frames.iter().map(|(id, f)| (*id, self.frame_owner(&f.bytes))).collect();
        for (id, owner) in owners {
            self.frames.set_owner(&id, owner);
        }
    }

    pub(super) fn rotate_if_due(&mut self, ctx: &mut Ctx<'_>) {
        let old_enough = ctx.now.saturating_sub(self.chain.created_at_ms()) >= ctx.config.rotate_after_ms;
        let used_enough = self.chain.next_counter() >= ctx.config.rotate_after_messages;
        if old_enough || used_enough {
            self.new_chain(ctx);
        }
    }

    /// Replace our sending chain and give the new one to every member.
    pub fn new_chain(&mut self, ctx: &mut Ctx<'_>) {
        // Our scheduled update replaces our pairwise key too (healing: a
        // copy of our state cannot open what is sent to us next). It is
        // announced under the chain being replaced, which every member
        // holds, so the distributions below are opened, not held.
        self.rotate_prekey(ctx);
        self.previous_chain = Some((self.chain.key_id(), self.chain.next_counter()));
        self.chain = SendingChain::generate(self.log.epoch(), ctx.now, ctx.rng);
        self.distribute_chain(ctx);
        ctx.out.push(Output::Persist(Record::CircleState { circle: self.id() }));
    }

    pub(super) fn distribute_chain(&mut self, ctx: &mut Ctx<'_>) {
        let others: Vec<MemberId> = self.log.members().into_iter().map(|r| r.id).filter(|m| *m != ctx.me).collect();
        for m in others {
            self.send_chain_to(ctx, &m);
        }
    }

    /// Our current chain as a SenderKey payload (sent pairwise, or in a
    /// joiner's welcome).
    pub(super) fn chain_payload(&self, ctx: &Ctx<'_>) -> PairPayload {
        let context = self.log.group_context();
        let owner_proof =
            self.chain.sign(&frames::chain_owner_message(&self.id(), &ctx.me, self.chain.epoch(), &context));
        PairPayload::SenderKey {
            distribution: self.chain.distribution(),
            context,
            owner_proof,
            previous: self.previous_chain,
            heads: self.log.heads(),
        }
    }

    fn send_chain_to(&mut self, ctx: &mut Ctx<'_>, member: &MemberId) {
        let payload = self.chain_payload(ctx);
        self.send_pairwise(ctx, member, &payload);
        self.chain_holders.insert(*member);
    }

    // ---------------------------------------------------------------
    // Epochs (SPEC §5.1a)
    // ---------------------------------------------------------------

    /// Our log moved to a new epoch. Its rekeyer chooses the epoch secret
    /// and sends it to every other member pairwise (n − 1 frames); everyone
    /// else waits for it (holding their messages meanwhile).
    pub(super) fn on_new_epoch(&mut self, ctx: &mut Ctx<'_>) {
        let epoch = self.log.epoch();
        if self.epochs.has(epoch) || self.removed {
            return;
        }
        match self.log.rekeyer() {
            Some((raiser, rekeyer)) if rekeyer == ctx.me => {
                let secret: Zeroizing<[u8; 32]> = Zeroizing::new(crate::entropy::random_array(ctx.rng));
                let others: Vec<MemberId> =
                    self.log.members().into_iter().map(|r| r.id).filter(|m| *m != ctx.me).collect();
                // Sent under the epoch we are leaving, which they hold.
                for m in others {
                    let payload = PairPayload::EpochKey { epoch, raiser, secret: secret.clone() };
                    self.send_pairwise(ctx, &m, &payload);
                }
                self.install_epoch(ctx, epoch, raiser, &secret);
            }
            _ => {
                self.awaiting_epoch_since.get_or_insert(ctx.now);
                self.try_pending_epoch_keys(ctx);
            }
        }
    }

    /// Install an epoch key held for our log's current epoch, if its
    /// sender is that epoch's rekeyer.
    pub(super) fn try_pending_epoch_keys(&mut self, ctx: &mut Ctx<'_>) {
        let epoch = self.log.epoch();
        if self.epochs.has(epoch) {
            return;
        }
        let Some((raiser, rekeyer)) = self.log.rekeyer() else {
            return;
        };
        let found =
            self.epochs.pending.iter().position(|p| p.epoch == epoch && p.raiser == raiser && p.from == rekeyer);
        if let Some(i) = found {
            let key = self.epochs.pending.remove(i);
            self.install_epoch(ctx, epoch, raiser, &key.secret);
        }
    }

    /// We hold the secret of our log's epoch: derive its keys (the secret
    /// itself is dropped by the caller, zeroized), move to its topic,
    /// announce our new chain, and send what waited.
    fn install_epoch(&mut self, ctx: &mut Ctx<'_>, epoch: u32, raiser: [u8; 32], secret: &[u8; 32]) {
        let members: Vec<MemberId> = self.log.members().into_iter().map(|r| r.id).collect();
        let closing = self.log.get(&raiser).is_some_and(|op| op.body.closes_network());
        let base = self.root_network_key();
        self.epochs.install(&self.id(), epoch, raiser, secret, &members, closing, &base, ctx.now);
        self.refresh_member_tags();
        self.awaiting_epoch_since = None;
        // Subscribe first: what follows is published on the new topic.
        ctx.out.push(self.subscribe_output());
        if self.log.is_member(&ctx.me) {
            self.announce_new_chain(ctx, epoch);
        }
        ctx.out.push(Output::Persist(Record::CircleState { circle: self.id() }));
        self.retry_held_announcements(ctx, epoch);
        self.retry_awaiting_senders(ctx);
        for (body, timer) in std::mem::take(&mut self.outbox) {
            self.send_group(ctx, body, timer);
        }
    }

    /// Our chain for a new epoch, broadcast once: sealed under our announce
    /// key (which only members holding the epoch secret derive) and signed
    /// by the chain it replaces (which they already bound to us). Members
    /// holding no chain of ours get it pairwise instead.
    fn announce_new_chain(&mut self, ctx: &mut Ctx<'_>, epoch: u32) {
        self.rotate_prekey(ctx);
        let old = std::mem::replace(&mut self.chain, SendingChain::generate(epoch, ctx.now, ctx.rng));
        self.previous_chain = Some((old.key_id(), old.next_counter()));
        let encoded = Zeroizing::new(self.chain_payload(ctx).encode());
        let signature = old.sign(&frames::chain_announce_signed(&self.id(), epoch, &encoded));
        drop(old);
        let mut plain = Zeroizing::new(encoded.to_vec());
        plain.extend_from_slice(&signature);
        if let (Some(key), Ok(padded)) = (self.epochs.take_announce_key(epoch, &ctx.me), pad(&plain)) {
            let padded = Zeroizing::new(padded);
            let nonce: [u8; 12] = crate::entropy::random_array(ctx.rng);
            let mut frame = frames::chain_announce_header(epoch, &self.my_tag, &nonce);
            match crate::crypto::aead::seal(&key, &nonce, &frame, &padded) {
                Ok(ct) => {
                    frame.extend_from_slice(&ct);
                    let expiry = ctx.now.saturating_add(self.retention_ms(ctx.config));
                    self.publish(ctx, frame, expiry);
                }
                Err(e) => ctx.event(Event::Error { reason: format!("chain announcement failed: {e}") }),
            }
        }
        let others: Vec<MemberId> = self.log.members().into_iter().map(|r| r.id).filter(|m| *m != ctx.me).collect();
        for m in others {
            if !self.chain_holders.contains(&m) {
                self.send_chain_to(ctx, &m);
            }
        }
        ctx.out.push(Output::Persist(Record::CircleState { circle: self.id() }));
    }

    /// A chain announcement from `from`: open it with its announce key,
    /// check the chain that signed it is one of `from`'s, then take the
    /// chain as from a pairwise distribution. The announce key is erased.
    fn open_announcement(
        &mut self,
        ctx: &mut Ctx<'_>,
        from: MemberId,
        frame: &frames::ChainAnnounce<'_>,
    ) -> Result<(), String> {
        let key = self
            .epochs
            .entries
            .get(&frame.epoch)
            .and_then(|e| e.announce.get(&from))
            .cloned()
            .ok_or("chain announcement whose key we no longer hold (already read, or past the horizon)")?;
        let padded = Zeroizing::new(
            crate::crypto::aead::open(&key, &frame.nonce, frame.header, frame.ciphertext)
                .map_err(|_| "chain announcement does not open")?,
        );
        let content = unpad(&padded).map_err(|e| e.to_string())?;
        let split = content.len().checked_sub(64).ok_or("chain announcement too short")?;
        let (encoded, signature) = content.split_at(split);
        let payload = PairPayload::decode(encoded).map_err(|e| e.to_string())?;
        let PairPayload::SenderKey { previous: Some((signer, _)), distribution, .. } = &payload else {
            return Err("chain announcement without the chain that signs it".into());
        };
        if distribution.epoch != frame.epoch {
            return Err("chain announcement for another epoch".into());
        }
        let mut sig = [0u8; 64];
        sig.copy_from_slice(signature);
        let signed = frames::chain_announce_signed(&self.id(), frame.epoch, encoded);
        match self.receiving.get(signer).filter(|r| r.sender == from) {
            Some(r) => r.chain.verify(&signed, &sig).map_err(|_| "chain announcement signature does not verify")?,
            None => {
                self.request_chain(ctx, from);
                return Err("chain announcement signed by a chain we do not hold; asked for the chain".into());
            }
        }
        self.epochs.take_announce_key(frame.epoch, &from);
        self.handle_pair_payload(ctx, from, payload).map(|_| ())
    }

    /// Announcements of an epoch that arrived before its secret.
    fn retry_held_announcements(&mut self, ctx: &mut Ctx<'_>, epoch: u32) {
        let held: Vec<(FrameId, Vec<u8>)> = self
            .frames
            .iter()
            .filter(|(_, f)| {
                f.bytes.get(1) == Some(&frame_type::CHAIN_ANNOUNCE)
                    && frames::parse_chain_announce(&f.bytes).is_ok_and(|a| a.epoch == epoch)
            })
            .map(|(id, f)| (*id, f.bytes.clone()))
            .collect();
        for (id, bytes) in held {
            self.frames.remove(&id);
            let _ = self.on_topic_frame(ctx, bytes);
        }
    }

    fn request_chain(&mut self, ctx: &mut Ctx<'_>, from: MemberId) {
        let last = self.chain_requested_at.get(&from).copied();
        if last.is_some_and(|t| ctx.now.saturating_sub(t) < CHAIN_REQUEST_INTERVAL_MS) {
            return;
        }
        self.chain_requested_at.insert(from, ctx.now);
        self.send_pairwise(ctx, &from, &PairPayload::ChainRequest);
    }

    /// Seal a group message under our chain and publish it.
    pub fn send_group(&mut self, ctx: &mut Ctx<'_>, body: Body, timer_secs: Option<u32>) -> Option<MessageId> {
        if self.removed {
            ctx.event(Event::Error { reason: "you are no longer a member of this circle".into() });
            return None;
        }
        // Never seal what receivers would refuse (and count against us).
        if let Err(reason) = super::message::check_body(&body) {
            ctx.event(Event::Error { reason });
            return None;
        }
        // After a membership change, what people write waits for the new
        // epoch's keys: under the old ones a member just removed reads it.
        // So does our presence (transport id and addresses), newest only.
        if self.waiting_for_keys() && matches!(body, Body::Presence(_)) {
            self.outbox.retain(|(held, _)| !matches!(held, Body::Presence(_)));
            self.outbox.push((body, timer_secs));
            return None;
        }
        if self.waiting_for_keys() && matches!(body, Body::Text(_) | Body::Announcement(_)) {
            if self.outbox.len() >= MAX_OUTBOX {
                ctx.event(Event::Error {
                    reason: "message not sent: too many waiting for the circle's new keys".into(),
                });
            } else {
                self.outbox.push((body, timer_secs));
                ctx.event(Event::Queued {
                    circle: self.id(),
                    reason: "waiting for the circle's new keys after a membership change; sent when they arrive".into(),
                });
            }
            return None;
        }
        self.rotate_if_due(ctx);
        self.seal_and_publish(ctx, body, timer_secs)
    }

    /// Replace our pairwise key and tell the circle (SPEC §6.1).
    pub(super) fn rotate_prekey(&mut self, ctx: &mut Ctx<'_>) {
        if self.removed {
            return;
        }
        let (id, _) = self.prekeys.rotate(ctx.now, ctx.rng);
        let signed = SignedPairwiseKey::create(ctx.identity, &self.id(), id, &self.prekeys.current.secret);
        self.seal_and_publish(ctx, Body::Prekey(signed), None);
        ctx.out.push(Output::Persist(Record::CircleState { circle: self.id() }));
    }

    fn seal_and_publish(&mut self, ctx: &mut Ctx<'_>, body: Body, timer_secs: Option<u32>) -> Option<MessageId> {
        let inner = Inner {
            circle_id: self.id(),
            sender: ctx.me,
            epoch: self.chain.epoch(),
            sent_at_ms: ctx.now,
            timer_secs: timer_secs.unwrap_or(0),
            body,
        };
        // The plaintext, encoded and padded, is wiped once sealed.
        let encoded = Zeroizing::new(inner.encode());
        let padded = match pad(&encoded) {
            Ok(p) => Zeroizing::new(p),
            Err(e) => {
                ctx.event(Event::Error { reason: format!("message not sent: {e}") });
                return None;
            }
        };
        let (header, frame) = match envelope::seal(&mut self.chain, &padded) {
            Ok(x) => x,
            Err(e) => {
                ctx.event(Event::Error { reason: format!("message not sent: {e}") });
                return None;
            }
        };
        let id = message_id(&header.key_id, header.counter);
        let deadline = self.deadline(ctx.now, timer_secs);
        let frame_expiry = deadline.unwrap_or(ctx.now.saturating_add(ctx.config.frame_retention_ms));
        let info =
            EnvelopeInfo { key_id: header.key_id, epoch: header.epoch, counter: header.counter, frame: frame.clone() };
        self.publish(ctx, frame, frame_expiry);
        // Only our chain moved on (a rotation above saved the whole state).
        ctx.out.push(Output::Persist(Record::Chain { circle: self.id(), key_id: header.key_id }));
        self.deliver(ctx, &inner, id, deadline, Some(info));
        Some(id)
    }

    // ---------------------------------------------------------------
    // Pairwise
    // ---------------------------------------------------------------

    fn kk_context(&self, epoch: u32, initiator: MemberId, responder: MemberId) -> KkContext {
        KkContext { circle_id: self.id(), epoch, initiator, responder }
    }

    /// Send `payload` to `member` in the first message of a handshake of
    /// its own (SPEC §6.1): a fresh ephemeral key on our side, the
    /// member's newest announced pairwise key on theirs, so no payload is
    /// ever sealed under keys a copy of either profile made earlier holds.
    pub fn send_pairwise(&mut self, ctx: &mut Ctx<'_>, member: &MemberId, payload: &PairPayload) {
        let Some(record) = self.log.member(member) else {
            return;
        };
        // Never the member's static key: its first pairwise key at least.
        let PairwiseKey { id: to_key, public: remote } = self.peer_keys.current(member, &record.binding);
        let their_tag = circle::pair_tag(self.secret(), &self.id(), member);
        let encoded = Zeroizing::new(payload.encode());
        let padded = match pad(&encoded) {
            Ok(p) if p.len() <= frames::MAX_PAIR_PADDED => Zeroizing::new(p),
            Ok(p) => {
                ctx.event(Event::Error {
                    reason: format!(
                        "pairwise payload too large: {} bytes padded, at most {}",
                        p.len(),
                        frames::MAX_PAIR_PADDED
                    ),
                });
                return;
            }
            Err(e) => {
                ctx.event(Event::Error { reason: format!("pairwise payload too large: {e}") });
                return;
            }
        };
        let epoch = self.key_epoch();
        let context = self.kk_context(epoch, ctx.me, *member);
        let psk = Zeroizing::new(circle::pair_psk(self.secret(), &self.id(), &ctx.me, member));
        let noise = match KkInitiator::start(&self.noise, &remote, &psk, &context, &padded, ctx.rng) {
            // One-way: the handshake is never finished, its state is dropped.
            Ok((_, noise)) => noise,
            Err(e) => {
                ctx.event(Event::Error { reason: format!("pairwise handshake failed: {e}") });
                return;
            }
        };
        let frame = frames::encode_hello(&PairFrame { to: their_tag, from: self.my_tag, epoch, to_key, noise: &noise });
        let expiry = ctx.now.saturating_add(self.retention_ms(ctx.config));
        let frame = self.authenticate_pair(frame);
        self.publish_to(ctx, Some(*member), frame, expiry);
    }

    /// The outer authenticator every current member checks before keeping
    /// or relaying a pairwise frame (SPEC §6.2b), under the current epoch's
    /// frame key. Public for tests that craft frames as a member could.
    pub fn authenticate_pair(&self, frame: Vec<u8>) -> Vec<u8> {
        frames::add_frame_mac(frame, self.secret(), &self.id(), self.key_epoch())
    }

    fn on_pair_frame(&mut self, ctx: &mut Ctx<'_>, frame: PairFrame<'_>) -> Result<(), String> {
        let meta = *self.epochs.meta(frame.epoch).ok_or("pairwise frame of an epoch whose keys we do not hold")?;
        if frame.to != circle::pair_tag(&meta, &self.id(), &ctx.me) {
            return Ok(()); // For someone else: kept as their mailbox, nothing to do.
        }
        let Some(&from) = self.tags.get(&frame.from) else {
            return Err("pairwise frame from a non-member".into());
        };
        let remote =
            self.log.member(&from).map(|r| r.binding.noise_public).ok_or("pairwise frame from a non-member")?;
        if frame.to_key == 0 {
            return Err("pairwise frame for key id 0: a static key is never a pairwise key".into());
        }
        // An examiner (tests) tries every key the profile holds, the bound
        // one included, not only the one the frame names.
        let mut locals: Vec<&NoiseSecret> = self.prekeys.get(frame.to_key).into_iter().collect();
        if self.examiner {
            locals.push(&self.noise);
        }
        if locals.is_empty() {
            return Err("pairwise frame for a key of ours already erased (or never made)".into());
        }
        let sid = pairwise::session_id(frame.noise);
        if self.seen_hellos.contains(&sid) {
            return Err("replayed pairwise handshake".into());
        }
        let psk = Zeroizing::new(circle::pair_psk(&meta, &self.id(), &ctx.me, &from));
        let context = self.kk_context(frame.epoch, from, ctx.me);
        let mut opened = Err(String::new());
        for local in locals {
            opened = kk_respond(local, &remote, &psk, &context, frame.noise, &[], ctx.rng)
                .map_err(|e| format!("pairwise handshake refused: {e}"));
            if opened.is_ok() {
                break;
            }
        }
        let (_, payload, _) = opened?;
        self.seen_hellos.insert(sid);
        ctx.out.push(Output::Persist(Record::CircleState { circle: self.id() }));
        let payload = Zeroizing::new(payload);
        let carried_key = self.on_pair_payload(ctx, from, &payload)?;
        if carried_key {
            // Key material opened with this key: replace it soon.
            self.prekeys.note_used(frame.to_key, ctx.now);
        }
        Ok(())
    }

    /// Act on a pairwise payload; `Ok(true)` when it carried key material.
    pub(super) fn on_pair_payload(&mut self, ctx: &mut Ctx<'_>, from: MemberId, padded: &[u8]) -> Result<bool, String> {
        let content = unpad(padded).map_err(|e| e.to_string())?;
        let payload = PairPayload::decode(content).map_err(|e| e.to_string())?;
        self.handle_pair_payload(ctx, from, payload)
    }

    /// A pairwise payload from `from`, however it reached us authenticated
    /// (a pairwise frame, or the admitter's chain in our welcome).
    pub(super) fn handle_pair_payload(
        &mut self,
        ctx: &mut Ctx<'_>,
        from: MemberId,
        payload: PairPayload,
    ) -> Result<bool, String> {
        match payload {
            PairPayload::EpochKey { epoch, raiser, secret } => {
                if !self.epochs.has(epoch) && epoch >= self.log.epoch() {
                    self.epochs.hold(PendingEpochKey { from, epoch, raiser, secret });
                    self.try_pending_epoch_keys(ctx);
                    ctx.out.push(Output::Persist(Record::CircleState { circle: self.id() }));
                }
                Ok(true)
            }
            PairPayload::ChainRequest => {
                let last = self.chain_served_at.get(&from).copied();
                if last.is_none_or(|t| ctx.now.saturating_sub(t) >= CHAIN_REQUEST_INTERVAL_MS) {
                    self.chain_served_at.insert(from, ctx.now);
                    self.send_chain_to(ctx, &from);
                }
                Ok(false)
            }
            PairPayload::SenderKey { distribution, context, owner_proof, previous, heads } => {
                let key_id = distribution.key_id();
                // The same chain from an earlier counter, while we have read
                // nothing under it: take the earlier state (its first
                // distribution came after one made for a later request, as
                // for a joiner who asks for a chain sent before its welcome).
                let earlier = self.receiving.get(&key_id).is_some_and(|r| {
                    r.sender == from
                        && distribution.counter < r.started_at
                        && r.chain.next_counter() == r.started_at
                        && r.chain.skipped_len() == 0
                });
                if !earlier && (self.receiving.contains_key(&key_id) || self.retired_keys.contains(&key_id)) {
                    return Ok(true); // Already known: a duplicate or a replay.
                }
                // Distributions may arrive out of order; one for an epoch much
                // older than the sender's newest is a replay, not a delay.
                if self.latest_epoch_of.get(&from).is_some_and(|e| *e > distribution.epoch.saturating_add(STALE_EPOCHS))
                {
                    return Err("stale sender key (much older epoch) refused".into());
                }
                let chain = ReceivingChain::from_distribution(&distribution).map_err(|e| e.to_string())?;
                let started_at = distribution.counter;
                // Only the holder of the chain's signing key can bind it to
                // a sender: a member passing on someone else's chain as its
                // own cannot.
                let claim = frames::chain_owner_message(&self.id(), &from, distribution.epoch, &context);
                chain.verify(&claim, &owner_proof).map_err(|_| "sender key not bound to its sender: refused")?;
                self.check_agreement(ctx, from, &context, &heads);
                self.log.acknowledge(from, &heads);
                // A member holds at most a few chains: a flood of
                // distributions replaces its oldest instead of growing.
                let mine: Vec<(u32, bool, KeyId)> = self
                    .receiving
                    .iter()
                    .filter(|(k, r)| r.sender == from && **k != key_id)
                    .map(|(k, r)| (r.chain.epoch(), r.final_counter.is_none(), *k))
                    .collect();
                if mine.len() >= MAX_CHAINS_PER_MEMBER
                    && let Some((_, _, oldest)) = mine.into_iter().min()
                {
                    self.receiving.remove(&oldest);
                    self.retired_keys.insert(oldest);
                }
                let newest = self.latest_epoch_of.get(&from).copied().unwrap_or(0).max(distribution.epoch);
                self.latest_epoch_of.insert(from, newest);
                if let Some((prev_id, final_counter)) = previous
                    && let Some(r) = self.receiving.get_mut(&prev_id)
                    && r.sender == from
                {
                    r.final_counter = Some(final_counter);
                    r.retired_at_ms = Some(ctx.now);
                }
                self.receiving.insert(
                    key_id,
                    Receiver { sender: from, chain, started_at, final_counter: None, retired_at_ms: None },
                );
                self.forget_spent_chains();
                ctx.out.push(Output::Persist(Record::CircleState { circle: self.id() }));
                if heads.iter().any(|h| !self.log.contains(h)) {
                    self.request_log(ctx, from);
                }
                self.retry_awaiting(ctx, &key_id);
                Ok(true)
            }
            PairPayload::LogRequest => {
                let ops: Vec<Vec<u8>> = self.log.ops_in_order().into_iter().map(Op::encode).collect();
                // Several payloads if the log does not fit one padded message.
                for chunk in split_ops(ops) {
                    self.send_pairwise(ctx, &from, &PairPayload::LogOps(chunk));
                }
                Ok(false)
            }
            PairPayload::LogOps(ops) => {
                // Operations this member holds and we refuse: our logs differ.
                let mut refused = 0;
                for bytes in ops {
                    match Op::decode(&bytes) {
                        Ok(op) => refused += usize::from(self.insert_op(ctx, op)),
                        Err(_) => refused += 1,
                    }
                }
                // Holding operations we refuse is a split only if it shows in
                // the roster: the member's claimed view differs from ours.
                let differs = self.claimed_context.get(&from).is_some_and(|c| *c != self.log.group_context());
                if refused > 0 && differs {
                    self.split_view(ctx, from);
                }
                Ok(false)
            }
        }
    }

    /// Agreement (SPEC §4.5): a distribution names the sender's group
    /// context and heads. Heads we lack: ask for the log. Heads we hold
    /// that do not give the context claimed: the sender's view of the
    /// roster differs from what the operations say, shown loudly.
    fn check_agreement(&mut self, ctx: &mut Ctx<'_>, from: MemberId, context: &[u8; 32], heads: &[[u8; 32]]) {
        self.claimed_context.insert(from, *context);
        if heads.is_empty() || heads.len() >= frames::MAX_HEADS {
            return; // Possibly cut short: not enough to judge.
        }
        match self.log.context_at(heads) {
            None => self.request_log(ctx, from),
            Some(ours) if ours != *context => self.split_view(ctx, from),
            Some(_) => {}
        }
    }

    /// A second, different frame that verifies as message `counter` of
    /// `key_id`: keep both as evidence and warn in every member's client.
    fn check_equivocation(&mut self, ctx: &mut Ctx<'_>, member: MemberId, key_id: &KeyId, counter: u32, frame: &[u8]) {
        let id = message_id(key_id, counter);
        let Some(first) = self.messages.get(&id).and_then(|m| m.envelope.as_ref()).map(|e| e.frame.clone()) else {
            return;
        };
        if first.as_slice() == frame || self.equivocations.iter().any(|e| e.key_id == *key_id && e.counter == counter) {
            return;
        }
        if self.equivocations.len() >= MAX_EQUIVOCATIONS {
            self.equivocations.remove(0);
        }
        self.equivocations.push(Equivocation { member, key_id: *key_id, counter, first, second: frame.to_vec() });
        let name = self.member_name(&member);
        ctx.event(Event::Equivocation { circle: self.id(), member, name: name.clone() });
        self.system_message(
            ctx,
            member,
            format!(
                "⚠ {name} signed two different messages as the same one: members may have been shown different \
                 things. Their client is misbehaving or their keys are in someone else's hands."
            ),
        );
    }

    /// See [`super::Engine::as_examiner`]: keep every secret, forget every
    /// frame, received chain and replay memory.
    pub(super) fn as_examiner(&mut self) {
        self.examiner = true;
        let ids: Vec<FrameId> = self.frames.iter().map(|(id, _)| *id).collect();
        for id in ids {
            self.frames.remove(&id);
        }
        self.seen_hellos = BoundedSet::new(SEEN_HELLOS);
        self.receiving.clear();
        self.retired_keys = BoundedSet::new(RETIRED_KEYS);
        self.latest_epoch_of.clear();
        self.messages.clear();
        self.consumed = BoundedSet::new(CONSUMED_FRAMES);
    }

    /// Evidence of equivocation seen in this circle.
    pub fn equivocations(&self) -> &[Equivocation] {
        &self.equivocations
    }

    /// Tell the user, once per member, that `member` sees another roster.
    pub(super) fn split_view(&mut self, ctx: &mut Ctx<'_>, member: MemberId) {
        if !self.split_views.insert(member) {
            return;
        }
        let name = self.member_name(&member);
        ctx.event(Event::SplitView { circle: self.id(), member, name: name.clone() });
        self.system_message(
            ctx,
            member,
            format!(
                "⚠ {name}'s view of who is in this circle differs from yours. Someone may be showing members different \
                 rosters: compare the member list with {name} in person."
            ),
        );
    }

    fn request_log(&mut self, ctx: &mut Ctx<'_>, from: MemberId) {
        let last = self.log_requested_at.get(&from).copied();
        if last.is_some_and(|t| ctx.now.saturating_sub(t) < LOG_REQUEST_INTERVAL_MS) {
            return;
        }
        self.log_requested_at.insert(from, ctx.now);
        self.send_pairwise(ctx, &from, &PairPayload::LogRequest);
    }

    /// A chain whose sender moved on and whose every message arrived holds
    /// no key anyone needs: erase it now (forward secrecy).
    fn forget_spent_chains(&mut self) -> bool {
        let spent: Vec<KeyId> = self
            .receiving
            .iter()
            .filter(|(_, r)| r.final_counter.is_some_and(|f| r.chain.next_counter() >= f && r.chain.skipped_len() == 0))
            .map(|(k, _)| *k)
            .collect();
        let any = !spent.is_empty();
        for k in spent {
            self.receiving.remove(&k);
            self.retired_keys.insert(k);
        }
        any
    }

    fn retry_awaiting(&mut self, ctx: &mut Ctx<'_>, key_id: &KeyId) {
        let Some(ids) = self.awaiting_key.remove(key_id) else {
            return;
        };
        self.awaiting_count = self.awaiting_count.saturating_sub(ids.len());
        for id in ids {
            let Some(bytes) = self.frames.get(&id).map(|f| f.bytes.clone()) else {
                continue;
            };
            if let Err(refusal) = self.open_group(ctx, id, &bytes) {
                ctx.event(Event::Rejected { circle: self.id(), reason: refusal.reason });
            }
        }
    }

    // ---------------------------------------------------------------
    // Receiving on the topic
    // ---------------------------------------------------------------

    /// Handle any frame from the circle topic or a catch-up response;
    /// returns what the network should make of the peer that passed it on.
    pub fn on_topic_frame(&mut self, ctx: &mut Ctx<'_>, bytes: Vec<u8>) -> Verdict {
        let id = frame_id(&bytes);
        match self.on_topic_frame_inner(ctx, bytes) {
            Ok(verdict) => verdict,
            Err(refusal) => {
                // A frame every member refuses is not kept for catch-up:
                // else anyone could fill members' stores (and, through
                // catch-up, everyone's) with forgeries, pushing out real frames.
                if refusal.verdict == Verdict::Reject && self.frames.remove(&id) {
                    ctx.out.push(Output::Persist(Record::DeleteFrame { circle: self.id(), id }));
                }
                ctx.event(Event::Rejected { circle: self.id(), reason: refusal.reason });
                refusal.verdict
            }
        }
    }

    fn on_topic_frame_inner(&mut self, ctx: &mut Ctx<'_>, bytes: Vec<u8>) -> Result<Verdict, Refusal> {
        if bytes.len() > frames::MAX_GOSSIP_FRAME {
            return Err(Refusal::invalid(format!("frame too long ({} bytes)", bytes.len())));
        }
        let kind = wire::read_prefix(&bytes).map_err(|e| Refusal::invalid(e.to_string()))?;
        let id = frame_id(&bytes);
        if self.frames.contains(&id) || self.consumed.contains(&id) {
            return Ok(Verdict::Ignore); // Seen: duplicates are shown once.
        }
        match kind {
            frame_type::GROUP => {
                let frame = envelope::parse(&bytes).map_err(|e| Refusal::invalid(e.to_string()))?;
                let key = frame.header.key_id;
                if !self.receiving.contains_key(&key)
                    && !self.retired_keys.contains(&key)
                    && self.awaiting_count >= AWAITING_KEY_MAX
                {
                    // Not kept: a kept frame is never asked for again, so
                    // keeping one we cannot queue would lose it for good.
                    return Ok(Verdict::Ignore);
                }
                let expiry = ctx.now.saturating_add(self.retention_ms(ctx.config));
                self.hold_frame(ctx, id, bytes.clone(), expiry);
                self.open_group(ctx, id, &bytes)
            }
            frame_type::PAIR_HELLO => {
                let frame = frames::parse_pair(&bytes).map_err(|e| Refusal::invalid(e.to_string()))?;
                // Every current member holds the frame key: a frame without
                // a valid authenticator was made up by someone outside the
                // circle (only the network key), and no honest member
                // relays it (SPEC §6.2b).
                match self.mac_valid(&bytes) {
                    Some(true) => {}
                    Some(false) => return Err(Refusal::invalid("pairwise frame without a valid circle authenticator")),
                    // An epoch we hold no keys for (newer, or long past):
                    // we cannot judge it, so neither keep nor blame.
                    None => return Ok(Verdict::Ignore),
                }
                let mine = self.my_tags.contains(&frame.to);
                let from_member = self.tags.contains_key(&frame.from);
                if !from_member {
                    // Perhaps a newcomer whose admission we have not seen yet:
                    // if it is for us, hold it (bounded, in memory) and retry
                    // when the roster changes. Mailbox for others only from
                    // known members: anything else could be made up by anyone
                    // in the network to fill the store.
                    if mine && self.awaiting_sender.len() < AWAITING_KEY_MAX {
                        let expiry = ctx.now.saturating_add(self.retention_ms(ctx.config));
                        self.hold_frame(ctx, id, bytes.clone(), expiry);
                        self.awaiting_sender.push(id);
                    }
                    return Ok(Verdict::Ignore);
                }
                if !mine {
                    // Another member's mailbox: relay it, and keep it no
                    // longer than the circle keeps messages (it may carry
                    // keys that read them).
                    let expiry = ctx.now.saturating_add(self.retention_ms(ctx.config));
                    self.keep_frame(ctx, id, bytes.clone(), expiry);
                    return Ok(Verdict::Accept);
                }
                let result = self.on_pair_frame(ctx, frame);
                // A frame for us is never kept once handled: only its id,
                // for de-duplication (its bytes and our key would open it).
                self.consumed.insert(id);
                // Only we can open a frame addressed to us, so whether it
                // opens says nothing about the member that relayed it: that
                // member checked what every member can (the authenticator,
                // the sender's tag) and judged it as we do for others'
                // mailbox frames. The verdict is the same, so a member
                // minting junk for us cannot get its relays cut off.
                if let Err(reason) = result {
                    ctx.event(Event::Rejected { circle: self.id(), reason });
                }
                Ok(Verdict::Accept)
            }
            frame_type::CHAIN_ANNOUNCE => {
                let a = frames::parse_chain_announce(&bytes).map_err(|e| Refusal::invalid(e.to_string()))?;
                let expiry = ctx.now.saturating_add(self.retention_ms(ctx.config));
                let Some(meta) = self.epochs.meta(a.epoch).copied() else {
                    if a.epoch > self.key_epoch() && self.awaiting_sender.len() < AWAITING_KEY_MAX {
                        // Its epoch's secret is on its way: tried again then.
                        self.hold_frame(ctx, id, bytes, expiry);
                    }
                    return Ok(Verdict::Ignore);
                };
                let from = self
                    .tags
                    .get(&a.from)
                    .copied()
                    .filter(|m| circle::pair_tag(&meta, &self.id(), m) == a.from)
                    // Local: who is a member is our view, and a member
                    // misled about the roster (a strike-back it took) must
                    // not cut off the honest members who would correct it.
                    .ok_or_else(|| Refusal::local("chain announcement from no member in our view"))?;
                self.keep_frame(ctx, id, bytes.clone(), expiry);
                if from != ctx.me
                    && self.epochs.has_announce_key(a.epoch, &from)
                    && let Err(reason) = self.open_announcement(ctx, from, &a)
                {
                    ctx.event(Event::Rejected { circle: self.id(), reason });
                }
                Ok(Verdict::Accept)
            }
            other => Err(Refusal::invalid(format!("frame type 0x{other:02x} does not belong on a circle topic"))),
        }
    }

    fn retention_ms(&self, config: &EngineConfig) -> u64 {
        match self.log.max_disappear_secs() {
            Some(s) => (u64::from(s) * 1000).min(config.frame_retention_ms),
            None => config.frame_retention_ms,
        }
    }

    /// The receiver's order of checks for a group frame (protocol/SPEC.md §6).
    fn open_group(&mut self, ctx: &mut Ctx<'_>, id: FrameId, bytes: &[u8]) -> Result<Verdict, Refusal> {
        let frame = envelope::parse(bytes).map_err(|e| Refusal::invalid(e.to_string()))?;
        let header = frame.header;
        let Some(receiver) = self.receiving.get(&header.key_id) else {
            if self.retired_keys.contains(&header.key_id) {
                return Err(Refusal::local("message under a retired key refused"));
            }
            self.await_key(ctx, header.key_id, id);
            return Ok(Verdict::Ignore);
        };
        let sender = receiver.sender;
        // A sender who is not a member in our view may still carry the
        // membership operation that changes that view (its removal may
        // lose to a concurrent one): open it, and keep only an operation.
        let former_member = !self.log.is_member(&sender);
        if receiver.final_counter.is_some_and(|f| header.counter >= f) {
            return Err(Refusal::local("message on a replaced chain refused (stale)"));
        }
        let (padded, advance) = match envelope::open_uncommitted(&receiver.chain, &frame) {
            Ok(x) => x,
            Err(CryptoError::Replay { .. }) => {
                // Shown once already, unless it is another frame signed as
                // the same message: equivocation (the signature checked).
                self.check_equivocation(ctx, sender, &header.key_id, header.counter, bytes);
                return Ok(Verdict::Ignore);
            }
            // How far ahead depends on how much of the chain this member saw.
            Err(e @ CryptoError::TooFarAhead { .. }) => return Err(Refusal::local(format!("message refused: {e}"))),
            // A bad signature, or a signed frame that does not open: the
            // same for every holder of the chain.
            Err(e) => return Err(Refusal::invalid(format!("message refused: {e}"))),
        };
        let padded = Zeroizing::new(padded);
        let content = unpad(&padded).map_err(|e| Refusal::invalid(format!("message refused: {e}")))?;
        let inner = Inner::decode(content).map_err(|e| Refusal::invalid(format!("message refused: {e}")))?;
        if inner.circle_id != self.id() || inner.sender != sender || inner.epoch != header.epoch {
            return Err(Refusal::invalid("message refused: inner sender, circle or epoch differ from the envelope"));
        }
        if inner.sent_at_ms > ctx.now.saturating_add(ctx.config.max_future_skew_ms) {
            // Clocks differ between members: not proof against whoever relayed it.
            return Err(Refusal::local("message refused: dated in the future"));
        }
        if former_member && !matches!(inner.body, Body::Op(_)) {
            let reason = format!("{} is no longer a member; message refused", self.member_name(&sender));
            return Err(Refusal::local(reason));
        }
        if let Some(r) = self.receiving.get_mut(&header.key_id) {
            r.chain.commit(advance);
        }
        // Usually only this chain moved on; erasing a spent one changes the set.
        let record = if self.forget_spent_chains() {
            Record::CircleState { circle: self.id() }
        } else {
            Record::Chain { circle: self.id(), key_id: header.key_id }
        };
        ctx.out.push(Output::Persist(record));
        let msg_id = message_id(&header.key_id, header.counter);
        let timer = (inner.timer_secs > 0).then_some(inner.timer_secs);
        let deadline = self.deadline(ctx.now, timer);
        if let Some(d) = deadline {
            self.frames.shorten(&id, d);
        }
        // Verified now: persist it for catch-up, with its final expiry.
        self.frames.set_owner(&id, *sender.as_bytes());
        if let Some(f) = self.frames.get(&id) {
            ctx.out.push(Output::Persist(Record::Frame {
                circle: self.id(),
                id,
                bytes: f.bytes.clone(),
                expires_at_ms: f.expires_at_ms,
            }));
        }
        let info =
            EnvelopeInfo { key_id: header.key_id, epoch: header.epoch, counter: header.counter, frame: bytes.to_vec() };
        self.deliver(ctx, &inner, msg_id, deadline, Some(info));
        Ok(Verdict::Accept)
    }

    /// After a restart: frames that were kept while waiting for their key,
    /// or for their sender to be admitted, wait again (the waiting lists
    /// live in memory only; without this such frames were never opened,
    /// and catch-up does not resend a frame we hold).
    pub(super) fn requeue_waiting_frames(&mut self) {
        let mut keys = Vec::new();
        let mut senders = Vec::new();
        for (id, f) in self.frames.iter() {
            match f.bytes.get(1).copied() {
                Some(frame_type::GROUP) => {
                    if let Ok(frame) = envelope::parse(&f.bytes) {
                        let key = frame.header.key_id;
                        if !self.receiving.contains_key(&key) && !self.retired_keys.contains(&key) {
                            keys.push((key, *id));
                        }
                    }
                }
                Some(_) => {
                    if let Ok(frame) = frames::parse_pair(&f.bytes)
                        && self.my_tags.contains(&frame.to)
                    {
                        senders.push(*id);
                    }
                }
                None => {}
            }
        }
        for (key, id) in keys.into_iter().take(AWAITING_KEY_MAX) {
            self.awaiting_key.entry(key).or_default().push(id);
            self.awaiting_count += 1;
        }
        self.awaiting_sender = senders.into_iter().take(AWAITING_KEY_MAX).collect();
    }

    /// The roster changed: retry pairwise frames from senders we did not know.
    pub(super) fn retry_awaiting_senders(&mut self, ctx: &mut Ctx<'_>) {
        let waiting = std::mem::take(&mut self.awaiting_sender);
        for id in waiting {
            let Some(bytes) = self.frames.get(&id).map(|f| f.bytes.clone()) else {
                continue;
            };
            let Ok(frame) = frames::parse_pair(&bytes) else {
                continue;
            };
            if !self.tags.contains_key(&frame.from) {
                self.awaiting_sender.push(id);
                continue;
            }
            if let Err(reason) = self.on_pair_frame(ctx, frame) {
                ctx.event(Event::Rejected { circle: self.id(), reason });
            }
            // Handled: only its id stays.
            self.frames.remove(&id);
            ctx.out.push(Output::Persist(Record::DeleteFrame { circle: self.id(), id }));
            self.consumed.insert(id);
        }
    }

    fn await_key(&mut self, ctx: &mut Ctx<'_>, key_id: KeyId, id: FrameId) {
        let list = self.awaiting_key.entry(key_id).or_default();
        let first = list.is_empty();
        list.push(id);
        self.awaiting_count += 1;
        if first {
            ctx.event(Event::Queued { circle: self.id(), reason: "a message is waiting for its sender's key".into() });
        }
    }

    /// Act on an authenticated message (ours or a member's).
    fn deliver(
        &mut self,
        ctx: &mut Ctx<'_>,
        inner: &Inner,
        id: MessageId,
        deadline: Option<u64>,
        envelope: Option<EnvelopeInfo>,
    ) {
        let (kind, text) = match &inner.body {
            Body::Text(t) => (MessageKind::Text, t.clone()),
            Body::Announcement(a) => {
                if !self.log.can(&inner.sender, Action::Announce) {
                    ctx.event(Event::Rejected {
                        circle: self.id(),
                        reason: format!("{} may not post announcements", self.member_name(&inner.sender)),
                    });
                    return;
                }
                if let Some(old) = a.supersedes
                    && self.pinned == Some(old)
                {
                    self.pinned = None;
                }
                if self.pinned.is_none_or(|p| self.messages.get(&p).is_none_or(|m| m.sent_at_ms <= inner.sent_at_ms)) {
                    self.pinned = Some(id);
                }
                ctx.out.push(Output::Persist(Record::CircleState { circle: self.id() }));
                (MessageKind::Announcement(a.clone()), a.title.clone())
            }
            Body::Ack(of) => {
                if self.messages.get(of).is_some_and(|m| matches!(m.kind, MessageKind::Announcement(_))) {
                    self.acks.entry(*of).or_default().insert(inner.sender);
                    ctx.out.push(Output::Persist(Record::CircleState { circle: self.id() }));
                    ctx.event(Event::AnnouncementAcked { circle: self.id(), announcement: *of, by: inner.sender });
                }
                return;
            }
            Body::Prekey(signed) => {
                // The sender's chain signature already says it is theirs:
                // the identity signature is for a welcome that passes it on,
                // and the joiner checks it there. (Checking it here too would
                // cost every member one verification per member per update.)
                if inner.sender != ctx.me && self.peer_keys.announce(inner.sender, *signed) {
                    ctx.out.push(Output::Persist(Record::CircleState { circle: self.id() }));
                }
                return;
            }
            Body::Presence(p) => {
                let newer = self.presence.get(&inner.sender).is_none_or(|(at, _)| *at < inner.sent_at_ms);
                if newer && inner.sender != ctx.me {
                    self.presence.insert(inner.sender, (inner.sent_at_ms, p.clone()));
                    ctx.event(Event::Presence {
                        circle: self.id(),
                        member: inner.sender,
                        transport: p.transport.clone(),
                        addresses: p.addresses.clone(),
                    });
                }
                return;
            }
            Body::Op(bytes) => {
                match Op::decode(bytes) {
                    Ok(op) => {
                        self.insert_op(ctx, op);
                    }
                    Err(e) => ctx.event(Event::Rejected {
                        circle: self.id(),
                        reason: format!("membership operation refused: {e}"),
                    }),
                }
                return;
            }
        };
        let view = MessageView {
            circle: self.id(),
            id,
            sender: inner.sender,
            sender_name: self.member_name(&inner.sender),
            kind,
            text,
            sent_at_ms: inner.sent_at_ms,
            received_at_ms: ctx.now,
            expires_at_ms: deadline,
            envelope,
        };
        let acknowledge = matches!(view.kind, MessageKind::Announcement(_))
            && inner.sender != ctx.me
            && ctx.config.send_acks
            && !self.removed;
        self.store_message(ctx, view);
        if acknowledge {
            let timer = (inner.timer_secs > 0).then_some(inner.timer_secs);
            self.send_group(ctx, Body::Ack(id), timer);
        }
    }

    fn store_message(&mut self, ctx: &mut Ctx<'_>, view: MessageView) {
        self.messages.insert(view.id, view.clone());
        ctx.out.push(Output::Persist(Record::Message(Box::new(view.clone()))));
        ctx.event(Event::Message(view));
    }
}

/// Why a topic frame was refused, and whether the refusal is proof against
/// the peer that passed it on ([`Verdict::Reject`]: every member would
/// refuse it the same way, so no honest peer relays it) or depends on what
/// this member holds ([`Verdict::Ignore`]: its view, clock or keys).
pub(super) struct Refusal {
    reason: String,
    verdict: Verdict,
}

impl Refusal {
    fn invalid(reason: impl Into<String>) -> Self {
        Self { reason: reason.into(), verdict: Verdict::Reject }
    }
    fn local(reason: impl Into<String>) -> Self {
        Self { reason: reason.into(), verdict: Verdict::Ignore }
    }
}

/// Split encoded ops into groups that fit one padded pairwise payload:
/// kind, `u16 n` and the length-prefixed ops, with the padding marker,
/// within [`frames::MAX_PAIR_PADDED`].
pub(super) fn split_ops(ops: Vec<Vec<u8>>) -> Vec<Vec<Vec<u8>>> {
    let budget = frames::MAX_PAIR_PADDED - 1 - 3;
    let mut chunks = Vec::new();
    let mut current = Vec::new();
    let mut size = 0;
    for op in ops {
        if size + op.len() + 4 > budget && !current.is_empty() {
            chunks.push(std::mem::take(&mut current));
            size = 0;
        }
        size += op.len() + 4;
        current.push(op);
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

impl CircleState {
    pub(super) fn system_message(&mut self, ctx: &mut Ctx<'_>, by: MemberId, text: String) {
        self.system_counter += 1;
        let h = hash(
            b"kolo/v1/system-message",
            &[&self.id(), &ctx.now.to_be_bytes(), &self.system_counter.to_be_bytes(), text.as_bytes()],
        );
        let mut id = [0u8; 16];
        id.copy_from_slice(&h[..16]);
        let view = MessageView {
            circle: self.id(),
            id,
            sender: by,
            sender_name: self.member_name(&by),
            kind: MessageKind::System,
            text,
            sent_at_ms: ctx.now,
            received_at_ms: ctx.now,
            expires_at_ms: self.deadline(ctx.now, None),
            envelope: None,
        };
        self.store_message(ctx, view);
    }
}

impl CircleState {
    /// Drop everything that would let a removed member's keys or sessions
    /// be used again.
    pub(super) fn forget_member(&mut self, member: &MemberId, now_ms: u64) {
        // Their chains stay for the removal grace period, to read a
        // membership operation they sent before (the removal may lose to a
        // concurrent one); nothing else of theirs is shown (`open_group`).
        for r in self.receiving.values_mut().filter(|r| r.sender == *member) {
            r.retired_at_ms.get_or_insert(now_ms);
        }
        self.latest_epoch_of.remove(member);
        self.peer_keys.keys.remove(member);
        self.chain_holders.remove(member);
    }

    /// Time passed: erase expired messages and frames, rotate our chain if
    /// due, and erase replaced chains kept past the retention window.
    pub(super) fn on_tick(&mut self, ctx: &mut Ctx<'_>) {
        let circle = self.id();
        let due: Vec<MessageId> =
            self.messages.values().filter(|m| m.expires_at_ms.is_some_and(|d| d <= ctx.now)).map(|m| m.id).collect();
        for id in due {
            self.messages.remove(&id);
            self.acks.remove(&id);
            if self.pinned == Some(id) {
                self.pinned = None;
            }
            ctx.out.push(Output::Persist(Record::DeleteMessage { circle, id }));
            ctx.event(Event::MessageExpired { circle, id });
        }
        for id in self.frames.expire(ctx.now) {
            ctx.out.push(Output::Persist(Record::DeleteFrame { circle, id }));
        }
        // Our pairwise key: replaced once it opened key material (within
        // half the horizon), and a replaced one erased half a horizon
        // later, so nothing that opened a key outlives the circle's
        // disappearing maximum (SPEC §6.1).
        let horizon = self.retention_ms(ctx.config);
        if self.prekeys.due(ctx.now, (horizon / 2).min(MAX_PREKEY_AGE_AFTER_USE_MS)) {
            self.rotate_prekey(ctx);
        }
        if self.prekeys.erase_older_than(ctx.now, horizon / 2) {
            ctx.out.push(Output::Persist(Record::CircleState { circle }));
        }
        if self.epochs.prune(ctx.now, horizon, ctx.config.frame_retention_ms) {
            self.refresh_member_tags();
            ctx.out.push(Output::Persist(Record::CircleState { circle }));
        }
        // The scheduled update: once the epoch is old, one organiser (the
        // one with the lowest member id, so they do not all do it; any
        // organiser an hour later, should that one be away) rotates.
        let epoch_age = self.epochs.entries.get(&self.key_epoch()).map(|e| ctx.now.saturating_sub(e.since_ms));
        let first_organiser =
            self.log.members().into_iter().filter(|m| m.role == crate::circle::Role::Organiser).map(|m| m.id).min()
                == Some(ctx.me);
        let due_after = ctx.config.rotate_epoch_after_ms.saturating_add(if first_organiser { 0 } else { 3_600_000 });
        if epoch_age.is_some_and(|age| age >= due_after)
            && !self.waiting_for_keys()
            && !self.removed
            && self.log.can(&ctx.me, Action::Rotate)
            && self.fallback_rotated_at.is_none_or(|t| ctx.now.saturating_sub(t) >= REKEY_FALLBACK_MS)
        {
            self.fallback_rotated_at = Some(ctx.now);
            if let Err(reason) = super::author_op(self, ctx, crate::circle::OpBody::Rotate) {
                ctx.event(Event::Rejected { circle, reason: format!("could not rotate the circle's keys: {reason}") });
            }
        }
        // The rekeyer of our epoch is away: an organiser rotates, and so
        // becomes the rekeyer of the next epoch.
        let stalled = self.awaiting_epoch_since.is_some_and(|t| ctx.now.saturating_sub(t) >= REKEY_FALLBACK_MS);
        let not_lately = self.fallback_rotated_at.is_none_or(|t| ctx.now.saturating_sub(t) >= REKEY_FALLBACK_MS);
        if stalled && not_lately && self.waiting_for_keys() && self.log.can(&ctx.me, Action::Rotate) {
            self.fallback_rotated_at = Some(ctx.now);
            if let Err(reason) = super::author_op(self, ctx, crate::circle::OpBody::Rotate) {
                ctx.event(Event::Rejected { circle, reason: format!("could not rotate the circle's keys: {reason}") });
            }
        }
        if self.removed && self.removed_since.is_some_and(|t| ctx.now.saturating_sub(t) >= REMOVAL_GRACE_MS) {
            self.removed_since = None;
            ctx.out.push(Output::Unsubscribe { circle });
        }
        let retention = horizon;
        let stale: Vec<KeyId> = self
            .receiving
            .iter()
            .filter(|(_, r)| {
                let horizon = if self.log.is_member(&r.sender) { retention } else { REMOVAL_GRACE_MS };
                r.retired_at_ms.is_some_and(|t| ctx.now.saturating_sub(t) > horizon)
            })
            .map(|(k, _)| *k)
            .collect();
        for k in &stale {
            self.receiving.remove(k);
            self.retired_keys.insert(*k);
        }
        if !self.removed {
            self.rotate_if_due(ctx);
        }
        if !stale.is_empty() {
            ctx.out.push(Output::Persist(Record::CircleState { circle }));
        }
    }

    pub fn log(&self) -> &CircleLog {
        &self.log
    }

    pub fn message(&self, id: &MessageId) -> Option<&MessageView> {
        self.messages.get(id)
    }

    /// The announcement pinned on top of the circle, if any.
    pub fn pinned(&self) -> Option<&MessageView> {
        self.pinned.and_then(|id| self.messages.get(&id))
    }

    /// Members who acknowledged announcement `id`.
    pub fn acks(&self, id: &MessageId) -> Vec<MemberId> {
        self.acks.get(id).map(|s| s.iter().copied().collect()).unwrap_or_default()
    }

    pub fn is_verified(&self, member: &MemberId) -> bool {
        self.verified.contains(member)
    }

    /// The transport id a member announced for this circle, if any.
    pub fn presence_of(&self, member: &MemberId) -> Option<&super::message::Presence> {
        self.presence.get(member).map(|(_, p)| p)
    }

    /// Whether we were removed from (or left) this circle.
    pub fn is_removed(&self) -> bool {
        self.removed
    }

    /// Encrypted frames held for catch-up and mailboxing.
    pub fn stored_frames(&self) -> usize {
        self.frames.len()
    }

    /// The tag pairwise frames to us carry (public: it is on the wire).
    pub fn my_pair_tag(&self) -> Tag {
        self.my_tag
    }

    /// What a member removed from the circle can no longer compute: the
    /// topic and our pair tag of our key epoch (for tests of the rotation).
    pub fn epoch_identifiers(&self) -> (u32, String, Tag) {
        (self.key_epoch(), self.topic(), self.my_tag)
    }

    /// Messages in display order (sender's time, then id).
    pub fn history(&self) -> Vec<&MessageView> {
        let mut v: Vec<&MessageView> = self.messages.values().collect();
        v.sort_by_key(|m| (m.sent_at_ms, m.id));
        v
    }

    /// What a member can produce with its own keys: a group frame around
    /// arbitrary plaintext, published on the topic. Exists so adversarial
    /// tests can show that receivers refuse a member's forgery (inner
    /// sender, circle or epoch that do not match the envelope).
    pub fn seal_raw(&mut self, ctx: &mut Ctx<'_>, inner: &Inner) -> Option<Vec<u8>> {
        let padded = pad(&inner.encode()).ok()?;
        let (_, frame) = envelope::seal(&mut self.chain, &padded).ok()?;
        let expiry = ctx.now.saturating_add(ctx.config.frame_retention_ms);
        self.publish(ctx, frame.clone(), expiry);
        Some(frame)
    }

    /// Members whose key changed and who the user has not acknowledged yet
    /// (sending in the circle is blocked while this is not empty).
    pub fn unacknowledged_key_changes(&self) -> Vec<MemberId> {
        self.unacked_key_changes.iter().copied().collect()
    }

    /// The trainer view's signature check: verify a message's envelope
    /// again with the signing key of the chain it claims. `None` when that
    /// chain's key is no longer held (rotated away or erased at expiry).
    pub fn check_signature(&self, info: &EnvelopeInfo) -> Option<bool> {
        let frame = envelope::parse(&info.frame).ok()?;
        if frame.header.key_id == self.chain.key_id() {
            return Some(self.chain.verify(frame.signed, &frame.signature).is_ok());
        }
        let receiver = self.receiving.get(&frame.header.key_id)?;
        Some(receiver.chain.verify(frame.signed, &frame.signature).is_ok())
    }

    /// Key ids we currently hold a receiving chain for (trainer view, tests).
    pub fn receiving_key_count(&self) -> usize {
        self.receiving.len()
    }
}
