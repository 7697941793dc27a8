//! The typed answers of the control socket (`docs/api.md`). The node
//! builds these, the socket server serialises them as JSON-RPC results,
//! and the clients (the CLI, the terminal UI, scripts in Rust) read them
//! back as the same types. Field names are the wire names.

use serde::{Deserialize, Serialize};

/// The version of the control-socket protocol. It changes when a method
/// or a field is removed or changes meaning (new methods and new fields
/// do not change it); `hello` reports it and clients check it.
pub const API_VERSION: u32 = 1;

/// The answer to `hello`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub api_version: u32,
    /// The kolo release serving the socket.
    pub kolo_version: String,
}

impl Hello {
    /// What this build of kolo answers.
    pub fn ours() -> Hello {
        Hello { api_version: API_VERSION, kolo_version: env!("CARGO_PKG_VERSION").to_owned() }
    }
}

/// A member's role in a circle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Organiser,
    Member,
}

impl Role {
    pub fn label(self) -> &'static str {
        match self {
            Role::Organiser => "organiser",
            Role::Member => "member",
        }
    }
}

impl From<crate::circle::Role> for Role {
    fn from(role: crate::circle::Role) -> Self {
        match role {
            crate::circle::Role::Organiser => Role::Organiser,
            crate::circle::Role::Member => Role::Member,
        }
    }
}

/// How we reach a member's node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Link {
    /// Our own entry.
    You,
    /// A direct connection: each side sees the other's IP address.
    Direct,
    Relayed,
    /// Through Tor onion services: neither side sees the other's IP address.
    Tor,
    Offline,
}

/// `status`: who we are and each circle's network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub name: String,
    pub fingerprint: String,
    pub safety_number: String,
    pub circles: Vec<CircleStatus>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CircleStatus {
    pub id: String,
    pub name: Option<String>,
    /// Peers connected in the circle's network.
    pub peers: u64,
    /// Peers cut off for relaying invalid frames since start.
    pub banned_peers: u64,
    /// Where the circle's network listens (null before it runs).
    pub listen: Option<Vec<String>>,
}

/// One entry of `circles`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CircleInfo {
    pub id: String,
    pub name: String,
    pub members: u64,
    pub epoch: u64,
    pub disappear_secs: Option<u32>,
    /// Our role; null once we are no longer a member.
    pub role: Option<Role>,
    pub removed: bool,
    pub pinned: Option<Pinned>,
    /// Names of members whose changed key is not accepted yet (sending is blocked).
    pub key_changes: Vec<String>,
}

/// The pinned announcement of a circle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pinned {
    #[serde(flatten)]
    pub message: Message,
    /// Names of the members who acknowledged it.
    pub acked_by: Vec<String>,
    pub acked_by_me: bool,
}

/// A message as `messages` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub id: String,
    pub circle: String,
    #[serde(flatten)]
    pub body: Body,
    /// The sender's display name.
    pub sender: String,
    pub sender_fingerprint: String,
    pub text: String,
    /// Milliseconds since the Unix epoch, by the sender's clock.
    pub sent_at: u64,
    pub received_at: u64,
    /// When every member's copy is erased.
    pub expires_at: Option<u64>,
    /// Whether we verified the sender's safety number. Absent in pushed
    /// `message` events (ask `members`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<bool>,
}

/// What kind of message, with the fields of an announcement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Body {
    Text,
    Announcement {
        title: String,
        when: String,
        #[serde(rename = "where")]
        place: String,
        details: String,
        /// The id of the announcement this one replaces.
        supersedes: Option<String>,
    },
    /// A local notice (membership changes and the like).
    System,
}

/// One entry of `members`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub name: String,
    pub fingerprint: String,
    pub id: String,
    pub role: Role,
    pub online: bool,
    pub link: Link,
    pub verified: bool,
    pub you: bool,
    /// The fingerprint of another member whose name looks like this one's.
    pub looks_like: Option<String>,
}

/// `circle_create`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CircleCreated {
    pub id: String,
    pub name: String,
}

