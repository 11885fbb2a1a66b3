//! Throttling of failed sign-ins, per account and per client address.
//!
//! Three limits, all in memory (a restart clears them):
//! - **per address** (an IPv6 address by its /64: [`address_bucket`]), fixed window:
//!   `max_failures_per_address` failures per `window_secs`;
//! - **per account**, fixed window: `max_failures_per_account` failures per `window_secs`;
//! - **per account, consecutive** (NIST SP 800-63B: no more than 100 consecutive failures):
//!   the count only resets on a success (or after a day without failures). Once it reaches
//!   `max_consecutive_failures`, each further failure locks the account for `lockout_secs`, so
//!   after the first 100 guesses an attacker gets one guess per lock-out period.
//!
//! Password sign-in uses [`Throttle::begin`], which checks and counts in one step (an attempt
//! counts as a failure until it succeeds), so parallel guesses cannot overrun a limit.
//!
//! The account limits do not apply to an address that signed into that account successfully in
//! the last `remember_address_days`: an attacker elsewhere cannot lock the real user out, and a
//! user on a new device waits at most one window or one lock-out period. The account key is the
//! name as typed, existing or not, so throttling reveals nothing about which accounts exist.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use dashmap::DashMap;

use crate::auth::ratelimit::address_bucket;
use crate::config::LoginSettings;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    failures: u32,
}

#[derive(Debug, Clone, Copy)]
struct Account {
    window: Window,
    consecutive: u32,
    last_failure: Instant,
}

/// Failure counters by account and by address.
#[derive(Debug)]
pub struct Throttle {
    accounts: DashMap<String, Account>,
    addresses: DashMap<IpAddr, Window>,
    known: DashMap<(String, IpAddr), Instant>,
    max_account: u32,
    max_address: u32,
    max_consecutive: u32,
    window: Duration,
    lockout: Duration,
    remember: Duration,
}

/// A day without failures forgets an account's consecutive count.
const FORGET_AFTER: Duration = Duration::from_secs(86_400);
/// Entries kept before stale ones are pruned.
const PRUNE_ABOVE: usize = 100_000;

impl Throttle {
    /// Windowed limits only, per key and per address (no consecutive-failure lock-out, no
    /// remembered addresses): for requests that are not password guesses, like magic links.
    pub fn windowed(max_per_key: u32, max_per_address: u32, window_secs: u64) -> Throttle {
        Throttle::new(&LoginSettings {
            max_failures_per_account: max_per_key,
            max_failures_per_address: max_per_address,
            window_secs,
            max_consecutive_failures: u32::MAX,
            lockout_secs: window_secs,
            remember_address_days: 0,
        })
    }

    /// Builds from config.
    pub fn new(cfg: &LoginSettings) -> Throttle {
        Throttle {
            accounts: DashMap::new(),
            addresses: DashMap::new(),
            known: DashMap::new(),
            max_account: cfg.max_failures_per_account,
            max_address: cfg.max_failures_per_address,
            max_consecutive: cfg.max_consecutive_failures,
            window: Duration::from_secs(cfg.window_secs.max(1)),
            lockout: Duration::from_secs(cfg.lockout_secs.max(1)),
            remember: Duration::from_secs(u64::from(cfg.remember_address_days) * 86_400),
        }
    }

    fn window_wait(&self, w: Window, max: u32, now: Instant) -> Option<u64> {
        let elapsed = now.duration_since(w.start);
        (elapsed < self.window && w.failures >= max).then(|| secs_ceil(self.window - elapsed))
    }

    fn is_known(&self, key: &str, ip: Option<IpAddr>, now: Instant) -> bool {
        ip.and_then(|ip| self.known.get(&(key.to_owned(), ip)).map(|t| *t))
            .is_some_and(|t| now.duration_since(t) < self.remember)
    }

