//! The engine's vocabulary: what goes in, what comes out.

use std::collections::HashMap;

use crate::circle::{CircleId, MembershipChange, Role};
use crate::crypto::ratchet::KeyId;
use crate::identity::{MemberId, NoiseSecret};

pub use super::message::{Announcement, MessageId};

/// Opaque handle the network adapter gives a connected peer.
pub type PeerRef = u64;

/// Everything that can happen to the engine.
pub enum Input {
    /// Something the user asked for.
    Command(Command),
    /// A frame received on a circle's topic (gossip or catch-up).
    Frame { circle: CircleId, bytes: Vec<u8> },
    /// A frame received directly from a peer (join handshake, sync).
    Direct { circle: CircleId, peer: PeerRef, bytes: Vec<u8> },
    /// A peer of the circle's network is reachable now (on connect, and
    /// periodically): the engine starts catch-up or a join attempt with it.
    PeerAvailable { circle: CircleId, peer: PeerRef },
    /// Time passed: expire messages, rotate keys.
    Tick,
}

/// User commands. Circles and members are named by id here; name lookup
/// is the adapters' job.
pub enum Command {
    CreateCircle {
        name: String,
        max_disappear_secs: Option<u32>,
    },
    SendText {
        circle: CircleId,
        text: String,
        timer_secs: Option<u32>,
    },
    SendAnnouncement {
        circle: CircleId,
        announcement: Announcement,
        timer_secs: Option<u32>,
    },
    CreateInvite {
        circle: CircleId,
        expires_in_ms: u64,
        role: Role,
        addresses: Vec<String>,
    },
    Join {
        code: String,
    },
    Remove {
        circle: CircleId,
        member: MemberId,
    },
    SetRole {
        circle: CircleId,
        member: MemberId,
        role: Role,
    },
    Rotate {
        circle: CircleId,
    },
    SetDisappear {
        circle: CircleId,
        max_secs: Option<u32>,
    },
    Verify {
        circle: CircleId,
        member: MemberId,
    },
    AcknowledgeKeyChange {
        circle: CircleId,
        member: MemberId,
    },
    /// Leave the circle: a self-Remove the other members apply. Refused
    /// while we are its only organiser and others remain, unless `force`.
    Leave {
        circle: CircleId,
        force: bool,
    },
    /// Tell the circle we saw an announcement (the pinned one if `None`):
    /// a person's act, never automatic unless `EngineConfig::send_acks`.
    Acknowledge {
        circle: CircleId,
        announcement: Option<MessageId>,
    },
    /// Change our display name in this circle (a Rename operation).
    Rename {
        circle: CircleId,
        name: String,
    },
    /// Revoke an unused invite (the code it made, as text).
    RevokeInvite {
        circle: CircleId,
        code: String,
    },
    /// Tell the circle's members where our node is (sent inside the encryption).
    AnnouncePresence {
        circle: CircleId,
        transport: Vec<u8>,
        addresses: Vec<String>,
    },
}

/// What a frame from the circle topic says about the peer that relayed it,
/// for the network's peer scoring (gossipsub validation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// New and authentic (or a mailbox frame for another member): relay it.
    Accept,
    /// Not relayed, no blame: a duplicate, waiting for its key, or refused
    /// for a reason that depends on this member's own view.
    Ignore,
    /// Malformed or forged in a way every member detects alike: no honest
    /// peer relays it, so the peer that did is penalised.
    Reject,
}

