//! The OpenAPI 3.1 document and Swagger UI: every route is documented (and nothing else), the
//! document validates with `openapi-spec-validator`, both security schemes exist, and Swagger
//! UI is served from vendored assets with its CSP exception scoped to `/api/swagger/`.

use std::collections::BTreeSet;

use gatehouse::http::routes::{GET_WITH_EFFECTS, ROUTES};
use serde_json::{json, Value};

use crate::helpers::*;

async fn document(app: &TestApp) -> Value {
    let r = app
        .client
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    r.json().await.unwrap()
}

/// A request of `method` (as `ROUTES` spells it) to `url`.
fn request(app: &TestApp, method: &str, url: &str) -> reqwest::RequestBuilder {
    match method {
        "get" => app.client.get(url),
        "post" => app.client.post(url),
        "patch" => app.client.patch(url),
        "put" => app.client.put(url),
        "delete" => app.client.delete(url),
        other => panic!("unexpected method {other}"),
    }
}

/// Runs `python3 ARGS FILE` and asserts it succeeds, showing its output (after `context`) if not.
fn python_accepts(args: &[&str], file: &std::path::Path, install: &str, context: &str) {
    let out = std::process::Command::new("python3")
        .args(args)
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("python3 ({install}): {e}"));
    assert!(
        out.status.success(),
        "{context}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Checks `samples` (each with its `schema` and `call`) with Python's `jsonschema`: `per_sample`
/// is Python run for each sample `s` with its `validator`, appending what fails to `bad`.
fn check_with_jsonschema(
    app: &TestApp,
    doc: &Value,
    samples: Vec<Value>,
    per_sample: &str,
    context: &str,
) {
    let file = app.dir.path().join("samples.json");
    let all = json!({ "components": doc["components"], "samples": samples });
    std::fs::write(&file, serde_json::to_vec(&all).unwrap()).unwrap();
    let script = r#"
import json, sys
from jsonschema import Draft202012Validator
doc = json.load(open(sys.argv[1]))
bad = []
for s in doc["samples"]:
    validator = Draft202012Validator(dict(s["schema"], components=doc["components"]))
PER_SAMPLE
print("\n".join(bad))
sys.exit(1 if bad else 0)
"#
    .replace("PER_SAMPLE", per_sample);
    python_accepts(
        &["-c", &script],
        &file,
        "jsonschema: pip install openapi-spec-validator",
        context,
    );
}

#[tokio::test]
async fn every_route_is_served_and_documented_and_nothing_else() {
    let app = spawn().await;
    let doc = document(&app).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                documented.insert((method.to_owned(), path.clone()));
            }
        }
    }
    let registered: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(
        registered.difference(&documented).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "registered but not documented"
    );
    assert_eq!(
        documented.difference(&registered).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "documented but not registered"
    );
    // Each listed route really is served: neither the fallback 404 nor a 405.
    for (method, path) in ROUTES {
        let req = request(&app, method, &app.url(&path.replace("{id}", "1")));
        let req = match *method {
            "post" | "patch" | "put" => req.json(&json!({})),
            _ => req,
        };
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let body = r.text().await.unwrap();
        assert_ne!(status, 405, "{method} {path}");
        assert!(
            !(status == 404 && body.contains("\"Not found\"")),
            "{method} {path} is not routed"
        );
    }
    // Authenticated operations declare both schemes and document 401.
    let op = &doc["paths"]["/api/accounts/users/"]["get"];
    let schemes: Vec<String> = op["security"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s.as_object().unwrap().keys().cloned())
        .collect();
    assert_eq!(schemes, vec!["bearer", "api_key"]);
    assert!(op["responses"].get("401").is_some());
    assert!(op["responses"].get("403").is_some());
    let sec = &doc["components"]["securitySchemes"];
    assert_eq!(sec["bearer"]["type"], "http");
    assert_eq!(sec["bearer"]["scheme"], "bearer");
    assert_eq!(sec["bearer"]["bearerFormat"], "JWT");
    assert_eq!(sec["api_key"]["type"], "apiKey");
    assert_eq!(sec["api_key"]["in"], "header");
    assert_eq!(sec["api_key"]["name"], "X-API-Key");
    assert!(sec["api_key"]["description"]
        .as_str()
        .unwrap()
        .contains("Authorization: ApiKey"));
    // The error shape is a schema the error responses point at.
    assert!(doc["components"]["schemas"].get("ErrorBody").is_some());
    assert!(doc["components"]["schemas"].get("TokenPairBody").is_some());
}

