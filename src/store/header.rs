//! The profile header: the only unencrypted file of a profile, holding the
//! argon2id parameters and two equally sized key slots.
//!
//! ```text
//! [8]  magic "KOLOPRF\0"
//! u8   format version (1)
//! u32  argon2 memory (KiB), u32 iterations, u32 parallelism
//! slot A: [16] salt [12] nonce [80] ChaCha20-Poly1305(kek_A, 64-byte payload)
//! slot B: the same layout
//! ```
//!
//! Slot A wraps the profile's master key (plus padding) under a key derived
//! from the passphrase. Slot B wraps the duress payload (a decoy display
//! name) under a key derived from the duress passphrase, or is random bytes
//! when no duress passphrase is set; the two cases have the same size and
//! look alike. Opening always derives both slot keys, so timing does not
//! say which slot matched.

use std::io::Write;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::StoreError;
use crate::crypto::aead;
use crate::entropy::{Entropy, random_array};
use crate::wire::{Reader, Writer};

pub const MAGIC: &[u8; 8] = b"KOLOPRF\0";
pub const FORMAT_VERSION: u8 = 1;
const PAYLOAD_LEN: usize = 64;
const SLOT_LEN: usize = 16 + 12 + PAYLOAD_LEN + 16;
pub const HEADER_LEN: usize = 8 + 1 + 12 + 2 * SLOT_LEN;
const AD_SLOT_A: &[u8] = b"kolo/v1/profile-slot-a";
const AD_SLOT_B: &[u8] = b"kolo/v1/profile-slot-b";

/// argon2id cost parameters, stored in the header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl KdfParams {
    /// What new profiles use: 64 MiB, 3 passes (OWASP-level for argon2id).
    pub const DEFAULT: KdfParams = KdfParams { memory_kib: 64 * 1024, iterations: 3, parallelism: 1 };
    /// Cheap parameters for tests only (still argon2id, still salted).
    pub const TESTING: KdfParams = KdfParams { memory_kib: 256, iterations: 1, parallelism: 1 };

    /// Whether a header's parameters are ones `init` (or the tests) could
    /// have written: at most [`KdfParams::DEFAULT`], at least
    /// [`KdfParams::TESTING`]. A tampered header asking for 4 GiB and 100
    /// passes would otherwise hang the node before the passphrase is tried.
    pub fn within_bounds(&self) -> bool {
        let (lo, hi) = (Self::TESTING, Self::DEFAULT);
        (lo.memory_kib..=hi.memory_kib).contains(&self.memory_kib)
            && (lo.iterations..=hi.iterations).contains(&self.iterations)
            && (lo.parallelism..=hi.parallelism).contains(&self.parallelism)
    }
}

#[derive(Clone)]
struct Slot {
    salt: [u8; 16],
    nonce: [u8; 12],
    sealed: Vec<u8>,
}

#[derive(Clone)]
pub struct Header {
    pub params: KdfParams,
    slot_a: Slot,
    slot_b: Slot,
}

/// What a passphrase opened.
pub enum Unlocked {
    /// The real profile's master key.
    Master(Zeroizing<[u8; 32]>),
    /// The duress passphrase: the decoy display name to recreate with.
    Duress(String),
}

fn kek(params: &KdfParams, passphrase: &[u8], salt: &[u8; 16]) -> Result<Zeroizing<[u8; 32]>, StoreError> {
    let p = argon2::Params::new(params.memory_kib, params.iterations, params.parallelism, Some(32))
        .map_err(|e| StoreError::Corrupt { path: PathBuf::new(), reason: format!("bad argon2 parameters: {e}") })?;
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, p);
    let mut out = Zeroizing::new([0u8; 32]);
    a.hash_password_into(passphrase, salt, &mut out[..])
        .map_err(|e| StoreError::Corrupt { path: PathBuf::new(), reason: format!("argon2 failed: {e}") })?;
    Ok(out)
}

