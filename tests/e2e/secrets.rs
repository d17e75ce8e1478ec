//! Secrets, end to end: a subscription's signing secret is shown at its
//! creation and through its own route only; a rotation signs with both keys
//! for the overlap, then with the new one; config-declared subscriptions
//! cannot be rotated; stored attempts redact credentials the receiver still
//! gets.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{ADMIN, ConfigBuilder, Receiver, Server, assert_error, assert_signed, sample};

/// Deadline of waits for something that should happen almost at once.
const SOON: Duration = Duration::from_secs(10);

/// A valid key that hookshape did not generate.
const GIVEN_KEY: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn text<'a>(value: &'a Value, field: &str) -> &'a str {
    value[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {value}"))
}

fn secret_path(sub_id: &str) -> String {
    format!("/v1/tenants/acme/subscriptions/{sub_id}/secret")
}

/// `GET .../secret`; asserts 200 and returns the key.
async fn read_secret(server: &Server, sub_id: &str) -> String {
    let got = server.get(&secret_path(sub_id), ADMIN).await;
    assert_eq!(got.0, StatusCode::OK, "reading the secret: {}", got.1);
    text(&got.1, "key").to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_secret_is_shown_at_creation_and_through_its_own_route_only() {
    let receiver = Receiver::start().await;
    let server = Server::start(&ConfigBuilder::new().build()).await;
    let created = server
        .create_subscription("acme", &json!({"url": receiver.url(), "events": ["*"]}))
        .await;
    let secret = text(&created, "secret").to_owned();
    assert!(secret.starts_with("whsec_"), "secret {secret}");
    let id = text(&created, "id").to_owned();
    let path = format!("/v1/tenants/acme/subscriptions/{id}");

    let read = server.subscription("acme", &id).await;
    assert_eq!(read["id"], id.as_str());
    assert_eq!(read.get("secret"), None, "GET shows no secret: {read}");
    let (status, list) = server.get("/v1/tenants/acme/subscriptions", ADMIN).await;
    assert_eq!(status, StatusCode::OK);
    let listed = list["data"].as_array().expect("data is a list");
    assert_eq!(listed.len(), 1, "{list}");
    assert_eq!(
        listed[0].get("secret"),
        None,
        "the list shows no secret: {list}"
    );
    let (status, patched) = server
        .patch(&path, ADMIN, &json!({"description": "no secret here"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["description"], "no secret here");
    assert_eq!(
        patched.get("secret"),
        None,
        "PATCH shows no secret: {patched}"
    );

    assert_eq!(read_secret(&server, &id).await, secret);
    assert_error(
        &server
            .get(&secret_path("sub_01ARZ3NDEKTSV4RRFFQ69G5FAV"), ADMIN)
            .await,
        StatusCode::NOT_FOUND,
        "the secret of no subscription",
    );
    assert_error(
        &server.get(&secret_path(&id), None).await,
        StatusCode::UNAUTHORIZED,
        "the secret without a token",
    );

    // An empty body generates a new key; a malformed one is refused.
    let reply = server
        .request(
            Method::POST,
            &format!("{}/rotate", secret_path(&id)),
            ADMIN,
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let generated = text(&reply.json(), "key").to_owned();
    assert!(generated.starts_with("whsec_"), "key {generated}");
    assert_ne!(generated, secret, "a rotation makes a new key");
    assert_eq!(read_secret(&server, &id).await, generated);
    let refused = server
        .post(
            &format!("{}/rotate", secret_path(&id)),
            ADMIN,
            &json!({"key": "not-a-secret"}),
        )
        .await;
    assert_error(
        &refused,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a malformed key",
    );
    assert_eq!(refused.1["error"]["code"], "invalid_secret");
    assert_eq!(read_secret(&server, &id).await, generated);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotation_signs_with_both_keys_for_the_overlap_then_the_new_one_only() {
    let receiver = Receiver::start().await;
    let overlap = Duration::from_secs(3);
    let config = ConfigBuilder::new()
        .delivery("secret_rotation_overlap", r#""3s""#)
        .build();
    let server = Server::start(&config).await;
    let created = server
        .create_subscription("acme", &json!({"url": receiver.url(), "events": ["*"]}))
        .await;
    let old = text(&created, "secret").to_owned();
    let id = text(&created, "id").to_owned();

    let (status, rotated) = server
        .post(
            &format!("{}/rotate", secret_path(&id)),
            ADMIN,
            &json!({"key": GIVEN_KEY}),
        )
        .await;
    let rotated_at = std::time::Instant::now();
    assert_eq!(status, StatusCode::OK, "{rotated}");
    assert_eq!(rotated, json!({"key": GIVEN_KEY}));
    assert_eq!(read_secret(&server, &id).await, GIVEN_KEY);

    server
        .publish("acme", &sample("alpana-comment-added"))
        .await;
    let within = receiver.wait_for(1, SOON).await.remove(0);
    assert!(
        within.at < rotated_at + overlap,
        "the first delivery came after the overlap; the machine is too slow for this test"
    );
    let signature = within
        .header("webhook-signature")
        .expect("a webhook-signature header");
    let entries: Vec<&str> = signature.split(' ').collect();
    assert_eq!(entries.len(), 2, "two signatures: {signature:?}");
    assert!(
        entries.iter().all(|e| e.starts_with("v1,")),
        "{signature:?}"
    );
    assert_signed(&within, GIVEN_KEY);
    assert_signed(&within, &old);

    tokio::time::sleep((rotated_at + overlap).saturating_duration_since(std::time::Instant::now()))
        .await;
    server
        .publish("acme", &sample("alpana-dashboard-updated"))
        .await;
    let after = receiver.wait_for(2, SOON).await.remove(1);
    let signature = after
        .header("webhook-signature")
        .expect("a webhook-signature header");
    assert_eq!(
        signature.split(' ').count(),
        1,
        "only the new key signs after the overlap: {signature:?}"
    );
    assert_signed(&after, GIVEN_KEY);
}

#[tokio::test(flavor = "multi_thread")]
async fn rotating_a_config_declared_subscription_is_a_conflict() {
    let receiver = Receiver::start().await;
    let declared = format!(
        "[[subscriptions]]\nid = \"team-feed\"\ntenant = \"acme\"\nurl = \"{}\"\nevents = [\"*\"]\nsecret = \"{GIVEN_KEY}\"\n",
        receiver.url()
    );
    let server = Server::start(&ConfigBuilder::new().raw(&declared).build()).await;
    let got = server
        .post(
            &format!("{}/rotate", secret_path("team-feed")),
            ADMIN,
            &json!({}),
        )
        .await;
    assert_error(
        &got,
        StatusCode::CONFLICT,
        "rotating a declared subscription",
    );
    assert_eq!(got.1["error"]["code"], "config_managed");
    assert_eq!(read_secret(&server, "team-feed").await, GIVEN_KEY);
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_in_subscription_headers_are_sent_but_stored_redacted() {
    let receiver = Receiver::start().await;
    let server = Server::start(&ConfigBuilder::new().build()).await;
    let created = server
        .create_subscription(
            "acme",
            &json!({
                "url": receiver.url(),
                "events": ["*"],
                "headers": {"X-Api-Key": "abc", "Authorization": "Bearer x", "X-Team": "data"}
            }),
        )
        .await;
    let id = text(&created, "id").to_owned();
    server
        .publish("acme", &sample("alpana-comment-added"))
        .await;

    let sent = receiver.wait_for(1, SOON).await.remove(0);
    assert_eq!(sent.header("x-api-key"), Some("abc"));
    assert_eq!(sent.header("authorization"), Some("Bearer x"));
    assert_eq!(sent.header("x-team"), Some("data"));

    let attempt = server.wait_attempts("acme", &id, 1, SOON).await.remove(0);
    let stored = &attempt["request_headers"];
    assert_eq!(stored["x-api-key"], "[redacted]", "{stored}");
    assert_eq!(stored["authorization"], "[redacted]", "{stored}");
    assert_eq!(stored["x-team"], "data", "{stored}");
    assert_eq!(
        stored["webhook-signature"],
        sent.header("webhook-signature").unwrap(),
        "the signature is not a credential: {stored}"
    );
}