/// Everything the engine asks its adapters to do.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // Outputs are moved once, never stored in bulk.
pub enum Output {
    /// Publish on the circle's current topic. A pairwise frame names its
    /// `recipient`: the node may hand it to that member directly when
    /// connected to them (no other member needs a copy), and publishes it
    /// on the topic as a mailbox frame otherwise.
    Publish { circle: CircleId, topic: String, frame: Vec<u8>, recipient: Option<MemberId> },
    /// Send to one peer directly (join handshake, sync).
    SendDirect { circle: CircleId, peer: PeerRef, frame: Vec<u8> },
    /// Be in this circle's closed network and listen on these topics.
    Subscribe { circle: CircleId, access: NetworkAccess, topics: Vec<String> },
    /// The circle's link rules changed (an operation was applied: a new
    /// member, a used or new invite): take them for the next handshakes.
    Access { circle: CircleId, access: NetworkAccess },
    /// Leave a circle's network.
    Unsubscribe { circle: CircleId },
    /// Dial these addresses in the circle's network to find a member to
    /// join through (from an invite).
    Dial { circle: CircleId, access: NetworkAccess, addresses: Vec<String> },
    /// Write (or erase) something in the profile.
    Persist(Record),
    /// Show something to the user.
    Event(Event),
    /// The verdict on the topic frame of this input (exactly one per
    /// `Input::Frame`), for the network's peer scoring.
    Verdict { circle: CircleId, verdict: Verdict },
}

/// Who may open a link to a circle's closed network, and with which keys
/// (SPEC §2a). Secret: redacted in Debug output, zeroized on drop.
pub struct NetworkAccess {
    /// The key we dial with: the network key of the newest generation we
    /// hold.
    pub dial: zeroize::Zeroizing<[u8; 32]>,
    /// Whether `dial` is the current generation's (our log's epoch is one
    /// whose keys we hold): only then are invites made, which carry it.
    pub open: bool,
    /// Network keys of ended generations we still keep (the frame
    /// retention window): a link on one of them needs a member proof.
    pub grace: Vec<zeroize::Zeroizing<[u8; 32]>>,
    /// Current members' per-circle Noise static keys, to check proofs.
    pub members: HashMap<MemberId, [u8; 32]>,
    /// Open invites (by invite operation): the invite key as X25519 and
    /// the expiry, to check a joiner's proof.
    pub invites: HashMap<[u8; 32], ([u8; 32], u64)>,
    /// Invites closed for good (used, revoked, author no longer an
    /// organiser): the invite key as X25519 and the JOIN_REFUSED reason
    /// (§8) the link gives a holder that proves it. A proof by an invite
    /// in neither map is "not heard of yet" rather than refused.
    pub closed_invites: HashMap<[u8; 32], ([u8; 32], u8)>,
    /// Our member id and per-circle Noise static key, to prove with
    /// (`None` while joining).
    pub me: Option<(MemberId, NoiseSecret)>,
    /// While joining: our invite's operation and key scalar, to prove with.
    pub invite: Option<([u8; 32], zeroize::Zeroizing<[u8; 32]>)>,
}

impl NetworkAccess {
    /// Only a network key, nothing to prove with (tests, outsiders).
    pub fn with_key(network_key: [u8; 32]) -> Self {
        Self {
            dial: zeroize::Zeroizing::new(network_key),
            open: true,
            grace: Vec::new(),
            members: HashMap::new(),
            invites: HashMap::new(),
            closed_invites: HashMap::new(),
            me: None,
            invite: None,
        }
    }

    /// A member's, outside an engine (tests, benchmarks): the network key,
    /// our id and Noise key to prove with, and the members whose proofs
    /// we take (their bound Noise public keys).
    pub fn member(network_key: [u8; 32], me: MemberId, noise: &NoiseSecret, members: &[(MemberId, [u8; 32])]) -> Self {
        Self {
            members: members.iter().copied().collect(),
            me: Some((me, noise.duplicate())),
            ..Self::with_key(network_key)
        }
    }

    /// A joiner's: the invite's network key, and the invite to prove with
    /// (every link asks for a proof, SPEC §2a).
    pub fn joining(code: &crate::circle::InviteCode) -> Self {
        Self { invite: Some((code.invite_op, code.secret.dh_scalar())), ..Self::with_key(code.network_key) }
    }
}

impl Clone for NetworkAccess {
    fn clone(&self) -> Self {
        Self {
            dial: self.dial.clone(),
            open: self.open,
            grace: self.grace.clone(),
            members: self.members.clone(),
            invites: self.invites.clone(),
            closed_invites: self.closed_invites.clone(),
            me: self.me.as_ref().map(|(m, k)| (*m, k.duplicate())),
            invite: self.invite.clone(),
        }
    }
}

