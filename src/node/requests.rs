//! Answers to control-socket requests (`docs/api.md`).

use std::time::Instant;

use super::{JOIN_TIMEOUT, JoinWaiter, Node};
use crate::api::{self, Answer, ErrorCode, Failure, Reply, Request};
use crate::circle::{CircleId, Role};
use crate::engine::{Announcement, Command, Event, Input};
use crate::identity::{MemberId, hex, pair_safety_numbers, safety_number};

fn parse_duration_free(secs: Option<u32>) -> Option<u32> {
    secs.filter(|s| *s > 0)
}

/// The first error or refusal among the events of a command.
fn failure(events: &[Event]) -> Option<Failure> {
    events.iter().find_map(|e| match e {
        Event::Error { reason } | Event::JoinFailed { reason, .. } => Some(Failure::refused(reason.clone())),
        _ => None,
    })
}

fn no_circle() -> Failure {
    Failure::not_found("no such circle")
}

fn queued(events: &[Event]) -> Option<String> {
    events.iter().find_map(|e| match e {
        Event::Queued { reason, .. } => Some(reason.clone()),
        _ => None,
    })
}

impl Node {
    pub(super) fn on_request(&mut self, request: Request, reply: Reply) {
        if let Request::Join { code } = request {
            return self.join(code, reply);
        }
        if let Request::Invite { circle, .. } = &request
            && let Ok(id) = self.resolve_circle(circle)
            && self.books.get(&id).is_some_and(|b| b.listen.is_empty())
        {
            let deadline = Instant::now() + std::time::Duration::from_secs(10);
            self.invite_waiters.push((id, request, reply, deadline));
            return;
        }
        let result = self.answer(request);
        let _ = reply.send(result);
    }

    fn join(&mut self, code: String, reply: Reply) {
        let events = self.handle(Input::Command(Command::Join { code }));
        if let Some(failure) = failure(&events) {
            let _ = reply.send(Err(failure));
            return;
        }
        let circle = events.iter().find_map(|e| match e {
            Event::Queued { circle, .. } => Some(*circle),
            _ => None,
        });
        match circle {
            Some(circle) => self
                .join_waiters
                .entry(circle)
                .or_default()
                .push(JoinWaiter { reply, deadline: Instant::now() + JOIN_TIMEOUT }),
            None => {
                let _ = reply.send(Err(Failure::refused("the join did not start")));
            }
        }
    }

    fn resolve_circle(&self, query: &str) -> Result<CircleId, Failure> {
        let q = query.trim().to_lowercase();
        let ids = self.engine.circle_ids();
        let by_name: Vec<CircleId> = ids
            .iter()
            .filter(|id| self.engine.circle(id).is_some_and(|c| c.log().circle_name().to_lowercase() == q))
            .copied()
            .collect();
        let candidates = if by_name.is_empty() && q.len() >= 4 {
            ids.into_iter().filter(|id| hex(id).starts_with(&q)).collect()
        } else {
            by_name
        };
        match candidates.as_slice() {
            [one] => Ok(*one),
            [] => Err(Failure::not_found(format!("no circle called or starting with \"{query}\""))),
            _ => Err(Failure::new(
                ErrorCode::Ambiguous,
                format!("\"{query}\" matches several circles; use more of the id"),
            )),
        }
    }

    fn resolve_member(&self, circle: &CircleId, query: &str) -> Result<MemberId, Failure> {
        let q = query.trim().to_lowercase();
        let members = self.engine.members(circle);
        let by_name: Vec<MemberId> = members.iter().filter(|m| m.name.to_lowercase() == q).map(|m| m.id).collect();
        let candidates = if by_name.is_empty() && q.len() >= 4 {
            let bare = q.replace('-', "");
            members
                .iter()
                .filter(|m| {
                    m.id.to_hex().starts_with(&bare)
                        || m.id.fingerprint().to_string().replace('-', "").starts_with(&bare)
                })
                .map(|m| m.id)
                .collect()
        } else {
            by_name
        };
        match candidates.as_slice() {
            [one] => Ok(*one),
            [] => Err(Failure::not_found(format!("no member called or starting with \"{query}\""))),
            _ => Err(Failure::new(
                ErrorCode::Ambiguous,
                format!("\"{query}\" matches several members; use their fingerprint"),
            )),
        }
    }

