//! Dry runs: `POST .../subscriptions/{id}/dry-run` runs a subscription's
//! real plugin on a stored or a pasted event and answers the request a
//! delivery would send (the same bytes the receiver got for that event),
//! sending and storing nothing; `hookshape plugin run --tenant`.

use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use hookshape::plugin::testing::build_plugin;
use serde_json::{Value, json};

use crate::harness::{
    ADMIN, ConfigBuilder, Receiver, Recorded, Server, assert_error, assert_signed, run_binary,
    sample,
};

const SOON: Duration = Duration::from_secs(10);
const QUIET: Duration = Duration::from_millis(600);
const TENANT: &str = "analyst-studio";
const PUBLISHER: &str = "dry-run-publisher";

fn config() -> String {
    let path = build_plugin("slack-threshold").display().to_string();
    ConfigBuilder::new()
        .token(PUBLISHER, "publisher", &[TENANT])
        .raw(&format!(
            "[plugins.slack-threshold]\npath = {path:?}\ntimeout = \"1s\"\n"
        ))
        .build()
}

/// The stored sample (revenue 128450.5) and the same report on a slow day.
fn report(revenue: f64) -> Value {
    let mut event = sample("analyst-studio-report-run-completed");
    event["id"] = json!(format!("as-run-{revenue}"));
    event["payload"]["rows"][0]["revenue"] = json!(revenue);
    event
}

