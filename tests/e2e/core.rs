//! The dispatcher core, end to end: ingest, signing, retries and their
//! timing, failure handling, durability across `kill -9`, ordered delivery,
//! authorization, input and config validation, idempotency, resend,
//! graceful shutdown, config-declared subscriptions, endpoint verification
//! and metrics.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::harness::{
    ADMIN, Answer, ConfigBuilder, Receiver, Server, assert_error, assert_signed, eventually,
    metric_total, run_binary, sample, unix_now, wait_until,
};

/// Deadline of waits for something that should happen almost at once.
const SOON: Duration = Duration::from_secs(10);

/// How long to keep watching that something does not happen.
const QUIET: Duration = Duration::from_millis(600);

/// Scheduling may fire up to this much before the stored due time, which is
/// kept to the millisecond.
const CLOCK_SLACK: Duration = Duration::from_millis(5);

/// A subscription to every event type, posting to `receiver`.
fn all_events(receiver: &Receiver) -> Value {
    json!({"url": receiver.url(), "events": ["*"]})
}

fn id_of(value: &Value) -> String {
    value["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {value}"))
        .to_owned()
}

/// A well-formed id that names nothing.
fn unknown(prefix: &str) -> String {
    format!("{prefix}01ARZ3NDEKTSV4RRFFQ69G5FAV")
}

#[tokio::test(flavor = "multi_thread")]
async fn delivers_a_signed_sample_event_and_records_the_attempt() {
    let receiver = Receiver::start().await;
    receiver.always(Answer::ok().body("thanks"));
    let server = Server::start(&ConfigBuilder::new().build()).await;
    let tenant = "acme-finance";
    let sub = server
        .create_subscription(
            tenant,
            &json!({"url": receiver.url(), "events": ["dashboard.*"], "headers": {"X-Team": "data"}, "description": "dashboards"}),
        )
        .await;
    let sub_id = id_of(&sub);
    let secret = sub["secret"]
        .as_str()
        .expect("the secret is shown at creation");
    assert!(secret.starts_with("whsec_"), "secret {secret}");
    assert_eq!(sub["managed_by"], "api");
    assert_eq!(sub["url"], receiver.url());

    let event = sample("alpana-dashboard-updated");
    let receipt = server.publish(tenant, &event).await;
    let event_id = id_of(&receipt);
    assert!(event_id.starts_with("evt_"), "event id {event_id}");
    assert_eq!(receipt["deliveries"], 1);

    let request = receiver.wait_for(1, SOON).await.remove(0);
    assert_eq!(request.method, "POST");
    assert_eq!(request.uri, "/hook");
    assert_eq!(request.webhook_id(), event_id);
    assert_eq!(request.header("content-type"), Some("application/json"));
    let agent = request.header("user-agent").expect("a user-agent");
    assert!(agent.starts_with("hookshape/"), "user-agent {agent}");
    assert_eq!(request.header("x-team"), Some("data"));
    assert_signed(&request, secret);
    let signing_key = hookshape_signing::Secret::parse(secret).expect("a valid secret");
    hookshape_signing::verify(
        &signing_key,
        request.webhook_id(),
        request.header("webhook-timestamp").unwrap(),
        request.header("webhook-signature").unwrap(),
        &request.body,
        unix_now(),
        Duration::from_secs(300),
    )
    .expect("hookshape's own verifier accepts the delivery");

    let body = request.json();
    let keys: HashSet<&str> = body
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        HashSet::from(["id", "type", "tenant", "timestamp", "data"]),
        "body {body}"
    );
    assert_eq!(body["id"], event_id.as_str());
    assert_eq!(body["type"], "dashboard.updated");
    assert_eq!(body["tenant"], tenant);
    assert_eq!(body["data"], event["payload"]);
    assert_rfc3339_utc(body["timestamp"].as_str().expect("a timestamp string"));

    let attempts = server.wait_attempts(tenant, &sub_id, 1, SOON).await;
    assert_eq!(attempts.len(), 1, "attempts {attempts:?}");
    let attempt = &attempts[0];
    assert!(id_of(attempt).starts_with("att_"), "attempt {attempt}");
    assert_eq!(attempt["outcome"], "delivered", "attempt {attempt}");
    assert_eq!(attempt["status_code"], 200);
    assert_eq!(attempt["attempt"], 1);
    assert_eq!(attempt["event_id"], event_id.as_str());
    assert_eq!(attempt["event_type"], "dashboard.updated");
    assert_eq!(attempt["subscription_id"], sub_id.as_str());
    assert_eq!(
        attempt["request_body"],
        request.text().as_str(),
        "the kept request body is what was sent"
    );
    assert_eq!(attempt["response_body"], "thanks");
    assert!(attempt["duration_ms"].is_number(), "attempt {attempt}");

    let stored = server.settled_event(tenant, &event_id, SOON).await;
    assert_eq!(stored["id"], event_id.as_str());
    assert_eq!(stored["source_id"], "alp-3321");
    assert_eq!(stored["type"], "dashboard.updated");
    assert_eq!(stored["tenant"], tenant);
    assert_eq!(stored["payload"], event["payload"]);
    assert_eq!(
        stored["timestamp"], body["timestamp"],
        "the body carries the ingest time"
    );
    let deliveries = stored["deliveries"].as_array().expect("deliveries");
    assert_eq!(deliveries.len(), 1, "event {stored}");
    assert_eq!(deliveries[0]["subscription_id"], sub_id.as_str());
    assert_eq!(deliveries[0]["state"], "delivered");
    assert_eq!(deliveries[0]["attempts"], 1);
    assert!(deliveries[0]["next_attempt_at"].is_null(), "event {stored}");
}

