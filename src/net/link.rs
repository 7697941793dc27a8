//! The link handshake every TCP or onion connection of a circle's network
//! passes before libp2p's multistream, Noise and yamux (SPEC §2a). It
//! replaces libp2p's pnet, which knows a single key.
//!
//! Owns: the shared, live [`NetworkAccess`] of one circle's swarm (the
//! node updates it as the membership changes), the handshake on both
//! sides, and [`LinkStream`], the encrypted byte stream the rest of the
//! upgrade runs on. The keys and the proof are `crypto::link`.
//!
//! Every link is admitted only after the dialer proves, with a challenge,
//! that it holds the per-circle Noise static key of a current member, or
//! the key of an invite that is still open; both sides then switch to
//! stream keys bound to that proof. The network key (which every invite
//! carries) only lets the dialer ask. The removed member, whatever
//! transport id it uses, cannot prove; an invite holder is admitted as a
//! joiner, and a listener serves a joiner's link nothing but the join
//! handshake (`net::gate`). Which kind each inbound link proved is kept
//! here, by remote address, for the gate to read when libp2p hands it the
//! established connection.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll, ready};

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::Multiaddr;
use libp2p::core::{ConnectedPoint, Endpoint};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::crypto::link::{
    Challenge, LinkCipher, MAGIC, NONCE_LEN, PROOF_INVITE, PROOF_MEMBER, ProofContext, REFUSED_EXPIRED,
    REFUSED_REVOKED, REFUSED_USED, STATUS_ADMITTED, STATUS_INVITE_CLOSED, STATUS_PROVE, STATUS_REFUSED,
    STATUS_UNKNOWN_INVITE, dialer_shared, invite_shared, proof, stream_keys,
};
use crate::engine::NetworkAccess;
use crate::entropy::{OsEntropy, random_array};

/// What the node and a circle's handshakes share: the access rules as the
/// node last computed them (a handshake takes a snapshot, an `Arc`, and
/// never holds the lock across an await), and the last refusal a member
/// gave one of our dials, which the swarm hands on with the failed dial.
pub struct LinkShared {
    access: RwLock<Arc<NetworkAccess>>,
    refusal: Mutex<Option<LinkRefusal>>,
    inbound: Mutex<InboundClasses>,
}

/// Who proved an inbound link: a current member, or an invite holder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkClass {
    Member,
    Joiner,
}

/// Inbound links' classes by the dialer's address, from the moment the
/// handshake ends until libp2p reports the connection (Noise and yamux in
/// between, at most 120 s). Bounded: past `MAX_PENDING_CLASSES` the oldest
/// go, and a connection whose class is gone counts as a joiner's.
#[derive(Default)]
struct InboundClasses {
    by_address: std::collections::HashMap<Multiaddr, (LinkClass, std::time::Instant)>,
}

const MAX_PENDING_CLASSES: usize = 1024;
const CLASS_KEPT_FOR: std::time::Duration = std::time::Duration::from_secs(180);

pub type SharedAccess = Arc<LinkShared>;

impl LinkShared {
    pub fn new(access: NetworkAccess) -> SharedAccess {
        Arc::new(Self {
            access: RwLock::new(Arc::new(access)),
            refusal: Mutex::new(None),
            inbound: Mutex::new(InboundClasses::default()),
        })
    }

    fn note_inbound(&self, from: &Multiaddr, class: LinkClass) {
        let Ok(mut classes) = self.inbound.lock() else {
            return;
        };
        let now = std::time::Instant::now();
        let map = &mut classes.by_address;
        if map.len() >= MAX_PENDING_CLASSES {
            map.retain(|_, (_, at)| now.duration_since(*at) < CLASS_KEPT_FOR);
        }
        if map.len() >= MAX_PENDING_CLASSES
            && let Some(oldest) = map.iter().min_by_key(|(_, (_, at))| *at).map(|(a, _)| a.clone())
        {
            map.remove(&oldest);
        }
        map.insert(from.clone(), (class, now));
    }

