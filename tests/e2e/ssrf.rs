//! SSRF answers, end to end: a subscription URL whose name resolves only to
//! refused addresses is refused by `verify` and, once stored, by every
//! delivery attempt; each error says it is refused and why in words, never
//! the addresses the name resolved to.

use std::net::{IpAddr, ToSocketAddrs};
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::json;

use crate::harness::{ConfigBuilder, Server, assert_error};

/// A name that resolves, on this machine, to loopback or private addresses
/// only, and is not `localhost` (which is refused before any look-up): the
/// machine's own host name, which `/etc/hosts` maps to 127.0.1.1 on Debian and
/// to the container's private address under Docker.
fn name_resolving_to_refused_addresses() -> (String, Vec<IpAddr>) {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("the host name")
        .trim()
        .to_owned();
    let ips: Vec<IpAddr> = (host.as_str(), 80)
        .to_socket_addrs()
        .unwrap_or_else(|e| panic!("this test needs the host name {host:?} to resolve: {e}"))
        .map(|addr| addr.ip())
        .collect();
    let refused = |ip: &IpAddr| match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.is_unique_local() || v6.is_unicast_link_local(),
    };
    assert!(
        !ips.is_empty() && ips.iter().all(refused),
        "this test needs the host name {host:?} to resolve to loopback or private addresses only, not {ips:?}"
    );
    (host, ips)
}

fn assert_says_refused_in_words(message: &str, resolved: &[IpAddr]) {
    assert!(message.contains("refused"), "{message}");
    assert!(
        [
            "a loopback address",
            "a private address",
            "a link-local address"
        ]
        .iter()
        .any(|why| message.contains(why)),
        "the reason is not given in words: {message}"
    );
    for ip in resolved {
        assert!(
            !message.contains(&ip.to_string()),
            "the message shows the resolved address {ip}: {message}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_name_resolving_to_a_refused_address_is_refused_in_words_by_verify_and_by_delivery() {
    let (host, resolved) = name_resolving_to_refused_addresses();
    let server = Server::start(
        &ConfigBuilder::new()
            .delivery("allow_private_targets", "false")
            .build(),
    )
    .await;
    let url = format!("http://{host}:9/hook");

    let verified = server
        .post(
            "/v1/tenants/acme/subscriptions",
            crate::harness::ADMIN,
            &json!({"url": url, "events": ["*"], "verify": true}),
        )
        .await;
    assert_error(&verified, StatusCode::UNPROCESSABLE_ENTITY, "verify");
    assert_eq!(verified.1["error"]["code"], "verification_failed");
    assert_says_refused_in_words(verified.1["error"]["message"].as_str().unwrap(), &resolved);
    assert_eq!(server.subscription_ids("acme").await, Vec::<String>::new());

    let sub = server
        .create_subscription("acme", &json!({"url": url, "events": ["*"]}))
        .await;
    let sub_id = sub["id"].as_str().unwrap();
    let receipt = server
        .publish("acme", &json!({"type": "a.b", "payload": {}}))
        .await;
    let event = server
        .settled_event(
            "acme",
            receipt["id"].as_str().unwrap(),
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(event["deliveries"][0]["state"], "failed", "{event}");
    let attempts = server.attempts("acme", sub_id).await;
    assert_eq!(attempts.len(), 1, "refused at once, no retry: {attempts:?}");
    assert_eq!(attempts[0]["outcome"], "refused");
    assert_says_refused_in_words(attempts[0]["error"].as_str().unwrap(), &resolved);
}
