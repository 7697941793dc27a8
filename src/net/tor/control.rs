//! A small client for tor's control protocol (control-spec.txt): enough to
//! authenticate, follow bootstrap, add and remove onion services with
//! client authorisation, and give tor client-auth keys for dialling.
//!
//! Written here rather than taken from a crate: `tor-interface` pulls in
//! arti and its own tokio/libp2p-independent runtime, and `torut` is
//! unmaintained; what kolo needs is six commands over one socket.

use std::path::Path;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use zeroize::Zeroizing;

use super::TorError;
use super::keys::{ClientAuth, OnionKey};

/// Longest reply line we accept from the control port.
const MAX_LINE: usize = 16 * 1024;
/// Most lines in one reply.
const MAX_REPLY_LINES: usize = 4096;
const REPLY_TIMEOUT: Duration = Duration::from_secs(120);

/// How to authenticate to the control port.
pub enum ControlAuth {
    /// Read the cookie from the file tor names in `PROTOCOLINFO` (or this one).
    Cookie(Option<std::path::PathBuf>),
    /// A password whose hash is in tor's `HashedControlPassword`.
    Password(Zeroizing<String>),
}

/// One reply: its status code and its lines (without the code prefix).
#[derive(Debug)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    fn ok(self, command: &str) -> Result<Reply, TorError> {
        if (250..300).contains(&self.code) {
            Ok(self)
        } else {
            Err(TorError::Refused { command: command.into(), reply: self.lines.join(" ") })
        }
    }

    /// The value of `key=` among the lines (quotes removed).
    pub fn value(&self, key: &str) -> Option<String> {
        self.lines.iter().find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')).map(unquote))
    }
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    match s.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        Some(inner) => inner.replace("\\\"", "\"").replace("\\\\", "\\"),
        None => s.to_string(),
    }
}

/// `KEY=value` (value possibly quoted) out of a line of space-separated pairs.
fn field(line: &str, key: &str) -> Option<String> {
    let start = line.find(&format!("{key}="))? + key.len() + 1;
    let rest = &line[start..];
    if let Some(quoted) = rest.strip_prefix('"') {
        let mut out = String::new();
        let mut escaped = false;
        for c in quoted.chars() {
            match (escaped, c) {
                (false, '\\') => escaped = true,
                (false, '"') => return Some(out),
                (_, c) => {
                    out.push(c);
                    escaped = false;
                }
            }
        }
        None
    } else {
        Some(rest.split(' ').next().unwrap_or("").to_string())
    }
}

/// Bootstrap progress from a `BOOTSTRAP` status line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bootstrap {
    pub progress: u8,
    pub summary: String,
}

fn parse_bootstrap(line: &str) -> Option<Bootstrap> {
    if !line.contains("BOOTSTRAP") {
        return None;
    }
    let progress = field(line, "PROGRESS")?.parse().ok()?;
    let summary = field(line, "SUMMARY").unwrap_or_default();
    Some(Bootstrap { progress, summary })
}

/// A connection to tor's control port.
pub struct TorControl {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    /// Asynchronous event lines (650) read while waiting for a reply.
    events: Vec<String>,
}

impl TorControl {
    /// Connect and authenticate.
    pub async fn connect(address: std::net::SocketAddr, auth: &ControlAuth) -> Result<Self, TorError> {
        let stream = TcpStream::connect(address).await.map_err(|e| TorError::Io(format!("control port: {e}")))?;
        let (read, writer) = stream.into_split();
        let mut control = TorControl { reader: BufReader::new(read), writer, events: Vec::new() };
        control.authenticate(auth).await?;
        Ok(control)
    }

    async fn authenticate(&mut self, auth: &ControlAuth) -> Result<(), TorError> {
        let info = self.command("PROTOCOLINFO 1").await?;
        let methods = info.lines.iter().find_map(|l| field(l, "METHODS")).unwrap_or_default();
        let secret = match auth {
            ControlAuth::Password(p) => Zeroizing::new(format!("\"{}\"", p.replace('\\', "\\\\").replace('"', "\\\""))),
            ControlAuth::Cookie(path) => {
                if !methods.split(',').any(|m| m == "COOKIE" || m == "SAFECOOKIE") {
                    return Err(TorError::Auth(format!("tor offers no cookie authentication ({methods})")));
                }
                let file = match path {
                    Some(p) => p.clone(),
                    None => info
                        .lines
                        .iter()
                        .find_map(|l| field(l, "COOKIEFILE"))
                        .map(std::path::PathBuf::from)
                        .ok_or_else(|| TorError::Auth("tor names no cookie file".into()))?,
                };
                let cookie = read_cookie(&file)?;
                Zeroizing::new(crate::identity::hex(cookie.as_slice()))
            }
        };
        self.command(&format!("AUTHENTICATE {}", secret.as_str())).await.map_err(|e| TorError::Auth(e.to_string()))?;
        Ok(())
    }

