//! Applying membership operations to a circle: the log decides, this
//! module reacts (notices, key-change warnings, rekeying on a new epoch,
//! forgetting removed members' keys and sessions).

use super::Ctx;
use super::circle_state::CircleState;
use super::types::{Event, Output, Record};
use crate::circle::{InsertOutcome, MembershipChange, Op};
use crate::identity::MemberId;

impl CircleState {
    /// Insert an operation (ours or received) and act on what changed.
    /// Returns whether the log refused it (held for missing parents and
    /// duplicates are not refusals).
    pub fn insert_op(&mut self, ctx: &mut Ctx<'_>, op: Op) -> bool {
        let epoch_before = self.log.epoch();
        let (author, id) = (op.author, op.id());
        self.log.set_local(ctx.me);
        let result = self.log.insert(op);
        if matches!(result, Ok(InsertOutcome::Applied { .. } | InsertOutcome::Duplicate)) {
            // Its author holds everything before it.
            self.log.acknowledge(author, &[id]);
        }
        match result {
            Err(e) => {
                ctx.event(Event::Rejected { circle: self.id(), reason: format!("membership operation refused: {e}") });
                true
            }
            Ok(InsertOutcome::Duplicate) | Ok(InsertOutcome::Pending) => false,
            Ok(InsertOutcome::Applied { changes }) => {
                self.apply_changes(ctx, changes, epoch_before);
                false
            }
        }
    }

    fn apply_changes(&mut self, ctx: &mut Ctx<'_>, changes: Vec<MembershipChange>, epoch_before: u32) {
        self.refresh_member_tags();
        for change in changes {
            self.notice(ctx, &change);
            ctx.event(Event::Membership { circle: self.id(), change });
        }
        ctx.out.push(Output::Persist(Record::CircleState { circle: self.id() }));
        // Every link proves a member's or an open invite's key (SPEC §2a):
        // an Invite, Join or Admit changes who can.
        ctx.out.push(Output::Access { circle: self.id(), access: self.network_access() });
        if !self.log.is_member(&ctx.me) {
            if !self.removed {
                // No more sending; we leave the network after a grace
                // period, in case a concurrent revocation voids this.
                self.removed = true;
                self.removed_since = Some(ctx.now);
            }
            return;
        }
        if self.removed {
            // The removal lost to a concurrent, more senior revocation.
            self.removed = false;
            self.removed_since = None;
            let me = ctx.me;
            self.system_message(ctx, me, "your removal was undone: it conflicted with a removal of its author".into());
            self.new_chain(ctx);
            ctx.out.push(self.subscribe_output());
        } else if self.log.epoch() != epoch_before {
            // New epoch: its rekeyer sends the epoch secret; with it every
            // member announces a fresh chain on the epoch's new topic.
            self.on_new_epoch(ctx);
        }
        self.retry_awaiting_senders(ctx);
    }

    fn notice(&mut self, ctx: &mut Ctx<'_>, change: &MembershipChange) {
        let text = match change {
            MembershipChange::Created { by } => {
                format!("{} created the circle", self.member_name(by))
            }
            MembershipChange::Added { member, name, by, .. } => {
                self.check_key_change(ctx, member, name);
                format!("{} added {}", self.member_name(by), name)
            }
            MembershipChange::Joined { member, name, invited_by, .. } => {
                self.check_key_change(ctx, member, name);
                format!("{} joined (invited by {})", name, self.member_name(invited_by))
            }
            MembershipChange::Removed { member, name, by } => {
                self.forget_member(member, ctx.now);
                if by == member {
                    format!("{name} left the circle")
                } else {
                    format!("{} removed {}", self.member_name(by), name)
                }
            }
            MembershipChange::RoleChanged { member, role, by } => {
                format!("{} made {} {:?}", self.member_name(by), self.member_name(member), role).to_lowercase()
            }
            MembershipChange::Renamed { member, from, to } => {
                self.check_key_change(ctx, member, to);
                format!("{from} is now called {to}")
            }
            MembershipChange::Rotated { by } => {
                format!("{} rotated the circle's keys", self.member_name(by))
            }
            MembershipChange::InviteRevoked { by, .. } => {
                format!("{} revoked an invite", self.member_name(by))
            }
            MembershipChange::DisappearChanged { max_secs, by } => match max_secs {
                Some(s) => format!("{} set disappearing messages to {}", self.member_name(by), human_secs(*s)),
                None => format!("{} turned disappearing messages off", self.member_name(by)),
            },
            MembershipChange::Ignored { reason, .. } => {
                ctx.event(Event::Rejected {
                    circle: self.id(),
                    reason: format!("membership operation ignored: {reason}"),
                });
                return;
            }
        };
        let by = match change {
            MembershipChange::Created { by }
            | MembershipChange::Added { by, .. }
            | MembershipChange::Removed { by, .. }
            | MembershipChange::RoleChanged { by, .. }
            | MembershipChange::Rotated { by }
            | MembershipChange::DisappearChanged { by, .. }
            | MembershipChange::InviteRevoked { by, .. } => *by,
            MembershipChange::Joined { member, .. } | MembershipChange::Renamed { member, .. } => *member,
            MembershipChange::Ignored { .. } => ctx.me,
        };
        self.system_message(ctx, by, text);
    }

    /// A newcomer using the name of someone we knew under another key is
    /// the classic impersonation: warn loudly and block sending until the
    /// user acknowledges.
    fn check_key_change(&mut self, ctx: &mut Ctx<'_>, member: &MemberId, name: &str) {
        if *member == ctx.me {
            return;
        }
        // Same confusable skeleton: "Ana", "ana" and "Аna" (Cyrillic А).
        let skeleton = crate::circle::name_skeleton(name);
        let looks_alike = |n: &str| crate::circle::name_skeleton(n) == skeleton;
        let current = self.log.members().into_iter().any(|r| r.id != *member && looks_alike(&r.display_name));
        let former = self.log.former_members().into_iter().any(|(id, n)| id != *member && looks_alike(&n));
        if current || former {
            self.unacked_key_changes.insert(*member);
            ctx.event(Event::KeyChangeWarning { circle: self.id(), member: *member, name: name.to_owned() });
        }
    }
}

pub fn human_secs(s: u32) -> String {
    match s {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}
