//! The encrypted profile: an adapter that persists exactly what the engine
//! asks (`engine::Record`) in a SQLCipher database, and gives it back at
//! start-up.
//!
//! Owns: the profile directory (`profile.header` + `profile.db`), the
//! passphrase-derived keys (argon2id, see [`header`]), schema migrations,
//! crypto-shredding of disappearing messages, the duress passphrase, the
//! panic wipe, and the in-memory ephemeral mode.
//!
//! **Crypto-shredding.** Every message body is sealed under the key of its
//! *expiry bucket* (one bucket per minute of deadline; bucket 0 for
//! messages that never expire). Bucket keys are wrapped under a wrapping
//! key. When a bucket's time passes, its messages are deleted, its key is
//! deleted, and every surviving bucket key is re-wrapped under a *fresh*
//! wrapping key, all in one transaction: a stale copy of a page that still
//! held the destroyed key is wrapped under a wrapping key that no longer
//! exists. Deletion uses `secure_delete`, and temporary tables live in
//! memory.
//!
//! **Nothing old is left in freed blocks.** SQLite's rollback journal
//! holds, during a transaction, the old content of every page it changes
//! (the old wrapping key, the destroyed bucket key, the message). Deleting
//! the journal (`journal_mode = DELETE`) frees those blocks without
//! overwriting them, and with the passphrase they decrypt. So the journal
//! is kept (`PERSIST`) and, after every commit, overwritten with zeros in
//! place, synced, and only then truncated ([`scrub_journal`]). The
//! database file itself is only ever written in place. The header is
//! rewritten in place, never renamed over ([`header::Header::write`]), and
//! [`destroy`] overwrites every file kolo writes before unlinking it.
//!
//! What this cannot promise (see `docs/threat-model.md`): erasure on flash
//! storage with wear-levelling, on copy-on-write file systems, or of
//! memory swapped to disk.

pub mod codec;
pub mod header;

#[cfg(feature = "app")]
use std::path::Path;
use std::path::PathBuf;

#[cfg(feature = "app")]
use rusqlite::{Connection, OptionalExtension, params};
#[cfg(feature = "app")]
use zeroize::Zeroizing;

pub use header::KdfParams;
#[cfg(feature = "app")]
use header::{Header, Unlocked};

#[cfg(feature = "app")]
use std::collections::HashMap;

#[cfg(feature = "app")]
use crate::circle::CircleId;
#[cfg(feature = "app")]
use crate::crypto::{aead, kdf};
#[cfg(feature = "app")]
use crate::engine::{Engine, MessageView, Record, StoredCircle};
#[cfg(feature = "app")]
use crate::entropy::{Entropy, random_array};
#[cfg(feature = "app")]
use crate::identity::{IdentitySecret, hex};

pub const DB_FILE: &str = "profile.db";
pub const HEADER_FILE: &str = "profile.header";
/// SQLite's rollback journal beside the database (kept, and zeroed after
/// every commit).
pub const JOURNAL_FILE: &str = "profile.db-journal";
/// The lock a running node holds for its whole life.
pub const LOCK_FILE: &str = "daemon.lock";
/// Warnings and errors of the node (no content, names or addresses).
pub const LOG_FILE: &str = "kolo.log";
/// Key bindings the user changed (`ctrl-x = quit` per line).
pub const KEYS_FILE: &str = "keys.conf";
/// Every file kolo writes in a profile directory, header first: what
/// [`destroy`] overwrites and removes. (`profile.header.tmp` was written
/// by older builds; `control.sock` is the node's control socket.)
pub const PROFILE_FILES: &[&str] = &[
    HEADER_FILE,
    "profile.header.tmp",
    DB_FILE,
    JOURNAL_FILE,
    "profile.db-wal",
    "profile.db-shm",
    LOG_FILE,
    LOCK_FILE,
    KEYS_FILE,
    "control.sock",
];
/// Schema version this build writes; older ones are migrated, newer refused.
pub const SCHEMA_VERSION: u32 = 3;
/// Width of an expiry bucket.
pub const BUCKET_MS: u64 = 60_000;

#[cfg(feature = "app")]
const LABEL_DB_KEY: &[u8] = b"kolo/v1/profile-db-key";
#[cfg(feature = "app")]
const AD_BUCKET_KEY: &[u8] = b"kolo/v1/bucket-key";
#[cfg(feature = "app")]
const AD_MESSAGE: &[u8] = b"kolo/v1/stored-message";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("wrong passphrase for the profile in {0}")]
    WrongPassphrase(PathBuf),
    #[error("no kolo profile in {0}; create one with `kolo init --name NAME`")]
    NoProfile(PathBuf),
    #[error("a kolo profile already exists in {0}")]
    AlreadyExists(PathBuf),
    #[error("{path} is damaged or not part of a kolo profile: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("{path} was written by a newer kolo (format {found}; this build reads up to {supported}); upgrade kolo")]
    Newer { path: PathBuf, found: u32, supported: u32 },
    #[error("cannot access {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("profile database error in {path}: {reason}")]
    Db { path: PathBuf, reason: String },
}

#[cfg(feature = "app")]
/// An open profile.
pub struct Profile {
    conn: Connection,
    /// `None` in ephemeral mode.
    dir: Option<PathBuf>,
    header: Option<Header>,
    master: Zeroizing<[u8; 32]>,
}