/// `invite`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteCreated {
    pub code: String,
    pub expires_at: u64,
}

/// `join`, once a member admitted us.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Joined {
    /// The circle's id.
    pub circle: String,
    pub name: String,
}

/// `send` and `announce`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    pub id: Option<String>,
    /// Why some members read it only later (keys not arrived yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued: Option<String>,
}

/// `remove`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removed {
    /// The removed member's fingerprint.
    pub removed: String,
}

/// `leave`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Left {
    /// The circle's name.
    pub left: Option<String>,
}

/// `ack`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acknowledged {
    /// The announcement's id.
    pub acknowledged: Option<String>,
    pub title: Option<String>,
}

/// `acknowledge_key`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyAccepted {
    /// The member's fingerprint.
    pub acknowledged: String,
}

/// `set_disappear`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisappearSet {
    pub disappear_secs: Option<u32>,
}

/// `rename`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Renamed {
    pub renamed: bool,
}

/// `revoke_invite`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revoked {
    pub revoked: bool,
}

/// `verify`: the safety numbers to compare.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    pub you: String,
    pub them: String,
    /// The pair in a fixed order, so both sides read the same two numbers.
    pub compare: [String; 2],
    pub verified: bool,
}

/// `inspect`: a message's envelope as the network carries it (hex).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub id: String,
    pub frame_len: u64,
    pub version: Option<u8>,
    pub frame_type: Option<u8>,
    pub key_id: String,
    pub epoch: u64,
    pub counter: u64,
    pub header: String,
    pub ciphertext: String,
    pub padded_len: u64,
    pub signature: String,
    /// Null once the chain's key is erased.
    pub signature_ok: Option<bool>,
}

/// `shutdown`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stopping {
    pub stopping: bool,
}

/// `subscribe`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscribed {
    pub subscribed: bool,
}

/// Any answer of the node, as its request asked for it. On the socket it
/// is the JSON-RPC `result` as it is (no tag: the method says which).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Answer {
    Hello(Hello),
    Status(Status),
    Circles(Vec<CircleInfo>),
    CircleCreated(CircleCreated),
    Invite(InviteCreated),
    Joined(Joined),
    Sent(Sent),
    Messages(Vec<Message>),
    Members(Vec<Member>),
    Removed(Removed),
    Left(Left),
    Acknowledged(Acknowledged),
    KeyAccepted(KeyAccepted),
    DisappearSet(DisappearSet),
    Renamed(Renamed),
    Revoked(Revoked),
    Verification(Verification),
    Envelope(Envelope),
    Stopping(Stopping),
    Subscribed(Subscribed),
}

impl Answer {
    /// Read the JSON-RPC `result` of `request` as its answer (the result
    /// carries no tag: the method says which type it is).
    pub fn from_result(request: &super::Request, value: serde_json::Value) -> Result<Answer, serde_json::Error> {
        use super::Request as R;
        use serde_json::from_value as read;
        Ok(match request {
            R::Hello { .. } => Answer::Hello(read(value)?),
            R::Subscribe => Answer::Subscribed(read(value)?),
            R::Status => Answer::Status(read(value)?),
            R::CircleCreate { .. } => Answer::CircleCreated(read(value)?),
            R::Circles => Answer::Circles(read(value)?),
            R::Invite { .. } => Answer::Invite(read(value)?),
            R::Join { .. } => Answer::Joined(read(value)?),
            R::Send { .. } | R::Announce { .. } => Answer::Sent(read(value)?),
            R::Messages { .. } => Answer::Messages(read(value)?),
            R::Members { .. } => Answer::Members(read(value)?),
            R::Remove { .. } => Answer::Removed(read(value)?),
            R::Rename { .. } => Answer::Renamed(read(value)?),
            R::RevokeInvite { .. } => Answer::Revoked(read(value)?),
            R::Verify { .. } => Answer::Verification(read(value)?),
            R::Inspect { .. } => Answer::Envelope(read(value)?),
            R::AcknowledgeKey { .. } => Answer::KeyAccepted(read(value)?),
            R::Ack { .. } => Answer::Acknowledged(read(value)?),
            R::Leave { .. } => Answer::Left(read(value)?),
            R::SetDisappear { .. } => Answer::DisappearSet(read(value)?),
            R::Shutdown => Answer::Stopping(read(value)?),
        })
    }
}

