//! The membership log: a DAG of signed operations, resolved into a roster
//! the same way by every member (`protocol/SPEC.md` §4.3 states the rule
//! in full; [`resolve`] implements it).
//!
//! Owns: storing operations whose parents are known (holding the others
//! until their parents arrive), refusing at insert every operation its
//! author could not make in its own causal past or beyond its quota
//! ([`policy`]), the causal order ([`dag`]), and the roster, settings,
//! invites and epoch the resolution gives. Resolution is incremental: an
//! operation that descends from every operation held is applied on its
//! own; anything else resolves the log again.

mod dag;
mod policy;
mod resolve;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet, VecDeque};

pub use policy::{Action, MEMBER_QUOTA, ORGANISER_QUOTA};

use self::resolve::{Resolution, Roster, past_of};
use super::op::{Op, OpBody, circle_id_of};
use super::{CircleError, CircleId, OpId, Role, name_skeleton};
use crate::identity::{MemberId, NoiseBinding};

/// Most operations a circle's log may hold.
pub const MAX_OPS: usize = 10_000;
/// Most operations held while their parents are missing.
pub const MAX_PENDING: usize = 1024;
/// Of those, at most this many by one current member.
pub const MAX_PENDING_PER_MEMBER: usize = 128;
/// And at most this many by authors the log does not know.
pub const MAX_PENDING_UNKNOWN: usize = 256;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberRecord {
    pub id: MemberId,
    pub display_name: String,
    pub role: Role,
    pub binding: NoiseBinding,
    /// The organiser who added them, or who admitted them with an invite.
    pub added_by: MemberId,
    pub added_op: OpId,
    /// Whether they came in through an invite.
    pub joined: bool,
}

/// A visible change to the circle, for notices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MembershipChange {
    Created {
        by: MemberId,
    },
    Added {
        member: MemberId,
        name: String,
        role: Role,
        by: MemberId,
    },
    Joined {
        member: MemberId,
        name: String,
        role: Role,
        invited_by: MemberId,
    },
    /// `by == member` means the member left.
    Removed {
        member: MemberId,
        name: String,
        by: MemberId,
    },
    RoleChanged {
        member: MemberId,
        role: Role,
        by: MemberId,
    },
    Renamed {
        member: MemberId,
        from: String,
        to: String,
    },
    Rotated {
        by: MemberId,
    },
    DisappearChanged {
        max_secs: Option<u32>,
        by: MemberId,
    },
    InviteRevoked {
        invite: OpId,
        by: MemberId,
    },
    /// A stored operation the rules did not count (it lost to a concurrent
    /// removal, demotion or revocation).
    Ignored {
        op: OpId,
        reason: &'static str,
    },
}

#[derive(Debug, PartialEq, Eq)]
pub enum InsertOutcome {
    Duplicate,
    /// Held until its parents arrive.
    Pending,
    Applied {
        changes: Vec<MembershipChange>,
    },
}

/// Why an invite is closed for good (its expiry aside).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClosedInvite {
    Used,
    /// Revoked, or its author is no longer an organiser.
    Revoked,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InviteStatus {
    Unknown,
    Expired,
    Used,
    Revoked,
    /// Its author is no longer an organiser: invites die with their
    /// author's authority.
    AuthorLostAuthority,
    Open {
        role: Role,
        invite_public: [u8; 32],
        author: MemberId,
    },
}

pub struct CircleLog {
    circle_id: CircleId,
    ops: HashMap<OpId, Op>,
    pending: VecDeque<Op>,
    res: Resolution,
    /// Operations stored per author (quotas).
    authored: HashMap<MemberId, usize>,
    /// The heads each member last told us it holds (bounded backdating).
    acknowledged: HashMap<MemberId, Vec<OpId>>,
    /// Who holds this log: its own acknowledgement does not settle
    /// anything (what it holds, others may not have seen).
    local: Option<MemberId>,
}

/// Heads remembered per member.
const MAX_ACKNOWLEDGED_HEADS: usize = 32;