#[cfg(feature = "app")]
/// What opening a profile yields.
pub struct Opened {
    pub profile: Profile,
    pub identity: IdentitySecret,
    pub display_name: String,
    pub circles: Vec<StoredCircle>,
}

#[cfg(feature = "app")]
fn db_path(dir: &Path) -> PathBuf {
    dir.join(DB_FILE)
}

#[cfg(feature = "app")]
fn header_path(dir: &Path) -> PathBuf {
    dir.join(HEADER_FILE)
}

#[cfg(feature = "app")]
impl Profile {
    fn db_err(&self, e: rusqlite::Error) -> StoreError {
        let path = self.dir.as_deref().map(db_path).unwrap_or_else(|| PathBuf::from(":memory:"));
        StoreError::Db { path, reason: e.to_string() }
    }

    /// Create a new profile in `dir` with a fresh identity.
    pub fn create(
        dir: &Path,
        passphrase: &str,
        display_name: &str,
        params: KdfParams,
        rng: &mut dyn Entropy,
    ) -> Result<Opened, StoreError> {
        let io = |e: std::io::Error| StoreError::Io { path: dir.to_owned(), source: e };
        if header_path(dir).exists() {
            return Err(StoreError::AlreadyExists(dir.to_owned()));
        }
        std::fs::create_dir_all(dir).map_err(io)?;
        restrict_permissions(dir);
        // A database without a header is an interrupted creation: start over.
        remove_db_files(dir);
        let master = Zeroizing::new(random_array::<32>(rng));
        let conn = open_db(&db_path(dir), &master)?;
        let mut profile = Profile { conn, dir: Some(dir.to_owned()), header: None, master };
        profile.migrate()?;
        restrict_files(dir);
        let identity = IdentitySecret::generate(rng);
        profile.init_contents(&identity, display_name, rng)?;
        let header = Header::new(params, passphrase.as_bytes(), &profile.master, rng)?;
        header.write(&header_path(dir))?;
        profile.header = Some(header);
        Ok(Opened { profile, identity, display_name: display_name.to_owned(), circles: Vec::new() })
    }

    /// An in-memory profile that writes nothing anywhere (`--ephemeral`).
    pub fn ephemeral(display_name: &str, rng: &mut dyn Entropy) -> Result<Opened, StoreError> {
        let conn = Connection::open_in_memory()
            .map_err(|e| StoreError::Db { path: ":memory:".into(), reason: e.to_string() })?;
        conn.execute_batch("PRAGMA temp_store = MEMORY;")
            .map_err(|e| StoreError::Db { path: ":memory:".into(), reason: e.to_string() })?;
        let mut profile = Profile { conn, dir: None, header: None, master: Zeroizing::new(random_array(rng)) };
        profile.migrate()?;
        let identity = IdentitySecret::generate(rng);
        profile.init_contents(&identity, display_name, rng)?;
        Ok(Opened { profile, identity, display_name: display_name.to_owned(), circles: Vec::new() })
    }

    /// Open the profile in `dir`. Expired messages are purged before
    /// anything is returned. The duress passphrase silently destroys the
    /// real profile and opens a fresh one. ([`unlock`] then
    /// [`Profile::open_unlocked`] or [`Profile::replace_after_duress`], for
    /// callers that must stop a running node or take a lock in between.)
    pub fn open(dir: &Path, passphrase: &str, now_ms: u64, rng: &mut dyn Entropy) -> Result<Opened, StoreError> {
        match unlock(dir, passphrase)? {
            Access::Real(key) => Profile::open_unlocked(dir, key, now_ms, rng),
            Access::Duress(duress) => Profile::replace_after_duress(dir, passphrase, duress, rng),
        }
    }

    /// Open the profile whose header [`unlock`] opened with the real
    /// passphrase. Files are first touched here, after the passphrase was
    /// verified.
    pub fn open_unlocked(dir: &Path, key: RealKey, now_ms: u64, rng: &mut dyn Entropy) -> Result<Opened, StoreError> {
        let RealKey { header, master } = key;
        let dbp = db_path(dir);
        match std::fs::metadata(&dbp) {
            Err(_) => return Err(StoreError::Corrupt { path: dbp, reason: "the database file is missing".into() }),
            // A real profile database is never empty: refuse before SQLite
            // would write a new schema into it.
            Ok(m) if m.len() == 0 => {
                return Err(StoreError::Corrupt { path: dbp, reason: "the database file is empty".into() });
            }
            Ok(_) => {}
        }
        let conn = open_db(&dbp, &master)?;
        let mut profile = Profile { conn, dir: Some(dir.to_owned()), header: Some(header), master };
        profile.check_version()?;
        if profile.user_version()? == 0 {
            return Err(StoreError::Corrupt { path: dbp, reason: "the database holds no profile".into() });
        }
        restrict_permissions(dir);
        restrict_files(dir);
        // A journal left by a crash was rolled back by the first read
        // (`open_db`); whatever it still holds goes now.
        profile.scrub_journal()?;
        profile.migrate()?;
        profile.purge_expired(now_ms, rng)?;
        let (identity, display_name) = profile.load_identity()?;
        let circles = profile.load_circles()?;
        Ok(Opened { profile, identity, display_name, circles })
    }

