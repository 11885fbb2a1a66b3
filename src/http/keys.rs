//! API key management over HTTP: three contracts, one service behind them.
//!
//! - Tickets: `POST/GET /v1/api-keys`, `DELETE /v1/api-keys/{id}`, `POST /v1/api-keys/{id}/roll`.
//! - Media server: `GET/POST /api/accounts/api-keys/`, `DELETE /api/accounts/api-keys/{id}/`
//!   (admins and `keys.manage_all` see every user's keys, `?user=`, and may create for a user).
//! - Agent API: `GET /keys`, `GET|POST /keys/new` (a `pk_` key; creating on GET is the contract).
//!
//! Every handler takes an [`Authenticated`] principal, so any credential kind the resolver
//! accepts works here; API keys are rate limited by the extractor.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use super::auth_extract::Authenticated;
use super::extract::OptionalJson;
use crate::auth::{CredentialKind, Principal};
use crate::error::{Error, ErrorBody, Result};
use crate::services::keys::{
    self as svc, Actor, CreatedKey, KeyKind, KeyMode, KeyView, ListFilter, NewKey, RolledKey,
};
use crate::services::types::{self, TenantId, Username};
use crate::services::Ctx;

/// Registers the key routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/v1/api-keys").post(create_v1).get(list_v1))
        .service(web::resource("/v1/api-keys/{id}").delete(revoke_v1))
        .service(web::resource("/v1/api-keys/{id}/roll").post(roll_v1))
        .service(
            web::resource("/api/accounts/api-keys/")
                .get(list_accounts)
                .post(create_accounts),
        )
        .service(web::resource("/api/accounts/api-keys/{id}/").delete(revoke_accounts))
        .service(web::resource("/keys").get(list_agent))
        .service(
            web::resource("/keys/new")
                .get(new_agent)
                .post(new_agent_post),
        );
}

fn actor(p: &Principal) -> Result<Actor> {
    let user_id = p.require_user()?;
    Ok(Actor {
        user_id: Some(user_id),
        manage_all: p.has_permission(svc::MANAGE_ALL),
        mode: (p.kind == CredentialKind::ApiKey).then_some(p.mode),
        scopes: p.scopes.clone(),
        tenant_id: p.tenant_id.clone(),
        label: p.username.clone().unwrap_or_else(|| p.subject.clone()),
    })
}

/// Body of a key creation.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateKeyRequest {
    /// Display name: 1–100 characters, no control characters, not blank.
    #[schema(schema_with = key_name_schema)]
    pub name: String,
    /// `live` (default) or `test`.
    #[schema(value_type = Option<KeyMode>)]
    pub mode: Option<String>,
    /// Rate-limit plan (default `keys.default_plan`; another plan needs `keys.manage_all`).
    pub plan: Option<String>,
    /// Expiry, Unix seconds; must be in the future (none: the key does not expire).
    pub expires_at: Option<i64>,
    /// Scopes (empty: the owner's full rights): at most 32, each 1–64 characters of letters,
    /// digits and `. : _ - * /`.
    #[schema(schema_with = scopes_schema)]
    pub scopes: Option<Vec<String>>,
    /// Tenant (default: the caller's tenant, else the default tenant).
    #[schema(value_type = Option<TenantId>)]
    pub tenant_id: Option<String>,
    /// Owner's user name (media-server contract; needs `keys.manage_all` for someone else).
    #[schema(value_type = Option<Username>)]
    pub user: Option<String>,
}

/// A key's name as the key service's `check_name` accepts it: 1–100 characters, none of them a
/// control character, not all of them white space.
fn key_name_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    types::string_schema(
        "Display name: 1–100 characters, no control characters, not blank",
        1,
        100,
        r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$",
    )
}

/// `scopes`: at most 32, each as `check_scopes` in the key service accepts it.
fn scopes_schema() -> utoipa::openapi::schema::Array {
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(types::string_schema(
            "A scope",
            1,
            64,
            "^[A-Za-z0-9.:_*/-]{1,64}$",
        ))
        .max_items(Some(32))
        .build()
}

impl CreateKeyRequest {
    fn into_new(self, kind: KeyKind) -> Result<NewKey> {
        Ok(NewKey {
            name: self.name,
            user: self.user.as_deref().map(Username::parse).transpose()?,
            mode: self.mode.as_deref().map(KeyMode::parse).transpose()?,
            plan: self.plan,
            expires_at: self.expires_at,
            scopes: self.scopes.unwrap_or_default(),
            tenant: self.tenant_id.as_deref().map(TenantId::parse).transpose()?,
            kind: Some(kind),
        })
    }
}

