//! The plaintext inside a group envelope (before padding).
//!
//! ```text
//! u8   kind            1 text, 2 announcement, 3 ack, 4 membership op,
//!                      5 presence, 6 pairwise key
//! [32] circle_id       must equal the circle the frame arrived in
//! [32] sender          must equal the member the chain belongs to
//! u32  epoch           must equal the header's epoch
//! u64  sent_at_ms      sender's clock; rejected if too far in the future
//! u32  timer_secs      disappearing timer, 0 = none
//! ...  body            per kind, see protocol/SPEC.md
//! ```

use crate::identity::MemberId;
use crate::wire::{Reader, WireError, Writer};

/// The longest text (and announcement details), in bytes of UTF-8. One
/// limit for senders and receivers (protocol/SPEC.md §5.4, §9): a sender
/// checks it before sealing ([`check_body`]), so a receiver's refusal of a
/// longer text is always proof against whoever produced the frame.
pub const MAX_TEXT: usize = 60_000;
pub const MAX_TITLE: usize = 200;
pub const MAX_FIELD: usize = 500;
pub const MAX_OP: usize = 4096;
/// The longest address in a presence message, in bytes.
pub const MAX_PRESENCE_ADDRESS: usize = 256;
/// The longest transport id in a presence message, in bytes.
pub const MAX_TRANSPORT_ID: usize = 128;

pub type MessageId = [u8; 16];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Announcement {
    pub title: String,
    pub when: String,
    pub place: String,
    pub details: String,
    pub supersedes: Option<MessageId>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    Text(String),
    Announcement(Announcement),
    /// Receipt of an announcement (opt-in metadata, see docs).
    Ack(MessageId),
    /// An encoded membership operation (`circle::Op`).
    Op(Vec<u8>),
    /// Where the sender's node can be reached in this circle's network:
    /// its transport id and addresses, told only to members.
    Presence(Presence),
    /// The sender's new pairwise key (`engine::prekeys`): its id, public
    /// key and the sender's identity signature over them, for the next
    /// pairwise frames sent to it (and for welcomes, which pass it on).
    Prekey(crate::identity::SignedPairwiseKey),
}

/// A member's transport identity and addresses for one circle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Presence {
    pub transport: Vec<u8>,
    pub addresses: Vec<String>,
}

pub const MAX_PRESENCE_ADDRESSES: usize = 16;