    /// The duress passphrase was entered: destroy the real profile (every
    /// file, the directory) and create a new one in its place, under the
    /// duress passphrase, with the decoy display name. Whoever calls this
    /// should have stopped a running node and hold no file of the profile
    /// open.
    pub fn replace_after_duress(
        dir: &Path,
        passphrase: &str,
        duress: DuressKey,
        rng: &mut dyn Entropy,
    ) -> Result<Opened, StoreError> {
        destroy(dir)?;
        Profile::create(dir, passphrase, &duress.decoy_name, duress.params, rng)
    }

    pub fn is_ephemeral(&self) -> bool {
        self.dir.is_none()
    }

    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Replace the passphrase (the data key stays; only slot A is re-wrapped).
    pub fn change_passphrase(&mut self, new: &str, rng: &mut dyn Entropy) -> Result<(), StoreError> {
        let (Some(dir), Some(header)) = (self.dir.clone(), self.header.as_mut()) else {
            return Ok(()); // Ephemeral profiles have no passphrase.
        };
        header.rewrap(new.as_bytes(), &self.master, rng)?;
        header.write(&header_path(&dir))
    }

    /// Overwrite the rollback journal with zeros in place, sync, then
    /// truncate it: after this no block of the device holds a page image
    /// from before the last commit. Called after every commit. (With
    /// `journal_mode = PERSIST` SQLite keeps the file and only zeroes its
    /// header; a zeroed journal is not a hot journal.)
    fn scrub_journal(&self) -> Result<(), StoreError> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        scrub_file(&dir.join(JOURNAL_FILE))
    }

    fn user_version(&self) -> Result<u32, StoreError> {
        self.conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(|e| self.corrupt(e))
    }

    /// Set the duress passphrase; entering it instead of the real one
    /// destroys this profile and opens an empty one named `decoy_name`.
    pub fn set_duress(&mut self, duress: &str, decoy_name: &str, rng: &mut dyn Entropy) -> Result<(), StoreError> {
        let (Some(dir), Some(header)) = (self.dir.clone(), self.header.as_mut()) else {
            return Ok(());
        };
        header.set_duress(duress.as_bytes(), decoy_name, rng)?;
        header.write(&header_path(&dir))
    }

    fn check_version(&self) -> Result<(), StoreError> {
        let v: u32 = self.conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(|e| self.corrupt(e))?;
        if v > SCHEMA_VERSION {
            let path = self.dir.as_deref().map(db_path).unwrap_or_default();
            return Err(StoreError::Newer { path, found: v, supported: SCHEMA_VERSION });
        }
        Ok(())
    }

    fn corrupt(&self, e: rusqlite::Error) -> StoreError {
        let path = self.dir.as_deref().map(db_path).unwrap_or_default();
        StoreError::Corrupt { path, reason: e.to_string() }
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let v: u32 = self.conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(|e| self.corrupt(e))?;
        if v > SCHEMA_VERSION {
            return self.check_version();
        }
        for (version, sql) in MIGRATIONS.iter().skip(v as usize) {
            let tx =
                self.conn.transaction().map_err(|e| StoreError::Db { path: PathBuf::new(), reason: e.to_string() })?;
            tx.execute_batch(sql).map_err(|e| StoreError::Db { path: PathBuf::new(), reason: e.to_string() })?;
            tx.pragma_update(None, "user_version", version)
                .map_err(|e| StoreError::Db { path: PathBuf::new(), reason: e.to_string() })?;
            tx.commit().map_err(|e| StoreError::Db { path: PathBuf::new(), reason: e.to_string() })?;
            self.scrub_journal()?;
        }
        Ok(())
    }

    fn init_contents(
        &mut self,
        identity: &IdentitySecret,
        name: &str,
        rng: &mut dyn Entropy,
    ) -> Result<(), StoreError> {
        let seed = Zeroizing::new(identity.expose_seed());
        let wrapping = Zeroizing::new(random_array::<32>(rng));
        let tx = self.conn.transaction().map_err(|e| StoreError::Db { path: PathBuf::new(), reason: e.to_string() })?;
        let r: Result<(), rusqlite::Error> = (|| {
            tx.execute("INSERT INTO meta (key, value) VALUES ('identity_seed', ?1)", params![&seed[..]])?;
            tx.execute("INSERT INTO meta (key, value) VALUES ('display_name', ?1)", params![name.as_bytes()])?;
            tx.execute("INSERT INTO keyring (id, wrapping_key) VALUES (1, ?1)", params![&wrapping[..]])?;
            Ok(())
        })();
        r.map_err(|e| StoreError::Db { path: PathBuf::new(), reason: e.to_string() })?;
        tx.commit().map_err(|e| self.db_err(e))?;
        self.scrub_journal()
    }

    fn load_identity(&self) -> Result<(IdentitySecret, String), StoreError> {
        let get = |key: &str| -> Result<Option<Vec<u8>>, rusqlite::Error> {
            self.conn.query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| r.get(0)).optional()
        };
        let seed = get("identity_seed").map_err(|e| self.corrupt(e))?.map(Zeroizing::new);
        let name = get("display_name").map_err(|e| self.corrupt(e))?;
        let (Some(seed), Some(name)) = (seed, name) else {
            let path = self.dir.as_deref().map(db_path).unwrap_or_default();
            return Err(StoreError::Corrupt { path, reason: "the identity is missing".into() });
        };
        let seed: [u8; 32] = seed[..].try_into().map_err(|_| StoreError::Corrupt {
            path: self.dir.as_deref().map(db_path).unwrap_or_default(),
            reason: "the identity has the wrong length".into(),
        })?;
        let identity = IdentitySecret::from_seed(&seed);
        let mut seed = seed;
        zeroize::Zeroize::zeroize(&mut seed);
        Ok((identity, String::from_utf8_lossy(&name).into_owned()))
    }

    /// Every circle as stored (what `open` hands back), for an engine that
    /// must return to what is durable after a failed write.
    pub fn load_circles(&self) -> Result<Vec<StoredCircle>, StoreError> {
        let mut out = Vec::new();
        let rows: Vec<(Vec<u8>, Vec<u8>)> = {
            let mut st = self.conn.prepare("SELECT id, state FROM circles").map_err(|e| self.corrupt(e))?;
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).and_then(|it| it.collect()).map_err(|e| self.corrupt(e))?
        };
        for (id, state) in rows {
            let messages = self.load_messages(&id)?;
            let frames: Vec<(Vec<u8>, u64)> = {
                let mut st = self
                    .conn
                    .prepare("SELECT bytes, expires_at FROM frames WHERE circle = ?1")
                    .map_err(|e| self.corrupt(e))?;
                st.query_map(params![id], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))
                    .and_then(|it| it.collect())
                    .map_err(|e| self.corrupt(e))?
            };
            let chains: Vec<(Vec<u8>, Vec<u8>)> = {
                let mut st = self
                    .conn
                    .prepare("SELECT key_id, state FROM chains WHERE circle = ?1")
                    .map_err(|e| self.corrupt(e))?;
                st.query_map(params![id], |r| Ok((r.get(0)?, r.get(1)?)))
                    .and_then(|it| it.collect())
                    .map_err(|e| self.corrupt(e))?
            };
            let mut saved = Vec::with_capacity(chains.len());
            for (key_id, chain) in chains {
                let chain = Zeroizing::new(chain);
                let key_id: [u8; 16] = key_id.as_slice().try_into().map_err(|_| StoreError::Corrupt {
                    path: self.dir.as_deref().map(db_path).unwrap_or_default(),
                    reason: "a saved chain has a malformed id".into(),
                })?;
                saved.push((key_id, chain));
            }
            out.push(StoredCircle { snapshot: Zeroizing::new(state), chains: saved, messages, frames });
        }
        Ok(out)
    }

    fn load_messages(&self, circle: &[u8]) -> Result<Vec<MessageView>, StoreError> {
        let rows: Vec<(Vec<u8>, i64, Vec<u8>)> = {
            let mut st = self
                .conn
                .prepare("SELECT id, bucket, body FROM messages WHERE circle = ?1")
                .map_err(|e| self.corrupt(e))?;
            st.query_map(params![circle], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .and_then(|it| it.collect())
                .map_err(|e| self.corrupt(e))?
        };
        let wrapping = self.wrapping_key(&self.conn)?;
        let mut out = Vec::with_capacity(rows.len());
        for (id, bucket, body) in rows {
            let Some(key) = self.unwrap_bucket(&self.conn, &wrapping, bucket)? else {
                continue;
            };
            let ad = [AD_MESSAGE, circle, &id].concat();
            let Some(plain) = open_sealed(&key, &ad, &body) else {
                return Err(StoreError::Corrupt {
                    path: self.dir.as_deref().map(db_path).unwrap_or_default(),
                    reason: "a stored message does not decrypt".into(),
                });
            };
            let plain = Zeroizing::new(plain);
            match codec::decode_message(&plain) {
                Ok(m) => out.push(m),
                Err(e) => {
                    return Err(StoreError::Corrupt {
                        path: self.dir.as_deref().map(db_path).unwrap_or_default(),
                        reason: format!("a stored message is malformed: {e}"),
                    });
                }
            }
        }
        Ok(out)
    }

    fn wrapping_key(&self, conn: &Connection) -> Result<Zeroizing<[u8; 32]>, StoreError> {
        let raw: Vec<u8> = conn
            .prepare_cached("SELECT wrapping_key FROM keyring WHERE id = 1")
            .and_then(|mut st| st.query_row([], |r| r.get(0)))
            .map_err(|e| self.corrupt(e))?;
        let raw = Zeroizing::new(raw);
        let mut key = Zeroizing::new([0u8; 32]);
        if raw.len() != 32 {
            return Err(self.corrupt(rusqlite::Error::InvalidQuery));
        }
        key.copy_from_slice(&raw);
        Ok(key)
    }

    fn unwrap_bucket(
        &self,
        conn: &Connection,
        wrapping: &[u8; 32],
        bucket: i64,
    ) -> Result<Option<Zeroizing<[u8; 32]>>, StoreError> {
        let wrapped: Option<Vec<u8>> = conn
            .query_row("SELECT wrapped FROM bucket_keys WHERE bucket = ?1", params![bucket], |r| r.get(0))
            .optional()
            .map_err(|e| self.corrupt(e))?;
        let Some(wrapped) = wrapped else {
            return Ok(None);
        };
        let ad = [AD_BUCKET_KEY, &bucket.to_be_bytes()].concat();
        let plain = open_sealed(wrapping, &ad, &wrapped).map(Zeroizing::new);
        let Some(plain) = plain.filter(|p| p.len() == 32) else {
            return Err(StoreError::Corrupt {
                path: self.dir.as_deref().map(db_path).unwrap_or_default(),
                reason: "a message key does not unwrap".into(),
            });
        };
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&plain);
        Ok(Some(key))
    }

    /// Persist one batch of engine records in a single transaction. When
    /// this returns, the batch survives a crash (`synchronous = FULL`).
    pub fn apply(&mut self, records: &[Record], engine: &Engine, rng: &mut dyn Entropy) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let wrapping = self.wrapping_key(&self.conn)?;
        let tx = self.conn.transaction().map_err(|e| StoreError::Db { path: PathBuf::new(), reason: e.to_string() })?;
        // A circle's snapshot is exported from the engine as it is now, so
        // every `CircleState` of one circle in this transaction would write
        // the same bytes: write it once, at its last place (a snapshot is
        // 76 KB at 100 members, and a burst of key frames asks for many).
        let last_snapshot: HashMap<CircleId, usize> = records
            .iter()
            .enumerate()
            .filter_map(|(i, r)| match r {
                Record::CircleState { circle } => Some((*circle, i)),
                _ => None,
            })
            .collect();
        for (i, record) in records.iter().enumerate() {
            if let Record::CircleState { circle } = record
                && last_snapshot.get(circle) != Some(&i)
            {
                continue;
            }
            let r = apply_record(&tx, record, engine, &wrapping, rng);
            if let Err(e) = r {
                let path = self.dir.as_deref().map(db_path).unwrap_or_default();
                return Err(StoreError::Db { path, reason: e.to_string() });
            }
        }
        tx.commit().map_err(|e| self.db_err(e))?;
        self.scrub_journal()
    }

    /// Delete everything whose deadline passed and shred the keys of
    /// expired buckets (re-wrapping the survivors under a fresh key).
    /// Returns how many messages were erased.
    pub fn purge_expired(&mut self, now_ms: u64, rng: &mut dyn Entropy) -> Result<usize, StoreError> {
        let now = now_ms as i64;
        let old_wrapping = self.wrapping_key(&self.conn)?;
        let expired_bucket_limit = (now_ms / BUCKET_MS) as i64;
        let tx = self.conn.transaction().map_err(|e| StoreError::Db { path: PathBuf::new(), reason: e.to_string() })?;
        let result: Result<usize, rusqlite::Error> = (|| {
            let erased =
                tx.execute("DELETE FROM messages WHERE expires_at IS NOT NULL AND expires_at <= ?1", params![now])?;
            tx.execute("DELETE FROM frames WHERE expires_at <= ?1", params![now])?;
            let dead = tx
                .execute("DELETE FROM bucket_keys WHERE bucket >= 1 AND bucket <= ?1", params![expired_bucket_limit])?;
            if dead > 0 {
                // Messages of a dead bucket cannot be read any more: drop them too.
                tx.execute("DELETE FROM messages WHERE bucket >= 1 AND bucket <= ?1", params![expired_bucket_limit])?;
                let fresh = Zeroizing::new(random_array::<32>(rng));
                let survivors: Vec<(i64, Vec<u8>)> = {
                    let mut st = tx.prepare("SELECT bucket, wrapped FROM bucket_keys")?;
                    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?
                };
                for (bucket, wrapped) in survivors {
                    let ad = [AD_BUCKET_KEY, &bucket.to_be_bytes()].concat();
                    let Some(key) = open_sealed(&old_wrapping, &ad, &wrapped).map(Zeroizing::new) else {
                        return Err(rusqlite::Error::InvalidQuery);
                    };
                    let rewrapped = seal_with(&fresh, &ad, &key, rng);
                    tx.execute("UPDATE bucket_keys SET wrapped = ?1 WHERE bucket = ?2", params![rewrapped, bucket])?;
                }
                tx.execute("UPDATE keyring SET wrapping_key = ?1 WHERE id = 1", params![&fresh[..]])?;
            }
            Ok(erased)
        })();
        let erased = result.map_err(|e| StoreError::Db {
            path: self.dir.as_deref().map(db_path).unwrap_or_default(),
            reason: e.to_string(),
        })?;
        tx.commit().map_err(|e| self.db_err(e))?;
        self.scrub_journal()?;
        Ok(erased)
    }

    /// What the node remembers of a circle's network (listen port, peer
    /// addresses); kept encrypted like everything else.
    pub fn net_info(&self, circle: &CircleId) -> Option<Vec<u8>> {
        self.conn
            .query_row("SELECT info FROM circle_net WHERE circle = ?1", params![&circle[..]], |r| r.get(0))
            .optional()
            .ok()
            .flatten()
    }

    pub fn set_net_info(&mut self, circle: &CircleId, info: &[u8]) -> Result<(), StoreError> {
        self.conn
            .execute("INSERT OR REPLACE INTO circle_net (circle, info) VALUES (?1, ?2)", params![&circle[..], info])
            .map_err(|e| self.db_err(e))?;
        self.scrub_journal()
    }

    /// For tests only: the raw database connection (e.g. to simulate a
    /// profile written by a newer version).
    #[doc(hidden)]
    pub fn raw_connection_for_tests(&self) -> &Connection {
        &self.conn
    }

    /// For the forensic test only: the current plaintext key of a bucket
    /// and the wrapping key, so the test can search the files for them.
    #[doc(hidden)]
    pub fn expose_keys_for_tests(&self, bucket: i64) -> Option<([u8; 32], [u8; 32])> {
        let w = self.wrapping_key(&self.conn).ok()?;
        let k = self.unwrap_bucket(&self.conn, &w, bucket).ok()??;
        Some((*k, *w))
    }

    /// For the forensic test: the raw wrapped key row of a bucket.
    pub fn wrapped_bucket_key(&self, bucket: i64) -> Option<Vec<u8>> {
        self.conn
            .query_row("SELECT wrapped FROM bucket_keys WHERE bucket = ?1", params![bucket], |r| r.get(0))
            .optional()
            .ok()
            .flatten()
    }

    /// For the forensic test: whether `wrapped` (a bucket key row captured
    /// earlier) still unwraps under the current wrapping key.
    pub fn can_unwrap(&self, bucket: i64, wrapped: &[u8]) -> bool {
        let Ok(w) = self.wrapping_key(&self.conn) else {
            return false;
        };
        let ad = [AD_BUCKET_KEY, &bucket.to_be_bytes()].concat();
        open_sealed(&w, &ad, wrapped).is_some()
    }
}

