//! The `--dev` sandbox: demo data created on first run, printed so a newcomer can sign in.

use super::types::{Email, Password, Username};
use super::{tenants, users, Ctx};
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
}

/// Creates the admin user and demo tenant once; later runs find them.
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
    let demo = match tenants::find(ctx, "demo").await {
        Ok(t) => t,
        Err(_) => tenants::create(ctx, "Demo", Some(admin_id)).await?,
    };
    Ok(Sandbox {
        admin: "admin".into(),
        password,
        tenant_id: demo.id,
    })
}
