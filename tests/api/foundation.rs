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
