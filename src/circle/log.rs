//! The membership log: a DAG of signed operations, resolved into a roster
//! the same way by every member (`protocol/SPEC.md` §4.3).
//!
//! # The resolution rule
//!
//! Given the set of operations (all parents present):
//!
//! 1. **Order.** Kahn's topological sort; among operations whose parents are
//!    all placed, the smallest op id (bytewise) goes first. The genesis
//!    (the only operation without parents) is first.
//! 2. **Concurrency.** `a` and `b` are concurrent when neither is an
//!    ancestor of the other.
//! 3. **Pass one** applies the operations in order with the authority rules
//!    below but *without* rule R, and records which Remove operations were
//!    authorised.
//! 4. **Pass two** applies them again from scratch *with* rule R, using the
//!    authorised Removes of pass one. The result of pass two is the roster.
//!
//! Authority, checked against the state built so far in the pass:
//! * Create: the genesis; its author becomes an organiser; epoch 1.
//! * Add, Invite, SetRole, Rotate, SetDisappear, and Remove of someone else:
//!   the author is an organiser now. Remove of oneself (leaving): the author
//!   is a member now. A Remove also counts as authorised when its author was
//!   removed by a Remove concurrent with it and held the needed role before
//!   that removal (two organisers removing each other are both removed).
//! * Join: its first parent is an applied Invite, the Join's timestamp is
//!   not after the invite's expiry, and the joiner is not a member. The
//!   joiner gets the invite's role. An invite admits one person: a Join is
//!   ignored if another Join with the same invite is its ancestor ("already
//!   used"), and *both* are ignored if two Joins with the same invite are
//!   concurrent. (A rule that picked a winner, say the smaller op id, would
//!   let anyone who later saw a used code grind a Join that displaces the
//!   legitimate member; refusing both only lets them cancel it, visibly.)
//! * Removing or changing the role of a non-member has no effect.
//!
//! **Rule R (remove wins).** An operation other than a Remove whose author X
//! has an authorised Remove of X concurrent with it is ignored; so is an Add
//! of X concurrent with an authorised Remove of X.
//!
//! The epoch counts applied Create, Add, Join, Remove and Rotate operations.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use super::op::{Op, OpBody, circle_id_of};
use super::{CircleError, CircleId, OpId, Role};
use crate::identity::{MemberId, NoiseBinding};

/// Most operations a circle's log may hold.
pub const MAX_OPS: usize = 10_000;
/// Most operations held while their parents are missing.
pub const MAX_PENDING: usize = 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberRecord {
    pub id: MemberId,
    pub display_name: String,
    pub role: Role,
    pub binding: NoiseBinding,
    /// The organiser who added them, or who issued the invite they used.
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
    Rotated {
        by: MemberId,
    },
    DisappearChanged {
        max_secs: Option<u32>,
        by: MemberId,
    },
    /// A valid-looking operation the rules did not apply (unauthorised,
    /// invite reused, concurrent removal…).
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

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InviteStatus {
    Unknown,
    Expired,
    Used,
    Open { role: Role, invite_public: [u8; 32] },
}

/// Things only some members may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Invite,
    Remove,
    SetRole,
    Rotate,
    SetDisappear,
    Announce,
}

#[derive(Clone)]
struct InviteInfo {
    public: [u8; 32],
    expires_at_ms: u64,
    role: Role,
    author: MemberId,
}

/// The outcome of resolving the log.
#[derive(Clone, Default)]
struct Resolved {
    order: Vec<OpId>,
    heads: Vec<OpId>,
    members: BTreeMap<MemberId, MemberRecord>,
    former: BTreeMap<MemberId, String>,
    removed_by: HashMap<MemberId, MemberId>,
    role_set_by: HashMap<MemberId, MemberId>,
    invites: HashMap<OpId, InviteInfo>,
    used_invites: HashSet<OpId>,
    circle_name: String,
    max_disappear_secs: u32,
    disappear_set_by: Option<MemberId>,
    rotations: Vec<(OpId, MemberId)>,
    epoch: u32,
    ignored: HashMap<OpId, &'static str>,
}

pub struct CircleLog {
    circle_id: CircleId,
    ops: HashMap<OpId, Op>,
    pending: VecDeque<Op>,
    state: Resolved,
}

