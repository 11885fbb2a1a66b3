//! The OpenAPI 3.1 document and Swagger UI: every route is documented (and nothing else), the
//! document validates with `openapi-spec-validator`, both security schemes exist, and Swagger
//! UI is served from vendored assets with its CSP exception scoped to `/api/swagger/`.

use std::collections::BTreeSet;

use gatehouse::http::routes::ROUTES;
use serde_json::Value;

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
        let url = app.url(&path.replace("{id}", "1"));
        let req = match *method {
            "get" => app.client.get(url),
            "post" => app.client.post(url).json(&serde_json::json!({})),
            "patch" => app.client.patch(url).json(&serde_json::json!({})),
            "delete" => app.client.delete(url),
            other => panic!("unexpected method {other}"),
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

#[tokio::test]
async fn the_document_validates_against_the_openapi_schema() {
    let app = spawn().await;
    let doc = document(&app).await;
    let file = app.dir.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    let out = std::process::Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output()
        .expect("python3 -m openapi_spec_validator (pip install openapi-spec-validator)");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
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
            assert!(js.contains("persistAuthorization"), "{js}");
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
