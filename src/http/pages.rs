//! The HTML pages a person uses: sign-in (password and magic link), the verify landing page,
//! dashboard (organization switcher, active sessions), API keys, profile, admin users and the
//! audit log. Askama templates from `templates/`; CSS and JS embedded in the binary and served
//! from `/static/` (no inline script or style: the CSP forbids them).
//!
//! Every failure renders as a message on the page (never a raw JSON body); a page that needs a
//! session redirects to the sign-in page when there is none. Forms carry the session's CSRF
//! token in a hidden `csrf` field, checked by [`FormAuth::verify`].

use actix_web::http::header::{self, ContentType};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use askama::Template;
use serde::Deserialize;

use super::browser::sign_in_origin;
use super::session_auth::{self, same_site_check, Auth, FormAuth};
use super::HttpState;
use crate::error::Error;
use crate::services::types::{Email, Password, Username};
use crate::services::{magic_links, sessions, users, Ctx};

/// Registers the page routes.
///
/// Each path is one resource, so another method gets 405 with `Allow`, not the 404 fallback.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/").get(home))
        .service(web::resource("/sign-in").get(sign_in_page).post(sign_in))
        .service(web::resource("/sign-in/magic-link").post(magic_link))
        .service(web::resource("/auth/verify").get(verify_page))
        .service(web::resource("/sign-out").post(sign_out))
        .service(web::resource("/organization").post(switch_organization))
        .service(web::resource("/dashboard").get(dashboard))
        .service(web::resource("/sessions/revoke-others").post(revoke_others))
        .service(web::resource("/sessions/{id}/revoke").post(revoke_session))
        .service(web::resource("/api-keys").get(keys_page))
        .service(web::resource("/profile").get(profile))
        .service(web::resource("/profile/password").post(change_password))
        .service(
            web::resource("/admin/users")
                .get(admin_users)
                .post(admin_create_user),
        )
        .service(web::resource("/admin/users/{id}/{action}").post(admin_set_disabled))
        .service(web::resource("/audit").get(audit_page));
}

/// What the sidebar needs.
pub struct Nav {
    username: String,
    csrf: String,
    organizations: Vec<OrgOption>,
    can_users: bool,
    can_audit: bool,
}

struct OrgOption {
    id: String,
    name: String,
    current: bool,
}

fn html(status: StatusCode, body: Result<String, askama::Error>) -> HttpResponse {
    match body {
        // `same-origin`, not `no-referrer`: with no referrer Chromium sends `Origin: null` on
        // form posts, which the cross-site check must refuse. Nothing leaves our origin either way.
        Ok(b) => HttpResponse::build(status)
            .content_type(ContentType::html())
            .insert_header((header::REFERRER_POLICY, "same-origin"))
            .body(b),
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            HttpResponse::InternalServerError()
                .content_type(ContentType::html())
                .body("<!doctype html><title>Error</title><p>Internal server error</p>")
        }
    }
}

/// A page's caller: no or an ended session goes to the sign-in page; a refused request (e.g.
/// cross-site) gets a message page with its status.
fn gate<T>(auth: Result<T, Error>) -> Result<T, Box<HttpResponse>> {
    match auth {
        Ok(a) => Ok(a),
        Err(Error::Unauthenticated(_) | Error::MalformedCredential) => {
            Err(Box::new(redirect("/sign-in")))
        }
        Err(e) => Err(Box::new(message_page(&e, "/dashboard"))),
    }
}

/// A signed-in form post whose `csrf` field checks out — or the page to answer instead: the
/// sign-in redirect when signed out, a message linking `back` when the token is wrong.
fn form_auth(
    ctx: &Ctx,
    auth: Result<FormAuth, Error>,
    csrf: &str,
    back: &str,
) -> Result<Auth, Box<HttpResponse>> {
    gate(auth)?
        .verify(ctx, csrf)
        .map_err(|e| Box::new(message_page(&e, back)))
}

fn redirect(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to))
        .finish()
}