    fn command(&mut self, command: Command) -> Result<Vec<Event>, Failure> {
        let events = self.handle(Input::Command(command));
        match failure(&events) {
            Some(failure) => Err(failure),
            None => Ok(events),
        }
    }

    /// Answer a request that only reads (circles, messages, members,
    /// status) on a node that is not running: `kolo messages` and the like
    /// with no daemon open the profile, answer from it and close it; no
    /// network starts. Anything else needs the running node.
    pub fn answer_read_only(&mut self, request: Request) -> Result<Answer, Failure> {
        match request {
            Request::Hello { .. }
            | Request::Status
            | Request::Circles
            | Request::Messages { .. }
            | Request::Members { .. } => self.answer(request),
            _ => Err(Failure::unavailable(
                "kolo is not running for this profile; this needs the running node (`kolo chat` or `kolo daemon`)",
            )),
        }
    }

    fn answer(&mut self, request: Request) -> Result<Answer, Failure> {
        match request {
            Request::Hello { api_version } => api::rpc::hello_answer(api_version),
            Request::Subscribe => Err(Failure::new(
                ErrorCode::InvalidRequest,
                "subscribe is for control-socket connections; in the process, use Node::watch",
            )),
            Request::Status => Ok(Answer::Status(self.status())),
            Request::Inspect { circle, message } => self.inspect(&circle, &message).map(Answer::Envelope),
            Request::AcknowledgeKey { circle, member } => {
                let circle = self.resolve_circle(&circle)?;
                let member = self.resolve_member(&circle, &member)?;
                self.command(Command::AcknowledgeKeyChange { circle, member })?;
                Ok(Answer::KeyAccepted(api::KeyAccepted { acknowledged: member.fingerprint().to_string() }))
            }
            Request::SetDisappear { circle, secs } => {
                let circle = self.resolve_circle(&circle)?;
                self.command(Command::SetDisappear { circle, max_secs: parse_duration_free(Some(secs)) })?;
                Ok(Answer::DisappearSet(api::DisappearSet { disappear_secs: parse_duration_free(Some(secs)) }))
            }
            Request::Ack { circle, message } => {
                let circle = self.resolve_circle(&circle)?;
                let announcement = match message {
                    Some(prefix) => Some(self.resolve_message(&circle, &prefix)?),
                    None => None,
                };
                self.command(Command::Acknowledge { circle, announcement })?;
                let c = self.engine.circle(&circle).ok_or_else(no_circle)?;
                let id = announcement.or_else(|| c.pinned().map(|p| p.id));
                let m = id.and_then(|id| c.message(&id));
                Ok(Answer::Acknowledged(api::Acknowledged {
                    acknowledged: id.map(|id| hex(&id)),
                    title: m.map(|m| m.text.clone()),
                }))
            }
            Request::Leave { circle, force } => {
                let id = self.resolve_circle(&circle)?;
                let name = self.engine.circle(&id).map(|c| c.log().circle_name().to_owned());
                self.command(Command::Leave { circle: id, force: force.unwrap_or(false) })?;
                Ok(Answer::Left(api::Left { left: name }))
            }
            Request::Shutdown => {
                self.stop = true;
                Ok(Answer::Stopping(api::Stopping { stopping: true }))
            }
            Request::CircleCreate { name, disappear_secs } => {
                let events = self
                    .command(Command::CreateCircle { name, max_disappear_secs: parse_duration_free(disappear_secs) })?;
                events
                    .iter()
                    .find_map(|e| match e {
                        Event::CircleCreated { circle, name } => {
                            Some(Answer::CircleCreated(api::CircleCreated { id: hex(circle), name: name.clone() }))
                        }
                        _ => None,
                    })
                    .ok_or_else(|| Failure::refused("the circle was not created"))
            }
            Request::Circles => Ok(Answer::Circles(self.circles())),
            Request::Invite { circle, expires_secs, organiser } => {
                let circle = self.resolve_circle(&circle)?;
                let addresses = self.advertised(&circle);
                let role = if organiser.unwrap_or(false) { Role::Organiser } else { Role::Member };
                let events = self.command(Command::CreateInvite {
                    circle,
                    expires_in_ms: expires_secs.unwrap_or(24 * 3600).saturating_mul(1000),
                    role,
                    addresses,
                })?;
                events
                    .iter()
                    .find_map(|e| match e {
                        Event::InviteCreated { code, expires_at_ms, .. } => {
                            Some(Answer::Invite(api::InviteCreated { code: code.clone(), expires_at: *expires_at_ms }))
                        }
                        _ => None,
                    })
                    .ok_or_else(|| Failure::refused("no invite was created"))
            }
            Request::Join { .. } => Err(Failure::new(ErrorCode::Internal, "join is answered asynchronously")),
            Request::Send { circle, text, disappear_secs } => {
                let circle = self.resolve_circle(&circle)?;
                let events =
                    self.command(Command::SendText { circle, text, timer_secs: parse_duration_free(disappear_secs) })?;
                Ok(Answer::Sent(sent(&events)))
            }
            Request::Announce { circle, title, when, place, details, supersedes, disappear_secs } => {
                let circle = self.resolve_circle(&circle)?;
                let supersedes = match supersedes {
                    Some(prefix) => Some(self.resolve_message(&circle, &prefix)?),
                    None => None,
                };
                let announcement = Announcement {
                    title,
                    when: when.unwrap_or_default(),
                    place: place.unwrap_or_default(),
                    details: details.unwrap_or_default(),
                    supersedes,
                };
                let events = self.command(Command::SendAnnouncement {
                    circle,
                    announcement,
                    timer_secs: parse_duration_free(disappear_secs),
                })?;
                Ok(Answer::Sent(sent(&events)))
            }
            Request::Messages { circle } => {
                let circle = self.resolve_circle(&circle)?;
                let c = self.engine.circle(&circle).ok_or_else(no_circle)?;
                Ok(Answer::Messages(
                    c.history().into_iter().map(|m| api::convert::message(m, Some(c.is_verified(&m.sender)))).collect(),
                ))
            }
            Request::Members { circle } => {
                let circle = self.resolve_circle(&circle)?;
                Ok(Answer::Members(self.members(&circle)))
            }
            Request::Rename { circle, name } => {
                let circle = self.resolve_circle(&circle)?;
                self.command(Command::Rename { circle, name })?;
                Ok(Answer::Renamed(api::Renamed { renamed: true }))
            }
            Request::RevokeInvite { circle, code } => {
                let circle = self.resolve_circle(&circle)?;
                self.command(Command::RevokeInvite { circle, code })?;
                Ok(Answer::Revoked(api::Revoked { revoked: true }))
            }
            Request::Remove { circle, member } => {
                let circle = self.resolve_circle(&circle)?;
                let member = self.resolve_member(&circle, &member)?;
                self.command(Command::Remove { circle, member })?;
                Ok(Answer::Removed(api::Removed { removed: member.fingerprint().to_string() }))
            }
            Request::Verify { circle, member, confirm } => {
                let circle = self.resolve_circle(&circle)?;
                let member = self.resolve_member(&circle, &member)?;
                let me = self.engine.member_id();
                let (first, second) = pair_safety_numbers(&me, &member);
                if confirm.unwrap_or(false) {
                    self.command(Command::Verify { circle, member })?;
                }
                Ok(Answer::Verification(api::Verification {
                    you: self.own_safety_number.clone(),
                    them: safety_number(&member).to_string(),
                    compare: [first.to_string(), second.to_string()],
                    verified: self.engine.circle(&circle).is_some_and(|c| c.is_verified(&member)),
                }))
            }
        }
    }