/// A method a path does not serve gets 405 in the error shape with `Allow` naming the ones it
/// does, on every documented route and on the pages, never the 404 of an unknown path; a path
/// that serves GET serves HEAD too: GET's status and headers, no body.
#[tokio::test]
async fn a_method_a_path_does_not_serve_is_405_with_allow_and_get_brings_head() {
    let app = spawn().await;
    let mut served: std::collections::BTreeMap<&str, BTreeSet<String>> = Default::default();
    for (method, path) in ROUTES {
        served
            .entry(path)
            .or_default()
            .insert(method.to_uppercase());
    }
    for page in [
        "/",
        "/sign-in",
        "/dashboard",
        "/admin/users",
        "/static/app.css",
    ] {
        served.entry(page).or_default().insert("GET".into());
    }
    for page in ["/sign-in", "/sign-out", "/organization", "/admin/users"] {
        served.entry(page).or_default().insert("POST".into());
    }
    for (path, methods) in served.iter_mut() {
        if methods.contains("GET") && !GET_WITH_EFFECTS.contains(path) {
            methods.insert("HEAD".into());
        }
    }
    let mut heads = 0;
    for (path, methods) in &served {
        let url = app.url(
            &path
                .replace("{id}", "1")
                .replace("{name}", "n")
                .replace("{path}", "app/x"),
        );
        let url = url
            .replace("{brand_id}", "brd_x")
            .replace("{action}", "disable");
        for other in ["PUT", "PATCH", "TRACE", "HEAD"] {
            if methods.contains(other) {
                continue;
            }
            let m = reqwest::Method::from_bytes(other.as_bytes()).unwrap();
            let r = app.client.request(m, &url).send().await.unwrap();
            let allow: BTreeSet<String> = r
                .headers()
                .get("allow")
                .map(|v| v.to_str().unwrap().split(", ").map(str::to_owned).collect())
                .unwrap_or_default();
            assert_eq!(r.status(), 405, "{other} {path}");
            assert_eq!(&allow, methods, "Allow of {path}");
            if other != "HEAD" {
                assert_eq!(error_message(r, 405).await, "Method not allowed");
            }
        }
        if methods.contains("HEAD") {
            let get = app.client.get(&url).send().await.unwrap();
            let head = app.client.head(&url).send().await.unwrap();
            assert_eq!(head.status(), get.status(), "HEAD {path}");
            for name in ["content-type", "cache-control", "content-security-policy"] {
                assert_eq!(
                    head.headers().get(name),
                    get.headers().get(name),
                    "{name} of HEAD {path}"
                );
            }
            assert!(
                head.bytes().await.unwrap().is_empty(),
                "HEAD {path} sent a body"
            );
            heads += 1;
        }
    }
    assert!(heads >= 20, "only {heads} paths serve GET");
    // A HEAD of `GET /keys/new` would make a key whose secret no one sees: it is refused.
    app.create_user("agent", STRONG_PASSWORD, false).await;
    let key = crate::keys::new_key(&app, "agent", |_| {}).await;
    let listed = || async {
        let r = app.client.get(app.url("/keys")).header("X-API-Key", &key);
        let v: Value = r.send().await.unwrap().json().await.unwrap();
        v["apiKeys"].as_array().unwrap().len()
    };
    let before = listed().await;
    let r = app
        .client
        .head(app.url("/keys/new"))
        .header("X-API-Key", &key);
    assert_eq!(r.send().await.unwrap().status(), 405);
    assert_eq!(listed().await, before);
    let r = app
        .client
        .get(app.url("/keys/new"))
        .header("X-API-Key", &key);
    assert_eq!(r.send().await.unwrap().status(), 200);
    assert_eq!(listed().await, before + 1);
}

#[tokio::test]
async fn the_document_validates_against_the_openapi_schema() {
    let app = spawn().await;
    let doc = document(&app).await;
    let file = app.dir.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    python_accepts(
        &["-m", "openapi_spec_validator"],
        &file,
        "pip install openapi-spec-validator",
        "",
    );
}

