//! Foundation: health, error shape, security headers.

use crate::helpers::*;

#[tokio::test]
async fn healthz_answers_ok_with_schema_version() {
    let app = spawn().await;
    let r = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["status"], "ok");
    assert!(v["schema_version"].as_u64().unwrap() >= 1);
}

#[tokio::test]
async fn browser_harness_renders_a_served_page() {
    let app = spawn().await;
    let b = crate::browser::start().await;
    b.client.goto(&app.url("/healthz")).await.unwrap();
    let text = b
        .client
        .find(fantoccini::Locator::Css("body"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("\"status\":\"ok\""), "{text}");
    b.close().await;
}