impl CircleLog {
    /// Start a log from its Create operation.
    pub fn from_genesis(genesis: Op) -> Result<Self, CircleError> {
        let OpBody::Create { nonce, binding, .. } = &genesis.body else {
            return Err(CircleError::NotGenesis);
        };
        if !genesis.parents.is_empty() {
            return Err(CircleError::NotGenesis);
        }
        let circle_id = circle_id_of(&genesis.author, nonce);
        genesis.verify_signatures(&circle_id, None)?;
        binding.verify(&genesis.author, &circle_id).map_err(|_| CircleError::BadBinding)?;
        let mut log = CircleLog {
            circle_id,
            ops: HashMap::new(),
            pending: VecDeque::new(),
            res: Resolution::default(),
            authored: HashMap::from([(genesis.author, 1)]),
            acknowledged: HashMap::new(),
            local: None,
        };
        log.ops.insert(genesis.id(), genesis);
        log.res = Resolution::resolve(&log.ops);
        Ok(log)
    }

    /// Rebuild a log from operations (genesis first, the rest in any order).
    pub fn from_ops(mut ops: Vec<Op>) -> Result<Self, CircleError> {
        if ops.is_empty() {
            return Err(CircleError::NotGenesis);
        }
        let genesis = ops.remove(0);
        let mut log = Self::from_genesis(genesis)?;
        log.insert_many(ops)?;
        Ok(log)
    }

    pub fn circle_id(&self) -> CircleId {
        self.circle_id
    }

    fn roster(&self) -> &Roster {
        &self.res.roster
    }

    pub fn circle_name(&self) -> &str {
        &self.roster().circle_name
    }

    pub fn max_disappear_secs(&self) -> Option<u32> {
        let s = self.roster().max_disappear_secs;
        (s > 0).then_some(s)
    }

    pub fn epoch(&self) -> u32 {
        self.roster().epoch
    }

    /// The operation that started the current epoch, and the member who
    /// chooses the epoch's secret (SPEC §5.1a): that operation's author
    /// while it is a member; otherwise (it left, or removed itself) the
    /// current organiser with the lowest member id, else the lowest member.
    pub fn rekeyer(&self) -> Option<(OpId, MemberId)> {
        let (op, author) = self.roster().raiser?;
        if self.is_member(&author) {
            return Some((op, author));
        }
        let members = &self.roster().members;
        let organiser = members.values().filter(|m| m.role == Role::Organiser).map(|m| m.id).min();
        organiser.or_else(|| members.keys().min().copied()).map(|m| (op, m))
    }