/// Real answers match what the document says of them: every status a call gets is documented
/// for its operation, and every JSON body validates against the schema documented for that
/// status (JSON Schema 2020-12, checked by Python's `jsonschema`, which `openapi-spec-validator`
/// brings). Two schemas of one name are one entry in the document, so a clash (the handshake's
/// and the browser's `SessionInfo` were one) fails here; so does an answer the schema omits
/// (`/api/verify`'s `valid: false`).
#[tokio::test]
async fn real_answers_match_their_documented_schemas() {
    let app = spawn().await;
    let admin = app.create_user("root", STRONG_PASSWORD, true).await;
    let key = crate::keys::new_key(&app, "root", |_| {}).await;
    let doc = document(&app).await;
    let id = admin.to_string();
    // (method, documented route, path called, body)
    let mut calls: Vec<(&str, &str, String, Option<Value>)> = ROUTES
        .iter()
        .filter(|(m, p)| *m == "get" && !["/api/openapi.json", "/metrics"].contains(p))
        .map(|(_, p)| {
            let path = p.replace("{id}", &id).replace("{name}", "nope");
            ("get", *p, path, None)
        })
        .collect();
    let unknown = gatehouse::crypto::tokens::new_api_key("sk_live_");
    let verify = |token: &str| {
        (
            "post",
            "/api/verify",
            "/api/verify".into(),
            Some(json!({ "token": token })),
        )
    };
    calls.extend([
        verify(&key),
        verify(&crate::keys::typo(&key)),
        verify(unknown.expose()),
        (
            "post",
            "/api/verify",
            "/api/verify".into(),
            Some(json!({ "tok": 1 })),
        ),
        (
            "post",
            "/v1/api-keys",
            "/v1/api-keys".into(),
            Some(json!({ "name": "doc" })),
        ),
        (
            "post",
            "/v1/api-keys",
            "/v1/api-keys".into(),
            Some(json!({ "name": "" })),
        ),
        (
            "delete",
            "/v1/api-keys/{id}",
            "/v1/api-keys/999999".into(),
            None,
        ),
        (
            "get",
            "/v1/api-keys",
            "/v1/api-keys?user=nobody".into(),
            None,
        ),
        (
            "post",
            "/v1/api-keys",
            "/v1/api-keys".into(),
            Some(json!({ "name": "x", "user": "nobody" })),
        ),
        (
            "get",
            "/api/accounts/api-keys/",
            "/api/accounts/api-keys/?user=nobody".into(),
            None,
        ),
        (
            "post",
            "/api/accounts/api-keys/",
            "/api/accounts/api-keys/".into(),
            Some(json!({ "name": "doc2" })),
        ),
    ]);
    let mut samples = Vec::new();
    for (method, pattern, path, body) in &calls {
        let req = request(&app, method, &app.url(path));
        let req = match body {
            Some(b) => req.json(b),
            None => req,
        };
        let r = req.header("X-API-Key", &key).send().await.unwrap();
        let status = r.status().as_u16().to_string();
        let json_body = r
            .headers()
            .get("content-type")
            .is_some_and(|v| v.to_str().unwrap_or("").starts_with("application/json"));
        let text = r.text().await.unwrap();
        let op = &doc["paths"][*pattern][*method];
        let documented = &op["responses"][&status];
        assert!(
            documented.is_object(),
            "{method} {path} answered {status}, which its operation does not document: {text}"
        );
        let schema = &documented["content"]["application/json"]["schema"];
        if json_body && schema.is_object() {
            let answer: Value = serde_json::from_str(&text).unwrap();
            samples.push(json!({
                "call": format!("{method} {path} -> {status}"),
                "schema": schema,
                "answer": answer,
            }));
        }
    }
    // Every operation that takes a credential documents what a malformed one gets, and every
    // one that takes a JSON body what a body of another type gets.
    let mut probed = 0;
    for (method, pattern) in ROUTES {
        let op = &doc["paths"][*pattern][*method];
        let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
        let json_body = op["requestBody"]["content"]
            .get("application/json")
            .is_some();
        let url = app.url(&pattern.replace("{id}", "999999").replace("{name}", "nope"));
        let req = |key: &str| request(&app, method, &url).header("X-API-Key", key);
        let mut probes = Vec::new();
        if secured {
            probes.push(("a malformed credential", req("sk_live_malformed")));
        }
        if json_body {
            let plain = req(&key).header("content-type", "text/plain").body("{}");
            probes.push(("a text/plain body", plain));
        }
        for (what, probe) in probes {
            let status = probe.send().await.unwrap().status().as_u16().to_string();
            assert!(
                op["responses"][&status].is_object(),
                "{method} {pattern} with {what} answered {status}, which it does not document"
            );
            probed += 1;
        }
    }
    assert!(probed >= 40, "only {probed} probes");
    assert!(
        samples.len() >= 20,
        "only {} JSON answers checked",
        samples.len()
    );
    check_with_jsonschema(
        &app,
        &doc,
        samples,
        r#"
    for e in validator.iter_errors(s["answer"]):
        bad.append(f'{s["call"]}: {e.message} at {list(e.absolute_path)}')
"#,
        "answers that do not match the document:\n",
    );
}

