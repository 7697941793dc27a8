//! The blocking control-socket client: the CLI subcommands, the echo bot
//! and tests use it. [`Client`] returns the typed answers of [`super::types`];
//! [`call`] returns the raw JSON result, for scripts' tests that look at
//! the wire itself.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::rpc::{self, ErrorCode, Id, Incoming};
use super::types::*;
use super::{Endpoint, Request};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("kolo is not running for the profile in {0} (start it with `kolo daemon`)")]
    NotRunning(PathBuf),
    #[error("control socket error: {0}")]
    Io(#[from] std::io::Error),
    #[error("malformed reply from kolo: {0}")]
    Protocol(String),
    #[error("kolo closed the connection")]
    Closed,
    /// The node answered with an error object.
    #[error("{message}")]
    Rpc { code: i64, message: String },
    #[error(
        "kolo's control socket speaks API version {node}, this client version {}: use the same kolo for both",
        API_VERSION
    )]
    VersionMismatch { node: u32 },
}

impl ApiError {
    /// The error's code, when the node answered with a known one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ApiError::Rpc { code, .. } => ErrorCode::from_code(*code),
            _ => None,
        }
    }
}

/// Events a client keeps while it waits for an answer; beyond this the
/// oldest are dropped and a `lagged` event says how many.
const MAX_KEPT_EVENTS: usize = 1024;

/// One connection to a node.
pub struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    next_id: u64,
    /// Pushed events read while waiting for an answer.
    events: VecDeque<PushEvent>,
    dropped: u64,
    /// A line read in part when a read timed out.
    partial: Vec<u8>,
}

fn connect_stream(endpoint: &Endpoint, profile_dir: &Path) -> Result<UnixStream, ApiError> {
    let connected = match endpoint {
        Endpoint::File(path) => UnixStream::connect(path),
        Endpoint::Abstract(name) => Endpoint::std_addr(name).and_then(|a| UnixStream::connect_addr(&a)),
    };
    connected.map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
            ApiError::NotRunning(profile_dir.to_owned())
        }
        _ => ApiError::Io(e),
    })
}

impl Client {
    /// Connect without the handshake.
    pub fn connect(endpoint: &Endpoint, profile_dir: &Path) -> Result<Client, ApiError> {
        Client::over(connect_stream(endpoint, profile_dir)?)
    }

    /// A client on a connected stream.
    fn over(stream: UnixStream) -> Result<Client, ApiError> {
        let writer = stream.try_clone()?;
        Ok(Client {
            reader: BufReader::new(stream),
            writer,
            next_id: 1,
            events: VecDeque::new(),
            dropped: 0,
            partial: Vec::new(),
        })
    }

    /// Connect and check that the node speaks our API version.
    pub fn open(endpoint: &Endpoint, profile_dir: &Path) -> Result<Client, ApiError> {
        let mut client = Client::connect(endpoint, profile_dir)?;
        client.hello()?;
        Ok(client)
    }

    /// The version handshake; an error if the node speaks another version.
    pub fn hello(&mut self) -> Result<Hello, ApiError> {
        match self.call_as::<Hello>(&Request::Hello { api_version: Some(API_VERSION) }) {
            Ok(h) if h.api_version == API_VERSION => Ok(h),
            Ok(h) => Err(ApiError::VersionMismatch { node: h.api_version }),
            Err(e) if e.code() == Some(ErrorCode::UnsupportedVersion) => {
                Err(ApiError::VersionMismatch { node: node_version(&e).unwrap_or(0) })
            }
            Err(e) => Err(e),
        }
    }

    /// Send one request and wait for its answer: the raw JSON result.
    pub fn call_raw(&mut self, request: &Request) -> Result<Value, ApiError> {
        let id = Id::from(self.next_id);
        self.next_id += 1;
        let mut text = rpc::request_line(&id, request).map_err(|e| ApiError::Protocol(e.to_string()))?;
        text.push('\n');
        self.writer.write_all(text.as_bytes())?;
        self.reader.get_ref().set_read_timeout(None)?;
        loop {
            let incoming = self.read_incoming()?;
            if incoming.method.is_some() {
                self.keep_event(incoming.params);
                continue;
            }
            match incoming.id {
                Some(got) if got == id || got == Id::Null => {}
                _ => continue, // An answer to someone else's request: not ours.
            }
            if let Some(e) = incoming.error {
                return Err(ApiError::Rpc { code: e.code, message: e.message });
            }
            return incoming.result.ok_or_else(|| ApiError::Protocol("an answer with neither result nor error".into()));
        }
    }