/// A dry run's request as the receiver would have recorded it, for the
/// independent signature check.
fn as_recorded(request: &Value) -> Recorded {
    let mut headers = HeaderMap::new();
    for (name, value) in request["headers"].as_object().expect("headers") {
        headers.insert(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value.as_str().unwrap()).unwrap(),
        );
    }
    Recorded {
        method: Method::POST,
        uri: String::new(),
        headers,
        body: request["body"].as_str().unwrap().to_owned().into(),
        at: Instant::now(),
        answered: StatusCode::OK,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_answers_what_a_delivery_sends_and_sends_nothing() {
    let receiver = Receiver::start().await;
    let server = Server::start(&config()).await;
    let sub = server
        .create_subscription(
            TENANT,
            &json!({
                "url": receiver.url(),
                "events": ["report_run_completed"],
                "plugin": "slack-threshold",
                "plugin_config": {"pointer": "/rows/0/revenue", "op": ">", "threshold": 100000},
            }),
        )
        .await;
    let (sub_id, secret) = (sub["id"].as_str().unwrap(), sub["secret"].as_str().unwrap());
    let above = server.publish(TENANT, &report(128450.5)).await["id"].clone();
    let below = server.publish(TENANT, &report(42000.5)).await["id"].clone();
    let delivered = receiver.wait_for(1, SOON).await.remove(0);
    server.wait_attempts(TENANT, sub_id, 2, SOON).await;

    let path = format!("/v1/tenants/{TENANT}/subscriptions/{sub_id}/dry-run");
    let dry_run = |body: Value| {
        let (server, path) = (&server, &path);
        async move { server.post(path, ADMIN, &body).await }
    };

    let (status, run) = dry_run(json!({"event_id": above})).await;
    assert_eq!(status, StatusCode::OK, "{run}");
    assert_eq!(run["outcome"], "deliver", "{run}");
    assert_eq!(run["reason"], Value::Null);
    let request = &run["request"];
    assert_eq!(
        request["body"].as_str().unwrap().as_bytes(),
        &delivered.body[..],
        "the dry run's body is byte for byte what the receiver got"
    );
    assert_eq!(request["content_type"], "application/json");
    assert_eq!(request["headers"]["content-type"], "application/json");
    assert_eq!(request["headers"]["webhook-id"], above);
    assert_signed(&as_recorded(request), secret);
    let logs = run["plugin_logs"].as_array().unwrap();
    assert!(
        logs.iter()
            .any(|l| l["message"] == "revenue 128450.5 is > 100000: notifying Slack"),
        "{run}"
    );
    assert!(run["duration_us"].as_u64().unwrap() > 0, "{run}");

    let (status, run) = dry_run(json!({"event_id": below})).await;
    assert_eq!(status, StatusCode::OK, "{run}");
    assert_eq!(
        run,
        json!({
            "outcome": "skip", "request": null, "reason": "revenue 42000.5 is not > 100000",
            "plugin_logs": [], "duration_us": run["duration_us"],
        })
    );

    // Pasted events, as a source would post them; never stored.
    let (status, run) = dry_run(json!({"event": report(99999.0)})).await;
    assert_eq!((status, &run["outcome"]), (StatusCode::OK, &json!("skip")));
    assert_eq!(run["reason"], "revenue 99999 is not > 100000");
    let (status, run) = dry_run(json!({"event": report(100001.0)})).await;
    assert_eq!(
        (status, &run["outcome"]),
        (StatusCode::OK, &json!("deliver"))
    );
    let text: Value = serde_json::from_str(run["request"]["body"].as_str().unwrap()).unwrap();
    assert!(text["text"].as_str().unwrap().contains("100001"), "{run}");
    let pasted_id = run["request"]["headers"]["webhook-id"].as_str().unwrap();
    let (status, _) = server
        .get(&format!("/v1/tenants/{TENANT}/events/{pasted_id}"), ADMIN)
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a pasted event is not stored"
    );
    let (status, run) = dry_run(
        json!({"event": {"type": "x", "content_type": "application/xml", "payload": {"a": 1}}}),
    )
    .await;
    assert_error(
        &(status, run),
        StatusCode::UNPROCESSABLE_ENTITY,
        "checked as an ingest",
    );

    // Nothing was sent or stored.
    receiver.assert_stays(1, QUIET).await;
    assert_eq!(server.attempts(TENANT, sub_id).await.len(), 2);
    for id in [&above, &below] {
        let event = server.event(TENANT, id.as_str().unwrap()).await;
        assert_eq!(event["deliveries"].as_array().unwrap().len(), 1, "{event}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_of_something_unknown_or_unallowed_is_refused() {
    let server = Server::start(&config()).await;
    let sub = server
        .create_subscription(
            TENANT,
            &json!({"url": "http://127.0.0.1:9/hook", "events": ["*"], "enabled": false}),
        )
        .await;
    let sub_id = sub["id"].as_str().unwrap();
    let event = server.publish(TENANT, &report(1.0)).await["id"].clone();
    let path = format!("/v1/tenants/{TENANT}/subscriptions/{sub_id}/dry-run");

    // A disabled subscription without a plugin: the default body.
    let (status, run) = server.post(&path, ADMIN, &json!({"event_id": event})).await;
    assert_eq!(
        (status, &run["outcome"]),
        (StatusCode::OK, &json!("deliver")),
        "{run}"
    );
    let body: Value = serde_json::from_str(run["request"]["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["id"], event);
    assert_eq!(body["data"]["rows"][0]["revenue"], 1.0);
    assert_eq!(run["duration_us"], 0);

    let unknown = "evt_01ARZ3NDEKTSV4RRFFQ69G5FAV";
    let got = server
        .post(&path, ADMIN, &json!({"event_id": unknown}))
        .await;
    assert_error(&got, StatusCode::NOT_FOUND, "unknown event");
    let other = server.publish("globex", &report(1.0)).await["id"].clone();
    let got = server.post(&path, ADMIN, &json!({"event_id": other})).await;
    assert_error(&got, StatusCode::NOT_FOUND, "another tenant's event");
    let got = server
        .post(
            &format!("/v1/tenants/{TENANT}/subscriptions/nope/dry-run"),
            ADMIN,
            &json!({"event_id": event}),
        )
        .await;
    assert_error(&got, StatusCode::NOT_FOUND, "unknown subscription");
    for body in [json!({}), json!({"event_id": event, "event": report(1.0)})] {
        let got = server.post(&path, ADMIN, &body).await;
        assert_error(&got, StatusCode::UNPROCESSABLE_ENTITY, "exactly one event");
    }
    let got = server
        .post(&path, Some(PUBLISHER), &json!({"event_id": event}))
        .await;
    assert_error(&got, StatusCode::FORBIDDEN, "a publisher");
}

#[test]
fn plugin_run_takes_the_event_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let event = dir.path().join("event.json");
    std::fs::write(&event, report(128450.5).to_string()).unwrap();
    let wasm = build_plugin("slack-threshold").display().to_string();
    let event = event.display().to_string();
    let config = r#"{"pointer": "/rows/0/revenue", "op": ">", "threshold": 1, "message": "tenant: {tenant}"}"#;
    let run = |tenant: Option<&str>| {
        let mut args = vec![
            "plugin", "run", "--plugin", &wasm, "--event", &event, "--config", config,
        ];
        args.extend(tenant.map(|t| ["--tenant", t]).into_iter().flatten());
        let (status, stdout, stderr) = run_binary(&args, dir.path(), SOON * 3);
        assert!(status.success(), "{stdout}\n{stderr}");
        stdout
    };
    assert!(run(None).contains("tenant: dry-run"), "the default tenant");
    assert!(run(Some("acme")).contains("tenant: acme"), "--tenant");
}