/// A field or query parameter the server checks, and values on both sides of its rule.
struct Rule {
    method: &'static str,
    /// The documented route.
    route: &'static str,
    /// The path called.
    path: String,
    /// The rest of a valid body (`Null` for a query parameter or a path segment).
    base: Value,
    /// Where the value goes.
    at: At,
    /// Values the server refuses with 400.
    refused: Vec<Value>,
    /// Values the server takes (any answer but 400: the call may still be refused for
    /// who makes it, or find nothing).
    accepted: Vec<Value>,
}

#[derive(Clone, Copy)]
enum At {
    Body(&'static str),
    Query(&'static str),
    /// The path's `{name}` segment (percent-encoded).
    Path(&'static str),
}

fn rule(
    method: &'static str,
    route: &'static str,
    path: &str,
    base: Value,
    at: At,
    refused: Vec<Value>,
    accepted: Vec<Value>,
) -> Rule {
    Rule {
        method,
        route,
        path: path.to_owned(),
        base,
        at,
        refused,
        accepted,
    }
}

/// The schema the document gives a rule's value: the request body's property (through its
/// `$ref`) or the parameter's.
fn documented_schema(doc: &Value, r: &Rule) -> Value {
    let op = &doc["paths"][r.route][r.method];
    let schema = match r.at {
        At::Body(field) => {
            let body = &op["requestBody"]["content"]["application/json"]["schema"];
            let body = match body["$ref"].as_str() {
                Some(name) => &doc["components"]["schemas"][name.rsplit('/').next().unwrap()],
                None => body,
            };
            body["properties"][field].clone()
        }
        At::Query(name) | At::Path(name) => op["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .map(|p| p["schema"].clone())
            .unwrap_or(Value::Null),
    };
    assert!(
        schema.is_object(),
        "{} {} documents no schema for {}",
        r.method,
        r.route,
        match r.at {
            At::Body(n) | At::Query(n) | At::Path(n) => n,
        }
    );
    schema
}

/// Every input rule a request schema states is the server's: a value the server refuses with
/// 400 the documented schema refuses too, and a value the server takes the schema accepts. A
/// client (or a generator such as schemathesis) that follows the document is then never
/// refused for the shape of what it sends. The values straddle each rule's edges: lengths, the
/// characters allowed, the formats of ids, e-mail addresses, base64url keys and lifetimes.
#[tokio::test]
async fn documented_input_rules_are_the_servers() {
    let app = spawn().await;
    app.create_user("root", STRONG_PASSWORD, true).await;
    app.create_user("plain", STRONG_PASSWORD, false).await;
    let plain = app.create_user("plain2", STRONG_PASSWORD, false).await;
    let key = crate::keys::new_key(&app, "root", |_| {}).await;
    let doc = document(&app).await;
    let s = |v: &str| json!(v);
    let x = |n: usize| json!("x".repeat(n));
    let key32 = gatehouse::crypto::b64(&[7u8; 32]);
    let refused_emails = || {
        [
            "",
            "a",
            "a@b",
            "@b.co",
            "a@.b.co",
            "a@b.co.",
            "a@b@c.co",
            "a b@c.co",
            "a@b\u{7}.co",
        ]
        .map(s)
        .to_vec()
    };
    let accepted_emails = || {
        ["a@b.co", "first.last+tag@example.org", "ü@exämple.de"]
            .map(s)
            .to_vec()
    };
    let other_tenant = "ten_0123456789abcdef";
    let refused_tenants = || {
        [
            "",
            "default",
            "ten_0123",
            "ten_0123456789ABCDEF",
            "ten_0123456789abcdefa",
        ]
        .map(s)
        .to_vec()
    };
    let m1 = gatehouse::crypto::b64(&[9u8; 48]);
    // A rule of a POST body, the route being the path.
    let post = |route: &'static str, base: Value| {
        move |field, refused, accepted| {
            rule(
                "post",
                route,
                route,
                base.clone(),
                At::Body(field),
                refused,
                accepted,
            )
        }
    };
    let new_key = post("/v1/api-keys", json!({"name": "k"}));
    let user = post("/api/accounts/users/", json!({"username": "pw.user"}));
    let patch_user = |field, refused, accepted| {
        let path = format!("/api/accounts/users/{plain}/");
        let route = "/api/accounts/users/{id}/";
        rule(
            "patch",
            route,
            &path,
            json!({}),
            At::Body(field),
            refused,
            accepted,
        )
    };
    let portal = |field, refused, accepted| {
        let (route, path) = (
            "/v1/brands/{brand_id}/portal/token",
            "/v1/brands/brd_x/portal/token",
        );
        let base = json!({"customerEmail": "c@d.co"});
        rule(
            "post",
            route,
            path,
            base,
            At::Body(field),
            refused,
            accepted,
        )
    };
    let tenant = post(
        "/api/tenants",
        json!({"name": "Keyed", "public_key": key32}),
    );
    let begin = post(
        "/api/session",
        json!({"tenant_id": other_tenant, "message": m1}),
    );
    let query = |route: &'static str, name, refused, accepted| {
        rule(
            "get",
            route,
            route,
            Value::Null,
            At::Query(name),
            refused,
            accepted,
        )
    };
    let bad_key32 = || {
        vec![
            s(""),
            s("abc"),
            json!(format!("{}B", "A".repeat(42))),
            json!(key32[..42].to_owned()),
        ]
    };
    let rules = vec![
        new_key(
            "name",
            vec![s(""), s("   "), s("a\u{7}b"), s("a\u{85}b"), x(101)],
            vec![s("k"), s(" spaced name "), json!("é".repeat(100))],
        ),
        new_key(
            "mode",
            vec![s(""), s("prod"), s("LIVE")],
            vec![s("live"), s("test"), Value::Null],
        ),
        new_key(
            "scopes",
            vec![
                json!([""]),
                json!(["a b"]),
                json!(["x".repeat(65)]),
                json!(vec!["s"; 33]),
            ],
            vec![
                json!([]),
                json!(["read", "a.b:c_d-e*/f"]),
                json!(vec!["s"; 32]),
            ],
        ),
        new_key("tenant_id", refused_tenants(), vec![s(other_tenant)]),
        new_key(
            "user",
            vec![s(""), s("a b"), x(65), s("é")],
            vec![s("plain"), s("nobody.else_-@x")],
        ),
        new_key(
            "plan",
            vec![s(""), s("platinum"), s("Free")],
            vec![s("free"), s("pro"), Value::Null],
        ),
        query(
            "/v1/api-keys",
            "user",
            vec![s(""), s("a b"), x(65)],
            vec![s("root"), x(64)],
        ),
        rule(
            "post",
            "/v1/api-keys/{id}/roll",
            "/v1/api-keys/999999/roll",
            json!({}),
            At::Body("expire_old_in"),
            vec![json!(2_592_001), json!(-1), json!(1.5)],
            vec![json!(0), json!(2_592_000)],
        ),
        query(
            "/keys/new",
            "name",
            vec![s(""), s(" "), x(101)],
            vec![s("from the agent"), x(100)],
        ),
        user(
            "username",
            vec![s(""), s("a b"), x(65), s("é")],
            vec![s("new.user_1-x@y"), x(64)],
        ),
        user(
            "password",
            vec![
                s("short"),
                json!(format!("{STRONG_PASSWORD} {}", "x".repeat(1000))),
            ],
            vec![s(STRONG_PASSWORD)],
        ),
        patch_user("email", refused_emails(), accepted_emails()),
        patch_user(
            "permissions",
            vec![json!(["nope"]), json!(["users.view", "admin"])],
            vec![json!(["users.view", "audit.view"]), json!([])],
        ),
        post("/v1/auth/magic-link", json!({}))("email", refused_emails(), accepted_emails()),
        post("/v1/auth/verify", json!({}))(
            "token",
            vec![
                s(""),
                s("ml_short"),
                json!(format!("mx_{}", "a".repeat(43))),
                json!(format!("ml_{}", "-".repeat(43))),
            ],
            vec![json!(format!("ml_{}", "aZ9".repeat(14) + "q"))],
        ),
        post("/v1/auth/session/organization", json!({}))(
            "organization_id",
            refused_tenants(),
            vec![s(other_tenant)],
        ),
        post("/v1/brands", json!({}))(
            "name",
            vec![s(""), s(" - "), x(101)],
            vec![s("Acme"), json!(format!("b{}", "é".repeat(99)))],
        ),
        portal("customerEmail", refused_emails(), accepted_emails()),
        portal(
            "expiresIn",
            vec![
                s(""),
                s("0m"),
                s("10"),
                s("5w"),
                s("-5m"),
                s("1.5h"),
                s("h"),
            ],
            vec![s("30m"), s("24h"), s("7d"), s("90s"), s("007d")],
        ),
        portal("customerName", vec![x(201)], vec![x(200), s("")]),
        tenant(
            "name",
            vec![s(""), s(" - "), x(101)],
            vec![s("Tenant A"), json!(format!("t{}", "é".repeat(99)))],
        ),
        tenant(
            "public_key",
            [
                bad_key32(),
                vec![json!(format!("{key32}A")), json!(format!("{key32}="))],
            ]
            .concat(),
            vec![s(&key32), json!(format!("{}w", "A".repeat(42)))],
        ),
        post("/api/session/rotate-key", json!({"public_key": key32}))(
            "wrapping_key",
            bad_key32(),
            vec![s(&key32)],
        ),
        begin("tenant_id", refused_tenants(), vec![s(other_tenant)]),
        begin(
            "message",
            vec![
                s(""),
                x(63),
                x(65),
                s(&"!".repeat(64)),
                json!(gatehouse::crypto::b64(&[9u8; 47])),
            ],
            vec![s(&m1)],
        ),
        post(
            "/api/session/confirm",
            json!({"handshake_id": "hs_unknown"}),
        )(
            "message",
            vec![
                s(""),
                x(127),
                s(&"!".repeat(128)),
                json!(gatehouse::crypto::b64(&[9u8; 95])),
            ],
            vec![json!(gatehouse::crypto::b64(&[9u8; 96]))],
        ),
        post("/api/runs", json!({}))(
            "workflow",
            vec![s(""), s("a b"), x(65), s("ä")],
            vec![s("build.main_1-x"), x(64)],
        ),
        rule(
            "get",
            "/api/secrets/{name}",
            "/api/secrets/{name}",
            Value::Null,
            At::Path("name"),
            vec![s("a b"), x(129), s("ä")],
            vec![s("db.password"), s("team/db_url-1"), x(128)],
        ),
    ];
    let mut samples = Vec::new();
    for r in &rules {
        let schema = documented_schema(&doc, r);
        let cases = r.refused.iter().map(|v| (v, false));
        for (value, accepted) in cases.chain(r.accepted.iter().map(|v| (v, true))) {
            let text = |v: &Value| {
                v.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| v.to_string())
            };
            let (path, body, query) = match r.at {
                At::Body(field) => {
                    let mut body = r.base.clone();
                    body[field] = value.clone();
                    (r.path.clone(), Some(body), None)
                }
                At::Query(name) => (r.path.clone(), None, Some((name, text(value)))),
                At::Path(name) => {
                    let segment: String = text(value)
                        .bytes()
                        .map(|b| match b {
                            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-' => {
                                char::from(b).to_string()
                            }
                            _ => format!("%{b:02X}"),
                        })
                        .collect();
                    (r.path.replace(&format!("{{{name}}}"), &segment), None, None)
                }
            };
            let req = request(&app, r.method, &app.url(&path)).header("X-API-Key", &key);
            let req = match (body, query) {
                (Some(b), _) => req.json(&b),
                (None, Some(q)) => req.query(&[q]),
                (None, None) => req,
            };
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let answer = resp.text().await.unwrap();
            let call = format!("{} {path} with {value}", r.method);
            if accepted {
                assert_ne!(status, 400, "the server refused {call}: {answer}");
            } else {
                assert_eq!(status, 400, "the server did not refuse {call}: {answer}");
            }
            samples.push(json!({
                "call": call,
                "schema": schema,
                "value": value,
                "valid": accepted,
            }));
        }
    }
    assert!(samples.len() >= 120, "only {} samples", samples.len());
    check_with_jsonschema(
        &app,
        &doc,
        samples,
        r#"
    if validator.is_valid(s["value"]) != s["valid"]:
        verdict = "refuses" if s["valid"] else "accepts"
        bad.append(f'the document {verdict} what the server does not: {s["call"]}')
"#,
        "",
    );
}

