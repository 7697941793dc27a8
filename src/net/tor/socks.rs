//! The client half of SOCKS5 (RFC 1928) with username/password
//! authentication (RFC 1929), as far as dialling an onion through tor needs.
//!
//! The username and password are not secrets: with `IsolateSOCKSAuth`
//! (tor's default) they select the circuit, so each circle uses its own.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::TorError;

/// Which circuit a connection shares: streams with the same pair share one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Isolation {
    pub username: String,
    pub password: String,
}

fn socks_error(code: u8) -> &'static str {
    match code {
        1 => "general failure",
        2 => "not allowed",
        3 => "network unreachable",
        4 => "host unreachable (onion not found or not reachable)",
        5 => "connection refused",
        6 => "TTL expired (onion circuit timed out)",
        7 => "command not supported",
        8 => "address type not supported",
        // Tor's extended codes for onion services (prop304).
        0xf0 => "onion descriptor not found",
        0xf1 => "onion descriptor invalid",
        0xf2 => "onion introduction failed",
        0xf3 => "onion rendezvous failed",
        0xf4 => "onion needs client authorisation",
        0xf5 => "onion client authorisation refused",
        0xf6 => "bad onion address",
        0xf7 => "onion introduction timed out",
        _ => "unknown error",
    }
}

/// Open a stream to `host:port` through the SOCKS5 proxy at `proxy`.
pub async fn connect(proxy: SocketAddr, host: &str, port: u16, isolation: &Isolation) -> Result<TcpStream, TorError> {
    let io = |e: std::io::Error| TorError::Io(format!("SOCKS: {e}"));
    if host.len() > 255 || isolation.username.len() > 255 || isolation.password.len() > 255 {
        return Err(TorError::Protocol("SOCKS field too long".into()));
    }
    if isolation.username.is_empty() || isolation.password.is_empty() {
        return Err(TorError::Protocol("SOCKS isolation needs a username and a password".into()));
    }
    let mut s = TcpStream::connect(proxy).await.map_err(io)?;
    s.set_nodelay(true).map_err(io)?;
    // Greeting: version 5, one method, username/password.
    s.write_all(&[5, 1, 2]).await.map_err(io)?;
    let mut choice = [0u8; 2];
    s.read_exact(&mut choice).await.map_err(io)?;
    if choice != [5, 2] {
        return Err(TorError::Protocol("SOCKS proxy refused username/password authentication".into()));
    }
    let mut auth = vec![1, isolation.username.len() as u8];
    auth.extend_from_slice(isolation.username.as_bytes());
    auth.push(isolation.password.len() as u8);
    auth.extend_from_slice(isolation.password.as_bytes());
    s.write_all(&auth).await.map_err(io)?;
    let mut status = [0u8; 2];
    s.read_exact(&mut status).await.map_err(io)?;
    if status[1] != 0 {
        return Err(TorError::Protocol("SOCKS authentication refused".into()));
    }
    // CONNECT to a domain name.
    let mut request = vec![5, 1, 0, 3, host.len() as u8];
    request.extend_from_slice(host.as_bytes());
    request.extend_from_slice(&port.to_be_bytes());
    s.write_all(&request).await.map_err(io)?;
    let mut head = [0u8; 4];
    s.read_exact(&mut head).await.map_err(io)?;
    if head[0] != 5 {
        return Err(TorError::Protocol("not a SOCKS5 reply".into()));
    }
    if head[1] != 0 {
        return Err(TorError::Unreachable(socks_error(head[1]).into()));
    }
    // The bound address, which we do not need.
    let skip = match head[3] {
        1 => 4 + 2,
        4 => 16 + 2,
        3 => {
            let mut len = [0u8; 1];
            s.read_exact(&mut len).await.map_err(io)?;
            usize::from(len[0]) + 2
        }
        _ => return Err(TorError::Protocol("SOCKS reply with an unknown address type".into())),
    };
    let mut rest = vec![0u8; skip];
    s.read_exact(&mut rest).await.map_err(io)?;
    Ok(s)
}
