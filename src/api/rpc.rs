//! JSON-RPC 2.0 framing of the control socket: request and response
//! envelopes, error objects with stable codes, and the one function that
//! turns a line of outside bytes into a typed [`Call`].

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{MAX_LINE, Request};

/// The `jsonrpc` member of every envelope.
pub const JSONRPC: &str = "2.0";

/// Every method the node answers, as named on the wire.
pub const METHODS: &[&str] = &[
    "hello",
    "subscribe",
    "status",
    "circle_create",
    "circles",
    "invite",
    "join",
    "send",
    "announce",
    "messages",
    "members",
    "remove",
    "rename",
    "revoke_invite",
    "verify",
    "inspect",
    "acknowledge_key",
    "ack",
    "leave",
    "set_disappear",
    "shutdown",
];

/// A request id, echoed in its answer: a number, a string, or null (the
/// answer to a line whose id could not be read).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Id {
    Number(serde_json::Number),
    String(String),
    Null,
}

impl From<u64> for Id {
    fn from(n: u64) -> Self {
        Id::Number(n.into())
    }
}

/// Why a request failed. The codes are stable (`docs/api.md`): the
/// JSON-RPC ones for bad requests, kolo's own from -32001 down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// The line is not JSON.
    ParseError,
    /// JSON, but not a JSON-RPC 2.0 request object (or a batch).
    InvalidRequest,
    MethodNotFound,
    /// The method's parameters are missing or of the wrong type.
    InvalidParams,
    /// A fault in kolo itself (an answer that does not fit its method).
    Internal,
    /// No circle, member or message matches the name or id given.
    NotFound,
    /// The name or prefix matches several.
    Ambiguous,
    /// The node refused the command (the message says why: not an
    /// organiser, a key change to accept, a text too long, …).
    Refused,
    /// The node cannot answer now (stopping, busy, its network not
    /// listening yet).
    Unavailable,
    /// Waited too long (a join nobody admitted).
    Timeout,
    /// The request line is longer than 256 KiB; the connection is closed.
    TooLong,
    /// `hello` named an API version this node does not speak.
    UnsupportedVersion,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 12] = [
        ErrorCode::ParseError,
        ErrorCode::InvalidRequest,
        ErrorCode::MethodNotFound,
        ErrorCode::InvalidParams,
        ErrorCode::Internal,
        ErrorCode::NotFound,
        ErrorCode::Ambiguous,
        ErrorCode::Refused,
        ErrorCode::Unavailable,
        ErrorCode::Timeout,
        ErrorCode::TooLong,
        ErrorCode::UnsupportedVersion,
    ];

    pub fn code(self) -> i64 {
        match self {
            ErrorCode::ParseError => -32700,
            ErrorCode::InvalidRequest => -32600,
            ErrorCode::MethodNotFound => -32601,
            ErrorCode::InvalidParams => -32602,
            ErrorCode::Internal => -32603,
            ErrorCode::NotFound => -32001,
            ErrorCode::Ambiguous => -32002,
            ErrorCode::Refused => -32003,
            ErrorCode::Unavailable => -32004,
            ErrorCode::Timeout => -32005,
            ErrorCode::TooLong => -32006,
            ErrorCode::UnsupportedVersion => -32007,
        }
    }

    pub fn from_code(code: i64) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.code() == code)
    }
}

/// A failed request: its code and a one-line reason meant for people.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub code: ErrorCode,
    pub message: String,
}

impl Failure {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Failure { code, message: message.into() }
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Failure::new(ErrorCode::NotFound, message)
    }
    pub fn refused(message: impl Into<String>) -> Self {
        Failure::new(ErrorCode::Refused, message)
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Failure::new(ErrorCode::Unavailable, message)
    }
}

/// A JSON-RPC error object as it travels.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorObject {
    pub code: i64,
    pub message: String,
}

impl From<&Failure> for ErrorObject {
    fn from(f: &Failure) -> Self {
        ErrorObject { code: f.code.code(), message: f.message.clone() }
    }
}

