//! The echo bot of `examples/echo_bot.rs`: a script's view of the control
//! socket. It subscribes and answers every text message another member
//! sends with the same text after `echo: `, in the same circle. Its own
//! messages (the echoes among them) are never answered, so two bots in one
//! circle answer each other's people, not each other forever.

use std::time::{Duration, Instant};

use super::client::{ApiError, Client};
use super::types::{Body, PushEvent, Sent};
use crate::engine::message::MAX_TEXT;

/// What the echo of `text` says: `echo: ` and as much of the text as fits
/// in one message (cut at a character boundary).
pub fn echo_of(text: &str) -> String {
    const PREFIX: &str = "echo: ";
    let mut end = text.len().min(MAX_TEXT - PREFIX.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{PREFIX}{}", &text[..end])
}

/// When the bot stops (besides the node closing the connection).
#[derive(Clone, Copy, Debug, Default)]
pub struct Limits {
    /// After this many echoes.
    pub max_echoes: Option<usize>,
    /// At this moment.
    pub until: Option<Instant>,
}

/// What the bot did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub echoes: usize,
    /// Echoes the node refused (for instance while a key change waits to
    /// be accepted); the bot goes on.
    pub refused: usize,
    /// Events this connection missed because it read too slowly.
    pub missed: u64,
}

/// Run the bot on `client` (already connected; the handshake is done here)
/// until `limits` say stop or the node goes away. `on_echo` hears each
/// echo sent (the circle id and the answer).
pub fn run(client: &mut Client, limits: Limits, mut on_echo: impl FnMut(&str, &Sent)) -> Result<Report, ApiError> {
    client.hello()?;
    let me = client.status()?.fingerprint;
    client.subscribe()?;
    let mut report = Report::default();
    loop {
        if limits.max_echoes.is_some_and(|max| report.echoes >= max) {
            return Ok(report);
        }
        let wait = match limits.until {
            Some(until) => match until.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Some(left),
                _ => return Ok(report),
            },
            None => None,
        };
        let event = match client.next_event(wait.map(|w| w.min(Duration::from_secs(3600)))) {
            Ok(Some(event)) => event,
            Ok(None) => continue,
            Err(ApiError::Closed) => return Ok(report),
            Err(e) => return Err(e),
        };
        match event {
            PushEvent::Message { message } if message.body == Body::Text && message.sender_fingerprint != me => {
                match client.send_text(&message.circle, &echo_of(&message.text), None) {
                    Ok(sent) => {
                        report.echoes += 1;
                        on_echo(&message.circle, &sent);
                    }
                    Err(ApiError::Rpc { .. }) => report.refused += 1,
                    Err(e) => return Err(e),
                }
            }
            PushEvent::Lagged { missed } => report.missed += missed,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_echo_always_fits_in_one_message() {
        assert_eq!(echo_of("hi"), "echo: hi");
        let long = "é".repeat(MAX_TEXT); // Two bytes each.
        let echo = echo_of(&long);
        assert!(echo.len() <= MAX_TEXT && echo.starts_with("echo: é"));
    }
}