/// A list of keys (tickets contract).
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    /// The keys, newest first.
    pub data: Vec<KeyView>,
}

/// Body of a roll.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RollRequest {
    /// Seconds the old key keeps working (0 to 2592000, 30 days; default 3600).
    #[schema(minimum = 0, maximum = 2592000)]
    pub expire_old_in: Option<u64>,
}

/// `?user=` of the media-server listing.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct UserQuery {
    /// Only this user's keys (needs `keys.manage_all` for someone else).
    #[param(value_type = Option<Username>)]
    pub user: Option<String>,
}

impl UserQuery {
    /// The listing filter: `?user=` if given; otherwise every user's keys when `all_users`
    /// (media-server contract, for callers allowed to see them) or the caller's own.
    fn filter(&self, all_users: bool) -> Result<ListFilter> {
        Ok(ListFilter {
            user: self.user.as_deref().map(Username::parse).transpose()?,
            all_users,
        })
    }
}

/// `?name=` of the agent-API key creation.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct NameQuery {
    /// Name for the new key (default `API key`).
    #[param(schema_with = key_name_schema)]
    pub name: Option<String>,
}

/// One key in the agent-API listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentKey {
    /// Display name.
    pub name: String,
    /// Masked key, e.g. `pk_live_…wxyz`.
    #[serde(rename = "publicKey")]
    pub public_key: String,
    /// Creation time (Unix seconds).
    pub created_at: i64,
}

/// The agent-API listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentKeyList {
    /// The caller's keys.
    #[serde(rename = "apiKeys")]
    pub api_keys: Vec<AgentKey>,
}

/// The agent-API answer to key creation: the full key, shown once.
#[derive(Serialize, ToSchema)]
pub struct AgentNewKey {
    /// The full new key.
    #[serde(rename = "publicKey")]
    pub public_key: String,
    /// `API key generated successfully`.
    pub message: &'static str,
}

/// Creates a key; the secret appears only in this answer.
#[utoipa::path(post, path = "/v1/api-keys", tag = "api keys", request_body = CreateKeyRequest,
    responses((status = 201, body = CreatedKey), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`user` names no user"), (status = 429, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn create_v1(
    auth: Authenticated,
    ctx: web::Data<Ctx>,
    body: web::Json<CreateKeyRequest>,
) -> Result<HttpResponse> {
    let a = actor(&auth.0)?;
    let key = svc::create(&ctx, &a, body.into_inner().into_new(KeyKind::Secret)?).await?;
    Ok(HttpResponse::Created().json(key))
}

