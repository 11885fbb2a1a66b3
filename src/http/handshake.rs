//! Handlers of the handshake sign-in (SPEC §4.4): the two handshake calls, the server key,
//! refresh and sign-out, secrets, runs and the `/workflows/{name}` webhook.
//!
//! Thin: each parses its input, resolves the credential through the one resolver, calls one
//! service function and shapes the JSON answer.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use super::extract::credential_from_headers;
use super::HttpState;
use crate::auth::{resolver, Principal};
use crate::crypto::{self, handshake::Key32};
use crate::error::{Error, ErrorBody, Result, NO_CREDENTIAL};
use crate::services::handshake::{self as hs, ClientInfo};
use crate::services::types::TenantId;
use crate::services::{runs, secrets, Ctx};
use crate::store::handshake::{RunRow, SecretMeta};

/// The cookie set when the confirm call asks for one.
pub const SESSION_COOKIE: &str = "gatehouse_session";

/// Registers the routes of this module.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/api/session/server-key").get(server_key))
        .service(
            web::resource("/api/session")
                .post(begin)
                .get(current)
                .delete(sign_out),
        )
        .service(web::resource("/api/session/confirm").post(confirm))
        .service(web::resource("/api/session/rotate-key").post(rotate_key))
        .service(web::resource("/api/tenants").post(create_tenant))
        .service(web::resource("/api/secrets").get(list_secrets))
        .service(
            web::resource("/api/secrets/{name}")
                .put(put_secret)
                .get(get_secret)
                .delete(delete_secret),
        )
        .service(web::resource("/api/runs").post(start_run).get(list_runs))
        .service(web::resource("/api/runs/{id}/events").get(run_events))
        .service(web::resource("/workflows/{name}").post(workflow_callback));
}

fn client_info(req: &HttpRequest) -> ClientInfo {
    let ip = req
        .app_data::<web::Data<HttpState>>()
        .and_then(|s| s.trusted.client_ip(req));
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(200).collect());
    ClientInfo { ip, user_agent }
}

/// The raw credential in the headers, or 401 `No Bearer token provided`.
fn raw_credential(req: &HttpRequest) -> Result<String> {
    credential_from_headers(req.headers())?
        .map(|(raw, _)| raw)
        .ok_or_else(|| Error::unauthenticated(NO_CREDENTIAL))
}

async fn principal(ctx: &Ctx, req: &HttpRequest) -> Result<Principal> {
    resolver::resolve(ctx, &raw_credential(req)?).await
}

/// `GET /api/session/server-key` answer.
#[derive(Serialize, ToSchema)]
pub struct ServerKey {
    /// The server's static Noise X25519 public key, base64url.
    pub public_key: String,
}

/// 32 bytes in base64url without padding: 43 characters, the last one carrying two zero bits
/// (the decoder refuses any other, as it refuses padding).
fn key32_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    crate::services::types::string_schema(
        "32 bytes, base64url without padding",
        43,
        43,
        "^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$",
    )
}

/// Message 1 of the handshake.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BeginRequest {
    /// The tenant to sign in to (`ten_…`).
    #[schema(value_type = TenantId)]
    pub tenant_id: String,
    /// Noise message 1 (`e, es`): 48 bytes, base64url without padding.
    #[schema(min_length = 64, max_length = 64, pattern = "^[A-Za-z0-9_-]{64}$")]
    pub message: String,
}

/// Message 2 of the handshake.
#[derive(Serialize, ToSchema)]
pub struct BeginResponse {
    /// Names this handshake in the confirm call.
    pub handshake_id: String,
    /// Noise message 2 (`e, ee`), base64url.
    pub message: String,
    /// Seconds left to confirm.
    pub expires_in: u64,
}

/// Message 3 of the handshake.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmRequest {
    /// From the first call (`hs_…`).
    pub handshake_id: String,
    /// Noise message 3 (`s, se` + the encrypted wrapping key): 96 bytes, base64url without
    /// padding.
    #[schema(min_length = 128, max_length = 128, pattern = "^[A-Za-z0-9_-]{128}$")]
    pub message: String,
    /// Also set an HttpOnly session cookie.
    #[serde(default)]
    pub cookie: bool,
}

