//! The local control socket: JSON-RPC 2.0, one object per line, over a
//! Unix socket in the profile directory (mode 0600). Scripts, bots, the
//! CLI subcommands and tests use it; `docs/api.md` is its specification.
//!
//! Owns: the typed requests ([`Request`]) and answers ([`types`]), the
//! JSON-RPC framing and error codes ([`rpc`]), the socket server (one task
//! per connection, at most `net::MAX_CONTROL_CONNECTIONS` at once, lines
//! read only up to their limit, requests forwarded to the node over a
//! bounded channel, pushed events for subscribers), the blocking client
//! ([`Client`]), the terminal client's view of a running node ([`attach`])
//! and the echo bot of `examples/echo_bot.rs` ([`echo`]).
//! No other module reads or writes JSON for the socket.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod client;
pub mod convert;
pub mod echo;
pub mod rpc;
#[cfg(feature = "app")]
mod server;
pub mod types;

pub use client::{ApiError, Client, call, call_endpoint};
#[cfg(feature = "app")]
pub use client::{Attached, attach};
pub use rpc::{ErrorCode, Failure, Id, parse_call};
#[cfg(feature = "app")]
pub use server::{Pending, Pushes, Reply, bind, forward_events, pushes, serve};
pub use types::*;

pub const SOCKET_FILE: &str = "control.sock";
/// The longest request line the server reads.
pub const MAX_LINE: usize = 256 * 1024;

/// One request: the JSON-RPC `method` and its named `params`. `circle`
/// and `member` accept a name or an id prefix.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", content = "params", rename_all = "snake_case")]
pub enum Request {
    /// The version handshake: the node's API and kolo versions. A client
    /// that names its `api_version` is refused by a node that speaks
    /// another.
    Hello {
        api_version: Option<u32>,
    },
    /// Push events to this connection from now on (`event` notifications).
    Subscribe,
    Status,
    CircleCreate {
        name: String,
        disappear_secs: Option<u32>,
    },
    Circles,
    Invite {
        circle: String,
        expires_secs: Option<u64>,
        organiser: Option<bool>,
    },
    Join {
        code: String,
    },
    Send {
        circle: String,
        text: String,
        disappear_secs: Option<u32>,
    },
    Announce {
        circle: String,
        title: String,
        when: Option<String>,
        #[serde(rename = "where")]
        place: Option<String>,
        details: Option<String>,
        supersedes: Option<String>,
        disappear_secs: Option<u32>,
    },
    Messages {
        circle: String,
    },
    Members {
        circle: String,
    },
    Remove {
        circle: String,
        member: String,
    },
    /// Change our display name in a circle.
    Rename {
        circle: String,
        name: String,
    },
    /// Revoke an unused invite by its code.
    RevokeInvite {
        circle: String,
        code: String,
    },
    Verify {
        circle: String,
        member: String,
        confirm: Option<bool>,
    },
    /// The trainer view: a message's envelope as the network carries it.
    Inspect {
        circle: String,
        message: String,
    },
    /// Accept a member's changed key (sending is blocked until then).
    AcknowledgeKey {
        circle: String,
        member: String,
    },
    /// Acknowledge an announcement (the pinned one unless `message` names
    /// one by id prefix): tells the circle, the organisers included, you saw it.
    Ack {
        circle: String,
        message: Option<String>,
    },
    /// Leave the circle; the other members see it. The only organiser is
    /// refused unless `force`.
    Leave {
        circle: String,
        force: Option<bool>,
    },
    /// Set the circle's longest disappearing timer (organisers); 0 clears it.
    SetDisappear {
        circle: String,
        secs: u32,
    },
    Shutdown,
}

/// A duration as people type it: `90`, `30s`, `15m`, `2h`, `7d`, `1w`, in seconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let bad = || format!("not a duration: {text} (try 30m, 2h, 7d)");
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = num.parse().map_err(|_| bad())?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(bad()),
    };
    n.checked_mul(mult).ok_or_else(|| "duration too long".to_owned())
}

pub fn socket_path(profile_dir: &Path) -> PathBuf {
    profile_dir.join(SOCKET_FILE)
}

/// Where a node listens for control requests.
#[derive(Clone, Debug)]
pub enum Endpoint {
    /// `control.sock` in the profile directory (mode 0600).
    File(PathBuf),
    /// An abstract Unix socket (Linux): no file anywhere, for `--ephemeral`.
    /// Its name is derived from the home path; connections from other
    /// users are refused.
    Abstract(String),
}

impl Endpoint {
    pub fn for_profile(home: &Path, ephemeral: bool) -> Endpoint {
        if ephemeral {
            let h = crate::crypto::kdf::hash(b"kolo/v1/ephemeral-socket", &[home.as_os_str().as_encoded_bytes()]);
            Endpoint::Abstract(format!("kolo-ephemeral-{}", crate::identity::hex(&h[..12])))
        } else {
            Endpoint::File(socket_path(home))
        }
    }

    fn std_addr(name: &str) -> std::io::Result<std::os::unix::net::SocketAddr> {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
    }
}

/// One of the socket's types as compact JSON, as the socket carries it
/// (the CLI's `--json` output prints these).
pub fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}