    pub fn heads(&self) -> Vec<OpId> {
        self.res.dag.heads()
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub fn contains(&self, id: &OpId) -> bool {
        self.ops.contains_key(id)
    }

    pub fn get(&self, id: &OpId) -> Option<&Op> {
        self.ops.get(id)
    }

    pub fn members(&self) -> Vec<&MemberRecord> {
        self.roster().members.values().collect()
    }

    pub fn member(&self, id: &MemberId) -> Option<&MemberRecord> {
        self.roster().members.get(id)
    }

    pub fn is_member(&self, id: &MemberId) -> bool {
        self.roster().members.contains_key(id)
    }

    pub fn role_of(&self, id: &MemberId) -> Option<Role> {
        self.roster().members.get(id).map(|m| m.role)
    }

    /// How many organisers the circle has.
    pub fn organisers(&self) -> usize {
        self.roster().members.values().filter(|m| m.role == Role::Organiser).count()
    }

    /// Members who were removed or left, with their last name.
    pub fn former_members(&self) -> Vec<(MemberId, String)> {
        self.roster().former.iter().map(|(id, n)| (*id, n.clone())).collect()
    }

    /// Another current or former member whose name looks like `member`'s
    /// (same confusable skeleton, `circle::name_skeleton`).
    pub fn lookalike_of(&self, member: &MemberId) -> Option<MemberId> {
        self.lookalikes().remove(member)
    }

    /// For every current member whose name looks like another current or
    /// former member's, one such other member (each skeleton computed once).
    pub fn lookalikes(&self) -> HashMap<MemberId, MemberId> {
        let current = self.roster().members.values().map(|m| (m.id, m.display_name.as_str()));
        let former = self.roster().former.iter().map(|(id, n)| (*id, n.as_str()));
        let mut by_skeleton: HashMap<String, Vec<MemberId>> = HashMap::new();
        for (id, name) in current.chain(former) {
            by_skeleton.entry(name_skeleton(name)).or_default().push(id);
        }
        let mut out = HashMap::new();
        for ids in by_skeleton.values().filter(|ids| ids.len() > 1) {
            for id in ids.iter().filter(|id| self.is_member(id)) {
                if let Some(other) = ids.iter().find(|o| *o != id) {
                    out.insert(*id, *other);
                }
            }
        }
        out
    }

    /// The operations in resolution order, genesis first.
    pub fn ops_in_order(&self) -> Vec<&Op> {
        self.res.dag.order().iter().filter_map(|id| self.ops.get(id)).collect()
    }

    pub fn invite_status(&self, invite_op: &OpId, now_ms: u64) -> InviteStatus {
        let Some(info) = self.roster().invites.get(invite_op) else {
            return InviteStatus::Unknown;
        };
        if self.roster().revoked_invites.contains_key(invite_op) {
            InviteStatus::Revoked
        } else if self.roster().used_invites.contains_key(invite_op) || self.has_stored_admit(invite_op) {
            InviteStatus::Used
        } else if self.role_of(&info.author) != Some(Role::Organiser) {
            InviteStatus::AuthorLostAuthority
        } else if now_ms > info.expires_at_ms {
            InviteStatus::Expired
        } else {
            InviteStatus::Open { role: info.role, invite_public: info.public, author: info.author }
        }
    }

    /// Whether an Admit of this invite is stored, counted or not. Two
    /// concurrent Admits of one invite both do not count (SPEC §4.3), and
    /// no later Admit can pass step 1: the invite is spent either way.
    fn has_stored_admit(&self, invite_op: &OpId) -> bool {
        self.stored_admits().any(|named| named == invite_op)
    }

    /// The invite each stored Admit names.
    fn stored_admits(&self) -> impl Iterator<Item = &OpId> {
        self.ops.values().filter_map(|op| match &op.body {
            OpBody::Admit { join } => match &join.body {
                OpBody::Join { invite_op, .. } => Some(invite_op),
                _ => None,
            },
            _ => None,
        })
    }

    /// Invites that could still admit someone, except for their expiry:
    /// (invite op, invite public key, expiry). For the link handshake
    /// (SPEC §2a), which lets their holders in on an older network key.
    pub fn open_invites(&self) -> Vec<(OpId, [u8; 32], u64)> {
        let roster = self.roster();
        // One pass over the log, not one per invite (this runs on every
        // membership change, for the link's access rules).
        let admitted: HashSet<&OpId> = self.stored_admits().collect();
        roster
            .invites
            .iter()
            .filter(|(op, info)| {
                !roster.revoked_invites.contains_key(*op)
                    && !roster.used_invites.contains_key(*op)
                    && !admitted.contains(op)
                    && self.role_of(&info.author) == Some(Role::Organiser)
            })
            .map(|(op, info)| (*op, info.public, info.expires_at_ms))
            .collect()
    }

    /// Invites that can admit nobody any more, whatever the time: (invite
    /// op, invite public key, why: used, or revoked / its author no longer
    /// an organiser). The link tells their holders why (SPEC §2a), and
    /// tells an invite it has not heard of from both.
    pub fn closed_invites(&self) -> Vec<(OpId, [u8; 32], ClosedInvite)> {
        let roster = self.roster();
        let admitted: HashSet<&OpId> = self.stored_admits().collect();
        roster
            .invites
            .iter()
            .filter_map(|(op, info)| {
                let why = if roster.revoked_invites.contains_key(op) {
                    ClosedInvite::Revoked
                } else if roster.used_invites.contains_key(op) || admitted.contains(op) {
                    ClosedInvite::Used
                } else if self.role_of(&info.author) != Some(Role::Organiser) {
                    ClosedInvite::Revoked
                } else {
                    return None;
                };
                Some((*op, info.public, why))
            })
            .collect()
    }

    /// This member's view of the roster (SPEC §4.5): the epoch and every
    /// member with its role. Bound into every sender-key distribution, and
    /// so into every message under that key.
    pub fn group_context(&self) -> [u8; 32] {
        context_of(&self.circle_id, self.roster())
    }

    /// The group context the log held at `heads` (all known), or `None`
    /// if one of them is unknown.
    pub fn context_at(&self, heads: &[OpId]) -> Option<[u8; 32]> {
        // The usual case (the sender holds what we hold): no walk, no copy.
        let mut sorted = heads.to_vec();
        sorted.sort_unstable();
        if sorted == self.heads() {
            return Some(self.group_context());
        }
        let mut sub: HashMap<OpId, Op> = HashMap::new();
        let mut stack: Vec<OpId> = heads.to_vec();
        while let Some(id) = stack.pop() {
            if sub.contains_key(&id) {
                continue;
            }
            let op = self.ops.get(&id)?;
            stack.extend(op.parents.iter().copied());
            sub.insert(id, op.clone());
        }
        if sub.len() == self.ops.len() {
            return Some(self.group_context());
        }
        Some(context_of(&self.circle_id, &Resolution::resolve(&sub).roster))
    }

    /// `member` told us it holds these operations (its heads, in a key
    /// distribution or as the parents of an operation it made). What every
    /// current member has acknowledged is settled: a new operation that
    /// does not descend from all of it is refused as backdated.
    pub fn acknowledge(&mut self, member: MemberId, heads: &[OpId]) {
        let known: Vec<OpId> = heads.iter().filter(|h| self.ops.contains_key(*h)).copied().collect();
        if known.is_empty() {
            return;
        }
        let entry = self.acknowledged.entry(member).or_default();
        entry.extend(known);
        entry.sort_unstable();
        entry.dedup();
        if entry.len() > MAX_ACKNOWLEDGED_HEADS {
            // Keep the latest-placed ones: their pasts hold the others'.
            let dag = &self.res.dag;
            let order: HashMap<&OpId, usize> = dag.order().iter().enumerate().map(|(i, id)| (id, i)).collect();
            entry.sort_by_key(|h| std::cmp::Reverse(order.get(h).copied().unwrap_or(0)));
            entry.truncate(MAX_ACKNOWLEDGED_HEADS);
            entry.sort_unstable();
        }
    }

    /// Whose log this is (see `settled`).
    pub fn set_local(&mut self, me: MemberId) {
        self.local = Some(me);
    }

    /// What each member acknowledged (for persistence).
    pub fn acknowledgements(&self) -> Vec<(MemberId, Vec<OpId>)> {
        let mut v: Vec<(MemberId, Vec<OpId>)> = self.acknowledged.iter().map(|(m, h)| (*m, h.clone())).collect();
        v.sort();
        v
    }

    /// The operations every other current member has acknowledged; `None`
    /// while one has acknowledged nothing yet, or there is no other member
    /// (then nothing is settled, and nothing refused as backdated).
    fn settled(&self) -> Option<dag::Ancestors> {
        // Removed in our own view: that view may be the attacker's doing
        // (a removal that loses to a concurrent one), so it settles nothing.
        if self.local.is_some_and(|me| !self.is_member(&me)) {
            return None;
        }
        let mut settled: Option<dag::Ancestors> = None;
        for m in self.roster().members.keys().filter(|m| Some(**m) != self.local) {
            let heads = self.acknowledged.get(m)?;
            let closure = self.res.dag.closure(heads);
            settled = Some(match settled {
                None => closure,
                Some(s) => dag::intersect(&s, &closure),
            });
        }
        settled
    }

    /// Whether what is settled was acknowledged by more than half of the
    /// members it concerns: the current members (us included) and those
    /// its removals removed. Without this, a member isolated with one
    /// removed organiser would count that organiser's strike-back, which
    /// only the two of them saw, as settled, and refuse the concurrent
    /// removal of that organiser as backdated once it arrived.
    fn settled_by_majority(&self, settled: &dag::Ancestors) -> bool {
        let current = self.roster().members.len();
        let mut removed: HashSet<MemberId> = HashSet::new();
        for (j, id) in self.res.dag.order().iter().enumerate() {
            if dag::in_set(settled, j)
                && let Some(Op { body: OpBody::Remove { member }, .. }) = self.ops.get(id)
                && !self.is_member(member)
            {
                removed.insert(*member);
            }
        }
        // Every current member acknowledged (that is what `settled` means).
        current * 2 > current + removed.len()
    }

    /// Stored operations the resolution did not count, with why, by op id.
    pub fn ignored_ops(&self) -> Vec<(OpId, &'static str)> {
        let mut v: Vec<(OpId, &'static str)> = self.roster().ignored.iter().map(|(id, r)| (*id, *r)).collect();
        v.sort();
        v
    }

    /// The Join an invite admitted, if it was used.
    pub fn admitted_join(&self, invite_op: &OpId) -> Option<&Op> {
        let admit = self.ops.get(self.roster().used_invites.get(invite_op)?)?;
        match &admit.body {
            OpBody::Admit { join } => Some(join),
            _ => None,
        }
    }

    /// May `member` do this now? The same table the resolver uses.
    pub fn can(&self, member: &MemberId, action: Action) -> bool {
        action.needs().met_by(self.role_of(member))
    }

    /// Insert one operation received from anyone.
    pub fn insert(&mut self, op: Op) -> Result<InsertOutcome, CircleError> {
        self.insert_many(vec![op])
    }

    /// Insert several operations. Each is checked against its causal past
    /// and refused (never stored) if its author could not make it; the
    /// roster is resolved once for the batch, or extended in place when
    /// every operation descends from all before it.
    pub fn insert_many(&mut self, ops: Vec<Op>) -> Result<InsertOutcome, CircleError> {
        let before = self.res.roster.clone();
        let mut added: Vec<OpId> = Vec::new();
        // Inserted but not yet placed in the causal order.
        let mut unplaced: HashSet<OpId> = HashSet::new();
        // Stored on signatures alone, to be judged by the final resolution.
        let mut deferred: HashSet<OpId> = HashSet::new();
        let mut pending = false;
        let mut first_error = None;
        let mut queue: VecDeque<Op> = ops.into();
        while let Some(op) = queue.pop_front() {
            let id = op.id();
            if self.ops.contains_key(&id) || self.pending.iter().any(|p| p.id() == id) {
                continue;
            }
            if self.ops.len() >= MAX_OPS {
                first_error.get_or_insert(CircleError::LogFull);
                break;
            }
            if !op.parents.iter().all(|p| self.ops.contains_key(p)) {
                // Cheap check now so forged junk does not fill the pending set.
                if let Err(e) = self.check_early(&op) {
                    first_error.get_or_insert(e);
                    continue;
                }
                self.park(op);
                pending = true;
                continue;
            }
            if op.parents.iter().any(|p| unplaced.contains(p)) {
                // It descends from an operation not placed yet (which passed
                // every check, backdating included, so this one's past holds
                // the settled set too): keep it with the signature checks
                // and the larger quota now, and judge its causal authority
                // and its author's own quota (by its standing in this past)
                // from the one resolution at the end of the batch.
                let within_quota = self.authored.get(&op.author).copied().unwrap_or(0) < policy::MAX_QUOTA;
                match self.check_signatures(&op) {
                    Ok(()) if within_quota => {
                        unplaced.insert(id);
                        deferred.insert(id);
                        added.push(id);
                        queue.extend(self.store(id, op));
                    }
                    Ok(()) => {
                        first_error.get_or_insert(CircleError::QuotaExceeded);
                    }
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
                continue;
            }
            match self.admit_one(&op, &id, unplaced.is_empty()) {
                Ok(placed) => {
                    if !placed {
                        unplaced.insert(id);
                    }
                    added.push(id);
                    queue.extend(self.store(id, op));
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if !unplaced.is_empty() {
            self.res = Resolution::resolve(&self.ops);
            // Deferred operations their author could not make, or beyond
            // its quota, are refused after all, with everything stored
            // after them that descends from one.
            let (gone, error) = self.refused_deferred(&added, &deferred);
            if let Some(e) = error {
                first_error.get_or_insert(e);
            }
            if !gone.is_empty() {
                for id in &gone {
                    if let Some(op) = self.ops.remove(id)
                        && let Some(n) = self.authored.get_mut(&op.author)
                    {
                        *n = n.saturating_sub(1);
                    }
                }
                added.retain(|id| !gone.contains(id));
                self.res = Resolution::resolve(&self.ops);
            }
        }
        if added.is_empty() {
            return match (first_error, pending) {
                (Some(e), _) => Err(e),
                (None, true) => Ok(InsertOutcome::Pending),
                (None, false) => Ok(InsertOutcome::Duplicate),
            };
        }
        Ok(InsertOutcome::Applied { changes: diff(&before, &self.res.roster, &added) })
    }

    /// After the resolution that ends a batch, which of the batch's
    /// operations (`added`, in the order they were stored) are refused
    /// after all, with the first reason: a deferred one whose author could
    /// not make it in its own past (step 1), or that its author's quota
    /// refuses by its standing in that past, and everything descending from
    /// a refused one. Counted in arrival order, each operation against its
    /// author's operations stored before it and not refused, as if each
    /// had been checked on its own. Only batch operations can descend from
    /// a deferred one, and `added` is a causal order: one pass finds them.
    fn refused_deferred(&self, added: &[OpId], deferred: &HashSet<OpId>) -> (HashSet<OpId>, Option<CircleError>) {
        // Each author's stored operations from before the batch.
        let mut count: HashMap<MemberId, usize> = HashMap::new();
        for op in added.iter().filter_map(|id| self.ops.get(id)) {
            *count.entry(op.author).or_default() += 1;
        }
        for (author, n) in count.iter_mut() {
            *n = self.authored.get(author).copied().unwrap_or(0).saturating_sub(*n);
        }
        let mut gone: HashSet<OpId> = HashSet::new();
        let mut error = None;
        for id in added {
            let Some(op) = self.ops.get(id) else { continue };
            if deferred.contains(id) {
                let refused = if op.parents.iter().any(|p| gone.contains(p)) {
                    true
                } else if self.res.causal_refused.contains(id) {
                    error.get_or_insert(CircleError::Unauthorised("its author could not make it in its own past"));
                    true
                } else {
                    let bits = self.res.dag.ancestors_of_new(&op.parents);
                    let role = self.res.causal.role_in(&op.author, &past_of(&bits));
                    let over = count.get(&op.author).copied().unwrap_or(0) >= policy::quota(role);
                    if over {
                        error.get_or_insert(CircleError::QuotaExceeded);
                    }
                    over
                };
                if refused {
                    gone.insert(*id);
                    continue;
                }
            }
            *count.entry(op.author).or_default() += 1;
        }
        (gone, error)
    }

    /// Keep a checked operation; returns the parked operations whose
    /// parents are now all held.
    fn store(&mut self, id: OpId, op: Op) -> Vec<Op> {
        *self.authored.entry(op.author).or_default() += 1;
        self.ops.insert(id, op);
        let (ready, waiting): (Vec<Op>, Vec<Op>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| p.parents.iter().all(|q| self.ops.contains_key(q)));
        self.pending = waiting.into();
        ready
    }

    /// Checks possible before the parents are known.
    /// Park an operation whose parents are missing. Each current member
    /// has a share of the parking space of its own, and authors the log
    /// does not know (yet) share one: a member flooding it with junk, under
    /// its own key or made-up ones, pushes out only its own or unknown
    /// authors' operations, never a known member's.
    fn park(&mut self, op: Op) {
        let bucket = |log: &Self, o: &Op| log.is_member(&o.author).then_some(o.author);
        let mine = bucket(self, &op);
        let cap = if mine.is_some() { MAX_PENDING_PER_MEMBER } else { MAX_PENDING_UNKNOWN };
        let held = self.pending.iter().filter(|p| bucket(self, p) == mine).count();
        if held >= cap
            && let Some(oldest) = self.pending.iter().position(|p| bucket(self, p) == mine)
        {
            self.pending.remove(oldest);
        }
        self.pending.push_back(op);
        while self.pending.len() > MAX_PENDING {
            self.pending.pop_front();
        }
    }

    fn check_early(&self, op: &Op) -> Result<(), CircleError> {
        if matches!(op.body, OpBody::Create { .. }) {
            return Err(CircleError::NotGenesis);
        }
        if matches!(op.body, OpBody::Join { .. }) {
            return Err(CircleError::Unauthorised("a join enters the log only inside the inviter's admit"));
        }
        op.verify_author(&self.circle_id)
    }

    /// Would the log accept `op` now (its parents held, its author allowed
    /// in its causal past, within quota)? Authors check before publishing.
    pub fn check(&self, op: &Op) -> Result<(), CircleError> {
        if !op.parents.iter().all(|p| self.ops.contains_key(p)) {
            return Err(CircleError::Unauthorised("its parents are not all known"));
        }
        self.checked_ancestors(op).map(|_| ())
    }

    /// Check one operation whose parents are all held against its causal
    /// past; place it at once when it descends from everything placed
    /// (`may_place`: nothing inserted is waiting to be placed). Returns
    /// whether it was placed.
    fn admit_one(&mut self, op: &Op, id: &OpId, may_place: bool) -> Result<bool, CircleError> {
        let bits = self.checked_ancestors(op)?;
        if may_place && self.res.dag.covers_all(&bits) {
            self.res.append(*id, op, bits);
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// Every check of an operation whose parents are held; its ancestor set.
    fn checked_ancestors(&self, op: &Op) -> Result<dag::Ancestors, CircleError> {
        self.check_signatures(op)?;
        let bits = self.res.dag.ancestors_of_new(&op.parents);
        if !self.ops.contains_key(&op.id())
            && let Some(settled) = self.settled()
            && !dag::is_subset(&settled, &bits)
            && self.settled_by_majority(&settled)
        {
            return Err(CircleError::Backdated);
        }
        {
            let past = past_of(&bits);
            self.res.causal.allows(op, false, &past).map_err(CircleError::Unauthorised)?;
            let authored = self.authored.get(&op.author).copied().unwrap_or(0);
            if authored >= policy::quota(self.res.causal.role_in(&op.author, &past)) {
                return Err(CircleError::QuotaExceeded);
            }
        }
        Ok(bits)
    }

    /// The checks that need no causal state: signatures and bindings.
    fn check_signatures(&self, op: &Op) -> Result<(), CircleError> {
        self.check_early(op)?;
        if let OpBody::Admit { join } = &op.body {
            let invite_op = join.invite_of().ok_or(CircleError::WrongCircle)?;
            let Some(OpBody::Invite { invite_public, .. }) = self.ops.get(&invite_op).map(|o| &o.body) else {
                return Err(CircleError::Unauthorised("the admit names an unknown invite"));
            };
            join.verify_signatures(&self.circle_id, Some(invite_public))?;
        }
        match &op.body {
            OpBody::Add { member, binding, .. } => binding.verify(member, &self.circle_id),
            OpBody::Admit { join } => match &join.body {
                OpBody::Join { binding, .. } => binding.verify(&join.author, &self.circle_id),
                _ => return Err(CircleError::WrongCircle),
            },
            _ => Ok(()),
        }
        .map_err(|_| CircleError::BadBinding)
    }
}

fn context_of(circle_id: &CircleId, roster: &Roster) -> [u8; 32] {
    let mut members = Vec::with_capacity(roster.members.len() * 33);
    for (id, rec) in &roster.members {
        members.extend_from_slice(id.as_bytes());
        members.push(rec.role.code());
    }
    crate::crypto::kdf::hash(
        crate::crypto::kdf::LABEL_GROUP_CONTEXT,
        &[circle_id, &roster.epoch.to_be_bytes(), &members],
    )
}

fn diff(before: &Roster, after: &Roster, added: &[OpId]) -> Vec<MembershipChange> {
    let mut out = Vec::new();
    for (id, rec) in &after.members {
        match before.members.get(id) {
            None if rec.joined => out.push(MembershipChange::Joined {
                member: *id,
                name: rec.display_name.clone(),
                role: rec.role,
                invited_by: rec.added_by,
            }),
            None => out.push(MembershipChange::Added {
                member: *id,
                name: rec.display_name.clone(),
                role: rec.role,
                by: rec.added_by,
            }),
            Some(old) => {
                if old.role != rec.role {
                    out.push(MembershipChange::RoleChanged {
                        member: *id,
                        role: rec.role,
                        by: after.role_set_by.get(id).copied().unwrap_or(*id),
                    });
                }
                if old.display_name != rec.display_name {
                    out.push(MembershipChange::Renamed {
                        member: *id,
                        from: old.display_name.clone(),
                        to: rec.display_name.clone(),
                    });
                }
            }
        }
    }
    for (id, rec) in &before.members {
        if !after.members.contains_key(id) {
            out.push(MembershipChange::Removed {
                member: *id,
                name: rec.display_name.clone(),
                by: after.removed_by.get(id).copied().unwrap_or(*id),
            });
        }
    }
    if before.max_disappear_secs != after.max_disappear_secs {
        out.push(MembershipChange::DisappearChanged {
            max_secs: (after.max_disappear_secs > 0).then_some(after.max_disappear_secs),
            by: after.disappear_set_by.unwrap_or(MemberId([0; 32])),
        });
    }
    for (op, by) in &after.rotations {
        if !before.rotations.iter().any(|(o, _)| o == op) {
            out.push(MembershipChange::Rotated { by: *by });
        }
    }
    for (invite, by) in &after.revoked_invites {
        if !before.revoked_invites.contains_key(invite) {
            out.push(MembershipChange::InviteRevoked { invite: *invite, by: *by });
        }
    }
    for id in added {
        if let Some(reason) = after.ignored.get(id) {
            out.push(MembershipChange::Ignored { op: *id, reason });
        }
    }
    out
}
