//! Runs: a signed-in tenant starts one and gets a `dst_run_` token (24 h) that carries the
//! tenant and its wrapping key (sealed under the run token). Webhook callbacks authenticated by
//! that token are stored encrypted with the tenant data key and listed to the tenant.

use super::handshake::{self, LiveKeys};
use super::principal::{CredentialKind, Principal};
use super::sessions;
use super::Ctx;
use crate::crypto::{self, tokens};
use crate::error::{Error, Result};
use crate::store;
use crate::store::handshake::RunRow;

/// Prefix of run session tokens.
pub const PREFIX: &str = "dst_run_";

/// A started run (the token is shown once).
#[derive(Debug)]
pub struct Started {
    /// The run.
    pub run: RunRow,
    /// The `dst_run_` token.
    pub session: tokens::SecretToken,
}

/// A decrypted callback.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Event {
    /// Event id.
    pub id: i64,
    /// When it arrived (Unix seconds).
    pub received_at: i64,
    /// The callback's `Content-Type`, if any.
    pub content_type: Option<String>,
    /// The body, when it is UTF-8 text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// The body as base64url, when it is not UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_b64: Option<String>,
}

/// A workflow name: 1–64 characters of letters, digits, `.`, `_`, `-`.
pub fn check_workflow(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::bad_request(
            "workflow must be 1 to 64 characters of letters, digits and . _ -",
        ))
    }
}

fn event_ad(tenant_id: &str, mode: &str, run_id: &str) -> Vec<u8> {
    format!("gatehouse event v1\0{tenant_id}\0{mode}\0{run_id}").into_bytes()
}

/// Starts a run from a handshake session.
pub async fn start(ctx: &Ctx, p: &Principal, workflow: &str) -> Result<Started> {
    check_workflow(workflow)?;
    let (_, keys) = handshake::keys_of(ctx, p)?;
    let user_id = p.require_user()?;
    let sealer = ctx.handshakes.sealer(&keys.tenant_id, &keys.wrapping_key);
    let pepper = ctx.pepper.clone();
    let now = store::now();
    let expires_at = now + i64::try_from(ctx.settings.handshake.run_ttl_secs).unwrap_or(86_400);
    let run = RunRow {
        id: format!(
            "run_{}",
            crypto::random_bytes(8)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        ),
        tenant_id: keys.tenant_id.clone(),
        mode: p.mode.as_str().to_owned(),
        workflow: workflow.to_owned(),
        created_at: now,
        expires_at,
    };
    let r = run.clone();
    let (session_id, token) = ctx
        .db
        .write(move |tx| {
            let (sid, token) = sessions::insert(
                tx,
                &pepper,
                PREFIX,
                &store::sessions::NewSession {
                    kind: "run",
                    user_id: Some(user_id),
                    tenant_id: Some(&r.tenant_id),
                    mode: &r.mode,
                    user_agent: None,
                    ip: None,
                    now,
                    idle_expires_at: expires_at,
                    expires_at,
                },
                Some(&sealer),
            )?;
            store::handshake::insert_run(
                tx,
                &r.id,
                &r.tenant_id,
                &r.mode,
                &r.workflow,
                sid,
                user_id,
                now,
                expires_at,
            )?;
            Ok((sid, token))
        })
        .await?;
    ctx.handshakes
        .remember(session_id, LiveKeys { expires_at, ..keys });
    Ok(Started {
        run,
        session: token,
    })
}

/// Stores a webhook callback for the run whose token authenticated `p`; returns the event id.
pub async fn callback(
    ctx: &Ctx,
    p: &Principal,
    workflow: &str,
    content_type: Option<String>,
    body: &[u8],
) -> Result<(String, i64)> {
    if p.kind != CredentialKind::RunSession {
        return Err(Error::forbidden(
            "Workflow callbacks need a run session (dst_run_…)",
        ));
    }
    let sid =
        handshake::session_id(p).ok_or_else(|| Error::forbidden(handshake::NEEDS_HANDSHAKE))?;
    let keys = ctx
        .handshakes
        .live(sid)
        .ok_or_else(|| Error::unauthenticated("Session expired or signed out"))?;
    let run = ctx
        .db
        .read(move |c| store::handshake::run_by_session(c, sid))
        .await?
        .ok_or_else(|| Error::unauthenticated("Unknown or expired session"))?;
    if run.workflow != workflow {
        return Err(Error::forbidden(
            "This run session belongs to another workflow",
        ));
    }
    let ct = crypto::seal(
        keys.dek.bytes(),
        body,
        &event_ad(&run.tenant_id, &run.mode, &run.id),
    );
    let content_type = content_type.map(|c| c.chars().take(200).collect::<String>());
    let now = store::now();
    let run_id = run.id.clone();
    let id = ctx
        .db
        .write(move |tx| {
            store::handshake::insert_event(tx, &run_id, content_type.as_deref(), &ct, now)
        })
        .await?;
    Ok((run.id, id))
}

/// The tenant's runs (newest first).
pub async fn list(ctx: &Ctx, p: &Principal) -> Result<Vec<RunRow>> {
    let (_, keys) = handshake::keys_of(ctx, p)?;
    let (t, m) = (keys.tenant_id.clone(), p.mode.as_str());
    ctx.db
        .read(move |c| store::handshake::list_runs(c, &t, m))
        .await
}

/// The decrypted callbacks of one of the tenant's runs.
pub async fn events(ctx: &Ctx, p: &Principal, run_id: &str) -> Result<(RunRow, Vec<Event>)> {
    let (_, keys) = handshake::keys_of(ctx, p)?;
    let id = run_id.to_owned();
    let (run, rows) = ctx
        .db
        .read(move |c| {
            let run = store::handshake::get_run(c, &id)?;
            let rows = match &run {
                Some(r) => store::handshake::list_events(c, &r.id)?,
                None => vec![],
            };
            Ok((run, rows))
        })
        .await?;
    let run = run
        .filter(|r| r.tenant_id == keys.tenant_id && r.mode == p.mode.as_str())
        .ok_or_else(|| Error::not_found("No such run"))?;
    let ad = event_ad(&run.tenant_id, &run.mode, &run.id);
    let mut out = Vec::with_capacity(rows.len());
    for (id, received_at, content_type, ct) in rows {
        let plain = crypto::open(keys.dek.bytes(), &ct, &ad)
            .ok_or_else(|| Error::internal("a stored run event does not decrypt"))?;
        let (body, body_b64) = match std::str::from_utf8(&plain) {
            Ok(s) => (Some(s.to_owned()), None),
            Err(_) => (None, Some(crypto::b64(&plain))),
        };
        out.push(Event {
            id,
            received_at,
            content_type,
            body,
            body_b64,
        });
    }
    Ok((run, out))
}