/// Ancestor sets as bitsets over positions in the order.
struct Ancestry {
    bits: Vec<Vec<u64>>,
}

impl Ancestry {
    fn is_ancestor(&self, a: usize, b: usize) -> bool {
        self.bits[b].get(a / 64).is_some_and(|w| w & (1 << (a % 64)) != 0)
    }

    fn concurrent(&self, a: usize, b: usize) -> bool {
        a != b && !self.is_ancestor(a, b) && !self.is_ancestor(b, a)
    }
}

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
        let mut log =
            CircleLog { circle_id, ops: HashMap::new(), pending: VecDeque::new(), state: Resolved::default() };
        log.ops.insert(genesis.id(), genesis);
        log.state = log.resolve();
        Ok(log)
    }

    /// Rebuild a log from operations in any order (genesis first), resolving once.
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

    pub fn circle_name(&self) -> &str {
        &self.state.circle_name
    }

    pub fn max_disappear_secs(&self) -> Option<u32> {
        (self.state.max_disappear_secs > 0).then_some(self.state.max_disappear_secs)
    }

    pub fn epoch(&self) -> u32 {
        self.state.epoch
    }

    pub fn heads(&self) -> Vec<OpId> {
        self.state.heads.clone()
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
        self.state.members.values().collect()
    }

    pub fn member(&self, id: &MemberId) -> Option<&MemberRecord> {
        self.state.members.get(id)
    }

    pub fn is_member(&self, id: &MemberId) -> bool {
        self.state.members.contains_key(id)
    }

    pub fn role_of(&self, id: &MemberId) -> Option<Role> {
        self.state.members.get(id).map(|m| m.role)
    }

    /// Members who were removed or left, with their last name.
    pub fn former_members(&self) -> Vec<(MemberId, String)> {
        self.state.former.iter().map(|(id, n)| (*id, n.clone())).collect()
    }

    /// The operations in resolution order, genesis first.
    pub fn ops_in_order(&self) -> Vec<&Op> {
        self.state.order.iter().filter_map(|id| self.ops.get(id)).collect()
    }

    pub fn invite_status(&self, invite_op: &OpId, now_ms: u64) -> InviteStatus {
        let Some(info) = self.state.invites.get(invite_op) else {
            return InviteStatus::Unknown;
        };
        if self.state.used_invites.contains(invite_op) {
            InviteStatus::Used
        } else if now_ms > info.expires_at_ms {
            InviteStatus::Expired
        } else {
            InviteStatus::Open { role: info.role, invite_public: info.public }
        }
    }

    pub fn can(&self, member: &MemberId, _action: Action) -> bool {
        self.role_of(member) == Some(Role::Organiser)
    }

    /// Insert one operation received from anyone.
    pub fn insert(&mut self, op: Op) -> Result<InsertOutcome, CircleError> {
        self.insert_many(vec![op])
    }

    /// Insert several operations, resolving once.
    pub fn insert_many(&mut self, ops: Vec<Op>) -> Result<InsertOutcome, CircleError> {
        let mut added: Vec<OpId> = Vec::new();
        let mut pending = false;
        let mut first_error = None;
        for op in ops {
            let id = op.id();
            if self.ops.contains_key(&id) || self.pending.iter().any(|p| p.id() == id) {
                continue;
            }
            if self.ops.len() >= MAX_OPS {
                return Err(CircleError::LogFull);
            }
            if matches!(op.body, OpBody::Create { .. }) {
                first_error.get_or_insert(CircleError::NotGenesis);
                continue;
            }
            if !op.parents.iter().all(|p| self.ops.contains_key(p)) {
                // Cheap check now so forged junk does not fill the pending set.
                if let Err(e) = self.check_author_signature(&op) {
                    first_error.get_or_insert(e);
                    continue;
                }
                self.pending.push_back(op);
                while self.pending.len() > MAX_PENDING {
                    self.pending.pop_front();
                }
                pending = true;
                continue;
            }
            match self.validate(&op) {
                Ok(()) => {
                    self.ops.insert(id, op);
                    added.push(id);
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if !added.is_empty() {
            added.extend(self.release_pending());
        }
        if added.is_empty() {
            return match (first_error, pending) {
                (Some(e), _) => Err(e),
                (None, true) => Ok(InsertOutcome::Pending),
                (None, false) => Ok(InsertOutcome::Duplicate),
            };
        }
        let before = std::mem::take(&mut self.state);
        self.state = self.resolve();
        Ok(InsertOutcome::Applied { changes: self.diff(&before, &added) })
    }

    fn check_author_signature(&self, op: &Op) -> Result<(), CircleError> {
        // A Join's invite signature is checked once the invite is known.
        op.verify_author(&self.circle_id)
    }

    /// Signatures and bindings; parents are present.
    fn validate(&self, op: &Op) -> Result<(), CircleError> {
        let invite_public = match &op.body {
            OpBody::Join { .. } => {
                let invite = op.parents.first().and_then(|p| self.ops.get(p)).ok_or(CircleError::WrongCircle)?;
                let OpBody::Invite { invite_public, .. } = invite.body else {
                    return Err(CircleError::WrongCircle);
                };
                Some(invite_public)
            }
            _ => None,
        };
        op.verify_signatures(&self.circle_id, invite_public.as_ref())?;
        match &op.body {
            OpBody::Add { member, binding, .. } => binding.verify(member, &self.circle_id),
            OpBody::Join { binding, .. } => binding.verify(&op.author, &self.circle_id),
            _ => Ok(()),
        }
        .map_err(|_| CircleError::BadBinding)
    }

    /// Move pending operations whose parents have all arrived into the log.
    fn release_pending(&mut self) -> Vec<OpId> {
        let mut released = Vec::new();
        loop {
            let ready = self.pending.iter().position(|op| op.parents.iter().all(|p| self.ops.contains_key(p)));
            let Some(i) = ready else { break };
            let Some(op) = self.pending.remove(i) else {
                break;
            };
            if self.validate(&op).is_ok() && self.ops.len() < MAX_OPS {
                let id = op.id();
                self.ops.insert(id, op);
                released.push(id);
            }
        }
        released
    }

    fn order(&self) -> Vec<OpId> {
        let mut indegree: HashMap<OpId, usize> = HashMap::new();
        let mut children: HashMap<OpId, Vec<OpId>> = HashMap::new();
        for (id, op) in &self.ops {
            let parents: BTreeSet<&OpId> = op.parents.iter().collect();
            indegree.insert(*id, parents.len());
            for p in parents {
                children.entry(*p).or_default().push(*id);
            }
        }
        let mut ready: BTreeSet<OpId> = indegree.iter().filter(|(_, d)| **d == 0).map(|(id, _)| *id).collect();
        let mut order = Vec::with_capacity(self.ops.len());
        while let Some(id) = ready.pop_first() {
            order.push(id);
            for c in children.get(&id).into_iter().flatten() {
                if let Some(d) = indegree.get_mut(c) {
                    *d -= 1;
                    if *d == 0 {
                        ready.insert(*c);
                    }
                }
            }
        }
        order
    }

    fn ancestry(&self, order: &[OpId], index: &HashMap<OpId, usize>) -> Ancestry {
        let words = order.len().div_ceil(64);
        let mut bits: Vec<Vec<u64>> = Vec::with_capacity(order.len());
        for id in order {
            let mut mine = vec![0u64; words];
            for p in self.ops.get(id).map(|o| o.parents.as_slice()).unwrap_or(&[]) {
                if let Some(&pi) = index.get(p) {
                    for (w, pw) in mine.iter_mut().zip(&bits[pi]) {
                        *w |= pw;
                    }
                    mine[pi / 64] |= 1 << (pi % 64);
                }
            }
            bits.push(mine);
        }
        Ancestry { bits }
    }

    fn resolve(&self) -> Resolved {
        let order = self.order();
        let index: HashMap<OpId, usize> = order.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        let ancestry = self.ancestry(&order, &index);
        let (_, removes) = self.apply_all(&order, &ancestry, None);
        let (mut state, _) = self.apply_all(&order, &ancestry, Some(&removes));
        let has_child: HashSet<&OpId> = self.ops.values().flat_map(|o| o.parents.iter()).collect();
        let mut heads: Vec<OpId> = order.iter().filter(|id| !has_child.contains(id)).copied().collect();
        heads.sort();
        state.heads = heads;
        state.order = order;
        state
    }

    /// One pass over the order. `removes` (target, position) enables rule R.
    fn apply_all(
        &self,
        order: &[OpId],
        ancestry: &Ancestry,
        removes: Option<&[(MemberId, usize)]>,
    ) -> (Resolved, Vec<(MemberId, usize)>) {
        let mut s = Resolved::default();
        let mut authorised_removes = Vec::new();
        // Who removed whom, at which position, and the role they held.
        let mut removal: HashMap<MemberId, (usize, Role)> = HashMap::new();
        let removed_concurrently = |x: &MemberId, i: usize| {
            removes.is_some_and(|r| r.iter().any(|(t, j)| t == x && ancestry.concurrent(*j, i)))
        };
        // Every Join's position, by the invite it uses.
        let mut joins_by_invite: HashMap<OpId, Vec<usize>> = HashMap::new();
        for (i, id) in order.iter().enumerate() {
            if let Some(op) = self.ops.get(id)
                && let OpBody::Join { .. } = op.body
                && let Some(invite) = op.parents.first()
            {
                joins_by_invite.entry(*invite).or_default().push(i);
            }
        }
        for (i, id) in order.iter().enumerate() {
            let Some(op) = self.ops.get(id) else { continue };
            let author = op.author;
            let organiser = s.members.get(&author).is_some_and(|m| m.role == Role::Organiser);
            let ignore = |s: &mut Resolved, reason: &'static str| {
                s.ignored.insert(*id, reason);
            };
            if !matches!(op.body, OpBody::Remove { .. } | OpBody::Create { .. }) && removed_concurrently(&author, i) {
                ignore(&mut s, "its author was removed at the same time");
                continue;
            }
            match &op.body {
                OpBody::Create { circle_name, max_disappear_secs, binding, display_name, .. } => {
                    if i != 0 {
                        ignore(&mut s, "a circle has only one creation");
                        continue;
                    }
                    s.circle_name = circle_name.clone();
                    s.max_disappear_secs = *max_disappear_secs;
                    s.members.insert(
                        author,
                        MemberRecord {
                            id: author,
                            display_name: display_name.clone(),
                            role: Role::Organiser,
                            binding: *binding,
                            added_by: author,
                            added_op: *id,
                            joined: false,
                        },
                    );
                    s.epoch = 1;
                }
                OpBody::Add { member, binding, display_name, role } => {
                    if !organiser {
                        ignore(&mut s, "only organisers can add members");
                    } else if s.members.contains_key(member) {
                        ignore(&mut s, "already a member");
                    } else if removed_concurrently(member, i) {
                        ignore(&mut s, "the member was removed at the same time");
                    } else {
                        s.members.insert(
                            *member,
                            MemberRecord {
                                id: *member,
                                display_name: display_name.clone(),
                                role: *role,
                                binding: *binding,
                                added_by: author,
                                added_op: *id,
                                joined: false,
                            },
                        );
                        s.former.remove(member);
                        s.epoch += 1;
                    }
                }
                OpBody::Invite { invite_public, expires_at_ms, role } => {
                    if organiser {
                        s.invites.insert(
                            *id,
                            InviteInfo { public: *invite_public, expires_at_ms: *expires_at_ms, role: *role, author },
                        );
                    } else {
                        ignore(&mut s, "only organisers can invite");
                    }
                }
                OpBody::Join { binding, display_name } => {
                    let invite_id = op.parents.first().copied().unwrap_or_default();
                    let Some(invite) = s.invites.get(&invite_id).cloned() else {
                        ignore(&mut s, "the invite is not valid");
                        continue;
                    };
                    let others = joins_by_invite.get(&invite_id).map(Vec::as_slice).unwrap_or(&[]);
                    if others.iter().any(|j| ancestry.concurrent(*j, i)) {
                        ignore(&mut s, "the invite was used twice at the same time; neither join counts");
                    } else if s.used_invites.contains(&invite_id) || others.iter().any(|j| ancestry.is_ancestor(*j, i))
                    {
                        ignore(&mut s, "the invite was already used");
                    } else if op.timestamp_ms > invite.expires_at_ms {
                        ignore(&mut s, "the invite had expired");
                    } else if s.members.contains_key(&author) {
                        ignore(&mut s, "already a member");
                    } else {
                        s.used_invites.insert(invite_id);
                        s.members.insert(
                            author,
                            MemberRecord {
                                id: author,
                                display_name: display_name.clone(),
                                role: invite.role,
                                binding: *binding,
                                added_by: invite.author,
                                added_op: *id,
                                joined: true,
                            },
                        );
                        s.former.remove(&author);
                        s.epoch += 1;
                    }
                }
                OpBody::Remove { member } => {
                    let leaving = *member == author && s.members.contains_key(&author);
                    let entitled = organiser
                        || removal
                            .get(&author)
                            .is_some_and(|(j, role)| *role == Role::Organiser && ancestry.concurrent(*j, i));
                    if !(leaving || entitled) {
                        ignore(&mut s, "only organisers can remove members");
                        continue;
                    }
                    authorised_removes.push((*member, i));
                    match s.members.remove(member) {
                        Some(rec) => {
                            removal.insert(*member, (i, rec.role));
                            s.former.insert(*member, rec.display_name);
                            s.removed_by.insert(*member, author);
                            s.epoch += 1;
                        }
                        None => ignore(&mut s, "not a member"),
                    }
                }
                OpBody::SetRole { member, role } => {
                    if !organiser {
                        ignore(&mut s, "only organisers can change roles");
                    } else if let Some(rec) = s.members.get_mut(member) {
                        rec.role = *role;
                        s.role_set_by.insert(*member, author);
                    } else {
                        ignore(&mut s, "not a member");
                    }
                }
                OpBody::Rotate => {
                    if organiser {
                        s.rotations.push((*id, author));
                        s.epoch += 1;
                    } else {
                        ignore(&mut s, "only organisers can rotate keys");
                    }
                }
                OpBody::SetDisappear { max_secs } => {
                    if organiser {
                        s.max_disappear_secs = *max_secs;
                        s.disappear_set_by = Some(author);
                    } else {
                        ignore(&mut s, "only organisers can change the disappearing timer");
                    }
                }
            }
        }
        (s, authorised_removes)
    }

    fn diff(&self, before: &Resolved, added: &[OpId]) -> Vec<MembershipChange> {
        let after = &self.state;
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
                Some(old) if old.role != rec.role => out.push(MembershipChange::RoleChanged {
                    member: *id,
                    role: rec.role,
                    by: after.role_set_by.get(id).copied().unwrap_or(*id),
                }),
                Some(_) => {}
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
                by: after.disappear_set_by.unwrap_or_default_member(),
            });
        }
        for (op, by) in &after.rotations {
            if !before.rotations.iter().any(|(o, _)| o == op) {
                out.push(MembershipChange::Rotated { by: *by });
            }
        }
        for id in added {
            if let Some(reason) = after.ignored.get(id) {
                out.push(MembershipChange::Ignored { op: *id, reason });
            }
        }
        out
    }
}

