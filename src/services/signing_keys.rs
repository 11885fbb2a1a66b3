//! The JWT signing keyring: the active Ed25519 key, older keys still accepted, and rotation.
//!
//! Keys live in the database (`signing_keys`), the private seed sealed with XChaCha20-Poly1305
//! under a key derived from the pepper (AD = kid): one file to back up, the database alone
//! cannot sign, and `gatehouse signing-key rotate` works while the server runs. The server keeps
//! the keys in memory; every token it signs is signed inside the write transaction that records
//! it, after reading which key is active, so a rotation made by another process takes effect
//! with the next token. An unknown `kid` reloads the set from the database (at most once a
//! second), and any verification or JWKS request reloads it when the copy is older than five
//! seconds — so `rotate --drop-old` run from the CLI takes effect within five seconds.
//!
//! A superseded key stays published and accepted until every token it can have signed has
//! expired: `retire_at = rotation time + max(access_ttl, refresh_ttl) + leeway`. After that the
//! JWKS drops it and the cleanup job deletes it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use zeroize::Zeroizing;

use crate::config::Settings;
use crate::crypto::jwt::{self, Signer, Verifier};
use crate::crypto::{self, Pepper};
use crate::error::{Error, Result};
use crate::store::{self, signing_keys::KeyRow, Db};

/// One key as the server holds it.
#[derive(Clone, Debug)]
struct Entry {
    kid: String,
    public: [u8; 32],
    verifier: Verifier,
    created_at: i64,
    retire_at: Option<i64>,
}

#[derive(Debug, Default)]
struct Loaded {
    entries: Vec<Entry>,
    active: Option<Signer>,
}

struct Inner {
    seal_key: Zeroizing<[u8; 32]>,
    loaded: RwLock<Loaded>,
    last_reload: Mutex<Option<Instant>>,
}

/// The keyring; cheap to clone. `Debug` shows key ids only, never the sealing key.
#[derive(Clone)]
pub struct Keyring(Arc<Inner>);

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let loaded = self.0.loaded.read();
        f.debug_struct("Keyring")
            .field("seal_key", &"***SECRET***")
            .field(
                "kids",
                &loaded
                    .entries
                    .iter()
                    .map(|e| e.kid.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("active", &loaded.active.as_ref().map(Signer::kid))
            .finish()
    }
}

/// A published key, for the JWKS document and `signing-key list`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PublicKeyInfo {
    /// Key id.
    pub kid: String,
    /// The JWK.
    pub jwk: serde_json::Value,
    /// Creation time.
    pub created_at: i64,
    /// When it stops being published, if superseded.
    pub retire_at: Option<i64>,
    /// Whether it signs new tokens.
    pub active: bool,
}

const RELOAD_MIN_INTERVAL: Duration = Duration::from_secs(1);
/// How old the in-memory copy may get before a verification or JWKS request reloads it.
const STALE_AFTER: Duration = Duration::from_secs(5);

fn public_array(bytes: &[u8]) -> Result<[u8; 32]> {
    <[u8; 32]>::try_from(bytes).map_err(|_| Error::internal("stored public key is not 32 bytes"))
}

impl Keyring {
    /// An empty keyring whose seals use a key derived from the pepper.
    pub fn new(pepper: &Pepper) -> Keyring {
        Keyring(Arc::new(Inner {
            seal_key: pepper.derive("jwt signing key seal"),
            loaded: RwLock::new(Loaded::default()),
            last_reload: Mutex::new(None),
        }))
    }

    fn open_seed(&self, row: &KeyRow) -> Result<Zeroizing<[u8; 32]>> {
        let plain = crypto::open(&self.0.seal_key, &row.sealed_seed, row.kid.as_bytes())
            .ok_or_else(|| {
                Error::internal(format!(
                    "signing key {} does not open with this pepper (was the pepper changed?)",
                    row.kid
                ))
            })?;
        let mut seed = Zeroizing::new([0u8; 32]);
        if plain.len() != 32 {
            return Err(Error::internal("sealed signing seed is not 32 bytes"));
        }
        seed.copy_from_slice(&plain);
        Ok(seed)
    }

