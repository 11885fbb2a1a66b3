//! Per-key rate limits (hourly quota and concurrency) and per-address throttling of invalid
//! credentials.
//!
//! **Hourly quota: GCRA** (the generic cell rate algorithm, via the `governor` crate), one
//! limiter per plan over one state cell per key. A plan of `N` requests per hour lets a fresh
//! key make `N` requests at once and then earns one request back every `3600 / N` seconds — a
//! sliding bucket with no burst at window edges, unlike fixed windows. `X-RateLimit-Remaining`
//! is the requests still allowed right now, `X-RateLimit-Reset` the Unix time at which the full
//! quota is back. Test-mode keys use the plan `keys.test_plan` whatever their own plan is.
//!
//! A key's cell (governor's 8-byte GCRA state) lives in a map keyed by plan and key id, and the
//! key's cached identity holds it too ([`RateSlot`]): a check of a cached key goes straight to
//! its cell, with no map look-up and no plan look-up by name. The map is what a renewed
//! identity finds the same cell in, so renewing a cache entry never resets a quota.
//!
//! **Concurrency**: a counter per key; a [`ConcurrencyGuard`] holds one slot for the life of a
//! request served by Gatehouse itself (verify / forward-auth checks are counted against the
//! hourly quota only: they are answered at once).
//!
//! **Invalid credentials** presented to verify / forward-auth are counted per client address
//! (GCRA, `keys.invalid_attempts_per_minute`); an address over its budget gets 429 for any
//! credential the cache does not already know, so guessing cannot turn into database load.
//!
//! All counters live in memory: a restart resets them (every key starts with its full quota),
//! and nothing is written to SQLite on the request path.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use dashmap::DashMap;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::state::{InMemoryState, NotKeyed, StateStore};
use governor::{Quota, RateLimiter};

use crate::config::{Plan, Settings};
use crate::error::Error;
use crate::services::keys::{KeyIdentity, KeyMode};

type FastHash = foldhash::fast::RandomState;

type KeyedLimiter<K> =
    RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock, StateInformationMiddleware>;

/// A plan's limiter: governor's GCRA over the key cells it is handed.
type CellLimiter = RateLimiter<Cell, CellStore, DefaultClock, StateInformationMiddleware>;

/// A quota is fully earned back within this long (every plan counts per hour): a cell idle
/// for longer is equal to a fresh one and may be forgotten.
const FULL_REFILL_SECS: u64 = 3_600;

/// One key's GCRA state under one plan, and when it was last checked (Unix seconds).
#[derive(Debug, Default)]
struct KeyCell {
    gcra: InMemoryState,
    last_checked: AtomicU64,
}

/// A key's cell as governor's limiter key: identity is the cell itself.
#[derive(Clone, Debug)]
struct Cell(Arc<KeyCell>);

impl PartialEq for Cell {
    fn eq(&self, other: &Cell) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Cell {}

impl std::hash::Hash for Cell {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        Arc::as_ptr(&self.0).hash(h);
    }
}

/// The state store of a plan's limiter: the state is in the cell the caller passes.
#[derive(Debug, Default)]
struct CellStore;

impl StateStore for CellStore {
    type Key = Cell;

    fn measure_and_replace<T, F, E>(&self, key: &Cell, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        key.0.gcra.measure_and_replace(&NotKeyed::NonKey, f)
    }
}

/// Where a cached key identity keeps its plan's slot and its cell, filled at its first check.
#[derive(Default)]
pub struct RateSlot(OnceLock<(usize, Cell)>);

impl std::fmt::Debug for RateSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "RateSlot(attached)"
        } else {
            "RateSlot(empty)"
        })
    }
}

/// The rate-limit state of one key after a check: what the `X-RateLimit-*` headers say.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct RateLimitInfo {
    /// Requests per hour of the plan.
    pub limit: u32,
    /// Requests still allowed now.
    pub remaining: u32,
    /// Unix time (seconds) when the full quota is back.
    pub reset: u64,
    /// Seconds to wait when refused (0 when allowed).
    #[serde(skip)]
    pub retry_after: u64,
}

impl RateLimitInfo {
    /// Whether the request was refused.
    pub fn limited(&self) -> bool {
        self.retry_after > 0
    }
}

struct PlanLimiter {
    limiter: CellLimiter,
    concurrent: u32,
    limit: u32,
    period: Duration,
}