fn params_bytes(params: &KdfParams) -> Vec<u8> {
    let mut w = Writer::new();
    w.u32(params.memory_kib).u32(params.iterations).u32(params.parallelism);
    w.finish()
}

fn seal_slot(
    params: &KdfParams,
    passphrase: &[u8],
    payload: &[u8; PAYLOAD_LEN],
    ad_label: &[u8],
    rng: &mut dyn Entropy,
) -> Result<Slot, StoreError> {
    let salt: [u8; 16] = random_array(rng);
    let nonce: [u8; 12] = random_array(rng);
    let key = kek(params, passphrase, &salt)?;
    let ad = [ad_label, &params_bytes(params)].concat();
    let sealed = aead::seal(&key, &nonce, &ad, payload)
        .map_err(|_| StoreError::Corrupt { path: PathBuf::new(), reason: "sealing a key slot failed".into() })?;
    Ok(Slot { salt, nonce, sealed })
}

fn random_slot(rng: &mut dyn Entropy) -> Slot {
    let mut sealed = vec![0u8; PAYLOAD_LEN + 16];
    rng.fill(&mut sealed);
    Slot { salt: random_array(rng), nonce: random_array(rng), sealed }
}

fn master_payload(master: &[u8; 32], rng: &mut dyn Entropy) -> Zeroizing<[u8; PAYLOAD_LEN]> {
    let mut p = Zeroizing::new([0u8; PAYLOAD_LEN]);
    p[..32].copy_from_slice(master);
    rng.fill(&mut p[32..]);
    p
}

impl Header {
    /// A new header with `master` in slot A and a random slot B.
    pub fn new(
        params: KdfParams,
        passphrase: &[u8],
        master: &[u8; 32],
        rng: &mut dyn Entropy,
    ) -> Result<Self, StoreError> {
        let payload = master_payload(master, rng);
        Ok(Self { params, slot_a: seal_slot(&params, passphrase, &payload, AD_SLOT_A, rng)?, slot_b: random_slot(rng) })
    }

    /// Try the passphrase against both slots (always deriving both keys).
    pub fn unlock(&self, passphrase: &[u8]) -> Result<Option<Unlocked>, StoreError> {
        let ad = params_bytes(&self.params);
        let key_a = kek(&self.params, passphrase, &self.slot_a.salt)?;
        let key_b = kek(&self.params, passphrase, &self.slot_b.salt)?;
        let a = aead::open(&key_a, &self.slot_a.nonce, &[AD_SLOT_A, &ad].concat(), &self.slot_a.sealed);
        let b = aead::open(&key_b, &self.slot_b.nonce, &[AD_SLOT_B, &ad].concat(), &self.slot_b.sealed);
        if let Ok(p) = a {
            let p = Zeroizing::new(p);
            let mut master = Zeroizing::new([0u8; 32]);
            master.copy_from_slice(&p[..32]);
            return Ok(Some(Unlocked::Master(master)));
        }
        if let Ok(p) = b {
            let p = Zeroizing::new(p);
            let len = usize::from(p[0]).min(PAYLOAD_LEN - 1);
            let name = String::from_utf8_lossy(&p[1..1 + len]).into_owned();
            return Ok(Some(Unlocked::Duress(name)));
        }
        Ok(None)
    }

    /// Re-wrap the master key under a new passphrase (fresh salt).
    pub fn rewrap(&mut self, passphrase: &[u8], master: &[u8; 32], rng: &mut dyn Entropy) -> Result<(), StoreError> {
        let payload = master_payload(master, rng);
        self.slot_a = seal_slot(&self.params, passphrase, &payload, AD_SLOT_A, rng)?;
        Ok(())
    }

