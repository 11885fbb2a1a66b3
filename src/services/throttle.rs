//! Throttling of failed sign-ins, per account and per client address.
//!
//! Fixed windows in memory: each key (an account name as typed, or an address) may fail
//! `max_failures_*` times per window; after that its attempts get 429 until the window ends.
//! The key is the name as typed, existing or not, so throttling reveals nothing about which
//! accounts exist; the lock-out ends with the window, so an attacker cannot lock a real user
//! out for long. Counters live in memory: a restart clears them.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use dashmap::DashMap;

use crate::config::LoginSettings;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    failures: u32,
}

/// Failure counters by account and by address.
#[derive(Debug)]
pub struct Throttle {
    accounts: DashMap<String, Window>,
    addresses: DashMap<IpAddr, Window>,
    max_account: u32,
    max_address: u32,
    window: Duration,
}

impl Throttle {
    /// Builds from config.
    pub fn new(cfg: &LoginSettings) -> Throttle {
        Throttle {
            accounts: DashMap::new(),
            addresses: DashMap::new(),
            max_account: cfg.max_failures_per_account,
            max_address: cfg.max_failures_per_address,
            window: Duration::from_secs(cfg.window_secs.max(1)),
        }
    }

    fn blocked_for(&self, w: Option<Window>, max: u32, now: Instant) -> Option<u64> {
        let w = w?;
        let elapsed = now.duration_since(w.start);
        (elapsed < self.window && w.failures >= max)
            .then(|| (self.window - elapsed).as_secs().max(1))
    }

    /// Refuses with 429 if the account or the address has failed too often in this window.
    pub fn check(&self, account: &str, ip: Option<IpAddr>) -> Result<()> {
        let now = Instant::now();
        let key = account.to_lowercase();
        let a = self.accounts.get(&key).map(|w| *w);
        let b = ip.and_then(|ip| self.addresses.get(&ip).map(|w| *w));
        let wait = self
            .blocked_for(a, self.max_account, now)
            .max(self.blocked_for(b, self.max_address, now));
        match wait {
            Some(retry_after) => Err(Error::RateLimited { retry_after }),
            None => Ok(()),
        }
    }

    /// Counts a failure.
    pub fn failed(&self, account: &str, ip: Option<IpAddr>) {
        let now = Instant::now();
        let bump = |w: &mut Window| {
            if now.duration_since(w.start) >= self.window {
                *w = Window {
                    start: now,
                    failures: 0,
                };
            }
            w.failures = w.failures.saturating_add(1);
        };
        let fresh = Window {
            start: now,
            failures: 0,
        };
        bump(&mut self.accounts.entry(account.to_lowercase()).or_insert(fresh));
        if let Some(ip) = ip {
            bump(&mut self.addresses.entry(ip).or_insert(fresh));
        }
        if self.accounts.len() > 100_000 {
            self.prune(now);
        }
    }

    /// A success clears the account's counter (not the address's).
    pub fn succeeded(&self, account: &str) {
        self.accounts.remove(&account.to_lowercase());
    }

    fn prune(&self, now: Instant) {
        self.accounts
            .retain(|_, w| now.duration_since(w.start) < self.window);
        self.addresses
            .retain(|_, w| now.duration_since(w.start) < self.window);
    }
}