/// One request read from a line. `id: None` is a notification: it is
/// carried out and not answered (JSON-RPC 2.0 §4.1).
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    pub id: Option<Id>,
    pub request: Request,
}

/// A request as a client writes it.
#[derive(Serialize)]
pub struct CallOut<'a> {
    pub jsonrpc: &'static str,
    pub id: &'a Id,
    #[serde(flatten)]
    pub request: &'a Request,
}

/// An answer as the server writes it: `result` or `error`, never both.
#[derive(Serialize)]
pub struct ResponseOut<'a, T: Serialize> {
    pub jsonrpc: &'static str,
    pub id: &'a Id,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<&'a T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorObject>,
}

/// A notification the server pushes (`method: "event"`).
#[derive(Serialize, Deserialize)]
pub struct NotificationOut<T> {
    pub jsonrpc: String,
    pub method: String,
    pub params: T,
}

/// Any line a client reads: an answer (with `id`) or a notification
/// (with `method`).
#[derive(Deserialize)]
pub struct Incoming {
    #[serde(default)]
    pub jsonrpc: Option<String>,
    /// Present (possibly null) in answers, absent in notifications.
    #[serde(default, deserialize_with = "some_id")]
    pub id: Option<Id>,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub params: Option<Value>,
    #[serde(default)]
    pub result: Option<Value>,
    #[serde(default)]
    pub error: Option<ErrorObject>,
}

/// A present `id` (null included) is `Some`.
fn some_id<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Id>, D::Error> {
    Id::deserialize(d).map(Some)
}

/// The answer line for `id`: the result, or the failure as an error object.
pub fn response_line<T: Serialize>(id: &Id, outcome: Result<&T, &Failure>) -> String {
    let out = match outcome {
        Ok(result) => ResponseOut { jsonrpc: JSONRPC, id, result: Some(result), error: None },
        Err(f) => ResponseOut::<T> { jsonrpc: JSONRPC, id, result: None, error: Some(f.into()) },
    };
    match serde_json::to_string(&out) {
        Ok(text) => text,
        // Only a result that cannot be JSON (it never happens with our types).
        Err(_) => {
            let f = Failure::new(ErrorCode::Internal, "the answer could not be encoded");
            let out = ResponseOut::<()> { jsonrpc: JSONRPC, id, result: None, error: Some((&f).into()) };
            serde_json::to_string(&out).unwrap_or_default()
        }
    }
}

