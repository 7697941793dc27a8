//! The protocol engine: a deterministic, sans-IO state machine.
//!
//! [`Engine::handle`] takes one [`Input`] (a user command, a frame from the
//! circle topic, a direct frame from a peer, a peer becoming reachable, or
//! a clock tick), the current time and a source of randomness, and returns
//! the [`Output`]s it asks the adapters to carry out: frames to publish or
//! send, records to persist, events to show. It never does I/O itself and
//! never puts plaintext in a frame; if a key is missing it keeps the frame
//! and reports [`Event::Queued`] instead of falling back to anything weaker.
//!
//! Owns: the set of circles this identity belongs to ([`circle_state`]),
//! joins in progress ([`join`]), catch-up between members ([`sync`]),
//! reactions to membership changes ([`membership`]).

#[cfg(test)]
mod agreement_tests;
mod circle_state;
mod epochs;
pub(crate) mod frames;
mod join;
mod membership;
pub mod message;
mod persist;
mod prekeys;
mod store;
mod sync;
mod types;

use std::collections::BTreeMap;

pub use circle_state::{CircleState, EpochStart, message_id};
pub use frames::{MAX_DIRECT_FRAME, MAX_GOSSIP_FRAME};
pub use membership::human_secs;
pub use persist::RestoreError;
pub use store::frame_id;
pub use types::*;

use crate::circle::{Action, CircleId, CircleLog, InviteCode, InviteSecret, Op, OpBody, Role};
use crate::entropy::{Entropy, random_array};
use crate::identity::{IdentitySecret, MemberId, NoiseSecret};
use message::Body;

/// Tunables; the defaults are what users get.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Messages dated further ahead than this are refused.
    pub max_future_skew_ms: u64,
    /// Rotate our sending chain after this many messages...
    pub rotate_after_messages: u32,
    /// ...or after this long (healing: a stolen chain key stops working).
    pub rotate_after_ms: u64,
    /// How long frames are kept for members who are offline.
    pub frame_retention_ms: u64,
    /// At most this many frames kept per circle.
    pub max_stored_frames: usize,
    /// Acknowledge every announcement automatically as it arrives. Off:
    /// acknowledging tells the circle you saw it and when, so it is a
    /// person's act (`Command::Acknowledge`, `kolo ack`, a key in the TUI).
    pub send_acks: bool,
    /// Give up on a join that found no member in this time.
    pub join_timeout_ms: u64,
    /// An organiser's client rotates the circle's keys (a Rotate, so a
    /// new epoch secret) once the current epoch is this old: the
    /// scheduled update that heals a copied profile (SPEC §5.1a).
    pub rotate_epoch_after_ms: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_future_skew_ms: 5 * 60 * 1000,
            rotate_after_messages: 1000,
            rotate_after_ms: 24 * 3600 * 1000,
            frame_retention_ms: 14 * 24 * 3600 * 1000,
            max_stored_frames: 50_000,
            send_acks: false,
            join_timeout_ms: 10 * 60 * 1000,
            rotate_epoch_after_ms: 24 * 3600 * 1000,
        }
    }
}

/// What every handler gets: the time, randomness, who we are, and where
/// to put outputs.
pub struct Ctx<'a> {
    pub now: u64,
    pub rng: &'a mut dyn Entropy,
    pub out: &'a mut Vec<Output>,
    pub identity: &'a IdentitySecret,
    pub me: MemberId,
    pub display_name: &'a str,
    pub config: &'a EngineConfig,
}

impl Ctx<'_> {
    pub fn event(&mut self, e: Event) {
        self.out.push(Output::Event(e));
    }
}

/// A member as the UI shows them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberView {
    pub id: MemberId,
    pub name: String,
    pub role: Role,
    pub verified: bool,
    /// Another current or former member whose name looks like this one's
    /// (confusable skeleton): shown in every member list.
    pub lookalike_of: Option<MemberId>,
}