#[tokio::test(flavor = "multi_thread")]
async fn delivers_an_xml_document_as_a_string() {
    let receiver = Receiver::start().await;
    let server = Server::start(&ConfigBuilder::new().build()).await;
    let sub = server
        .create_subscription(
            "acme",
            &json!({"url": receiver.url(), "events": ["project.published"]}),
        )
        .await;

    let event = sample("atscale-project-published");
    let xml = event["payload"]
        .as_str()
        .expect("the sample's payload is a document string");
    let event_id = id_of(&server.publish("acme", &event).await);

    let request = receiver.wait_for(1, SOON).await.remove(0);
    assert_signed(&request, sub["secret"].as_str().unwrap());
    assert_eq!(request.header("content-type"), Some("application/json"));
    let body = request.json();
    assert_eq!(body["id"], event_id.as_str());
    assert_eq!(body["type"], "project.published");
    assert_eq!(body["data"], xml, "data is the XML document, unchanged");

    let stored = server.settled_event("acme", &event_id, SOON).await;
    assert_eq!(stored["content_type"], "application/xml");
    assert_eq!(stored["payload"], xml);
    assert_eq!(stored["deliveries"][0]["state"], "delivered");
}

#[tokio::test(flavor = "multi_thread")]
async fn retries_on_the_schedule_until_success() {
    let receiver = Receiver::start().await;
    receiver.push(Answer::status(503)).push(Answer::status(503));
    let server = Server::start(
        &ConfigBuilder::new()
            .retry_schedule(&["300ms", "600ms"])
            .build(),
    )
    .await;
    let sub = server
        .create_subscription("acme", &all_events(&receiver))
        .await;
    let sub_id = id_of(&sub);
    let event_id = id_of(
        &server
            .publish("acme", &sample("alpana-comment-added"))
            .await,
    );

    let requests = receiver.wait_for(3, SOON).await;
    assert!(
        requests.iter().all(|r| r.webhook_id() == event_id),
        "one event, retried"
    );
    for r in &requests {
        assert_signed(r, sub["secret"].as_str().unwrap());
    }
    for (i, wait) in [Duration::from_millis(300), Duration::from_millis(600)]
        .into_iter()
        .enumerate()
    {
        let gap = requests[i + 1].at - requests[i].at;
        assert!(
            gap + CLOCK_SLACK >= wait,
            "retry {} came after {gap:?}, before its {wait:?}",
            i + 1
        );
        assert!(
            gap < wait + Duration::from_secs(3),
            "retry {} came only after {gap:?}",
            i + 1
        );
    }

    let attempts = server.wait_attempts("acme", &sub_id, 3, SOON).await;
    let outcomes: Vec<&str> = attempts
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["failed", "failed", "delivered"]);
    let statuses: Vec<&Value> = attempts.iter().map(|a| &a["status_code"]).collect();
    assert_eq!(statuses, [&json!(503), &json!(503), &json!(200)]);
    let numbers: Vec<&Value> = attempts.iter().map(|a| &a["attempt"]).collect();
    assert_eq!(numbers, [&json!(1), &json!(2), &json!(3)]);

    let stored = server.settled_event("acme", &event_id, SOON).await;
    assert_eq!(stored["deliveries"][0]["state"], "delivered");
    assert_eq!(stored["deliveries"][0]["attempts"], 3);
    receiver.assert_stays(3, QUIET).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_400_is_final() {
    let receiver = Receiver::start().await;
    receiver.always(Answer::status(400).body("bad hook"));
    let server = Server::start(
        &ConfigBuilder::new()
            .retry_schedule(&["100ms", "100ms"])
            .build(),
    )
    .await;
    let sub_id = id_of(
        &server
            .create_subscription("acme", &all_events(&receiver))
            .await,
    );
    let event_id = id_of(
        &server
            .publish("acme", &sample("alpana-comment-added"))
            .await,
    );

    receiver.wait_for(1, SOON).await;
    let stored = server.settled_event("acme", &event_id, SOON).await;
    assert_eq!(stored["deliveries"][0]["state"], "failed", "event {stored}");
    assert!(
        stored["deliveries"][0]["next_attempt_at"].is_null(),
        "event {stored}"
    );
    let attempts = server.attempts("acme", &sub_id).await;
    assert_eq!(attempts.len(), 1, "attempts {attempts:?}");
    assert_eq!(attempts[0]["outcome"], "failed");
    assert_eq!(attempts[0]["status_code"], 400);
    assert_eq!(attempts[0]["response_body"], "bad hook");
    receiver.assert_stays(1, QUIET).await;
    assert!(
        server.subscription("acme", &sub_id).await["enabled"]
            .as_bool()
            .unwrap(),
        "a 400 does not disable"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_410_disables_the_subscription() {
    let receiver = Receiver::start().await;
    receiver.always(Answer::status(410));
    let server = Server::start(&ConfigBuilder::new().retry_schedule(&["100ms"]).build()).await;
    let sub_id = id_of(
        &server
            .create_subscription("acme", &all_events(&receiver))
            .await,
    );
    let first = id_of(
        &server
            .publish("acme", &sample("alpana-comment-added"))
            .await,
    );

    receiver.wait_for(1, SOON).await;
    let stored = server.settled_event("acme", &first, SOON).await;
    assert_eq!(stored["deliveries"][0]["state"], "failed", "event {stored}");
    let sub = server.subscription("acme", &sub_id).await;
    assert_eq!(sub["enabled"], false, "subscription {sub}");
    let reason = sub["disabled_reason"]
        .as_str()
        .unwrap_or_else(|| panic!("no disabled_reason in {sub}"));
    assert!(!reason.trim().is_empty());

    let later = server
        .publish("acme", &sample("alpana-dashboard-updated"))
        .await;
    assert_eq!(
        later["deliveries"], 0,
        "a disabled subscription gets no deliveries: {later}"
    );
    receiver.assert_stays(1, QUIET).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn retry_after_stretches_the_scheduled_wait() {
    let receiver = Receiver::start().await;
    receiver.push(Answer::status(429).header("retry-after", "2"));
    let server = Server::start(&ConfigBuilder::new().retry_schedule(&["100ms"]).build()).await;
    let sub_id = id_of(
        &server
            .create_subscription("acme", &all_events(&receiver))
            .await,
    );
    let event_id = id_of(
        &server
            .publish("acme", &sample("alpana-comment-added"))
            .await,
    );

    let requests = receiver.wait_for(2, SOON).await;
    let gap = requests[1].at - requests[0].at;
    assert!(
        gap + CLOCK_SLACK >= Duration::from_secs(2),
        "the retry came after {gap:?}, before Retry-After's 2 s"
    );
    assert!(
        gap < Duration::from_secs(5),
        "the retry came only after {gap:?}"
    );
    let attempts = server.wait_attempts("acme", &sub_id, 2, SOON).await;
    assert_eq!(attempts[0]["status_code"], 429);
    assert_eq!(attempts[0]["outcome"], "failed");
    assert_eq!(attempts[1]["outcome"], "delivered");
    assert_eq!(
        server.settled_event("acme", &event_id, SOON).await["deliveries"][0]["state"],
        "delivered"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_events_survive_kill_9() {
    const EVENTS: usize = 50;
    let receiver = Receiver::start().await;
    receiver.always(Answer::ok().delay(Duration::from_millis(200)));
    let mut server =
        Server::start(&ConfigBuilder::new().retry_schedule(&["100ms"; 5]).build()).await;
    server
        .create_subscription("acme", &all_events(&receiver))
        .await;

    let acknowledged = server
        .publish_numbered("acme", "order.created", EVENTS)
        .await;
    receiver.wait_for(1, SOON).await;
    server.kill9();
    let answered_before_kill = receiver.answered();
    server.restart().await;

    let deadline = Duration::from_secs(30);
    wait_until(deadline, "every acknowledged event at the receiver", || {
        let seen: HashSet<String> = receiver
            .requests()
            .iter()
            .map(|r| r.webhook_id().to_owned())
            .collect();
        acknowledged.iter().all(|id| seen.contains(id))
    })
    .await;
    assert!(
        answered_before_kill < EVENTS,
        "every delivery was answered before the kill, so the restart proved nothing; slow the receiver down"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ordered_subscriptions_deliver_one_at_a_time_in_ingest_order() {
    const EVENTS: usize = 20;
    let receiver = Receiver::start().await;
    // Every third request fails, so some events need a retry while later
    // ones wait their turn.
    receiver.respond_with(|n, _| {
        if n % 3 == 2 {
            Answer::status(500)
        } else {
            Answer::ok()
        }
    });
    let server = Server::start(
        &ConfigBuilder::new()
            .retry_schedule(&["50ms", "50ms", "50ms"])
            .build(),
    )
    .await;
    let sub = server
        .create_subscription(
            "acme",
            &json!({"url": receiver.url(), "events": ["*"], "ordered": true}),
        )
        .await;
    assert_eq!(sub["ordered"], true, "subscription {sub}");

    let ingested = server
        .publish_numbered("acme", "ledger.entry", EVENTS)
        .await;
    wait_until(
        Duration::from_secs(20),
        "every ordered event delivered",
        || receiver.requests().iter().filter(|r| r.succeeded()).count() >= EVENTS,
    )
    .await;

    let log = receiver.requests();
    let position: HashMap<&str, usize> = ingested
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let mut first_successes = Vec::new();
    let mut delivered = HashSet::new();
    for (i, request) in log.iter().enumerate() {
        let id = request.webhook_id();
        let rank = *position
            .get(id)
            .unwrap_or_else(|| panic!("unknown webhook-id {id}"));
        let missing: Vec<usize> = (0..rank).filter(|j| !delivered.contains(j)).collect();
        assert!(
            missing.is_empty(),
            "request {i} carried event #{rank} while events {missing:?} were not delivered yet"
        );
        if request.succeeded() && delivered.insert(rank) {
            first_successes.push(rank);
        }
    }
    assert_eq!(first_successes, (0..EVENTS).collect::<Vec<_>>());
    assert!(
        log.len() > EVENTS,
        "the failing answers caused retries ({} requests)",
        log.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn turning_ordering_off_releases_the_deliveries_waiting_behind_the_head() {
    const EVENTS: usize = 5;
    let receiver = Receiver::start().await;
    receiver.always(Answer::status(503));
    let server = Server::start(&ConfigBuilder::new().retry_schedule(&["300ms"; 10]).build()).await;
    let sub = server
        .create_subscription(
            "acme",
            &json!({"url": receiver.url(), "events": ["*"], "ordered": true}),
        )
        .await;
    let sub_id = sub["id"].as_str().expect("subscription id").to_owned();
    let ingested: HashSet<String> = server
        .publish_numbered("acme", "ledger.entry", EVENTS)
        .await
        .into_iter()
        .collect();
    // The head fails and is retried; nothing behind it is sent meanwhile.
    wait_until(SOON, "the head retried", || receiver.count() >= 2).await;
    let (sent, _) = receiver.webhook_ids();
    assert_eq!(sent.len(), 1, "only the head was attempted: {sent:?}");

    let (status, body) = server
        .patch(
            &format!("/v1/tenants/acme/subscriptions/{sub_id}"),
            ADMIN,
            &json!({"ordered": false}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The receiver still fails: the released deliveries are attempted
    // anyway, no longer waiting for the head.
    wait_until(SOON, "every event attempted once ordering was off", || {
        receiver.webhook_ids().0 == ingested
    })
    .await;
    receiver.always(Answer::ok());
    wait_until(SOON, "every event delivered", || {
        receiver.webhook_ids().1 == ingested
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_are_checked_for_role_and_tenant() {
    let server = Server::start(
        &ConfigBuilder::new()
            .token("acme-admin-token", "admin", &["acme"])
            .token("publisher-token", "publisher", &["*"])
            .build(),
    )
    .await;
    let subs = "/v1/tenants/acme/subscriptions";
    let new_sub = json!({"url": "http://127.0.0.1:9/hook", "events": ["*"]});

    assert_error(
        &server.get(subs, None).await,
        StatusCode::UNAUTHORIZED,
        "no token",
    );
    assert_error(
        &server.get(subs, Some("who-knows")).await,
        StatusCode::UNAUTHORIZED,
        "unknown token",
    );
    assert_error(
        &server
            .post(
                "/v1/tenants/acme/events",
                None,
                &sample("alpana-comment-added"),
            )
            .await,
        StatusCode::UNAUTHORIZED,
        "ingest without a token",
    );
    assert_error(
        &server.post(subs, Some("publisher-token"), &new_sub).await,
        StatusCode::FORBIDDEN,
        "a publisher creating a subscription",
    );
    assert_error(
        &server.get(subs, Some("publisher-token")).await,
        StatusCode::FORBIDDEN,
        "a publisher listing subscriptions",
    );
    assert_error(
        &server
            .get("/v1/tenants/other/subscriptions", Some("acme-admin-token"))
            .await,
        StatusCode::FORBIDDEN,
        "acme's admin on another tenant",
    );
    assert_error(
        &server
            .post(
                "/v1/tenants/other/subscriptions",
                Some("acme-admin-token"),
                &new_sub,
            )
            .await,
        StatusCode::FORBIDDEN,
        "acme's admin creating in another tenant",
    );

    let (status, sub) = server.post(subs, Some("acme-admin-token"), &new_sub).await;
    assert_eq!(status, StatusCode::CREATED, "acme's admin in acme: {sub}");
    let (status, list) = server.get(subs, Some("acme-admin-token")).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["data"].as_array().unwrap().len(), 1);

    let (status, receipt) = server
        .post(
            "/v1/tenants/acme/events",
            Some("publisher-token"),
            &sample("alpana-comment-added"),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "a publisher posting an event: {receipt}"
    );
    let event_path = format!("/v1/tenants/acme/events/{}", id_of(&receipt));
    assert_error(
        &server.get(&event_path, Some("publisher-token")).await,
        StatusCode::FORBIDDEN,
        "a publisher reading",
    );
    assert_eq!(server.get(&event_path, ADMIN).await.0, StatusCode::OK);

    let (status, health) = server.get("/healthz", None).await;
    assert_eq!((status, health), (StatusCode::OK, json!({"status": "ok"})));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_refused_and_nothing_is_stored() {
    let server = Server::start(
        &ConfigBuilder::new()
            .server("max_event_bytes", "1024")
            .delivery("allow_private_targets", "false")
            .build(),
    )
    .await;
    let events = "/v1/tenants/acme/events";
    let subs = "/v1/tenants/acme/subscriptions";
    // A valid subscription whose filter matches none of the events below, so
    // nothing is ever sent off the machine.
    let valid = server
        .create_subscription(
            "acme",
            &json!({"url": "https://hooks.example.com/in", "events": ["never.sent"]}),
        )
        .await;

    assert_error(
        &server.post_raw(events, ADMIN, b"{\"type\": \"x\", ").await,
        StatusCode::BAD_REQUEST,
        "malformed JSON",
    );
    assert_error(
        &server
            .post(events, ADMIN, &json!({"id": "src-1", "payload": {"a": 1}}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "an event without a type",
    );
    let big = json!({"id": "src-2", "type": "big.one", "payload": {"blob": "x".repeat(2000)}});
    assert_error(
        &server.post(events, ADMIN, &big).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "an event over max_event_bytes",
    );

    for url in [
        "not a url",
        "ftp://x",
        "http://127.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
    ] {
        assert_error(
            &server
                .post(subs, ADMIN, &json!({"url": url, "events": ["*"]}))
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!("a subscription to {url:?}"),
        );
    }
    assert_error(
        &server.post_raw(subs, ADMIN, b"{\"url\": ").await,
        StatusCode::BAD_REQUEST,
        "a malformed subscription",
    );

    assert_error(
        &server
            .get(&format!("{events}/{}", unknown("evt_")), ADMIN)
            .await,
        StatusCode::NOT_FOUND,
        "an unknown event",
    );
    assert_error(
        &server
            .get(&format!("{subs}/{}", unknown("sub_")), ADMIN)
            .await,
        StatusCode::NOT_FOUND,
        "an unknown subscription",
    );
    assert_error(
        &server
            .get(&format!("{subs}/{}/attempts", unknown("sub_")), ADMIN)
            .await,
        StatusCode::NOT_FOUND,
        "the attempts of an unknown subscription",
    );
    assert_error(
        &server
            .post(
                &format!("/v1/tenants/acme/attempts/{}/resend", unknown("att_")),
                ADMIN,
                &json!({}),
            )
            .await,
        StatusCode::NOT_FOUND,
        "resending an unknown attempt",
    );

    assert_eq!(
        server.subscription_ids("acme").await,
        [id_of(&valid)],
        "only the valid subscription is stored"
    );
    // Had the refused events been stored, their source ids would now be
    // duplicates.
    for source_id in ["src-1", "src-2"] {
        let receipt = server
            .publish(
                "acme",
                &json!({"id": source_id, "type": "small.one", "payload": {}}),
            )
            .await;
        assert!(
            receipt.get("duplicate").is_none_or(|d| d == false),
            "{source_id} was stored: {receipt}"
        );
        assert_eq!(receipt["deliveries"], 0);
    }
    let metrics = server.metrics().await;
    assert_eq!(
        metric_total(&metrics, "hookshape_events_received_total"),
        2.0,
        "metrics:\n{metrics}"
    );
}

#[test]
fn broken_config_files_are_refused_with_file_line_and_key() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let valid = ConfigBuilder::new()
        .raw("[[subscriptions]]\nid = \"declared\"\ntenant = \"acme\"\nurl = \"https://hooks.example.com/in\"\nevents = [\"*\"]")
        .build();
    // (name, file text, the key the message must name, the 1-based line of the problem)
    let broken: Vec<(&str, String, Option<&str>, usize)> = vec![
        ("syntax", "[server]\nmax_event_bytes = 1024\nlisten = \"127.0.0.1:0\n".to_owned(), None, 3),
        ("unknown-key", "[server]\nmax_event_bytes = 1024\n\n[delivery]\nretry_schedul = [\"1s\"]\n".to_owned(), Some("retry_schedul"), 5),
        ("bad-duration", "[delivery]\nallow_private_targets = true\ntimeout = \"5 parsecs\"\n".to_owned(), Some("timeout"), 3),
        (
            "bad-url",
            "[[subscriptions]]\nid = \"declared\"\ntenant = \"acme\"\nurl = \"not a url\"\nevents = [\"*\"]\n".to_owned(),
            Some("url"),
            4,
        ),
    ];

    let valid_path = dir.path().join("valid.toml");
    std::fs::write(&valid_path, &valid).unwrap();
    let (status, _, stderr) = run_binary(
        &["config", "check", valid_path.to_str().unwrap()],
        dir.path(),
        SOON,
    );
    assert!(
        status.success(),
        "config check of a valid file failed: {stderr}\n{valid}"
    );

    for (name, text, key, line) in broken {
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, &text).unwrap();
        let path_str = path.to_str().unwrap();
        let data = dir.path().join(format!("data-{name}"));
        let serve = [
            "serve",
            "--config",
            path_str,
            "--listen",
            "127.0.0.1:0",
            "--data",
            data.to_str().unwrap(),
        ];
        for args in [&["config", "check", path_str][..], &serve[..]] {
            let (status, stdout, stderr) = run_binary(args, dir.path(), SOON);
            let context = format!(
                "`hookshape {}` on {name}:\n{text}\nstdout: {stdout}\nstderr: {stderr}",
                args.join(" ")
            );
            assert!(!status.success(), "exited 0: {context}");
            assert!(!stdout.contains("listening"), "served anyway: {context}");
            assert!(
                stderr.contains(path_str),
                "the file is not named: {context}"
            );
            assert!(
                stderr.contains(&format!(":{line}")) || stderr.contains(&format!("line {line}")),
                "line {line} is not named: {context}"
            );
            if let Some(key) = key {
                assert!(
                    stderr.contains(key),
                    "the key {key} is not named: {context}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repeated_source_id_is_ingested_once() {
    let receiver = Receiver::start().await;
    let server = Server::start(&ConfigBuilder::new().build()).await;
    server
        .create_subscription("acme", &all_events(&receiver))
        .await;
    let event = sample("analyst-studio-report-run-completed");
    assert!(event["id"].is_string(), "the sample carries a source id");

    let first = server.publish("acme", &event).await;
    assert!(
        first.get("duplicate").is_none_or(|d| d == false),
        "first answer {first}"
    );
    let (status, second) = server.post("/v1/tenants/acme/events", ADMIN, &event).await;
    assert_eq!(status, StatusCode::OK, "the repeat: {second}");
    assert_eq!(second["duplicate"], true, "the repeat: {second}");
    assert_eq!(
        second["id"], first["id"],
        "the repeat answers with the first event id"
    );
    assert_eq!(second["deliveries"], first["deliveries"]);

    let requests = receiver.wait_for(1, SOON).await;
    assert_eq!(requests[0].webhook_id(), id_of(&first));
    receiver.assert_stays(1, QUIET).await;

    // Source ids are per tenant.
    let elsewhere = server.publish("other", &event).await;
    assert_ne!(elsewhere["id"], first["id"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn resending_an_attempt_sends_the_event_again() {
    let receiver = Receiver::start().await;
    let server = Server::start(&ConfigBuilder::new().build()).await;
    let sub = server
        .create_subscription("acme", &all_events(&receiver))
        .await;
    let sub_id = id_of(&sub);
    let event_id = id_of(
        &server
            .publish("acme", &sample("atscale-snapshot-created"))
            .await,
    );
    let first = receiver.wait_for(1, SOON).await.remove(0);
    let attempt = server
        .wait_attempts("acme", &sub_id, 1, SOON)
        .await
        .remove(0);

    let (status, resent) = server
        .post(
            &format!("/v1/tenants/acme/attempts/{}/resend", id_of(&attempt)),
            ADMIN,
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "resend: {resent}");
    let delivery_id = resent["delivery_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no delivery_id in {resent}"));
    assert!(delivery_id.starts_with("dlv_"), "delivery id {delivery_id}");

    let again = receiver.wait_for(2, SOON).await.remove(1);
    assert_eq!(
        again.webhook_id(),
        event_id,
        "a resend keeps the webhook-id"
    );
    assert_eq!(again.json(), first.json(), "a resend carries the same body");
    assert_signed(&again, sub["secret"].as_str().unwrap());
    let attempts = server.wait_attempts("acme", &sub_id, 2, SOON).await;
    assert!(
        attempts
            .iter()
            .all(|a| a["event_id"] == event_id.as_str() && a["outcome"] == "delivered"),
        "{attempts:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_shuts_down_cleanly_and_keeps_the_work() {
    let receiver = Receiver::start().await;
    receiver.always(Answer::ok().delay(Duration::from_millis(500)));
    let mut server = Server::start(&ConfigBuilder::new().build()).await;
    server
        .create_subscription("acme", &all_events(&receiver))
        .await;
    let event_id = id_of(
        &server
            .publish("acme", &sample("alpana-comment-added"))
            .await,
    );
    receiver.wait_for(1, SOON).await;

    let status = server.terminate(Duration::from_secs(8)).await;
    assert_eq!(status.code(), Some(0), "exit status {status}");

    // Finished before exiting, or handed back and sent after the restart.
    server.restart().await;
    let stored = server.settled_event("acme", &event_id, SOON).await;
    assert_eq!(
        stored["deliveries"][0]["state"], "delivered",
        "event {stored}"
    );
    assert!(
        receiver
            .requests()
            .iter()
            .all(|r| r.webhook_id() == event_id)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn config_declared_subscriptions_are_reconciled_and_read_only() {
    let receiver = Receiver::start().await;
    let secret = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    let declared = format!(
        "[[subscriptions]]\nid = \"team-feed\"\ntenant = \"acme\"\nurl = \"{}\"\nevents = [\"dashboard_comment.*\"]\nsecret = \"{secret}\"\nheaders = {{ \"X-Team\" = \"data\" }}\n",
        receiver.url()
    );
    let mut server = Server::start(&ConfigBuilder::new().raw(&declared).build()).await;
    let path = "/v1/tenants/acme/subscriptions/team-feed";

    let sub = server.subscription("acme", "team-feed").await;
    assert_eq!(sub["managed_by"], "config", "subscription {sub}");
    assert_eq!(sub["url"], receiver.url());

    let comment = sample("alpana-comment-added");
    let event_id = id_of(&server.publish("acme", &comment).await);
    let request = receiver.wait_for(1, SOON).await.remove(0);
    assert_eq!(request.webhook_id(), event_id);
    assert_eq!(request.header("x-team"), Some("data"));
    assert_signed(&request, secret);
    let unmatched = server
        .publish("acme", &sample("alpana-dashboard-updated"))
        .await;
    assert_eq!(
        unmatched["deliveries"], 0,
        "the filter is dashboard_comment.*: {unmatched}"
    );

    assert_error(
        &server.patch(path, ADMIN, &json!({"enabled": false})).await,
        StatusCode::CONFLICT,
        "PATCH of a declared subscription",
    );
    assert_error(
        &server.delete(path, ADMIN).await,
        StatusCode::CONFLICT,
        "DELETE of a declared subscription",
    );
    assert_eq!(
        server.subscription("acme", "team-feed").await["enabled"],
        true
    );

    // A restart on the same file keeps it (and its secret) ...
    server.restart().await;
    assert_eq!(
        server.subscription("acme", "team-feed").await["managed_by"],
        "config"
    );
    // ... and one without it removes it.
    server.restart_with(&ConfigBuilder::new().build()).await;
    assert_error(
        &server.get(path, ADMIN).await,
        StatusCode::NOT_FOUND,
        "a subscription removed from the file",
    );
    assert!(server.subscription_ids("acme").await.is_empty());
    let after = server
        .publish(
            "acme",
            &json!({"type": "dashboard_comment.added", "payload": {}}),
        )
        .await;
    assert_eq!(after["deliveries"], 0, "{after}");
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_sends_a_test_event_and_stores_only_working_endpoints() {
    let working = Receiver::start().await;
    let broken = Receiver::start().await;
    broken.always(Answer::status(500));
    let server = Server::start(&ConfigBuilder::new().build()).await;

    let sub = server
        .create_subscription(
            "acme",
            &json!({"url": working.url(), "events": ["*"], "verify": true}),
        )
        .await;
    // The test event is sent before the 201, so it is already here.
    let requests = working.requests();
    assert_eq!(
        requests.len(),
        1,
        "one webhook.test request before the answer"
    );
    assert_eq!(requests[0].json()["type"], "webhook.test");
    assert_signed(&requests[0], sub["secret"].as_str().unwrap());

    assert_error(
        &server
            .post(
                "/v1/tenants/acme/subscriptions",
                ADMIN,
                &json!({"url": broken.url(), "events": ["*"], "verify": true}),
            )
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "verify against an endpoint answering 500",
    );
    assert!(broken.count() >= 1, "the broken endpoint was tried");
    assert_eq!(
        server.subscription_ids("acme").await,
        [id_of(&sub)],
        "only the verified subscription is stored"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_received_events() {
    let receiver = Receiver::start().await;
    let server = Server::start(&ConfigBuilder::new().build()).await;
    server
        .create_subscription("acme", &all_events(&receiver))
        .await;
    let name = "hookshape_events_received_total";
    assert_eq!(metric_total(&server.metrics().await, name), 0.0);

    for sample_name in [
        "alpana-comment-added",
        "alpana-datasource-deleted",
        "atscale-aggregate-batch-failed",
    ] {
        server.publish("acme", &sample(sample_name)).await;
    }
    let metrics = server.metrics().await;
    assert_eq!(metric_total(&metrics, name), 3.0, "metrics:\n{metrics}");
    assert!(
        metrics.contains(&format!("# TYPE {name} counter")),
        "metrics:\n{metrics}"
    );
    receiver.wait_for(3, SOON).await;

    // Once everything is delivered the gauges are back to zero. A delivery
    // is counted as the attempt is recorded and leaves the in-flight gauge
    // just after, so the wait covers both.
    let settled = eventually(
        SOON,
        "3 deliveries and nothing in flight in /metrics",
        || async {
            let metrics = server.metrics().await;
            let delivered = r#"hookshape_deliveries_total{outcome="delivered"}"#;
            let done = metric_total(&metrics, delivered) == 3.0
                && metric_total(&metrics, "hookshape_in_flight") == 0.0;
            done.then_some(metrics)
        },
    )
    .await;
    assert_eq!(
        metric_total(&settled, "hookshape_queue_depth"),
        0.0,
        "{settled}"
    );
}

/// RFC 3339 in UTC, e.g. `2026-11-21T09:14:05Z` or with fractions or
/// `+00:00`.
fn assert_rfc3339_utc(timestamp: &str) {
    let bytes = timestamp.as_bytes();
    let shape_ok = bytes.len() >= 20
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes[10] == b'T'
        && bytes[13] == b':'
        && bytes[16] == b':'
        && (timestamp.ends_with('Z') || timestamp.ends_with("+00:00"));
    assert!(shape_ok, "{timestamp:?} is not RFC 3339 UTC");
    let year: u32 = timestamp[..4].parse().expect("a year");
    assert!(
        (2024..2200).contains(&year),
        "{timestamp:?} is not the ingest time"
    );
}
