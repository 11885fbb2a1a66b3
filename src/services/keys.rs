//! API keys: create, list, revoke, roll, and the verification hot path with its cache.
//!
//! A key is `sk_|pk_` + `live_|test_` + 32 base62 random characters + a 6-character CRC32
//! checksum; it is stored only as a keyed BLAKE2b-256 hash. Verification checks the format and
//! checksum first (no database for a typo), then looks the hash up in an in-memory cache
//! ([`KeyRuntime`]) and only on a miss in SQLite. The verify path never writes to SQLite:
//! `last_used_at` is buffered in memory and flushed every `keys.last_used_flush_secs` (and at
//! shutdown), in transactions of at most [`FLUSH_CHUNK`] keys, into the narrow `api_key_usage`
//! table (a ~10-byte row per key, so a batch rewrites few pages); a use is recorded when it
//! comes `keys.last_used_resolution_secs` or more after the key's last recorded one.
//!
//! Revocation is immediate in this process: a revoke commits, then bumps an epoch and drops the
//! key from the cache; a look-up that raced with it re-checks the epoch after inserting and
//! drops its own possibly stale entry. Changes made by another process (the CLI) are picked up
//! within about a second by the change poll ([`poll_changes`]: keys revoked and users changed
//! since its last pass); the cache TTL bounds only edits made behind Gatehouse's back.
//!
//! `pk_` keys are the agent-API contract's "publicKey": they authenticate exactly like `sk_`
//! keys; the prefix only records which contract issued them.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use compact_str::CompactString;
use dashmap::DashMap;

/// The hasher of the in-memory maps. Their keys are keyed BLAKE2b hashes and server-made ids,
/// which no client can choose, so a fast non-cryptographic hash is safe (SipHash was a visible
/// share of a verify).
type FastHash = foldhash::fast::RandomState;
use serde::{Serialize, Serializer};

use super::audit::Detail;
use super::types::{TenantId, Username};
use super::Ctx;
use crate::crypto::tokens::{self, SecretToken};
use crate::error::{Error, Result};
use crate::store::{self, api_keys::ApiKeyRow};

/// Longest overlap a roll may give the old key: 30 days.
pub const MAX_ROLL_OVERLAP_SECS: u64 = 30 * 86_400;
/// The permission that lets a user see and manage every user's keys.
pub const MANAGE_ALL: &str = "keys.manage_all";
/// The scope a scoped key needs to manage keys.
pub const KEYS_SCOPE: &str = "keys";

/// Live or test key (`*_live_` / `*_test_`): the one [`Mode`] of every tenant-scoped record.
pub use super::types::Mode as KeyMode;

/// `sk_` (tickets and media-server contracts) or `pk_` (agent-API contract).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// `sk_…`
    Secret,
    /// `pk_…`
    Public,
}

fn prefix(kind: KeyKind, mode: KeyMode) -> &'static str {
    match (kind, mode) {
        (KeyKind::Secret, KeyMode::Live) => "sk_live_",
        (KeyKind::Secret, KeyMode::Test) => "sk_test_",
        (KeyKind::Public, KeyMode::Live) => "pk_live_",
        (KeyKind::Public, KeyMode::Test) => "pk_test_",
    }
}

/// Who is managing keys, as the service sees it (built from the caller's principal).
#[derive(Clone, Debug)]
pub struct Actor {
    /// The acting user; `None` for the operator's CLI.
    pub user_id: Option<i64>,
    /// May see and manage every user's keys (admins, `keys.manage_all`, the CLI).
    pub manage_all: bool,
    /// A test-mode (or live-mode) key sees only keys of its own mode.
    pub mode: Option<KeyMode>,
    /// Scopes of the presenting credential (empty: unrestricted).
    pub scopes: Vec<String>,
    /// Tenant the credential acts in.
    pub tenant_id: Option<String>,
    /// For the audit log.
    pub label: String,
}

impl Actor {
    /// The operator at the command line: may do everything.
    pub fn operator() -> Actor {
        Actor {
            user_id: None,
            manage_all: true,
            mode: None,
            scopes: Vec::new(),
            tenant_id: None,
            label: "cli".into(),
        }
    }

    fn check_scope(&self) -> Result<()> {
        if self.scopes.is_empty() || self.scopes.iter().any(|s| s == KEYS_SCOPE) {
            Ok(())
        } else {
            Err(Error::forbidden(format!(
                "This key lacks the `{KEYS_SCOPE}` scope needed to manage API keys"
            )))
        }
    }

    fn require_manage_all(&self) -> Result<()> {
        if self.manage_all {
            Ok(())
        } else {
            Err(Error::forbidden(format!(
                "You do not have permission to perform this action: requires `{MANAGE_ALL}`"
            )))
        }
    }

    fn sees(&self, row: &ApiKeyRow) -> bool {
        (self.manage_all || self.user_id == Some(row.user_id))
            && self.mode.is_none_or(|m| m.as_str() == row.mode)
    }
}