    /// What the inbound link from `from` proved; a joiner's link unless a
    /// member's proof is on record (fails closed).
    pub fn inbound_class(&self, from: &Multiaddr) -> LinkClass {
        self.inbound
            .lock()
            .ok()
            .and_then(|c| c.by_address.get(from).map(|(class, _)| *class))
            .unwrap_or(LinkClass::Joiner)
    }

    /// Replace the rules (handshakes already running keep theirs).
    pub fn set(&self, access: NetworkAccess) {
        if let Ok(mut current) = self.access.write() {
            *current = Arc::new(access);
        }
    }

    /// Change the rules in place (tests, and callers that adjust one field).
    pub fn update(&self, change: impl FnOnce(&mut NetworkAccess)) {
        if let Ok(mut current) = self.access.write() {
            change(Arc::make_mut(&mut current));
        }
    }

    fn snapshot(&self) -> Result<Arc<NetworkAccess>, LinkError> {
        self.access.read().map(|a| Arc::clone(&a)).map_err(|_| LinkError::Malformed)
    }

    fn note_refusal(&self, refusal: LinkRefusal) {
        if let Ok(mut slot) = self.refusal.lock() {
            *slot = Some(refusal);
        }
    }

    /// The refusal noted since the last call, if any.
    pub fn take_refusal(&self) -> Option<LinkRefusal> {
        self.refusal.lock().ok().and_then(|mut slot| slot.take())
    }
}

/// A member's answer to our dial that a joiner can act on (SPEC §2a).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkRefusal {
    /// The member refused our proof (not a member, or a wrong key).
    Refused,
    /// Our invite is closed for good, and the member said why.
    InviteClosed(InviteClosed),
    /// The member asked for a proof and we hold nothing to prove with.
    KeyRetired,
}

impl LinkRefusal {
    pub fn error(self) -> LinkError {
        match self {
            LinkRefusal::Refused => LinkError::Refused,
            LinkRefusal::InviteClosed(why) => LinkError::InviteClosed(why),
            LinkRefusal::KeyRetired => LinkError::KeyRetired,
        }
    }
}

/// Why a member says our invite admits nobody (SPEC §2a status `04`,
/// with the JOIN_REFUSED reason codes of §8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InviteClosed {
    #[error("this invite was already used; ask for a new one")]
    Used,
    #[error("this invite has expired; ask for a new one")]
    Expired,
    #[error("this invite was revoked, or the organiser who made it can no longer invite; ask for a new one")]
    Revoked,
}

impl InviteClosed {
    fn from_code(code: u8) -> Option<Self> {
        match code {
            REFUSED_USED => Some(Self::Used),
            REFUSED_EXPIRED => Some(Self::Expired),
            REFUSED_REVOKED => Some(Self::Revoked),
            _ => None,
        }
    }
}

/// The largest plaintext chunk encrypted per write.
const MAX_CHUNK: usize = 64 * 1024;

/// Why a link was not set up. Shown to the user only as a dial failure;
/// [`LinkError::KeyRetired`] is the one a joiner can act on.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("link: {0}")]
    Io(#[from] io::Error),
    #[error("the peer holds none of the circle's current network keys")]
    NoKey,
    #[error("a network key of an ended generation, and no valid member proof")]
    Unproven,
    #[error("the circle's network moved on since this invite was made (a removal or rotation); ask for a new invite")]
    KeyRetired,
    #[error(
        "the member refused our proof: we are not a current member, or our invite was used, revoked or has \
         expired, or its author is no longer an organiser; ask for a new invite"
    )]
    Refused,
    #[error("this member has not heard of our invite yet; others may have")]
    InviteUnknown,
    #[error("{0}")]
    InviteClosed(InviteClosed),
    #[error("malformed link handshake")]
    Malformed,
}

impl From<LinkError> for io::Error {
    fn from(e: LinkError) -> Self {
        match e {
            LinkError::Io(e) => e,
            other => io::Error::new(io::ErrorKind::PermissionDenied, other),
        }
    }
}

/// Which side of the handshake we play: the dialer's, unless a
/// simultaneous open (DCUtR) assigned us the listener's.
pub fn role_of(endpoint: &ConnectedPoint) -> Endpoint {
    match endpoint {
        ConnectedPoint::Dialer { role_override, .. } => *role_override,
        ConnectedPoint::Listener { .. } => Endpoint::Listener,
    }
}