/// Every in-memory limiter.
pub struct RateLimits {
    plans: Vec<PlanLimiter>,
    slots: HashMap<String, usize, FastHash>,
    default_slot: Option<usize>,
    test_slot: Option<usize>,
    /// Every key's cell, by plan slot and key id.
    cells: DashMap<(usize, i64), Arc<KeyCell>, FastHash>,
    in_flight: DashMap<i64, Arc<AtomicU32>, FastHash>,
    invalid: KeyedLimiter<IpAddr>,
    blocked: DashMap<IpAddr, u64>,
    clock: DefaultClock,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("plans", &self.slots.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Holds one concurrency slot of a key until dropped.
#[derive(Debug)]
pub struct ConcurrencyGuard(Arc<AtomicU32>);

impl Drop for ConcurrencyGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// [`crate::store::now`] as the unsigned seconds the limiter's arithmetic uses.
fn unix_now() -> u64 {
    u64::try_from(crate::store::now()).unwrap_or(0)
}

fn plan_limiter(plan: &Plan) -> PlanLimiter {
    let limit = u32::try_from(plan.requests_per_hour)
        .ok()
        .and_then(NonZeroU32::new)
        .unwrap_or(NonZeroU32::MIN);
    let quota = Quota::per_hour(limit);
    PlanLimiter {
        limiter: CellLimiter::new(quota, CellStore, DefaultClock::default()),
        concurrent: plan.concurrent.max(1),
        limit: limit.get(),
        period: quota.replenish_interval(),
    }
}

impl RateLimits {
    /// Builds one limiter per configured plan.
    pub fn new(settings: &Settings) -> RateLimits {
        let per_minute =
            NonZeroU32::new(settings.keys.invalid_attempts_per_minute).unwrap_or(NonZeroU32::MIN);
        let mut plans = Vec::with_capacity(settings.plans.len());
        let mut slots: HashMap<String, usize, FastHash> = HashMap::default();
        for (name, p) in &settings.plans {
            slots.insert(name.clone(), plans.len());
            plans.push(plan_limiter(p));
        }
        RateLimits {
            default_slot: slots.get(&settings.keys.default_plan).copied(),
            test_slot: slots.get(&settings.keys.test_plan).copied(),
            plans,
            slots,
            cells: DashMap::default(),
            in_flight: DashMap::default(),
            invalid: RateLimiter::dashmap(Quota::per_minute(per_minute))
                .with_middleware::<StateInformationMiddleware>(),
            blocked: DashMap::new(),
            clock: DefaultClock::default(),
        }
    }

    /// The slot of the plan a key is counted under: `keys.test_plan` for test keys, else its
    /// own plan, else (a plan since removed from the config) `keys.default_plan`.
    fn slot_of(&self, key: &KeyIdentity) -> Option<usize> {
        if key.mode == KeyMode::Test {
            return self.test_slot.or(self.default_slot);
        }
        self.slots.get(&key.plan).copied().or(self.default_slot)
    }

    /// The key's plan slot and cell: from its identity after the first check, else from the
    /// map (where a renewed identity of the key finds the cell its predecessor used).
    fn attach<'k>(&self, key: &'k KeyIdentity) -> Option<&'k (usize, Cell)> {
        if let Some(attached) = key.rate.0.get() {
            return Some(attached);
        }
        let slot = self.slot_of(key)?;
        let at = (slot, key.key_id);
        // A shared look-up first: the cell exists for any key seen before.
        let cell = match self.cells.get(&at) {
            Some(c) => c.value().clone(),
            None => self.cells.entry(at).or_default().value().clone(),
        };
        Some(key.rate.0.get_or_init(|| (slot, Cell(cell))))
    }