    fn circles(&self) -> Vec<api::CircleInfo> {
        let me = self.engine.member_id();
        self.engine
            .circle_ids()
            .iter()
            .filter_map(|id| {
                let c = self.engine.circle(id)?;
                Some(api::CircleInfo {
                    id: hex(id),
                    name: c.log().circle_name().to_owned(),
                    members: c.log().members().len() as u64,
                    epoch: u64::from(c.log().epoch()),
                    disappear_secs: c.log().max_disappear_secs(),
                    role: c.log().role_of(&me).map(api::Role::from),
                    removed: c.is_removed(),
                    pinned: c.pinned().map(|p| api::Pinned {
                        message: api::convert::message(p, Some(c.is_verified(&p.sender))),
                        acked_by: c.acks(&p.id).iter().map(|m| c.member_name(m)).collect(),
                        acked_by_me: c.acks(&p.id).contains(&me),
                    }),
                    key_changes: c.unacknowledged_key_changes().iter().map(|m| c.member_name(m)).collect(),
                })
            })
            .collect()
    }

    fn members(&self, circle: &CircleId) -> Vec<api::Member> {
        let me = self.engine.member_id();
        let book = self.books.get(circle);
        // In a Tor circle every link goes through tor: say so, not "direct".
        let tor = book.is_some_and(|b| b.saved.transport.as_deref() == Some("tor"));
        self.engine
            .members(circle)
            .into_iter()
            .map(|m| {
                let you = m.id == me;
                let link = if you { Some(false) } else { book.and_then(|b| b.link_of(&m.id)) };
                api::Member {
                    name: m.name,
                    fingerprint: m.id.fingerprint().to_string(),
                    id: m.id.to_hex(),
                    role: m.role.into(),
                    online: link.is_some(),
                    link: match link {
                        _ if you => api::Link::You,
                        Some(_) if tor => api::Link::Tor,
                        Some(true) => api::Link::Relayed,
                        Some(false) => api::Link::Direct,
                        None => api::Link::Offline,
                    },
                    verified: m.verified,
                    you,
                    looks_like: m.lookalike_of.map(|l| l.fingerprint().to_string()),
                }
            })
            .collect()
    }

