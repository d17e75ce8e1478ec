//! Recovering after an outage: `POST .../subscriptions/{id}/recover` sends
//! again, oldest first and as new deliveries, every event since a time whose
//! delivery finally failed while the receiver was down.

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::harness::{ADMIN, Answer, ConfigBuilder, Receiver, Server, assert_error};

const SOON: Duration = Duration::from_secs(10);
const QUIET: Duration = Duration::from_millis(600);
const TENANT: &str = "alpana";

/// The `n` of a `{"n": ...}` payload the receiver got, from the default body.
fn n_of(body: &[u8]) -> u64 {
    let body: Value = serde_json::from_slice(body).expect("a JSON body");
    body["data"]["n"].as_u64().expect("data.n")
}

#[tokio::test(flavor = "multi_thread")]
async fn finally_failed_deliveries_are_sent_again_in_order_once_the_receiver_heals() {
    let receiver = Receiver::start().await;
    receiver.always(Answer::status(503));
    let config = ConfigBuilder::new().retry_schedule(&["50ms"]).build();
    let server = Server::start(&config).await;
    let sub = server
        .create_subscription(
            TENANT,
            &json!({"url": receiver.url(), "events": ["report.*"], "ordered": true}),
        )
        .await;
    let sub_id = sub["id"].as_str().unwrap();

    // One failure before the outage window, then four events during it, one
    // of which a resend already delivered once the receiver was back.
    // Event 0 has failed before the others are ingested, so their ingest
    // times are later than its own.
    let publish = |n: u64| {
        let server = &server;
        async move {
            let receipt = server
                .publish(
                    TENANT,
                    &json!({"type": "report.ready", "payload": {"n": n}}),
                )
                .await;
            receipt["id"].as_str().unwrap().to_owned()
        }
    };
    let mut ids = vec![publish(0).await];
    server.settled_event(TENANT, &ids[0], SOON).await;
    for n in 1..5 {
        ids.push(publish(n).await);
    }
    let mut failed_at = Vec::new();
    for id in &ids {
        let event = server.settled_event(TENANT, id, SOON).await;
        assert_eq!(event["deliveries"][0]["state"], "failed", "{event}");
        failed_at.push(event["timestamp"].as_str().unwrap().to_owned());
    }
    assert_eq!(receiver.count(), 10, "two attempts each");
    receiver.always(Answer::ok());
    let attempts = server.attempts(TENANT, sub_id).await;
    let of_event_3 = attempts
        .iter()
        .find(|a| a["event_id"] == ids[3].as_str())
        .unwrap();
    let (status, _) = server
        .post(
            &format!(
                "/v1/tenants/{TENANT}/attempts/{}/resend",
                of_event_3["id"].as_str().unwrap()
            ),
            ADMIN,
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    receiver.wait_for(11, SOON).await;

    let path = format!("/v1/tenants/{TENANT}/subscriptions/{sub_id}/recover");
    let since = &failed_at[1];
    let (status, answer) = server.post(&path, ADMIN, &json!({"since": since})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer, json!({"deliveries": 3}), "events 1, 2 and 4");

    let got = receiver.wait_for(14, SOON).await;
    let recovered: Vec<u64> = got[11..].iter().map(|r| n_of(&r.body)).collect();
    assert_eq!(recovered, [1, 2, 4], "oldest first, in order");
    assert!(got[11..].iter().all(|r| r.succeeded()));
    for (i, id) in ids.iter().enumerate() {
        let event = server.settled_event(TENANT, id, SOON).await;
        let states: Vec<&str> = event["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["state"].as_str().unwrap())
            .collect();
        let want: &[&str] = match i {
            0 => &["failed"],
            _ => &["failed", "delivered"],
        };
        assert_eq!(states, want, "event {i}: {event}");
    }

    // Nothing failed is left since then: a second recover sends nothing.
    let again = server.post(&path, ADMIN, &json!({"since": since})).await;
    assert_eq!(again, (StatusCode::ACCEPTED, json!({"deliveries": 0})));
    receiver.assert_stays(14, QUIET).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recover_needs_a_time_and_an_enabled_subscription() {
    let server = Server::start(&ConfigBuilder::new().build()).await;
    let sub = server
        .create_subscription(
            TENANT,
            &json!({"url": "http://127.0.0.1:9/", "events": ["*"], "enabled": false}),
        )
        .await;
    let path = format!(
        "/v1/tenants/{TENANT}/subscriptions/{}/recover",
        sub["id"].as_str().unwrap()
    );
    let since = json!({"since": "2026-01-01T00:00:00Z"});
    let got = server.post(&path, ADMIN, &since).await;
    assert_error(&got, StatusCode::CONFLICT, "disabled");
    assert_eq!(got.1["error"]["code"], "subscription_disabled");
    for bad in [json!({}), json!({"since": "yesterday"})] {
        let got = server.post(&path, ADMIN, &bad).await;
        assert_error(&got, StatusCode::UNPROCESSABLE_ENTITY, "since");
        assert!(
            got.1["error"]["message"]
                .as_str()
                .unwrap()
                .contains("since"),
            "{}",
            got.1
        );
    }
    let got = server
        .post(
            &format!("/v1/tenants/{TENANT}/subscriptions/nope/recover"),
            ADMIN,
            &since,
        )
        .await;
    assert_error(&got, StatusCode::NOT_FOUND, "unknown subscription");
}