/// Run the handshake on `socket` for `circle`; `endpoint` is libp2p's for
/// this connection (our role, and the address an inbound link's class is
/// noted under).
pub async fn upgrade<S>(
    socket: S,
    endpoint: ConnectedPoint,
    circle: [u8; 32],
    shared: SharedAccess,
) -> Result<LinkStream<S>, LinkError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let role = role_of(&endpoint);
    let rules = shared.snapshot()?;
    let result = match role {
        Endpoint::Dialer => dial(socket, &circle, &rules).await,
        Endpoint::Listener => listen(socket, &circle, &rules).await,
    };
    match &result {
        Ok(stream) => tracing::debug!("link up as {role:?} ({:?})", stream.class),
        Err(e) => tracing::debug!("link refused as {role:?}: {e}"),
    }
    if let (Ok(stream), ConnectedPoint::Listener { send_back_addr, .. }) = (&result, &endpoint) {
        shared.note_inbound(send_back_addr, stream.class);
    }
    match (&result, role) {
        (Err(LinkError::Refused), Endpoint::Dialer) => shared.note_refusal(LinkRefusal::Refused),
        (Err(LinkError::KeyRetired), Endpoint::Dialer) => shared.note_refusal(LinkRefusal::KeyRetired),
        (Err(LinkError::InviteClosed(why)), Endpoint::Dialer) => shared.note_refusal(LinkRefusal::InviteClosed(*why)),
        _ => {}
    }
    result
}

async fn exchange_nonces<S>(socket: &mut S) -> Result<([u8; NONCE_LEN], [u8; NONCE_LEN]), LinkError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let ours: [u8; NONCE_LEN] = random_array(&mut OsEntropy);
    socket.write_all(&ours).await?;
    socket.flush().await?;
    let mut theirs = [0u8; NONCE_LEN];
    socket.read_exact(&mut theirs).await?;
    Ok((ours, theirs))
}

async fn read_status<S>(stream: &mut LinkStream<S>) -> Result<u8, LinkError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut status = [0u8; 1];
    stream.read_exact(&mut status).await?;
    Ok(status[0])
}

async fn dial<S>(mut socket: S, circle: &[u8; 32], access: &NetworkAccess) -> Result<LinkStream<S>, LinkError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (dialer_nonce, listener_nonce) = exchange_nonces(&mut socket).await?;
    let keys = stream_keys(&access.dial, circle, &dialer_nonce, &listener_nonce);
    let mut stream =
        LinkStream::new(socket, LinkCipher::new(&keys.listener_to_dialer), LinkCipher::new(&keys.dialer_to_listener));
    stream.write_all(&MAGIC).await?;
    stream.flush().await?;
    match read_status(&mut stream).await? {
        STATUS_PROVE => {
            let mut challenge = [0u8; 32];
            stream.read_exact(&mut challenge).await?;
            // A member proves with its per-circle Noise key, a joiner with
            // its invite's key.
            let (kind, id, shared) = match (access.me.as_ref(), access.invite.as_ref()) {
                (Some((member, noise)), _) => (PROOF_MEMBER, member.0, dialer_shared(noise, &challenge)),
                (None, Some((op, scalar))) => (PROOF_INVITE, *op, invite_shared(scalar, &challenge)),
                (None, None) => return Err(LinkError::KeyRetired),
            };
            let context = ProofContext {
                network_key: &access.dial,
                circle_id: circle,
                dialer_nonce: &dialer_nonce,
                listener_nonce: &listener_nonce,
                challenge: &challenge,
            };
            let proven = proof(&context, kind, &id, &shared).ok_or(LinkError::Malformed)?;
            let mut message = Zeroizing::new([0u8; 65]);
            message[0] = kind;
            message[1..33].copy_from_slice(&id);
            message[33..].copy_from_slice(&proven.tag);
            stream.write_all(&message[..]).await?;
            stream.flush().await?;
            match read_status(&mut stream).await? {
                STATUS_ADMITTED => {
                    let class = if kind == PROOF_MEMBER { LinkClass::Member } else { LinkClass::Joiner };
                    stream.rekey(
                        LinkCipher::new(&proven.keys.listener_to_dialer),
                        LinkCipher::new(&proven.keys.dialer_to_listener),
                        class,
                    );
                    Ok(stream)
                }
                STATUS_REFUSED => Err(LinkError::Refused),
                STATUS_UNKNOWN_INVITE => Err(LinkError::InviteUnknown),
                STATUS_INVITE_CLOSED => {
                    let mut why = [0u8; 1];
                    stream.read_exact(&mut why).await?;
                    Err(LinkError::InviteClosed(InviteClosed::from_code(why[0]).ok_or(LinkError::Malformed)?))
                }
                _ => Err(LinkError::Malformed),
            }
        }
        STATUS_REFUSED => Err(LinkError::Refused),
        _ => Err(LinkError::Malformed),
    }
}