#[cfg(feature = "app")]
/// The bucket a deadline falls in (0 = never expires).
pub fn bucket_for(expires_at_ms: Option<u64>) -> i64 {
    match expires_at_ms {
        None => 0,
        Some(t) => (t.div_ceil(BUCKET_MS)).max(1) as i64,
    }
}

#[cfg(feature = "app")]
fn apply_record(
    tx: &rusqlite::Transaction<'_>,
    record: &Record,
    engine: &Engine,
    wrapping: &[u8; 32],
    rng: &mut dyn Entropy,
) -> Result<(), rusqlite::Error> {
    match record {
        Record::Message(m) => {
            let bucket = bucket_for(m.expires_at_ms);
            let key = bucket_key(tx, wrapping, bucket, rng)?;
            let plain = Zeroizing::new(codec::encode_message(m));
            let ad = [AD_MESSAGE, &m.circle[..], &m.id[..]].concat();
            let body = seal_with(&key, &ad, &plain, rng);
            tx.prepare_cached(
                "INSERT OR REPLACE INTO messages (circle, id, bucket, expires_at, body) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                &m.circle[..],
                &m.id[..],
                bucket,
                m.expires_at_ms.map(|t| t as i64),
                body
            ])?;
        }
        Record::DeleteMessage { circle, id } => {
            tx.execute("DELETE FROM messages WHERE circle = ?1 AND id = ?2", params![&circle[..], &id[..]])?;
        }
        Record::Frame { circle, id, bytes, expires_at_ms } => {
            tx.prepare_cached("INSERT OR REPLACE INTO frames (circle, id, expires_at, bytes) VALUES (?1, ?2, ?3, ?4)")?
                .execute(params![&circle[..], &id[..], *expires_at_ms as i64, bytes])?;
        }
        Record::DeleteFrame { circle, id } => {
            tx.execute("DELETE FROM frames WHERE circle = ?1 AND id = ?2", params![&circle[..], &id[..]])?;
        }
        Record::CircleState { circle } => {
            if let Some(snapshot) = engine.export_circle(circle) {
                tx.prepare_cached("INSERT OR REPLACE INTO circles (id, state) VALUES (?1, ?2)")?
                    .execute(params![&circle[..], &snapshot[..]])?;
                // The snapshot holds every chain as it is now.
                tx.prepare_cached("DELETE FROM chains WHERE circle = ?1")?.execute(params![&circle[..]])?;
            }
        }
        Record::Chain { circle, key_id } => {
            if let Some(chain) = engine.export_chain(circle, key_id) {
                tx.prepare_cached("INSERT OR REPLACE INTO chains (circle, key_id, state) VALUES (?1, ?2, ?3)")?
                    .execute(params![&circle[..], &key_id[..], &chain[..]])?;
            }
        }
        Record::DeleteCircle { circle } => delete_circle(tx, circle)?,
    }
    Ok(())
}