    /// Send one command line and read its reply; a 4xx/5xx is an error.
    pub async fn command(&mut self, line: &str) -> Result<Reply, TorError> {
        let verb = line.split(' ').next().unwrap_or("").to_string();
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .map_err(|e| TorError::Io(format!("control port: {e}")))?;
        let reply = tokio::time::timeout(REPLY_TIMEOUT, self.read_reply())
            .await
            .map_err(|_| TorError::Io(format!("no answer to {verb}")))??;
        reply.ok(&verb)
    }

    async fn read_line(&mut self) -> Result<String, TorError> {
        let mut buf = Vec::new();
        let n = (&mut self.reader)
            .take(MAX_LINE as u64 + 2)
            .read_until(b'\n', &mut buf)
            .await
            .map_err(|e| TorError::Io(format!("control port: {e}")))?;
        if n == 0 {
            return Err(TorError::Io("tor closed the control connection".into()));
        }
        if !buf.ends_with(b"\n") {
            return Err(TorError::Protocol("control reply line too long".into()));
        }
        let line = String::from_utf8_lossy(&buf);
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    }

    /// Read one reply; asynchronous events (650) on the way are kept.
    async fn read_reply(&mut self) -> Result<Reply, TorError> {
        let mut lines = Vec::new();
        loop {
            if lines.len() > MAX_REPLY_LINES {
                return Err(TorError::Protocol("control reply too long".into()));
            }
            let line = self.read_line().await?;
            if line.len() < 4 || !line.is_char_boundary(3) || !line.is_char_boundary(4) {
                return Err(TorError::Protocol("malformed control reply".into()));
            }
            let code: u16 = line[..3].parse().map_err(|_| TorError::Protocol("malformed control reply".into()))?;
            let kind = &line[3..4];
            let text = line[4..].to_string();
            if code == 650 {
                // An event: a single line, or a data block ending in ".".
                if kind == "+" {
                    loop {
                        if self.read_line().await? == "." {
                            break;
                        }
                    }
                }
                if self.events.len() < MAX_REPLY_LINES {
                    self.events.push(text);
                }
                continue;
            }
            match kind {
                "-" => lines.push(text),
                "+" => {
                    // `key=` then data lines up to a lone ".".
                    let mut data = text;
                    loop {
                        let l = self.read_line().await?;
                        if l == "." {
                            break;
                        }
                        data.push('\n');
                        data.push_str(l.strip_prefix('.').unwrap_or(&l));
                    }
                    lines.push(data);
                }
                " " => {
                    lines.push(text);
                    return Ok(Reply { code, lines });
                }
                _ => return Err(TorError::Protocol("malformed control reply".into())),
            }
        }
    }

    /// `GETINFO key`: the value.
    pub async fn getinfo(&mut self, key: &str) -> Result<String, TorError> {
        let reply = self.command(&format!("GETINFO {key}")).await?;
        reply.value(key).ok_or_else(|| TorError::Protocol(format!("GETINFO {key}: no value")))
    }

    /// The SOCKS listener tor opened (for `SocksPort auto`).
    pub async fn socks_address(&mut self) -> Result<std::net::SocketAddr, TorError> {
        let value = self.getinfo("net/listeners/socks").await?;
        let first = value.split(' ').next().map(unquote).unwrap_or_default();
        first.parse().map_err(|_| TorError::Protocol(format!("tor's SOCKS listener is not an address: {first}")))
    }

    /// Wait until tor has bootstrapped to 100 %, calling `progress` on each
    /// step (from the `STATUS_CLIENT` events).
    pub async fn wait_bootstrapped(
        &mut self,
        timeout: Duration,
        mut progress: impl FnMut(&Bootstrap),
    ) -> Result<(), TorError> {
        let deadline = Instant::now() + timeout;
        self.command("SETEVENTS STATUS_CLIENT").await?;
        let now = self.getinfo("status/bootstrap-phase").await?;
        let mut last = parse_bootstrap(&now);
        if let Some(b) = &last {
            progress(b);
        }
        while last.as_ref().is_none_or(|b| b.progress < 100) {
            for line in std::mem::take(&mut self.events) {
                if let Some(b) = parse_bootstrap(&line)
                    && last.as_ref() != Some(&b)
                {
                    progress(&b);
                    last = Some(b);
                }
            }
            if last.as_ref().is_some_and(|b| b.progress >= 100) {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let at = last.map(|b| b.progress).unwrap_or(0);
                return Err(TorError::Bootstrap(format!("tor did not finish bootstrapping in time (at {at} %)")));
            }
            // Wait for the next event line (or the deadline).
            match tokio::time::timeout(left.min(Duration::from_secs(5)), self.read_line()).await {
                Ok(Ok(line)) => {
                    if let Some(text) = line.strip_prefix("650 ").or_else(|| line.strip_prefix("650-")) {
                        self.events.push(text.to_string());
                    }
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    // No event for a while: ask (an event may have been missed).
                    let now = self.getinfo("status/bootstrap-phase").await?;
                    self.events.push(now);
                }
            }
        }
        self.events.clear();
        self.command("SETEVENTS").await?;
        Ok(())
    }

