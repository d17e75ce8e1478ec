//! WebAssembly transforms, end to end: plugins built from `plugins/` and
//! configured in the TOML or uploaded with `PUT /v1/plugins/{name}` reshape
//! real deliveries; a plugin that loops, allocates without bound, panics,
//! skips, sets a reserved header or probes its sandbox is contained and
//! recorded on the attempt while the server keeps serving; uploads are
//! validated, listed and replaced, and their limits checked, applied and
//! kept; compiled components survive a restart in the cache; the dry run prints what the server sends; `config check`
//! names a plugin that does not load.

use std::io::ErrorKind;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hookshape::clock::Timestamp;
use hookshape::plugin::testing::build_plugin;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::harness::{
    ADMIN, BINARY, ConfigBuilder, DryRun, Receiver, Server, assert_error, assert_signed,
    run_binary, run_dry_run, sample, unix_now, wait_until,
};

/// Deadline of waits for something that should happen almost at once.
const SOON: Duration = Duration::from_secs(10);

/// How long to keep watching that something does not happen.
const QUIET: Duration = Duration::from_millis(600);

/// The per-call timeout of config-declared plugins here: long enough for
/// any real transform on a busy machine, short enough to keep the loop
/// test quick.
const PLUGIN_TIMEOUT_MS: u64 = 200;

/// Bounds every `hookshape config check` and `plugin run`.
const CLI_DEADLINE: Duration = Duration::from_secs(30);

/// The waits of every test here: two quick retries.
const RETRIES: [&str; 2] = ["200ms", "200ms"];

/// The webhook secret of config-declared subscriptions.
fn config_secret() -> String {
    format!("whsec_{}", BASE64.encode(b"hookshape e2e plugin secret!"))
}

/// `path` as a TOML string (Rust's quoting is valid TOML for ASCII text).
fn toml_path(path: &Path) -> String {
    format!("{:?}", path.display().to_string())
}

/// `[plugins.NAME]` for a workspace plugin built from source.
fn plugin_section(name: &str, package: &str, timeout: &str, memory: &str) -> String {
    format!(
        "[plugins.{name}]\npath = {}\ntimeout = {timeout:?}\nmemory = {memory:?}\n",
        toml_path(&build_plugin(package))
    )
}

/// A `[[subscriptions]]` entry of tenant `acme` to every event type.
fn subscription_section(id: &str, url: &str, plugin: Option<(&str, &str)>) -> String {
    let mut toml = format!(
        "[[subscriptions]]\nid = {id:?}\ntenant = \"acme\"\nurl = {url:?}\nevents = [\"*\"]\nsecret = {:?}\n",
        config_secret()
    );
    if let Some((name, config)) = plugin {
        toml.push_str(&format!("plugin = {name:?}\nplugin_config = {config}\n"));
    }
    toml
}

/// A TOML inline table (or array, or scalar) holding `value`.
fn toml_inline(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let fields: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{k:?} = {}", toml_inline(v)))
                .collect();
            format!("{{ {} }}", fields.join(", "))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(toml_inline).collect();
            format!("[{}]", items.join(", "))
        }
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

pub(crate) fn plugin_bytes(package: &str) -> Vec<u8> {
    let path = build_plugin(package);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub(crate) fn id_of(value: &Value) -> String {
    value["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {value}"))
        .to_owned()
}

pub(crate) fn text_of<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("no string {key} in {value}"))
}

/// `(level, message)` of an attempt's plugin log lines.
fn logs_of(attempt: &Value) -> Vec<(String, String)> {
    attempt["plugin_logs"]
        .as_array()
        .unwrap_or_else(|| panic!("no plugin_logs in {attempt}"))
        .iter()
        .map(|l| {
            (
                text_of(l, "level").to_owned(),
                text_of(l, "message").to_owned(),
            )
        })
        .collect()
}

/// The delivery of `event` to `sub_id`, from the event's `deliveries`.
pub(crate) fn delivery_of<'a>(event: &'a Value, sub_id: &str) -> &'a Value {
    event["deliveries"]
        .as_array()
        .expect("deliveries is a list")
        .iter()
        .find(|d| d["subscription_id"] == sub_id)
        .unwrap_or_else(|| panic!("no delivery to {sub_id} in {event}"))
}

pub(crate) async fn plugin_list(server: &Server) -> Value {
    let (status, list) = server.get("/v1/plugins", ADMIN).await;
    assert_eq!(status, StatusCode::OK, "GET /v1/plugins: {list}");
    list
}

