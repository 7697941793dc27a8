//! The control-socket server: one task per connection, JSON-RPC lines in,
//! answers and (once subscribed) pushed events out.
//!
//! Nothing here can hold the node up. Requests reach it over a bounded
//! channel; events leave it through the node's lossy watcher channel into
//! one broadcast ring ([`Pushes`]), from which each subscribed connection
//! reads at its own pace. A connection that reads too slowly falls behind
//! the ring and is told how many events it missed (`lagged`).

use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::UnixListener;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use super::rpc::{self, Call, ErrorCode, Failure, Id};
use super::types::{Answer, PushEvent, Subscribed};
use super::{Endpoint, MAX_LINE, Request};

/// Where the node sends its answer to one request.
pub type Reply = oneshot::Sender<Result<Answer, Failure>>;

/// A request on its way to the node, with where to send the answer.
pub type Pending = (Request, Reply);

/// The events pushed to subscribers.
pub type Pushes = broadcast::Sender<PushEvent>;

/// Events kept for subscribers that have not read them yet; a subscriber
/// further behind loses the oldest and gets a `lagged` notice.
const PUSH_RING: usize = 256;
/// Lines queued for one connection's socket (answers and events): few,
/// as a line can be large (a 60 kB message, escaped) and a connection that
/// does not read should cost little; the ring above absorbs bursts.
const OUT_QUEUE: usize = 8;

/// A new, empty event ring.
pub fn pushes() -> Pushes {
    broadcast::channel(PUSH_RING).0
}

/// Pass the node's events (from `Node::watch`) on to the subscribers until
/// the node stops. Sending into the ring never waits.
pub async fn forward_events(mut events: mpsc::Receiver<crate::node::NodeEvent>, pushes: Pushes) {
    while let Some(event) = events.recv().await {
        if let Some(push) = super::convert::node_event(&event) {
            // No subscriber at the moment is no error.
            let _ = pushes.send(push);
        }
    }
}

/// Bind the control socket. A file socket replaces a stale one (callers
/// hold the profile lock) and gets mode 0600; an abstract one fails if a
/// node already holds the name.
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
fn own_uid() -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

/// How long, after the node stops, answers already given may take to reach
/// their clients (the `stop` request's own answer among them).
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(2);

/// How long to wait after a failed accept.
const ACCEPT_RETRY: std::time::Duration = std::time::Duration::from_millis(100);

/// Accept connections and forward their requests to the node. Only the
/// user running the node may talk to it, over at most
/// `MAX_CONTROL_CONNECTIONS` connections at once (more are closed at once);
/// a failed accept (out of descriptors) is waited out, never fatal.
/// Returns when `closing` fires, after the open connections have finished
/// writing (bounded by `DRAIN_TIME`).
pub async fn serve(
    listener: UnixListener,
    node: mpsc::Sender<Pending>,
    pushes: Pushes,
    mut closing: watch::Receiver<bool>,
) {
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
                connections.spawn(connection(stream, node.clone(), pushes.clone()));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = closing.changed() => break,
        }
    }
    drop(node);
    let drained = async { while connections.join_next().await.is_some() {} };
    let _ = tokio::time::timeout(DRAIN_TIME, drained).await;
}

enum LineError {
    TooLong,
    Io,
}

/// Read one line of at most `MAX_LINE` bytes (without its newline) into
/// `line`. `Ok(false)` at the end of the stream; an error as soon as more
/// than `MAX_LINE` bytes arrived without a newline (nothing more is read).
async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(reader: &mut R, line: &mut Vec<u8>) -> Result<bool, LineError> {
    use tokio::io::AsyncReadExt;
    line.clear();
    let limit = u64::try_from(MAX_LINE).unwrap_or(u64::MAX) + 1;
    let read = (&mut *reader).take(limit).read_until(b'\n', line).await.map_err(|_| LineError::Io)?;
    if read == 0 {
        return Ok(false);
    }
    if line.last() == Some(&b'\n') {
        line.pop();
        return Ok(true);
    }
    if line.len() > MAX_LINE {
        return Err(LineError::TooLong);
    }
    Ok(true) // The last line, without a newline.
}

/// Write queued lines to the socket until the queue closes or the peer goes.
async fn write_lines(mut write: tokio::net::unix::OwnedWriteHalf, mut lines: mpsc::Receiver<String>) {
    while let Some(mut line) = lines.recv().await {
        line.push('\n');
        if write.write_all(line.as_bytes()).await.is_err() {
            break;
        }
    }
}