/// One circle as the store hands it back at start-up.
pub struct StoredCircle {
    pub snapshot: zeroize::Zeroizing<Vec<u8>>,
    /// Chains saved after the snapshot (`Record::Chain`), applied over it.
    pub chains: Vec<(crate::crypto::ratchet::KeyId, zeroize::Zeroizing<Vec<u8>>)>,
    pub messages: Vec<MessageView>,
    /// Encrypted frames with their expiry.
    pub frames: Vec<(Vec<u8>, u64)>,
}

pub struct Engine {
    identity: IdentitySecret,
    display_name: String,
    config: EngineConfig,
    circles: BTreeMap<CircleId, CircleState>,
    joins: join::Joins,
}

impl Engine {
    pub fn new(identity: IdentitySecret, display_name: String, config: EngineConfig) -> Self {
        Self { identity, display_name, config, circles: BTreeMap::new(), joins: join::Joins::default() }
    }

    /// Rebuild an engine from what the store kept.
    pub fn restore(
        identity: IdentitySecret,
        display_name: String,
        config: EngineConfig,
        stored: Vec<StoredCircle>,
    ) -> Result<Self, RestoreError> {
        let mut engine = Self::new(identity, display_name, config);
        engine.reload(stored)?;
        Ok(engine)
    }

    /// Put every circle back to what the store holds. Adapters call this
    /// when persisting an input's records failed: the engine had already
    /// moved on (a chain advanced, a message in the history and the frame
    /// store), and what was not saved must not be served to peers later
    /// nor have its keys reused after a restart. Joins in progress are kept.
    pub fn reload(&mut self, stored: Vec<StoredCircle>) -> Result<(), RestoreError> {
        let me = self.identity.member_id();
        let mut circles = BTreeMap::new();
        for c in stored {
            let mut state = CircleState::restore(&c.snapshot, c.messages, c.frames, &me, &self.config)?;
            for (key_id, bytes) in &c.chains {
                state.apply_chain(key_id, bytes)?;
            }
            circles.insert(state.id(), state);
        }
        self.circles = circles;
        Ok(())
    }

    /// The circle's key and membership state, for the encrypted store.
    pub fn export_circle(&self, id: &CircleId) -> Option<zeroize::Zeroizing<Vec<u8>>> {
        self.circles.get(id).map(CircleState::export)
    }

    /// One of the circle's chains (ours or a member's), for the store
    /// (`Record::Chain`); `None` if the circle no longer holds it.
    pub fn export_chain(
        &self,
        id: &CircleId,
        key_id: &crate::crypto::ratchet::KeyId,
    ) -> Option<zeroize::Zeroizing<Vec<u8>>> {
        self.circles.get(id)?.export_chain(key_id)
    }

    /// What adapters must set up for every circle after a restart
    /// (subscriptions to the circle networks).
    pub fn startup_outputs(&self) -> Vec<Output> {
        self.circles.values().filter(|c| !c.is_removed()).map(CircleState::subscribe_output).collect()
    }

    pub fn member_id(&self) -> MemberId {
        self.identity.member_id()
    }

    pub fn display_name(&self) -> &str {
        &self.display_name
    }

    /// Turn every circle into what a forensic examiner holding this
    /// profile's keys has: the secrets, without our code's memory of which
    /// frames were already seen or read (an examiner is not bound by our
    /// replay checks). Tests of the key schedule only.
    pub fn as_examiner(&mut self) {
        for c in self.circles.values_mut() {
            c.as_examiner();
        }
    }

    pub fn circle(&self, id: &CircleId) -> Option<&CircleState> {
        self.circles.get(id)
    }

    pub fn circle_ids(&self) -> Vec<CircleId> {
        self.circles.keys().copied().collect()
    }

    pub fn members(&self, id: &CircleId) -> Vec<MemberView> {
        let Some(c) = self.circles.get(id) else {
            return Vec::new();
        };
        let lookalikes = c.log.lookalikes();
        c.log
            .members()
            .into_iter()
            .map(|r| MemberView {
                id: r.id,
                lookalike_of: lookalikes.get(&r.id).copied(),
                name: r.display_name.clone(),
                role: r.role,
                verified: c.verified.contains(&r.id),
            })
            .collect()
    }

