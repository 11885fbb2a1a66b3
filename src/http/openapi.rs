//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` annotations, and
//! Swagger UI (vendored assets) at `/api/swagger/`.
//!
//! Each HTTP module that adds endpoints declares its own `#[derive(OpenApi)]` list and is
//! merged in [`document`], so the document always covers every JSON route. Two security
//! schemes: `bearer` (a JWT access token, or any Gatehouse token, as `Authorization: Bearer`)
//! and `api_key` (`X-API-Key: K`; `Authorization: ApiKey K` is accepted too). Swagger UI's
//! Authorize dialog fills in either. Its page needs inline styles, so `/api/swagger/` alone gets
//! a CSP with `style-src 'unsafe-inline'`; scripts stay `'self'` only.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};
use utoipa::openapi::schema::{Object, Schema};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::RefOr;
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::{Config, SwaggerUi};

use super::{accounts, health, jwks, HttpState};
use crate::config::Settings;
use crate::error::{ErrorBody, ErrorDetail};
use crate::services::Ctx;

/// Adds the two security schemes.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access JWT from POST /api/accounts/token/ (any Gatehouse credential \
                         is accepted as a Bearer token too)",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-Key",
                "An API key (sk_live_…, sk_test_…, pk_live_…, pk_test_…) in X-API-Key; \
                 `Authorization: ApiKey <key>` is accepted as well",
            ))),
        );
    }
}

/// The operations part of the document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Gatehouse",
        description = "Self-hosted authentication appliance: API keys, JWTs, sessions, portal tokens and a zero-knowledge handshake sign-in. Every error has the shape {\"error\": {\"code\": <status>, \"message\": \"…\"}}."
    ),
    paths(health::healthz, health::metrics, openapi_json),
    components(schemas(ErrorBody, ErrorDetail, health::Health)),
    modifiers(&SecuritySchemes)
)]
pub struct ApiDoc;

/// The whole document, with the rules this server's configuration sets.
pub fn document(settings: &Settings) -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(super::browser::BrowserApi::openapi());
    doc.merge(accounts::AccountsApi::openapi());
    doc.merge(jwks::JwksApi::openapi());
    doc.merge(super::handshake::HandshakeApi::openapi());
    doc.merge(super::keys::KeysApi::openapi());
    doc.merge(super::verify::VerifyApi::openapi());
    document_common_failures(&mut doc);
    document_configured_rules(&mut doc, settings);
    unique_operation_ids(&mut doc);
    doc
}

/// One handler documented for several methods (forward-auth) gets its one operation id on
/// each; OpenAPI asks for unique ids, so every method after the first gets `_<method>` added.
fn unique_operation_ids(doc: &mut utoipa::openapi::OpenApi) {
    let mut seen = std::collections::HashSet::new();
    for item in doc.paths.paths.values_mut() {
        let ops = [
            ("get", &mut item.get),
            ("post", &mut item.post),
            ("put", &mut item.put),
            ("patch", &mut item.patch),
            ("delete", &mut item.delete),
        ];
        for (method, op) in ops {
            let Some(id) = op.as_mut().and_then(|o| o.operation_id.as_mut()) else {
                continue;
            };
            if !seen.insert(id.clone()) {
                id.push('_');
                id.push_str(method);
                seen.insert(id.clone());
            }
        }
    }
}

/// A property of a component schema, when both are plain objects.
fn property_mut<'a>(
    doc: &'a mut utoipa::openapi::OpenApi,
    schema: &str,
    field: &str,
) -> Option<&'a mut Object> {
    let schemas = &mut doc.components.as_mut()?.schemas;
    let RefOr::T(Schema::Object(object)) = schemas.get_mut(schema)? else {
        return None;
    };
    match object.properties.get_mut(field)? {
        RefOr::T(Schema::Object(property)) => Some(property),
        _ => None,
    }
}

/// States the input rules that come from the configuration: the plans a key may name and the
/// password lengths (strength, judged by zxcvbn, is beyond a schema).
fn document_configured_rules(doc: &mut utoipa::openapi::OpenApi, settings: &Settings) {
    if let Some(plan) = property_mut(doc, "CreateKeyRequest", "plan") {
        let names = settings
            .plans
            .keys()
            .map(|p| serde_json::Value::from(p.as_str()));
        plan.enum_values = Some(names.chain([serde_json::Value::Null]).collect());
    }
    for schema in ["CreateUser", "UpdateUser"] {
        if let Some(password) = property_mut(doc, schema, "password") {
            password.min_length = Some(settings.password.min_length);
            password.max_length = Some(settings.password.max_length);
        }
    }
}

/// Adds the failures every operation of a kind can answer with, where its own annotation does
/// not list them: 400 for an operation that takes a credential (a malformed one is refused with
/// `Failed to verify api_key or token` before the handler runs) or a body, and 415 for one that
/// takes a JSON body (`Content-Type must be application/json`).
fn document_common_failures(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    let error = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build()
    };
    for item in doc.paths.paths.values_mut() {
        let ops = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ];
        for op in ops.into_iter().flatten() {
            let credential = op.security.as_ref().is_some_and(|s| !s.is_empty());
            let body = op.request_body.as_ref();
            let json = body.is_some_and(|b| b.content.contains_key("application/json"));
            let responses = &mut op.responses.responses;
            if credential || body.is_some() {
                responses.entry("400".into()).or_insert_with(|| {
                    error("A malformed credential or an invalid request").into()
                });
            }
            if json {
                responses
                    .entry("415".into())
                    .or_insert_with(|| error("The body is not `application/json`").into());
            }
        }
    }
}

/// This OpenAPI 3.1 document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json")))]
pub async fn openapi_json(ctx: web::Data<Ctx>, state: web::Data<HttpState>) -> HttpResponse {
    let body = state.openapi.get_or_init(|| {
        document(&ctx.settings)
            .to_json()
            .unwrap_or_else(|_| String::from("{}"))
    });
    HttpResponse::Ok()
        .content_type("application/json")
        .body(body.clone())
}

/// CSP for the Swagger UI page: as strict as the rest, except inline styles.
const SWAGGER_CSP: &str =
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
     form-action 'self'; object-src 'none'";

async fn swagger_csp(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let mut res = next.call(req).await?;
    res.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(SWAGGER_CSP),
    );
    Ok(res)
}

async fn swagger_redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "/api/swagger/"))
        .finish()
}

/// Registers `/api/openapi.json` and Swagger UI under `/api/swagger/`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/api/openapi.json").get(openapi_json))
        .service(web::resource("/api/swagger").get(swagger_redirect))
        .service(
            web::scope("/api/swagger")
                .wrap(actix_web::middleware::from_fn(swagger_csp))
                .service(
                    SwaggerUi::new("/{_:.*}").config(
                        // No persistAuthorization: credentials typed into the Authorize
                        // dialog must not outlive the tab in localStorage.
                        Config::new(["/api/openapi.json"])
                            .validator_url("none")
                            .try_it_out_enabled(true),
                    ),
                ),
        );
}