    /// Replaces the in-memory set from the database (inside or outside a transaction).
    fn load_from(&self, c: &rusqlite::Connection, now: i64) -> Result<()> {
        let rows = store::signing_keys::live(c, now)?;
        let active_row = store::signing_keys::active(c)?;
        let mut entries = Vec::with_capacity(rows.len());
        for r in &rows {
            let public = public_array(&r.public_key)?;
            entries.push(Entry {
                kid: r.kid.clone(),
                public,
                verifier: Verifier::from_public(&public),
                created_at: r.created_at,
                retire_at: r.retire_at,
            });
        }
        let active = match active_row {
            Some(r) => {
                let seed = self.open_seed(&r)?;
                if jwt::public_of(&seed) != public_array(&r.public_key)? {
                    return Err(Error::internal(format!(
                        "signing key {} is inconsistent: its seed does not match its public key",
                        r.kid
                    )));
                }
                Some(Signer::from_seed(&r.kid, &seed))
            }
            None => None,
        };
        *self.0.loaded.write() = Loaded { entries, active };
        *self.0.last_reload.lock() = Some(Instant::now());
        Ok(())
    }

    /// Creates a first key if there is none, and loads the set. Called once at start.
    ///
    /// Almost every start finds a key, so the set is loaded on a read connection first and the
    /// write lock is taken only when there is none: a CLI command (`gatehouse backup`) beside a
    /// server that writes without pause must not queue for the lock, and could time out there.
    pub fn init_blocking(&self, db: &Db, settings: &Settings) -> Result<()> {
        let now = store::now();
        let ring = self.clone();
        let loaded = db.read_blocking(move |c| {
            if store::signing_keys::active(c)?.is_none() {
                return Ok(false);
            }
            ring.load_from(c, now).map(|()| true)
        })?;
        if loaded {
            return Ok(());
        }
        db.write_blocking(|tx| {
            if store::signing_keys::active(tx)?.is_none() {
                self.insert_new(tx, settings, now, false)?;
            }
            self.load_from(tx, now)
        })
    }

    fn insert_new(
        &self,
        tx: &rusqlite::Transaction<'_>,
        settings: &Settings,
        now: i64,
        drop_old: bool,
    ) -> Result<String> {
        let key = jwt::generate();
        let sealed = crypto::seal(&self.0.seal_key, &key.seed[..], key.kid.as_bytes());
        store::signing_keys::insert(tx, &key.kid, &key.public, &sealed, now)?;
        if drop_old {
            store::signing_keys::retire_others_now(tx, &key.kid, now)?;
        } else {
            store::signing_keys::supersede_others(tx, &key.kid, now, retire_time(settings, now))?;
        }
        Ok(key.kid)
    }

    /// Adds a new key that signs from now on. Older keys stay until their tokens expire, or
    /// with `drop_old` (a compromised key) stop being accepted at once.
    pub async fn rotate(&self, db: &Db, settings: &Settings, drop_old: bool) -> Result<String> {
        let this = self.clone();
        let settings = settings.clone();
        db.write(move |tx| {
            let now = store::now();
            let kid = this.insert_new(tx, &settings, now, drop_old)?;
            // Audited in the same transaction: the CLI process may exit before the buffered
            // audit writer runs, and a key change must never go unrecorded.
            store::audit::insert_many(
                tx,
                &[store::audit::AuditEvent {
                    id: 0,
                    at: now,
                    event: "signing_key.rotated".into(),
                    outcome: "success".into(),
                    actor: None,
                    tenant_id: None,
                    ip: None,
                    detail: Some(format!(
                        "new kid {kid}; old keys dropped at once: {drop_old}"
                    )),
                }],
            )?;
            this.load_from(tx, now)?;
            Ok(kid)
        })
        .await
    }