#[cfg(feature = "app")]
fn delete_circle(tx: &rusqlite::Transaction<'_>, circle: &CircleId) -> Result<(), rusqlite::Error> {
    tx.execute("DELETE FROM circle_net WHERE circle = ?1", params![&circle[..]])?;
    for table in ["circles", "messages", "frames", "chains"] {
        let col = if table == "circles" { "id" } else { "circle" };
        tx.execute(&format!("DELETE FROM {table} WHERE {col} = ?1"), params![&circle[..]])?;
    }
    Ok(())
}

#[cfg(feature = "app")]
fn bucket_key(
    tx: &rusqlite::Transaction<'_>,
    wrapping: &[u8; 32],
    bucket: i64,
    rng: &mut dyn Entropy,
) -> Result<Zeroizing<[u8; 32]>, rusqlite::Error> {
    let ad = [AD_BUCKET_KEY, &bucket.to_be_bytes()].concat();
    let wrapped: Option<Vec<u8>> = tx
        .prepare_cached("SELECT wrapped FROM bucket_keys WHERE bucket = ?1")?
        .query_row(params![bucket], |r| r.get(0))
        .optional()?;
    if let Some(w) = wrapped {
        let plain = open_sealed(wrapping, &ad, &w).map(Zeroizing::new);
        let plain = plain.filter(|p| p.len() == 32).ok_or(rusqlite::Error::InvalidQuery)?;
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&plain);
        return Ok(key);
    }
    let key = Zeroizing::new(random_array::<32>(rng));
    let sealed = seal_with(wrapping, &ad, &key[..], rng);
    tx.execute("INSERT INTO bucket_keys (bucket, wrapped) VALUES (?1, ?2)", params![bucket, sealed])?;
    Ok(key)
}