    /// Counts one request of `key` against its plan's hourly quota.
    pub fn check(&self, key: &KeyIdentity) -> RateLimitInfo {
        let now = unix_now();
        let Some((slot, cell)) = self.attach(key) else {
            return RateLimitInfo {
                limit: 0,
                remaining: 0,
                reset: now,
                retry_after: 0,
            };
        };
        let p = &self.plans[*slot];
        if cell.0.last_checked.load(Ordering::Relaxed) != now {
            cell.0.last_checked.store(now, Ordering::Relaxed);
        }
        match p.limiter.check_key(cell) {
            Ok(snap) => {
                let remaining = snap.remaining_burst_capacity();
                let used = p.limit.saturating_sub(remaining);
                RateLimitInfo {
                    limit: p.limit,
                    remaining,
                    reset: now + (p.period * used).as_secs_f64().ceil() as u64,
                    retry_after: 0,
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                RateLimitInfo {
                    limit: p.limit,
                    remaining: 0,
                    reset: now + (p.period * p.limit).as_secs_f64().ceil() as u64,
                    retry_after: wait.as_secs_f64().ceil().max(1.0) as u64,
                }
            }
        }
    }

    /// Takes one concurrency slot of the key, or refuses with 429 if its plan's cap is reached.
    pub fn enter(&self, key: &KeyIdentity) -> Result<ConcurrencyGuard, Error> {
        // The plan slot the quota check just attached to the identity: no second look-up.
        let cap = self
            .attach(key)
            .map_or(1, |(s, _)| self.plans[*s].concurrent);
        let counter = self
            .in_flight
            .entry(key.key_id)
            .or_insert_with(|| Arc::new(AtomicU32::new(0)))
            .clone();
        let mut cur = counter.load(Ordering::Acquire);
        loop {
            if cur >= cap {
                return Err(Error::RateLimited { retry_after: 1 });
            }
            match counter.compare_exchange_weak(cur, cur + 1, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Ok(ConcurrencyGuard(counter)),
                Err(now) => cur = now,
            }
        }
    }

    /// Counts an invalid credential from `ip` (by [`address_bucket`]); `Err(retry_after)` once
    /// the address is over budget.
    pub fn invalid_attempt(&self, ip: Option<IpAddr>) -> Result<(), u64> {
        let Some(ip) = ip.map(address_bucket) else {
            return Ok(());
        };
        match self.invalid.check_key(&ip) {
            Ok(_) => Ok(()),
            Err(n) => {
                let wait = n
                    .wait_time_from(self.clock.now())
                    .as_secs_f64()
                    .ceil()
                    .max(1.0) as u64;
                self.blocked.insert(ip, unix_now() + wait);
                Err(wait)
            }
        }
    }

    /// Seconds `ip` must still wait if it went over its invalid-credential budget.
    pub fn address_blocked(&self, ip: Option<IpAddr>) -> Option<u64> {
        let ip = address_bucket(ip?);
        let until = *self.blocked.get(&ip)?;
        let now = unix_now();
        if until > now {
            Some(until - now)
        } else {
            self.blocked.remove(&ip);
            None
        }
    }

    /// Forgets idle state (full buckets, idle counters); run periodically. A key cell goes
    /// once no cached identity holds it and it has not been checked for a full refill period:
    /// it is then equal to a fresh cell, so forgetting it changes no answer.
    pub fn housekeeping(&self) {
        let now = unix_now();
        self.cells.retain(|_, c| {
            Arc::strong_count(c) > 1
                || now.saturating_sub(c.last_checked.load(Ordering::Relaxed)) <= FULL_REFILL_SECS
        });
        self.cells.shrink_to_fit();
        self.invalid.retain_recent();
        self.blocked.retain(|_, until| *until > now);
        self.in_flight
            .retain(|_, c| Arc::strong_count(c) > 1 || c.load(Ordering::Acquire) > 0);
    }
}

/// What a per-address limit counts an address as: an IPv4 address as it is, an IPv6 address by
/// its /64 network. A /64 is one subscriber's (or one LAN's) allocation and its hosts pick their
/// own addresses in it (privacy addresses rotate), so counting single IPv6 addresses would let
/// one client spread its guesses over 2^64 budgets. An IPv4-mapped IPv6 address
/// (`::ffff:a.b.c.d`, how a dual-stack listener sees an IPv4 peer) counts as its IPv4 address.
pub fn address_bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(
                u128::from(v6) & !u128::from(u64::MAX),
            )),
        },
    }
}