trait OrDefaultMember {
    fn unwrap_or_default_member(self) -> MemberId;
}

impl OrDefaultMember for Option<MemberId> {
    fn unwrap_or_default_member(self) -> MemberId {
        self.unwrap_or(MemberId([0; 32]))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::circle::InviteSecret;
    use crate::entropy::SeededEntropy;
    use crate::identity::{IdentitySecret, NoiseSecret};
    use proptest::prelude::*;

    struct World {
        rng: SeededEntropy,
        circle: CircleId,
        log: CircleLog,
        ana: IdentitySecret,
    }

    fn person(rng: &mut SeededEntropy) -> IdentitySecret {
        IdentitySecret::generate(rng)
    }

    fn world() -> World {
        let mut rng = SeededEntropy::from_u64(42);
        let ana = person(&mut rng);
        let noise = NoiseSecret::generate(&mut rng);
        let (g, circle) = Op::create(&ana, &noise, "river", "Ana", 0, 1000, &mut rng).unwrap();
        World { log: CircleLog::from_genesis(g).unwrap(), circle, ana, rng }
    }

    fn binding(w: &mut World, who: &IdentitySecret) -> NoiseBinding {
        let n = NoiseSecret::generate(&mut w.rng);
        NoiseBinding::create(who, &w.circle, &n)
    }

    fn add(w: &mut World, by: &IdentitySecret, who: &IdentitySecret, name: &str, role: Role, parents: Vec<OpId>) -> Op {
        let b = binding(w, who);
        Op::sign(
            by,
            &w.circle,
            parents,
            OpBody::Add { member: who.member_id(), binding: b, display_name: name.into(), role },
            2000,
        )
        .unwrap()
    }

    fn applied(outcome: InsertOutcome) -> Vec<MembershipChange> {
        match outcome {
            InsertOutcome::Applied { changes } => changes,
            other => panic!("expected applied, got {other:?}"),
        }
    }

    #[test]
    fn invite_then_join_once() {
        let mut w = world();
        let invite = InviteSecret::generate(&mut w.rng);
        let inv = Op::sign(
            &w.ana,
            &w.circle,
            w.log.heads(),
            OpBody::Invite { invite_public: invite.public(), expires_at_ms: 5000, role: Role::Member },
            1500,
        )
        .unwrap();
        let inv_id = inv.id();
        w.log.insert(inv).unwrap();
        assert!(matches!(w.log.invite_status(&inv_id, 2000), InviteStatus::Open { .. }));
        assert_eq!(w.log.invite_status(&inv_id, 6000), InviteStatus::Expired);
        let bo = person(&mut w.rng);
        let b = binding(&mut w, &bo);
        let join = Op::sign_join(&bo, &w.circle, &invite, inv_id, b, "Bo", 2000).unwrap();
        let changes = applied(w.log.insert(join).unwrap());
        assert!(matches!(&changes[0], MembershipChange::Joined { name, role: Role::Member, .. } if name == "Bo"));
        assert_eq!(w.log.invite_status(&inv_id, 2000), InviteStatus::Used);
        // Reusing the invite after the join is ignored.
        let cy = person(&mut w.rng);
        let b = binding(&mut w, &cy);
        let mut again = Op::sign_join(&cy, &w.circle, &invite, inv_id, b, "Cy", 2100).unwrap();
        again.parents.push(w.log.heads()[0]);
        let again = Op::sign_join_with_parents(&cy, &w.circle, &invite, again.parents.clone(), b, "Cy", 2100).unwrap();
        let changes = applied(w.log.insert(again).unwrap());
        assert!(matches!(changes[0], MembershipChange::Ignored { reason: "the invite was already used", .. }));
        assert!(!w.log.is_member(&cy.member_id()));
        assert!(w.log.is_member(&bo.member_id()));
        // Two uses that do not see each other: neither counts, so a leaked
        // code cannot displace the member who used it.
        let dee = person(&mut w.rng);
        let b = binding(&mut w, &dee);
        let concurrent = Op::sign_join(&dee, &w.circle, &invite, inv_id, b, "Dee", 2000).unwrap();
        let changes = applied(w.log.insert(concurrent).unwrap());
        assert!(!w.log.is_member(&dee.member_id()));
        assert!(!w.log.is_member(&bo.member_id()));
        assert!(changes.iter().any(|c| matches!(c, MembershipChange::Removed { .. })));
        // A join dated after the expiry is ignored.
        let inv2 = Op::sign(
            &w.ana,
            &w.circle,
            w.log.heads(),
            OpBody::Invite { invite_public: invite.public(), expires_at_ms: 3000, role: Role::Member },
            1500,
        )
        .unwrap();
        let inv2_id = inv2.id();
        w.log.insert(inv2).unwrap();
        let b = binding(&mut w, &cy);
        let late = Op::sign_join(&cy, &w.circle, &invite, inv2_id, b, "Cy", 4000).unwrap();
        let changes = applied(w.log.insert(late).unwrap());
        assert!(matches!(changes[0], MembershipChange::Ignored { reason: "the invite had expired", .. }));
        // A join signed with the wrong invite key is refused outright.
        let wrong = InviteSecret::generate(&mut w.rng);
        let b = binding(&mut w, &cy);
        let forged = Op::sign_join(&cy, &w.circle, &wrong, inv2_id, b, "Cy", 2000).unwrap();
        assert_eq!(w.log.insert(forged), Err(CircleError::BadSignature));
    }

    #[test]
    fn plain_members_and_outsiders_cannot_administer() {
        let mut w = world();
        let ana = IdentitySecret::from_seed(&w.ana.expose_seed());
        let bo = person(&mut w.rng);
        let add_bo = {
            let h = w.log.heads();
            add(&mut w, &ana, &bo, "Bo", Role::Member, h)
        };
        w.log.insert(add_bo).unwrap();
        let epoch = w.log.epoch();
        let cy = person(&mut w.rng);
        let by_member = {
            let h = w.log.heads();
            add(&mut w, &bo, &cy, "Cy", Role::Member, h)
        };
        let changes = applied(w.log.insert(by_member).unwrap());
        assert!(matches!(changes[0], MembershipChange::Ignored { .. }));
        let rm = Op::sign(&bo, &w.circle, w.log.heads(), OpBody::Remove { member: ana.member_id() }, 3000).unwrap();
        applied(w.log.insert(rm).unwrap());
        let rot = Op::sign(&bo, &w.circle, w.log.heads(), OpBody::Rotate, 3000).unwrap();
        applied(w.log.insert(rot).unwrap());
        let outsider = person(&mut w.rng);
        let by_outsider = {
            let h = w.log.heads();
            add(&mut w, &outsider, &cy, "Cy", Role::Organiser, h)
        };
        applied(w.log.insert(by_outsider).unwrap());
        assert_eq!(w.log.epoch(), epoch);
        assert!(w.log.is_member(&ana.member_id()));
        assert!(!w.log.is_member(&cy.member_id()));
        // Leaving is always allowed.
        let leave = Op::sign(&bo, &w.circle, w.log.heads(), OpBody::Remove { member: bo.member_id() }, 4000).unwrap();
        let changes = applied(w.log.insert(leave).unwrap());
        assert!(matches!(changes[0], MembershipChange::Removed { .. }));
    }

    #[test]
    fn children_before_parents_wait_and_then_apply() {
        let mut w = world();
        let ana = IdentitySecret::from_seed(&w.ana.expose_seed());
        let bo = person(&mut w.rng);
        let cy = person(&mut w.rng);
        let first = {
            let h = w.log.heads();
            add(&mut w, &ana, &bo, "Bo", Role::Member, h)
        };
        let second = add(&mut w, &ana, &cy, "Cy", Role::Member, vec![first.id()]);
        assert_eq!(w.log.insert(second).unwrap(), InsertOutcome::Pending);
        assert!(!w.log.is_member(&cy.member_id()));
        let changes = applied(w.log.insert(first).unwrap());
        assert_eq!(changes.len(), 2);
        assert!(w.log.is_member(&cy.member_id()));
    }

    #[test]
    fn concurrent_add_by_a_removed_organiser_loses() {
        let mut w = world();
        let ana = IdentitySecret::from_seed(&w.ana.expose_seed());
        let bo = person(&mut w.rng);
        let x = person(&mut w.rng);
        let add_bo = {
            let h = w.log.heads();
            add(&mut w, &ana, &bo, "Bo", Role::Organiser, h)
        };
        w.log.insert(add_bo).unwrap();
        let heads = w.log.heads();
        // Bo adds X while Ana removes Bo, neither seeing the other.
        let bo_adds_x = add(&mut w, &bo, &x, "X", Role::Member, heads.clone());
        let ana_removes_bo = Op::sign(&ana, &w.circle, heads, OpBody::Remove { member: bo.member_id() }, 3000).unwrap();
        w.log.insert(bo_adds_x).unwrap();
        w.log.insert(ana_removes_bo).unwrap();
        assert!(!w.log.is_member(&bo.member_id()));
        assert!(!w.log.is_member(&x.member_id()));
    }

    #[test]
    fn organisers_removing_each_other_are_both_removed() {
        let mut w = world();
        let ana = IdentitySecret::from_seed(&w.ana.expose_seed());
        let bo = person(&mut w.rng);
        let cy = person(&mut w.rng);
        for (p, n) in [(&bo, "Bo"), (&cy, "Cy")] {
            let op = {
                let h = w.log.heads();
                add(&mut w, &ana, p, n, Role::Organiser, h)
            };
            w.log.insert(op).unwrap();
        }
        let heads = w.log.heads();
        let a = Op::sign(&bo, &w.circle, heads.clone(), OpBody::Remove { member: cy.member_id() }, 3000).unwrap();
        let b = Op::sign(&cy, &w.circle, heads, OpBody::Remove { member: bo.member_id() }, 3000).unwrap();
        w.log.insert(a).unwrap();
        w.log.insert(b).unwrap();
        assert!(!w.log.is_member(&bo.member_id()));
        assert!(!w.log.is_member(&cy.member_id()));
        assert!(w.log.is_member(&ana.member_id()));
    }

    #[test]
    fn concurrent_remove_and_promote_remove_wins() {
        let mut w = world();
        let ana = IdentitySecret::from_seed(&w.ana.expose_seed());
        let bo = person(&mut w.rng);
        let cy = person(&mut w.rng);
        let x = person(&mut w.rng);
        for (p, n, r) in [(&bo, "Bo", Role::Organiser), (&x, "X", Role::Member)] {
            let op = {
                let h = w.log.heads();
                add(&mut w, &ana, p, n, r, h)
            };
            w.log.insert(op).unwrap();
        }
        let _ = cy;
        let heads = w.log.heads();
        let promote = Op::sign(
            &ana,
            &w.circle,
            heads.clone(),
            OpBody::SetRole { member: x.member_id(), role: Role::Organiser },
            3000,
        )
        .unwrap();
        let remove = Op::sign(&bo, &w.circle, heads, OpBody::Remove { member: x.member_id() }, 3000).unwrap();
        w.log.insert(remove).unwrap();
        w.log.insert(promote).unwrap();
        assert!(!w.log.is_member(&x.member_id()));
    }

    /// Builds a random history of valid operations with concurrency.
    fn random_history(seed: u64, n: usize) -> (Op, Vec<Op>) {
        let mut rng = SeededEntropy::from_u64(seed);
        let ana = IdentitySecret::generate(&mut rng);
        let noise = NoiseSecret::generate(&mut rng);
        let (g, circle) = Op::create(&ana, &noise, "c", "Ana", 0, 0, &mut rng).unwrap();
        let people: Vec<IdentitySecret> = (0..5).map(|_| IdentitySecret::generate(&mut rng)).collect();
        let mut all: Vec<Op> = vec![];
        let mut ids: Vec<OpId> = vec![g.id()];
        for k in 0..n {
            let r: [u8; 4] = crate::entropy::Entropy::array(&mut rng);
            // Parents: one or two random earlier operations (concurrency).
            let p1 = ids[r[0] as usize % ids.len()];
            let p2 = ids[r[1] as usize % ids.len()];
            let mut parents = vec![p1];
            if p2 != p1 {
                parents.push(p2);
            }
            let author = if r[2].is_multiple_of(3) { &ana } else { &people[r[2] as usize % people.len()] };
            let target = &people[r[3] as usize % people.len()];
            let body = match k % 4 {
                0 | 1 => OpBody::Add {
                    member: target.member_id(),
                    binding: NoiseBinding::create(target, &circle, &NoiseSecret::generate(&mut rng)),
                    display_name: "p".into(),
                    role: if r[3].is_multiple_of(2) { Role::Organiser } else { Role::Member },
                },
                2 => OpBody::Remove { member: target.member_id() },
                _ => OpBody::SetRole { member: target.member_id(), role: Role::Member },
            };
            let op = Op::sign(author, &circle, parents, body, k as u64).unwrap();
            ids.push(op.id());
            all.push(op);
        }
        (g, all)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn any_delivery_order_converges(seed in 0u64..1000, order in Just((0usize..24).collect::<Vec<_>>()).prop_shuffle()) {
            let (g, ops) = random_history(seed, 24);
            let mut a = CircleLog::from_genesis(g.clone()).unwrap();
            for op in ops.iter().cloned() {
                let _ = a.insert(op);
            }
            let mut b = CircleLog::from_genesis(g).unwrap();
            for i in order {
                let _ = b.insert(ops[i].clone());
            }
            let summary = |l: &CircleLog| -> Vec<(MemberId, Role)> { l.members().iter().map(|m| (m.id, m.role)).collect() };
            prop_assert_eq!(summary(&a), summary(&b));
            prop_assert_eq!(a.epoch(), b.epoch());
            prop_assert_eq!(a.heads(), b.heads());
            prop_assert_eq!(a.len(), 25);
        }
    }
}