/// A new handshake session.
#[derive(Serialize, ToSchema)]
pub struct ConfirmResponse {
    /// `dst_sess_…`: send it as `Dispatched-Session`. Shown once.
    pub session_token: String,
    /// Idle expiry (Unix seconds); refresh extends it.
    pub expires_at: i64,
    /// Absolute expiry (Unix seconds).
    pub absolute_expires_at: i64,
    /// The signed-in tenant.
    pub tenant_id: String,
}

/// The current handshake session (`GET /api/session`). Named apart from the browser
/// session's `SessionInfo`: two schemas of one name are one entry in the OpenAPI document,
/// and the browser's had replaced this one there.
#[derive(Serialize, ToSchema)]
pub struct HandshakeSessionInfo {
    /// The signed-in tenant.
    pub tenant_id: String,
    /// The user.
    pub username: Option<String>,
    /// `live` or `test`.
    pub mode: crate::auth::Mode,
    /// Idle expiry (Unix seconds).
    pub expires_at: Option<i64>,
    /// Whether the session carries the tenant's keys (can use secrets and runs).
    pub has_keys: bool,
}

/// A refreshed session.
#[derive(Serialize, ToSchema)]
pub struct RefreshResponse {
    /// New idle expiry (Unix seconds).
    pub expires_at: i64,
    /// Absolute expiry (Unix seconds).
    pub absolute_expires_at: i64,
    /// The signed-in tenant.
    pub tenant_id: String,
}

/// A tenant key rotation, from a signed-in session.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    /// The new static X25519 public key, base64url.
    #[schema(schema_with = key32_schema)]
    pub public_key: String,
    /// The new wrapping key (32 bytes), base64url.
    #[schema(schema_with = key32_schema)]
    pub wrapping_key: String,
}

/// A tenant whose key pair the client made.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenantRequest {
    /// Display name: 1–100 characters, at least one of them a letter or digit (for the slug).
    #[schema(min_length = 1, max_length = 100, pattern = "[A-Za-z0-9]")]
    pub name: String,
    /// The static X25519 public key derived from the seed the client keeps, base64url.
    #[schema(schema_with = key32_schema)]
    pub public_key: String,
}

/// A created tenant.
#[derive(Serialize, ToSchema)]
pub struct CreatedTenant {
    /// `ten_…`.
    pub tenant_id: String,
    /// Display name.
    pub name: String,
    /// URL-safe name.
    pub slug: String,
}

/// The `{name}` of the secret routes, as `secrets::check_name` accepts it.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SecretName {
    /// Secret name: 1–128 letters, digits, `.`, `_`, `-` or `/` (percent-encoded in the path).
    #[param(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9._/-]{1,128}$")]
    pub name: String,
}

/// A secret value to store.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretValue {
    /// The value (UTF-8 text).
    pub value: String,
}

/// A secret with its value.
#[derive(Serialize, ToSchema)]
pub struct SecretResponse {
    /// The name.
    pub name: String,
    /// The value.
    pub value: String,
    /// Creation time (Unix seconds).
    pub created_at: i64,
    /// Last change (Unix seconds).
    pub updated_at: i64,
}

/// Secret names and times.
#[derive(Serialize, ToSchema)]
pub struct SecretList {
    /// The secrets (no values).
    pub secrets: Vec<SecretMeta>,
}

/// Starting a run.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRunRequest {
    /// The workflow name: 1–64 letters, digits, `.`, `_` or `-`.
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub workflow: String,
}

/// A started run.
#[derive(Serialize, ToSchema)]
pub struct StartRunResponse {
    /// The run.
    pub run_id: String,
    /// `dst_run_…`, valid 24 h, for `/workflows/{name}?dispatched_session=…`. Shown once.
    pub session: String,
    /// When the run token expires (Unix seconds).
    pub expires_at: i64,
}

/// The tenant's runs.
#[derive(Serialize, ToSchema)]
pub struct RunList {
    /// Newest first.
    pub runs: Vec<RunRow>,
}

/// A run's decrypted callbacks.
#[derive(Serialize, ToSchema)]
pub struct RunEvents {
    /// The run.
    pub run_id: String,
    /// The workflow.
    pub workflow: String,
    /// The callbacks, oldest first.
    pub events: Vec<runs::Event>,
}

/// A stored callback.
#[derive(Serialize, ToSchema)]
pub struct CallbackAccepted {
    /// The run.
    pub run_id: String,
    /// The stored event.
    pub event_id: i64,
}