    /// Publish an onion service with kolo's key: `virtual_port` on the
    /// onion goes to `target` (a 127.0.0.1 port kolo listens on). Only
    /// clients holding `auth`'s secret can fetch its descriptor. Returns
    /// the service id (the address without ".onion"). The service lives
    /// as long as this control connection.
    pub async fn add_onion(
        &mut self,
        key: &OnionKey,
        virtual_port: u16,
        target: std::net::SocketAddr,
        auth: &ClientAuth,
    ) -> Result<String, TorError> {
        if !target.ip().is_loopback() {
            return Err(TorError::Protocol("an onion service forwards to loopback only".into()));
        }
        let line = Zeroizing::new(format!(
            "ADD_ONION {} Flags=DiscardPK,V3Auth Port={virtual_port},{target} ClientAuthV3={}",
            key.control_blob().as_str(),
            auth.public_base32()
        ));
        let reply = self.command(&line).await?;
        let id = reply.value("ServiceID").ok_or_else(|| TorError::Protocol("ADD_ONION: no ServiceID".into()))?;
        if id.len() != 56 || !id.bytes().all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b)) {
            return Err(TorError::Protocol("ADD_ONION: malformed ServiceID".into()));
        }
        Ok(id)
    }

    pub async fn del_onion(&mut self, service_id: &str) -> Result<(), TorError> {
        check_service_id(service_id)?;
        self.command(&format!("DEL_ONION {service_id}")).await.map(|_| ())
    }

    /// Let this tor fetch `service_id`'s descriptor with `auth`'s secret.
    pub async fn client_auth_add(&mut self, service_id: &str, auth: &ClientAuth) -> Result<(), TorError> {
        check_service_id(service_id)?;
        let line = Zeroizing::new(format!("ONION_CLIENT_AUTH_ADD {service_id} {}", auth.secret_blob().as_str()));
        self.command(&line).await.map(|_| ())
    }
}

fn check_service_id(id: &str) -> Result<(), TorError> {
    if id.len() == 56 && id.bytes().all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b)) {
        Ok(())
    } else {
        Err(TorError::Protocol("not an onion service id".into()))
    }
}

fn read_cookie(path: &Path) -> Result<Zeroizing<Vec<u8>>, TorError> {
    let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| TorError::Auth(format!("cookie file: {e}")))?);
    if bytes.len() != 32 {
        return Err(TorError::Auth("cookie file is not 32 bytes".into()));
    }
    Ok(bytes)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn fields_quoted_and_bare() {
        let l = r#"AUTH METHODS=COOKIE,SAFECOOKIE COOKIEFILE="/var/lib/tor/control_auth_cookie""#;
        assert_eq!(field(l, "METHODS").unwrap(), "COOKIE,SAFECOOKIE");
        assert_eq!(field(l, "COOKIEFILE").unwrap(), "/var/lib/tor/control_auth_cookie");
        assert_eq!(field(l, "NOPE"), None);
        let b = r#"status/bootstrap-phase=NOTICE BOOTSTRAP PROGRESS=75 TAG=enough_dirinfo SUMMARY="Loaded \"enough\" directory info""#;
        let p = parse_bootstrap(b).unwrap();
        assert_eq!(p.progress, 75);
        assert_eq!(p.summary, "Loaded \"enough\" directory info");
        assert_eq!(parse_bootstrap("STATUS_CLIENT NOTICE CIRCUIT_ESTABLISHED"), None);
        // An unterminated quote is no value.
        assert_eq!(field("A=\"open", "A"), None);
    }

    #[test]
    fn service_ids_are_checked() {
        assert!(check_service_id(&"a".repeat(56)).is_ok());
        assert!(check_service_id(&"a".repeat(55)).is_err());
        assert!(check_service_id(&format!("{}\r\nSIGNAL HALT", "a".repeat(56))).is_err());
        assert!(check_service_id(&"A".repeat(56)).is_err());
    }

    proptest::proptest! {
        #[test]
        fn field_never_panics(line in ".{0,80}", key in "[A-Z]{1,6}") {
            let _ = field(&line, &key);
            let _ = parse_bootstrap(&line);
            let _ = unquote(&line);
        }
    }
}
