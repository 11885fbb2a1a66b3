//! Micro-benchmarks of the crypto primitives on the request paths:
//! `cargo bench --bench crypto`. The Argon2id figure is the cost of one sign-in.

use criterion::{criterion_group, criterion_main, Criterion};
use gatehouse::crypto::{self, password, tokens, Pepper};

fn benches(c: &mut Criterion) {
    crypto::init().expect("libsodium");
    let params = password::Params {
        ops: 2,
        mem_kib: 19_456,
    };
    let mut g = c.benchmark_group("argon2id");
    g.sample_size(20);
    let stored = password::hash("correct horse battery staple", params).expect("hash");
    g.bench_function("verify_owasp_m19456_t2", |b| {
        b.iter(|| password::verify(&stored, "correct horse battery staple"))
    });
    // One verify per core at the same time: what the sign-in pool does under load. Argon2id is
    // memory-bound, so parallel hashes may each take longer than a lone one.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    g.bench_function(format!("verify_owasp_x{cores}_in_parallel"), |b| {
        b.iter(|| {
            std::thread::scope(|s| {
                for _ in 0..cores {
                    s.spawn(|| password::verify(&stored, "correct horse battery staple"));
                }
            })
        })
    });
    g.finish();
    let pepper = Pepper::generate();
    let key = tokens::new_api_key("sk_live_");
    c.bench_function("api_key_format_and_checksum", |b| {
        b.iter(|| tokens::api_key_well_formed(key.expose()))
    });
    c.bench_function("keyed_blake2b_256", |b| {
        b.iter(|| pepper.hash(key.expose().as_bytes()))
    });
}

criterion_group!(crypto_benches, benches);
criterion_main!(crypto_benches);