    fn inspect(&self, circle: &str, message: &str) -> Result<api::Envelope, Failure> {
        let circle = self.resolve_circle(circle)?;
        let id = self.resolve_message(&circle, message)?;
        let c = self.engine.circle(&circle).ok_or_else(no_circle)?;
        let m = c.message(&id).ok_or_else(|| Failure::not_found("no such message"))?;
        let info =
            m.envelope.as_ref().ok_or_else(|| Failure::not_found("this message has no envelope (a local notice)"))?;
        let frame = &info.frame;
        let sig_at = frame.len().saturating_sub(crate::crypto::envelope::SIGNATURE_LEN);
        let header_len = crate::crypto::envelope::HEADER_LEN.min(sig_at);
        Ok(api::Envelope {
            id: hex(&id),
            frame_len: frame.len() as u64,
            version: frame.first().copied(),
            frame_type: frame.get(1).copied(),
            key_id: hex(&info.key_id),
            epoch: u64::from(info.epoch),
            counter: u64::from(info.counter),
            header: hex(&frame[..header_len]),
            ciphertext: hex(&frame[header_len..sig_at]),
            padded_len: sig_at.saturating_sub(header_len + crate::crypto::envelope::TAG_LEN) as u64,
            signature: hex(&frame[sig_at..]),
            signature_ok: c.check_signature(info),
        })
    }

    fn resolve_message(&self, circle: &CircleId, prefix: &str) -> Result<[u8; 16], Failure> {
        let c = self.engine.circle(circle).ok_or_else(no_circle)?;
        let q = prefix.trim().to_lowercase();
        let hits: Vec<[u8; 16]> = c.history().iter().filter(|m| hex(&m.id).starts_with(&q)).map(|m| m.id).collect();
        match hits.as_slice() {
            [one] => Ok(*one),
            [] => Err(Failure::not_found(format!("no message with id starting \"{prefix}\""))),
            _ => Err(Failure::new(ErrorCode::Ambiguous, format!("\"{prefix}\" matches several messages"))),
        }
    }

    fn status(&self) -> api::Status {
        let me = self.engine.member_id();
        let circles = self
            .engine
            .circle_ids()
            .iter()
            .map(|id| {
                let book = self.books.get(id);
                api::CircleStatus {
                    id: hex(id),
                    name: self.engine.circle(id).map(|c| c.log().circle_name().to_owned()),
                    peers: book.map_or(0, |b| b.connected.len() as u64),
                    banned_peers: book.map_or(0, |b| b.banned),
                    listen: book.map(|b| b.listen.iter().map(ToString::to_string).collect()),
                }
            })
            .collect();
        api::Status {
            name: self.engine.display_name().to_owned(),
            fingerprint: me.fingerprint().to_string(),
            safety_number: self.own_safety_number.clone(),
            circles,
        }
    }
}

fn sent(events: &[Event]) -> api::Sent {
    let id = events.iter().find_map(|e| match e {
        Event::Message(m) => Some(hex(&m.id)),
        _ => None,
    });
    api::Sent { id, queued: queued(events) }
}