    /// Send one request and read its answer as `T`.
    pub fn call_as<T: DeserializeOwned>(&mut self, request: &Request) -> Result<T, ApiError> {
        let value = self.call_raw(request)?;
        serde_json::from_value(value).map_err(|e| ApiError::Protocol(e.to_string()))
    }

    /// Push events to this connection from now on; read them with [`next_event`](Self::next_event).
    pub fn subscribe(&mut self) -> Result<Subscribed, ApiError> {
        self.call_as(&Request::Subscribe)
    }

    /// The next pushed event, waiting at most `timeout` (`None`: until one
    /// comes). `Ok(None)` when the time passed without one.
    pub fn next_event(&mut self, timeout: Option<Duration>) -> Result<Option<PushEvent>, ApiError> {
        if self.dropped > 0 {
            let missed = std::mem::take(&mut self.dropped);
            return Ok(Some(PushEvent::Lagged { missed }));
        }
        if let Some(e) = self.events.pop_front() {
            return Ok(Some(e));
        }
        // A zero timeout would mean "block forever" to the socket.
        let timeout = timeout.map(|t| t.max(Duration::from_millis(1)));
        self.reader.get_ref().set_read_timeout(timeout)?;
        loop {
            let incoming = match self.read_incoming() {
                Ok(i) => i,
                Err(ApiError::Io(e))
                    if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) =>
                {
                    return Ok(None);
                }
                Err(e) => return Err(e),
            };
            if incoming.method.is_some() {
                self.keep_event(incoming.params);
                if let Some(e) = self.events.pop_front() {
                    return Ok(Some(e));
                }
            }
        }
    }

    fn keep_event(&mut self, params: Option<Value>) {
        let Some(event) = params.and_then(|p| serde_json::from_value::<PushEvent>(p).ok()) else {
            return; // An event of a newer kolo: skipped.
        };
        if self.events.len() >= MAX_KEPT_EVENTS {
            self.events.pop_front();
            self.dropped += 1;
        }
        self.events.push_back(event);
    }

    /// Read one line (a line cut by a read timeout is completed on the
    /// next call) and decode its envelope.
    fn read_incoming(&mut self) -> Result<Incoming, ApiError> {
        let read = self.reader.read_until(b'\n', &mut self.partial)?;
        // At the end of the stream a last line without a newline is still decoded.
        if read == 0 && self.partial.is_empty() {
            return Err(ApiError::Closed);
        }
        let line = std::mem::take(&mut self.partial);
        let incoming: Incoming = serde_json::from_slice(&line).map_err(|e| ApiError::Protocol(e.to_string()))?;
        if incoming.jsonrpc.as_deref() != Some(rpc::JSONRPC) {
            return Err(ApiError::Protocol("not a JSON-RPC 2.0 answer".into()));
        }
        Ok(incoming)
    }

    // ---- typed requests ----------------------------------------------------

    pub fn status(&mut self) -> Result<Status, ApiError> {
        self.call_as(&Request::Status)
    }
    pub fn circles(&mut self) -> Result<Vec<CircleInfo>, ApiError> {
        self.call_as(&Request::Circles)
    }
    pub fn messages(&mut self, circle: &str) -> Result<Vec<Message>, ApiError> {
        self.call_as(&Request::Messages { circle: circle.to_owned() })
    }
    pub fn members(&mut self, circle: &str) -> Result<Vec<Member>, ApiError> {
        self.call_as(&Request::Members { circle: circle.to_owned() })
    }
    /// Send a text (`disappear_secs`: its timer).
    pub fn send_text(&mut self, circle: &str, text: &str, disappear_secs: Option<u32>) -> Result<Sent, ApiError> {
        self.call_as(&Request::Send { circle: circle.to_owned(), text: text.to_owned(), disappear_secs })
    }
    pub fn create_circle(&mut self, name: &str, disappear_secs: Option<u32>) -> Result<CircleCreated, ApiError> {
        self.call_as(&Request::CircleCreate { name: name.to_owned(), disappear_secs })
    }
    pub fn invite(
        &mut self,
        circle: &str,
        expires_secs: Option<u64>,
        organiser: bool,
    ) -> Result<InviteCreated, ApiError> {
        self.call_as(&Request::Invite { circle: circle.to_owned(), expires_secs, organiser: Some(organiser) })
    }
    /// Join with an invite code; returns once a member admitted us.
    pub fn join(&mut self, code: &str) -> Result<Joined, ApiError> {
        self.call_as(&Request::Join { code: code.to_owned() })
    }
    pub fn remove(&mut self, circle: &str, member: &str) -> Result<Removed, ApiError> {
        self.call_as(&Request::Remove { circle: circle.to_owned(), member: member.to_owned() })
    }
    pub fn leave(&mut self, circle: &str, force: bool) -> Result<Left, ApiError> {
        self.call_as(&Request::Leave { circle: circle.to_owned(), force: Some(force) })
    }
    /// Acknowledge an announcement (`None`: the pinned one).
    pub fn ack(&mut self, circle: &str, message: Option<&str>) -> Result<Acknowledged, ApiError> {
        self.call_as(&Request::Ack { circle: circle.to_owned(), message: message.map(str::to_owned) })
    }
    pub fn verify(&mut self, circle: &str, member: &str, confirm: bool) -> Result<Verification, ApiError> {
        self.call_as(&Request::Verify { circle: circle.to_owned(), member: member.to_owned(), confirm: Some(confirm) })
    }
    pub fn shutdown(&mut self) -> Result<Stopping, ApiError> {
        self.call_as(&Request::Shutdown)
    }
}