/// Lists the caller's keys (never the secrets); `?user=` another user's (needs `keys.manage_all`).
#[utoipa::path(get, path = "/v1/api-keys", tag = "api keys", params(UserQuery),
    responses((status = 200, body = KeyList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`user` names no user"), (status = 429, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn list_v1(
    auth: Authenticated,
    ctx: web::Data<Ctx>,
    q: web::Query<UserQuery>,
) -> Result<HttpResponse> {
    let a = actor(&auth.0)?;
    let data = svc::list(&ctx, &a, q.filter(false)?).await?;
    Ok(HttpResponse::Ok().json(KeyList { data }))
}

/// Revokes a key; the next request with it is refused.
#[utoipa::path(delete, path = "/v1/api-keys/{id}", tag = "api keys",
    params(("id" = i64, Path, description = "Key id")),
    responses((status = 200, body = KeyView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn revoke_v1(
    auth: Authenticated,
    ctx: web::Data<Ctx>,
    id: web::Path<i64>,
) -> Result<HttpResponse> {
    let a = actor(&auth.0)?;
    Ok(HttpResponse::Ok().json(svc::revoke(&ctx, &a, id.into_inner()).await?))
}

/// Issues a replacement key; the old one keeps working for `expire_old_in` seconds.
#[utoipa::path(post, path = "/v1/api-keys/{id}/roll", tag = "api keys", request_body = RollRequest,
    params(("id" = i64, Path, description = "Key id")),
    responses((status = 201, body = RolledKey), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn roll_v1(
    auth: Authenticated,
    ctx: web::Data<Ctx>,
    id: web::Path<i64>,
    body: OptionalJson<RollRequest>,
) -> Result<HttpResponse> {
    let a = actor(&auth.0)?;
    let overlap = body.0.and_then(|b| b.expire_old_in).unwrap_or(3_600);
    let rolled = svc::roll(&ctx, &a, id.into_inner(), overlap).await?;
    Ok(HttpResponse::Created().json(rolled))
}

/// Lists keys: own keys, every key for admins, or one user's with `?user=`.
#[utoipa::path(get, path = "/api/accounts/api-keys/", tag = "api keys", params(UserQuery),
    responses((status = 200, body = Vec<KeyView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn list_accounts(
    auth: Authenticated,
    ctx: web::Data<Ctx>,
    q: web::Query<UserQuery>,
) -> Result<HttpResponse> {
    let a = actor(&auth.0)?;
    Ok(HttpResponse::Ok().json(svc::list(&ctx, &a, q.filter(true)?).await?))
}

/// Generates a key (admins may name the user in `user`).
#[utoipa::path(post, path = "/api/accounts/api-keys/", tag = "api keys", request_body = CreateKeyRequest,
    responses((status = 201, body = CreatedKey), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn create_accounts(
    auth: Authenticated,
    ctx: web::Data<Ctx>,
    body: web::Json<CreateKeyRequest>,
) -> Result<HttpResponse> {
    let a = actor(&auth.0)?;
    let key = svc::create(&ctx, &a, body.into_inner().into_new(KeyKind::Secret)?).await?;
    Ok(HttpResponse::Created().json(key))
}

/// Revokes a key (admins: anyone's).
#[utoipa::path(delete, path = "/api/accounts/api-keys/{id}/", tag = "api keys",
    params(("id" = i64, Path, description = "Key id")),
    responses((status = 204, description = "Revoked"), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn revoke_accounts(
    auth: Authenticated,
    ctx: web::Data<Ctx>,
    id: web::Path<i64>,
) -> Result<HttpResponse> {
    let a = actor(&auth.0)?;
    svc::revoke(&ctx, &a, id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Agent API: the caller's keys, masked.
#[utoipa::path(get, path = "/keys", tag = "api keys",
    responses((status = 200, body = AgentKeyList), (status = 401, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn list_agent(auth: Authenticated, ctx: web::Data<Ctx>) -> Result<HttpResponse> {
    let a = actor(&auth.0)?;
    let keys = svc::list(&ctx, &a, ListFilter::default()).await?;
    Ok(HttpResponse::Ok().json(AgentKeyList {
        api_keys: keys
            .into_iter()
            .map(|k| AgentKey {
                name: k.name,
                public_key: k.masked,
                created_at: k.created_at,
            })
            .collect(),
    }))
}

/// Agent API: generates a `pk_` key (on GET too: that is the contract).
#[utoipa::path(get, path = "/keys/new", tag = "api keys", params(NameQuery),
    responses((status = 200, body = AgentNewKey), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn new_agent(
    req: actix_web::HttpRequest,
    auth: Authenticated,
    ctx: web::Data<Ctx>,
    q: web::Query<NameQuery>,
) -> Result<HttpResponse> {
    // A GET that creates a key must not be triggerable by another site through the cookie.
    if super::auth_extract::via_cookie(&req) {
        return Err(Error::forbidden(
            "GET /keys/new needs a header credential (Authorization or X-API-Key), not the session cookie",
        ));
    }
    let a = actor(&auth.0)?;
    let new = NewKey {
        name: q.into_inner().name.unwrap_or_else(|| "API key".into()),
        kind: Some(KeyKind::Public),
        ..NewKey::default()
    };
    let key = svc::create(&ctx, &a, new).await?;
    Ok(HttpResponse::Ok().json(AgentNewKey {
        public_key: key.secret.expose().to_owned(),
        message: "API key generated successfully",
    }))
}

/// Agent API: the same as `GET /keys/new`, for clients that POST.
#[utoipa::path(post, path = "/keys/new", tag = "api keys", params(NameQuery),
    responses((status = 200, body = AgentNewKey), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn new_agent_post(
    req: actix_web::HttpRequest,
    auth: Authenticated,
    ctx: web::Data<Ctx>,
    q: web::Query<NameQuery>,
) -> Result<HttpResponse> {
    new_agent(req, auth, ctx, q).await
}

/// Adds the two security schemes every authenticated endpoint lists.
pub struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("API key, JWT access token or session token"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

/// The key endpoints' part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(create_v1, list_v1, revoke_v1, roll_v1, list_accounts, create_accounts, revoke_accounts,
        list_agent, new_agent, new_agent_post),
    components(schemas(CreateKeyRequest, KeyList, KeyView, CreatedKey, RolledKey, RollRequest,
        AgentKey, AgentKeyList, AgentNewKey)),
    modifiers(&SecuritySchemes)
)]
pub struct KeysApi;