/// What a listing shows of a key: never the secret.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct KeyView {
    /// Key id.
    pub id: i64,
    /// Display name.
    pub name: String,
    /// Masked form, e.g. `sk_live_…wxyz`.
    pub masked: String,
    /// `live` or `test`.
    pub mode: String,
    /// Rate-limit plan.
    pub plan: String,
    /// Scopes (empty: the owner's full rights).
    pub scopes: Vec<String>,
    /// Owner's id.
    pub user_id: i64,
    /// Owner's user name.
    pub username: String,
    /// Tenant the key acts in.
    pub tenant_id: String,
    /// Creation time (Unix seconds).
    pub created_at: i64,
    /// Last use (Unix seconds), kept to `keys.last_used_resolution_secs` (60 s by default).
    pub last_used_at: Option<i64>,
    /// Expiry (Unix seconds).
    pub expires_at: Option<i64>,
    /// Revocation time (Unix seconds).
    pub revoked_at: Option<i64>,
}

/// A key just created: the only time the secret is shown.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedKey {
    /// The key's listing fields.
    #[serde(flatten)]
    pub key: KeyView,
    /// The full key. Shown once; only its hash is stored.
    #[serde(serialize_with = "expose_secret")]
    #[schema(value_type = String, example = "sk_live_…")]
    pub secret: SecretToken,
}

fn expose_secret<S: Serializer>(t: &SecretToken, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(t.expose())
}

/// The answer to a roll: the new key, and when the old one stops working.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RolledKey {
    /// The new key, with its secret.
    #[serde(flatten)]
    pub key: CreatedKey,
    /// The old key's id.
    pub rolled_from: i64,
    /// When the old key expires (Unix seconds).
    pub old_expires_at: i64,
}

/// A request to create a key.
#[derive(Debug, Default, Clone)]
pub struct NewKey {
    /// Display name.
    pub name: String,
    /// Owner, if not the actor (needs `keys.manage_all`).
    pub user: Option<Username>,
    /// Live or test; default the actor's mode, else live.
    pub mode: Option<KeyMode>,
    /// Plan; default `keys.default_plan`. Another plan needs `keys.manage_all`.
    pub plan: Option<String>,
    /// Expiry (Unix seconds).
    pub expires_at: Option<i64>,
    /// Scopes.
    pub scopes: Vec<String>,
    /// Tenant; default the actor's tenant, else the default tenant.
    pub tenant: Option<TenantId>,
    /// `sk_` or `pk_`; `None` means `sk_`.
    pub kind: Option<KeyKind>,
}

/// Which keys to list.
#[derive(Debug, Default, Clone)]
pub struct ListFilter {
    /// Only this user's keys (someone else's needs `keys.manage_all`).
    pub user: Option<Username>,
    /// Without `user`: every user's keys if the actor may see them all (else own keys).
    pub all_users: bool,
}

/// Why a key was refused.
#[derive(Debug)]
pub enum Rejection {
    /// Wrong shape or checksum: never reached the database.
    Malformed,
    /// No such key.
    Unknown,
    /// Revoked, or its owner is disabled.
    Revoked,
    /// Past its expiry.
    Expired,
    /// Not in the cache, and the caller's address may not reach the database now (seconds to wait).
    Throttled(u64),
    /// The look-up itself failed.
    Failed(Error),
}

impl Rejection {
    /// The `reason` of a verify answer.
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::Malformed => "malformed",
            Rejection::Failed(Error::MalformedCredential) => "malformed",
            // Other kinds (JWTs, sessions, portal tokens) say why in their 401 message.
            Rejection::Failed(Error::Unauthenticated(m))
                if m.contains("revoked") && !m.contains("expired")
                    || m.contains("no longer valid") =>
            {
                "revoked"
            }
            Rejection::Failed(Error::Unauthenticated(m))
                if m.contains("expired") && !m.starts_with("Unknown") =>
            {
                "expired"
            }
            Rejection::Unknown | Rejection::Failed(_) => "unknown",
            Rejection::Revoked => "revoked",
            Rejection::Expired => "expired",
            Rejection::Throttled(_) => "rate_limited",
        }
    }
}

impl From<Rejection> for Error {
    fn from(r: Rejection) -> Error {
        match r {
            Rejection::Malformed => Error::MalformedCredential,
            Rejection::Unknown => Error::unauthenticated("Invalid API key"),
            Rejection::Revoked => Error::unauthenticated("API key has been revoked"),
            Rejection::Expired => Error::unauthenticated("API key has expired"),
            Rejection::Throttled(retry_after) => Error::RateLimited { retry_after },
            Rejection::Failed(e) => e,
        }
    }
}

/// Everything the resolver needs about a verified key; shared by cache hits.
#[derive(Debug)]
pub struct KeyIdentity {
    /// Key id.
    pub key_id: i64,
    /// Owner.
    pub user_id: i64,
    /// Owner's name (inline up to 24 bytes: no separate heap line to fetch per verify).
    pub username: CompactString,
    /// Tenant (inline up to 24 bytes).
    pub tenant_id: CompactString,
    /// Live or test.
    pub mode: KeyMode,
    /// Scopes.
    pub scopes: Vec<String>,
    /// Owner is an administrator.
    pub is_admin: bool,
    /// Owner's permissions.
    pub permissions: Vec<String>,
    /// Expiry (Unix seconds).
    pub expires_at: Option<i64>,
    /// Plan name.
    pub plan: String,
    /// The key's rate-limit state, attached at its first check.
    pub rate: crate::auth::ratelimit::RateSlot,
}