/// The version a node named in its refusal ("… version N, …").
fn node_version(e: &ApiError) -> Option<u32> {
    let ApiError::Rpc { message, .. } = e else { return None };
    message.split("version ").nth(1)?.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// Send one request to the node of the profile in `profile_dir` (blocking)
/// and return the raw result.
pub fn call(profile_dir: &Path, request: &Request) -> Result<Value, ApiError> {
    call_endpoint(&Endpoint::for_profile(profile_dir, false), profile_dir, request)
}

/// Send one request to a node at `endpoint` and wait for its raw result.
pub fn call_endpoint(endpoint: &Endpoint, profile_dir: &Path, request: &Request) -> Result<Value, ApiError> {
    Client::connect(endpoint, profile_dir)?.call_raw(request)
}

/// A running node seen through its control socket as the terminal client
/// sees a node in its own process: requests in over a bounded channel,
/// pushed events out (`kolo chat` beside a running `kolo daemon`).
#[cfg(feature = "app")]
pub struct Attached {
    pub requests: tokio::sync::mpsc::Sender<super::Pending>,
    pub events: tokio::sync::mpsc::Receiver<PushEvent>,
}

/// How long the event reader waits for an event before it looks whether
/// the terminal client is gone.
#[cfg(feature = "app")]
const ATTACH_POLL: Duration = Duration::from_millis(500);

/// Attach to the node serving `endpoint`: two connections, one for
/// requests (answered in order, one at a time) and one subscribed to
/// events, each served by a thread of its own. When the node stops, the
/// event channel closes; when the client drops its ends, the threads end.
#[cfg(feature = "app")]
pub fn attach(endpoint: &Endpoint, profile_dir: &Path) -> Result<Attached, ApiError> {
    use tokio::sync::mpsc;
    let mut calls = Client::open(endpoint, profile_dir)?;
    let mut watch = Client::open(endpoint, profile_dir)?;
    watch.subscribe()?;
    let (requests, mut pending) = mpsc::channel::<super::Pending>(64);
    let (events_tx, events) = mpsc::channel::<PushEvent>(256);
    std::thread::Builder::new().name("kolo-attach-calls".into()).spawn(move || {
        while let Some((request, reply)) = pending.blocking_recv() {
            let answer = calls.call_raw(&request).map_err(|e| failure_of(&e)).and_then(|value| {
                Answer::from_result(&request, value)
                    .map_err(|e| rpc::Failure::new(ErrorCode::Internal, format!("an answer kolo cannot read: {e}")))
            });
            let _ = reply.send(answer);
        }
    })?;
    std::thread::Builder::new().name("kolo-attach-events".into()).spawn(move || {
        while !events_tx.is_closed() {
            match watch.next_event(Some(ATTACH_POLL)) {
                Ok(Some(event)) => {
                    if events_tx.blocking_send(event).is_err() {
                        break;
                    }
                }
                Ok(None) => {}
                Err(_) => break, // The node went away: closing the channel says so.
            }
        }
    })?;
    Ok(Attached { requests, events })
}

/// A client-side error as the answer the terminal client shows.
#[cfg(feature = "app")]
fn failure_of(e: &ApiError) -> rpc::Failure {
    match e {
        ApiError::Rpc { code, message } => {
            rpc::Failure::new(ErrorCode::from_code(*code).unwrap_or(ErrorCode::Internal), message.clone())
        }
        other => rpc::Failure::unavailable(other.to_string()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use std::io::Read;

    /// A client and the server's end of its connection.
    fn pair() -> (Client, UnixStream) {
        let (ours, theirs) = UnixStream::pair().unwrap();
        (Client::over(ours).unwrap(), theirs)
    }

    fn read_request(server: &mut UnixStream) -> Value {
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while server.read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {
            line.push(byte[0]);
        }
        serde_json::from_slice(&line).unwrap()
    }

    #[test]
    fn events_before_an_answer_are_kept_and_the_answer_is_typed() {
        let (mut client, mut server) = pair();
        let t = std::thread::spawn(move || {
            let request = read_request(&mut server);
            assert_eq!((request["method"].as_str(), request["jsonrpc"].as_str()), (Some("status"), Some("2.0")));
            let id = request["id"].clone();
            let event = rpc::notification_line(&PushEvent::Links { circle: "cc".into() });
            let answer = format!(
                r#"{{"jsonrpc":"2.0","id":{id},"result":{{"name":"Ana","fingerprint":"f","safety_number":"1","circles":[]}}}}"#
            );
            server.write_all(format!("{event}\n{answer}\n").as_bytes()).unwrap();
            // Then an event cut in two by the client's read timeout.
            let event = rpc::notification_line(&PushEvent::CatchUp { circle: "dd".into() });
            let (a, b) = event.split_at(10);
            server.write_all(a.as_bytes()).unwrap();
            std::thread::sleep(Duration::from_millis(300));
            server.write_all(format!("{b}\n").as_bytes()).unwrap();
            server
        });
        assert_eq!(client.status().unwrap().name, "Ana");
        assert_eq!(client.next_event(Some(Duration::ZERO)).unwrap(), Some(PushEvent::Links { circle: "cc".into() }));
        // Nothing whole yet: the wait ends without an event, and the half
        // line read meanwhile is completed by the next read.
        let mut got = None;
        for _ in 0..100 {
            got = client.next_event(Some(Duration::from_millis(50))).unwrap();
            if got.is_some() {
                break;
            }
        }
        assert_eq!(got, Some(PushEvent::CatchUp { circle: "dd".into() }));
        drop(t.join().unwrap());
        assert!(matches!(client.next_event(Some(Duration::from_secs(5))), Err(ApiError::Closed)));
    }

    #[test]
    fn errors_come_back_with_their_code_and_another_version_is_refused() {
        let (mut client, mut server) = pair();
        let t = std::thread::spawn(move || {
            let request = read_request(&mut server);
            let id = request["id"].clone();
            let refusal = format!(r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":-32001,"message":"no circle x"}}}}"#);
            server.write_all(format!("{refusal}\n").as_bytes()).unwrap();
            let request = read_request(&mut server);
            assert_eq!(request["params"]["api_version"], API_VERSION);
            let id = request["id"].clone();
            let hello =
                format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{"api_version":99,"kolo_version":"9.0.0"}}}}"#);
            server.write_all(format!("{hello}\n").as_bytes()).unwrap();
        });
        let e = client.messages("x").unwrap_err();
        assert_eq!((e.code(), e.to_string()), (Some(ErrorCode::NotFound), "no circle x".to_owned()));
        assert!(matches!(client.hello(), Err(ApiError::VersionMismatch { node: 99 })));
        t.join().unwrap();
    }
}