fn fmt_time(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

fn client_ip(req: &HttpRequest) -> Option<std::net::IpAddr> {
    req.app_data::<web::Data<HttpState>>()
        .and_then(|s| s.trusted.client_ip(req))
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage {
    title: String,
    nav: Option<Nav>,
    active: &'static str,
    error: String,
    notice: String,
    back: String,
}

/// An HTML page showing an error, with the error's status and a link back.
pub fn message_page(e: &Error, back: &str) -> HttpResponse {
    let status = e.status_code();
    let (title, error) = if status.is_server_error() {
        (
            "Something went wrong".to_owned(),
            "The server could not finish this request; try again shortly.".to_owned(),
        )
    } else {
        ("That did not work".to_owned(), e.public_message())
    };
    if let Error::Internal(d) = e {
        tracing::error!(detail = %d, "internal error on a page");
    }
    html(
        status,
        MessagePage {
            title,
            nav: None,
            active: "",
            error,
            notice: String::new(),
            back: back.to_owned(),
        }
        .render(),
    )
}

async fn nav_for(ctx: &Ctx, auth: &Auth) -> Result<Nav, Error> {
    let w = sessions::whoami(ctx, &auth.principal).await?;
    let current = auth.principal.tenant_id.clone();
    Ok(Nav {
        username: w.user.username,
        csrf: auth.csrf(ctx),
        organizations: w
            .organizations
            .into_iter()
            .map(|(t, _)| OrgOption {
                current: Some(&t.id) == current.as_ref(),
                id: t.id,
                name: t.name,
            })
            .collect(),
        can_users: auth.principal.has_permission("users.view")
            || auth.principal.has_permission("users.manage"),
        can_audit: auth.principal.has_permission("audit.view"),
    })
}

async fn home(auth: Result<Auth, Error>) -> HttpResponse {
    redirect(if auth.is_ok() {
        "/dashboard"
    } else {
        "/sign-in"
    })
}

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage {
    title: &'static str,
    nav: Option<Nav>,
    active: &'static str,
    error: String,
    notice: String,
}

fn sign_in_with(status: StatusCode, error: String, notice: String) -> HttpResponse {
    html(
        status,
        SignInPage {
            title: "Sign in",
            nav: None,
            active: "",
            error,
            notice,
        }
        .render(),
    )
}

async fn sign_in_page(auth: Result<Auth, Error>) -> HttpResponse {
    if auth.is_ok() {
        return redirect("/dashboard");
    }
    sign_in_with(StatusCode::OK, String::new(), String::new())
}

#[derive(Deserialize)]
struct PasswordForm {
    username: String,
    password: String,
}

async fn sign_in(
    req: HttpRequest,
    ctx: web::Data<Ctx>,
    form: web::Form<PasswordForm>,
) -> HttpResponse {
    let form = form.into_inner();
    let result = async {
        same_site_check(&req, &ctx.settings)?;
        let pw = Password::new(form.password);
        let user = users::authenticate(&ctx, form.username.trim(), &pw, client_ip(&req)).await?;
        sessions::start(&ctx, user, sign_in_origin(&req, &ctx), "password").await
    }
    .await;
    match result {
        Ok(started) => HttpResponse::SeeOther()
            .cookie(session_auth::session_cookie(
                &ctx.settings,
                started.token.expose(),
            ))
            .insert_header((header::LOCATION, "/dashboard"))
            .finish(),
        Err(e) => sign_in_with(e.status_code(), page_error(&e), String::new()),
    }
}

fn page_error(e: &Error) -> String {
    match e {
        Error::RateLimited { retry_after } => {
            format!("Too many attempts; try again in {retry_after} seconds.")
        }
        e if e.status_code().is_server_error() => {
            if let Error::Internal(d) = e {
                tracing::error!(detail = %d, "internal error on a page");
            }
            "The server could not finish this request; try again shortly.".to_owned()
        }
        e => e.public_message(),
    }
}

#[derive(Deserialize)]
struct EmailForm {
    email: String,
}

async fn magic_link(
    req: HttpRequest,
    ctx: web::Data<Ctx>,
    form: web::Form<EmailForm>,
) -> HttpResponse {
    let result = (|| {
        same_site_check(&req, &ctx.settings)?;
        let email = Email::parse(&form.email)?;
        magic_links::request(&ctx.clone().into_inner(), email, client_ip(&req))
    })();
    match result {
        Ok(()) => sign_in_with(
            StatusCode::ACCEPTED,
            String::new(),
            magic_links::REQUESTED.to_owned(),
        ),
        Err(e) => sign_in_with(e.status_code(), page_error(&e), String::new()),
    }
}

#[derive(Template)]
#[template(path = "verify.html")]
struct VerifyPage {
    title: &'static str,
    nav: Option<Nav>,
    active: &'static str,
    error: String,
    notice: String,
    live: bool,
    token: String,
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// The landing page of a magic link: a button that POSTs the token. Never consumes it.
async fn verify_page(ctx: web::Data<Ctx>, q: web::Query<TokenQuery>) -> HttpResponse {
    let token = q.token.clone().unwrap_or_default();
    let live = match magic_links::peek(&ctx, &token).await {
        Ok(l) => l,
        Err(e) => return message_page(&e, "/sign-in"),
    };
    html(
        if live {
            StatusCode::OK
        } else {
            StatusCode::BAD_REQUEST
        },
        VerifyPage {
            title: "Finish signing in",
            nav: None,
            active: "",
            error: String::new(),
            notice: String::new(),
            live,
            token: if live { token } else { String::new() },
        }
        .render(),
    )
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn sign_out(
    req: HttpRequest,
    ctx: web::Data<Ctx>,
    auth: Result<FormAuth, Error>,
    form: web::Form<CsrfForm>,
) -> HttpResponse {
    let auth = match form_auth(&ctx, auth, &form.csrf, "/dashboard") {
        Ok(a) => a,
        Err(page) => return *page,
    };
    let result = sessions::logout(&ctx, &auth.principal, client_ip(&req)).await;
    match result {
        Ok(()) => HttpResponse::SeeOther()
            .cookie(session_auth::clear_cookie(&ctx.settings))
            .insert_header((header::LOCATION, "/sign-in"))
            .finish(),
        Err(e) => message_page(&e, "/dashboard"),
    }
}

#[derive(Deserialize)]
struct OrgForm {
    csrf: String,
    organization_id: String,
}

async fn switch_organization(
    req: HttpRequest,
    ctx: web::Data<Ctx>,
    auth: Result<FormAuth, Error>,
    form: web::Form<OrgForm>,
) -> HttpResponse {
    let auth = match form_auth(&ctx, auth, &form.csrf, "/dashboard") {
        Ok(a) => a,
        Err(page) => return *page,
    };
    let result = sessions::switch_organization(
        &ctx,
        &auth.principal,
        &form.organization_id,
        client_ip(&req),
    )
    .await;
    match result {
        Ok(()) => redirect("/dashboard"),
        Err(e) => message_page(&e, "/dashboard"),
    }
}

struct SessionLine {
    id: i64,
    device: String,
    address: String,
    created: String,
    last_seen: String,
    current: bool,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    title: &'static str,
    nav: Option<Nav>,
    active: &'static str,
    error: String,
    notice: String,
    csrf: String,
    username: String,
    email: String,
    organization: String,
    role: String,
    sessions: Vec<SessionLine>,
}

async fn dashboard(ctx: web::Data<Ctx>, auth: Result<Auth, Error>) -> HttpResponse {
    let auth = match gate(auth) {
        Ok(a) => a,
        Err(page) => return *page,
    };
    let result = async {
        let nav = nav_for(&ctx, &auth).await?;
        let w = sessions::whoami(&ctx, &auth.principal).await?;
        let list = sessions::list(&ctx, &auth.principal).await?;
        Ok::<_, Error>(DashboardPage {
            title: "Dashboard",
            csrf: nav.csrf.clone(),
            nav: Some(nav),
            active: "dashboard",
            error: String::new(),
            notice: String::new(),
            username: w.user.username,
            email: w.user.email.unwrap_or_else(|| "—".into()),
            organization: w.organization.map(|o| o.name).unwrap_or_else(|| "—".into()),
            role: w.role.unwrap_or_else(|| "—".into()),
            sessions: list
                .into_iter()
                .map(|s| SessionLine {
                    id: s.id,
                    device: s.device,
                    address: s.address,
                    created: fmt_time(s.created_at),
                    last_seen: fmt_time(s.last_seen_at),
                    current: s.current,
                })
                .collect(),
        })
    }
    .await;
    match result {
        Ok(p) => html(StatusCode::OK, p.render()),
        Err(e) => message_page(&e, "/sign-in"),
    }
}

async fn revoke_session(
    req: HttpRequest,
    ctx: web::Data<Ctx>,
    auth: Result<FormAuth, Error>,
    id: web::Path<i64>,
    form: web::Form<CsrfForm>,
) -> HttpResponse {
    let auth = match form_auth(&ctx, auth, &form.csrf, "/dashboard") {
        Ok(a) => a,
        Err(page) => return *page,
    };
    let result = sessions::revoke(&ctx, &auth.principal, id.into_inner(), client_ip(&req)).await;
    match result {
        Ok(()) => redirect("/dashboard"),
        Err(e) => message_page(&e, "/dashboard"),
    }
}

async fn revoke_others(
    req: HttpRequest,
    ctx: web::Data<Ctx>,
    auth: Result<FormAuth, Error>,
    form: web::Form<CsrfForm>,
) -> HttpResponse {
    let auth = match form_auth(&ctx, auth, &form.csrf, "/dashboard") {
        Ok(a) => a,
        Err(page) => return *page,
    };
    let result = sessions::revoke_others(&ctx, &auth.principal, client_ip(&req)).await;
    match result {
        Ok(_) => redirect("/dashboard"),
        Err(e) => message_page(&e, "/dashboard"),
    }
}

#[derive(Template)]
#[template(path = "keys.html")]
struct KeysPage {
    title: &'static str,
    nav: Option<Nav>,
    active: &'static str,
    error: String,
    notice: String,
    keys_user: String,
}

#[derive(Deserialize)]
struct UserQuery {
    user: Option<String>,
}

async fn keys_page(
    ctx: web::Data<Ctx>,
    auth: Result<Auth, Error>,
    q: web::Query<UserQuery>,
) -> HttpResponse {
    let auth = match gate(auth) {
        Ok(a) => a,
        Err(page) => return *page,
    };
    match nav_for(&ctx, &auth).await {
        Ok(nav) => html(
            StatusCode::OK,
            KeysPage {
                title: "API keys",
                nav: Some(nav),
                active: "keys",
                error: String::new(),
                notice: String::new(),
                keys_user: q.into_inner().user.unwrap_or_default(),
            }
            .render(),
        ),
        Err(e) => message_page(&e, "/sign-in"),
    }
}

#[derive(Template)]
#[template(path = "profile.html")]
struct ProfilePage {
    title: &'static str,
    nav: Option<Nav>,
    active: &'static str,
    error: String,
    notice: String,
    csrf: String,
    keys_user: String,
}

async fn render_profile(
    ctx: &Ctx,
    auth: &Auth,
    status: StatusCode,
    error: String,
    notice: String,
) -> HttpResponse {
    match nav_for(ctx, auth).await {
        Ok(nav) => html(
            status,
            ProfilePage {
                title: "Profile",
                csrf: nav.csrf.clone(),
                nav: Some(nav),
                active: "profile",
                error,
                notice,
                keys_user: String::new(),
            }
            .render(),
        ),
        Err(e) => message_page(&e, "/sign-in"),
    }
}

async fn profile(ctx: web::Data<Ctx>, auth: Result<Auth, Error>) -> HttpResponse {
    let auth = match gate(auth) {
        Ok(a) => a,
        Err(page) => return *page,
    };
    render_profile(&ctx, &auth, StatusCode::OK, String::new(), String::new()).await
}

#[derive(Deserialize)]
struct PasswordChangeForm {
    csrf: String,
    current: String,
    new: String,
    confirm: String,
}

async fn change_password(
    req: HttpRequest,
    ctx: web::Data<Ctx>,
    auth: Result<FormAuth, Error>,
    form: web::Form<PasswordChangeForm>,
) -> HttpResponse {
    let form = form.into_inner();
    let auth = match form_auth(&ctx, auth, &form.csrf, "/profile") {
        Ok(a) => a,
        Err(page) => return *page,
    };
    let result = async {
        let uid = auth.principal.require_user()?;
        if form.new != form.confirm {
            return Err(Error::bad_request("The two new passwords differ"));
        }
        let name = auth.principal.username.clone().unwrap_or_default();
        users::authenticate(&ctx, &name, &Password::new(form.current), client_ip(&req))
            .await
            .map_err(|e| match e {
                Error::Unauthenticated(_) => Error::bad_request("The current password is wrong"),
                other => other,
            })?;
        let keep = sessions::session_id(&auth.principal).ok();
        users::set_password(&ctx, uid, &Password::new(form.new), keep).await
    }
    .await;
    match result {
        Ok(()) => {
            render_profile(
                &ctx,
                &auth,
                StatusCode::OK,
                String::new(),
                "Password changed. Your other sessions have been signed out.".into(),
            )
            .await
        }
        Err(e) => render_profile(&ctx, &auth, e.status_code(), page_error(&e), String::new()).await,
    }
}

struct UserLine {
    id: i64,
    username: String,
    email: String,
    is_admin: bool,
    disabled: bool,
    last_login: String,
    is_self: bool,
}

#[derive(Template)]
#[template(path = "admin_users.html")]
struct UsersPage {
    title: &'static str,
    nav: Option<Nav>,
    active: &'static str,
    error: String,
    notice: String,
    csrf: String,
    can_manage: bool,
    users: Vec<UserLine>,
}

async fn render_users(
    ctx: &Ctx,
    auth: &Auth,
    status: StatusCode,
    error: String,
    notice: String,
) -> HttpResponse {
    let result = async {
        if !auth.principal.has_permission("users.manage") {
            auth.principal.require("users.view")?;
        }
        let nav = nav_for(ctx, auth).await?;
        let list = users::list(ctx, 1_000, 0).await?;
        let me = auth.principal.user_id;
        Ok::<_, Error>(UsersPage {
            title: "Users",
            csrf: nav.csrf.clone(),
            nav: Some(nav),
            active: "users",
            error,
            notice,
            can_manage: auth.principal.has_permission("users.manage"),
            users: list
                .into_iter()
                .map(|u| UserLine {
                    is_self: Some(u.id) == me,
                    id: u.id,
                    username: u.username,
                    email: u.email.unwrap_or_else(|| "—".into()),
                    is_admin: u.is_admin,
                    disabled: u.disabled,
                    last_login: u
                        .last_login_at
                        .map(fmt_time)
                        .unwrap_or_else(|| "never".into()),
                })
                .collect(),
        })
    }
    .await;
    match result {
        Ok(p) => html(status, p.render()),
        Err(e) => message_page(&e, "/dashboard"),
    }
}

async fn admin_users(ctx: web::Data<Ctx>, auth: Result<Auth, Error>) -> HttpResponse {
    let auth = match gate(auth) {
        Ok(a) => a,
        Err(page) => return *page,
    };
    render_users(&ctx, &auth, StatusCode::OK, String::new(), String::new()).await
}

#[derive(Deserialize)]
struct NewUserForm {
    csrf: String,
    username: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    is_admin: Option<String>,
}

async fn admin_create_user(
    req: HttpRequest,
    ctx: web::Data<Ctx>,
    auth: Result<FormAuth, Error>,
    form: web::Form<NewUserForm>,
) -> HttpResponse {
    let form = form.into_inner();
    let auth = match form_auth(&ctx, auth, &form.csrf, "/admin/users") {
        Ok(a) => a,
        Err(page) => return *page,
    };
    let result = async {
        auth.principal.require("users.manage")?;
        let email = match form.email.trim() {
            "" => None,
            e => Some(Email::parse(e)?),
        };
        let password = match form.password.as_str() {
            "" => None,
            p => Some(Password::new(p.to_owned())),
        };
        let u = users::create(
            &ctx,
            users::NewUser {
                username: Username::parse(&form.username)?,
                email,
                password,
                is_admin: form.is_admin.is_some(),
                permissions: Vec::new(),
            },
        )
        .await?;
        ctx.audit.record(
            "user.created",
            true,
            crate::services::audit::Detail {
                actor: auth.principal.username.clone(),
                tenant_id: auth.principal.tenant_id.clone(),
                ip: client_ip(&req),
                detail: Some(format!("created {}", u.username)),
            },
        );
        Ok::<_, Error>(u)
    }
    .await;
    match result {
        Ok(u) => {
            render_users(
                &ctx,
                &auth,
                StatusCode::OK,
                String::new(),
                format!("User {} created.", u.username),
            )
            .await
        }
        Err(e) => render_users(&ctx, &auth, e.status_code(), page_error(&e), String::new()).await,
    }
}

async fn admin_set_disabled(
    req: HttpRequest,
    ctx: web::Data<Ctx>,
    auth: Result<FormAuth, Error>,
    path: web::Path<(i64, String)>,
    form: web::Form<CsrfForm>,
) -> HttpResponse {
    let auth = match form_auth(&ctx, auth, &form.csrf, "/admin/users") {
        Ok(a) => a,
        Err(page) => return *page,
    };
    let (id, action) = path.into_inner();
    let result = async {
        auth.principal.require("users.manage")?;
        let disable = match action.as_str() {
            "disable" => true,
            "enable" => false,
            _ => return Err(Error::not_found("Not found")),
        };
        if disable && Some(id) == auth.principal.user_id {
            return Err(Error::bad_request("You cannot disable yourself"));
        }
        let u = users::set_disabled(&ctx, id, disable).await?;
        ctx.audit.record(
            if disable {
                "user.disabled"
            } else {
                "user.enabled"
            },
            true,
            crate::services::audit::Detail {
                actor: auth.principal.username.clone(),
                tenant_id: auth.principal.tenant_id.clone(),
                ip: client_ip(&req),
                detail: Some(format!("target {}", u.username)),
            },
        );
        Ok::<_, Error>(u)
    }
    .await;
    match result {
        Ok(u) => {
            let what = if u.disabled { "disabled" } else { "enabled" };
            render_users(
                &ctx,
                &auth,
                StatusCode::OK,
                String::new(),
                format!("User {} {what}.", u.username),
            )
            .await
        }
        Err(e) => render_users(&ctx, &auth, e.status_code(), page_error(&e), String::new()).await,
    }
}

struct AuditLine {
    at: String,
    event: String,
    success: bool,
    actor: String,
    tenant: String,
    ip: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    title: &'static str,
    nav: Option<Nav>,
    active: &'static str,
    error: String,
    notice: String,
    events: Vec<AuditLine>,
    older: Option<i64>,
}

#[derive(Deserialize)]
struct BeforeQuery {
    before: Option<i64>,
}

async fn audit_page(
    ctx: web::Data<Ctx>,
    auth: Result<Auth, Error>,
    q: web::Query<BeforeQuery>,
) -> HttpResponse {
    let auth = match gate(auth) {
        Ok(a) => a,
        Err(page) => return *page,
    };
    let result = async {
        auth.principal.require("audit.view")?;
        let nav = nav_for(&ctx, &auth).await?;
        let events = ctx.audit.list(None, 100, q.before).await?;
        let older = (events.len() == 100)
            .then(|| events.last().map(|e| e.id))
            .flatten();
        let dash = |s: Option<String>| s.unwrap_or_else(|| "—".into());
        Ok::<_, Error>(AuditPage {
            title: "Audit log",
            nav: Some(nav),
            active: "audit",
            error: String::new(),
            notice: String::new(),
            older,
            events: events
                .into_iter()
                .map(|e| AuditLine {
                    at: fmt_time(e.at),
                    success: e.outcome == "success",
                    event: e.event,
                    actor: dash(e.actor),
                    tenant: dash(e.tenant_id),
                    ip: dash(e.ip),
                    detail: dash(e.detail),
                })
                .collect(),
        })
    }
    .await;
    match result {
        Ok(p) => html(StatusCode::OK, p.render()),
        Err(e) => message_page(&e, "/dashboard"),
    }
}
