//! The media-server accounts API: JWT pairs (obtain, refresh, logout) and user management.
//!
//! Paths end in `/` as the contract spells them; the same path without the slash is served by
//! the same handler (no redirect, so a POST body is never lost). Only the slash form is listed
//! in the OpenAPI document.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{OpenApi, ToSchema};

use super::auth_extract::Authenticated;
use super::HttpState;
use crate::auth::Principal;
use crate::error::{Error, ErrorBody, Result};
use crate::services::types::{Email, Password, Username};
use crate::services::{tokens, users, Ctx};
use crate::store::users::UserRow;

/// Sign-in body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// User name (or e-mail address).
    pub username: String,
    /// Password.
    pub password: String,
}

/// A refresh token in a body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The refresh token.
    pub refresh: String,
}

/// An access/refresh pair.
#[derive(Serialize, ToSchema)]
pub struct TokenPairBody {
    /// EdDSA access JWT (`token_type: access`, 5 minutes by default).
    pub access: String,
    /// EdDSA refresh JWT (`token_type: refresh`, 7 days by default); single use.
    pub refresh: String,
}

/// A page of users.
#[derive(Serialize, ToSchema)]
pub struct UserList {
    /// The users, by id.
    pub users: Vec<UserRow>,
    /// Number of users in all.
    pub total: i64,
    /// Page size used.
    pub limit: i64,
    /// Offset used.
    pub offset: i64,
}

/// Paging parameters.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct Paging {
    /// Page size (1–1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// Users to skip (default 0).
    #[param(minimum = 0)]
    pub offset: Option<i64>,
}

/// A new user.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// User name: letters, digits, `.`, `_`, `-`, `@`; 1–64 characters.
    #[schema(value_type = Username)]
    pub username: String,
    /// E-mail address.
    #[serde(default)]
    #[schema(value_type = Option<Email>)]
    pub email: Option<String>,
    /// Password (checked for strength); without one the user signs in by magic link only.
    #[serde(default)]
    pub password: Option<String>,
    /// Administrator (only administrators may set this).
    #[serde(default)]
    pub is_admin: bool,
    /// Named permissions (a non-administrator may grant only permissions they hold).
    #[serde(default)]
    #[schema(schema_with = granted_permissions)]
    pub permissions: Vec<String>,
}

/// A list of the permissions [`users::PERMISSIONS`] names (any other is refused with 400).
fn permission_list(description: &str) -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(users::PERMISSIONS.iter().map(|(name, _)| *name))),
        )
        .description(Some(description))
        .build()
}

fn granted_permissions() -> utoipa::openapi::schema::Array {
    permission_list("Named permissions (a non-administrator may grant only permissions they hold)")
}

fn new_permissions() -> utoipa::openapi::schema::Array {
    permission_list("The full new list of permissions")
}

fn double_option<'de, D, T>(d: D) -> std::result::Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Changes to a user; absent fields stay as they are.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    /// New e-mail address, or `null` to remove it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Email>)]
    pub email: Option<Option<String>>,
    /// Administrator flag (only administrators may change it).
    pub is_admin: Option<bool>,
    /// The full new list of permissions.
    #[schema(schema_with = new_permissions)]
    pub permissions: Option<Vec<String>>,
    /// Disable (ends every session and refresh family) or re-enable.
    pub disabled: Option<bool>,
    /// A new password (ends every session and refresh family).
    pub password: Option<String>,
}

/// One grantable permission.
#[derive(Serialize, ToSchema)]
pub struct PermissionInfo {
    /// Its name, e.g. `users.view`.
    pub name: &'static str,
    /// What it allows.
    pub description: &'static str,
}

/// The grantable permissions.
#[derive(Serialize, ToSchema)]
pub struct PermissionList {
    /// Every permission a non-administrator can be given.
    pub permissions: Vec<PermissionInfo>,
}

fn client_ip(req: &HttpRequest) -> Option<std::net::IpAddr> {
    req.app_data::<web::Data<HttpState>>()
        .and_then(|s| s.trusted.client_ip(req))
}

fn pair_body(p: tokens::TokenPair) -> HttpResponse {
    HttpResponse::Ok().json(TokenPairBody {
        access: p.access.expose().to_owned(),
        refresh: p.refresh.expose().to_owned(),
    })
}

