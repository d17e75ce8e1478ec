//! Cross-tenant access, end to end: an admin token scoped to tenant `a` tried
//! on every route against tenant `b`. Tenant `b`'s paths answer 403; tenant
//! `a`'s paths with ids that belong to `b` answer 404 (an id is looked up in
//! the tenant of the path only); plugin routes, shared by every tenant,
//! answer 403 to a token that does not reach every tenant. Nothing of `b`
//! changes and nothing more is sent.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{ADMIN, ConfigBuilder, Receiver, Server, assert_error, metric_total};

const A_ADMIN: &str = "tenant-a-admin";
const SOON: Duration = Duration::from_secs(10);

/// Tenant `b`'s objects, made with the all-tenants admin token.
struct TenantB {
    sub: String,
    event: String,
    attempt: String,
}

/// A server with a delivered event in tenant `b` and a subscription in `a`.
async fn setup() -> (Server, Receiver, TenantB) {
    let receiver = Receiver::start().await;
    let server = Server::start(&ConfigBuilder::new().token(A_ADMIN, "admin", &["a"]).build()).await;
    server
        .create_subscription(
            "a",
            &json!({"url": receiver.url(), "events": ["never.sent"]}),
        )
        .await;
    let sub = server
        .create_subscription("b", &json!({"url": receiver.url(), "events": ["*"]}))
        .await;
    let sub = sub["id"].as_str().unwrap().to_owned();
    let receipt = server
        .publish("b", &json!({"type": "b.happened", "payload": {}}))
        .await;
    let event = receipt["id"].as_str().unwrap().to_owned();
    let attempts = server.wait_attempts("b", &sub, 1, SOON).await;
    let attempt = attempts[0]["id"].as_str().unwrap().to_owned();
    (
        server,
        receiver,
        TenantB {
            sub,
            event,
            attempt,
        },
    )
}

/// Every tenant route, in `tenant`'s path, naming `b`'s ids.
fn routes(tenant: &str, b: &TenantB) -> Vec<(Method, String, Option<Value>)> {
    let t = format!("/v1/tenants/{tenant}");
    let sub = format!("{t}/subscriptions/{}", b.sub);
    vec![
        (
            Method::POST,
            format!("{t}/events"),
            Some(json!({"type": "x.y", "payload": {}})),
        ),
        (Method::GET, format!("{t}/events/{}", b.event), None),
        (
            Method::POST,
            format!("{t}/subscriptions"),
            Some(json!({"url": "https://hooks.example.com/in", "events": ["*"]})),
        ),
        (Method::GET, format!("{t}/subscriptions"), None),
        (Method::GET, sub.clone(), None),
        (Method::PATCH, sub.clone(), Some(json!({"enabled": false}))),
        (Method::DELETE, sub.clone(), None),
        (Method::GET, format!("{sub}/secret"), None),
        (
            Method::POST,
            format!("{sub}/secret/rotate"),
            Some(json!({})),
        ),
        (Method::GET, format!("{sub}/attempts"), None),
        (
            Method::POST,
            format!("{sub}/dry-run"),
            Some(json!({"event_id": b.event})),
        ),
        (
            Method::POST,
            format!("{sub}/recover"),
            Some(json!({"since": "2020-01-01T00:00:00Z"})),
        ),
        (
            Method::POST,
            format!("{t}/attempts/{}/resend", b.attempt),
            Some(json!({})),
        ),
    ]
}

async fn call(
    server: &Server,
    method: &Method,
    path: &str,
    body: &Option<Value>,
) -> (StatusCode, Value) {
    let body = body
        .as_ref()
        .map(|b| ("application/json", serde_json::to_vec(b).unwrap()));
    let reply = server
        .request(method.clone(), path, Some(A_ADMIN), body)
        .await;
    (reply.status, reply.json())
}

/// What `b` looks like to the all-tenants admin.
async fn snapshot(server: &Server, b: &TenantB) -> Value {
    let (_, secret) = server
        .get(
            &format!("/v1/tenants/b/subscriptions/{}/secret", b.sub),
            ADMIN,
        )
        .await;
    json!({
        "subscriptions": server.get("/v1/tenants/b/subscriptions", ADMIN).await.1,
        "secret": secret,
        "event": server.event("b", &b.event).await,
        "attempts": server.attempts("b", &b.sub).await,
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn cross_tenant_paths_of_another_tenant_are_403_on_every_route_and_nothing_changes() {
    let (server, receiver, b) = setup().await;
    let before = snapshot(&server, &b).await;
    let received = receiver.count();

    for (method, path, body) in routes("b", &b) {
        let got = call(&server, &method, &path, &body).await;
        let context = format!("{method} {path}");
        assert_error(&got, StatusCode::FORBIDDEN, &context);
        assert_eq!(got.1["error"]["code"], "forbidden", "{context}");
    }

    assert_eq!(snapshot(&server, &b).await, before);
    let metrics = server.metrics().await;
    assert_eq!(
        metric_total(&metrics, "hookshape_events_received_total"),
        1.0,
        "{metrics}"
    );
    receiver
        .assert_stays(received, Duration::from_millis(300))
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cross_tenant_ids_of_another_tenant_in_own_paths_are_404_and_nothing_changes() {
    let (server, receiver, b) = setup().await;
    let before = snapshot(&server, &b).await;
    let received = receiver.count();

    for (method, path, body) in routes("a", &b) {
        // Routes without an id are tenant a's own business.
        if !path.contains(&b.sub) && !path.contains(&b.event) && !path.contains(&b.attempt) {
            continue;
        }
        let got = call(&server, &method, &path, &body).await;
        let context = format!("{method} {path}");
        assert_error(&got, StatusCode::NOT_FOUND, &context);
        assert_eq!(got.1["error"]["code"], "not_found", "{context}");
    }

    assert_eq!(snapshot(&server, &b).await, before);
    receiver
        .assert_stays(received, Duration::from_millis(300))
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cross_tenant_plugin_routes_need_a_token_over_every_tenant() {
    let (server, _receiver, _b) = setup().await;
    let listed = call(&server, &Method::GET, "/v1/plugins", &None).await;
    assert_error(&listed, StatusCode::FORBIDDEN, "listing plugins");
    let reply = server
        .request(
            Method::PUT,
            "/v1/plugins/mine",
            Some(A_ADMIN),
            Some(("application/wasm", b"\0asm".to_vec())),
        )
        .await;
    assert_error(
        &(reply.status, reply.json()),
        StatusCode::FORBIDDEN,
        "uploading a plugin",
    );
    let (status, plugins) = server.get("/v1/plugins", ADMIN).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(plugins["data"], json!([]), "nothing was uploaded");
}