/// Decode one request line as the server does (bytes from any local
/// client of the same user; also a fuzz target). On failure, the id to
/// answer with (null when the line has none that can be read) and why.
pub fn parse_call(line: &str) -> Result<Call, (Id, Failure)> {
    let bad = |code, message: String| (Id::Null, Failure::new(code, message));
    if line.len() > MAX_LINE {
        return Err(bad(ErrorCode::TooLong, format!("the request is too long (over {} KiB)", MAX_LINE / 1024)));
    }
    let value: Value = serde_json::from_str(line).map_err(|e| {
        bad(
            ErrorCode::ParseError,
            format!("parse error: not valid JSON (at column {}); send one JSON object per line", e.column()),
        )
    })?;
    let mut object = match value {
        Value::Object(map) => map,
        Value::Array(_) => {
            return Err(bad(
                ErrorCode::InvalidRequest,
                "batch requests are not supported; send one request per line".into(),
            ));
        }
        _ => return Err(bad(ErrorCode::InvalidRequest, "a request must be a JSON object".into())),
    };
    let id = match object.remove("id") {
        None => None,
        Some(Value::Null) => Some(Id::Null),
        Some(Value::Number(n)) => Some(Id::Number(n)),
        Some(Value::String(s)) => Some(Id::String(s)),
        Some(_) => return Err(bad(ErrorCode::InvalidRequest, "\"id\" must be a number, a string or null".into())),
    };
    let answer_id = id.clone().unwrap_or(Id::Null);
    let fail = |code, message: String| (answer_id.clone(), Failure::new(code, message));
    if object.get("jsonrpc").and_then(Value::as_str) != Some(JSONRPC) {
        return Err(fail(ErrorCode::InvalidRequest, "\"jsonrpc\" must be \"2.0\"".into()));
    }
    let method = match object.remove("method") {
        Some(Value::String(m)) => m,
        _ => return Err(fail(ErrorCode::InvalidRequest, "\"method\" must be a string".into())),
    };
    if !METHODS.contains(&method.as_str()) {
        let shown: String = method.chars().take(40).collect();
        return Err(fail(ErrorCode::MethodNotFound, format!("no method called {shown:?} (docs/api.md lists them)")));
    }
    let params = match object.remove("params") {
        None | Some(Value::Null) => None,
        Some(Value::Object(map)) => Some(map),
        Some(_) => {
            return Err(fail(ErrorCode::InvalidParams, "\"params\" must be an object of named parameters".into()));
        }
    };
    let decode = |params: Option<serde_json::Map<String, Value>>| {
        let mut tagged = serde_json::Map::new();
        tagged.insert("method".into(), Value::String(method.clone()));
        if let Some(p) = params {
            tagged.insert("params".into(), Value::Object(p));
        }
        serde_json::from_value::<Request>(Value::Object(tagged))
    };
    // Methods without parameters take none, an empty object or null;
    // methods whose parameters are all optional take none as well.
    let decoded = match params {
        Some(p) if !p.is_empty() => decode(Some(p)),
        _ => decode(None).or_else(|_| decode(Some(serde_json::Map::new()))),
    };
    match decoded {
        Ok(request) => Ok(Call { id, request }),
        Err(e) => Err(fail(ErrorCode::InvalidParams, format!("invalid params for {method}: {}", plain(&e)))),
    }
}