impl Body {
    pub(crate) fn code(&self) -> u8 {
        match self {
            Body::Text(_) => 1,
            Body::Announcement(_) => 2,
            Body::Ack(_) => 3,
            Body::Op(_) => 4,
            Body::Presence(_) => 5,
            Body::Prekey(_) => 6,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inner {
    pub circle_id: [u8; 32],
    pub sender: MemberId,
    pub epoch: u32,
    pub sent_at_ms: u64,
    pub timer_secs: u32,
    pub body: Body,
}

impl Inner {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(128);
        w.u8(self.body.code())
            .raw(&self.circle_id)
            .raw(self.sender.as_bytes())
            .u32(self.epoch)
            .u64(self.sent_at_ms)
            .u32(self.timer_secs);
        match &self.body {
            Body::Text(t) => {
                w.bytes32(t.as_bytes());
            }
            Body::Announcement(a) => {
                w.str16(&a.title).str16(&a.when).str16(&a.place);
                w.bytes32(a.details.as_bytes());
                match a.supersedes {
                    Some(id) => w.u8(1).raw(&id),
                    None => w.u8(0),
                };
            }
            Body::Ack(id) => {
                w.raw(id);
            }
            Body::Op(op) => {
                w.bytes32(op);
            }
            Body::Presence(p) => {
                w.bytes16(&p.transport);
                // Only what a receiver accepts: a longer address is left out
                // rather than making the whole frame invalid.
                let addrs: Vec<&String> = p
                    .addresses
                    .iter()
                    .filter(|a| a.len() <= MAX_PRESENCE_ADDRESS)
                    .take(MAX_PRESENCE_ADDRESSES)
                    .collect();
                w.u8(addrs.len() as u8);
                for a in addrs {
                    w.str16(a);
                }
            }
            Body::Prekey(k) => {
                w.u32(k.key.id).raw(&k.key.public).raw(&k.signature);
            }
        }
        w.finish()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        let code = r.u8()?;
        let circle_id = r.array()?;
        let sender = MemberId(r.array()?);
        let epoch = r.u32()?;
        let sent_at_ms = r.u64()?;
        let timer_secs = r.u32()?;
        let body = match code {
            1 => Body::Text(utf8(r.bytes32("text", MAX_TEXT)?, "text")?),
            2 => {
                let title = r.str16("title", MAX_TITLE)?;
                let when = r.str16("when", MAX_FIELD)?;
                let place = r.str16("where", MAX_FIELD)?;
                let details = utf8(r.bytes32("details", MAX_TEXT)?, "details")?;
                let supersedes = match r.u8()? {
                    0 => None,
                    1 => Some(r.array()?),
                    c => {
                        return Err(WireError::UnknownCode { what: "supersedes flag", code: c });
                    }
                };
                Body::Announcement(Announcement { title, when, place, details, supersedes })
            }
            3 => Body::Ack(r.array()?),
            4 => Body::Op(r.bytes32("op", MAX_OP)?.to_vec()),
            5 => {
                let transport = r.bytes16("transport id", MAX_TRANSPORT_ID)?.to_vec();
                let n = r.u8()? as usize;
                if n > MAX_PRESENCE_ADDRESSES {
                    return Err(WireError::LimitExceeded { what: "addresses", limit: MAX_PRESENCE_ADDRESSES });
                }
                let addresses = (0..n).map(|_| r.str16("address", MAX_PRESENCE_ADDRESS)).collect::<Result<_, _>>()?;
                Body::Presence(Presence { transport, addresses })
            }
            6 => Body::Prekey(crate::identity::SignedPairwiseKey {
                key: crate::identity::PairwiseKey { id: r.u32()?, public: r.array()? },
                signature: r.array()?,
            }),
            c => {
                return Err(WireError::UnknownCode { what: "message kind", code: c });
            }
        };
        r.finish()?;
        Ok(Self { circle_id, sender, epoch, sent_at_ms, timer_secs, body })
    }
}

/// Refuse, before sealing, a body a receiver would refuse for its size,
/// with a reason that gives the limit in characters and bytes.
pub fn check_body(body: &Body) -> Result<(), String> {
    match body {
        Body::Text(t) => check_len("the message", t, MAX_TEXT),
        Body::Announcement(a) => {
            check_len("the title", &a.title, MAX_TITLE)?;
            check_len("\"when\"", &a.when, MAX_FIELD)?;
            check_len("\"where\"", &a.place, MAX_FIELD)?;
            check_len("the details", &a.details, MAX_TEXT)
        }
        Body::Op(op) if op.len() > MAX_OP => {
            Err(format!("the membership operation is too long: {} bytes; the limit is {MAX_OP} bytes", op.len()))
        }
        Body::Presence(p) if p.transport.len() > MAX_TRANSPORT_ID => {
            Err(format!("the transport id is too long: the limit is {MAX_TRANSPORT_ID} bytes"))
        }
        Body::Ack(_) | Body::Op(_) | Body::Presence(_) | Body::Prekey(_) => Ok(()),
    }
}

/// `what` is at most `limit` bytes of UTF-8, else a reason naming both
/// figures: a character is one byte in plain Latin letters and up to four
/// (accents, other scripts, emoji).
pub fn check_len(what: &str, text: &str, limit: usize) -> Result<(), String> {
    if text.len() <= limit {
        return Ok(());
    }
    Err(format!(
        "{what} is too long and was not sent: {} characters, {} bytes; the limit is {limit} bytes \
         ({limit} characters of plain Latin letters, as few as {} with emoji or other scripts)",
        text.chars().count(),
        text.len(),
        limit / 4
    ))
}

fn utf8(bytes: &[u8], what: &'static str) -> Result<String, WireError> {
    std::str::from_utf8(bytes).map(str::to_owned).map_err(|_| WireError::BadUtf8(what))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample(body: Body) -> Inner {
        Inner { circle_id: [1; 32], sender: MemberId([2; 32]), epoch: 3, sent_at_ms: 4, timer_secs: 5, body }
    }

    #[test]
    fn round_trip_every_kind() {
        let bodies = [
            Body::Text("hi ✊".into()),
            Body::Announcement(Announcement {
                title: "Meeting moved".into(),
                when: "19:00".into(),
                place: "north entrance".into(),
                details: "bring water".into(),
                supersedes: Some([9; 16]),
            }),
            Body::Ack([7; 16]),
            Body::Op(vec![1, 2, 3]),
            Body::Presence(Presence { transport: vec![0, 36, 8], addresses: vec!["/ip4/127.0.0.1/tcp/1".into()] }),
            Body::Prekey(crate::identity::SignedPairwiseKey {
                key: crate::identity::PairwiseKey { id: 3, public: [7; 32] },
                signature: [5; 64],
            }),
        ];
        for b in bodies {
            let m = sample(b);
            assert_eq!(Inner::decode(&m.encode()).unwrap(), m);
        }
    }

    /// A presence with an address longer than receivers accept used to
    /// make the whole frame invalid (a strike against an honest sender);
    /// the address is left out instead.
    #[test]
    fn presence_leaves_out_what_receivers_refuse() {
        let long = format!("/dns4/{}/tcp/1", "a".repeat(MAX_PRESENCE_ADDRESS));
        let ok = "/ip4/127.0.0.1/tcp/1".to_owned();
        let m = sample(Body::Presence(Presence { transport: vec![1; 38], addresses: vec![long, ok.clone()] }));
        let back = Inner::decode(&m.encode()).unwrap();
        assert_eq!(back.body, Body::Presence(Presence { transport: vec![1; 38], addresses: vec![ok] }));
        assert!(check_body(&Body::Presence(Presence { transport: vec![0; 129], addresses: vec![] })).is_err());
    }

    #[test]
    fn limits_are_checked_in_bytes_and_named_in_characters_and_bytes() {
        assert!(check_body(&Body::Text("✊".repeat(MAX_TEXT / 3))).is_ok());
        let e = check_body(&Body::Text("✊".repeat(MAX_TEXT / 3 + 1))).unwrap_err();
        assert!(e.contains("20001 characters, 60003 bytes") && e.contains("limit is 60000 bytes"), "{e}");
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Inner::decode(&bytes);
        }
    }
}
