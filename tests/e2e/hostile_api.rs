//! Hostile API input, end to end: every route that takes JSON answers a body
//! that is not one well-formed JSON document (truncated, trailing data,
//! invalid UTF-8, a wrong field before the break) with `400 malformed_json`,
//! a well-formed body that breaks a rule (wrong type, deep nesting) with 422,
//! and nothing is stored or changed.

use axum::http::StatusCode;
use serde_json::json;

use crate::harness::{ADMIN, ConfigBuilder, Server, assert_error, metric_total};

/// Bodies that are not one well-formed JSON document.
const MALFORMED: [(&str, &[u8]); 5] = [
    ("truncated", b"{\"url\": "),
    ("trailing data", b"{\"enabled\": false} {\"enabled\": true}"),
    ("trailing garbage", b"{\"type\": \"a.b\", \"payload\": 1}x"),
    ("invalid UTF-8", b"{\"type\": \"\xff\", \"payload\": 1}"),
    (
        "a wrong type, then the break",
        b"{\"enabled\": 5, \"url\": ",
    ),
];

#[tokio::test(flavor = "multi_thread")]
async fn malformed_json_is_400_on_every_json_route_and_nothing_changes() {
    let server = Server::start(&ConfigBuilder::new().build()).await;
    let created = server
        .create_subscription(
            "acme",
            &json!({"url": "https://hooks.example.com/in", "events": ["never.sent"]}),
        )
        .await;
    let id = created["id"].as_str().expect("an id");
    let sub = format!("/v1/tenants/acme/subscriptions/{id}");
    let before = server.subscription("acme", id).await;
    let (_, secret_before) = server.get(&format!("{sub}/secret"), ADMIN).await;

    let routes = [
        ("POST", "/v1/tenants/acme/events".to_owned()),
        ("POST", "/v1/tenants/acme/subscriptions".to_owned()),
        ("PATCH", sub.clone()),
        ("POST", format!("{sub}/secret/rotate")),
    ];
    for (method, path) in &routes {
        for (class, body) in MALFORMED {
            let reply = server
                .request(
                    method.parse().unwrap(),
                    path,
                    ADMIN,
                    Some(("application/json", body.to_vec())),
                )
                .await;
            let got = (reply.status, reply.json());
            assert_error(
                &got,
                StatusCode::BAD_REQUEST,
                &format!("{method} {path}: {class}"),
            );
            assert_eq!(
                got.1["error"]["code"], "malformed_json",
                "{class}: {}",
                got.1
            );
        }
    }

    // Well-formed but breaking a rule stays 422.
    let deep = format!("{}{}", "[".repeat(1000), "]".repeat(1000));
    let well_formed = [
        (
            "a wrong type",
            "/v1/tenants/acme/events",
            r#"{"type": 5, "payload": 1}"#.to_owned(),
        ),
        (
            "nesting past 128",
            "/v1/tenants/acme/subscriptions",
            format!(
                r#"{{"url": "https://hooks.example.com/in", "events": ["*"], "plugin_config": {deep}}}"#
            ),
        ),
    ];
    for (class, path, body) in well_formed {
        let got = server.post_raw(path, ADMIN, body.as_bytes()).await;
        assert_error(&got, StatusCode::UNPROCESSABLE_ENTITY, class);
    }

    assert_eq!(server.subscription("acme", id).await, before);
    assert_eq!(
        server.get(&format!("{sub}/secret"), ADMIN).await.1,
        secret_before
    );
    assert_eq!(server.subscription_ids("acme").await, [id]);
    let metrics = server.metrics().await;
    assert_eq!(
        metric_total(&metrics, "hookshape_events_received_total"),
        0.0,
        "no event was stored:\n{metrics}"
    );
}
