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
