//! The `--dev` sandbox: demo data created on first run, printed so a newcomer can sign in.
//!
//! First run: an admin user with a random password, a `Demo` tenant with a handshake key pair
//! (the seed is made in this process — the sandbox is its own client — and only its public key
//! is stored), and a live and a test API key for the admin in that tenant. Secrets are printed
//! once; later runs find the data and print only where it is.

use super::keys::{self, Actor, KeyKind, KeyMode, NewKey};
use super::types::{Email, Password, TenantId, Username};
use super::{tenants, users, Ctx};
use crate::crypto::handshake::TenantSeed;
use crate::error::Result;
use crate::store;

/// What was created (or found) for the sandbox.
#[derive(Debug)]
pub struct Sandbox {
    /// The admin's user name.
    pub admin: String,
    /// The admin's password, when created in this run.
    pub password: Option<String>,
    /// The demo tenant's id.
    pub tenant_id: String,
    /// The demo tenant's private key `tsk_…`, when created in this run.
    pub tenant_private_key: Option<String>,
    /// A live and a test API key for the admin in the demo tenant, when created in this run.
    pub api_keys: Vec<String>,
}

/// Creates the admin user, demo tenant and keys once; later runs find them.
pub async fn seed(ctx: &Ctx) -> Result<Sandbox> {
    let existing = ctx
        .db
        .read(|c| store::users::by_username(c, "admin"))
        .await?;
    let (admin_id, password) = match existing {
        Some(u) => (u.id, None),
        None => {
            let pw = format!(
                "{}-{}-{}",
                crate::crypto::random_base62(6),
                crate::crypto::random_base62(6),
                crate::crypto::random_base62(6)
            );
            let u = users::create(
                ctx,
                users::NewUser {
                    username: Username::parse("admin")?,
                    email: Some(Email::parse("admin@example.com")?),
                    password: Some(Password::new(pw.clone())),
                    is_admin: true,
                    permissions: Vec::new(),
                },
            )
            .await?;
            (u.id, Some(pw))
        }
    };
    if let Ok(t) = tenants::find(ctx, "demo").await {
        return Ok(Sandbox {
            admin: "admin".into(),
            password,
            tenant_id: t.id,
            tenant_private_key: None,
            api_keys: Vec::new(),
        });
    }
    let seed = TenantSeed::generate();
    let created =
        super::handshake::create_tenant(ctx, "Demo", Some(admin_id), seed.static_public()).await?;
    let tenant = TenantId::parse(&created.tenant.id)?;
    let mut api_keys = Vec::new();
    for (name, mode) in [("demo live", KeyMode::Live), ("demo test", KeyMode::Test)] {
        let key = keys::create(
            ctx,
            &Actor::operator(),
            NewKey {
                name: name.into(),
                user: Some(Username::parse("admin")?),
                mode: Some(mode),
                tenant: Some(tenant.clone()),
                kind: Some(KeyKind::Secret),
                ..NewKey::default()
            },
        )
        .await?;
        api_keys.push(key.secret.expose().to_owned());
    }
    Ok(Sandbox {
        admin: "admin".into(),
        password,
        tenant_id: created.tenant.id,
        tenant_private_key: Some(seed.encode().expose().to_owned()),
        api_keys,
    })
}