/// A membership change, members named by fingerprint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    Created {
        by: String,
    },
    Added {
        member: String,
        name: String,
        role: Role,
        by: String,
    },
    Joined {
        member: String,
        name: String,
        role: Role,
        invited_by: String,
    },
    /// `by` is `member` when the member left.
    Removed {
        member: String,
        name: String,
        by: String,
    },
    RoleChanged {
        member: String,
        role: Role,
        by: String,
    },
    Renamed {
        member: String,
        from: String,
        to: String,
    },
    /// The circle's keys were replaced.
    Rotated {
        by: String,
    },
    DisappearChanged {
        max_secs: Option<u32>,
        by: String,
    },
    InviteRevoked {
        invite: String,
        by: String,
    },
    /// A stored operation the rules did not count.
    Ignored {
        op: String,
        reason: String,
    },
}

/// An event pushed to a subscribed connection (the `params` of an
/// `event` notification).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PushEvent {
    /// A message arrived, or one we sent was stored.
    Message {
        message: Message,
    },
    MessageExpired {
        circle: String,
        id: String,
    },
    Membership {
        circle: String,
        #[serde(flatten)]
        change: Change,
    },
    AnnouncementAcked {
        circle: String,
        announcement: String,
        by: String,
    },
    CircleCreated {
        circle: String,
        name: String,
    },
    Joined {
        circle: String,
        name: String,
    },
    JoinFailed {
        circle: String,
        reason: String,
    },
    /// A member's key changed; sending is blocked until it is accepted.
    KeyChanged {
        circle: String,
        member: String,
        name: String,
    },
    /// A member sees a different member list than we do.
    SplitView {
        circle: String,
        member: String,
        name: String,
    },
    /// A member signed two different frames as one message.
    Equivocation {
        circle: String,
        member: String,
        name: String,
    },
    Verified {
        circle: String,
        member: String,
    },
    /// A member told us where its node is (the addresses are not passed on).
    Presence {
        circle: String,
        member: String,
    },
    Queued {
        circle: String,
        reason: String,
    },
    /// A frame from the network was refused.
    Rejected {
        circle: String,
        reason: String,
    },
    /// A command failed.
    Error {
        reason: String,
    },
    /// Connections in a circle changed (online state, direct or relayed).
    Links {
        circle: String,
    },
    /// Frames missed while offline are arriving from another member.
    CatchUp {
        circle: String,
    },
    /// This connection read events too slowly: `missed` were dropped.
    Lagged {
        missed: u64,
    },
}

/// `T::try_from(answer)`: the answer as the type its request gives, or
/// the answer back when it is another kind.
macro_rules! answer_types {
    ($($variant:ident($t:ty)),* $(,)?) => {
        $(impl TryFrom<Answer> for $t {
            type Error = Answer;
            fn try_from(answer: Answer) -> Result<Self, Answer> {
                match answer {
                    Answer::$variant(inner) => Ok(inner),
                    other => Err(other),
                }
            }
        })*
    };
}

answer_types!(
    Hello(Hello),
    Status(Status),
    Circles(Vec<CircleInfo>),
    CircleCreated(CircleCreated),
    Invite(InviteCreated),
    Joined(Joined),
    Sent(Sent),
    Messages(Vec<Message>),
    Members(Vec<Member>),
    Removed(Removed),
    Left(Left),
    Acknowledged(Acknowledged),
    KeyAccepted(KeyAccepted),
    DisappearSet(DisappearSet),
    Renamed(Renamed),
    Revoked(Revoked),
    Verification(Verification),
    Envelope(Envelope),
    Stopping(Stopping),
    Subscribed(Subscribed),
);
