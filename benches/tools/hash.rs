//! The sign-in ceiling for `benches/foundation.py`: how long one Argon2id verify at the server's
//! default parameters (OWASP: m = 19 MiB, t = 2) takes alone, and with every core verifying at
//! once (what the sign-in pool does under load: Argon2id is memory-bound, so parallel hashes
//! each take longer). Prints `hash_ms_alone=… hash_ms_parallel=…` (medians),
//! `hashes_per_s_parallel=…` (every core hashing in a loop: the throughput `cores / hash time`
//! means, the mean rather than the median) and `cores=…`.
//! Usage: `bench_hash [rounds] [parallel]` (`parallel`: skip the lone-hash rounds).
#![allow(clippy::expect_used)]

use std::time::Instant;

use gatehouse::crypto::{self, password};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    crypto::init().expect("libsodium");
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20);
    let params = password::Params {
        ops: 2,
        mem_kib: 19_456,
    };
    let stored = password::hash("correct horse battery staple", params).expect("hash");
    let pw = "correct horse battery staple";
    let time = || {
        let t = Instant::now();
        let _ = password::verify(&stored, pw);
        t.elapsed().as_secs_f64() * 1000.0
    };
    let parallel_only = std::env::args().nth(2).as_deref() == Some("parallel");
    let alone = if parallel_only {
        f64::NAN
    } else {
        median((0..rounds).map(|_| time()).collect())
    };
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let started = Instant::now();
    let parallel = median(std::thread::scope(|s| {
        let handles: Vec<_> = (0..cores)
            .map(|_| s.spawn(|| (0..rounds).map(|_| time()).collect::<Vec<f64>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("thread"))
            .collect::<Vec<f64>>()
    }));
    let wall = started.elapsed().as_secs_f64();
    let per_s = (cores * rounds) as f64 / wall;
    println!(
        "hash_ms_alone={alone:.2} hash_ms_parallel={parallel:.2} hashes_per_s_parallel={per_s:.1} cores={cores}"
    );
}
