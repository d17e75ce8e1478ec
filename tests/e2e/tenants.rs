//! `GET /v1/tenants`: the tenants with subscriptions that the token
//! administers, with their counts.

use axum::http::StatusCode;
use serde_json::json;

use crate::harness::{ADMIN, ConfigBuilder, Server, assert_error};

#[tokio::test(flavor = "multi_thread")]
async fn tenants_are_listed_with_counts_within_the_token_scope() {
    let config = ConfigBuilder::new()
        .token("acme-admin", "admin", &["acme", "initech"])
        .token("acme-publisher", "publisher", &["acme"])
        .build();
    let server = Server::start(&config).await;
    let url = "http://127.0.0.1:9/hook";
    for (tenant, enabled) in [("acme", true), ("acme", false), ("globex", true)] {
        server
            .create_subscription(
                tenant,
                &json!({"url": url, "events": ["*"], "enabled": enabled}),
            )
            .await;
    }
    // An event alone does not make a tenant appear.
    server
        .publish("initech", &json!({"type": "a", "payload": 1}))
        .await;

    let (status, all) = server.get("/v1/tenants", ADMIN).await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert_eq!(
        all,
        json!({"data": [
            {"tenant": "acme", "subscriptions": 2, "disabled": 1, "failing": 0},
            {"tenant": "globex", "subscriptions": 1, "disabled": 0, "failing": 0},
        ]})
    );
    let (status, scoped) = server.get("/v1/tenants", Some("acme-admin")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(scoped["data"], json!([all["data"][0]]));

    let got = server.get("/v1/tenants", Some("acme-publisher")).await;
    assert_error(&got, StatusCode::FORBIDDEN, "a publisher");
    let got = server.get("/v1/tenants", None).await;
    assert_error(&got, StatusCode::UNAUTHORIZED, "no token");
}