/// A serde message without its position (the params are one object).
fn plain(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.find(" at line ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

/// The answer to `hello` (the node is not involved): our versions, or a
/// refusal when the client names an API version we do not speak.
pub fn hello_answer(client_version: Option<u32>) -> Result<super::Answer, Failure> {
    let ours = super::Hello::ours();
    match client_version {
        Some(v) if v != ours.api_version => Err(Failure::new(
            ErrorCode::UnsupportedVersion,
            format!("this kolo speaks control API version {}, the client version {v}", ours.api_version),
        )),
        _ => Ok(super::Answer::Hello(ours)),
    }
}

/// A request line as a client writes it (no newline).
pub fn request_line(id: &Id, request: &Request) -> Result<String, serde_json::Error> {
    serde_json::to_string(&CallOut { jsonrpc: JSONRPC, id, request })
}

/// A notification line carrying `event`.
pub fn notification_line<T: Serialize>(event: &T) -> String {
    let out = NotificationOut { jsonrpc: JSONRPC.to_owned(), method: "event".to_owned(), params: event };
    serde_json::to_string(&out).unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::api::types::*;

    fn error_of(line: &str) -> (Id, Failure) {
        parse_call(line).expect_err(line)
    }

    fn answer_json(id: &Id, f: &Failure) -> Value {
        serde_json::from_str(&response_line::<()>(id, Err(f))).unwrap()
    }

    /// Every request, one of each method.
    fn one_of_each() -> Vec<Request> {
        let c = || "riverside".to_owned();
        vec![
            Request::Hello { api_version: Some(API_VERSION) },
            Request::Subscribe,
            Request::Status,
            Request::CircleCreate { name: c(), disappear_secs: Some(60) },
            Request::Circles,
            Request::Invite { circle: c(), expires_secs: None, organiser: Some(true) },
            Request::Join { code: "kolo1-x".into() },
            Request::Send { circle: c(), text: "hi".into(), disappear_secs: None },
            Request::Announce {
                circle: c(),
                title: "t".into(),
                when: None,
                place: Some("square".into()),
                details: None,
                supersedes: None,
                disappear_secs: None,
            },
            Request::Messages { circle: c() },
            Request::Members { circle: c() },
            Request::Remove { circle: c(), member: "bo".into() },
            Request::Rename { circle: c(), name: "Ana".into() },
            Request::RevokeInvite { circle: c(), code: "kolo1-x".into() },
            Request::Verify { circle: c(), member: "bo".into(), confirm: None },
            Request::Inspect { circle: c(), message: "abcd".into() },
            Request::AcknowledgeKey { circle: c(), member: "bo".into() },
            Request::Ack { circle: c(), message: None },
            Request::Leave { circle: c(), force: Some(false) },
            Request::SetDisappear { circle: c(), secs: 0 },
            Request::Shutdown,
        ]
    }

    #[test]
    fn every_request_round_trips_and_every_method_is_listed() {
        let requests = one_of_each();
        assert_eq!(requests.len(), METHODS.len());
        for (i, request) in requests.into_iter().enumerate() {
            let id = Id::from(i as u64);
            let line = request_line(&id, &request).unwrap();
            let v: Value = serde_json::from_str(&line).unwrap();
            assert_eq!(v["jsonrpc"], "2.0");
            assert_eq!(v["method"], METHODS[i], "{line}");
            let call = parse_call(&line).unwrap();
            assert_eq!(call, Call { id: Some(id), request });
        }
    }

    #[test]
    fn malformed_json_is_a_parse_error_with_a_null_id() {
        // The old protocol answered these with `"id": 0`, an id no request had.
        for line in ["{\"id\": 7, \"method\": ", "not json", "{\"jsonrpc\":\"2.0\",\"id\":3,}"] {
            let (id, f) = error_of(line);
            assert_eq!(id, Id::Null, "{line}");
            assert_eq!(f.code, ErrorCode::ParseError);
            assert_eq!(f.code.code(), -32700);
            assert!(f.message.starts_with("parse error: not valid JSON"), "{}", f.message);
            let v = answer_json(&id, &f);
            assert!(v["id"].is_null() && v.get("id").is_some(), "{v}");
            assert_eq!(v["error"]["code"], -32700);
            assert!(v.get("result").is_none());
        }
    }

    #[test]
    fn errors_echo_the_request_id() {
        let cases = [
            (r#"{"jsonrpc":"2.0","id":5,"method":"fly"}"#, ErrorCode::MethodNotFound, Id::from(5)),
            (
                r#"{"jsonrpc":"2.0","id":"a-1","method":"send","params":{"circle":"x"}}"#,
                ErrorCode::InvalidParams,
                Id::String("a-1".into()),
            ),
            (r#"{"jsonrpc":"2.0","id":6,"method":"send","params":["x","hi"]}"#, ErrorCode::InvalidParams, Id::from(6)),
            (r#"{"id":8,"method":"status"}"#, ErrorCode::InvalidRequest, Id::from(8)),
            (r#"{"jsonrpc":"2.0","id":9,"method":7}"#, ErrorCode::InvalidRequest, Id::from(9)),
            (
                r#"{"jsonrpc":"2.0","id":10,"method":"set_disappear","params":{"circle":"x","secs":-1}}"#,
                ErrorCode::InvalidParams,
                Id::from(10),
            ),
        ];
        for (line, code, want) in cases {
            let (id, f) = error_of(line);
            assert_eq!((id.clone(), f.code), (want, code), "{line}: {}", f.message);
            let v = answer_json(&id, &f);
            assert_eq!(v["error"]["code"], code.code());
        }
        let (_, f) = error_of(r#"{"jsonrpc":"2.0","id":5,"method":"send","params":{"circle":"x"}}"#);
        assert_eq!(f.message, "invalid params for send: missing field `text`");
    }

    #[test]
    fn batches_ids_of_the_wrong_type_and_long_lines_are_refused_clearly() {
        let (id, f) = error_of(r#"[{"jsonrpc":"2.0","id":1,"method":"status"}]"#);
        assert_eq!((id, f.code), (Id::Null, ErrorCode::InvalidRequest));
        assert!(f.message.contains("batch"));
        let (id, f) = error_of(r#"{"jsonrpc":"2.0","id":{"x":1},"method":"status"}"#);
        assert_eq!((id, f.code), (Id::Null, ErrorCode::InvalidRequest));
        let long = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"send","params":{{"circle":"x","text":"{}"}}}}"#,
            "a".repeat(MAX_LINE)
        );
        assert_eq!(error_of(&long).1.code, ErrorCode::TooLong);
    }

    #[test]
    fn parameters_may_be_left_out_where_none_are_needed() {
        for line in [
            r#"{"jsonrpc":"2.0","id":1,"method":"status"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"status","params":{}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"status","params":null}"#,
        ] {
            assert_eq!(parse_call(line).unwrap().request, Request::Status, "{line}");
        }
        let hello = parse_call(r#"{"jsonrpc":"2.0","id":1,"method":"hello"}"#).unwrap();
        assert_eq!(hello.request, Request::Hello { api_version: None });
        // No id: a notification, carried out and not answered.
        let note = parse_call(r#"{"jsonrpc":"2.0","method":"shutdown"}"#).unwrap();
        assert_eq!(note, Call { id: None, request: Request::Shutdown });
    }

    #[test]
    fn the_handshake_refuses_another_api_version() {
        assert_eq!(hello_answer(None), Ok(Answer::Hello(Hello::ours())));
        assert_eq!(hello_answer(Some(API_VERSION)), Ok(Answer::Hello(Hello::ours())));
        let f = hello_answer(Some(API_VERSION + 1)).unwrap_err();
        assert_eq!(f.code, ErrorCode::UnsupportedVersion);
    }

    #[test]
    fn error_codes_are_distinct_and_read_back() {
        for c in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_code(c.code()), Some(c));
        }
        let mut codes: Vec<i64> = ErrorCode::ALL.iter().map(|c| c.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), ErrorCode::ALL.len());
    }

    #[test]
    fn answers_and_events_keep_their_wire_shape() {
        let message = Message {
            id: "aa".into(),
            circle: "cc".into(),
            body: Body::Announcement {
                title: "Assembly".into(),
                when: "Sat".into(),
                place: "square".into(),
                details: String::new(),
                supersedes: None,
            },
            sender: "Ana".into(),
            sender_fingerprint: "abcd".into(),
            text: String::new(),
            sent_at: 1,
            received_at: 2,
            expires_at: None,
            verified: Some(true),
        };
        let pinned = Pinned { message: message.clone(), acked_by: vec!["Bo".into()], acked_by_me: false };
        let v: Value = serde_json::from_str(&crate::api::to_json(&pinned)).unwrap();
        assert_eq!(v["kind"], "announcement");
        assert_eq!(v["where"], "square");
        assert!(v["supersedes"].is_null() && v["expires_at"].is_null());
        assert_eq!(v["acked_by"][0], "Bo");
        assert_eq!(serde_json::from_value::<Pinned>(v).unwrap(), pinned);

        let text = Message { body: Body::Text, verified: None, ..message };
        let v: Value = serde_json::from_str(&crate::api::to_json(&text)).unwrap();
        assert_eq!(v["kind"], "text");
        assert!(v.get("title").is_none() && v.get("verified").is_none(), "{v}");

        let event = PushEvent::Membership {
            circle: "cc".into(),
            change: Change::Removed { member: "m".into(), name: "Chen".into(), by: "o".into() },
        };
        let line = notification_line(&event);
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!((v["method"].as_str(), v.get("id")), (Some("event"), None));
        assert_eq!(v["params"]["type"], "membership");
        assert_eq!(v["params"]["change"], "removed");
        assert_eq!(serde_json::from_value::<PushEvent>(v["params"].clone()).unwrap(), event);

        let ok = response_line(&Id::from(4), Ok(&Answer::Sent(Sent { id: Some("ab".into()), queued: None })));
        assert_eq!(ok, r#"{"jsonrpc":"2.0","id":4,"result":{"id":"ab"}}"#);
    }
}