#[cfg(feature = "app")]
/// `nonce || ChaCha20-Poly1305(key, nonce, plaintext, ad)`.
fn seal_with(key: &[u8; 32], ad: &[u8], plaintext: &[u8], rng: &mut dyn Entropy) -> Vec<u8> {
    let nonce: [u8; 12] = random_array(rng);
    let mut out = nonce.to_vec();
    // Sealing with a 32-byte key and 12-byte nonce cannot fail.
    out.extend(aead::seal(key, &nonce, ad, plaintext).unwrap_or_default());
    out
}

#[cfg(feature = "app")]
fn open_sealed(key: &[u8; 32], ad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < 12 + 16 {
        return None;
    }
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(&sealed[..12]);
    aead::open(key, &nonce, ad, &sealed[12..]).ok()
}

#[cfg(feature = "app")]
fn open_db(path: &Path, master: &[u8; 32]) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(|e| StoreError::Db { path: path.to_owned(), reason: e.to_string() })?;
    // SQLCipher's own log lines (e.g. "hmac check failed for pgno=1") went
    // to stderr before kolo's error; kolo's error says what happened.
    let _ = conn.execute_batch("PRAGMA cipher_log_level = NONE;");
    let db_key = Zeroizing::new(kdf::derive::<32>(b"", master, LABEL_DB_KEY, &[]));
    let pragma = Zeroizing::new(format!("PRAGMA key = \"x'{}'\";", hex(&db_key[..])));
    conn.execute_batch(&pragma).map_err(|e| StoreError::Db { path: path.to_owned(), reason: e.to_string() })?;
    // The header proved the passphrase, so a failure here is damage.
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get::<_, i64>(0))
        .map_err(|e| StoreError::Corrupt { path: path.to_owned(), reason: e.to_string() })?;
    // PERSIST: the journal is zeroed by `scrub_journal` after each commit
    // instead of being unlinked with old pages in it. `cipher_memory_security`
    // makes SQLCipher wipe the memory it frees.
    conn.execute_batch(
        "PRAGMA secure_delete = ON;
         PRAGMA journal_mode = PERSIST;
         PRAGMA journal_size_limit = -1;
         PRAGMA synchronous = FULL;
         PRAGMA temp_store = MEMORY;
         PRAGMA cipher_memory_security = ON;",
    )
    .map_err(|e| StoreError::Corrupt { path: path.to_owned(), reason: e.to_string() })?;
    Ok(conn)
}

