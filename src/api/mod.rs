//! The local control socket: JSON lines over a Unix socket in the profile
//! directory (mode 0600). Scripts, bots, the CLI subcommands and tests use
//! it; `docs/api.md` is its specification.
//!
//! Owns: the request and response types, the socket server (one task per
//! connection, at most `net::MAX_CONTROL_CONNECTIONS` at once, lines read
//! only up to their limit, requests forwarded to the node over a bounded
//! channel), and a small blocking client for the CLI.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
#[cfg(feature = "app")]
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
#[cfg(feature = "app")]
use tokio::net::UnixListener;
#[cfg(feature = "app")]
use tokio::sync::{mpsc, oneshot, watch};

pub const SOCKET_FILE: &str = "control.sock";
/// The longest request line the server reads.
const MAX_LINE: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("kolo is not running for the profile in {0} (start it with `kolo daemon`)")]
    NotRunning(PathBuf),
    #[error("control socket error: {0}")]
    Io(#[from] std::io::Error),
    #[error("malformed reply from kolo: {0}")]
    Protocol(String),
    #[error("{0}")]
    Refused(String),
}

/// One request. `circle` and `member` accept a name or an id prefix.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
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

#[derive(Debug, Serialize, Deserialize)]
pub struct RequestLine {
    #[serde(default)]
    pub id: u64,
    #[serde(flatten)]
    pub request: Request,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ResponseLine {
    pub id: u64,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
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

/// A request on its way to the node, with where to send the answer.
#[cfg(feature = "app")]
pub type Pending = (Request, oneshot::Sender<Result<Value, String>>);

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

/// Bind the control socket. A file socket replaces a stale one (callers
/// hold the profile lock) and gets mode 0600; an abstract one fails if a
/// node already holds the name.
#[cfg(feature = "app")]
pub fn bind(endpoint: &Endpoint) -> std::io::Result<UnixListener> {
    match endpoint {
        Endpoint::File(path) => {
            if path.exists() {
                std::fs::remove_file(path)?;
            }
            let listener = UnixListener::bind(path)?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
            Ok(listener)
        }
        Endpoint::Abstract(name) => {
            let listener = std::os::unix::net::UnixListener::bind_addr(&Endpoint::std_addr(name)?)?;
            listener.set_nonblocking(true)?;
            UnixListener::from_std(listener)
        }
    }
}

/// Our own user id (the owner of `/proc/self`).
#[cfg(feature = "app")]
fn own_uid() -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

/// How long, after the node stops, answers already given may take to reach
/// their clients (the `stop` request's own answer among them).
#[cfg(feature = "app")]
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(2);

/// Accept connections and forward their requests to the node. Only the
/// user running the node may talk to it, over at most
/// `MAX_CONTROL_CONNECTIONS` connections at once (more are closed at once);
/// a failed accept (out of descriptors) is waited out, never fatal.
/// Returns when `closing` fires, after the open connections have finished
/// writing (bounded by `DRAIN_TIME`).
#[cfg(feature = "app")]
pub async fn serve(listener: UnixListener, node: mpsc::Sender<Pending>, mut closing: watch::Receiver<bool>) {
    let me = own_uid();
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // EMFILE and the like: the condition passes when
                        // connections close; retrying at once would spin.
                        tracing::warn!("control socket: accept failed: {e}");
                        tokio::time::sleep(ACCEPT_RETRY).await;
                        continue;
                    }
                };
                let peer = stream.peer_cred().ok().map(|c| c.uid());
                if me.is_none() || peer != me {
                    continue; // Dropping the stream closes it.
                }
                if connections.len() >= crate::net::MAX_CONTROL_CONNECTIONS {
                    tracing::warn!("control socket: too many connections; one refused");
                    continue;
                }
                connections.spawn(connection(stream, node.clone()));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = closing.changed() => break,
        }
    }
    drop(node);
    let drained = async { while connections.join_next().await.is_some() {} };
    let _ = tokio::time::timeout(DRAIN_TIME, drained).await;
}

/// How long to wait after a failed accept.
#[cfg(feature = "app")]
const ACCEPT_RETRY: std::time::Duration = std::time::Duration::from_millis(100);