    /// The signer to use inside a write transaction: the active key as the database says now.
    pub fn signer_in_tx(&self, tx: &rusqlite::Transaction<'_>, now: i64) -> Result<Signer> {
        let active_kid: Option<String> = tx
            .query_row(
                "SELECT kid FROM signing_keys WHERE superseded_at IS NULL
                 ORDER BY created_at DESC, rowid DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .map(Some)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                other => Err(other),
            })?;
        let cached = self.0.loaded.read().active.clone();
        match (cached, active_kid) {
            (Some(s), Some(k)) if s.kid() == k => Ok(s),
            (_, Some(_)) => {
                self.load_from(tx, now)?;
                self.0
                    .loaded
                    .read()
                    .active
                    .clone()
                    .ok_or_else(|| Error::internal("no active signing key after reload"))
            }
            (_, None) => Err(Error::internal(
                "no active JWT signing key; run `gatehouse signing-key rotate`",
            )),
        }
    }

    fn lookup(&self, kid: &str, now: i64) -> Option<Verifier> {
        self.0
            .loaded
            .read()
            .entries
            .iter()
            .find(|e| e.kid == kid && e.retire_at.is_none_or(|r| r > now))
            .map(|e| e.verifier.clone())
    }

    fn reload_due(&self, min_interval: Duration) -> bool {
        self.0
            .last_reload
            .lock()
            .is_none_or(|t| t.elapsed() >= min_interval)
    }

    async fn reload(&self, db: &Db) -> Result<()> {
        // Claim the reload slot first so a flood of unknown kids costs one read per interval.
        *self.0.last_reload.lock() = Some(Instant::now());
        let this = self.clone();
        db.read(move |c| this.load_from(c, store::now())).await
    }

    /// The verification key for a `kid`, if it is published and not retired.
    pub async fn verifier(&self, db: &Db, kid: &str) -> Result<Option<Verifier>> {
        let now = store::now();
        // A key dropped by `rotate --drop-old` in another process stops working within this.
        if self.reload_due(STALE_AFTER) {
            self.reload(db).await?;
        }
        if let Some(v) = self.lookup(kid, now) {
            return Ok(Some(v));
        }
        if self.reload_due(RELOAD_MIN_INTERVAL) {
            self.reload(db).await?;
            return Ok(self.lookup(kid, now));
        }
        Ok(None)
    }

    /// The keys published in the JWKS now, newest first.
    pub async fn published(&self, db: &Db) -> Result<Vec<PublicKeyInfo>> {
        if self.reload_due(STALE_AFTER) {
            self.reload(db).await?;
        }
        let now = store::now();
        let loaded = self.0.loaded.read();
        let active = loaded.active.as_ref().map(|s| s.kid().to_owned());
        Ok(loaded
            .entries
            .iter()
            .filter(|e| e.retire_at.is_none_or(|r| r > now))
            .map(|e| PublicKeyInfo {
                kid: e.kid.clone(),
                jwk: jwt::public_jwk(&e.kid, &e.public),
                created_at: e.created_at,
                retire_at: e.retire_at,
                active: active.as_deref() == Some(e.kid.as_str()),
            })
            .collect())
    }

    /// Every stored key, retired or not (for the CLI).
    pub async fn list_all(&self, db: &Db) -> Result<Vec<PublicKeyInfo>> {
        let rows = db.read(store::signing_keys::all).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let public = public_array(&r.public_key)?;
            out.push(PublicKeyInfo {
                jwk: jwt::public_jwk(&r.kid, &public),
                active: r.superseded_at.is_none(),
                kid: r.kid,
                created_at: r.created_at,
                retire_at: r.retire_at,
            });
        }
        Ok(out)
    }
}

/// When a key superseded at `now` may be dropped: after the longest-lived token it signed.
pub fn retire_time(settings: &Settings, now: i64) -> i64 {
    let longest = settings
        .jwt
        .access_ttl_secs
        .max(settings.jwt.refresh_ttl_secs)
        .saturating_add(settings.jwt.leeway_secs);
    now.saturating_add(i64::try_from(longest).unwrap_or(i64::MAX))
}
