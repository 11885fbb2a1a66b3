//! Per-key rate limits (hourly quota and concurrency) and per-address throttling of invalid
//! credentials.
//!
//! **Hourly quota: GCRA** (the generic cell rate algorithm, via the `governor` crate), one keyed
//! limiter per plan, keyed by key id. A plan of `N` requests per hour lets a fresh key make `N`
//! requests at once and then earns one request back every `3600 / N` seconds — a sliding
//! bucket with no burst at window edges, unlike fixed windows. `X-RateLimit-Remaining` is the
//! requests still allowed right now, `X-RateLimit-Reset` the Unix time at which the full quota
//! is back. Test-mode keys use the plan `keys.test_plan` whatever their own plan is.
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
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use crate::config::{Plan, Settings};
use crate::error::Error;

type KeyedLimiter<K> =
    RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock, StateInformationMiddleware>;

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
    limiter: KeyedLimiter<i64>,
    concurrent: u32,
    limit: u32,
    period: Duration,
}

/// Every in-memory limiter.
pub struct RateLimits {
    plans: HashMap<String, PlanLimiter, foldhash::fast::RandomState>,
    default_plan: String,
    test_plan: String,
    in_flight: DashMap<i64, Arc<AtomicU32>, foldhash::fast::RandomState>,
    invalid: KeyedLimiter<IpAddr>,
    blocked: DashMap<IpAddr, u64>,
    clock: DefaultClock,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("plans", &self.plans.keys().collect::<Vec<_>>())
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

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn plan_limiter(plan: &Plan) -> PlanLimiter {
    let limit = u32::try_from(plan.requests_per_hour)
        .ok()
        .and_then(NonZeroU32::new)
        .unwrap_or(NonZeroU32::MIN);
    let quota = Quota::per_hour(limit);
    PlanLimiter {
        limiter: RateLimiter::dashmap(quota).with_middleware::<StateInformationMiddleware>(),
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
        RateLimits {
            plans: settings
                .plans
                .iter()
                .map(|(name, p)| (name.clone(), plan_limiter(p)))
                .collect(),
            default_plan: settings.keys.default_plan.clone(),
            test_plan: settings.keys.test_plan.clone(),
            in_flight: DashMap::default(),
            invalid: RateLimiter::dashmap(Quota::per_minute(per_minute))
                .with_middleware::<StateInformationMiddleware>(),
            blocked: DashMap::new(),
            clock: DefaultClock::default(),
        }
    }

    fn plan(&self, plan: &str, test: bool) -> Option<&PlanLimiter> {
        let name = if test { &self.test_plan } else { plan };
        self.plans
            .get(name)
            .or_else(|| self.plans.get(&self.default_plan))
    }

    /// Counts one request of key `key_id` against its plan's hourly quota.
    pub fn check(&self, key_id: i64, plan: &str, test: bool) -> RateLimitInfo {
        let Some(p) = self.plan(plan, test) else {
            return RateLimitInfo {
                limit: 0,
                remaining: 0,
                reset: unix_now(),
                retry_after: 0,
            };
        };
        let now = unix_now();
        match p.limiter.check_key(&key_id) {
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
    pub fn enter(&self, key_id: i64, plan: &str, test: bool) -> Result<ConcurrencyGuard, Error> {
        let cap = self.plan(plan, test).map_or(1, |p| p.concurrent);
        let counter = self
            .in_flight
            .entry(key_id)
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

    /// Counts an invalid credential from `ip`; `Err(retry_after)` once the address is over budget.
    pub fn invalid_attempt(&self, ip: Option<IpAddr>) -> Result<(), u64> {
        let Some(ip) = ip else { return Ok(()) };
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
        let ip = ip?;
        let until = *self.blocked.get(&ip)?;
        let now = unix_now();
        if until > now {
            Some(until - now)
        } else {
            self.blocked.remove(&ip);
            None
        }
    }

    /// Forgets idle state (full buckets, idle counters); run periodically.
    pub fn housekeeping(&self) {
        for p in self.plans.values() {
            p.limiter.retain_recent();
            p.limiter.shrink_to_fit();
        }
        self.invalid.retain_recent();
        let now = unix_now();
        self.blocked.retain(|_, until| *until > now);
        self.in_flight
            .retain(|_, c| Arc::strong_count(c) > 1 || c.load(Ordering::Acquire) > 0);
    }
}

/// Runs [`RateLimits::housekeeping`] every minute until the limits are dropped.
pub fn start_housekeeping(limits: &Arc<RateLimits>) {
    let weak: Weak<RateLimits> = Arc::downgrade(limits);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(l) = weak.upgrade() else { break };
            l.housekeeping();
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(rph: u64, concurrent: u32) -> RateLimits {
        let mut s = Settings::default();
        if let Some(p) = s.plans.get_mut("free") {
            p.requests_per_hour = rph;
            p.concurrent = concurrent;
        }
        s.keys.invalid_attempts_per_minute = 2;
        RateLimits::new(&s)
    }

    #[test]
    fn gcra_allows_exactly_the_plan_then_refuses() {
        let l = limits(3, 1);
        let now = unix_now();
        for left in [2, 1, 0] {
            let i = l.check(7, "free", false);
            assert!(!i.limited());
            assert_eq!((i.limit, i.remaining), (3, left));
            assert!(i.reset >= now && i.reset <= now + 3_601);
        }
        let i = l.check(7, "free", false);
        assert!(i.limited());
        assert_eq!(i.remaining, 0);
        assert!((1..=1_200).contains(&i.retry_after), "{}", i.retry_after);
        // Another key has its own bucket; an unknown plan falls back to the default plan.
        assert!(!l.check(8, "gone", false).limited());
        // Test keys use the test plan.
        assert_eq!(l.check(9, "free", true).limit, 50);
    }

    #[test]
    fn concurrency_guard_holds_and_releases_a_slot() {
        let l = limits(100, 2);
        let a = l.enter(1, "free", false).unwrap();
        let b = l.enter(1, "free", false).unwrap();
        assert!(matches!(
            l.enter(1, "free", false),
            Err(Error::RateLimited { .. })
        ));
        drop(a);
        let _c = l.enter(1, "free", false).unwrap();
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