struct Cached {
    identity: Arc<KeyIdentity>,
    /// Trusted until then (Unix seconds): `keys.cache_ttl_secs` after it was cached, less a
    /// random share of up to half, so keys cached together (a burst after a restart) do not
    /// all fall back to SQLite in the same second.
    trusted_until: i64,
    last_seen: AtomicI64,
}

/// In-memory state of the key service: the verification cache and the `last_used_at` buffer.
pub struct KeyRuntime {
    cache: DashMap<[u8; 32], Cached, FastHash>,
    epoch: AtomicU64,
    pending_last_used: DashMap<i64, i64, FastHash>,
    /// Each key's last recorded use (its entry's `last_seen`), kept for `resolution` seconds:
    /// a key read again from SQLite — its entry dropped by the change poll, or never cached
    /// (`cache_capacity = 0`) — starts from it, so it is not recorded again within the
    /// resolution. Each flush prunes it.
    recorded: DashMap<i64, i64, FastHash>,
    changes_seen_until: AtomicI64,
    capacity: usize,
    ttl: i64,
    resolution: i64,
}

impl std::fmt::Debug for KeyRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRuntime")
            .field("cached", &self.cache.len())
            .finish()
    }
}

impl KeyRuntime {
    /// An empty cache sized from `keys.*`.
    pub fn new(cfg: &crate::config::KeySettings) -> KeyRuntime {
        KeyRuntime {
            cache: DashMap::default(),
            epoch: AtomicU64::new(0),
            pending_last_used: DashMap::default(),
            recorded: DashMap::default(),
            changes_seen_until: AtomicI64::new(store::now()),
            capacity: cfg.cache_capacity,
            ttl: i64::try_from(cfg.cache_ttl_secs).unwrap_or(i64::MAX),
            resolution: i64::try_from(cfg.last_used_resolution_secs)
                .unwrap_or(i64::MAX)
                .max(1),
        }
    }

    /// Drops keys from the cache by hash (after their revocation committed).
    pub fn invalidate<'a>(&self, hashes: impl IntoIterator<Item = &'a [u8]>) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        for h in hashes {
            if let Ok(k) = <[u8; 32]>::try_from(h) {
                self.cache.remove(&k);
            }
        }
    }

    /// Drops every cached key of a user (disabled, deleted, rights changed).
    pub fn forget_user(&self, user_id: i64) {
        self.forget_users(vec![user_id]);
    }

    /// Drops every cached key of these users, in one pass over the cache (a binary search per
    /// entry: a poll can bring thousands of users, after a bulk import).
    fn forget_users(&self, mut ids: Vec<i64>) {
        ids.sort_unstable();
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.cache
            .retain(|_, c| ids.binary_search(&c.identity.user_id).is_err());
    }

    /// Number of cached keys.
    pub fn cached(&self) -> usize {
        self.cache.len()
    }

    /// The change poll's next pass looks at changes made at this second or later (Unix
    /// seconds): a change made before it will not drop a cached key any more.
    pub fn changes_seen_until(&self) -> i64 {
        self.changes_seen_until.load(Ordering::Relaxed)
    }

    /// Caches an entry read from SQLite while the cache was at `epoch`, if there is room or the
    /// key already has an entry: a lapsed entry is renewed in place even in a full cache (left
    /// there, it would send every later request of the key to SQLite).
    fn keep(&self, hash: [u8; 32], entry: Cached, epoch: u64) {
        if self.capacity == 0
            || (self.cache.len() >= self.capacity && !self.cache.contains_key(&hash))
        {
            return;
        }
        self.cache.insert(hash, entry);
        // A revoke that committed while we read would have bumped the epoch: our entry may be
        // stale, so drop it (the next request reads the database again).
        if self.epoch.load(Ordering::SeqCst) != epoch {
            self.cache.remove(&hash);
        }
    }

    /// Makes room in a cache that is 90 % full: drops the entries no longer trusted, then, if
    /// it is still over 80 %, the entries of the keys least recently recorded as used (the
    /// recorded use moves once per `resolution`, so this is least-recently-used to within it),
    /// down to 80 %. Run by the change poll, once a second; below 90 % it only counts entries.
    /// Without it a full cache kept its entries for ever, live or lapsed, and every key not
    /// among them read SQLite on every request.
    fn trim(&self, now: i64) {
        let high = self.capacity - self.capacity / 10;
        if self.capacity == 0 || self.cache.len() < high {
            return;
        }
        self.cache.retain(|_, c| c.trusted_until > now);
        let low = self.capacity - self.capacity / 5;
        let len = self.cache.len();
        if len <= low {
            return;
        }
        let mut seen: Vec<i64> = self
            .cache
            .iter()
            .map(|e| e.last_seen.load(Ordering::Relaxed))
            .collect();
        let (_, threshold, _) = seen.select_nth_unstable(len - low);
        let threshold = *threshold;
        self.cache
            .retain(|_, c| c.last_seen.load(Ordering::Relaxed) >= threshold);
    }

    /// Until when a key cached `now` is trusted: `ttl` less a random share of up to half.
    fn trusted_until(&self, now: i64) -> i64 {
        let spread = i64::from(rand::random::<u32>()) % (self.ttl / 2 + 1);
        now.saturating_add(self.ttl - spread)
    }

    /// Records a use when it is the first of the entry, or `resolution` seconds or more after
    /// the last one recorded, less the key's [`Self::early`] share: on the hot path this is one
    /// atomic load per request, and a key in steady use costs one buffered (and later written)
    /// value per `resolution`, not per second.
    fn note_use(&self, c: &Cached, now: i64) {
        let seen = c.last_seen.load(Ordering::Relaxed);
        if now.saturating_sub(seen) < self.resolution {
            return;
        }
        let id = c.identity.key_id;
        let at = now - self.early(id);
        if c.last_seen
            .compare_exchange(seen, at, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            self.pending_last_used.insert(id, now);
            self.recorded.insert(id, at);
        }
    }

    /// The last recorded use of a key, if within the last `resolution` (0 if none).
    fn recorded_use(&self, id: i64) -> i64 {
        self.recorded.get(&id).map_or(0, |v| *v)
    }

    /// Forgets recorded uses older than `resolution`: they no longer hold a use back.
    fn prune_recorded(&self, now: i64) {
        self.recorded.retain(|_, at| now - *at < self.resolution);
    }

    /// How much sooner than `resolution` a key's next use is recorded: a fixed share of up to
    /// a quarter of it, different from key to key. Keys first used together (a burst, a
    /// restart) would otherwise come due together every `resolution`, and every minute one
    /// flush would write all of them while the others wrote none; with the shares, their
    /// records drift apart cycle by cycle and the flushes even out.
    fn early(&self, key_id: i64) -> i64 {
        let spread = u64::try_from(self.resolution / 4).unwrap_or(0) + 1;
        let mixed = (key_id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
        i64::try_from(mixed % spread).unwrap_or(0)
    }

    fn last_used(&self, id: i64, stored: Option<i64>) -> Option<i64> {
        let pending = self.pending_last_used.get(&id).map(|v| *v);
        stored.max(pending)
    }
}