    /// Adversarial-test hook: seal `inner` under our own chain for
    /// `circle` and publish it, whatever it claims (see
    /// [`CircleState::seal_raw`]). Grants nothing a member lacks.
    pub fn seal_raw(
        &mut self,
        now_ms: u64,
        circle: &CircleId,
        inner: &message::Inner,
        rng: &mut dyn Entropy,
    ) -> Vec<Output> {
        self.with_ctx(now_ms, rng, |circles, _, ctx| {
            if let Some(state) = circles.get_mut(circle) {
                state.seal_raw(ctx, inner);
            }
        })
    }

    /// Run `f` with a handler context; returns the outputs it produced.
    fn with_ctx(
        &mut self,
        now_ms: u64,
        rng: &mut dyn Entropy,
        f: impl FnOnce(&mut BTreeMap<CircleId, CircleState>, &mut join::Joins, &mut Ctx<'_>),
    ) -> Vec<Output> {
        let mut out = Vec::new();
        let mut ctx = Ctx {
            now: now_ms,
            rng,
            out: &mut out,
            identity: &self.identity,
            me: self.identity.member_id(),
            display_name: &self.display_name,
            config: &self.config,
        };
        f(&mut self.circles, &mut self.joins, &mut ctx);
        out
    }

    /// The single entry point: apply `input` at time `now_ms`.
    pub fn handle(&mut self, now_ms: u64, input: Input, rng: &mut dyn Entropy) -> Vec<Output> {
        self.with_ctx(now_ms, rng, |circles, joins, ctx| dispatch(circles, joins, ctx, input))
    }
}

fn dispatch(circles: &mut BTreeMap<CircleId, CircleState>, joins: &mut join::Joins, ctx: &mut Ctx<'_>, input: Input) {
    match input {
        Input::Command(c) => command(circles, joins, ctx, c),
        Input::Frame { circle, bytes } => {
            let verdict = match circles.get_mut(&circle) {
                Some(state) => state.on_topic_frame(ctx, bytes),
                None => {
                    ctx.event(Event::Rejected { circle, reason: "frame for a circle we are not in".into() });
                    Verdict::Ignore
                }
            };
            ctx.out.push(Output::Verdict { circle, verdict });
        }
        Input::Direct { circle, peer, bytes } => {
            if let Some(state) = circles.get_mut(&circle) {
                direct_to_member(state, joins, ctx, peer, &bytes);
            } else {
                joins.on_direct(circles, ctx, circle, peer, &bytes);
            }
        }
        Input::PeerAvailable { circle, peer } => {
            if let Some(state) = circles.get_mut(&circle) {
                sync::request(state, ctx, peer);
            } else {
                joins.on_peer(ctx, circle, peer);
            }
        }
        Input::Tick => {
            for state in circles.values_mut() {
                state.on_tick(ctx);
            }
            joins.on_tick(ctx);
        }
    }
}

fn direct_to_member(state: &mut CircleState, joins: &mut join::Joins, ctx: &mut Ctx<'_>, peer: PeerRef, bytes: &[u8]) {
    let result = match frames::parse_direct(bytes) {
        Err(e) => Err(e.to_string()),
        Ok(frames::DirectFrame::SyncRequest { sent_at_ms, have }) => {
            sync::on_request(state, ctx, peer, bytes, sent_at_ms, &have)
        }
        Ok(frames::DirectFrame::SyncResponse { frames }) => sync::on_response(state, ctx, peer, &frames),
        Ok(frames::DirectFrame::Pairwise { frame }) => {
            // Only a frame for us may come directly: one for another member
            // belongs on the topic, and keeping it as a mailbox frame here
            // would let any peer with the network key fill our store.
            match frames::parse_pair(frame) {
                Ok(pair) if state.is_my_tag(&pair.to) => {
                    // Handed to us by its sender: a frame every member would
                    // refuse (no valid authenticator) counts against it.
                    if state.on_topic_frame(ctx, frame.to_vec()) == Verdict::Reject {
                        ctx.out.push(Output::Verdict { circle: state.id(), verdict: Verdict::Reject });
                    }
                    Ok(())
                }
                Ok(_) => Err("a pairwise frame for another member was sent to us directly".into()),
                Err(e) => Err(e.to_string()),
            }
        }
        Ok(frame) => joins.as_member(state, ctx, peer, frame),
    };
    if let Err(reason) = result {
        ctx.event(Event::Rejected { circle: state.id(), reason });
    }
}

fn command(circles: &mut BTreeMap<CircleId, CircleState>, joins: &mut join::Joins, ctx: &mut Ctx<'_>, cmd: Command) {
    if let Command::CreateCircle { name, max_disappear_secs } = cmd {
        create_circle(circles, ctx, name, max_disappear_secs);
        return;
    }
    if let Command::Join { code } = cmd {
        joins.start(circles, ctx, &code);
        return;
    }
    let circle = match &cmd {
        Command::SendText { circle, .. }
        | Command::SendAnnouncement { circle, .. }
        | Command::CreateInvite { circle, .. }
        | Command::Remove { circle, .. }
        | Command::SetRole { circle, .. }
        | Command::Rotate { circle }
        | Command::SetDisappear { circle, .. }
        | Command::Verify { circle, .. }
        | Command::AcknowledgeKeyChange { circle, .. }
        | Command::AnnouncePresence { circle, .. }
        | Command::Rename { circle, .. }
        | Command::RevokeInvite { circle, .. }
        | Command::Acknowledge { circle, .. }
        | Command::Leave { circle, .. } => *circle,
        Command::CreateCircle { .. } | Command::Join { .. } => return,
    };
    let Some(state) = circles.get_mut(&circle) else {
        if joins.is_joining(&circle) {
            ctx.event(Event::Queued {
                circle,
                reason: "not admitted to this circle yet; try again once joined".into(),
            });
        } else {
            ctx.event(Event::Error { reason: "no such circle".into() });
        }
        return;
    };
    if let Err(reason) = circle_command(state, ctx, cmd) {
        ctx.event(Event::Error { reason });
    }
}

fn create_circle(
    circles: &mut BTreeMap<CircleId, CircleState>,
    ctx: &mut Ctx<'_>,
    name: String,
    max_disappear_secs: Option<u32>,
) {
    let noise = NoiseSecret::generate(ctx.rng);
    let first_pairwise = NoiseSecret::generate(ctx.rng);
    let max_disappear_secs = max_disappear_secs.unwrap_or(0);
    let created = Op::create(
        ctx.identity,
        &noise,
        &first_pairwise,
        &name,
        ctx.display_name,
        max_disappear_secs,
        ctx.now,
        ctx.rng,
    );
    let (genesis, circle_id) = match created {
        Ok(x) => x,
        Err(e) => {
            return ctx.event(Event::Error { reason: e.to_string() });
        }
    };
    let log = match CircleLog::from_genesis(genesis) {
        Ok(l) => l,
        Err(e) => {
            return ctx.event(Event::Error { reason: e.to_string() });
        }
    };
    let secret: [u8; 32] = random_array(ctx.rng);
    let mut state = CircleState::new(log, secret, circle_state::EpochStart::Created, noise, first_pairwise, ctx);
    let me = ctx.me;
    state.system_message(ctx, me, format!("{} created the circle", ctx.display_name));
    ctx.out.push(state.subscribe_output());
    ctx.out.push(Output::Persist(Record::CircleState { circle: circle_id }));
    ctx.event(Event::CircleCreated { circle: circle_id, name });
    circles.insert(circle_id, state);
}

fn require(state: &CircleState, me: &MemberId, action: Action, what: &str) -> Result<(), String> {
    if state.removed {
        return Err("you are no longer a member of this circle".into());
    }
    if state.log.can(me, action) { Ok(()) } else { Err(format!("only organisers can {what}")) }
}

/// Sign an operation, publish it under our current chain (so every member
/// of the epoch it ends, including someone being removed, sees it), then
/// apply it.
fn author_op(state: &mut CircleState, ctx: &mut Ctx<'_>, body: OpBody) -> Result<Op, String> {
    let op = Op::sign(ctx.identity, &state.id(), state.log.heads(), body, ctx.now).map_err(|e| e.to_string())?;
    // Never publish what the log would refuse (everyone else would too).
    state.log.check(&op).map_err(|e| e.to_string())?;
    // Not sent (too large, or we were removed meanwhile): not applied
    // either, and no invite code for an invite nobody will know.
    state.send_group(ctx, Body::Op(op.encode()), None).ok_or("the membership operation was not sent")?;
    Ok(op)
}

fn circle_command(state: &mut CircleState, ctx: &mut Ctx<'_>, cmd: Command) -> Result<(), String> {
    let me = ctx.me;
    match cmd {
        Command::SendText { text, timer_secs, .. } => {
            blocked_by_key_change(state)?;
            if text.trim().is_empty() {
                return Err("empty message not sent".into());
            }
            let body = Body::Text(text);
            message::check_body(&body)?;
            state.send_group(ctx, body, timer_secs);
        }
        Command::SendAnnouncement { announcement, timer_secs, .. } => {
            blocked_by_key_change(state)?;
            require(state, &me, Action::Announce, "post announcements")?;
            let body = Body::Announcement(announcement);
            message::check_body(&body)?;
            state.send_group(ctx, body, timer_secs);
        }
        Command::CreateInvite { expires_in_ms, role, addresses, .. } => {
            require(state, &me, Action::Invite, "invite")?;
            // Mid-rekey the code would carry the ended generation's network
            // key, which no longer opens a link without a member proof.
            if !state.network_access().open {
                return Err("the circle is changing its keys; make the invite again in a moment".into());
            }
            let secret = InviteSecret::generate(ctx.rng);
            let expires_at_ms = ctx.now.saturating_add(expires_in_ms);
            let op = author_op(state, ctx, OpBody::Invite { invite_public: secret.public(), expires_at_ms, role })?;
            let code = InviteCode {
                circle_id: state.id(),
                network_key: state.network_key(),
                invite_op: op.id(),
                secret,
                expires_at_ms,
                inviter: me,
                addresses,
            };
            ctx.event(Event::InviteCreated { circle: state.id(), code: code.encode(), expires_at_ms });
        }
        Command::Remove { member, .. } => {
            if !state.log.is_member(&member) {
                return Err("not a member of this circle".into());
            }
            if member != me {
                require(state, &me, Action::Remove, "remove members")?;
            } else {
                last_organiser_check(state, &me, false)?;
            }
            author_op(state, ctx, OpBody::Remove { member })?;
        }
        Command::Leave { force, .. } => {
            if state.removed {
                return Err("you are no longer a member of this circle".into());
            }
            last_organiser_check(state, &me, force)?;
            author_op(state, ctx, OpBody::Remove { member: me })?;
        }
        Command::Rename { name, .. } => {
            require(state, &me, Action::Rename, "rename themselves")?;
            let display_name = crate::circle::check_name(&name, "display name").map_err(|e| e.to_string())?;
            author_op(state, ctx, OpBody::Rename { display_name })?;
        }
        Command::RevokeInvite { code, .. } => {
            require(state, &me, Action::RevokeInvite, "revoke invites")?;
            let code = InviteCode::parse(&code).map_err(|e| e.to_string())?;
            if code.circle_id != state.id() {
                return Err("that invite is for another circle".into());
            }
            author_op(state, ctx, OpBody::RevokeInvite { invite_op: code.invite_op })?;
        }
        Command::Acknowledge { announcement, .. } => acknowledge(state, ctx, announcement)?,
        Command::SetRole { member, role, .. } => {
            require(state, &me, Action::SetRole, "change roles")?;
            if !state.log.is_member(&member) {
                return Err("not a member of this circle".into());
            }
            author_op(state, ctx, OpBody::SetRole { member, role })?;
        }
        Command::Rotate { .. } => {
            require(state, &me, Action::Rotate, "rotate the circle's keys")?;
            author_op(state, ctx, OpBody::Rotate)?;
        }
        Command::SetDisappear { max_secs, .. } => {
            require(state, &me, Action::SetDisappear, "change the disappearing timer")?;
            author_op(state, ctx, OpBody::SetDisappear { max_secs: max_secs.unwrap_or(0) })?;
        }
        Command::Verify { member, .. } => {
            if !state.log.is_member(&member) {
                return Err("not a member of this circle".into());
            }
            state.verified.insert(member);
            state.unacked_key_changes.remove(&member);
            ctx.out.push(Output::Persist(Record::CircleState { circle: state.id() }));
            ctx.event(Event::Verified { circle: state.id(), member });
        }
        Command::AnnouncePresence { transport, addresses, .. } => {
            if !state.removed {
                let presence = message::Presence { transport, addresses };
                state.send_group(ctx, Body::Presence(presence), None);
            }
        }
        Command::AcknowledgeKeyChange { member, .. } => {
            state.unacked_key_changes.remove(&member);
            ctx.out.push(Output::Persist(Record::CircleState { circle: state.id() }));
        }
        Command::CreateCircle { .. } | Command::Join { .. } => {}
    }
    Ok(())
}

/// The last organiser leaving while others stay would leave a circle
/// nobody can manage (invite, remove a seized phone, announce).
fn last_organiser_check(state: &CircleState, me: &MemberId, force: bool) -> Result<(), String> {
    let members = state.log.members();
    let organisers = members.iter().filter(|m| m.role == Role::Organiser).count();
    let sole = state.log.role_of(me) == Some(Role::Organiser) && organisers == 1 && members.len() > 1;
    if sole && !force {
        return Err("you are this circle's only organiser: if you leave, nobody can invite, remove or announce. \
                    Invite another organiser first (kolo invite CIRCLE --organiser), or leave anyway with --force"
            .into());
    }
    Ok(())
}

/// Acknowledge an announcement we received (the pinned one by default),
/// once; the receipt disappears when the announcement does.
fn acknowledge(state: &mut CircleState, ctx: &mut Ctx<'_>, which: Option<message::MessageId>) -> Result<(), String> {
    if state.removed {
        return Err("you are no longer a member of this circle".into());
    }
    let id = match which.or_else(|| state.pinned().map(|p| p.id)) {
        Some(id) => id,
        None => return Err("there is no pinned announcement to acknowledge".into()),
    };
    let Some(m) = state.message(&id) else {
        return Err("no such announcement".into());
    };
    if !matches!(m.kind, MessageKind::Announcement(_)) {
        return Err("only announcements are acknowledged".into());
    }
    if m.sender == ctx.me {
        return Err("this is your own announcement".into());
    }
    if state.acks(&id).contains(&ctx.me) {
        return Err("you already acknowledged it".into());
    }
    let timer = match m.expires_at_ms {
        Some(at) => Some(u32::try_from(at.saturating_sub(ctx.now).div_ceil(1000).max(1)).unwrap_or(u32::MAX)),
        None => None,
    };
    state.send_group(ctx, Body::Ack(id), timer);
    Ok(())
}

fn blocked_by_key_change(state: &CircleState) -> Result<(), String> {
    match state.unacked_key_changes.iter().next() {
        None => Ok(()),
        Some(m) => Err(format!(
            "sending is paused: {}'s key is new to you; compare safety numbers or acknowledge the change first",
            state.member_name(m)
        )),
    }
}
