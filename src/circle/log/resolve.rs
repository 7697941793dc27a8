//! The resolution rule (`protocol/SPEC.md` §4.3): from a DAG of signed
//! operations to a roster, the same at every member that holds the same
//! operations.
//!
//! 1. **Causal pass.** Each operation is judged by the state of its own
//!    causal past alone: its author held the role it needs there, and its
//!    target was what it must be. Since a past never changes, this verdict
//!    never changes either; an operation that fails it is refused at insert
//!    and never stored.
//! 2. **Conflicts.** A *revocation* is a Remove, or a SetRole that demotes
//!    an organiser. A revocation of X *attacks* every operation by X that
//!    is concurrent with it (for a demotion: those that need an organiser).
//!    Among revocations, the valid ones are those attacked by no valid one;
//!    where that leaves a cycle undecided (two organisers removing each
//!    other), the revocations of the most senior author win: seniority is
//!    the position of the operation that gave the author its standing, the
//!    creator first.
//! 3. **Final pass.** In order, an operation counts if it passed the causal
//!    pass, no valid revocation attacks it, it is not a revocation that lost
//!    its conflict, the final state of its past still allows it, no valid
//!    Remove of its new member is concurrent with it (remove wins), and an
//!    Admit has no concurrent RevokeInvite or second Admit of its invite.
//!    If a revocation that won step 2 fails here, it leaves the candidates
//!    and steps 2-3 run again (at most once per revocation).

use std::collections::{BTreeMap, HashMap, HashSet};

use super::MemberRecord;
use super::dag::{Ancestors, Dag, in_set};
use super::policy::Needs;
use crate::circle::op::{Op, OpBody};
use crate::circle::{OpId, Role};
use crate::identity::MemberId;

/// A member's standing as one operation set it.
#[derive(Clone, Copy)]
struct Standing {
    pos: usize,
    role: Option<Role>,
    /// Position of the operation that gave this standing (seniority).
    since: usize,
}

#[derive(Clone)]
pub(super) struct InviteFact {
    pub(super) pos: usize,
    pub(super) author: MemberId,
    pub(super) public: [u8; 32],
    pub(super) expires_at_ms: u64,
    pub(super) role: Role,
}

/// What the operations counted so far established, by position.
#[derive(Clone, Default)]
pub(super) struct Facts {
    standing: HashMap<MemberId, Vec<Standing>>,
    pub(super) invites: HashMap<OpId, InviteFact>,
    revokes: HashMap<OpId, Vec<usize>>,
    admits: HashMap<OpId, Vec<usize>>,
}

/// "Is position j in the past?"
pub(super) type Past<'a> = &'a dyn Fn(usize) -> bool;

impl Facts {
    /// The member's role in a past, and since which operation.
    fn standing(&self, member: &MemberId, past: Past<'_>) -> Option<(Role, usize)> {
        let events = self.standing.get(member)?;
        let last = events.iter().rev().find(|e| past(e.pos))?;
        last.role.map(|r| (r, last.since))
    }

    fn set(&mut self, member: MemberId, pos: usize, role: Option<Role>) {
        self.standing.entry(member).or_default().push(Standing { pos, role, since: pos });
    }

    /// Record what a counted operation establishes.
    fn record(&mut self, pos: usize, id: &OpId, op: &Op) {
        match &op.body {
            OpBody::Create { .. } => self.set(op.author, pos, Some(Role::Organiser)),
            OpBody::Add { member, role, .. } => self.set(*member, pos, Some(*role)),
            OpBody::Remove { member } => self.set(*member, pos, None),
            OpBody::SetRole { member, role } => self.set(*member, pos, Some(*role)),
            OpBody::Invite { invite_public, expires_at_ms, role } => {
                self.invites.insert(
                    *id,
                    InviteFact {
                        pos,
                        author: op.author,
                        public: *invite_public,
                        expires_at_ms: *expires_at_ms,
                        role: *role,
                    },
                );
            }
            OpBody::Admit { join } => {
                if let Some(invite) = join.invite_of() {
                    let role = self.invites.get(&invite).map(|i| i.role).unwrap_or(Role::Member);
                    self.set(join.author, pos, Some(role));
                    self.admits.entry(invite).or_default().push(pos);
                }
            }
            OpBody::RevokeInvite { invite_op } => self.revokes.entry(*invite_op).or_default().push(pos),
            OpBody::Join { .. } | OpBody::Rotate | OpBody::SetDisappear { .. } | OpBody::Rename { .. } => {}
        }
    }

