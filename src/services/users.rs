//! Users: create, sign in, change password, disable, list, update, delete.
//!
//! Sign-in leaks nothing: an unknown user costs one Argon2id hash against a dummy, exactly as a
//! wrong password does, and both get the same error. A password change or a disable ends the
//! user's other sessions in the same transaction.

use std::net::IpAddr;

use super::audit::Detail;
use super::types::{Email, Password, Username};
use super::Ctx;
use crate::error::{Error, Result};
use crate::store::{self, users::UserRow};

/// The one message for every failed sign-in.
pub const BAD_LOGIN: &str = "Invalid username or password";

/// A user who has just proven who they are, not yet recorded. The session or token family the
/// sign-in starts records it ([`SignIn::record`]: the last sign-in time, and the re-hash when the
/// Argon2id parameters changed) in its own write transaction, so a sign-in costs one durable
/// commit rather than two.
#[derive(Debug)]
pub struct SignIn {
    /// The user, as read before the password check.
    pub user: UserRow,
    rehash: Option<String>,
}

impl SignIn {
    /// A sign-in proven by something other than the password (a magic link).
    pub fn without_password(user: UserRow) -> SignIn {
        SignIn { user, rehash: None }
    }

    /// Records the sign-in inside the caller's write transaction.
    pub fn record(&self, c: &rusqlite::Connection, now: i64) -> Result<()> {
        if let Some(h) = &self.rehash {
            store::users::set_password_hash(c, self.user.id, h, now)?;
        }
        store::users::touch_login(c, self.user.id, now)
    }
}

/// What a new user looks like.
#[derive(Debug)]
pub struct NewUser {
    /// User name.
    pub username: Username,
    /// Optional e-mail.
    pub email: Option<Email>,
    /// Optional password (a user without one signs in by magic link only).
    pub password: Option<Password>,
    /// Administrator.
    pub is_admin: bool,
    /// Extra permissions.
    pub permissions: Vec<String>,
}

/// Permissions a non-admin user can be granted.
pub const PERMISSIONS: &[(&str, &str)] = &[
    ("users.view", "List and view users"),
    ("users.manage", "Create, change, disable and delete users"),
    ("keys.manage_all", "View and manage every user's API keys"),
    ("audit.view", "Read the audit log"),
    ("tenants.manage", "Create tenants and manage memberships"),
];

/// Checks a permission name is known.
pub fn check_permissions(perms: &[String]) -> Result<()> {
    for p in perms {
        if !PERMISSIONS.iter().any(|(n, _)| n == p) {
            return Err(Error::bad_request(format!("unknown permission `{p}`")));
        }
    }
    Ok(())
}

/// Who may grant what: administrators anything; others no administrator rights, and only
/// permissions they hold themselves (so `users.manage` cannot be used to escalate).
pub fn check_grant(
    actor_is_admin: bool,
    actor_permissions: &[String],
    make_admin: Option<bool>,
    permissions: Option<&[String]>,
) -> Result<()> {
    if let Some(p) = permissions {
        check_permissions(p)?;
    }
    if actor_is_admin {
        return Ok(());
    }
    if make_admin == Some(true) {
        return Err(Error::forbidden(
            "Only administrators can grant administrator rights",
        ));
    }
    for p in permissions.unwrap_or_default() {
        if !actor_permissions.contains(p) {
            return Err(Error::forbidden(format!(
                "You cannot grant `{p}`: you do not hold it yourself"
            )));
        }
    }
    Ok(())
}

/// Creates a user and makes them a member of the default tenant.
pub async fn create(ctx: &Ctx, new: NewUser) -> Result<UserRow> {
    check_permissions(&new.permissions)?;
    let hash = match &new.password {
        Some(pw) => {
            let mut inputs = vec![new.username.as_str()];
            if let Some(e) = &new.email {
                inputs.push(e.as_str());
            }
            pw.check_new(&ctx.settings.password, &inputs)?;
            Some(ctx.passwords.hash(pw).await?)
        }
        None => None,
    };
    let now = store::now();
    let user = ctx
        .db
        .write(move |tx| {
            let u = store::users::insert(
                tx,
                new.username.as_str(),
                new.email.as_ref().map(Email::as_str),
                hash.as_deref(),
                new.is_admin,
                &new.permissions,
                now,
            )?;
            if let Some(t) = store::tenants::by_slug(tx, "default")? {
                let role = if new.is_admin { "admin" } else { "member" };
                store::tenants::set_membership(tx, u.id, &t.id, role, now)?;
            }
            Ok(u)
        })
        .await?;
    ctx.audit.record(
        "user.created",
        true,
        Detail {
            actor: Some(user.username.clone()),
            ..Detail::default()
        },
    );
    Ok(user)
}

/// Checks a user name (or e-mail) and password. Throttled per account and address. Writes
/// nothing: the credential the caller starts records the sign-in ([`SignIn::record`]).
pub async fn authenticate(
    ctx: &Ctx,
    login: &str,
    password: &Password,
    ip: Option<IpAddr>,
) -> Result<SignIn> {
    ctx.login_throttle.begin(login, ip)?;
    let key = login.to_owned();
    let found = ctx
        .db
        .read(move |c| store::users::credentials(c, &key))
        .await?;
    let (user, stored) = match found {
        Some((u, h)) if !u.disabled => (Some(u), h),
        _ => (None, None),
    };
    let ok = ctx.passwords.verify(stored.clone(), password).await?;
    let detail = Detail {
        actor: Some(login.chars().take(64).collect()),
        ip,
        ..Detail::default()
    };
    let user = match (ok, user) {
        (true, Some(u)) => u,
        _ => {
            // Already counted by `begin`.
            ctx.audit.record("login", false, detail);
            return Err(Error::unauthenticated(BAD_LOGIN));
        }
    };
    ctx.login_throttle.succeeded(login, ip);
    let rehash = match &stored {
        Some(h) if ctx.passwords.needs_rehash(h) => Some(ctx.passwords.hash(password).await?),
        _ => None,
    };
    ctx.audit.record("login", true, detail);
    Ok(SignIn { user, rehash })
}