impl std::fmt::Debug for NetworkAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NetworkAccess(..)")
    }
}

/// What the store must persist or erase.
#[derive(Debug)]
pub enum Record {
    /// A message for the history (plaintext: the store encrypts it under
    /// the key of its expiry bucket).
    Message(Box<MessageView>),
    /// Erase a message everywhere (expiry).
    DeleteMessage { circle: CircleId, id: MessageId },
    /// Keep an encrypted frame for catch-up and mailboxing until `expires_at_ms`.
    Frame { circle: CircleId, id: [u8; 32], bytes: Vec<u8>, expires_at_ms: u64 },
    /// Erase a stored frame.
    DeleteFrame { circle: CircleId, id: [u8; 32] },
    /// The circle's key and membership state changed; the store saves
    /// `Engine::export_circle` for it (which supersedes every `Chain`
    /// record saved before for that circle).
    CircleState { circle: CircleId },
    /// Only one chain moved on (a message was sent or read under it): the
    /// store saves `Engine::export_chain` for it, a few dozen bytes instead
    /// of the whole circle state, which grows with the circle.
    Chain { circle: CircleId, key_id: KeyId },
    /// The circle is gone from this profile (left or removed and wiped).
    DeleteCircle { circle: CircleId },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageKind {
    Text,
    Announcement(Announcement),
    /// A membership notice generated locally from the log.
    System,
}

/// What the trainer view shows about the envelope a message came in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvelopeInfo {
    pub key_id: KeyId,
    pub epoch: u32,
    pub counter: u32,
    pub frame: Vec<u8>,
}

/// A message as the user sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageView {
    pub circle: CircleId,
    pub id: MessageId,
    pub sender: MemberId,
    pub sender_name: String,
    pub kind: MessageKind,
    pub text: String,
    pub sent_at_ms: u64,
    pub received_at_ms: u64,
    pub expires_at_ms: Option<u64>,
    pub envelope: Option<EnvelopeInfo>,
}

/// Something to show.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    CircleCreated {
        circle: CircleId,
        name: String,
    },
    Joined {
        circle: CircleId,
        name: String,
    },
    JoinFailed {
        circle: CircleId,
        reason: String,
    },
    InviteCreated {
        circle: CircleId,
        code: String,
        expires_at_ms: u64,
    },
    Message(MessageView),
    MessageExpired {
        circle: CircleId,
        id: MessageId,
    },
    Membership {
        circle: CircleId,
        change: MembershipChange,
    },
    AnnouncementAcked {
        circle: CircleId,
        announcement: MessageId,
        by: MemberId,
    },
    /// A member's key distribution claims a roster that differs from what
    /// the operations it names give, or it holds operations we refuse:
    /// our views of the circle differ.
    SplitView {
        circle: CircleId,
        member: MemberId,
        name: String,
    },
    /// A member signed two different frames as one message (evidence kept:
    /// `CircleState::equivocations`).
    Equivocation {
        circle: CircleId,
        member: MemberId,
        name: String,
    },
    /// A member whose name we knew now shows a different key; sending in
    /// the circle is blocked until acknowledged.
    KeyChangeWarning {
        circle: CircleId,
        member: MemberId,
        name: String,
    },
    /// A member told us where its node is (transport id and addresses).
    Presence {
        circle: CircleId,
        member: MemberId,
        transport: Vec<u8>,
        addresses: Vec<String>,
    },
    Verified {
        circle: CircleId,
        member: MemberId,
    },
    /// Something could not be done yet and waits (e.g. keys not arrived).
    Queued {
        circle: CircleId,
        reason: String,
    },
    /// A frame from the network was refused (forged, replayed, stale...).
    Rejected {
        circle: CircleId,
        reason: String,
    },
    /// A command failed.
    Error {
        reason: String,
    },
}