/// Obtain a JWT pair with a user name and password.
#[utoipa::path(post, path = "/api/accounts/token/", tag = "accounts",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "A new pair", body = TokenPairBody),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 401, description = "Invalid username or password", body = ErrorBody),
        (status = 429, description = "Too many failed sign-ins; see Retry-After", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
pub async fn token(
    ctx: web::Data<Ctx>,
    req: HttpRequest,
    body: web::Json<LoginRequest>,
) -> Result<HttpResponse> {
    let body = body.into_inner();
    let pw = Password::new(body.password);
    let pair = tokens::login(&ctx, body.username.trim(), &pw, client_ip(&req)).await?;
    Ok(pair_body(pair))
}

/// Sign in: the same as `POST /api/accounts/token/`.
#[utoipa::path(post, path = "/api/accounts/auth/login/", tag = "accounts",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "A new pair", body = TokenPairBody),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 401, description = "Invalid username or password", body = ErrorBody),
        (status = 429, description = "Too many failed sign-ins; see Retry-After", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
pub async fn login(
    ctx: web::Data<Ctx>,
    req: HttpRequest,
    body: web::Json<LoginRequest>,
) -> Result<HttpResponse> {
    token(ctx, req, body).await
}

/// Rotate a refresh token: it is spent and a new pair returned. Presenting a spent token
/// revokes its whole family, except an identical retry within the grace window.
#[utoipa::path(post, path = "/api/accounts/token/refresh/", tag = "accounts",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "The new pair", body = TokenPairBody),
        (status = 400, description = "Invalid body or not a JWT", body = ErrorBody),
        (status = 401, description = "Invalid, expired, revoked or reused token", body = ErrorBody),
    ))]
pub async fn refresh(
    ctx: web::Data<Ctx>,
    req: HttpRequest,
    body: web::Json<RefreshRequest>,
) -> Result<HttpResponse> {
    let pair = tokens::refresh(&ctx, body.refresh.trim(), client_ip(&req)).await?;
    Ok(pair_body(pair))
}

/// Sign out: revokes the refresh token's family (every token of that sign-in).
#[utoipa::path(post, path = "/api/accounts/auth/logout/", tag = "accounts",
    request_body = RefreshRequest,
    responses(
        (status = 204, description = "The family is revoked"),
        (status = 400, description = "Invalid body or not a JWT", body = ErrorBody),
        (status = 401, description = "Invalid or expired token", body = ErrorBody),
    ))]
pub async fn logout(
    ctx: web::Data<Ctx>,
    req: HttpRequest,
    body: web::Json<RefreshRequest>,
) -> Result<HttpResponse> {
    tokens::logout(&ctx, body.refresh.trim(), client_ip(&req)).await?;
    Ok(HttpResponse::NoContent().finish())
}

fn require_view(p: &Principal) -> Result<()> {
    if p.has_permission("users.manage") {
        return Ok(());
    }
    p.require("users.view")
}

/// Non-administrators may not touch administrators.
fn require_may_manage(p: &Principal, target: &UserRow) -> Result<()> {
    p.require("users.manage")?;
    if target.is_admin && !p.is_admin {
        return Err(Error::forbidden(
            "Only administrators can change or delete an administrator",
        ));
    }
    Ok(())
}

/// List users.
#[utoipa::path(get, path = "/api/accounts/users/", tag = "users",
    params(Paging),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = UserList),
        (status = 400, description = "Invalid query or malformed credential", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Requires `users.view`", body = ErrorBody),
    ))]
pub async fn list_users(
    ctx: web::Data<Ctx>,
    who: Authenticated,
    q: web::Query<Paging>,
) -> Result<HttpResponse> {
    require_view(&who.0)?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1_000);
    let offset = q.offset.unwrap_or(0).max(0);
    let (users, total) = users::page(&ctx, limit, offset).await?;
    Ok(HttpResponse::Ok().json(UserList {
        users,
        total,
        limit,
        offset,
    }))
}

/// Create a user.
#[utoipa::path(post, path = "/api/accounts/users/", tag = "users",
    request_body = CreateUser,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 201, body = UserRow),
        (status = 400, description = "Invalid field, weak password or unknown permission", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Requires `users.manage` (and administrator rights to make administrators)", body = ErrorBody),
        (status = 409, description = "User name or e-mail taken", body = ErrorBody),
    ))]
pub async fn create_user(
    ctx: web::Data<Ctx>,
    who: Authenticated,
    body: web::Json<CreateUser>,
) -> Result<HttpResponse> {
    who.0.require("users.manage")?;
    let b = body.into_inner();
    users::check_grant(
        who.0.is_admin,
        &who.0.permissions,
        b.is_admin.then_some(true),
        Some(&b.permissions),
    )?;
    let user = users::create(
        &ctx,
        users::NewUser {
            username: Username::parse(&b.username)?,
            email: b.email.as_deref().map(Email::parse).transpose()?,
            password: b.password.map(Password::new),
            is_admin: b.is_admin,
            permissions: b.permissions,
        },
    )
    .await?;
    Ok(HttpResponse::Created().json(user))
}

/// One user (anyone may read their own record).
#[utoipa::path(get, path = "/api/accounts/users/{id}/", tag = "users",
    params(("id" = i64, Path, description = "User id")),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = UserRow),
        (status = 400, description = "Invalid id or malformed credential", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Requires `users.view`", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
    ))]