/// Events from the ring to one connection, in order; a connection that
/// fell behind hears how many it missed.
async fn push_events(mut events: broadcast::Receiver<PushEvent>, out: mpsc::Sender<String>) {
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            Err(broadcast::error::RecvError::Lagged(missed)) => PushEvent::Lagged { missed },
            Err(broadcast::error::RecvError::Closed) => break,
        };
        if out.send(rpc::notification_line(&event)).await.is_err() {
            break;
        }
    }
}

async fn connection(stream: tokio::net::UnixStream, node: mpsc::Sender<Pending>, pushes: Pushes) {
    let (read, write) = stream.into_split();
    let (out, lines) = mpsc::channel::<String>(OUT_QUEUE);
    // The writer and the subscription end with this task (aborted on drop).
    let mut writer = tokio::task::JoinSet::new();
    writer.spawn(write_lines(write, lines));
    let mut subscription = tokio::task::JoinSet::new();
    let mut subscribed = false;
    let mut reader = tokio::io::BufReader::new(read);
    let mut line = Vec::new();
    loop {
        let (id, outcome) = match read_line(&mut reader, &mut line).await {
            Ok(false) | Err(LineError::Io) => break,
            Err(LineError::TooLong) => {
                // Answer, then close: the rest of the line is never read.
                let f =
                    Failure::new(ErrorCode::TooLong, format!("the request is too long (over {} KiB)", MAX_LINE / 1024));
                let _ = out.send(rpc::response_line::<Answer>(&Id::Null, Err(&f))).await;
                break;
            }
            Ok(true) => match std::str::from_utf8(&line).map(rpc::parse_call) {
                Err(_) => (Some(Id::Null), Err(Failure::new(ErrorCode::ParseError, "parse error: not UTF-8"))),
                Ok(Err((id, failure))) => (Some(id), Err(failure)),
                Ok(Ok(Call { id, request: Request::Subscribe })) => {
                    if !subscribed {
                        // Events from this moment on, sent after this answer.
                        subscribed = true;
                        let events = pushes.subscribe();
                        if let Some(id) = &id {
                            let answer = Answer::Subscribed(Subscribed { subscribed: true });
                            if out.send(rpc::response_line(id, Ok(&answer))).await.is_err() {
                                break;
                            }
                        }
                        subscription.spawn(push_events(events, out.clone()));
                        continue;
                    }
                    (id, Ok(Answer::Subscribed(Subscribed { subscribed: true })))
                }
                Ok(Ok(Call { id, request: Request::Hello { api_version } })) => (id, rpc::hello_answer(api_version)),
                Ok(Ok(Call { id, request })) => (id, ask(&node, request).await),
            },
        };
        // A notification (no id) is carried out but not answered.
        if let Some(id) = id
            && out.send(rpc::response_line(&id, outcome.as_ref())).await.is_err()
        {
            break;
        }
    }
    // The subscription ends now; the writer sends what is queued.
    subscription.abort_all();
    while subscription.join_next().await.is_some() {}
    drop(out);
    while writer.join_next().await.is_some() {}
}

