//! Operational events: a finally failed delivery and an automatic disable
//! are published into the tenant as `hookshape.delivery.failed` and
//! `hookshape.subscription.disabled`, to subscriptions that name them.

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::json;

use crate::harness::{ADMIN, Answer, ConfigBuilder, Receiver, Server, wait_until};

#[tokio::test]
async fn a_failed_delivery_and_an_automatic_disable_are_reported_to_subscribers_that_name_them() {
    let config = ConfigBuilder::new()
        .retry_schedule(&[])
        .delivery("disable_after_failures", "1");
    let server = Server::start(&config.build()).await;
    let (watch, broken_watch, bad, all) = (
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
    );
    bad.always(Answer::status(400));
    broken_watch.always(Answer::status(400));
    let names = [
        "hookshape.delivery.failed",
        "hookshape.subscription.disabled",
    ];
    server
        .create_subscription("acme", &json!({"url": watch.url(), "events": names}))
        .await;
    server
        .create_subscription(
            "acme",
            &json!({"url": broken_watch.url(), "events": ["hookshape.delivery.failed"]}),
        )
        .await;
    let bad_sub = server
        .create_subscription(
            "acme",
            &json!({"url": bad.url(), "events": ["report_run_completed"]}),
        )
        .await;
    server
        .create_subscription("acme", &json!({"url": all.url(), "events": ["*"]}))
        .await;

    let event = server
        .publish(
            "acme",
            &json!({"type": "report_run_completed", "payload": {"rows": []}}),
        )
        .await;
    wait_until(Duration::from_secs(10), "both reports", || {
        watch.count() >= 2
    })
    .await;
    // Long enough for any report about the broken watcher to show up too.
    wait_until(
        Duration::from_secs(10),
        "the broken watcher to be tried",
        || broken_watch.count() >= 1,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let reports: Vec<_> = watch.requests().iter().map(|r| r.json()).collect();
    assert_eq!(
        reports.len(),
        2,
        "exactly one of each, none about the watchers: {reports:?}"
    );
    let failed = reports
        .iter()
        .find(|r| r["type"] == "hookshape.delivery.failed")
        .expect("a delivery.failed report");
    assert_eq!(failed["data"]["subscription_id"], bad_sub["id"]);
    assert_eq!(failed["data"]["event_id"], event["id"]);
    assert_eq!(failed["data"]["last_status"], 400);
    assert!(failed["data"]["reason"].as_str().unwrap().contains("400"));
    let disabled = reports
        .iter()
        .find(|r| r["type"] == "hookshape.subscription.disabled")
        .expect("a subscription.disabled report");
    assert_eq!(disabled["data"]["subscription_id"], bad_sub["id"]);
    assert!(disabled["data"]["reason"].is_string());
    // A catch-all gets the source's event only; the failing watcher's own
    // failure is not reported (no loop).
    assert_eq!(
        all.count(),
        1,
        "a `*` subscription gets no operational events"
    );
    assert_eq!(broken_watch.count(), 1);

    // Sources cannot post hookshape's own event types.
    let (status, body) = server
        .post(
            "/v1/tenants/acme/events",
            ADMIN,
            &json!({"type": "hookshape.delivery.failed", "payload": {}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
}
