//! The engine's views as the control socket's types.

use super::types::{Body, Change, Message, PushEvent};
use crate::circle::MembershipChange;
use crate::engine::{Event, MessageKind, MessageView};
use crate::identity::{MemberId, hex};

fn fp(m: &MemberId) -> String {
    m.fingerprint().to_string()
}

/// A message as the socket lists it; `verified` as the caller knows it.
pub fn message(m: &MessageView, verified: Option<bool>) -> Message {
    let body = match &m.kind {
        MessageKind::Text => Body::Text,
        MessageKind::System => Body::System,
        MessageKind::Announcement(a) => Body::Announcement {
            title: a.title.clone(),
            when: a.when.clone(),
            place: a.place.clone(),
            details: a.details.clone(),
            supersedes: a.supersedes.map(|s| hex(&s)),
        },
    };
    Message {
        id: hex(&m.id),
        circle: hex(&m.circle),
        body,
        sender: m.sender_name.clone(),
        sender_fingerprint: fp(&m.sender),
        text: m.text.clone(),
        sent_at: m.sent_at_ms,
        received_at: m.received_at_ms,
        expires_at: m.expires_at_ms,
        verified,
    }
}

pub fn change(c: &MembershipChange) -> Change {
    match c {
        MembershipChange::Created { by } => Change::Created { by: fp(by) },
        MembershipChange::Added { member, name, role, by } => {
            Change::Added { member: fp(member), name: name.clone(), role: (*role).into(), by: fp(by) }
        }
        MembershipChange::Joined { member, name, role, invited_by } => {
            Change::Joined { member: fp(member), name: name.clone(), role: (*role).into(), invited_by: fp(invited_by) }
        }
        MembershipChange::Removed { member, name, by } => {
            Change::Removed { member: fp(member), name: name.clone(), by: fp(by) }
        }
        MembershipChange::RoleChanged { member, role, by } => {
            Change::RoleChanged { member: fp(member), role: (*role).into(), by: fp(by) }
        }
        MembershipChange::Renamed { member, from, to } => {
            Change::Renamed { member: fp(member), from: from.clone(), to: to.clone() }
        }
        MembershipChange::Rotated { by } => Change::Rotated { by: fp(by) },
        MembershipChange::DisappearChanged { max_secs, by } => {
            Change::DisappearChanged { max_secs: *max_secs, by: fp(by) }
        }
        MembershipChange::InviteRevoked { invite, by } => Change::InviteRevoked { invite: hex(invite), by: fp(by) },
        MembershipChange::Ignored { op, reason } => Change::Ignored { op: hex(op), reason: (*reason).to_owned() },
    }
}

/// What a subscriber hears of an engine event. Invite codes (they admit
/// whoever holds them) and members' addresses are not passed on.
pub fn engine_event(e: &Event) -> Option<PushEvent> {
    Some(match e {
        Event::CircleCreated { circle, name } => PushEvent::CircleCreated { circle: hex(circle), name: name.clone() },
        Event::Joined { circle, name } => PushEvent::Joined { circle: hex(circle), name: name.clone() },
        Event::JoinFailed { circle, reason } => PushEvent::JoinFailed { circle: hex(circle), reason: reason.clone() },
        Event::InviteCreated { .. } => return None,
        Event::Message(m) => PushEvent::Message { message: message(m, None) },
        Event::MessageExpired { circle, id } => PushEvent::MessageExpired { circle: hex(circle), id: hex(id) },
        Event::Membership { circle, change: c } => PushEvent::Membership { circle: hex(circle), change: change(c) },
        Event::AnnouncementAcked { circle, announcement, by } => {
            PushEvent::AnnouncementAcked { circle: hex(circle), announcement: hex(announcement), by: fp(by) }
        }
        Event::SplitView { circle, member, name } => {
            PushEvent::SplitView { circle: hex(circle), member: fp(member), name: name.clone() }
        }
        Event::Equivocation { circle, member, name } => {
            PushEvent::Equivocation { circle: hex(circle), member: fp(member), name: name.clone() }
        }
        Event::KeyChangeWarning { circle, member, name } => {
            PushEvent::KeyChanged { circle: hex(circle), member: fp(member), name: name.clone() }
        }
        Event::Presence { circle, member, .. } => PushEvent::Presence { circle: hex(circle), member: fp(member) },
        Event::Verified { circle, member } => PushEvent::Verified { circle: hex(circle), member: fp(member) },
        Event::Queued { circle, reason } => PushEvent::Queued { circle: hex(circle), reason: reason.clone() },
        Event::Rejected { circle, reason } => PushEvent::Rejected { circle: hex(circle), reason: reason.clone() },
        Event::Error { reason } => PushEvent::Error { reason: reason.clone() },
    })
}

/// What a subscriber hears of a node event.
#[cfg(feature = "app")]
pub fn node_event(e: &crate::node::NodeEvent) -> Option<PushEvent> {
    use crate::node::NodeEvent;
    match e {
        NodeEvent::Engine(e) => engine_event(e),
        NodeEvent::Peers { circle } => Some(PushEvent::Links { circle: hex(circle) }),
        NodeEvent::CatchUp { circle } => Some(PushEvent::CatchUp { circle: hex(circle) }),
    }
}