    /// Refuses with 429 (and the seconds to wait) if the address or the account is throttled.
    pub fn check(&self, account: &str, ip: Option<IpAddr>) -> Result<()> {
        let ip = ip.map(address_bucket);
        let now = Instant::now();
        let key = account.to_lowercase();
        let mut wait = ip
            .and_then(|ip| self.addresses.get(&ip).map(|w| *w))
            .and_then(|w| self.window_wait(w, self.max_address, now));
        if !self.is_known(&key, ip, now) {
            if let Some(a) = self.accounts.get(&key).map(|a| *a) {
                wait = wait.max(self.window_wait(a.window, self.max_account, now));
                let since = now.duration_since(a.last_failure);
                if a.consecutive >= self.max_consecutive && since < self.lockout {
                    wait = wait.max(Some(secs_ceil(self.lockout - since)));
                }
            }
        }
        match wait {
            Some(retry_after) => Err(Error::RateLimited { retry_after }),
            None => Ok(()),
        }
    }

    /// Admits one sign-in attempt or refuses it with 429, atomically: an admitted attempt is
    /// counted as a failure at once (and un-counted by [`Throttle::succeeded`]), so a burst of
    /// parallel guesses cannot all pass the check before any of them is counted.
    pub fn begin(&self, account: &str, ip: Option<IpAddr>) -> Result<()> {
        let ip = ip.map(address_bucket);
        let now = Instant::now();
        let key = account.to_lowercase();
        let fresh = Window {
            start: now,
            failures: 0,
        };
        let known = self.is_known(&key, ip, now);
        // Lock order: address entry, then account entry (the same everywhere).
        let mut addr = ip.map(|ip| self.addresses.entry(ip).or_insert(fresh));
        let mut acct = self.accounts.entry(key).or_insert(Account {
            window: fresh,
            consecutive: 0,
            last_failure: now,
        });
        if let Some(a) = addr.as_deref_mut() {
            if now.duration_since(a.start) >= self.window {
                *a = fresh;
            }
        }
        if now.duration_since(acct.window.start) >= self.window {
            acct.window = fresh;
        }
        if now.duration_since(acct.last_failure) >= FORGET_AFTER {
            acct.consecutive = 0;
        }
        let mut wait = addr
            .as_deref()
            .and_then(|w| self.window_wait(*w, self.max_address, now));
        if !known {
            wait = wait.max(self.window_wait(acct.window, self.max_account, now));
            let since = now.duration_since(acct.last_failure);
            if acct.consecutive >= self.max_consecutive && since < self.lockout {
                wait = wait.max(Some(secs_ceil(self.lockout - since)));
            }
        }
        if let Some(retry_after) = wait {
            return Err(Error::RateLimited { retry_after });
        }
        if let Some(a) = addr.as_deref_mut() {
            a.failures = a.failures.saturating_add(1);
        }
        acct.window.failures = acct.window.failures.saturating_add(1);
        acct.consecutive = acct.consecutive.saturating_add(1);
        acct.last_failure = now;
        drop(acct);
        drop(addr);
        if self.accounts.len() > PRUNE_ABOVE || self.addresses.len() > PRUNE_ABOVE {
            self.prune(now);
        }
        Ok(())
    }

    /// Counts a failure against the account and the address (for callers that use
    /// [`Throttle::check`] rather than [`Throttle::begin`]).
    pub fn failed(&self, account: &str, ip: Option<IpAddr>) {
        let ip = ip.map(address_bucket);
        let now = Instant::now();
        let fresh = Window {
            start: now,
            failures: 0,
        };
        let bump = |w: &mut Window| {
            if now.duration_since(w.start) >= self.window {
                *w = fresh;
            }
            w.failures = w.failures.saturating_add(1);
        };
        {
            let mut a = self
                .accounts
                .entry(account.to_lowercase())
                .or_insert(Account {
                    window: fresh,
                    consecutive: 0,
                    last_failure: now,
                });
            if now.duration_since(a.last_failure) >= FORGET_AFTER {
                a.consecutive = 0;
            }
            bump(&mut a.window);
            a.consecutive = a.consecutive.saturating_add(1);
            a.last_failure = now;
        }
        if let Some(ip) = ip {
            bump(&mut self.addresses.entry(ip).or_insert(fresh));
        }
        if self.accounts.len() > PRUNE_ABOVE || self.addresses.len() > PRUNE_ABOVE {
            self.prune(now);
        }
    }

