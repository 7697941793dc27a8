//! The link handshake every TCP or onion connection of a circle's network
//! passes before libp2p's multistream, Noise and yamux (SPEC §2a). It
//! replaces libp2p's pnet, which knows a single key.
//!
//! Owns: the shared, live [`NetworkAccess`] of one circle's swarm (the
//! node updates it as the membership changes), the handshake on both
//! sides, and [`LinkStream`], the encrypted byte stream the rest of the
//! upgrade runs on. The keys and the proof are `crypto::link`.
//!
//! A link on the current network generation's key is admitted at once.
//! One on the key of an ended generation (a member who was offline when a
//! removal or rotation happened, or the removed member) is admitted only
//! after the dialer proves it holds the per-circle Noise static key of a
//! current member, and then both sides switch to stream keys bound to
//! that proof. The removed member, whatever transport id it uses, cannot.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll, ready};

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::core::{ConnectedPoint, Endpoint};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::crypto::link::{
    Challenge, LinkCipher, MAGIC, NONCE_LEN, PROOF_INVITE, PROOF_MEMBER, ProofContext, STATUS_ADMITTED, STATUS_PROVE,
    STATUS_REFUSED, dialer_shared, invite_shared, proof, stream_keys,
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
}

pub type SharedAccess = Arc<LinkShared>;

impl LinkShared {
    pub fn new(access: NetworkAccess) -> SharedAccess {
        Arc::new(Self { access: RwLock::new(Arc::new(access)), refusal: Mutex::new(None) })
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
    /// The member refused our proof (not a member, or the invite closed).
    Refused,
    /// Our network key is of an ended generation and we hold no proof.
    KeyRetired,
}

impl LinkRefusal {
    pub fn error(self) -> LinkError {
        match self {
            LinkRefusal::Refused => LinkError::Refused,
            LinkRefusal::KeyRetired => LinkError::KeyRetired,
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

/// Run the handshake on `socket` for `circle`.
pub async fn upgrade<S>(
    socket: S,
    role: Endpoint,
    circle: [u8; 32],
    shared: SharedAccess,
) -> Result<LinkStream<S>, LinkError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let rules = shared.snapshot()?;
    let result = match role {
        Endpoint::Dialer => dial(socket, &circle, &rules).await,
        Endpoint::Listener => listen(socket, &circle, &rules).await,
    };
    match &result {
        Ok(stream) => tracing::debug!("link up as {role:?} (proven: {})", stream.proven),
        Err(e) => tracing::debug!("link refused as {role:?}: {e}"),
    }
    match (&result, role) {
        (Err(LinkError::Refused), Endpoint::Dialer) => shared.note_refusal(LinkRefusal::Refused),
        (Err(LinkError::KeyRetired), Endpoint::Dialer) => shared.note_refusal(LinkRefusal::KeyRetired),
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
        STATUS_ADMITTED => Ok(stream),
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
                    stream.rekey(
                        LinkCipher::new(&proven.keys.listener_to_dialer),
                        LinkCipher::new(&proven.keys.dialer_to_listener),
                    );
                    Ok(stream)
                }
                STATUS_REFUSED => Err(LinkError::Refused),
                _ => Err(LinkError::Malformed),
            }
        }
        STATUS_REFUSED => Err(LinkError::Refused),
        _ => Err(LinkError::Malformed),
    }
}

/// The keys a listener tries, each with whether it needs a proof.
fn candidates(access: &NetworkAccess) -> Vec<(&[u8; 32], bool)> {
    let mut keys: Vec<(&[u8; 32], bool)> = vec![(&*access.dial, !access.open)];
    keys.extend(access.grace.iter().rev().map(|k| (&**k, true)));
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
    for (key, needs_proof) in candidates(access) {
        let keys = stream_keys(key, circle, &dialer_nonce, &listener_nonce);
        let mut read = LinkCipher::new(&keys.dialer_to_listener);
        let mut opened = sealed;
        read.apply(&mut opened);
        if bool::from(opened.ct_eq(&MAGIC)) {
            found = Some((key, needs_proof, read, LinkCipher::new(&keys.listener_to_dialer)));
            break;
        }
    }
    let Some((key, needs_proof, read, write)) = found else {
        return Err(LinkError::NoKey);
    };
    let mut stream = LinkStream::new(socket, read, write);
    if !needs_proof {
        stream.write_all(&[STATUS_ADMITTED]).await?;
        stream.flush().await?;
        return Ok(stream);
    }
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
    let public = match kind {
        PROOF_MEMBER => access.members.get(&crate::identity::MemberId(id)).copied(),
        PROOF_INVITE => access.invites.get(&id).filter(|(_, expires)| now_ms <= *expires).map(|(public, _)| *public),
        _ => None,
    };
    let expected = public.and_then(|public| proof(&context, kind, &id, &challenge.shared_with(&public)));
    match expected {
        Some(p) if bool::from(p.tag.ct_eq(&answer[33..])) => {
            stream.write_all(&[STATUS_ADMITTED]).await?;
            stream.flush().await?;
            stream.rekey(LinkCipher::new(&p.keys.dialer_to_listener), LinkCipher::new(&p.keys.listener_to_dialer));
            Ok(stream)
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
    /// Admitted on a member proof (an ended generation's key).
    proven: bool,
}

impl<S> LinkStream<S> {
    fn new(inner: S, read: LinkCipher, write: LinkCipher) -> Self {
        Self { inner, read, write, out: Vec::new(), written: 0, proven: false }
    }

    /// Switch both directions to new keys (after a proof). Only called
    /// with nothing buffered: every handshake write is flushed first.
    fn rekey(&mut self, read: LinkCipher, write: LinkCipher) {
        debug_assert!(self.out.is_empty());
        self.read = read;
        self.write = write;
        self.proven = true;
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
            me: None,
            invite: None,
        })
    }

    fn with_me(a: SharedAccess, id: u8, noise: &NoiseSecret) -> SharedAccess {
        a.update(|a| a.me = Some((MemberId([id; 32]), noise.duplicate())));
        a
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
            let mut stream = upgrade(TcpStream(socket), Endpoint::Listener, CIRCLE, listener).await?;
            let mut got = vec![0u8; expected.len()];
            stream.read_exact(&mut got).await?;
            assert_eq!(got, expected);
            stream.write_all(b"done").await?;
            stream.flush().await?;
            Ok::<(), LinkError>(())
        });
        let socket = tokio::net::TcpStream::connect(address).await.unwrap();
        let dialing = async {
            let mut stream = upgrade(TcpStream(socket), Endpoint::Dialer, CIRCLE, dialer).await?;
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

    #[tokio::test]
    async fn the_current_key_links_without_a_proof() {
        let (d, l) = link(access([1; 32], true, &[], &[]), access([1; 32], true, &[[0; 32]], &[])).await;
        assert!(d.is_ok() && l.is_ok(), "{d:?} {l:?}");
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
        listener.update(|a| {
            a.invites.insert(op, (public, u64::MAX));
        });
        let (d, l) = link(joiner.clone(), listener.clone()).await;
        assert!(d.is_ok() && l.is_ok(), "{d:?} {l:?}");
        // Expired (or used, revoked: then it is not listed at all).
        listener.update(|a| {
            a.invites.insert(op, (public, 1));
        });
        let (d, l) = link(joiner.clone(), listener.clone()).await;
        assert!(matches!(d, Err(LinkError::Refused)) && matches!(l, Err(LinkError::Unproven)), "{d:?} {l:?}");
        listener.update(|a| a.invites.clear());
        let (d, _) = link(joiner, listener).await;
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