/// Sets a new password and ends every other session and refresh family of the user.
pub async fn set_password(
    ctx: &Ctx,
    user_id: i64,
    password: &Password,
    keep_session: Option<i64>,
) -> Result<()> {
    let user = get(ctx, user_id).await?;
    let mut inputs = vec![user.username.as_str()];
    if let Some(e) = &user.email {
        inputs.push(e.as_str());
    }
    password.check_new(&ctx.settings.password, &inputs)?;
    let hash = ctx.passwords.hash(password).await?;
    let now = store::now();
    ctx.db
        .write(move |tx| {
            if !store::users::set_password_hash(tx, user_id, &hash, now)? {
                return Err(Error::not_found("No such user"));
            }
            revoke_credentials(tx, user_id, keep_session, now)
        })
        .await?;
    ctx.audit.record(
        "password.changed",
        true,
        Detail {
            actor: Some(user.username),
            ..Detail::default()
        },
    );
    Ok(())
}

/// Ends a user's sessions (all but `keep`) and everything else that signs them in.
/// Later capabilities extend this with their own credential tables.
pub fn revoke_credentials(
    tx: &rusqlite::Transaction<'_>,
    user_id: i64,
    keep_session: Option<i64>,
    now: i64,
) -> Result<()> {
    store::sessions::revoke_all_for_user(tx, user_id, keep_session, now)?;
    store::magic_links::void_for_user(tx, user_id, now)?;
    store::refresh_tokens::revoke_all_for_user(tx, user_id, now, "credentials revoked")?;
    Ok(())
}

/// Disables or re-enables a user; disabling ends all their sessions.
pub async fn set_disabled(ctx: &Ctx, user_id: i64, disabled: bool) -> Result<UserRow> {
    let now = store::now();
    let user = ctx
        .db
        .write(move |tx| {
            if !store::users::set_disabled(tx, user_id, disabled, now)? {
                return Err(Error::not_found("No such user"));
            }
            if disabled {
                revoke_credentials(tx, user_id, None, now)?;
            }
            store::users::get(tx, user_id)?.ok_or_else(|| Error::not_found("No such user"))
        })
        .await?;
    ctx.keys.forget_user(user_id);
    ctx.audit.record(
        if disabled {
            "user.disabled"
        } else {
            "user.enabled"
        },
        true,
        Detail {
            actor: Some(user.username.clone()),
            ..Detail::default()
        },
    );
    Ok(user)
}

/// A user by id (404 if absent).
pub async fn get(ctx: &Ctx, user_id: i64) -> Result<UserRow> {
    ctx.db
        .read(move |c| store::users::get(c, user_id))
        .await?
        .ok_or_else(|| Error::not_found("No such user"))
}

/// A user by name (404 if absent).
pub async fn by_username(ctx: &Ctx, name: &Username) -> Result<UserRow> {
    let n = name.as_str().to_owned();
    ctx.db
        .read(move |c| store::users::by_username(c, &n))
        .await?
        .ok_or_else(|| Error::not_found("No such user"))
}

/// Users, paged.
pub async fn list(ctx: &Ctx, limit: i64, offset: i64) -> Result<Vec<UserRow>> {
    ctx.db
        .read(move |c| store::users::list(c, limit.clamp(1, 1_000), offset.max(0)))
        .await
}

/// Users, paged, with the total count.
pub async fn page(ctx: &Ctx, limit: i64, offset: i64) -> Result<(Vec<UserRow>, i64)> {
    ctx.db
        .read(move |c| {
            Ok((
                store::users::list(c, limit.clamp(1, 1_000), offset.max(0))?,
                store::users::count(c)?,
            ))
        })
        .await
}

/// Changes e-mail, admin flag or permissions.
pub async fn update(
    ctx: &Ctx,
    user_id: i64,
    email: Option<Option<Email>>,
    is_admin: Option<bool>,
    permissions: Option<Vec<String>>,
) -> Result<UserRow> {
    if let Some(p) = &permissions {
        check_permissions(p)?;
    }
    let now = store::now();
    ctx.db
        .write(move |tx| {
            let email = email.as_ref().map(|e| e.as_ref().map(Email::as_str));
            if !store::users::update(tx, user_id, email, is_admin, permissions.as_deref(), now)? {
                return Err(Error::not_found("No such user"));
            }
            store::users::get(tx, user_id)?.ok_or_else(|| Error::not_found("No such user"))
        })
        .await
        .inspect(|_| ctx.keys.forget_user(user_id))
}

/// Deletes a user and, by cascade, everything that belongs to them.
pub async fn delete(ctx: &Ctx, user_id: i64) -> Result<()> {
    let user = get(ctx, user_id).await?;
    ctx.db
        .write(move |tx| {
            if store::users::delete(tx, user_id)? {
                Ok(())
            } else {
                Err(Error::not_found("No such user"))
            }
        })
        .await?;
    ctx.keys.forget_user(user_id);
    ctx.audit.record(
        "user.deleted",
        true,
        Detail {
            actor: Some(user.username),
            ..Detail::default()
        },
    );
    Ok(())
}
