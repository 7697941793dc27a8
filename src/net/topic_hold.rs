//! Holding what we publish on a topic we just moved to, until the members
//! we are connected to have moved too.
//!
//! Every key epoch has its own topic (SPEC §5.1a). At a rekey each member
//! subscribes to the new topic the moment the epoch secret reaches it, and
//! at once publishes its new chain there, followed by whatever waited for
//! the keys. Gossipsub sends a published message only to the peers it knows
//! are subscribed at that moment and never re-sends it to peers that
//! subscribe a few milliseconds later, so without a hold most of a rekey's
//! frames reached nobody and waited for catch-up (about 19 s at 10 nodes).
//! A hold lasts until every expected peer announced the topic, or
//! [`HOLD_AT_MOST`]: a member that never moves (removed, or offline in all
//! but its connection) costs the others that long, never more.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use libp2p::PeerId;

/// The longest a frame waits for the expected peers.
pub const HOLD_AT_MOST: Duration = Duration::from_millis(1500);
/// Frames held per topic; one more releases the topic at once (a hold is
/// for the handful of frames of a rekey, not a queue).
const MAX_HELD: usize = 256;

struct Hold {
    until: Instant,
    waiting: HashSet<PeerId>,
    frames: Vec<Vec<u8>>,
}

/// Topics on hold, by name.
#[derive(Default)]
pub struct TopicHolds {
    holds: HashMap<String, Hold>,
}

/// Frames released from a hold, to publish in the order they were held.
pub type Released = Vec<(String, Vec<Vec<u8>>)>;

impl TopicHolds {
    /// We subscribed to `topic`; `waiting` are the connected peers we
    /// expect there that have not announced it yet. No hold without them.
    pub fn start(&mut self, topic: String, waiting: HashSet<PeerId>, now: Instant) {
        if waiting.is_empty() || self.holds.contains_key(&topic) {
            return;
        }
        self.holds.insert(topic, Hold { until: now + HOLD_AT_MOST, waiting, frames: Vec::new() });
    }

    pub fn is_empty(&self) -> bool {
        self.holds.is_empty()
    }

    /// Keep `frame` if `topic` is on hold; otherwise hand it back to be
    /// published now. A full hold is released with the frame last.
    pub fn hold(&mut self, topic: &str, frame: Vec<u8>) -> Result<(), Released> {
        let Some(hold) = self.holds.get_mut(topic) else {
            return Err(vec![(topic.to_owned(), vec![frame])]);
        };
        hold.frames.push(frame);
        if hold.frames.len() > MAX_HELD {
            return Err(self.release(|name, _| name == topic));
        }
        Ok(())
    }

    /// `peer` announced `topic`.
    pub fn subscribed(&mut self, topic: &str, peer: &PeerId) -> Released {
        if let Some(hold) = self.holds.get_mut(topic) {
            hold.waiting.remove(peer);
        }
        self.release(|_, hold| hold.waiting.is_empty())
    }

    /// `peer` is gone: no hold waits for it any longer.
    pub fn disconnected(&mut self, peer: &PeerId) -> Released {
        for hold in self.holds.values_mut() {
            hold.waiting.remove(peer);
        }
        self.release(|_, hold| hold.waiting.is_empty())
    }

    /// Holds that have lasted [`HOLD_AT_MOST`].
    pub fn expired(&mut self, now: Instant) -> Released {
        self.release(|_, hold| now >= hold.until)
    }

    fn release(&mut self, done: impl Fn(&str, &Hold) -> bool) -> Released {
        let names: Vec<String> = self.holds.iter().filter(|(n, h)| done(n, h)).map(|(n, _)| n.clone()).collect();
        names.into_iter().filter_map(|n| self.holds.remove(&n).map(|h| (n, h.frames))).collect()
    }
}

#[cfg(test)]
#[allow(clippy::panic)]
mod tests {
    use super::*;

    fn peers(n: usize) -> Vec<PeerId> {
        (0..n).map(|_| PeerId::random()).collect()
    }

    #[test]
    fn frames_wait_until_every_expected_peer_announced_the_topic() {
        let p = peers(2);
        let now = Instant::now();
        let mut holds = TopicHolds::default();
        holds.start("t".into(), p.iter().copied().collect(), now);
        assert!(holds.hold("t", vec![1]).is_ok());
        assert!(holds.hold("t", vec![2]).is_ok());
        assert!(holds.subscribed("t", &p[0]).is_empty());
        assert_eq!(holds.subscribed("t", &p[1]), vec![("t".to_string(), vec![vec![1], vec![2]])]);
        assert!(holds.is_empty());
        // Released: later frames go straight out.
        assert_eq!(holds.hold("t", vec![3]), Err(vec![("t".to_string(), vec![vec![3]])]));
    }

    #[test]
    fn a_peer_that_never_moves_delays_the_topic_only_so_long() {
        let p = peers(1);
        let now = Instant::now();
        let mut holds = TopicHolds::default();
        holds.start("t".into(), p.iter().copied().collect(), now);
        assert!(holds.hold("t", vec![1]).is_ok());
        assert!(holds.expired(now + HOLD_AT_MOST / 2).is_empty());
        assert_eq!(holds.expired(now + HOLD_AT_MOST), vec![("t".to_string(), vec![vec![1]])]);
    }

    #[test]
    fn a_disconnected_peer_is_not_waited_for() {
        let p = peers(1);
        let mut holds = TopicHolds::default();
        holds.start("t".into(), p.iter().copied().collect(), Instant::now());
        assert!(holds.hold("t", vec![1]).is_ok());
        assert_eq!(holds.disconnected(&p[0]), vec![("t".to_string(), vec![vec![1]])]);
    }

    #[test]
    fn a_hold_never_grows_past_its_cap_and_other_topics_pass() {
        let p = peers(1);
        let mut holds = TopicHolds::default();
        holds.start("t".into(), p.iter().copied().collect(), Instant::now());
        for i in 0..MAX_HELD {
            assert!(holds.hold("t", vec![i as u8]).is_ok());
        }
        let Err(released) = holds.hold("t", vec![0xff]) else { panic!("a full hold is released") };
        assert_eq!(released[0].1.len(), MAX_HELD + 1);
        assert_eq!(released[0].1.last(), Some(&vec![0xff]));
        assert!(holds.hold("other", vec![1]).is_err());
        holds.start("u".into(), HashSet::new(), Instant::now());
        assert!(holds.is_empty(), "nothing to wait for: no hold");
    }
}