#[tokio::test]
async fn swagger_ui_is_served_with_a_scoped_csp_exception() {
    let app = spawn().await;
    let r = app
        .client
        .get(app.url("/api/swagger"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 308);
    assert_eq!(r.headers()["location"], "/api/swagger/");
    let r = app
        .client
        .get(app.url("/api/swagger/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("style-src 'self' 'unsafe-inline'"), "{csp}");
    assert!(csp.contains("script-src 'self';"), "{csp}");
    let html = r.text().await.unwrap();
    assert!(html.contains("swagger-ui-bundle.js"));
    assert!(!html.contains("<script>"), "inline script in the page");
    for asset in [
        "swagger-ui-bundle.js",
        "swagger-ui.css",
        "swagger-initializer.js",
    ] {
        let r = app
            .client
            .get(app.url(&format!("/api/swagger/{asset}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{asset}");
        if asset == "swagger-initializer.js" {
            let js = r.text().await.unwrap();
            assert!(js.contains("/api/openapi.json"), "{js}");
            assert!(!js.contains("persistAuthorization\": true"), "{js}");
        }
    }
    // Everywhere else the strict policy stands.
    let r = app
        .client
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap();
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(!csp.contains("unsafe-inline"), "{csp}");
}

/// A chromedriver process (killed on drop) and a W3C WebDriver session spoken over HTTP.
struct Browser {
    child: std::process::Child,
    http: reqwest::Client,
    base: String,
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Drop for Browser {
    /// Ends the session first (chromedriver then closes Chromium, even if the test panicked),
    /// then stops chromedriver.
    fn drop(&mut self) {
        use std::io::{Read, Write};
        if let Some(rest) = self.base.strip_prefix("http://") {
            if let Some((host, path)) = rest.split_once('/') {
                if let Ok(mut s) = std::net::TcpStream::connect(host) {
                    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(10)));
                    let _ = write!(
                        s,
                        "DELETE /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                    // Wait for the answer (sent once Chromium is closed), not for EOF.
                    let (mut buf, mut chunk) = (Vec::new(), [0u8; 512]);
                    while let Ok(n) = s.read(&mut chunk) {
                        buf.extend_from_slice(&chunk[..n]);
                        if n == 0 || buf.windows(4).any(|w| w == b"\r\n\r\n") {
                            break;
                        }
                    }
                }
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Browser {
    async fn start() -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("chromedriver (apt-get install chromium-driver; .ci/run does)");
        let mut b = Browser {
            child,
            http: reqwest::Client::new(),
            base: format!("http://127.0.0.1:{port}"),
        };
        for _ in 0..100 {
            if let Ok(r) = b.http.get(format!("{}/status", b.base)).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let caps = serde_json::json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,2000"]
            },
            "goog:loggingPrefs": {"browser": "ALL"}
        }}});
        let v = b.call("POST", "/session", caps).await;
        let id = v["sessionId"].as_str().expect("session").to_owned();
        b.base = format!("{}/session/{id}", b.base);
        b
    }

    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{}", self.base, path);
        let req = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body),
        };
        let v: Value = req.send().await.unwrap().json().await.unwrap();
        v["value"].clone()
    }

    async fn find_all(&self, css: &str) -> Vec<String> {
        let v = self
            .call(
                "POST",
                "/elements",
                serde_json::json!({"using": "css selector", "value": css}),
            )
            .await;
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e[ELEMENT].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits up to 15 s for at least one match.
    async fn wait_for(&self, css: &str) -> Vec<String> {
        for _ in 0..150 {
            let found = self.find_all(css).await;
            if !found.is_empty() {
                return found;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("no element matches {css}");
    }

    async fn click(&self, el: &str) {
        self.call(
            "POST",
            &format!("/element/{el}/click"),
            serde_json::json!({}),
        )
        .await;
    }

    async fn type_into(&self, el: &str, text: &str) {
        self.call(
            "POST",
            &format!("/element/{el}/value"),
            serde_json::json!({"text": text}),
        )
        .await;
    }

    async fn script(&self, js: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            serde_json::json!({"script": js, "args": []}),
        )
        .await
    }
}

/// Authorizes one scheme in Swagger UI's dialog, the way a person would.
async fn authorize(b: &Browser, scheme: &str, value: &str) {
    let open = b.wait_for("button.btn.authorize").await;
    b.click(&open[0]).await;
    b.wait_for(".auth-container").await;
    let index = b
        .script(&format!(
            "return [...document.querySelectorAll('.auth-container')]
                .findIndex(c => (c.querySelector('h4')||{{}}).textContent.trim().startsWith('{scheme}'));"
        ))
        .await
        .as_i64()
        .expect("index");
    assert!(index >= 0, "no {scheme} section in the Authorize dialog");
    let n = index + 1;
    let input = b
        .wait_for(&format!(".auth-container:nth-of-type({n}) input"))
        .await;
    b.type_into(&input[0], value).await;
    let apply = b
        .wait_for(&format!(
            ".auth-container:nth-of-type({n}) button[aria-label='Apply credentials']"
        ))
        .await;
    b.click(&apply[0]).await;
    let close = b.wait_for("button.btn-done, .close-modal").await;
    b.click(&close[0]).await;
}

/// Executes the open "list users" operation and waits for Swagger UI to show `want`;
/// returns the status it shows.
async fn execute_expecting(b: &Browser, want: &str) -> String {
    let mut seen = String::new();
    // Click Execute, give the answer 3 s to show; a click the page was not ready for is retried.
    for _attempt in 0..4 {
        let exec = b
            .wait_for("#operations-users-list_users button.execute")
            .await;
        b.click(&exec[0]).await;
        for _ in 0..30 {
            let v = b
                .script(
                    "const c = document.querySelector('#operations-users-list_users \
                     .live-responses-table tr.response .response-col_status'); \
                     return c ? c.textContent.trim() : '';",
                )
                .await;
            seen = v.as_str().unwrap_or_default().to_owned();
            if seen == want {
                return seen;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    let html = b
        .script("return document.querySelector('#operations-users-list_users').innerText;")
        .await;
    eprintln!("Swagger UI shows: {html}");
    seen
}

#[tokio::test]
async fn swagger_ui_renders_under_its_csp_and_authorize_works_for_both_schemes() {
    let app = spawn().await;
    app.create_user("swag", STRONG_PASSWORD, true).await;
    let r = app
        .client
        .post(app.url("/api/accounts/token/"))
        .json(&serde_json::json!({"username": "swag", "password": STRONG_PASSWORD}))
        .send()
        .await
        .unwrap();
    let access = r.json::<Value>().await.unwrap()["access"]
        .as_str()
        .unwrap()
        .to_owned();

    let b = Browser::start().await;
    b.call(
        "POST",
        "/url",
        serde_json::json!({"url": app.url("/api/swagger/")}),
    )
    .await;
    // The UI rendered every operation: its scripts ran under the CSP.
    b.wait_for(".opblock").await;
    let ops = b.find_all(".opblock").await.len();
    assert_eq!(ops, ROUTES.len(), "operations rendered");

    let summary = b
        .wait_for("#operations-users-list_users .opblock-summary-control")
        .await;
    b.click(&summary[0]).await;
    // Without credentials: 401.
    assert_eq!(execute_expecting(&b, "401").await, "401");
    // API key scheme: the junk key is sent as X-API-Key and refused as malformed (400), which
    // proves the header went out (no header would be 401).
    authorize(&b, "api_key", "not-a-real-key").await;
    assert_eq!(execute_expecting(&b, "400").await, "400");
    // Bearer scheme (listed first in the operation's security): the JWT works.
    authorize(&b, "bearer", &access).await;
    assert_eq!(execute_expecting(&b, "200").await, "200");

    // No CSP violation was reported on the page.
    let logs = b
        .call("POST", "/se/log", serde_json::json!({"type": "browser"}))
        .await;
    let text = logs.to_string();
    assert!(
        !text.contains("Content Security Policy"),
        "CSP violations: {text}"
    );
}
