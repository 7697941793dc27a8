//! Encoding of a message record for the store (the plaintext that is then
//! sealed under the key of its expiry bucket).

use crate::engine::{Announcement, EnvelopeInfo, MessageKind, MessageView};
use crate::identity::MemberId;
use crate::wire::{Reader, WireError, Writer};

pub fn encode_message(m: &MessageView) -> Vec<u8> {
    let mut w = Writer::with_capacity(256 + m.text.len());
    w.u8(1).raw(&m.circle).raw(&m.id).raw(m.sender.as_bytes()).str16(&m.sender_name);
    match &m.kind {
        MessageKind::Text => {
            w.u8(1);
        }
        MessageKind::Announcement(a) => {
            w.u8(2).str16(&a.title).str16(&a.when).str16(&a.place).bytes32(a.details.as_bytes());
            match a.supersedes {
                Some(id) => w.u8(1).raw(&id),
                None => w.u8(0),
            };
        }
        MessageKind::System => {
            w.u8(3);
        }
    }
    w.bytes32(m.text.as_bytes()).u64(m.sent_at_ms).u64(m.received_at_ms);
    match m.expires_at_ms {
        Some(t) => w.u8(1).u64(t),
        None => w.u8(0),
    };
    match &m.envelope {
        Some(e) => w.u8(1).raw(&e.key_id).u32(e.epoch).u32(e.counter).bytes32(&e.frame),
        None => w.u8(0),
    };
    w.finish()
}

fn utf8(b: &[u8], what: &'static str) -> Result<String, WireError> {
    std::str::from_utf8(b).map(str::to_owned).map_err(|_| WireError::BadUtf8(what))
}

pub fn decode_message(bytes: &[u8]) -> Result<MessageView, WireError> {
    let mut r = Reader::new(bytes);
    if r.u8()? != 1 {
        return Err(WireError::Invalid("message record version"));
    }
    let circle = r.array()?;
    let id = r.array()?;
    let sender = MemberId(r.array()?);
    let sender_name = r.str16("name", 1024)?;
    let kind = match r.u8()? {
        1 => MessageKind::Text,
        2 => {
            let title = r.str16("title", 1 << 16)?;
            let when = r.str16("when", 1 << 16)?;
            let place = r.str16("where", 1 << 16)?;
            let details = utf8(r.bytes32("details", 1 << 20)?, "details")?;
            let supersedes = match r.u8()? {
                0 => None,
                _ => Some(r.array()?),
            };
            MessageKind::Announcement(Announcement { title, when, place, details, supersedes })
        }
        3 => MessageKind::System,
        code => {
            return Err(WireError::UnknownCode { what: "message kind", code });
        }
    };
    let text = utf8(r.bytes32("text", 1 << 20)?, "text")?;
    let sent_at_ms = r.u64()?;
    let received_at_ms = r.u64()?;
    let expires_at_ms = match r.u8()? {
        0 => None,
        _ => Some(r.u64()?),
    };
    let envelope = match r.u8()? {
        0 => None,
        _ => Some(EnvelopeInfo {
            key_id: r.array()?,
            epoch: r.u32()?,
            counter: r.u32()?,
            frame: r.bytes32("frame", 1 << 20)?.to_vec(),
        }),
    };
    r.finish()?;
    Ok(MessageView { circle, id, sender, sender_name, kind, text, sent_at_ms, received_at_ms, expires_at_ms, envelope })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip() {
        let m = MessageView {
            circle: [1; 32],
            id: [2; 16],
            sender: MemberId([3; 32]),
            sender_name: "Ana".into(),
            kind: MessageKind::Announcement(Announcement {
                title: "t".into(),
                when: "w".into(),
                place: "p".into(),
                details: "d".into(),
                supersedes: Some([4; 16]),
            }),
            text: "hello".into(),
            sent_at_ms: 5,
            received_at_ms: 6,
            expires_at_ms: Some(7),
            envelope: Some(EnvelopeInfo { key_id: [8; 16], epoch: 9, counter: 10, frame: vec![11; 40] }),
        };
        assert_eq!(decode_message(&encode_message(&m)).unwrap(), m);
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_message(&bytes);
        }
    }
}
