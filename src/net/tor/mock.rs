//! An in-process stand-in for tor, for tests: a control port speaking the
//! part of the control protocol kolo uses, and a SOCKS5 port, over a shared
//! "network" that maps onion service ids to loopback listeners. It checks
//! client authorisation as tor does (a client whose tor has not been given
//! the service's client-auth secret cannot reach it) and records the SOCKS
//! credentials each connection used. Everything listens on 127.0.0.1.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::wire::text::{Case, base32, base64_decode};

/// Most lines a mock control connection handles; bounds test loops.
const MAX_COMMANDS: usize = 10_000;

#[derive(Clone)]
struct Service {
    target: SocketAddr,
    client_auth: Option<String>,
    owner: u64,
}

/// The onion services every mock tor on this "network" can reach.
#[derive(Clone, Default)]
pub struct MockTorNetwork {
    services: Arc<Mutex<HashMap<(String, u16), Service>>>,
}

/// One mock tor: its control and SOCKS addresses, and what it saw.
pub struct MockTor {
    pub control: SocketAddr,
    pub socks: SocketAddr,
    pub password: String,
    /// SOCKS usernames of the connections made through this tor, in order.
    pub socks_users: Arc<Mutex<Vec<String>>>,
    /// Connections this tor refused for want of client authorisation.
    pub refused_auth: Arc<Mutex<u32>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for MockTor {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The base32 public key matching an `x25519:<base64 secret>` blob.
fn public_of(secret_blob: &str) -> Option<String> {
    let bytes: [u8; 32] = base64_decode(secret_blob.strip_prefix("x25519:")?)?.try_into().ok()?;
    let secret = x25519_dalek::StaticSecret::from(bytes);
    Some(base32(x25519_dalek::PublicKey::from(&secret).as_bytes(), Case::Upper))
}

impl MockTorNetwork {
    /// Start one mock tor on this network (control password `password`).
    pub async fn start_tor(&self, password: &str) -> std::io::Result<MockTor> {
        let control = TcpListener::bind("127.0.0.1:0").await?;
        let socks = TcpListener::bind("127.0.0.1:0").await?;
        let control_addr = control.local_addr()?;
        let socks_addr = socks.local_addr()?;
        let client_auth: Arc<Mutex<HashMap<String, String>>> = Arc::default();
        let socks_users: Arc<Mutex<Vec<String>>> = Arc::default();
        let refused_auth: Arc<Mutex<u32>> = Arc::default();
        let control_task = {
            let network = self.clone();
            let client_auth = client_auth.clone();
            let password = password.to_string();
            tokio::spawn(async move {
                let mut next_owner = 0u64;
                while let Ok((stream, _)) = control.accept().await {
                    next_owner += 1;
                    let (network, auth, pw, owner) =
                        (network.clone(), client_auth.clone(), password.clone(), next_owner);
                    tokio::spawn(async move {
                        let _ = network.control_connection(stream, auth, &pw, owner, socks_addr).await;
                        // Like tor without `Detach`: services die with their connection.
                        if let Ok(mut s) = network.services.lock() {
                            s.retain(|_, v| v.owner != owner);
                        }
                    });
                }
            })
        };
        let socks_task = {
            let network = self.clone();
            let (users, refused) = (socks_users.clone(), refused_auth.clone());
            tokio::spawn(async move {
                while let Ok((stream, _)) = socks.accept().await {
                    let (network, auth, users, refused) =
                        (network.clone(), client_auth.clone(), users.clone(), refused.clone());
                    tokio::spawn(async move {
                        let _ = network.socks_connection(stream, auth, users, refused).await;
                    });
                }
            })
        };
        Ok(MockTor {
            control: control_addr,
            socks: socks_addr,
            password: password.to_string(),
            socks_users,
            refused_auth,
            tasks: vec![control_task, socks_task],
        })
    }

    /// Is `id` published (on any port)?
    pub fn is_published(&self, id: &str) -> bool {
        self.services.lock().map(|s| s.keys().any(|(i, _)| i == id)).unwrap_or(false)
    }

    async fn control_connection(
        &self,
        stream: TcpStream,
        client_auth: Arc<Mutex<HashMap<String, String>>>,
        password: &str,
        owner: u64,
        socks: SocketAddr,
    ) -> std::io::Result<()> {
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        let mut authenticated = false;
        for _ in 0..MAX_COMMANDS {
            let Some(line) = lines.next_line().await? else { return Ok(()) };
            let mut words = line.split(' ');
            let verb = words.next().unwrap_or("");
            let reply = match verb {
                "PROTOCOLINFO" => "250-PROTOCOLINFO 1\r\n250-AUTH METHODS=HASHEDPASSWORD\r\n250-VERSION Tor=\"mock\"\r\n250 OK\r\n".to_string(),
                "AUTHENTICATE" => {
                    if words.next() == Some(&format!("\"{password}\"")) {
                        authenticated = true;
                        "250 OK\r\n".into()
                    } else {
                        write.write_all(b"515 Authentication failed\r\n").await?;
                        return Ok(());
                    }
                }
                _ if !authenticated => {
                    write.write_all(b"514 Authentication required\r\n").await?;
                    return Ok(());
                }
                "SETEVENTS" => {
                    let mut r = "250 OK\r\n".to_string();
                    if words.any(|w| w == "STATUS_CLIENT") {
                        r.push_str("650 STATUS_CLIENT NOTICE BOOTSTRAP PROGRESS=75 TAG=enough_dirinfo SUMMARY=\"Loaded enough directory info to build circuits\"\r\n");
                        r.push_str("650 STATUS_CLIENT NOTICE BOOTSTRAP PROGRESS=100 TAG=done SUMMARY=\"Done\"\r\n");
                    }
                    r
                }
                "GETINFO" => match words.next() {
                    Some("status/bootstrap-phase") => "250-status/bootstrap-phase=NOTICE BOOTSTRAP PROGRESS=50 TAG=loading_descriptors SUMMARY=\"Loading relay descriptors\"\r\n250 OK\r\n".into(),
                    Some("net/listeners/socks") => format!("250-net/listeners/socks=\"{socks}\"\r\n250 OK\r\n"),
                    _ => "552 Unrecognized key\r\n".into(),
                },
                "TAKEOWNERSHIP" | "RESETCONF" => "250 OK\r\n".into(),
                "ADD_ONION" => self.add_onion(&line, owner),
                "DEL_ONION" => {
                    let id = words.next().unwrap_or("");
                    let removed = self
                        .services
                        .lock()
                        .map(|mut s| {
                            let before = s.len();
                            s.retain(|(i, _), v| !(i == id && v.owner == owner));
                            before != s.len()
                        })
                        .unwrap_or(false);
                    if removed { "250 OK\r\n".into() } else { "552 Unknown Onion Service id\r\n".into() }
                }
                "ONION_CLIENT_AUTH_ADD" => {
                    let (id, blob) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
                    match public_of(blob) {
                        Some(public) => {
                            if let Ok(mut a) = client_auth.lock() {
                                a.insert(id.to_string(), public);
                            }
                            "250 OK\r\n".into()
                        }
                        None => "512 Invalid v3 private key\r\n".into(),
                    }
                }
                _ => "510 Unrecognized command\r\n".into(),
            };
            write.write_all(reply.as_bytes()).await?;
        }
        Ok(())
    }

    fn add_onion(&self, line: &str, owner: u64) -> String {
        let mut words = line.split(' ').skip(1);
        let Some(key) = words.next().and_then(|k| k.strip_prefix("ED25519-V3:")) else {
            return "513 Invalid key type\r\n".into();
        };
        let mut ports = Vec::new();
        let mut client_auth = None;
        for w in words {
            if let Some(p) = w.strip_prefix("Port=") {
                let Some((virt, target)) = p.split_once(',') else { return "512 Bad Port\r\n".into() };
                match (virt.parse::<u16>(), target.parse::<SocketAddr>()) {
                    (Ok(v), Ok(t)) => ports.push((v, t)),
                    _ => return "512 Bad Port\r\n".into(),
                }
            } else if let Some(a) = w.strip_prefix("ClientAuthV3=") {
                client_auth = Some(a.to_string());
            }
        }
        if ports.is_empty() {
            return "512 Missing Port\r\n".into();
        }
        // A stand-in for the address tor derives from the public key.
        let digest = Sha256::digest(key.as_bytes());
        let mut raw = [0u8; 35];
        raw[..32].copy_from_slice(&digest);
        raw[34] = 3;
        let id = base32(&raw, Case::Lower);
        let Ok(mut services) = self.services.lock() else { return "551 Internal error\r\n".into() };
        if services.keys().any(|(i, _)| *i == id) {
            return "550 Onion address collision\r\n".into();
        }
        for (virt, target) in ports {
            services.insert((id.clone(), virt), Service { target, client_auth: client_auth.clone(), owner });
        }
        format!("250-ServiceID={id}\r\n250 OK\r\n")
    }

    async fn socks_connection(
        &self,
        mut s: TcpStream,
        client_auth: Arc<Mutex<HashMap<String, String>>>,
        users: Arc<Mutex<Vec<String>>>,
        refused: Arc<Mutex<u32>>,
    ) -> std::io::Result<()> {
        let mut head = [0u8; 2];
        s.read_exact(&mut head).await?;
        let mut methods = vec![0u8; usize::from(head[1])];
        s.read_exact(&mut methods).await?;
        if head[0] != 5 || !methods.contains(&2) {
            s.write_all(&[5, 0xff]).await?;
            return Ok(());
        }
        s.write_all(&[5, 2]).await?;
        let mut ver_len = [0u8; 2];
        s.read_exact(&mut ver_len).await?;
        let mut user = vec![0u8; usize::from(ver_len[1])];
        s.read_exact(&mut user).await?;
        let mut plen = [0u8; 1];
        s.read_exact(&mut plen).await?;
        let mut pass = vec![0u8; usize::from(plen[0])];
        s.read_exact(&mut pass).await?;
        s.write_all(&[1, 0]).await?;
        let mut req = [0u8; 5];
        s.read_exact(&mut req).await?;
        if req[..4] != [5, 1, 0, 3] {
            s.write_all(&[5, 8, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
            return Ok(());
        }
        let mut host = vec![0u8; usize::from(req[4])];
        s.read_exact(&mut host).await?;
        let mut port = [0u8; 2];
        s.read_exact(&mut port).await?;
        let host = String::from_utf8_lossy(&host).to_string();
        let port = u16::from_be_bytes(port);
        if let Ok(mut u) = users.lock() {
            u.push(String::from_utf8_lossy(&user).to_string());
        }
        let fail = |code: u8| [5, code, 0, 1, 0, 0, 0, 0, 0, 0];
        let Some(id) = host.strip_suffix(".onion") else {
            // Like kolo's tor would for a clear address: the mock refuses.
            s.write_all(&fail(2)).await?;
            return Ok(());
        };
        let service = self.services.lock().ok().and_then(|m| m.get(&(id.to_string(), port)).cloned());
        let Some(service) = service else {
            s.write_all(&fail(0xf0)).await?;
            return Ok(());
        };
        if let Some(required) = &service.client_auth {
            let have = client_auth.lock().ok().and_then(|a| a.get(id).cloned());
            if have.as_ref() != Some(required) {
                if let Ok(mut r) = refused.lock() {
                    *r += 1;
                }
                s.write_all(&fail(if have.is_some() { 0xf5 } else { 0xf4 })).await?;
                return Ok(());
            }
        }
        let mut upstream = match TcpStream::connect(service.target).await {
            Ok(u) => u,
            Err(_) => {
                s.write_all(&fail(5)).await?;
                return Ok(());
            }
        };
        s.write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
        let _ = tokio::io::copy_bidirectional(&mut s, &mut upstream).await;
        Ok(())
    }
}