/// Read one line of at most `MAX_LINE` bytes (without its newline) into
/// `line`. `Ok(false)` at the end of the stream; an error as soon as more
/// than `MAX_LINE` bytes arrived without a newline (nothing more is read).
#[cfg(feature = "app")]
async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(reader: &mut R, line: &mut Vec<u8>) -> Result<bool, String> {
    use tokio::io::AsyncReadExt;
    line.clear();
    let limit = u64::try_from(MAX_LINE).unwrap_or(u64::MAX) + 1;
    let read = (&mut *reader).take(limit).read_until(b'\n', line).await.map_err(|e| e.to_string())?;
    if read == 0 {
        return Ok(false);
    }
    if line.last() == Some(&b'\n') {
        line.pop();
        return Ok(true);
    }
    if line.len() > MAX_LINE {
        return Err("request too long".into());
    }
    Ok(true) // The last line, without a newline.
}

#[cfg(feature = "app")]
async fn connection(stream: tokio::net::UnixStream, node: mpsc::Sender<Pending>) {
    let (read, mut write) = stream.into_split();
    let mut reader = tokio::io::BufReader::new(read);
    let mut line = Vec::new();
    loop {
        let reply = match read_line(&mut reader, &mut line).await {
            Ok(false) => break,
            Ok(true) => match std::str::from_utf8(&line) {
                Ok(text) => answer(text, &node).await,
                Err(_) => ResponseLine { id: 0, ok: false, result: None, error: Some("bad request: not UTF-8".into()) },
            },
            Err(error) => {
                // Answer, then close: the rest of the line is never read.
                let reply = ResponseLine { id: 0, ok: false, result: None, error: Some(error) };
                let mut text = serde_json::to_string(&reply).unwrap_or_default();
                text.push('\n');
                let _ = write.write_all(text.as_bytes()).await;
                break;
            }
        };
        let mut text = serde_json::to_string(&reply).unwrap_or_default();
        text.push('\n');
        if write.write_all(text.as_bytes()).await.is_err() {
            break;
        }
    }
}

/// Decode one request line as the server does (bytes from any local
/// client of the same user; also a fuzz target).
pub fn parse_request_line(line: &str) -> Result<RequestLine, String> {
    if line.len() > MAX_LINE {
        return Err("request too long".into());
    }
    serde_json::from_str(line).map_err(|e| format!("bad request: {e}"))
}

#[cfg(feature = "app")]
async fn answer(line: &str, node: &mpsc::Sender<Pending>) -> ResponseLine {
    let parsed = match parse_request_line(line) {
        Ok(r) => r,
        Err(error) => return ResponseLine { id: 0, ok: false, result: None, error: Some(error) },
    };
    let (tx, rx) = oneshot::channel();
    if node.send((parsed.request, tx)).await.is_err() {
        return ResponseLine { id: parsed.id, ok: false, result: None, error: Some("kolo is shutting down".into()) };
    }
    match rx.await {
        Ok(Ok(result)) => ResponseLine { id: parsed.id, ok: true, result: Some(result), error: None },
        Ok(Err(error)) => ResponseLine { id: parsed.id, ok: false, result: None, error: Some(error) },
        Err(_) => ResponseLine { id: parsed.id, ok: false, result: None, error: Some("no answer".into()) },
    }
}

/// Send one request to the node of the profile in `profile_dir` (blocking).
pub fn call(profile_dir: &Path, request: &Request) -> Result<Value, ApiError> {
    call_endpoint(&Endpoint::for_profile(profile_dir, false), profile_dir, request)
}

/// Send one request to a node at `endpoint` and wait for its answer.
pub fn call_endpoint(endpoint: &Endpoint, profile_dir: &Path, request: &Request) -> Result<Value, ApiError> {
    let connected = match endpoint {
        Endpoint::File(path) => UnixStream::connect(path),
        Endpoint::Abstract(name) => Endpoint::std_addr(name).and_then(|a| UnixStream::connect_addr(&a)),
    };
    let stream = connected.map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
            ApiError::NotRunning(profile_dir.to_owned())
        }
        _ => ApiError::Io(e),
    })?;
    let mut writer = stream.try_clone()?;
    let line = RequestLine { id: 1, request: request.clone() };
    let mut text = serde_json::to_string(&line).map_err(|e| ApiError::Protocol(e.to_string()))?;
    text.push('\n');
    writer.write_all(text.as_bytes())?;
    let mut reply = String::new();
    BufReader::new(stream).read_line(&mut reply)?;
    let reply: ResponseLine = serde_json::from_str(&reply).map_err(|e| ApiError::Protocol(e.to_string()))?;
    if reply.ok {
        Ok(reply.result.unwrap_or(Value::Null))
    } else {
        Err(ApiError::Refused(reply.error.unwrap_or_else(|| "refused".into())))
    }
}