    /// The role `member` holds in `past`.
    pub(super) fn role_in(&self, member: &MemberId, past: Past<'_>) -> Option<Role> {
        self.standing(member, past).map(|s| s.0)
    }

    /// Judge `op` by the state of its past alone (step 1, and the re-check
    /// of step 3 against the final facts). `genesis` is true only for the
    /// first operation.
    pub(super) fn allows(&self, op: &Op, genesis: bool, past: Past<'_>) -> Result<(), &'static str> {
        let needs = Needs::of(op);
        match needs {
            Needs::Genesis => return if genesis { Ok(()) } else { Err("a circle has only one creation") },
            Needs::NeverAlone => return Err("a join enters the log only inside the inviter's admit"),
            Needs::Member | Needs::Organiser => {}
        }
        if !needs.met_by(self.role_in(&op.author, past)) {
            return Err(if needs == Needs::Member {
                "its author was not a member"
            } else {
                "its author was not an organiser"
            });
        }
        match &op.body {
            OpBody::Add { member, .. } if self.role_in(member, past).is_some() => Err("already a member"),
            OpBody::Remove { member } if self.role_in(member, past).is_none() => Err("not a member"),
            OpBody::SetRole { member, role } => match self.role_in(member, past) {
                None => Err("not a member"),
                Some(r) if r == *role => Err("already has that role"),
                Some(_) => Ok(()),
            },
            OpBody::RevokeInvite { invite_op } => {
                self.invites.get(invite_op).filter(|i| past(i.pos)).ok_or("no such invite")?;
                if self.revokes.get(invite_op).is_some_and(|v| v.iter().any(|p| past(*p))) {
                    return Err("the invite was already revoked");
                }
                Ok(())
            }
            OpBody::Admit { join } => {
                let invite_op = join.invite_of().ok_or("an admit carries a join")?;
                let invite = self.invites.get(&invite_op).filter(|i| past(i.pos)).ok_or("the invite is not known")?;
                if invite.author != op.author {
                    return Err("only the member who made an invite can admit with it");
                }
                if op.timestamp_ms > invite.expires_at_ms {
                    return Err("the invite had expired");
                }
                if self.revokes.get(&invite_op).is_some_and(|v| v.iter().any(|p| past(*p))) {
                    return Err("the invite was revoked");
                }
                if self.admits.get(&invite_op).is_some_and(|v| v.iter().any(|p| past(*p))) {
                    return Err("the invite was already used");
                }
                if self.role_in(&join.author, past).is_some() {
                    return Err("already a member");
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Revokes {
    /// A Remove: the target can do nothing concurrent with it.
    Everything,
    /// A demotion: the target can do nothing that needs an organiser.
    Organiser,
}

struct Revocation {
    pos: usize,
    author: MemberId,
    target: MemberId,
    kind: Revokes,
    needs: Needs,
    /// (position of the author's standing, own position): smaller is senior.
    rank: (usize, usize),
}

/// The roster and settings: what the final pass built.
#[derive(Clone, Default)]
pub(super) struct Roster {
    pub(super) members: BTreeMap<MemberId, MemberRecord>,
    pub(super) former: BTreeMap<MemberId, String>,
    pub(super) removed_by: HashMap<MemberId, MemberId>,
    pub(super) role_set_by: HashMap<MemberId, MemberId>,
    pub(super) invites: HashMap<OpId, InviteFact>,
    /// Invite → the Admit that used it.
    pub(super) used_invites: HashMap<OpId, OpId>,
    pub(super) revoked_invites: HashMap<OpId, MemberId>,
    pub(super) circle_name: String,
    pub(super) max_disappear_secs: u32,
    pub(super) disappear_set_by: Option<MemberId>,
    pub(super) rotations: Vec<(OpId, MemberId)>,
    pub(super) renames: Vec<(OpId, MemberId, String, String)>,
    pub(super) epoch: u32,
    /// The operation that started the current epoch, and its author: the
    /// member who chooses the epoch's secret (SPEC §5.1a).
    pub(super) raiser: Option<(OpId, MemberId)>,
    /// Stored operations the final pass did not count, with why.
    pub(super) ignored: HashMap<OpId, &'static str>,
}

/// Everything the resolver keeps between inserts.
#[derive(Clone, Default)]
pub(super) struct Resolution {
    pub(super) dag: Dag,
    /// Step 1's facts (they never change for a placed operation).
    pub(super) causal: Facts,
    /// Step 3's facts.
    final_facts: Facts,
    /// Valid revocations by target.
    valid_revocations: HashMap<MemberId, Vec<(usize, Revokes)>>,
    pub(super) roster: Roster,
    /// Stored operations that fail step 1 (only after a batch whose
    /// causal checks waited for the resolution).
    pub(super) causal_refused: HashSet<OpId>,
    /// The author of the operation at each position.
    authors: Vec<MemberId>,
}

impl Resolution {
    /// Resolve from scratch.
    pub(super) fn resolve(ops: &HashMap<OpId, Op>) -> Resolution {
        let dag = Dag::build(ops);
        let order: Vec<(OpId, &Op)> = dag.order().iter().filter_map(|id| ops.get(id).map(|op| (*id, op))).collect();
        let mut causal = Facts::default();
        let mut causal_ok: Vec<Result<(), &'static str>> = Vec::with_capacity(order.len());
        for (pos, (id, op)) in order.iter().enumerate() {
            let past = |j: usize| dag.is_ancestor(j, pos);
            let verdict = causal.allows(op, pos == 0, &past);
            if verdict.is_ok() {
                causal.record(pos, id, op);
            }
            causal_ok.push(verdict);
        }
        let revocations: Vec<Revocation> = order
            .iter()
            .enumerate()
            .filter(|(pos, _)| causal_ok[*pos].is_ok())
            .filter_map(|(pos, (_, op))| revocation(&causal, &dag, pos, op))
            .collect();
        let mut excluded: HashSet<usize> = HashSet::new();
        loop {
            let candidates: Vec<&Revocation> = revocations.iter().filter(|r| !excluded.contains(&r.pos)).collect();
            let winners = decide(&candidates, &dag);
            let mut valid_revocations: HashMap<MemberId, Vec<(usize, Revokes)>> = HashMap::new();
            let mut decided: HashMap<usize, bool> = HashMap::new();
            for (r, won) in candidates.iter().zip(&winners) {
                decided.insert(r.pos, *won);
                if *won {
                    valid_revocations.entry(r.target).or_default().push((r.pos, r.kind));
                }
            }
            for r in &revocations {
                decided.entry(r.pos).or_insert(false);
            }
            let mut res = Resolution {
                dag: dag.clone(),
                causal: causal.clone(),
                final_facts: Facts::default(),
                valid_revocations,
                roster: Roster::default(),
                causal_refused: order
                    .iter()
                    .zip(&causal_ok)
                    .filter(|(_, ok)| ok.is_err())
                    .map(|((id, _), _)| *id)
                    .collect(),
                authors: order.iter().map(|(_, op)| op.author).collect(),
            };
            let mut lost_standing = Vec::new();
            for (pos, (id, op)) in order.iter().enumerate() {
                let verdict = causal_ok[pos].and_then(|()| res.final_step(pos, id, op, decided.get(&pos).copied()));
                if let Err(reason) = verdict {
                    if decided.get(&pos) == Some(&true) {
                        lost_standing.push(pos);
                    }
                    res.roster.ignored.insert(*id, reason);
                }
            }
            if lost_standing.is_empty() {
                return res;
            }
            excluded.extend(lost_standing);
        }
    }

    /// Place and count an operation that descends from every placed one
    /// (`bits` covers them all) and passed step 1: nothing is concurrent
    /// with it, so no earlier verdict changes.
    pub(super) fn append(&mut self, id: OpId, op: &Op, bits: Ancestors) {
        let pos = self.dag.len();
        self.dag.push(id, &op.parents, bits);
        self.authors.push(op.author);
        self.causal.record(pos, &id, op);
        let rev = revocation(&self.causal, &self.dag, pos, op);
        if let Err(reason) = self.final_step(pos, &id, op, rev.as_ref().map(|_| true)) {
            self.roster.ignored.insert(id, reason);
        } else if let Some(r) = rev {
            self.valid_revocations.entry(r.target).or_default().push((pos, r.kind));
        }
    }

    /// Is the operation at `pos` by `author`, needing `needs`, attacked by
    /// a valid revocation?
    fn attacked(&self, pos: usize, author: &MemberId, needs: Needs) -> Option<Revokes> {
        self.valid_revocations.get(author)?.iter().find_map(|(r, kind)| {
            (self.dag.concurrent(*r, pos) && (*kind == Revokes::Everything || needs == Needs::Organiser))
                .then_some(*kind)
        })
    }

    /// Step 3 for one operation; on success it is counted.
    fn final_step(&mut self, pos: usize, id: &OpId, op: &Op, decided: Option<bool>) -> Result<(), &'static str> {
        let needs = Needs::of(op);
        match self.attacked(pos, &op.author, needs) {
            Some(Revokes::Everything) => return Err("its author was removed at the same time"),
            Some(Revokes::Organiser) => return Err("its author lost the organiser role at the same time"),
            None => {}
        }
        if decided == Some(false) {
            return Err("a concurrent removal or demotion by a more senior organiser wins over it");
        }
        let dag = &self.dag;
        let past = |j: usize| dag.is_ancestor(j, pos);
        self.final_facts.allows(op, pos == 0, &past)?;
        let newcomer = match &op.body {
            OpBody::Add { member, .. } => Some(*member),
            OpBody::Admit { join } => Some(join.author),
            _ => None,
        };
        if let Some(m) = newcomer
            && self
                .valid_revocations
                .get(&m)
                .is_some_and(|v| v.iter().any(|(r, kind)| *kind == Revokes::Everything && self.dag.concurrent(*r, pos)))
        {
            return Err("the member was removed at the same time");
        }
        if let OpBody::Admit { join } = &op.body {
            let invite = join.invite_of().unwrap_or_default();
            let revoked_concurrently = self
                .causal
                .revokes
                .get(&invite)
                .is_some_and(|v| v.iter().any(|r| self.dag.concurrent(*r, pos) && self.revoke_author_stands(*r)));
            if revoked_concurrently {
                return Err("the invite was revoked at the same time");
            }
            if self.causal.admits.get(&invite).is_some_and(|v| v.iter().any(|a| self.dag.concurrent(*a, pos))) {
                return Err("the invite was used twice at the same time; neither counts");
            }
        }
        apply(&mut self.roster, &self.final_facts, id, op)?;
        self.final_facts.record(pos, id, op);
        Ok(())
    }

    /// A RevokeInvite at `pos` counts against a concurrent Admit unless its
    /// own author was revoked concurrently with it.
    fn revoke_author_stands(&self, pos: usize) -> bool {
        self.authors.get(pos).is_none_or(|a| self.attacked(pos, a, Needs::Organiser).is_none())
    }
}

/// Is `op` (at `pos`, counted by step 1) a revocation, and of whom?
fn revocation(causal: &Facts, dag: &Dag, pos: usize, op: &Op) -> Option<Revocation> {
    let past = |j: usize| dag.is_ancestor(j, pos);
    let (target, kind) = match &op.body {
        OpBody::Remove { member } => (*member, Revokes::Everything),
        OpBody::SetRole { member, role: Role::Member } if causal.role_in(member, &past) == Some(Role::Organiser) => {
            (*member, Revokes::Organiser)
        }
        _ => return None,
    };
    let since = causal.standing(&op.author, &past).map(|s| s.1).unwrap_or(usize::MAX);
    Some(Revocation { pos, author: op.author, target, kind, needs: Needs::of(op), rank: (since, pos) })
}

/// Step 2: which candidate revocations are valid.
fn decide(revs: &[&Revocation], dag: &Dag) -> Vec<bool> {
    let mut by_target: HashMap<MemberId, Vec<usize>> = HashMap::new();
    for (i, r) in revs.iter().enumerate() {
        by_target.entry(r.target).or_default().push(i);
    }
    let attackers: Vec<Vec<usize>> = revs
        .iter()
        .map(|victim| {
            by_target
                .get(&victim.author)
                .into_iter()
                .flatten()
                .copied()
                .filter(|&a| {
                    let r = revs[a];
                    dag.concurrent(r.pos, victim.pos)
                        && (r.kind == Revokes::Everything || victim.needs == Needs::Organiser)
                })
                .collect()
        })
        .collect();
    let mut status: Vec<Option<bool>> = vec![None; revs.len()];
    loop {
        let mut changed = true;
        while changed {
            changed = false;
            for v in 0..revs.len() {
                if status[v].is_some() {
                    continue;
                }
                if attackers[v].iter().any(|a| status[*a] == Some(true)) {
                    status[v] = Some(false);
                    changed = true;
                } else if attackers[v].iter().all(|a| status[*a] == Some(false)) {
                    status[v] = Some(true);
                    changed = true;
                }
            }
        }
        // What is left is caught in cycles: the most senior author wins.
        let Some(v) = (0..revs.len()).filter(|v| status[*v].is_none()).min_by_key(|v| revs[*v].rank) else {
            break;
        };
        status[v] = Some(true);
        for a in &attackers[v] {
            if status[*a].is_none() {
                status[*a] = Some(false);
            }
        }
    }
    status.into_iter().map(|s| s == Some(true)).collect()
}

/// Carry a counted operation into the roster.
fn apply(s: &mut Roster, facts: &Facts, id: &OpId, op: &Op) -> Result<(), &'static str> {
    let author = op.author;
    match &op.body {
        OpBody::Create { circle_name, max_disappear_secs, binding, display_name, .. } => {
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
            s.raiser = Some((*id, author));
        }
        OpBody::Add { member, binding, display_name, role } => {
            if s.members.contains_key(member) {
                return Err("already a member");
            }
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
            s.raiser = Some((*id, author));
        }
        OpBody::Admit { join } => {
            let OpBody::Join { invite_op, binding, display_name } = &join.body else {
                return Err("an admit carries a join");
            };
            if s.members.contains_key(&join.author) {
                return Err("already a member");
            }
            let role = facts.invites.get(invite_op).map(|i| i.role).unwrap_or(Role::Member);
            s.members.insert(
                join.author,
                MemberRecord {
                    id: join.author,
                    display_name: display_name.clone(),
                    role,
                    binding: *binding,
                    added_by: author,
                    added_op: *id,
                    joined: true,
                },
            );
            s.used_invites.insert(*invite_op, *id);
            s.former.remove(&join.author);
            s.epoch += 1;
            s.raiser = Some((*id, author));
        }
        OpBody::Invite { invite_public, expires_at_ms, role } => {
            let pos = facts.invites.len();
            s.invites.insert(
                *id,
                InviteFact { pos, author, public: *invite_public, expires_at_ms: *expires_at_ms, role: *role },
            );
        }
        OpBody::Remove { member } => {
            if let Some(rec) = s.members.remove(member) {
                s.former.insert(*member, rec.display_name);
                s.removed_by.insert(*member, author);
                s.epoch += 1;
                s.raiser = Some((*id, author));
            }
        }
        OpBody::SetRole { member, role } => {
            if let Some(rec) = s.members.get_mut(member) {
                rec.role = *role;
                s.role_set_by.insert(*member, author);
            }
        }
        OpBody::Rotate => {
            s.rotations.push((*id, author));
            s.epoch += 1;
            s.raiser = Some((*id, author));
        }
        OpBody::SetDisappear { max_secs } => {
            s.max_disappear_secs = *max_secs;
            s.disappear_set_by = Some(author);
        }
        OpBody::RevokeInvite { invite_op } => {
            s.revoked_invites.insert(*invite_op, author);
        }
        OpBody::Rename { display_name } => {
            if let Some(rec) = s.members.get_mut(&author) {
                let old = std::mem::replace(&mut rec.display_name, display_name.clone());
                s.renames.push((*id, author, old, display_name.clone()));
            }
        }
        OpBody::Join { .. } => return Err("a join enters the log only inside the inviter's admit"),
    }
    Ok(())
}

/// Whether position `j` is in an ancestor set (for an operation not yet placed).
pub(super) fn past_of(bits: &Ancestors) -> impl Fn(usize) -> bool + '_ {
    move |j| in_set(bits, j)
}