#[cfg(feature = "app")]
fn restrict_permissions(dir: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
}

#[cfg(feature = "app")]
/// Owner-only permissions on every profile file (profiles made by older
/// builds have 0644 files under the usual umask).
fn restrict_files(dir: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for name in PROFILE_FILES {
            let p = dir.join(name);
            if std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_file()) {
                let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600));
            }
        }
    }
}

#[cfg(feature = "app")]
fn remove_db_files(dir: &Path) {
    for suffix in ["", "-journal", "-wal", "-shm"] {
        let p = dir.join(format!("{DB_FILE}{suffix}"));
        if p.exists() {
            overwrite_and_remove(&p);
        }
    }
}

#[cfg(feature = "app")]
/// Overwrite a file with zeros in place, `fsync`, then truncate it to
/// nothing (the blocks it frees hold zeros).
fn scrub_file(path: &Path) -> Result<(), StoreError> {
    let io = |e: std::io::Error| StoreError::Io { path: path.to_owned(), source: e };
    let len = match std::fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(e)),
    };
    if len == 0 {
        return Ok(());
    }
    let f = header::private_file(path).map_err(io)?;
    write_zeros(&f, len).map_err(io)?;
    f.sync_data().map_err(io)?;
    f.set_len(0).map_err(io)?;
    f.sync_all().map_err(io)
}

#[cfg(feature = "app")]
fn write_zeros(mut f: &std::fs::File, len: u64) -> std::io::Result<()> {
    use std::io::{Seek, Write};
    f.seek(std::io::SeekFrom::Start(0))?;
    let zeros = vec![0u8; 64 * 1024];
    let mut left = len;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        f.write_all(&zeros[..n])?;
        left -= n as u64;
    }
    Ok(())
}