    /// Set (or replace) the duress passphrase and the decoy name it opens with.
    pub fn set_duress(&mut self, passphrase: &[u8], decoy_name: &str, rng: &mut dyn Entropy) -> Result<(), StoreError> {
        let mut payload = Zeroizing::new([0u8; PAYLOAD_LEN]);
        let name = decoy_name.as_bytes();
        let len = name.len().min(PAYLOAD_LEN - 1);
        payload[0] = len as u8;
        payload[1..1 + len].copy_from_slice(&name[..len]);
        rng.fill(&mut payload[1 + len..]);
        self.slot_b = seal_slot(&self.params, passphrase, &payload, AD_SLOT_B, rng)?;
        Ok(())
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(HEADER_LEN);
        w.raw(MAGIC).u8(FORMAT_VERSION).raw(&params_bytes(&self.params));
        for s in [&self.slot_a, &self.slot_b] {
            w.raw(&s.salt).raw(&s.nonce).raw(&s.sealed);
        }
        w.finish()
    }

    pub fn decode(bytes: &[u8], path: &Path) -> Result<Self, StoreError> {
        let corrupt = |reason: &str| StoreError::Corrupt { path: path.to_owned(), reason: reason.to_owned() };
        if bytes.len() < 9 || &bytes[..8] != MAGIC {
            return Err(corrupt("not a kolo profile header"));
        }
        if bytes[8] > FORMAT_VERSION {
            return Err(StoreError::Newer {
                path: path.to_owned(),
                found: u32::from(bytes[8]),
                supported: u32::from(FORMAT_VERSION),
            });
        }
        if bytes[8] != FORMAT_VERSION {
            // No format before 1 ever existed: a damaged header.
            return Err(corrupt("unknown header format version"));
        }
        if bytes.len() != HEADER_LEN {
            return Err(corrupt("header has the wrong length (truncated?)"));
        }
        let mut r = Reader::new(&bytes[9..]);
        let read = |r: &mut Reader<'_>| -> Result<Slot, crate::wire::WireError> {
            Ok(Slot { salt: r.array()?, nonce: r.array()?, sealed: r.take(PAYLOAD_LEN + 16)?.to_vec() })
        };
        let parse = |r: &mut Reader<'_>| -> Result<Header, crate::wire::WireError> {
            let params = KdfParams { memory_kib: r.u32()?, iterations: r.u32()?, parallelism: r.u32()? };
            let slot_a = read(r)?;
            let slot_b = read(r)?;
            Ok(Header { params, slot_a, slot_b })
        };
        let header = parse(&mut r).map_err(|_| corrupt("header is truncated"))?;
        if !header.params.within_bounds() {
            return Err(corrupt("argon2 parameters out of range"));
        }
        Ok(header)
    }

    /// Write the header over the old one, in place: the same file, the same
    /// offset, the same length, then `fsync`. Never a temporary file and a
    /// rename: a renamed-over header leaves the old key slots in freed
    /// blocks of the device, where the old passphrase still opens them.
    /// The header (237 bytes) fits one 512-byte sector, which disks write
    /// whole.
    pub fn write(&self, path: &Path) -> Result<(), StoreError> {
        let io = |e: std::io::Error| StoreError::Io { path: path.to_owned(), source: e };
        let bytes = self.encode();
        let mut f = private_file(path).map_err(io)?;
        f.write_all(&bytes).map_err(io)?;
        f.set_len(bytes.len() as u64).map_err(io)?;
        f.sync_all().map_err(io)?;
        if let Some(dir) = path.parent()
            && let Ok(d) = std::fs::File::open(dir)
        {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

/// Open `path` for writing at offset 0 without truncating it (an existing
/// file is overwritten in place), creating it readable by its owner only.
pub(crate) fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::entropy::SeededEntropy;

    #[test]
    fn slots_open_only_with_their_passphrase() {
        let mut rng = SeededEntropy::from_u64(1);
        let mut h = Header::new(KdfParams::TESTING, b"correct horse", &[7; 32], &mut rng).unwrap();
        assert!(matches!(h.unlock(b"correct horse").unwrap(), Some(Unlocked::Master(m)) if *m == [7; 32]));
        assert!(h.unlock(b"wrong").unwrap().is_none());
        h.set_duress(b"under duress", "Ana", &mut rng).unwrap();
        assert!(matches!(h.unlock(b"under duress").unwrap(), Some(Unlocked::Duress(n)) if n == "Ana"));
        let bytes = h.encode();
        assert_eq!(bytes.len(), HEADER_LEN);
        let back = Header::decode(&bytes, Path::new("x")).unwrap();
        assert!(back.unlock(b"correct horse").unwrap().is_some());
        h.rewrap(b"new pass", &[7; 32], &mut rng).unwrap();
        assert!(h.unlock(b"correct horse").unwrap().is_none());
        assert!(h.unlock(b"new pass").unwrap().is_some());
    }

    #[test]
    fn damaged_headers_are_named_errors() {
        assert!(matches!(Header::decode(b"garbage", Path::new("h")), Err(StoreError::Corrupt { .. })));
        let mut rng = SeededEntropy::from_u64(2);
        let mut bytes = Header::new(KdfParams::TESTING, b"p", &[1; 32], &mut rng).unwrap().encode();
        bytes.truncate(50);
        assert!(matches!(Header::decode(&bytes, Path::new("h")), Err(StoreError::Corrupt { .. })));
        bytes[8] = 9;
        assert!(matches!(Header::decode(&bytes, Path::new("h")), Err(StoreError::Newer { .. })));
    }

    /// Found by the `store_header` fuzz target (input kept in
    /// fuzz/corpus/store_header/): a format version 0, which never existed,
    /// was read as version 1.
    #[test]
    fn a_format_version_that_never_existed_is_damage() {
        let mut rng = SeededEntropy::from_u64(3);
        let mut bytes = Header::new(KdfParams::TESTING, b"p", &[1; 32], &mut rng).unwrap().encode();
        bytes[8] = 0;
        assert!(matches!(Header::decode(&bytes, Path::new("h")), Err(StoreError::Corrupt { .. })));
    }

    /// A tampered header asking for more than `init` ever writes (here
    /// 4 GiB and 100 passes, which the old bound accepted) is damage, not
    /// an hour of argon2.
    #[test]
    fn argon2_parameters_beyond_what_init_writes_are_refused() {
        let mut rng = SeededEntropy::from_u64(4);
        let good = Header::new(KdfParams::TESTING, b"p", &[1; 32], &mut rng).unwrap().encode();
        for (offset, value) in [(9, 4 * 1024 * 1024u32), (13, 100), (17, 64), (9, 8), (13, 0)] {
            let mut bytes = good.clone();
            bytes[offset..offset + 4].copy_from_slice(&value.to_be_bytes());
            assert!(
                matches!(Header::decode(&bytes, Path::new("h")), Err(StoreError::Corrupt { .. })),
                "offset {offset} value {value} accepted"
            );
        }
        assert!(Header::decode(&good, Path::new("h")).is_ok());
        assert!(KdfParams::DEFAULT.within_bounds());
    }

    /// `write` replaces the header in place (same inode), never by rename.
    #[cfg(unix)]
    #[test]
    fn the_header_is_rewritten_in_place() {
        use std::os::unix::fs::MetadataExt;
        let dir = std::env::temp_dir().join(format!("kolo-header-in-place-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("profile.header");
        let mut rng = SeededEntropy::from_u64(5);
        let mut h = Header::new(KdfParams::TESTING, b"p", &[1; 32], &mut rng).unwrap();
        h.write(&path).unwrap();
        let inode = std::fs::metadata(&path).unwrap().ino();
        h.rewrap(b"q", &[1; 32], &mut rng).unwrap();
        h.write(&path).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.ino(), inode, "the header was replaced by another file");
        assert_eq!(meta.len(), HEADER_LEN as u64);
        assert_eq!(std::fs::read(&path).unwrap(), h.encode());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
