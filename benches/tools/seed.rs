//! Seeds a data dir for the key benchmark: a user and N API keys inserted in one transaction
//! through the store layer, the keys written to `<out>/keys.txt` and N/100 well-formed but
//! unknown keys to `<out>/invalid.txt` for the wrk script.
//!
//! Usage: `GATEHOUSE_DATA_DIR=/tmp/gh-bench/data bench_seed 100000 /tmp/gh-bench`. With
//! `GH_ANALYZE=1` it ends with `ANALYZE`, which this build's SQLite runs with stat4 samples
//! (what an operator's `PRAGMA optimize` may leave behind).
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::io::Write;

use gatehouse::config::Settings;
use gatehouse::crypto::tokens::new_api_key;
use gatehouse::services::types::Username;
use gatehouse::services::{users, Ctx};
use gatehouse::store;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(100_000, |s| s.parse().expect("count"));
    let out = std::path::PathBuf::from(args.next().unwrap_or_else(|| ".".into()));
    let settings = Settings::load(None).expect("config");
    let ctx = Ctx::open(settings).expect("open");
    let user = users::create(
        &ctx,
        users::NewUser {
            username: Username::parse("bench").unwrap(),
            email: None,
            password: None,
            is_admin: false,
            permissions: vec![],
        },
    )
    .await
    .expect("user");
    let tenant = gatehouse::services::tenants::default_tenant(&ctx)
        .await
        .unwrap()
        .id;
    let keys: Vec<String> = (0..n)
        .map(|_| new_api_key("sk_live_").expose().to_owned())
        .collect();
    let rows: Vec<([u8; 32], String)> = keys
        .iter()
        .map(|k| (ctx.pepper.hash(k.as_bytes()), k[k.len() - 4..].to_owned()))
        .collect();
    let uid = user.id;
    let started = std::time::Instant::now();
    ctx.db
        .write(move |tx| {
            let now = store::now();
            for (hash, last4) in &rows {
                store::api_keys::insert(
                    tx,
                    &store::api_keys::NewRow {
                        key_hash: hash,
                        prefix: "sk_live_",
                        last4,
                        user_id: uid,
                        tenant_id: &tenant,
                        mode: "live",
                        plan: "free",
                        scopes: &[],
                        name: "bench",
                        expires_at: None,
                    },
                    now,
                )?;
            }
            Ok(())
        })
        .await
        .expect("insert");
    if std::env::var_os("GH_ANALYZE").is_some() {
        ctx.db
            .write(|tx| Ok(tx.execute_batch("ANALYZE")?))
            .await
            .expect("analyze");
    }
    let mut f = std::fs::File::create(out.join("keys.txt")).unwrap();
    for k in &keys {
        writeln!(f, "{k}").unwrap();
    }
    let mut f = std::fs::File::create(out.join("invalid.txt")).unwrap();
    for _ in 0..(n / 100).max(1) {
        writeln!(f, "{}", new_api_key("sk_live_").expose()).unwrap();
    }
    eprintln!("seeded {n} keys in {:?}", started.elapsed());
}