#[cfg(feature = "app")]
/// Overwrite a regular file with zeros in place, sync, then unlink it.
/// Anything else (the control socket) is only unlinked.
fn overwrite_and_remove(path: &Path) {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return;
    };
    if meta.is_file()
        && let Ok(f) = std::fs::OpenOptions::new().write(true).open(path)
    {
        let _ = write_zeros(&f, meta.len());
        let _ = f.sync_all();
    }
    let _ = std::fs::remove_file(path);
}

#[cfg(feature = "app")]
/// Destroy the profile in `dir`: the key slots first, overwritten in place
/// with noise (after that nothing in the directory can be decrypted), then
/// every other file kolo writes ([`PROFILE_FILES`]: database, journal,
/// log, lock, key bindings, socket), each overwritten before it is
/// unlinked, then the directory. Needs no passphrase (`kolo panic`).
/// Returns whether the directory itself is gone (it stays when it holds
/// files that are not kolo's).
pub fn destroy(dir: &Path) -> Result<bool, StoreError> {
    use std::io::Write;
    let hpath = header_path(dir);
    if std::fs::symlink_metadata(&hpath).is_ok_and(|m| m.is_file()) {
        let len = std::fs::metadata(&hpath).map(|m| m.len()).unwrap_or(header::HEADER_LEN as u64);
        let mut noise = Zeroizing::new(vec![0u8; len as usize]);
        let io = |e: std::io::Error| StoreError::Io { path: hpath.clone(), source: e };
        let mut f = std::fs::OpenOptions::new().write(true).open(&hpath).map_err(io)?;
        // Twice, each synced: noise over the slots, then noise again.
        for _ in 0..2 {
            crate::entropy::OsEntropy.fill(&mut noise);
            std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(0)).map_err(io)?;
            f.write_all(&noise).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        drop(f);
        std::fs::remove_file(&hpath).map_err(io)?;
    }
    for name in &PROFILE_FILES[1..] {
        overwrite_and_remove(&dir.join(name));
    }
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    // Remove the directory only if nothing else of the user's is in it.
    let _ = std::fs::remove_dir(dir);
    Ok(!dir.exists())
}

#[cfg(feature = "app")]
/// What a passphrase opened, found from the header alone: nothing else of
/// the profile is read or written, no lock or log file is created.
pub enum Access {
    /// The real passphrase: the key to open the profile with.
    Real(RealKey),
    /// The duress passphrase: the profile is to be destroyed.
    Duress(DuressKey),
}

#[cfg(feature = "app")]
/// The master key and header that the real passphrase opened (no `Debug`).
pub struct RealKey {
    header: Header,
    master: Zeroizing<[u8; 32]>,
}

#[cfg(feature = "app")]
/// What the duress passphrase opened: the decoy name and the parameters
/// the replacement profile is made with (so it looks like the old one).
pub struct DuressKey {
    decoy_name: String,
    params: KdfParams,
}

#[cfg(feature = "app")]
/// Try `passphrase` against the profile's header. Reads `profile.header`
/// only; a wrong passphrase is an error and touches nothing.
pub fn unlock(dir: &Path, passphrase: &str) -> Result<Access, StoreError> {
    let hpath = header_path(dir);
    let bytes = match std::fs::read(&hpath) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(StoreError::NoProfile(dir.to_owned()));
        }
        Err(e) => {
            return Err(StoreError::Io { path: hpath, source: e });
        }
    };
    let header = Header::decode(&bytes, &hpath)?;
    match header.unlock(passphrase.as_bytes())? {
        None => Err(StoreError::WrongPassphrase(dir.to_owned())),
        Some(Unlocked::Duress(decoy_name)) => Ok(Access::Duress(DuressKey { decoy_name, params: header.params })),
        Some(Unlocked::Master(master)) => Ok(Access::Real(RealKey { header, master })),
    }
}

#[cfg(feature = "app")]
/// Schema migrations, in order; the index + 1 is the version each yields.
const MIGRATIONS: &[(u32, &str)] = &[
    (
        1,
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
     CREATE TABLE keyring (id INTEGER PRIMARY KEY CHECK (id = 1), wrapping_key BLOB NOT NULL);
     CREATE TABLE bucket_keys (bucket INTEGER PRIMARY KEY, wrapped BLOB NOT NULL);
     CREATE TABLE circles (id BLOB PRIMARY KEY, state BLOB NOT NULL);
     CREATE TABLE messages (
         circle BLOB NOT NULL, id BLOB NOT NULL, bucket INTEGER NOT NULL,
         expires_at INTEGER, body BLOB NOT NULL, PRIMARY KEY (circle, id));
     CREATE INDEX messages_bucket ON messages (bucket);
     CREATE INDEX messages_expiry ON messages (expires_at);
     CREATE TABLE frames (
         circle BLOB NOT NULL, id BLOB NOT NULL, expires_at INTEGER NOT NULL,
         bytes BLOB NOT NULL, PRIMARY KEY (circle, id));
     CREATE INDEX frames_expiry ON frames (expires_at);",
    ),
    (2, "CREATE TABLE circle_net (circle BLOB PRIMARY KEY, info BLOB NOT NULL);"),
    // One row per chain that moved on since the circle's last snapshot.
    (
        3,
        "CREATE TABLE chains (
         circle BLOB NOT NULL, key_id BLOB NOT NULL, state BLOB NOT NULL, PRIMARY KEY (circle, key_id));",
    ),
];
