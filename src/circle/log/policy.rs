//! Who may do what: the one permission table that both the resolver and
//! [`CircleLog::can`](super::CircleLog::can) read, and the per-author
//! quotas (`protocol/SPEC.md` §4.3).

use crate::circle::Role;
use crate::circle::op::{Op, OpBody};

/// What an operation's author must be in the state of the operation's own
/// causal past.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Needs {
    /// The circle's creation: only as the genesis.
    Genesis,
    /// A joiner's request: never on its own in the log (it rides in an Admit).
    NeverAlone,
    Member,
    Organiser,
}

impl Needs {
    pub(super) fn of(op: &Op) -> Needs {
        match &op.body {
            OpBody::Create { .. } => Needs::Genesis,
            OpBody::Join { .. } => Needs::NeverAlone,
            OpBody::Remove { member } if *member == op.author => Needs::Member,
            OpBody::Rename { .. } => Needs::Member,
            OpBody::Add { .. }
            | OpBody::Invite { .. }
            | OpBody::Remove { .. }
            | OpBody::SetRole { .. }
            | OpBody::Rotate
            | OpBody::SetDisappear { .. }
            | OpBody::Admit { .. }
            | OpBody::RevokeInvite { .. } => Needs::Organiser,
        }
    }

    /// Does a member with `role` (or a non-member, `None`) meet this?
    pub(super) fn met_by(self, role: Option<Role>) -> bool {
        match self {
            Needs::Genesis | Needs::NeverAlone => false,
            Needs::Member => role.is_some(),
            Needs::Organiser => role == Some(Role::Organiser),
        }
    }
}

/// Things a member may ask to do; [`CircleLog::can`](super::CircleLog::can)
/// answers from the same table as the resolver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Invite,
    RevokeInvite,
    Remove,
    SetRole,
    Rotate,
    SetDisappear,
    Announce,
    Leave,
    Rename,
}

impl Action {
    pub(super) fn needs(self) -> Needs {
        match self {
            Action::Leave | Action::Rename => Needs::Member,
            Action::Invite
            | Action::RevokeInvite
            | Action::Remove
            | Action::SetRole
            | Action::Rotate
            | Action::SetDisappear
            | Action::Announce => Needs::Organiser,
        }
    }
}

/// Most operations one plain member may author in a circle (renames and
/// its leaving; far more than anyone needs).
pub const MEMBER_QUOTA: usize = 64;
/// Most operations one organiser may author in a circle.
pub const ORGANISER_QUOTA: usize = 2_000;

/// The larger quota: what a batch checks before the author's role is known
/// (its own quota is checked once the batch is resolved).
pub(super) const MAX_QUOTA: usize = ORGANISER_QUOTA;

/// The quota of an author who currently holds `role`.
pub(super) fn quota(role: Option<Role>) -> usize {
    match role {
        Some(Role::Organiser) => ORGANISER_QUOTA,
        Some(Role::Member) | None => MEMBER_QUOTA,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn organiser_actions_need_an_organiser_and_leaving_needs_a_member() {
        assert!(Action::Remove.needs().met_by(Some(Role::Organiser)));
        assert!(!Action::Remove.needs().met_by(Some(Role::Member)));
        assert!(Action::Leave.needs().met_by(Some(Role::Member)));
        assert!(!Action::Leave.needs().met_by(None));
        assert!(!Needs::Genesis.met_by(Some(Role::Organiser)));
        assert!(quota(Some(Role::Organiser)) > quota(Some(Role::Member)));
    }
}
