//! Answers to control-socket requests (`docs/api.md`).

use std::time::Instant;

use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::{JOIN_TIMEOUT, JoinWaiter, Node};
use crate::api::Request;
use crate::circle::{CircleId, Role};
use crate::engine::{Announcement, Command, Event, Input, MessageKind, MessageView};
use crate::identity::{MemberId, hex, pair_safety_numbers, safety_number};

type Reply = oneshot::Sender<Result<Value, String>>;

fn parse_duration_free(secs: Option<u32>) -> Option<u32> {
    secs.filter(|s| *s > 0)
}

/// The first error or refusal among the events of a command.
fn failure(events: &[Event]) -> Option<String> {
    events.iter().find_map(|e| match e {
        Event::Error { reason } | Event::JoinFailed { reason, .. } => Some(reason.clone()),
        _ => None,
    })
}

fn queued(events: &[Event]) -> Option<String> {
    events.iter().find_map(|e| match e {
        Event::Queued { reason, .. } => Some(reason.clone()),
        _ => None,
    })
}

pub fn message_json(m: &MessageView, verified: bool) -> Value {
    let kind = match m.kind {
        MessageKind::Text => "text",
        MessageKind::Announcement(_) => "announcement",
        MessageKind::System => "system",
    };
    let mut v = json!({
        "id": hex(&m.id),
        "circle": hex(&m.circle),
        "kind": kind,
        "sender": m.sender_name,
        "sender_fingerprint": m.sender.fingerprint().to_string(),
        "text": m.text,
        "sent_at": m.sent_at_ms,
        "received_at": m.received_at_ms,
        "expires_at": m.expires_at_ms,
        "verified": verified,
    });
    if let MessageKind::Announcement(a) = &m.kind {
        v["title"] = json!(a.title);
        v["when"] = json!(a.when);
        v["where"] = json!(a.place);
        v["details"] = json!(a.details);
        v["supersedes"] = json!(a.supersedes.map(|s| hex(&s)));
    }
    v
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
        if let Some(reason) = failure(&events) {
            let _ = reply.send(Err(reason));
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
                let _ = reply.send(Err("the join did not start".into()));
            }
        }
    }

    fn resolve_circle(&self, query: &str) -> Result<CircleId, String> {
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
            [] => Err(format!("no circle called or starting with \"{query}\"")),
            _ => Err(format!("\"{query}\" matches several circles; use more of the id")),
        }
    }

    fn resolve_member(&self, circle: &CircleId, query: &str) -> Result<MemberId, String> {
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
            [] => Err(format!("no member called or starting with \"{query}\"")),
            _ => Err(format!("\"{query}\" matches several members; use their fingerprint")),
        }
    }

    fn command(&mut self, command: Command) -> Result<Vec<Event>, String> {
        let events = self.handle(Input::Command(command));
        match failure(&events) {
            Some(reason) => Err(reason),
            None => Ok(events),
        }
    }

    fn answer(&mut self, request: Request) -> Result<Value, String> {
        match request {
            Request::Status => Ok(self.status()),
            Request::Inspect { circle, message } => self.inspect(&circle, &message),
            Request::AcknowledgeKey { circle, member } => {
                let circle = self.resolve_circle(&circle)?;
                let member = self.resolve_member(&circle, &member)?;
                self.command(Command::AcknowledgeKeyChange { circle, member })?;
                Ok(json!({ "acknowledged": member.fingerprint().to_string() }))
            }
            Request::SetDisappear { circle, secs } => {
                let circle = self.resolve_circle(&circle)?;
                self.command(Command::SetDisappear { circle, max_secs: parse_duration_free(Some(secs)) })?;
                Ok(json!({ "disappear_secs": parse_duration_free(Some(secs)) }))
            }
            Request::Ack { circle, message } => {
                let circle = self.resolve_circle(&circle)?;
                let announcement = match message {
                    Some(prefix) => Some(self.resolve_message(&circle, &prefix)?),
                    None => None,
                };
                self.command(Command::Acknowledge { circle, announcement })?;
                let c = self.engine.circle(&circle).ok_or("no such circle")?;
                let id = announcement.or_else(|| c.pinned().map(|p| p.id));
                let m = id.and_then(|id| c.message(&id));
                Ok(json!({ "acknowledged": id.map(|id| hex(&id)), "title": m.map(|m| m.text.clone()) }))
            }
            Request::Leave { circle, force } => {
                let id = self.resolve_circle(&circle)?;
                let name = self.engine.circle(&id).map(|c| c.log().circle_name().to_owned());
                self.command(Command::Leave { circle: id, force: force.unwrap_or(false) })?;
                Ok(json!({ "left": name }))
            }
            Request::Shutdown => {
                self.stop = true;
                Ok(json!({ "stopping": true }))
            }
            Request::CircleCreate { name, disappear_secs } => {
                let events = self
                    .command(Command::CreateCircle { name, max_disappear_secs: parse_duration_free(disappear_secs) })?;
                events
                    .iter()
                    .find_map(|e| match e {
                        Event::CircleCreated { circle, name } => Some(json!({ "id": hex(circle), "name": name })),
                        _ => None,
                    })
                    .ok_or_else(|| "the circle was not created".into())
            }
            Request::Circles => Ok(Value::Array(
                self.engine
                    .circle_ids()
                    .iter()
                    .filter_map(|id| {
                        let c = self.engine.circle(id)?;
                        Some(json!({
                            "id": hex(id),
                            "name": c.log().circle_name(),
                            "members": c.log().members().len(),
                            "epoch": c.log().epoch(),
                            "disappear_secs": c.log().max_disappear_secs(),
                            "role": c.log().role_of(&self.engine.member_id()).map(Role::label),
                            "removed": c.is_removed(),
                            "pinned": c.pinned().map(|p| {
                                let mut v = message_json(p, c.is_verified(&p.sender));
                                v["acked_by"] = json!(c.acks(&p.id).iter().map(|m| c.member_name(m)).collect::<Vec<_>>());
                                v["acked_by_me"] = json!(c.acks(&p.id).contains(&self.engine.member_id()));
                                v
                            }),
                            "key_changes": c.unacknowledged_key_changes().iter().map(|m| c.member_name(m)).collect::<Vec<_>>(),
                        }))
                    })
                    .collect(),
            )),
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
                            Some(json!({ "code": code, "expires_at": expires_at_ms }))
                        }
                        _ => None,
                    })
                    .ok_or_else(|| "no invite was created".into())
            }
            Request::Join { .. } => Err("join is answered asynchronously".into()),
            Request::Send { circle, text, disappear_secs } => {
                let circle = self.resolve_circle(&circle)?;
                let events =
                    self.command(Command::SendText { circle, text, timer_secs: parse_duration_free(disappear_secs) })?;
                Ok(sent(&events))
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
                Ok(sent(&events))
            }
            Request::Messages { circle } => {
                let circle = self.resolve_circle(&circle)?;
                let c = self.engine.circle(&circle).ok_or("no such circle")?;
                Ok(Value::Array(c.history().into_iter().map(|m| message_json(m, c.is_verified(&m.sender))).collect()))
            }
            Request::Members { circle } => {
                let circle = self.resolve_circle(&circle)?;
                let me = self.engine.member_id();
                let book = self.books.get(&circle);
                // In a Tor circle every link goes through tor: say so, not "direct".
                let tor = book.is_some_and(|b| b.saved.transport.as_deref() == Some("tor"));
                Ok(Value::Array(
                    self.engine
                        .members(&circle)
                        .into_iter()
                        .map(|m| {
                            let link = if m.id == me { Some(false) } else { book.and_then(|b| b.link_of(&m.id)) };
                            json!({
                                "name": m.name,
                                "fingerprint": m.id.fingerprint().to_string(),
                                "id": m.id.to_hex(),
                                "role": m.role.label(),
                                "online": link.is_some(),
                                "link": match link {
                                    _ if m.id == me => "you",
                                    Some(_) if tor && m.id != me => "tor",
                                    Some(true) => "relayed",
                                    Some(false) => "direct",
                                    None => "offline",
                                },
                                "verified": m.verified,
                                "you": m.id == me,
                                "looks_like": m.lookalike_of.map(|l| l.fingerprint().to_string()),
                            })
                        })
                        .collect(),
                ))
            }
            Request::Rename { circle, name } => {
                let circle = self.resolve_circle(&circle)?;
                self.command(Command::Rename { circle, name })?;
                Ok(json!({ "renamed": true }))
            }
            Request::RevokeInvite { circle, code } => {
                let circle = self.resolve_circle(&circle)?;
                self.command(Command::RevokeInvite { circle, code })?;
                Ok(json!({ "revoked": true }))
            }
            Request::Remove { circle, member } => {
                let circle = self.resolve_circle(&circle)?;
                let member = self.resolve_member(&circle, &member)?;
                self.command(Command::Remove { circle, member })?;
                Ok(json!({ "removed": member.fingerprint().to_string() }))
            }
            Request::Verify { circle, member, confirm } => {
                let circle = self.resolve_circle(&circle)?;
                let member = self.resolve_member(&circle, &member)?;
                let me = self.engine.member_id();
                let (first, second) = pair_safety_numbers(&me, &member);
                if confirm.unwrap_or(false) {
                    self.command(Command::Verify { circle, member })?;
                }
                Ok(json!({
                    "you": self.own_safety_number,
                    "them": safety_number(&member).to_string(),
                    "compare": [first.to_string(), second.to_string()],
                    "verified": self.engine.circle(&circle).is_some_and(|c| c.is_verified(&member)),
                }))
            }
        }
    }

    fn inspect(&self, circle: &str, message: &str) -> Result<Value, String> {
        let circle = self.resolve_circle(circle)?;
        let id = self.resolve_message(&circle, message)?;
        let c = self.engine.circle(&circle).ok_or("no such circle")?;
        let m = c.message(&id).ok_or("no such message")?;
        let info = m.envelope.as_ref().ok_or("this message has no envelope (a local notice)")?;
        let frame = &info.frame;
        let sig_at = frame.len().saturating_sub(crate::crypto::envelope::SIGNATURE_LEN);
        let header_len = crate::crypto::envelope::HEADER_LEN.min(sig_at);
        Ok(json!({
            "id": hex(&id),
            "frame_len": frame.len(),
            "version": frame.first(),
            "frame_type": frame.get(1),
            "key_id": hex(&info.key_id),
            "epoch": info.epoch,
            "counter": info.counter,
            "header": hex(&frame[..header_len]),
            "ciphertext": hex(&frame[header_len..sig_at]),
            "padded_len": sig_at.saturating_sub(header_len + crate::crypto::envelope::TAG_LEN),
            "signature": hex(&frame[sig_at..]),
            "signature_ok": c.check_signature(info),
        }))
    }

    fn resolve_message(&self, circle: &CircleId, prefix: &str) -> Result<[u8; 16], String> {
        let c = self.engine.circle(circle).ok_or("no such circle")?;
        let q = prefix.trim().to_lowercase();
        let hits: Vec<[u8; 16]> = c.history().iter().filter(|m| hex(&m.id).starts_with(&q)).map(|m| m.id).collect();
        match hits.as_slice() {
            [one] => Ok(*one),
            [] => Err(format!("no message with id starting \"{prefix}\"")),
            _ => Err(format!("\"{prefix}\" matches several messages")),
        }
    }

    fn status(&self) -> Value {
        let me = self.engine.member_id();
        let circles: Vec<Value> = self
            .engine
            .circle_ids()
            .iter()
            .map(|id| {
                let book = self.books.get(id);
                json!({
                    "id": hex(id),
                    "name": self.engine.circle(id).map(|c| c.log().circle_name().to_owned()),
                    "peers": book.map_or(0, |b| b.connected.len()),
                    "banned_peers": book.map_or(0, |b| b.banned),
                    "listen": book.map(|b| b.listen.iter().map(ToString::to_string).collect::<Vec<_>>()),
                })
            })
            .collect();
        json!({
            "name": self.engine.display_name(),
            "fingerprint": me.fingerprint().to_string(),
            "safety_number": self.own_safety_number,
            "circles": circles,
        })
    }
}

fn sent(events: &[Event]) -> Value {
    let id = events.iter().find_map(|e| match e {
        Event::Message(m) => Some(hex(&m.id)),
        _ => None,
    });
    match queued(events) {
        Some(reason) => json!({ "id": id, "queued": reason }),
        None => json!({ "id": id }),
    }
}
