//! Magic links: request (always the same answer), the e-mail, and single-use verification.
//!
//! A request is throttled per address and per client, then answered at once; the look-up, the
//! insert and the mail happen in a background task, so a known and an unknown address take the
//! same time to answer. A new link voids the address's older unused ones. A link is `ml_` + 43
//! base62, stored only as its keyed hash, lives `magic_link.ttl_secs` and is consumed by one
//! POST — never by a GET, because mail scanners prefetch links.

use std::net::IpAddr;

use super::audit::Detail;
use super::mail::Mail;
use super::sessions::{self, Started};
use super::types::{Email, Username};
use super::{users, Ctx};
use crate::crypto::tokens::{new_token, token_well_formed};
use crate::error::{Error, Result};
use crate::store;

/// Prefix of magic-link tokens.
pub const PREFIX: &str = "ml_";

/// The one answer to every link request.
pub const REQUESTED: &str =
    "If that address can sign in, a link is on its way. It works once, for 10 minutes.";

/// The 401 message for a link that cannot be used.
pub const BAD_LINK: &str = "This sign-in link is invalid, expired or already used";

/// Accepts a link request. Throttled (429); otherwise returns before any look-up happens.
pub fn request(ctx: &std::sync::Arc<Ctx>, email: Email, ip: Option<IpAddr>) -> Result<()> {
    ctx.magic_throttle.check(email.as_str(), ip)?;
    // Every request counts against both windows, successful or not.
    ctx.magic_throttle.failed(email.as_str(), ip);
    let ctx = ctx.clone();
    tokio::spawn(async move {
        if let Err(e) = issue(&ctx, &email, ip).await {
            tracing::error!(error = %e, "magic link not issued");
        }
    });
    Ok(())
}

async fn issue(ctx: &Ctx, email: &Email, ip: Option<IpAddr>) -> Result<()> {
    let addr = email.as_str().to_owned();
    let user = ctx
        .db
        .read(move |c| store::users::by_email(c, &addr))
        .await?;
    let user_id = match user {
        Some(u) if !u.disabled => Some(u.id),
        Some(_) => {
            ctx.audit.record(
                "magic_link.requested",
                false,
                detail(email, ip, "disabled user"),
            );
            return Ok(());
        }
        None if ctx.settings.magic_link.allow_signup => None,
        None => {
            ctx.audit.record(
                "magic_link.requested",
                false,
                detail(email, ip, "unknown address"),
            );
            return Ok(());
        }
    };
    let token = new_token(PREFIX);
    let h = ctx.pepper.hash(token.expose().as_bytes()).to_vec();
    let now = store::now();
    let exp = now + i64::try_from(ctx.settings.magic_link.ttl_secs).unwrap_or(600);
    let addr = email.as_str().to_owned();
    let ip_s = ip.map(|i| i.to_string());
    ctx.db
        .write(move |tx| {
            store::magic_links::replace(tx, &h, &addr, user_id, ip_s.as_deref(), now, exp)
        })
        .await?;
    let link = format!(
        "{}/auth/verify?token={}",
        ctx.settings.public_url.trim_end_matches('/'),
        token.expose()
    );
    let minutes = ctx.settings.magic_link.ttl_secs / 60;
    ctx.mailer.send(Mail {
        to: email.as_str().to_owned(),
        subject: "Your Gatehouse sign-in link".into(),
        text: format!(
            "Open this link to sign in to Gatehouse:\n\n{link}\n\nIt works once and expires in {minutes} minutes. \
             If you did not ask for it, ignore this message.\n"
        ),
        html: format!(
            "<p>Open this link to sign in to Gatehouse:</p><p><a href=\"{link}\">Sign in</a></p>\
             <p>It works once and expires in {minutes} minutes. If you did not ask for it, ignore this message.</p>"
        ),
    });
    ctx.audit
        .record("magic_link.requested", true, detail(email, ip, "sent"));
    Ok(())
}

fn detail(email: &Email, ip: Option<IpAddr>, what: &str) -> Detail {
    Detail {
        actor: Some(email.as_str().chars().take(64).collect()),
        ip,
        detail: Some(what.to_owned()),
        ..Detail::default()
    }
}

/// Whether a link would still work (the landing page says so; nothing is consumed).
pub async fn peek(ctx: &Ctx, token: &str) -> Result<bool> {
    if !token_well_formed(token, PREFIX) {
        return Ok(false);
    }
    let h = ctx.pepper.hash(token.as_bytes()).to_vec();
    let now = store::now();
    ctx.db
        .read(move |c| store::magic_links::is_live(c, &h, now))
        .await
}

/// Consumes a link and starts a session (401 if the link cannot be used).
pub async fn verify(ctx: &Ctx, token: &str, origin: sessions::Origin) -> Result<Started> {
    if !token_well_formed(token, PREFIX) {
        return Err(Error::bad_request(
            "token must be a magic-link token (ml_…)",
        ));
    }
    let h = ctx.pepper.hash(token.as_bytes()).to_vec();
    let now = store::now();
    let consumed = ctx
        .db
        .write(move |tx| store::magic_links::consume(tx, &h, now))
        .await?;
    let fail = |why: &str| {
        ctx.audit.record(
            "login",
            false,
            Detail {
                ip: origin.ip,
                detail: Some(format!("method=magic_link {why}")),
                ..Detail::default()
            },
        );
        Error::unauthenticated(BAD_LINK)
    };
    let Some(link) = consumed else {
        return Err(fail("unusable link"));
    };
    let addr = link.email.clone();
    let user = match link.user_id {
        Some(id) => users::get(ctx, id).await.ok(),
        None => {
            ctx.db
                .read(move |c| store::users::by_email(c, &addr))
                .await?
        }
    };
    let user = match user {
        Some(u) => u,
        None if ctx.settings.magic_link.allow_signup => signup(ctx, &link.email).await?,
        None => return Err(fail("no such user")),
    };
    if user.disabled {
        return Err(fail("disabled user"));
    }
    ctx.audit.record(
        "login",
        true,
        Detail {
            actor: Some(user.username.clone()),
            ip: origin.ip,
            detail: Some("method=magic_link".into()),
            ..Detail::default()
        },
    );
    sessions::start(
        ctx,
        users::SignIn::without_password(user),
        origin,
        "magic_link",
    )
    .await
}

/// Creates a password-less user for an address that signed up by link.
async fn signup(ctx: &Ctx, email: &str) -> Result<store::users::UserRow> {
    let base: String = email
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@') {
                c
            } else {
                '-'
            }
        })
        .take(56)
        .collect();
    let mut name = base.clone();
    for attempt in 0..3 {
        let res = users::create(
            ctx,
            users::NewUser {
                username: Username::parse(&name)?,
                email: Some(Email::parse(email)?),
                password: None,
                is_admin: false,
                permissions: Vec::new(),
            },
        )
        .await;
        match res {
            Err(Error::Conflict(_)) if attempt < 2 => {
                name = format!("{base}-{}", crate::crypto::random_base62(6));
            }
            other => return other,
        }
    }
    Err(Error::Conflict("could not pick a user name".into()))
}