fn view(ctx: &Ctx, r: ApiKeyRow) -> KeyView {
    KeyView {
        id: r.id,
        masked: format!("{}…{}", r.prefix, r.last4),
        last_used_at: ctx.keys.last_used(r.id, r.last_used_at),
        name: r.name,
        mode: r.mode,
        plan: r.plan,
        scopes: r.scopes,
        user_id: r.user_id,
        username: r.username,
        tenant_id: r.tenant_id,
        created_at: r.created_at,
        expires_at: r.expires_at,
        revoked_at: r.revoked_at,
    }
}

/// Verifies a presented key: format and checksum, then cache, then the database.
pub async fn verify(ctx: &Ctx, raw: &str) -> Result<Arc<KeyIdentity>, Rejection> {
    verify_with(ctx, raw, None).await
}

/// Like [`verify`]; with `db_blocked = Some(wait)` a cache miss is refused as
/// [`Rejection::Throttled`] instead of reaching the database.
pub async fn verify_with(
    ctx: &Ctx,
    raw: &str,
    db_blocked: Option<u64>,
) -> Result<Arc<KeyIdentity>, Rejection> {
    if !tokens::api_key_well_formed(raw) {
        return Err(Rejection::Malformed);
    }
    let hash = ctx.pepper.hash(raw.as_bytes());
    let now = store::now();
    let rt = &ctx.keys;
    if let Some(c) = rt.cache.get(&hash) {
        if now < c.trusted_until {
            if c.identity.expires_at.is_some_and(|e| e <= now) {
                drop(c);
                rt.cache.remove(&hash);
                return Err(Rejection::Expired);
            }
            rt.note_use(&c, now);
            return Ok(c.identity.clone());
        }
    }
    if let Some(wait) = db_blocked {
        return Err(Rejection::Throttled(wait));
    }
    let epoch = rt.epoch.load(Ordering::SeqCst);
    let found = ctx
        .db
        .read(move |c| store::api_keys::by_hash(c, &hash))
        .await
        .map_err(Rejection::Failed)?;
    let Some(row) = found else {
        return Err(Rejection::Unknown);
    };
    if row.revoked_at.is_some() || row.owner.disabled {
        return Err(Rejection::Revoked);
    }
    if row.expires_at.is_some_and(|e| e <= now) {
        return Err(Rejection::Expired);
    }
    let identity = Arc::new(KeyIdentity {
        key_id: row.id,
        user_id: row.user_id,
        username: row.username.into(),
        tenant_id: row.tenant_id.into(),
        mode: if row.mode == "test" {
            KeyMode::Test
        } else {
            KeyMode::Live
        },
        scopes: row.scopes,
        is_admin: row.owner.is_admin,
        permissions: row.owner.permissions,
        expires_at: row.expires_at,
        plan: row.plan,
        rate: Default::default(),
    });
    // The use recorded lately counts: a key read again (its entry renewed after the TTL or
    // dropped by the change poll, or on every request with the cache off) is not recorded again
    // within the resolution. Every record goes to `recorded` too, so an expired entry's own
    // `last_seen` adds nothing.
    let entry = Cached {
        identity: identity.clone(),
        trusted_until: rt.trusted_until(now),
        last_seen: AtomicI64::new(rt.recorded_use(row.id)),
    };
    rt.note_use(&entry, now);
    rt.keep(hash, entry, epoch);
    Ok(identity)
}