/// The network keys a listener tries: the newest generation's, then the
/// ended ones it still keeps. Each only lets the dialer offer its proof.
fn candidates(access: &NetworkAccess) -> Vec<&[u8; 32]> {
    let mut keys: Vec<&[u8; 32]> = vec![&*access.dial];
    keys.extend(access.grace.iter().rev().map(|k| &**k));
    keys
}

async fn listen<S>(mut socket: S, circle: &[u8; 32], access: &NetworkAccess) -> Result<LinkStream<S>, LinkError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (listener_nonce, dialer_nonce) = exchange_nonces(&mut socket).await?;
    let mut sealed = [0u8; MAGIC.len()];
    socket.read_exact(&mut sealed).await?;
    let mut found = None;
    for key in candidates(access) {
        let keys = stream_keys(key, circle, &dialer_nonce, &listener_nonce);
        let mut read = LinkCipher::new(&keys.dialer_to_listener);
        let mut opened = sealed;
        read.apply(&mut opened);
        if bool::from(opened.ct_eq(&MAGIC)) {
            found = Some((key, read, LinkCipher::new(&keys.listener_to_dialer)));
            break;
        }
    }
    let Some((key, read, write)) = found else {
        return Err(LinkError::NoKey);
    };
    let mut stream = LinkStream::new(socket, read, write);
    let challenge = Challenge::from_seed(random_array(&mut OsEntropy));
    let mut ask = [0u8; 33];
    ask[0] = STATUS_PROVE;
    ask[1..].copy_from_slice(&challenge.public);
    stream.write_all(&ask).await?;
    stream.flush().await?;
    let mut answer = [0u8; 65];
    stream.read_exact(&mut answer).await?;
    let kind = answer[0];
    let mut id = [0u8; 32];
    id.copy_from_slice(&answer[1..33]);
    let context = ProofContext {
        network_key: key,
        circle_id: circle,
        dialer_nonce: &dialer_nonce,
        listener_nonce: &listener_nonce,
        challenge: &challenge.public,
    };
    // A clock set before 1970 fails closed: every invite counts as expired.
    let now_ms = crate::clock::since_epoch_ms().unwrap_or(u64::MAX);
    // The key the proof must match, and, for an invite that is closed, why
    // (told only to a dialer whose proof shows it holds that invite).
    let (public, closed) = match kind {
        PROOF_MEMBER => (access.members.get(&crate::identity::MemberId(id)).copied(), None),
        PROOF_INVITE => match (access.invites.get(&id), access.closed_invites.get(&id)) {
            (Some((public, expires)), _) if now_ms > *expires => (Some(*public), Some(REFUSED_EXPIRED)),
            (Some((public, _)), _) => (Some(*public), None),
            (None, Some((public, why))) => (Some(*public), Some(*why)),
            (None, None) => (None, None),
        },
        _ => (None, None),
    };
    let expected = public.and_then(|public| proof(&context, kind, &id, &challenge.shared_with(&public)));
    let proven = expected.filter(|p| bool::from(p.tag.ct_eq(&answer[33..])));
    match (proven, closed) {
        (Some(_), Some(why)) => {
            let _ = stream.write_all(&[STATUS_INVITE_CLOSED, why]).await;
            let _ = stream.flush().await;
            Err(LinkError::Unproven)
        }
        (Some(p), None) => {
            stream.write_all(&[STATUS_ADMITTED]).await?;
            stream.flush().await?;
            let class = if kind == PROOF_MEMBER { LinkClass::Member } else { LinkClass::Joiner };
            stream.rekey(
                LinkCipher::new(&p.keys.dialer_to_listener),
                LinkCipher::new(&p.keys.listener_to_dialer),
                class,
            );
            Ok(stream)
        }
        (None, _) if kind == PROOF_INVITE && public.is_none() => {
            let _ = stream.write_all(&[STATUS_UNKNOWN_INVITE]).await;
            let _ = stream.flush().await;
            Err(LinkError::Unproven)
        }
        _ => {
            // Best effort: the dialer learns why before we close.
            let _ = stream.write_all(&[STATUS_REFUSED]).await;
            let _ = stream.flush().await;
            Err(LinkError::Unproven)
        }
    }
}