/// Runs [`RateLimits::housekeeping`] every minute until the limits are dropped.
pub fn start_housekeeping(limits: &Arc<RateLimits>) {
    crate::jobs::every(limits, Duration::from_secs(60), |l| async move {
        l.housekeeping()
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_addresses_count_by_their_64_network() {
        let b = |s: &str| address_bucket(s.parse().unwrap()).to_string();
        assert_eq!(b("203.0.113.7"), "203.0.113.7");
        assert_eq!(b("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), "2001:db8:1:2::");
        assert_eq!(b("2001:db8:1:2::1"), "2001:db8:1:2::");
        assert_eq!(b("2001:db8:1:3::1"), "2001:db8:1:3::");
        assert_eq!(b("::ffff:203.0.113.7"), "203.0.113.7");
        assert_eq!(b("::1"), "::");
    }

    fn limits(rph: u64, concurrent: u32) -> RateLimits {
        let mut s = Settings::default();
        if let Some(p) = s.plans.get_mut("free") {
            p.requests_per_hour = rph;
            p.concurrent = concurrent;
        }
        s.keys.invalid_attempts_per_minute = 2;
        RateLimits::new(&s)
    }

    /// A cached identity of key `id`, as the key cache builds it from the key's row.
    fn key(id: i64, plan: &str, mode: KeyMode) -> KeyIdentity {
        KeyIdentity {
            key_id: id,
            user_id: 1,
            username: "ana".into(),
            tenant_id: "ten_1".into(),
            mode,
            scopes: Vec::new(),
            is_admin: false,
            permissions: Vec::new(),
            expires_at: None,
            plan: plan.into(),
            rate: RateSlot::default(),
        }
    }

    #[test]
    fn gcra_allows_exactly_the_plan_then_refuses() {
        let l = limits(3, 1);
        let k = key(7, "free", KeyMode::Live);
        let now = unix_now();
        for left in [2, 1, 0] {
            let i = l.check(&k);
            assert!(!i.limited());
            assert_eq!((i.limit, i.remaining), (3, left));
            assert!(i.reset >= now && i.reset <= now + 3_601);
        }
        let i = l.check(&k);
        assert!(i.limited());
        assert_eq!(i.remaining, 0);
        assert!((1..=1_200).contains(&i.retry_after), "{}", i.retry_after);
        // Another key has its own bucket; an unknown plan falls back to the default plan.
        assert!(!l.check(&key(8, "gone", KeyMode::Live)).limited());
        // Test keys use the test plan.
        assert_eq!(l.check(&key(9, "free", KeyMode::Test)).limit, 50);
    }

    #[test]
    fn a_renewed_identity_goes_on_counting_in_the_same_cell() {
        let l = limits(2, 1);
        let first = key(7, "free", KeyMode::Live);
        assert_eq!(l.check(&first).remaining, 1);
        // The cache renews the entry: a new identity of the same key, built from its row.
        drop(first);
        let renewed = key(7, "free", KeyMode::Live);
        assert_eq!(l.check(&renewed).remaining, 0);
        assert!(l.check(&renewed).limited());
        // Housekeeping keeps a cell an identity holds, and one checked within the refill period.
        l.housekeeping();
        drop(renewed);
        l.housekeeping();
        assert!(l.check(&key(7, "free", KeyMode::Live)).limited());
        // Under another plan the key counts afresh (its plan was changed).
        assert!(!l.check(&key(7, "pro", KeyMode::Live)).limited());
    }

    #[test]
    fn housekeeping_forgets_only_idle_cells_nobody_holds() {
        let l = limits(2, 1);
        let held = key(1, "free", KeyMode::Live);
        l.check(&held);
        l.check(&key(2, "free", KeyMode::Live));
        assert_eq!(l.cells.len(), 2);
        // Both as if last checked more than a full refill period ago.
        for c in &l.cells {
            c.last_checked.store(1, Ordering::Relaxed);
        }
        l.housekeeping();
        // Key 2's identity is gone and its cell idle: forgotten. Key 1's is still held.
        assert_eq!(l.cells.len(), 1);
        assert!(l.cells.contains_key(&(l.slot_of(&held).unwrap(), 1)));
        // ...and goes on counting where it was: its second request of two.
        assert_eq!(l.check(&held).remaining, 0);
    }

    #[test]
    fn concurrency_guard_holds_and_releases_a_slot() {
        let l = limits(100, 2);
        let k = key(1, "free", KeyMode::Live);
        let a = l.enter(&k).unwrap();
        let b = l.enter(&k).unwrap();
        assert!(matches!(l.enter(&k), Err(Error::RateLimited { .. })));
        drop(a);
        let _c = l.enter(&k).unwrap();
        drop(b);
        l.housekeeping();
    }

    #[test]
    fn invalid_attempts_block_an_address_after_its_budget() {
        let l = limits(100, 2);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(l.address_blocked(Some(ip)).is_none());
        assert!(l.invalid_attempt(Some(ip)).is_ok());
        assert!(l.invalid_attempt(Some(ip)).is_ok());
        assert!(l.invalid_attempt(Some(ip)).is_err());
        assert!(l.address_blocked(Some(ip)).is_some());
        assert!(l
            .address_blocked(Some("192.0.2.2".parse().unwrap()))
            .is_none());
        assert!(l.invalid_attempt(None).is_ok());
    }
}