    /// A success after [`Throttle::begin`]: clears the account's counters, takes the attempt
    /// back from the address's count, and remembers the address for the account.
    pub fn succeeded(&self, account: &str, ip: Option<IpAddr>) {
        let ip = ip.map(address_bucket);
        let now = Instant::now();
        let key = account.to_lowercase();
        self.accounts.remove(&key);
        if let Some(ip) = ip {
            if let Some(mut w) = self.addresses.get_mut(&ip) {
                w.failures = w.failures.saturating_sub(1);
            }
            if !self.remember.is_zero() {
                self.known.insert((key, ip), now);
                if self.known.len() > PRUNE_ABOVE {
                    self.known
                        .retain(|_, t| now.duration_since(*t) < self.remember);
                }
            }
        }
    }

    fn prune(&self, now: Instant) {
        self.accounts.retain(|_, a| {
            now.duration_since(a.window.start) < self.window
                || (a.consecutive >= self.max_consecutive
                    && now.duration_since(a.last_failure) < self.lockout)
                || (a.consecutive > 0 && now.duration_since(a.last_failure) < FORGET_AFTER)
        });
        self.addresses
            .retain(|_, w| now.duration_since(w.start) < self.window);
    }
}

fn secs_ceil(d: Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> LoginSettings {
        LoginSettings {
            max_failures_per_account: 3,
            max_failures_per_address: 100,
            window_secs: 60,
            max_consecutive_failures: 5,
            lockout_secs: 600,
            remember_address_days: 30,
        }
    }

    #[test]
    fn account_window_and_known_address() {
        let t = Throttle::new(&cfg());
        let home: IpAddr = "10.0.0.1".parse().unwrap();
        let evil: IpAddr = "10.0.0.2".parse().unwrap();
        t.succeeded("Alice", Some(home));
        for _ in 0..3 {
            t.begin("alice", Some(evil)).unwrap();
        }
        let Err(Error::RateLimited { retry_after }) = t.begin("alice", Some(evil)) else {
            panic!("not throttled")
        };
        assert!((1..=60).contains(&retry_after));
        // The real user at a remembered address is not locked out.
        t.begin("ALICE", Some(home)).unwrap();
        // Other accounts are unaffected.
        t.begin("bob", Some(evil)).unwrap();
        // The old two-step API agrees.
        assert!(t.check("alice", Some(evil)).is_err());
    }

    #[test]
    fn an_ipv6_client_is_one_address_across_its_64() {
        let mut c = cfg();
        c.max_failures_per_address = 2;
        c.max_failures_per_account = 1_000;
        let t = Throttle::new(&c);
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        t.begin("a", ip("2001:db8:5:6::1")).unwrap();
        t.failed("b", ip("2001:db8:5:6:1:2:3:4"));
        assert!(t.begin("c", ip("2001:db8:5:6::ffff")).is_err());
        t.begin("c", ip("2001:db8:5:7::1")).unwrap();
        // The address a user signed in from is remembered by its /64 too.
        t.succeeded("dora", ip("2001:db8:9:9::1"));
        for _ in 0..1_000 {
            let _ = t.begin("dora", ip("2001:db8:6:6::1"));
        }
        assert!(t.begin("dora", ip("2001:db8:6:6::2")).is_err());
        t.begin("dora", ip("2001:db8:9:9:abcd::2")).unwrap();
    }

    #[test]
    fn consecutive_cap_outlives_the_window() {
        let mut c = cfg();
        c.max_failures_per_account = 1_000;
        let t = Throttle::new(&c);
        for _ in 0..5 {
            t.begin("carol", None).unwrap();
        }
        let Err(Error::RateLimited { retry_after }) = t.begin("carol", None) else {
            panic!("not locked")
        };
        assert!(retry_after > 60 && retry_after <= 600);
        t.succeeded("carol", None);
        t.begin("carol", None).unwrap();
    }

    #[test]
    fn a_success_gives_the_address_its_attempt_back() {
        let mut c = cfg();
        c.max_failures_per_address = 2;
        let t = Throttle::new(&c);
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        for _ in 0..5 {
            t.begin("dan", Some(ip)).unwrap();
            t.succeeded("dan", Some(ip));
        }
        t.begin("erin", Some(ip)).unwrap();
        t.begin("erin", Some(ip)).unwrap();
        assert!(t.begin("erin", Some(ip)).is_err());
    }
}