/// The byte stream after the handshake: each direction under its own
/// stream cipher. Writes are encrypted into a buffer and drained before
/// more are taken, so a partial write of the socket never loses keystream
/// position.
pub struct LinkStream<S> {
    inner: S,
    read: LinkCipher,
    write: LinkCipher,
    out: Vec<u8>,
    written: usize,
    /// What the dialer proved (a joiner's until a proof is accepted).
    class: LinkClass,
}

impl<S> LinkStream<S> {
    fn new(inner: S, read: LinkCipher, write: LinkCipher) -> Self {
        Self { inner, read, write, out: Vec::new(), written: 0, class: LinkClass::Joiner }
    }

    /// Switch both directions to new keys (after a proof). Only called
    /// with nothing buffered: every handshake write is flushed first.
    fn rekey(&mut self, read: LinkCipher, write: LinkCipher, class: LinkClass) {
        debug_assert!(self.out.is_empty());
        self.read = read;
        self.write = write;
        self.class = class;
    }

    /// What the dialer proved.
    pub fn class(&self) -> LinkClass {
        self.class
    }
}

impl<S: AsyncWrite + Unpin> LinkStream<S> {
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.out.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.out[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.out.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for LinkStream<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        this.read.apply(&mut buf[..n]);
        Poll::Ready(Ok(n))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for LinkStream<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        let n = buf.len().min(MAX_CHUNK);
        this.out.extend_from_slice(&buf[..n]);
        this.write.apply(&mut this.out);
        // The bytes are taken; what the socket does not take now goes on
        // the next write, flush or close.
        if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_close(cx)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::HashMap;

    use libp2p::tcp::tokio::TcpStream;

    use super::*;
    use crate::identity::{MemberId, NoiseSecret};

    const CIRCLE: [u8; 32] = [4; 32];

    fn access(dial: [u8; 32], open: bool, grace: &[[u8; 32]], members: &[(u8, &NoiseSecret)]) -> SharedAccess {
        LinkShared::new(NetworkAccess {
            dial: Zeroizing::new(dial),
            open,
            grace: grace.iter().map(|k| Zeroizing::new(*k)).collect(),
            members: members.iter().map(|(id, n)| (MemberId([*id; 32]), n.public())).collect::<HashMap<_, _>>(),
            invites: HashMap::new(),
            closed_invites: HashMap::new(),
            me: None,
            invite: None,
        })
    }

    fn with_me(a: SharedAccess, id: u8, noise: &NoiseSecret) -> SharedAccess {
        a.update(|a| a.me = Some((MemberId([id; 32]), noise.duplicate())));
        a
    }

    /// The address the test links' listener notes the dialer under.
    fn dialer_address() -> libp2p::Multiaddr {
        "/ip4/127.0.0.1/tcp/40000".parse().unwrap()
    }

    /// Dial `listener` from `dialer` over loopback TCP; both results, and
    /// on success an echo of a payload larger than one chunk.
    async fn link(dialer: SharedAccess, listener: SharedAccess) -> (Result<(), LinkError>, Result<(), LinkError>) {
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = tcp.local_addr().unwrap();
        let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let expected = payload.clone();
        let listening = tokio::spawn(async move {
            let (socket, _) = tcp.accept().await.unwrap();
            let endpoint = ConnectedPoint::Listener { local_addr: dialer_address(), send_back_addr: dialer_address() };
            let mut stream = upgrade(TcpStream(socket), endpoint, CIRCLE, listener).await?;
            let mut got = vec![0u8; expected.len()];
            stream.read_exact(&mut got).await?;
            assert_eq!(got, expected);
            stream.write_all(b"done").await?;
            stream.flush().await?;
            Ok::<(), LinkError>(())
        });
        let socket = tokio::net::TcpStream::connect(address).await.unwrap();
        let dialing = async {
            let endpoint = ConnectedPoint::Dialer {
                address: dialer_address(),
                role_override: Endpoint::Dialer,
                port_use: libp2p::core::transport::PortUse::New,
            };
            let mut stream = upgrade(TcpStream(socket), endpoint, CIRCLE, dialer).await?;
            stream.write_all(&payload).await?;
            stream.flush().await?;
            let mut done = [0u8; 4];
            stream.read_exact(&mut done).await?;
            assert_eq!(&done, b"done");
            Ok::<(), LinkError>(())
        };
        let dialed = dialing.await;
        (dialed, listening.await.unwrap())
    }

    /// Issue 14, attack 5: every invite carries the current network key,
    /// and in v1 that key alone opened a link, served like a member's.
    #[tokio::test]
    async fn the_network_key_alone_opens_no_link() {
        let (d, l) = link(access([1; 32], true, &[], &[]), access([1; 32], true, &[[0; 32]], &[])).await;
        // Asked for a proof, the dialer has none to give and hangs up.
        assert!(matches!(d, Err(LinkError::KeyRetired)) && l.is_err(), "{d:?} {l:?}");
    }

    #[tokio::test]
    async fn a_member_proves_on_the_current_key_and_is_noted_as_a_member() {
        let bo = NoiseSecret::from_bytes([21; 32]);
        let listener = access([1; 32], true, &[], &[(2, &bo)]);
        let (d, l) = link(with_me(access([1; 32], true, &[], &[]), 2, &bo), listener.clone()).await;
        assert!(d.is_ok() && l.is_ok(), "{d:?} {l:?}");
        assert_eq!(listener.inbound_class(&dialer_address()), LinkClass::Member);
        // Any other address, or none noted: a joiner's (fails closed).
        assert_eq!(listener.inbound_class(&"/ip4/127.0.0.1/tcp/1".parse().unwrap()), LinkClass::Joiner);
    }

    #[tokio::test]
    async fn a_current_member_on_an_old_key_gets_in_with_a_proof() {
        let bo = NoiseSecret::from_bytes([21; 32]);
        let returning = with_me(access([1; 32], true, &[], &[]), 2, &bo);
        let (d, l) = link(returning, access([9; 32], true, &[[1; 32]], &[(2, &bo)])).await;
        assert!(d.is_ok() && l.is_ok(), "{d:?} {l:?}");
    }

    #[tokio::test]
    async fn a_removed_member_on_an_old_key_is_refused() {
        let bo = NoiseSecret::from_bytes([21; 32]);
        let removed = NoiseSecret::from_bytes([22; 32]);
        // Not in the listener's roster: refused, whichever id it claims.
        let (d, l) =
            link(with_me(access([1; 32], true, &[], &[]), 3, &removed), access([9; 32], true, &[[1; 32]], &[(2, &bo)]))
                .await;
        assert!(matches!(d, Err(LinkError::Refused)), "{d:?}");
        assert!(matches!(l, Err(LinkError::Unproven)), "{l:?}");
        // Claiming a current member's id without its key: refused too.
        let (d, l) =
            link(with_me(access([1; 32], true, &[], &[]), 2, &removed), access([9; 32], true, &[[1; 32]], &[(2, &bo)]))
                .await;
        assert!(matches!(d, Err(LinkError::Refused)) && matches!(l, Err(LinkError::Unproven)), "{d:?} {l:?}");
    }

    #[tokio::test]
    async fn a_joiner_with_an_open_invite_gets_in_on_an_old_key_and_not_once_it_closed() {
        let code_key = crate::circle::InviteSecret::from_seed(&[31; 32]);
        let op = [32u8; 32];
        let joiner = access([1; 32], true, &[], &[]);
        joiner.update(|a| a.invite = Some((op, code_key.dh_scalar())));
        let listener = access([9; 32], true, &[[1; 32]], &[]);
        let public = crate::crypto::link::invite_dh_public(&code_key.public()).unwrap();
        // Not heard of yet (its Invite still on the way): said so, not refused.
        let (d, _) = link(joiner.clone(), listener.clone()).await;
        assert!(matches!(d, Err(LinkError::InviteUnknown)), "{d:?}");
        assert_eq!(joiner.take_refusal(), None);
        listener.update(|a| {
            a.invites.insert(op, (public, u64::MAX));
        });
        let (d, l) = link(joiner.clone(), listener.clone()).await;
        assert!(d.is_ok() && l.is_ok(), "{d:?} {l:?}");
        assert_eq!(listener.inbound_class(&dialer_address()), LinkClass::Joiner);
        // On the current key, too, it is a joiner's link.
        let current = access([9; 32], true, &[], &[]);
        current.update(|a| {
            a.invites.insert(op, (public, u64::MAX));
        });
        let on_current = access([9; 32], true, &[], &[]);
        on_current.update(|a| a.invite = Some((op, code_key.dh_scalar())));
        let (d, l) = link(on_current, current.clone()).await;
        assert!(d.is_ok() && l.is_ok(), "{d:?} {l:?}");
        assert_eq!(current.inbound_class(&dialer_address()), LinkClass::Joiner);
        // Expired: refused, and the holder (its proof checked) told why.
        listener.update(|a| {
            a.invites.insert(op, (public, 1));
        });
        let (d, l) = link(joiner.clone(), listener.clone()).await;
        assert!(
            matches!(d, Err(LinkError::InviteClosed(InviteClosed::Expired))) && matches!(l, Err(LinkError::Unproven)),
            "{d:?} {l:?}"
        );
        assert_eq!(joiner.take_refusal(), Some(LinkRefusal::InviteClosed(InviteClosed::Expired)));
        // Used: the same.
        listener.update(|a| {
            a.invites.clear();
            a.closed_invites.insert(op, (public, REFUSED_USED));
        });
        let (d, _) = link(joiner.clone(), listener.clone()).await;
        assert!(matches!(d, Err(LinkError::InviteClosed(InviteClosed::Used))), "{d:?}");
        // A wrong key for that invite is told nothing about it.
        let stranger = access([1; 32], true, &[], &[]);
        let other_key = crate::circle::InviteSecret::from_seed(&[33; 32]);
        stranger.update(|a| a.invite = Some((op, other_key.dh_scalar())));
        let (d, _) = link(stranger, listener).await;
        assert!(matches!(d, Err(LinkError::Refused)), "{d:?}");
    }

    #[tokio::test]
    async fn mid_rekey_even_the_newest_key_needs_a_proof() {
        let removed = NoiseSecret::from_bytes([22; 32]);
        let (d, l) =
            link(with_me(access([1; 32], true, &[], &[]), 3, &removed), access([1; 32], false, &[], &[])).await;
        assert!(matches!(d, Err(LinkError::Refused)) && matches!(l, Err(LinkError::Unproven)), "{d:?} {l:?}");
    }

    #[tokio::test]
    async fn a_joiner_with_a_retired_key_is_told_so_and_an_unknown_key_gets_nothing() {
        let joiner = access([1; 32], true, &[], &[]);
        let (d, _) = link(joiner.clone(), access([9; 32], true, &[[1; 32]], &[])).await;
        assert!(matches!(d, Err(LinkError::KeyRetired)), "{d:?}");
        // Noted for the swarm to hand on with the failed dial, once.
        assert_eq!(joiner.take_refusal(), Some(LinkRefusal::KeyRetired));
        assert_eq!(joiner.take_refusal(), None);
        let (d, l) = link(access([5; 32], true, &[], &[]), access([9; 32], true, &[[1; 32]], &[])).await;
        assert!(d.is_err() && matches!(l, Err(LinkError::NoKey)), "{d:?} {l:?}");
    }
}