async fn ask(node: &mpsc::Sender<Pending>, request: Request) -> Result<Answer, Failure> {
    let (tx, rx) = oneshot::channel();
    if node.send((request, tx)).await.is_err() {
        return Err(Failure::unavailable("kolo is shutting down"));
    }
    rx.await.unwrap_or_else(|_| Err(Failure::unavailable("kolo stopped before it answered")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::api::types::{Sent, Status};
    use serde_json::Value;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    /// A node that answers `status` and `send`, and refuses the rest.
    fn fake_node() -> mpsc::Sender<Pending> {
        let (tx, mut rx) = mpsc::channel::<Pending>(8);
        tokio::spawn(async move {
            while let Some((request, reply)) = rx.recv().await {
                let answer = match request {
                    Request::Status => Ok(Answer::Status(Status {
                        name: "Ana".into(),
                        fingerprint: "abcd".into(),
                        safety_number: "1".into(),
                        circles: Vec::new(),
                    })),
                    Request::Send { .. } => Ok(Answer::Sent(Sent { id: Some("ab".into()), queued: None })),
                    _ => Err(Failure::not_found("no circle called or starting with \"x\"")),
                };
                let _ = reply.send(answer);
            }
        });
        tx
    }

    struct Conn {
        lines: tokio::io::Lines<BufReader<tokio::net::unix::OwnedReadHalf>>,
        write: tokio::net::unix::OwnedWriteHalf,
    }

    impl Conn {
        fn open(pushes: &Pushes) -> Conn {
            let (ours, theirs) = tokio::net::UnixStream::pair().unwrap();
            tokio::spawn(connection(theirs, fake_node(), pushes.clone()));
            let (read, write) = ours.into_split();
            Conn { lines: BufReader::new(read).lines(), write }
        }
        async fn send(&mut self, line: &str) {
            self.write.write_all(format!("{line}\n").as_bytes()).await.unwrap();
        }
        async fn next(&mut self) -> Option<Value> {
            let line = tokio::time::timeout(std::time::Duration::from_secs(10), self.lines.next_line()).await;
            line.unwrap().unwrap().map(|l| serde_json::from_str(&l).unwrap())
        }
    }

    #[tokio::test]
    async fn every_answer_echoes_its_id_and_bad_lines_get_null() {
        let pushes = pushes();
        let mut c = Conn::open(&pushes);
        c.send("{\"id\": 7, \"cmd\": ").await;
        let v = c.next().await.unwrap();
        // The old server answered `"id": 0` here.
        assert!(v.get("id").is_some_and(Value::is_null), "{v}");
        assert_eq!(v["error"]["code"], -32700);
        c.send(r#"{"jsonrpc":"2.0","id":"x-1","method":"members","params":{"circle":"x"}}"#).await;
        let v = c.next().await.unwrap();
        assert_eq!((v["id"].as_str(), v["error"]["code"].as_i64()), (Some("x-1"), Some(-32001)), "{v}");
        assert!(v["error"]["message"].as_str().unwrap().starts_with("no circle called"));
        // A notification is carried out but not answered: the next answer is the status's.
        c.send(r#"{"jsonrpc":"2.0","method":"send","params":{"circle":"x","text":"hi"}}"#).await;
        c.send(r#"{"jsonrpc":"2.0","id":12,"method":"status"}"#).await;
        let v = c.next().await.unwrap();
        assert_eq!((v["id"].as_i64(), v["result"]["name"].as_str()), (Some(12), Some("Ana")), "{v}");
        c.send(r#"{"jsonrpc":"2.0","id":13,"method":"hello","params":{"api_version":1}}"#).await;
        let v = c.next().await.unwrap();
        assert_eq!(v["result"]["api_version"], 1);
        // Invalid UTF-8 is a parse error too.
        c.write.write_all(b"\xff\xfe\n").await.unwrap();
        let v = c.next().await.unwrap();
        assert!(v["id"].is_null() && v["error"]["code"] == -32700, "{v}");
    }

    #[tokio::test]
    async fn a_line_too_long_is_answered_and_the_connection_closed() {
        let pushes = pushes();
        let mut c = Conn::open(&pushes);
        let long = vec![b'a'; MAX_LINE + 10];
        // The server stops reading at the limit; the rest may not be taken.
        let _ = c.write.write_all(&long).await;
        let v = c.next().await.unwrap();
        assert!(v["id"].is_null() && v["error"]["code"] == -32006, "{v}");
        assert!(c.next().await.is_none(), "closed after the answer");
    }

    #[tokio::test]
    async fn subscribers_get_events_after_the_answer_and_a_slow_one_hears_what_it_missed() {
        let pushes = pushes();
        let mut quiet = Conn::open(&pushes);
        let mut c = Conn::open(&pushes);
        c.send(r#"{"jsonrpc":"2.0","id":1,"method":"subscribe"}"#).await;
        let v = c.next().await.unwrap();
        assert_eq!((v["id"].as_i64(), v["result"]["subscribed"].as_bool()), (Some(1), Some(true)));
        pushes.send(PushEvent::Links { circle: "cc".into() }).unwrap();
        let v = c.next().await.unwrap();
        assert_eq!((v["method"].as_str(), v["params"]["type"].as_str()), (Some("event"), Some("links")), "{v}");
        assert!(v.get("id").is_none());

        // Far more events than the ring and the socket's queue hold, while
        // the client reads nothing: sending never waits, and the client
        // later learns how many it lost.
        let total = 20 * PUSH_RING;
        for i in 0..total {
            let _ = pushes.send(PushEvent::Error { reason: format!("event {i} {}", "x".repeat(4000)) });
        }
        let (mut seen, mut missed) = (0u64, 0u64);
        while seen + missed < total as u64 {
            let v = c.next().await.unwrap();
            match v["params"]["type"].as_str() {
                Some("error") => seen += 1,
                Some("lagged") => missed += v["params"]["missed"].as_u64().unwrap(),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(missed > 0, "a slow subscriber is told it missed events");
        assert_eq!(seen + missed, total as u64);
        // The connection still answers, and one that never subscribed got no event.
        c.send(r#"{"jsonrpc":"2.0","id":2,"method":"status"}"#).await;
        assert_eq!(c.next().await.unwrap()["id"], 2);
        quiet.send(r#"{"jsonrpc":"2.0","id":3,"method":"status"}"#).await;
        assert_eq!(quiet.next().await.unwrap()["id"], 3);
    }
}