pub async fn get_user(
    ctx: web::Data<Ctx>,
    who: Authenticated,
    id: web::Path<i64>,
) -> Result<HttpResponse> {
    let id = id.into_inner();
    if who.0.user_id != Some(id) {
        require_view(&who.0)?;
    }
    Ok(HttpResponse::Ok().json(users::get(&ctx, id).await?))
}

/// Change a user: e-mail, administrator flag, permissions, disabled, password.
#[utoipa::path(patch, path = "/api/accounts/users/{id}/", tag = "users",
    params(("id" = i64, Path, description = "User id")),
    request_body = UpdateUser,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = UserRow),
        (status = 400, description = "Invalid field, weak password, or a change to your own account that would lock you out", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Requires `users.manage`", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 409, description = "E-mail taken", body = ErrorBody),
    ))]
pub async fn update_user(
    ctx: web::Data<Ctx>,
    who: Authenticated,
    id: web::Path<i64>,
    body: web::Json<UpdateUser>,
) -> Result<HttpResponse> {
    let id = id.into_inner();
    let b = body.into_inner();
    who.0.require("users.manage")?;
    let target = users::get(&ctx, id).await?;
    require_may_manage(&who.0, &target)?;
    users::check_grant(
        who.0.is_admin,
        &who.0.permissions,
        b.is_admin,
        b.permissions.as_deref(),
    )?;
    if who.0.user_id == Some(id) {
        if b.disabled == Some(true) {
            return Err(Error::bad_request("You cannot disable your own account"));
        }
        if target.is_admin && b.is_admin == Some(false) {
            return Err(Error::bad_request(
                "You cannot remove your own administrator rights",
            ));
        }
    }
    let email = b
        .email
        .map(|e| e.as_deref().map(Email::parse).transpose())
        .transpose()?;
    let password = b.password.map(Password::new);
    if let Some(pw) = &password {
        let mut inputs = vec![target.username.as_str()];
        if let Some(e) = &target.email {
            inputs.push(e.as_str());
        }
        pw.check_new(&ctx.settings.password, &inputs)?;
    }
    let mut user = users::update(&ctx, id, email, b.is_admin, b.permissions).await?;
    if let Some(d) = b.disabled {
        if d != user.disabled {
            user = users::set_disabled(&ctx, id, d).await?;
        }
    }
    if let Some(pw) = password {
        users::set_password(&ctx, id, &pw, None).await?;
    }
    Ok(HttpResponse::Ok().json(user))
}

/// Delete a user and everything that belongs to them.
#[utoipa::path(delete, path = "/api/accounts/users/{id}/", tag = "users",
    params(("id" = i64, Path, description = "User id")),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "You cannot delete yourself", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Requires `users.manage`", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
    ))]
pub async fn delete_user(
    ctx: web::Data<Ctx>,
    who: Authenticated,
    id: web::Path<i64>,
) -> Result<HttpResponse> {
    let id = id.into_inner();
    who.0.require("users.manage")?;
    if who.0.user_id == Some(id) {
        return Err(Error::bad_request("You cannot delete your own account"));
    }
    let target = users::get(&ctx, id).await?;
    require_may_manage(&who.0, &target)?;
    users::delete(&ctx, id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The permissions that can be granted (any authenticated user may read the list).
#[utoipa::path(get, path = "/api/accounts/permissions/", tag = "users",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = PermissionList),
        (status = 400, description = "Malformed credential", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
    ))]
pub async fn permissions(_who: Authenticated) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(PermissionList {
        permissions: users::PERMISSIONS
            .iter()
            .map(|(name, description)| PermissionInfo { name, description })
            .collect(),
    }))
}

/// Registers the accounts routes, each with and without the trailing slash.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let both = |p: &str| [p.to_owned(), p.trim_end_matches('/').to_owned()];
    cfg.service(web::resource(both("/api/accounts/token/")).post(token))
        .service(web::resource(both("/api/accounts/auth/login/")).post(login))
        .service(web::resource(both("/api/accounts/token/refresh/")).post(refresh))
        .service(web::resource(both("/api/accounts/auth/logout/")).post(logout))
        .service(
            web::resource(both("/api/accounts/users/"))
                .get(list_users)
                .post(create_user),
        )
        .service(
            web::resource(both("/api/accounts/users/{id}/"))
                .get(get_user)
                .patch(update_user)
                .delete(delete_user),
        )
        .service(web::resource(both("/api/accounts/permissions/")).get(permissions));
}

/// The accounts part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(token, login, refresh, logout, list_users, create_user, get_user, update_user,
          delete_user, permissions),
    components(schemas(LoginRequest, RefreshRequest, TokenPairBody, UserList, UserRow,
                       CreateUser, UpdateUser, PermissionInfo, PermissionList)),
    tags((name = "accounts", description = "JWT pairs: obtain, rotate, revoke"),
         (name = "users", description = "User management behind permissions"))
)]
pub struct AccountsApi;