pub(crate) async fn put_plugin(server: &Server, name: &str, bytes: Vec<u8>) -> (StatusCode, Value) {
    server
        .put_bytes(&format!("/v1/plugins/{name}"), ADMIN, bytes)
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_built_from_source_reshapes_a_sample_event() {
    let receiver = Receiver::start().await;
    let template = r#"{{ payload.report.name }} on {{ payload.rows[0].day }}: revenue {{ payload.rows[0].revenue }} ({{ event.type }}, {{ event.tenant }})"#;
    let plugin_config = json!({
        "template": template,
        "content_type": "text/plain; charset=utf-8",
        "headers": {"X-Report": "daily-revenue"},
    });
    let config = ConfigBuilder::new()
        .raw(&plugin_section("template", "template", "500ms", "32MiB"))
        .raw(&subscription_section(
            "revenue-text",
            &receiver.url(),
            Some(("template", &toml_inline(&plugin_config))),
        ))
        .build();
    let server = Server::start(&config).await;

    let event_id = id_of(
        &server
            .publish("acme", &sample("analyst-studio-report-run-completed"))
            .await,
    );

    let request = receiver.wait_for(1, SOON).await.remove(0);
    let expected = "Daily revenue on 2026-11-21: revenue 128450.5 (report_run_completed, acme)";
    assert_eq!(request.text(), expected, "the body is the plugin's");
    assert_eq!(
        request.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(request.header("x-report"), Some("daily-revenue"));
    assert_eq!(request.webhook_id(), event_id);
    assert_signed(&request, &config_secret());

    let attempts = server.wait_attempts("acme", "revenue-text", 1, SOON).await;
    let attempt = &attempts[0];
    assert_eq!(attempt["outcome"], "delivered", "attempt {attempt}");
    assert_eq!(attempt["request_body"], expected);
    assert_eq!(
        attempt["request_headers"]["x-report"], "daily-revenue",
        "attempt {attempt}"
    );
    assert_eq!(
        logs_of(attempt),
        [(
            "info".to_owned(),
            format!(
                "rendered {} bytes of text/plain; charset=utf-8",
                expected.len()
            )
        )]
    );
    let stored = server.settled_event("acme", &event_id, SOON).await;
    assert_eq!(delivery_of(&stored, "revenue-text")["state"], "delivered");
}

/// Starts a server where subscription `broken` runs the testkit in `mode`
/// (to a receiver that must get nothing) beside `plain` (no plugin) and
/// `echo` (the same plugin, echoing) on the same events; checks that the
/// broken delivery fails every attempt as `transform_failed` with an error
/// holding each of `reasons`, is retried on the schedule, and that
/// everything else keeps working. Returns the broken attempts.
async fn assert_contained(mode: &str, reasons: &[&str]) -> Vec<Value> {
    let untouched = Receiver::start().await;
    let healthy = Receiver::start().await;
    let config = ConfigBuilder::new()
        .retry_schedule(&RETRIES)
        .raw(&plugin_section(
            "testkit",
            "testkit",
            &format!("{PLUGIN_TIMEOUT_MS}ms"),
            "16MiB",
        ))
        .raw(&subscription_section(
            "broken",
            &untouched.url(),
            Some((
                "testkit",
                &format!(r#"{{ mode = {mode:?}, message = "deliberate {mode}" }}"#),
            )),
        ))
        .raw(&subscription_section("plain", &healthy.url(), None))
        .raw(&subscription_section(
            "echo",
            &healthy.url(),
            Some(("testkit", r#"{ mode = "echo" }"#)),
        ))
        .build();
    let server = Server::start(&config).await;

    let event = sample("alpana-comment-added");
    let first = id_of(&server.publish("acme", &event).await);
    let delivered = healthy.wait_for(2, SOON).await;
    let echoed = delivered
        .iter()
        .find(|r| r.header("x-hookshape-event-type").is_some())
        .expect("the echo subscription's delivery");
    assert_eq!(echoed.json(), event["payload"], "echo sends the payload");
    assert!(
        delivered
            .iter()
            .any(|r| r.header("x-hookshape-event-type").is_none() && r.json()["id"] == first),
        "the plain subscription gets the standard envelope"
    );
    for r in &delivered {
        assert_signed(r, &config_secret());
    }

    let attempts = server.wait_attempts("acme", "broken", 3, SOON * 2).await;
    assert_eq!(
        attempts.len(),
        3,
        "one attempt and two retries: {attempts:?}"
    );
    for (i, attempt) in attempts.iter().enumerate() {
        assert_eq!(attempt["attempt"], i + 1, "attempt {attempt}");
        assert_eq!(attempt["outcome"], "transform_failed", "attempt {attempt}");
        assert!(attempt["status_code"].is_null(), "attempt {attempt}");
        assert!(
            attempt["request_body"].is_null(),
            "nothing was sent: {attempt}"
        );
        let error = text_of(attempt, "error");
        for reason in reasons {
            assert!(error.contains(reason), "error {error:?} lacks {reason:?}");
        }
    }
    for pair in attempts.windows(2) {
        let gap = created_ms(&pair[1]).saturating_sub(created_ms(&pair[0]));
        assert!(
            gap >= 200,
            "a retry came {gap} ms after the previous attempt, before its 200ms wait"
        );
    }
    let stored = server.settled_event("acme", &first, SOON).await;
    assert_eq!(delivery_of(&stored, "broken")["state"], "failed");
    assert_eq!(delivery_of(&stored, "broken")["attempts"], 3);
    assert_eq!(delivery_of(&stored, "plain")["state"], "delivered");
    assert_eq!(delivery_of(&stored, "echo")["state"], "delivered");

    let (status, health) = server.get("/healthz", None).await;
    assert_eq!((status, health), (StatusCode::OK, json!({"status": "ok"})));
    let second = id_of(
        &server
            .publish("acme", &sample("alpana-dashboard-updated"))
            .await,
    );
    let delivered = healthy.wait_for(4, SOON).await;
    assert_eq!(
        delivered[2..]
            .iter()
            .filter(|r| r.webhook_id() == second)
            .count(),
        2,
        "a new event reaches both healthy subscriptions"
    );
    untouched.assert_stays(0, QUIET).await;
    attempts
}

/// An attempt's `created_at` in milliseconds since the epoch.
fn created_ms(attempt: &Value) -> u64 {
    serde_json::from_value::<Timestamp>(attempt["created_at"].clone())
        .unwrap_or_else(|e| panic!("created_at of {attempt}: {e}"))
        .as_millis()
}

/// Payloads travel as the source wrote them: the plain envelope's `data` and
/// the bytes a plugin reads are the posted JSON text, numbers included (a
/// parse and print would make `12.50` into `12.5` and round
/// `18446744073709551617`).
#[tokio::test(flavor = "multi_thread")]
async fn json_payloads_reach_receivers_and_plugins_byte_for_byte() {
    let receiver = Receiver::start().await;
    let config = ConfigBuilder::new()
        .raw(&plugin_section("testkit", "testkit", "1s", "16MiB"))
        .raw(&subscription_section("plain", &receiver.url(), None))
        .raw(&subscription_section(
            "echo",
            &receiver.url(),
            Some(("testkit", r#"{ mode = "echo" }"#)),
        ))
        .build();
    let server = Server::start(&config).await;
    let payload =
        r#"{"revenue": 12.50, "runs": 18446744073709551617, "ratio": 1E3, "name": "caf\u00e9"}"#;
    let body = format!(r#"{{"type": "report_run_completed", "payload": {payload}}}"#);
    let (status, receipt) = server
        .post_raw("/v1/tenants/acme/events", ADMIN, body.as_bytes())
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{receipt}");

    let delivered = receiver.wait_for(2, SOON).await;
    let (echoed, plain): (Vec<_>, Vec<_>) = delivered
        .iter()
        .partition(|r| r.header("x-hookshape-event-type").is_some());
    assert_eq!(
        echoed[0].text(),
        payload,
        "the plugin reads the posted text"
    );
    let envelope = plain[0].text();
    assert!(
        envelope.ends_with(&format!(r#","data":{payload}}}"#)),
        "the envelope carries the posted text: {envelope}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_that_loops_is_stopped_at_its_timeout() {
    let attempts = assert_contained(
        "loop",
        &[&format!(
            "plugin exceeded its {PLUGIN_TIMEOUT_MS}ms timeout"
        )],
    )
    .await;
    for attempt in &attempts {
        let took = attempt["duration_ms"].as_u64().expect("duration_ms");
        assert!(
            (PLUGIN_TIMEOUT_MS..PLUGIN_TIMEOUT_MS + 2000).contains(&took),
            "a looping transform took {took} ms against a {PLUGIN_TIMEOUT_MS} ms timeout"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_that_allocates_without_bound_hits_its_memory_cap() {
    assert_contained("alloc", &["plugin exceeded its 16 MiB memory limit"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_that_panics_fails_the_attempt_with_the_panic_message() {
    let attempts = assert_contained(
        "panic",
        &[
            "plugin trapped: panicked at plugins/testkit/src/lib.rs:",
            "deliberate panic",
        ],
    )
    .await;
    assert!(
        logs_of(&attempts[0])
            .iter()
            .any(|(level, message)| level == "stderr" && message.contains("deliberate panic")),
        "the panic is in the attempt's logs: {:?}",
        attempts[0]["plugin_logs"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_skip_sends_nothing_and_ends_the_delivery_as_skipped() {
    let receiver = Receiver::start().await;
    let config = ConfigBuilder::new()
        .retry_schedule(&RETRIES)
        .raw(&plugin_section("testkit", "testkit", "500ms", "32MiB"))
        .build();
    let server = Server::start(&config).await;
    let sub_id = id_of(
        &server
            .create_subscription(
                "acme",
                &json!({
                    "url": receiver.url(),
                    "events": ["*"],
                    "plugin": "testkit",
                    "plugin_config": {"mode": "skip", "reason": "nobody is on call tonight"},
                }),
            )
            .await,
    );
    let event_id = id_of(
        &server
            .publish("acme", &sample("alpana-comment-added"))
            .await,
    );

    let stored = server.settled_event("acme", &event_id, SOON).await;
    let delivery = delivery_of(&stored, &sub_id);
    assert_eq!(delivery["state"], "skipped", "event {stored}");
    assert_eq!(delivery["attempts"], 1);
    assert!(delivery["next_attempt_at"].is_null(), "event {stored}");
    let attempts = server.attempts("acme", &sub_id).await;
    assert_eq!(attempts.len(), 1, "a skip is not retried: {attempts:?}");
    assert_eq!(attempts[0]["outcome"], "skipped");
    assert_eq!(attempts[0]["error"], "nobody is on call tonight");
    assert!(attempts[0]["request_body"].is_null(), "{}", attempts[0]);
    assert!(attempts[0]["status_code"].is_null(), "{}", attempts[0]);
    receiver.assert_stays(0, QUIET).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sandbox_denies_files_sockets_and_the_environment() {
    // A live port the probe tries to reach: had the connection been made,
    // it would wait in this listener's backlog.
    let bait = TcpListener::bind("127.0.0.1:0").expect("binding the bait listener");
    bait.set_nonblocking(true).expect("a non-blocking listener");
    let receiver = Receiver::start().await;
    let config = ConfigBuilder::new()
        .raw(&plugin_section("testkit", "testkit", "500ms", "32MiB"))
        .build();
    let server = Server::start(&config).await;
    let sub = server
        .create_subscription(
            "acme",
            &json!({
                "url": receiver.url(),
                "events": ["*"],
                "plugin": "testkit",
                "plugin_config": {"mode": "probe", "connect": bait.local_addr().unwrap().to_string()},
            }),
        )
        .await;
    server
        .publish("acme", &sample("alpana-comment-added"))
        .await;

    let request = receiver.wait_for(1, SOON).await.remove(0);
    assert_signed(&request, text_of(&sub, "secret"));
    let report = request.json();
    assert_denied(&report);
    match bait.accept() {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        other => panic!("the plugin reached the bait listener: {other:?}"),
    }
    // The server inherited this test's environment (cargo's variables
    // among them), none of which the plugin saw.
    assert!(std::env::var_os("PATH").is_some() && std::env::var_os("CARGO_PKG_NAME").is_some());

    let attempts = server.wait_attempts("acme", &id_of(&sub), 1, SOON).await;
    let logs = logs_of(&attempts[0]);
    for expected in [
        ("stdout", "probe: hello from stdout"),
        ("stderr", "probe: hello from stderr"),
    ] {
        assert!(
            logs.iter()
                .any(|(l, m)| (l.as_str(), m.as_str()) == expected),
            "printed lines are kept on the attempt: {logs:?}"
        );
    }
}

/// Checks the testkit probe's report: everything denied, the clock given.
fn assert_denied(report: &Value) {
    for key in ["file", "dir", "socket"] {
        let got = text_of(report, key);
        assert!(got.starts_with("denied: "), "{key} was not denied: {got}");
    }
    assert_eq!(
        report["env"]["vars"], 0,
        "the plugin saw variables: {report}"
    );
    assert_eq!(
        report["env"]["args"], 0,
        "the plugin saw arguments: {report}"
    );
    for var in ["HOME", "PATH"] {
        let got = text_of(&report["env"], var);
        assert!(got.starts_with("denied: "), "{var} was visible: {got}");
    }
    let clock = text_of(report, "clock");
    let secs: u64 = clock
        .strip_suffix(" s since the epoch")
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("the wall clock is available, got {clock:?}"));
    assert!(secs.abs_diff(unix_now()) <= 60, "clock {clock}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_cannot_set_reserved_headers() {
    let receiver = Receiver::start().await;
    let config = ConfigBuilder::new()
        .raw(&plugin_section("testkit", "testkit", "500ms", "32MiB"))
        .build();
    let server = Server::start(&config).await;
    let subscribe = |headers: Value| {
        let body = json!({
            "url": receiver.url(),
            "events": ["*"],
            "plugin": "testkit",
            "plugin_config": {"mode": "headers", "headers": headers},
        });
        let server = &server;
        async move { id_of(&server.create_subscription("acme", &body).await) }
    };
    let forbidden = [
        ("webhook-signature", "v1,forged"),
        ("Host", "evil.example"),
        ("content-length", "1"),
        ("transfer-encoding", "chunked"),
    ];
    let mut refused = Vec::new();
    for (name, value) in forbidden {
        refused.push((name, subscribe(json!({ name: value })).await));
    }
    let allowed = subscribe(json!({"x-custom": "fine"})).await;
    server
        .publish("acme", &sample("alpana-comment-added"))
        .await;

    let request = receiver.wait_for(1, SOON).await.remove(0);
    assert_eq!(request.header("x-custom"), Some("fine"));
    assert_eq!(
        server.wait_attempts("acme", &allowed, 1, SOON).await[0]["outcome"],
        "delivered"
    );
    for (name, sub_id) in refused {
        let attempt = server
            .wait_attempts("acme", &sub_id, 1, SOON)
            .await
            .remove(0);
        assert_eq!(attempt["outcome"], "transform_failed", "{name}: {attempt}");
        assert_eq!(
            attempt["error"],
            format!("plugin set an invalid header: {name:?} is reserved for hookshape"),
            "{name}"
        );
    }
    receiver.assert_stays(1, QUIET).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn uploads_are_validated_listed_replaced_and_recover_failed_deliveries() {
    let receiver = Receiver::start().await;
    let server = Server::start(&ConfigBuilder::new().retry_schedule(&RETRIES).build()).await;
    assert_eq!(plugin_list(&server).await, json!({"data": []}));

    let rejects: [(&str, Vec<u8>, &str); 3] = [
        (
            "junk",
            b"definitely not wasm".to_vec(),
            "not a WebAssembly binary",
        ),
        (
            "a core module",
            b"\0asm\x01\0\0\0".to_vec(),
            "core WebAssembly module, not a component",
        ),
        (
            "a component exporting nothing",
            b"\0asm\x0d\0\x01\0".to_vec(),
            "does not implement the hookshape `transformer` world",
        ),
    ];
    for (what, bytes, reason) in rejects {
        let got = put_plugin(&server, "shaper", bytes).await;
        assert_error(&got, StatusCode::UNPROCESSABLE_ENTITY, what);
        let message = text_of(&got.1["error"], "message");
        assert!(message.contains(reason), "{what}: {message}");
        assert_eq!(
            plugin_list(&server).await,
            json!({"data": []}),
            "{what} stored something"
        );
    }

    // Version 1 requires a `mode` the subscription does not give: every
    // attempt fails, and the failure is retried like a failed delivery.
    let v1 = plugin_bytes("testkit");
    let (status, info) = put_plugin(&server, "shaper", v1.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "first upload: {info}");
    let listed = json!({"data": [{
        "name": "shaper", "sha256": sha256_hex(&v1), "size": v1.len(), "source": "api",
        "timeout_ms": 100, "memory_bytes": 32 << 20,
    }]});
    assert_eq!(plugin_list(&server).await, listed);

    let sub = server
        .create_subscription(
            "acme",
            &json!({"url": receiver.url(), "events": ["*"], "plugin": "shaper"}),
        )
        .await;
    let sub_id = id_of(&sub);
    let event = sample("alpana-dashboard-updated");
    let event_id = id_of(&server.publish("acme", &event).await);
    let stored = server.settled_event("acme", &event_id, SOON).await;
    assert_eq!(delivery_of(&stored, &sub_id)["state"], "failed");
    let failed = server.attempts("acme", &sub_id).await;
    assert_eq!(failed.len(), 3, "one attempt and two retries: {failed:?}");
    for attempt in &failed {
        assert_eq!(attempt["outcome"], "transform_failed", "{attempt}");
        let error = text_of(attempt, "error");
        assert!(error.contains("missing field `mode`"), "{error}");
    }
    receiver.assert_stays(0, QUIET).await;

    // Version 2 is a different build: replacing the name changes what new
    // attempts send, and a resend of the failed one now gets through.
    let v2 = plugin_bytes("zapier");
    let (status, info) = put_plugin(&server, "shaper", v2.clone()).await;
    assert_eq!(status, StatusCode::OK, "replacement: {info}");
    assert_eq!(info["sha256"], sha256_hex(&v2));
    let listed = json!({"data": [{
        "name": "shaper", "sha256": sha256_hex(&v2), "size": v2.len(), "source": "api",
        "timeout_ms": 100, "memory_bytes": 32 << 20,
    }]});
    assert_eq!(plugin_list(&server).await, listed);

    let (status, resent) = server
        .post(
            &format!("/v1/tenants/acme/attempts/{}/resend", id_of(&failed[0])),
            ADMIN,
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "resend: {resent}");
    let request = receiver.wait_for(1, SOON).await.remove(0);
    assert_eq!(request.webhook_id(), event_id);
    assert_signed(&request, text_of(&sub, "secret"));
    let body = request.json();
    assert_eq!(
        body["event_id"],
        event_id.as_str(),
        "zapier's flat shape: {body}"
    );
    assert_eq!(body["event_type"], "dashboard.updated", "{body}");
    assert!(
        body.as_object()
            .unwrap()
            .values()
            .all(|v| !v.is_object() && !v.is_array()),
        "every field is flat: {body}"
    );
    let attempts = server.wait_attempts("acme", &sub_id, 4, SOON).await;
    assert_eq!(attempts[3]["outcome"], "delivered", "{}", attempts[3]);
    receiver.assert_stays(1, QUIET).await;
}

/// The tracing lines `PluginRuntime::load` writes, by how the code was had.
const COMPILED: &str = "plugin compiled";
const FROM_CACHE: &str = "plugin loaded from the compile cache";

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_loads_compiled_plugins_from_the_cache() {
    let receiver = Receiver::start().await;
    let config = ConfigBuilder::new()
        .raw(&plugin_section("testkit", "testkit", "500ms", "32MiB"))
        .raw(&subscription_section(
            "echo",
            &receiver.url(),
            Some(("testkit", r#"{ mode = "echo" }"#)),
        ))
        .build();
    let mut server = Server::start(&config).await;
    let (status, _) = put_plugin(&server, "flatten", plugin_bytes("zapier")).await;
    assert_eq!(status, StatusCode::CREATED);
    wait_until(SOON, "both plugins compiled on the first start", || {
        server.stderr().matches(COMPILED).count() == 2
    })
    .await;
    assert!(!server.stderr().contains(FROM_CACHE), "{}", server.stderr());

    let status = server.terminate(SOON).await;
    assert!(status.success(), "a clean shutdown: {status}");
    server.restart().await;
    let second_run = || {
        server
            .stderr()
            .split_once("---- restart ----")
            .expect("the restart marker")
            .1
            .to_owned()
    };
    wait_until(SOON, "both plugins loaded from the cache", || {
        second_run().matches(FROM_CACHE).count() == 2
    })
    .await;
    let second = second_run();
    assert!(
        !second.contains(COMPILED),
        "recompiled on restart:\n{second}"
    );
    assert_eq!(
        second.matches("from_cache=true").count(),
        2,
        "the load lines say so:\n{second}"
    );
    assert_eq!(
        plugin_list(&server).await["data"]
            .as_array()
            .map(|list| list.iter().map(|p| p["name"].clone()).collect::<Vec<_>>()),
        Some(vec![json!("flatten"), json!("testkit")])
    );

    // The cached code runs.
    let event = sample("alpana-comment-added");
    server.publish("acme", &event).await;
    let request = receiver.wait_for(1, SOON).await.remove(0);
    assert_eq!(request.json(), event["payload"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dry_run_prints_what_the_server_sends() {
    let receiver = Receiver::start().await;
    let plugin_config = json!({"separator": ".", "max_depth": 2});
    let config = ConfigBuilder::new()
        .raw(&plugin_section("zapier", "zapier", "500ms", "32MiB"))
        .raw(&subscription_section(
            "flat",
            &receiver.url(),
            Some(("zapier", &toml_inline(&plugin_config))),
        ))
        .build();
    let server = Server::start(&config).await;
    let event_id = id_of(
        &server
            .publish("acme", &sample("analyst-studio-report-run-completed"))
            .await,
    );
    let sent = receiver.wait_for(1, SOON).await.remove(0);
    let attempt = server
        .wait_attempts("acme", "flat", 1, SOON)
        .await
        .remove(0);

    // Replay the stored event, as an operator would.
    let event_file = server.dir().join("stored-event.json");
    let stored = server.event("acme", &event_id).await;
    std::fs::write(&event_file, stored.to_string()).expect("writing the event file");
    let wasm = build_plugin("zapier");
    let (status, stdout, stderr) = run_dry_run(
        &wasm,
        &event_file,
        &plugin_config.to_string(),
        Some(&receiver.url()),
        server.dir(),
        CLI_DEADLINE,
    );
    assert!(status.success(), "dry run failed: {stdout}\n{stderr}");
    let dry = DryRun::parse(&stdout);
    assert_eq!(
        dry.request_line(),
        format!("deliver: POST {}", receiver.url())
    );
    assert_eq!(
        dry.body(),
        &sent.body[..],
        "the dry run's body is byte for byte the server's"
    );
    assert_eq!(dry.header("content-type"), sent.header("content-type"));
    assert_eq!(dry.header("webhook-id"), Some(event_id.as_str()));
    assert!(dry.header("webhook-signature").is_some(), "{stdout}");
    let logs: Vec<String> = logs_of(&attempt)
        .into_iter()
        .map(|(level, message)| format!("[{level}] {message}"))
        .collect();
    assert!(!logs.is_empty(), "zapier logs a line: {attempt}");
    let printed = stdout
        .split_once("\nplugin logs:\n")
        .unwrap_or_else(|| panic!("no plugin logs:\n{stdout}"))
        .1;
    assert!(
        printed.starts_with(&format!("{}\n", logs.join("\n"))),
        "the dry run prints the attempt's log lines {logs:?}:\n{stdout}"
    );
}

#[test]
fn the_dry_run_exits_1_with_the_reason_on_a_trap() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let event_file = sample_file(dir.path(), "alpana-comment-added");
    let wasm = build_plugin("testkit");
    let dry_run =
        |config: &str| run_dry_run(&wasm, &event_file, config, None, dir.path(), CLI_DEADLINE);

    let (status, stdout, stderr) = dry_run(r#"{"mode":"panic","message":"no such column"}"#);
    assert_eq!(status.code(), Some(1), "{stdout}\n{stderr}");
    let first = stdout.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(
            "transform_failed: plugin trapped: panicked at plugins/testkit/src/lib.rs:"
        ) && first.ends_with(": no such column"),
        "{stdout}"
    );

    let (status, stdout, stderr) = dry_run(r#"{"mode":"loop"}"#);
    assert_eq!(status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.starts_with("transform_failed: plugin exceeded its 100ms timeout\n"),
        "{stdout}"
    );

    let (status, stdout, stderr) = dry_run(r#"{"mode":"skip","reason":"not today"}"#);
    assert_eq!(status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.starts_with("skip: not today\n"), "{stdout}");
}

#[test]
fn the_dry_run_hides_the_environment_of_the_hookshape_process() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let event_file = sample_file(dir.path(), "alpana-comment-added");
    let secret = "sk_live_e2e_do_not_leak";
    // `timeout` bounds the run; the variable is set on hookshape only.
    let output = Command::new("timeout")
        .arg(CLI_DEADLINE.as_secs().to_string())
        .arg(BINARY)
        .args(["plugin", "run", "--plugin"])
        .arg(build_plugin("testkit"))
        .arg("--event")
        .arg(&event_file)
        .args(["--config", r#"{"mode":"probe","connect":"127.0.0.1:9"}"#])
        .env("HOOKSHAPE_E2E_API_SECRET", secret)
        .current_dir(dir.path())
        .output()
        .expect("running hookshape plugin run");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!stdout.contains(secret), "the secret leaked:\n{stdout}");
    let report: Value = serde_json::from_slice(DryRun::parse(&stdout).body())
        .unwrap_or_else(|e| panic!("the probe's report is JSON ({e}):\n{stdout}"));
    assert_denied(&report);
}

/// Copies a sample event into `dir` and returns its path.
fn sample_file(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, sample(name).to_string()).expect("writing the sample");
    path
}

#[test]
fn config_check_names_a_plugin_that_does_not_load() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let junk = dir.path().join("notes.wasm");
    std::fs::write(&junk, "this is a text file").expect("writing junk");
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").expect("writing a core module");
    let missing = dir.path().join("missing.wasm");
    let config = ConfigBuilder::new()
        .raw(&plugin_section("good", "testkit", "100ms", "32MiB"))
        .raw(&format!("[plugins.junk]\npath = {}\n", toml_path(&junk)))
        .raw(&format!("[plugins.core]\npath = {}\n", toml_path(&core)))
        .raw(&format!("[plugins.gone]\npath = {}\n", toml_path(&missing)))
        .build();
    let file = dir.path().join("hookshape.toml");
    std::fs::write(&file, config).expect("writing the config");

    let (status, stdout, stderr) = run_binary(
        &["config", "check", &file.display().to_string()],
        dir.path(),
        CLI_DEADLINE,
    );
    assert_eq!(status.code(), Some(1), "{stdout}\n{stderr}");
    let line = |name: &str| {
        stderr
            .lines()
            .find(|l| l.contains(&format!("plugins.{name}:")))
            .unwrap_or_else(|| panic!("plugin {name} is not named:\n{stderr}"))
            .to_owned()
    };
    for (name, path, why) in [
        ("junk", &junk, "not a WebAssembly binary"),
        ("core", &core, "this is a core WebAssembly module"),
        ("gone", &missing, "cannot read it"),
    ] {
        let found = line(name);
        assert!(
            found.contains(&format!("{}: {why}", path.display())),
            "the line names the file and the problem: {found}"
        );
    }
    assert!(stderr.contains("3 problem(s)"), "{stderr}");
    assert!(stdout.contains("plugin good: ok"), "{stdout}");

    // `serve` refuses the same file, naming the plugins.
    let data = dir.path().join("data");
    let (status, _, stderr) = run_binary(
        &[
            "serve",
            "--config",
            &file.display().to_string(),
            "--listen",
            "127.0.0.1:0",
            "--data",
            &data.display().to_string(),
        ],
        dir.path(),
        CLI_DEADLINE,
    );
    assert!(!status.success(), "serve started with broken plugins");
    for (name, path) in [("junk", &junk), ("core", &core), ("gone", &missing)] {
        assert!(
            stderr.contains(&format!("plugin {name}:"))
                && stderr.contains(&path.display().to_string()),
            "serve names plugin {name} and its file:\n{stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn uploaded_limits_are_checked_listed_applied_and_kept_across_a_restart() {
    let receiver = Receiver::start().await;
    let config = ConfigBuilder::new()
        .retry_schedule(&RETRIES)
        .raw(&plugin_section("declared", "zapier", "300ms", "16MiB"))
        .build();
    let mut server = Server::start(&config).await;
    let testkit = plugin_bytes("testkit");

    let (status, info) = server
        .put_bytes(
            "/v1/plugins/looper?timeout=50ms&memory=64MiB",
            ADMIN,
            testkit.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "upload: {info}");
    assert_eq!(info["timeout_ms"], 50, "{info}");
    assert_eq!(info["memory_bytes"], 64 << 20, "{info}");
    let listed = json!({"data": [
        {
            "name": "declared", "sha256": sha256_hex(&plugin_bytes("zapier")),
            "size": plugin_bytes("zapier").len(), "source": "config",
            "timeout_ms": 300, "memory_bytes": 16 << 20,
        },
        {
            "name": "looper", "sha256": sha256_hex(&testkit), "size": testkit.len(),
            "source": "api", "timeout_ms": 50, "memory_bytes": 64 << 20,
        },
    ]});
    assert_eq!(plugin_list(&server).await, listed);

    // A bad limit refuses the whole upload, whatever the body.
    let rejects = [
        ("?memory=12", "`memory`", "at least 64KiB"),
        ("?timeout=0ms", "`timeout`", "longer than zero"),
        ("?timeout=fast", "`timeout`", "not a duration"),
        ("?timout=1s", "`timout`", "unknown field"),
    ];
    for (query, parameter, reason) in rejects {
        let got = server
            .put_bytes(
                &format!("/v1/plugins/looper{query}"),
                ADMIN,
                plugin_bytes("zapier"),
            )
            .await;
        assert_error(&got, StatusCode::UNPROCESSABLE_ENTITY, query);
        assert_eq!(
            got.1["error"]["code"], "invalid_request",
            "{query}: {}",
            got.1
        );
        let message = text_of(&got.1["error"], "message");
        assert!(
            message.contains(parameter) && message.contains(reason),
            "{query}: {message}"
        );
        assert_eq!(
            plugin_list(&server).await,
            listed,
            "{query} changed the plugins"
        );
    }

    let sub_id = id_of(
        &server
            .create_subscription(
                "acme",
                &json!({
                    "url": receiver.url(), "events": ["*"],
                    "plugin": "looper", "plugin_config": {"mode": "loop"},
                }),
            )
            .await,
    );
    let assert_timed_out_at_50ms = |attempts: &[Value]| {
        for attempt in attempts {
            assert_eq!(attempt["outcome"], "transform_failed", "{attempt}");
            let error = text_of(attempt, "error");
            assert!(error.contains("exceeded its 50ms timeout"), "{error}");
        }
    };
    server
        .publish("acme", &sample("alpana-comment-added"))
        .await;
    let attempts = server.wait_attempts("acme", &sub_id, 3, SOON).await;
    assert_timed_out_at_50ms(&attempts);

    server.restart().await;
    assert_eq!(plugin_list(&server).await, listed, "after the restart");
    server
        .publish("acme", &sample("alpana-dashboard-updated"))
        .await;
    let attempts = server.wait_attempts("acme", &sub_id, 6, SOON * 2).await;
    assert_timed_out_at_50ms(&attempts);
    receiver.assert_stays(0, QUIET).await;
}