/// The server's static Noise public key (clients pin it).
#[utoipa::path(get, path = "/api/session/server-key", tag = "handshake",
    responses((status = 200, body = ServerKey)))]
pub async fn server_key(ctx: web::Data<Ctx>) -> HttpResponse {
    HttpResponse::Ok().json(ServerKey {
        public_key: crypto::b64(&ctx.handshakes.server_public()),
    })
}

/// A handshake message: base64url of its fixed length, else 400 before anything is looked up
/// (a malformed message 3 does not use up its handshake).
fn message(value: &str, number: u8, len: usize) -> Result<Vec<u8>> {
    let m = hs::decode_field(value, "message")?;
    if m.len() != len {
        return Err(Error::bad_request(format!(
            "handshake message {number} must be {len} bytes"
        )));
    }
    Ok(m)
}

/// Handshake step 1: message 1 in, message 2 out. Needs a tenant member's API key.
#[utoipa::path(post, path = "/api/session", tag = "handshake", request_body = BeginRequest,
    responses((status = 200, body = BeginResponse),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn begin(
    ctx: web::Data<Ctx>,
    req: HttpRequest,
    body: web::Json<BeginRequest>,
) -> Result<HttpResponse> {
    let p = principal(&ctx, &req).await?;
    let tenant = TenantId::parse(body.tenant_id.trim())?;
    let m1 = message(&body.message, 1, crypto::handshake::MESSAGE1_LEN)?;
    let b = hs::begin(&ctx, &p, &tenant, &m1, &client_info(&req)).await?;
    Ok(HttpResponse::Ok().json(BeginResponse {
        handshake_id: b.handshake_id,
        message: crypto::b64(&b.message),
        expires_in: b.expires_in,
    }))
}

/// Handshake step 2: message 3 in (proof of the tenant key + wrapping key), session out.
#[utoipa::path(post, path = "/api/session/confirm", tag = "handshake",
    request_body = ConfirmRequest,
    responses((status = 200, body = ConfirmResponse),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn confirm(
    ctx: web::Data<Ctx>,
    req: HttpRequest,
    body: web::Json<ConfirmRequest>,
) -> Result<HttpResponse> {
    let m3 = message(&body.message, 3, crypto::handshake::MESSAGE3_LEN)?;
    let c = hs::confirm(&ctx, body.handshake_id.trim(), &m3, &client_info(&req)).await?;
    let mut resp = HttpResponse::Ok();
    if body.cookie {
        let https = ctx.settings.is_https();
        let name = if https {
            format!("__Host-{SESSION_COOKIE}")
        } else {
            SESSION_COOKIE.to_owned()
        };
        let max_age = c.absolute_expires_at - crate::store::now();
        resp.cookie(
            Cookie::build(name, c.session_token.expose().to_owned())
                .path("/")
                .http_only(true)
                .secure(https)
                .same_site(SameSite::Strict)
                .max_age(actix_web::cookie::time::Duration::seconds(max_age))
                .finish(),
        );
    }
    Ok(resp.json(ConfirmResponse {
        session_token: c.session_token.expose().to_owned(),
        expires_at: c.expires_at,
        absolute_expires_at: c.absolute_expires_at,
        tenant_id: c.tenant_id,
    }))
}

/// The session the request carries.
#[utoipa::path(get, path = "/api/session", tag = "handshake",
    responses((status = 200, body = HandshakeSessionInfo), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn current(ctx: web::Data<Ctx>, req: HttpRequest) -> Result<HttpResponse> {
    let p = principal(&ctx, &req).await?;
    let has_keys = hs::keys_of(&ctx, &p).is_ok();
    Ok(HttpResponse::Ok().json(HandshakeSessionInfo {
        tenant_id: p.tenant_id.clone().unwrap_or_default(),
        username: p.username.clone(),
        mode: p.mode,
        expires_at: p.expires_at,
        has_keys,
    }))
}

/// Signs out: ends the session and wipes its keys from memory.
#[utoipa::path(delete, path = "/api/session", tag = "handshake",
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn sign_out(ctx: web::Data<Ctx>, req: HttpRequest) -> Result<HttpResponse> {
    let p = principal(&ctx, &req).await?;
    hs::sign_out(&ctx, &p).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Rotates the tenant key: re-wraps the data key, ends the tenant's other sessions.
#[utoipa::path(post, path = "/api/session/rotate-key", tag = "handshake",
    request_body = RotateRequest,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn rotate_key(
    ctx: web::Data<Ctx>,
    req: HttpRequest,
    body: web::Json<RotateRequest>,
) -> Result<HttpResponse> {
    let raw = raw_credential(&req)?;
    let p = resolver::resolve(&ctx, &raw).await?;
    let pk: [u8; 32] = hs::decode_field(&body.public_key, "public_key")?
        .try_into()
        .map_err(|_| Error::bad_request("`public_key` must be 32 bytes"))?;
    let wk = Key32::from_slice(&hs::decode_field(&body.wrapping_key, "wrapping_key")?)
        .ok_or_else(|| Error::bad_request("`wrapping_key` must be 32 bytes"))?;
    hs::rotate_key(&ctx, &p, &raw, pk, wk).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Creates a tenant from a client-made key pair (the admin page; only the public key is sent).
/// Needs an administrator or the `tenants.manage` permission; the caller becomes the owner.
#[utoipa::path(post, path = "/api/tenants", tag = "handshake", request_body = CreateTenantRequest,
    responses((status = 201, body = CreatedTenant), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn create_tenant(
    ctx: web::Data<Ctx>,
    req: HttpRequest,
    body: web::Json<CreateTenantRequest>,
) -> Result<HttpResponse> {
    let p = principal(&ctx, &req).await?;
    p.require("tenants.manage")?;
    let owner = p.require_user()?;
    let pk: [u8; 32] = hs::decode_field(&body.public_key, "public_key")?
        .try_into()
        .map_err(|_| Error::bad_request("`public_key` must be 32 bytes"))?;
    let t = hs::create_tenant(&ctx, &body.name, Some(owner), pk)
        .await?
        .tenant;
    Ok(HttpResponse::Created().json(CreatedTenant {
        tenant_id: t.id,
        name: t.name,
        slug: t.slug,
    }))
}

/// Lists the tenant's secrets: names and times only.
#[utoipa::path(get, path = "/api/secrets", tag = "secrets",
    responses((status = 200, body = SecretList), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn list_secrets(ctx: web::Data<Ctx>, req: HttpRequest) -> Result<HttpResponse> {
    let p = principal(&ctx, &req).await?;
    let secrets = secrets::list(&ctx, &p).await?;
    Ok(HttpResponse::Ok().json(SecretList { secrets }))
}

/// Stores a secret, encrypted with the tenant data key.
#[utoipa::path(put, path = "/api/secrets/{name}", tag = "secrets", request_body = SecretValue,
    params(SecretName),
    responses((status = 200, body = SecretMeta), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn put_secret(
    ctx: web::Data<Ctx>,
    req: HttpRequest,
    path: web::Path<SecretName>,
    body: web::Json<SecretValue>,
) -> Result<HttpResponse> {
    let p = principal(&ctx, &req).await?;
    let meta = secrets::put(&ctx, &p, &path.name, &body.value).await?;
    Ok(HttpResponse::Ok().json(meta))
}

/// Reads a secret.
#[utoipa::path(get, path = "/api/secrets/{name}", tag = "secrets",
    params(SecretName),
    responses((status = 200, body = SecretResponse), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn get_secret(
    ctx: web::Data<Ctx>,
    req: HttpRequest,
    path: web::Path<SecretName>,
) -> Result<HttpResponse> {
    let p = principal(&ctx, &req).await?;
    let (meta, value) = secrets::get(&ctx, &p, &path.name).await?;
    Ok(HttpResponse::Ok().json(SecretResponse {
        name: meta.name,
        value,
        created_at: meta.created_at,
        updated_at: meta.updated_at,
    }))
}

/// Deletes a secret.
#[utoipa::path(delete, path = "/api/secrets/{name}", tag = "secrets",
    params(SecretName),
    responses((status = 204), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn delete_secret(
    ctx: web::Data<Ctx>,
    req: HttpRequest,
    path: web::Path<SecretName>,
) -> Result<HttpResponse> {
    let p = principal(&ctx, &req).await?;
    secrets::delete(&ctx, &p, &path.name).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Starts a run: a `dst_run_` token (24 h) carrying the tenant and its keys.
#[utoipa::path(post, path = "/api/runs", tag = "runs", request_body = StartRunRequest,
    responses((status = 201, body = StartRunResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn start_run(
    ctx: web::Data<Ctx>,
    req: HttpRequest,
    body: web::Json<StartRunRequest>,
) -> Result<HttpResponse> {
    let p = principal(&ctx, &req).await?;
    let s = runs::start(&ctx, &p, body.workflow.trim()).await?;
    Ok(HttpResponse::Created().json(StartRunResponse {
        run_id: s.run.id,
        session: s.session.expose().to_owned(),
        expires_at: s.run.expires_at,
    }))
}

/// Lists the tenant's runs.
#[utoipa::path(get, path = "/api/runs", tag = "runs",
    responses((status = 200, body = RunList), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn list_runs(ctx: web::Data<Ctx>, req: HttpRequest) -> Result<HttpResponse> {
    let p = principal(&ctx, &req).await?;
    Ok(HttpResponse::Ok().json(RunList {
        runs: runs::list(&ctx, &p).await?,
    }))
}

/// A run's callbacks, decrypted.
#[utoipa::path(get, path = "/api/runs/{id}/events", tag = "runs",
    params(("id" = String, Path, description = "Run id")),
    responses((status = 200, body = RunEvents), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn run_events(
    ctx: web::Data<Ctx>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse> {
    let p = principal(&ctx, &req).await?;
    let (run, events) = runs::events(&ctx, &p, &id).await?;
    Ok(HttpResponse::Ok().json(RunEvents {
        run_id: run.id,
        workflow: run.workflow,
        events,
    }))
}

#[derive(Deserialize)]
struct CallbackQuery {
    dispatched_session: Option<String>,
}

/// A webhook callback for a run: `?dispatched_session=dst_run_…` or the header. Stored
/// encrypted; answers 202. The only route that accepts a token in the query string.
#[utoipa::path(post, path = "/workflows/{name}", tag = "runs",
    params(("name" = String, Path, description = "Workflow name"),
        ("dispatched_session" = Option<String>, Query, description = "The run token `dst_run_…`")),
    request_body(content = String, description = "Any body, up to `handshake.max_callback_bytes`", content_type = "application/octet-stream"),
    responses((status = 202, body = CallbackAccepted), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody)))]
pub async fn workflow_callback(
    ctx: web::Data<Ctx>,
    req: HttpRequest,
    name: web::Path<String>,
    mut payload: web::Payload,
) -> Result<HttpResponse> {
    let from_query = web::Query::<CallbackQuery>::from_query(req.query_string())
        .ok()
        .and_then(|q| q.into_inner().dispatched_session);
    let raw = match credential_from_headers(req.headers())? {
        Some((raw, _)) => raw,
        None => from_query.ok_or_else(|| Error::unauthenticated(NO_CREDENTIAL))?,
    };
    if !raw.starts_with("dst_run_") {
        return Err(Error::forbidden(
            "Workflow callbacks need a run session (dst_run_…)",
        ));
    }
    let p = resolver::resolve(&ctx, &raw).await?;
    use futures_util::StreamExt;
    let limit = ctx.settings.handshake.max_callback_bytes;
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| Error::bad_request("The request body could not be read"))?;
        if body.len() + chunk.len() > limit {
            return Ok(crate::error::json_error(
                actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
                &format!("Callback body is larger than {limit} bytes"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (run_id, event_id) = runs::callback(&ctx, &p, &name, content_type, &body).await?;
    Ok(HttpResponse::Accepted()
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(CallbackAccepted { run_id, event_id }))
}

/// The handshake, secrets and runs part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(
        server_key,
        begin,
        confirm,
        current,
        sign_out,
        rotate_key,
        create_tenant,
        list_secrets,
        put_secret,
        get_secret,
        delete_secret,
        start_run,
        list_runs,
        run_events,
        workflow_callback
    ),
    components(schemas(
        ServerKey,
        BeginRequest,
        BeginResponse,
        ConfirmRequest,
        ConfirmResponse,
        HandshakeSessionInfo,
        RefreshResponse,
        RotateRequest,
        SecretValue,
        SecretResponse,
        SecretList,
        SecretMeta,
        StartRunRequest,
        StartRunResponse,
        RunList,
        RunRow,
        RunEvents,
        runs::Event,
        CallbackAccepted
    ))
)]
pub struct HandshakeApi;