fn check_name(name: &str) -> Result<String> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > 100 || n.chars().any(char::is_control) {
        return Err(Error::bad_request(
            "name must be 1 to 100 characters without control characters",
        ));
    }
    Ok(n.to_owned())
}

fn check_scopes(actor: &Actor, scopes: &[String]) -> Result<()> {
    if scopes.len() > 32 {
        return Err(Error::bad_request("at most 32 scopes"));
    }
    for s in scopes {
        if s.is_empty()
            || s.len() > 64
            || !s
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".:_-*/".contains(&b))
        {
            return Err(Error::bad_request(
                "each scope must be 1 to 64 characters of letters, digits and . : _ - * /",
            ));
        }
    }
    if !actor.scopes.is_empty()
        && (scopes.is_empty() || scopes.iter().any(|s| !actor.scopes.contains(s)))
    {
        return Err(Error::forbidden(
            "A scoped key can only create keys with a subset of its own scopes",
        ));
    }
    Ok(())
}

async fn resolve_user(ctx: &Ctx, actor: &Actor, user: Option<&Username>) -> Result<i64> {
    match (user, actor.user_id) {
        (Some(name), me) => {
            let u = super::users::by_username(ctx, name).await?;
            if me != Some(u.id) {
                actor.require_manage_all()?;
            }
            Ok(u.id)
        }
        (None, Some(me)) => Ok(me),
        (None, None) => Err(Error::bad_request("name the user the key is for")),
    }
}

/// Creates a key. With `keys.single_active_per_user` the owner's other keys of that mode are
/// revoked in the same transaction.
pub async fn create(ctx: &Ctx, actor: &Actor, new: NewKey) -> Result<CreatedKey> {
    actor.check_scope()?;
    let name = check_name(&new.name)?;
    check_scopes(actor, &new.scopes)?;
    let mode = match (new.mode, actor.mode) {
        (Some(m), Some(am)) if m != am => {
            return Err(Error::forbidden(format!(
                "A {} key can only manage {}-mode keys",
                am.as_str(),
                am.as_str()
            )))
        }
        (Some(m), _) | (None, Some(m)) => m,
        (None, None) => KeyMode::Live,
    };
    let default_plan = &ctx.settings.keys.default_plan;
    let plan = new.plan.clone().unwrap_or_else(|| default_plan.clone());
    if !ctx.settings.plans.contains_key(&plan) {
        return Err(Error::bad_request(format!(
            "unknown plan `{plan}`; configured plans: {}",
            ctx.settings
                .plans
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    if &plan != default_plan {
        actor.require_manage_all()?;
    }
    let now = store::now();
    if new.expires_at.is_some_and(|e| e <= now) {
        return Err(Error::bad_request("expires_at must be in the future"));
    }
    let user_id = resolve_user(ctx, actor, new.user.as_ref()).await?;
    let tenant = match new.tenant.as_ref().map(|t| t.as_str().to_owned()) {
        Some(t) => Some(t),
        None if new.user.is_none() => actor.tenant_id.clone(),
        None => None,
    };
    let single = ctx.settings.keys.single_active_per_user;
    let manage_all = actor.manage_all;
    let secret = tokens::new_api_key(prefix(new.kind.unwrap_or(KeyKind::Secret), mode));
    let hash = ctx.pepper.hash(secret.expose().as_bytes());
    let last4: String = secret.expose()[secret.expose().len() - 4..].to_owned();
    let key_prefix = prefix(new.kind.unwrap_or(KeyKind::Secret), mode);
    let scopes = new.scopes.clone();
    let expires_at = new.expires_at;
    let (row, revoked) = ctx
        .db
        .write(move |tx| {
            let tenant_id = match tenant {
                Some(t) => {
                    if store::tenants::get(tx, &t)?.is_none() {
                        return Err(Error::not_found("No such tenant"));
                    }
                    if !manage_all && store::tenants::role_of(tx, user_id, &t)?.is_none() {
                        return Err(Error::forbidden("The user is not a member of that tenant"));
                    }
                    t
                }
                None => {
                    store::tenants::by_slug(tx, "default")?
                        .ok_or_else(|| Error::internal("the default tenant is missing"))?
                        .id
                }
            };
            let revoked = if single {
                store::api_keys::revoke_all_for_user(tx, user_id, Some(mode.as_str()), None, now)?
            } else {
                Vec::new()
            };
            let id = store::api_keys::insert(
                tx,
                &store::api_keys::NewRow {
                    key_hash: &hash,
                    prefix: key_prefix,
                    last4: &last4,
                    user_id,
                    tenant_id: &tenant_id,
                    mode: mode.as_str(),
                    plan: &plan,
                    scopes: &scopes,
                    name: &name,
                    expires_at,
                },
                now,
            )?;
            let row = store::api_keys::get(tx, id)?
                .ok_or_else(|| Error::internal("inserted key vanished"))?;
            Ok((row, revoked))
        })
        .await?;
    ctx.keys.invalidate(revoked.iter().map(Vec::as_slice));
    ctx.audit.record(
        "api_key.created",
        true,
        Detail {
            actor: Some(actor.label.clone()),
            tenant_id: Some(row.tenant_id.clone()),
            detail: Some(format!(
                "key {} for {} ({}){}",
                row.id,
                row.username,
                row.mode,
                if revoked.is_empty() {
                    String::new()
                } else {
                    format!("; revoked {} previous", revoked.len())
                }
            )),
            ..Detail::default()
        },
    );
    Ok(CreatedKey {
        key: view(ctx, row),
        secret,
    })
}

/// Lists the keys the actor may see (live keys only: revoked ones are left out).
pub async fn list(ctx: &Ctx, actor: &Actor, filter: ListFilter) -> Result<Vec<KeyView>> {
    actor.check_scope()?;
    let user_id = match (&filter.user, filter.all_users && actor.manage_all) {
        (Some(_), _) => Some(resolve_user(ctx, actor, filter.user.as_ref()).await?),
        (None, true) => None,
        (None, false) => Some(
            actor
                .user_id
                .ok_or_else(|| Error::bad_request("name the user whose keys to list"))?,
        ),
    };
    let mode = actor.mode.map(KeyMode::as_str);
    let rows = ctx
        .db
        .read(move |c| store::api_keys::list(c, user_id, mode, false, 10_000))
        .await?;
    Ok(rows.into_iter().map(|r| view(ctx, r)).collect())
}

async fn visible(ctx: &Ctx, actor: &Actor, id: i64) -> Result<ApiKeyRow> {
    let row = ctx.db.read(move |c| store::api_keys::get(c, id)).await?;
    match row {
        Some(r) if actor.sees(&r) => Ok(r),
        _ => Err(Error::not_found("No such API key")),
    }
}

/// Revokes a key now. Revoking a revoked key again succeeds and changes nothing.
pub async fn revoke(ctx: &Ctx, actor: &Actor, id: i64) -> Result<KeyView> {
    actor.check_scope()?;
    let row = visible(ctx, actor, id).await?;
    let now = store::now();
    let (hash, row) = ctx
        .db
        .write(move |tx| {
            let h = store::api_keys::revoke(tx, id, now)?;
            Ok((h, store::api_keys::get(tx, id)?.unwrap_or(row)))
        })
        .await?;
    if let Some(h) = &hash {
        ctx.keys.invalidate([h.as_slice()]);
        ctx.audit.record(
            "api_key.revoked",
            true,
            Detail {
                actor: Some(actor.label.clone()),
                tenant_id: Some(row.tenant_id.clone()),
                detail: Some(format!("key {} of {}", row.id, row.username)),
                ..Detail::default()
            },
        );
    }
    Ok(view(ctx, row))
}

/// Issues a new key like `id` (same owner, tenant, mode, plan, scopes, name) and lets the old
/// one live `expire_old_in` more seconds (0: it stops now).
pub async fn roll(ctx: &Ctx, actor: &Actor, id: i64, expire_old_in: u64) -> Result<RolledKey> {
    actor.check_scope()?;
    if expire_old_in > MAX_ROLL_OVERLAP_SECS {
        return Err(Error::bad_request(format!(
            "expire_old_in must be 0 to {MAX_ROLL_OVERLAP_SECS} seconds"
        )));
    }
    let old = visible(ctx, actor, id).await?;
    let now = store::now();
    if old.revoked_at.is_some() || old.expires_at.is_some_and(|e| e <= now) {
        return Err(Error::Conflict(
            "That key is revoked or expired; create a new one instead".into(),
        ));
    }
    let kind = if old.prefix.starts_with("pk_") {
        KeyKind::Public
    } else {
        KeyKind::Secret
    };
    let mode = KeyMode::parse(&old.mode)?;
    let secret = tokens::new_api_key(prefix(kind, mode));
    let hash = ctx.pepper.hash(secret.expose().as_bytes());
    let last4: String = secret.expose()[secret.expose().len() - 4..].to_owned();
    let old_expires =
        (now + i64::try_from(expire_old_in).unwrap_or(0)).min(old.expires_at.unwrap_or(i64::MAX));
    let o = old.clone();
    let (row, old_hash) = ctx
        .db
        .write(move |tx| {
            let old_hash = store::api_keys::expire_at(tx, o.id, old_expires)?
                .ok_or_else(|| Error::Conflict("That key was revoked meanwhile".into()))?;
            let new_id = store::api_keys::insert(
                tx,
                &store::api_keys::NewRow {
                    key_hash: &hash,
                    prefix: &o.prefix,
                    last4: &last4,
                    user_id: o.user_id,
                    tenant_id: &o.tenant_id,
                    mode: &o.mode,
                    plan: &o.plan,
                    scopes: &o.scopes,
                    name: &o.name,
                    expires_at: o.expires_at,
                },
                now,
            )?;
            let row = store::api_keys::get(tx, new_id)?
                .ok_or_else(|| Error::internal("inserted key vanished"))?;
            Ok((row, old_hash))
        })
        .await?;
    ctx.keys.invalidate([old_hash.as_slice()]);
    ctx.audit.record(
        "api_key.rolled",
        true,
        Detail {
            actor: Some(actor.label.clone()),
            tenant_id: Some(row.tenant_id.clone()),
            detail: Some(format!(
                "key {} replaced by {}; old expires at {old_expires}",
                old.id, row.id
            )),
            ..Detail::default()
        },
    );
    Ok(RolledKey {
        key: CreatedKey {
            key: view(ctx, row),
            secret,
        },
        rolled_from: old.id,
        old_expires_at: old_expires,
    })
}

/// Keys whose `last_used_at` one flush transaction writes. Between transactions the flush
/// pauses [`FLUSH_PAUSE`], so a large batch (every key of a busy server) neither holds the
/// writer from sign-ins nor takes the CPU from a worker for more than about a millisecond.
pub const FLUSH_CHUNK: usize = 128;
const FLUSH_PAUSE: Duration = Duration::from_millis(1);

/// Writes buffered `last_used_at` values.
pub async fn flush(ctx: &Ctx) -> Result<()> {
    let rt = &ctx.keys;
    let ids: Vec<i64> = rt.pending_last_used.iter().map(|e| *e.key()).collect();
    let mut uses: Vec<(i64, i64)> = ids
        .into_iter()
        .filter_map(|id| rt.pending_last_used.remove(&id))
        .collect();
    // In id order, each transaction's rows share table pages: in the map's random order every
    // row of a chunk dirtied its own page, and a flush of 100 000 keys wrote 400 MB of WAL.
    uses.sort_unstable();
    rt.prune_recorded(store::now());
    if !uses.is_empty() {
        tracing::debug!(keys = uses.len(), "flushing API key last-used times");
    }
    for (i, chunk) in uses.chunks(FLUSH_CHUNK).enumerate() {
        if i > 0 {
            tokio::time::sleep(FLUSH_PAUSE).await;
        }
        let batch = chunk.to_vec();
        // Relaxed: a power cut loses at most these last uses, not a revoke or any other write
        // (the next durable commit syncs them too). An fsync per chunk was ≈1 200 a minute
        // for 100 000 keys in use (`BENCHMARKS.md`, section 4).
        if let Err(e) = ctx
            .db
            .write_relaxed(move |tx| store::api_keys::touch_last_used(tx, &batch))
            .await
        {
            // Put back what was not written (this chunk and the rest) for the next flush.
            for &(id, at) in &uses[i * FLUSH_CHUNK..] {
                rt.pending_last_used
                    .entry(id)
                    .and_modify(|v| *v = (*v).max(at))
                    .or_insert(at);
            }
            return Err(e);
        }
    }
    Ok(())
}

/// How often [`poll_changes`] runs.
pub const CHANGE_POLL: Duration = Duration::from_secs(1);

/// Drops the cached keys another process changed: keys revoked and owners changed (disabled,
/// re-enabled, rights or password changed) since the last pass. Two indexed reads, usually
/// answering nothing; this process's own changes were dropped when they committed and are
/// dropped again here, harmlessly. First it makes room in a nearly full cache
/// ([`KeyRuntime::trim`]).
pub async fn poll_changes(ctx: &Ctx) -> Result<()> {
    let rt = &ctx.keys;
    let since = rt.changes_seen_until.load(Ordering::Relaxed);
    let now = store::now();
    rt.trim(now);
    let (hashes, users) = ctx
        .db
        .read(move |c| {
            Ok((
                store::api_keys::revoked_since(c, since)?,
                store::users::changed_since(c, since)?,
            ))
        })
        .await?;
    if !hashes.is_empty() {
        rt.invalidate(hashes.iter().map(Vec::as_slice));
    }
    if !users.is_empty() {
        rt.forget_users(users);
    }
    // Overlap one second: a change in the same second as the last pass is seen twice, never
    // missed.
    rt.changes_seen_until.store(now - 1, Ordering::Relaxed);
    Ok(())
}

/// Starts the periodic flush of `last_used_at` and the change poll; both end by themselves when
/// the context is dropped.
pub fn start_background(ctx: &Arc<Ctx>) {
    let flush_every = Duration::from_secs(ctx.settings.keys.last_used_flush_secs.max(1));
    crate::jobs::every(ctx, flush_every, |ctx| async move {
        if let Err(e) = flush(&ctx).await {
            tracing::warn!(error = %e, "flushing API key last-used times failed");
        }
    });
    crate::jobs::every(ctx, CHANGE_POLL, |ctx| async move {
        if let Err(e) = poll_changes(&ctx).await {
            tracing::warn!(error = %e, "polling for API key changes failed");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(key_id: i64, user_id: i64) -> Arc<KeyIdentity> {
        Arc::new(KeyIdentity {
            key_id,
            user_id,
            username: "u".into(),
            tenant_id: "default".into(),
            mode: KeyMode::Live,
            scopes: Vec::new(),
            is_admin: false,
            permissions: Vec::new(),
            expires_at: None,
            plan: "free".into(),
            rate: Default::default(),
        })
    }

    fn cached(key_id: i64, user_id: i64) -> Cached {
        Cached {
            identity: identity(key_id, user_id),
            trusted_until: i64::MAX,
            last_seen: AtomicI64::new(0),
        }
    }

    #[test]
    fn uses_are_recorded_a_per_key_share_early() {
        let rt = KeyRuntime::new(&crate::config::KeySettings::default()); // resolution 60 s
        let shares: Vec<i64> = (1..=1000).map(|id| rt.early(id)).collect();
        assert!(
            shares.iter().all(|e| (0..=15).contains(e)),
            "at most a quarter"
        );
        let distinct: std::collections::BTreeSet<_> = shares.iter().collect();
        assert_eq!(distinct.len(), 16, "keys spread over every share");

        let c = cached(7, 1);
        let early = rt.early(7);
        rt.note_use(&c, 1_000);
        assert_eq!(
            rt.pending_last_used.remove(&7).map(|(_, at)| at),
            Some(1_000)
        );
        rt.note_use(&c, 1_000 + 60 - early - 1);
        assert!(rt.pending_last_used.get(&7).is_none(), "not yet due");
        rt.note_use(&c, 1_000 + 60 - early);
        assert_eq!(
            rt.pending_last_used.remove(&7).map(|(_, at)| at),
            Some(1_000 + 60 - early),
            "the time recorded is the use's own"
        );

        // A one-second resolution has no room for a share.
        let one = KeyRuntime::new(&crate::config::KeySettings {
            last_used_resolution_secs: 1,
            ..Default::default()
        });
        assert!((1..=1000).all(|id| one.early(id) == 0));
    }

    fn hash_of(key_id: i64) -> [u8; 32] {
        let mut hash = [0u8; 32];
        hash[..8].copy_from_slice(&key_id.to_le_bytes());
        hash
    }

    fn capped(capacity: usize) -> KeyRuntime {
        KeyRuntime::new(&crate::config::KeySettings {
            cache_capacity: capacity,
            ..Default::default()
        })
    }

    #[test]
    fn a_full_cache_renews_a_lapsed_entry_in_place_and_takes_no_new_one() {
        let rt = capped(2);
        for id in [1, 2] {
            let mut c = cached(id, 1);
            c.trusted_until = 100;
            rt.keep(hash_of(id), c, 0);
        }
        assert_eq!(rt.cached(), 2);
        let mut renewed = cached(1, 1);
        renewed.trusted_until = 500;
        rt.keep(hash_of(1), renewed, 0);
        assert_eq!(rt.cache.get(&hash_of(1)).unwrap().trusted_until, 500);
        rt.keep(hash_of(3), cached(3, 1), 0);
        assert!(!rt.cache.contains_key(&hash_of(3)), "full: no new entry");
        assert_eq!(rt.cached(), 2);
        // A revoke during the read (the epoch moved) keeps nothing, renewal or not.
        let mut stale = cached(2, 1);
        stale.trusted_until = 500;
        rt.invalidate([]);
        rt.keep(hash_of(2), stale, 0);
        assert!(!rt.cache.contains_key(&hash_of(2)));
        // Off: nothing is kept.
        let off = capped(0);
        off.keep(hash_of(1), cached(1, 1), 0);
        assert_eq!(off.cached(), 0);
    }

    #[test]
    fn trim_drops_lapsed_entries_then_the_least_recently_used() {
        let now = 10_000;
        // 9 of 10 (the 90 % mark), 5 of them lapsed: the 4 others stay (under 80 %).
        let rt = capped(10);
        for id in 1..=9 {
            let mut c = cached(id, 1);
            c.trusted_until = if id <= 5 { now } else { now + 1 };
            rt.cache.insert(hash_of(id), c);
        }
        rt.trim(now);
        let mut left: Vec<i64> = rt.cache.iter().map(|e| e.identity.key_id).collect();
        left.sort_unstable();
        assert_eq!(left, [6, 7, 8, 9]);
        // Full of trusted entries: the 2 least recently used go (down to 80 %).
        let rt = capped(10);
        for id in 1..=10 {
            let c = cached(id, 1);
            c.last_seen
                .store(now - 100 + (id * 7) % 10, Ordering::Relaxed);
            rt.cache.insert(hash_of(id), c);
        }
        rt.trim(now);
        let mut left: Vec<i64> = rt.cache.iter().map(|e| e.identity.key_id).collect();
        left.sort_unstable();
        // Last seen (id * 7) % 10 after now - 100: ids 10 (0) and 3 (1) are the oldest.
        assert_eq!(left, [1, 2, 4, 5, 6, 7, 8, 9]);
        // Under 90 %: nothing is touched, lapsed or not.
        let rt = capped(10);
        for id in 1..=8 {
            let mut c = cached(id, 1);
            c.trusted_until = 0;
            rt.cache.insert(hash_of(id), c);
        }
        rt.trim(now);
        assert_eq!(rt.cached(), 8);
    }

    #[test]
    fn forget_users_drops_exactly_their_keys() {
        let rt = KeyRuntime::new(&crate::config::KeySettings::default());
        // Users 1..=50, two keys each.
        for key_id in 0..100_i64 {
            rt.cache
                .insert(hash_of(key_id), cached(key_id, key_id / 2 + 1));
        }
        let epoch = rt.epoch.load(Ordering::SeqCst);
        // Unsorted, with a user who has no key.
        rt.forget_users(vec![40, 3, 999, 17]);
        assert_ne!(
            rt.epoch.load(Ordering::SeqCst),
            epoch,
            "racing misses must re-check"
        );
        assert_eq!(rt.cached(), 94);
        let left: Vec<i64> = rt.cache.iter().map(|e| e.identity.user_id).collect();
        assert!(left.iter().all(|u| ![3, 17, 40].contains(u)));
        assert!(left.contains(&1) && left.contains(&50));
    }
}
