//! Hostile plugins and uploads, end to end: components built from
//! `plugins/hostile` (and the hand-written ones in `plugins/hostile/wat/`)
//! that loop forever, bomb memory, overflow the stack, spread over four
//! memories, return huge output, ask for huge random buffers or flood the
//! resource table each fail their own attempts as `transform_failed` while
//! the server keeps serving and other deliveries arrive on time; malformed,
//! oversized and over-limit uploads are refused with 422 or 413 and change
//! nothing.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use hookshape::plugin::testing::workspace_dir;
use serde_json::{Value, json};

use crate::harness::{ConfigBuilder, Receiver, Server, assert_error, sample};
use crate::plugins::{delivery_of, id_of, plugin_bytes, plugin_list, put_plugin, text_of};

/// Deadline of waits for something that should happen almost at once.
const SOON: Duration = Duration::from_secs(10);

/// How long to keep watching that something does not happen.
const QUIET: Duration = Duration::from_millis(600);

/// How soon a delivery without a plugin must arrive while hostile plugins
/// run beside it: the work of a few milliseconds, with room for a machine
/// busy with other test processes.
const ON_TIME: Duration = Duration::from_secs(3);

/// Two quick retries, so each hostile delivery makes three attempts.
const RETRIES: [&str; 2] = ["200ms", "200ms"];

/// The hostile plugin's upload limits.
const HOSTILE_LIMITS: &str = "timeout=200ms&memory=64MiB";

/// A hand-written component from `plugins/hostile/wat/`.
fn wat_component(name: &str) -> Vec<u8> {
    let path = workspace_dir()
        .join("plugins/hostile/wat")
        .join(format!("{name}.wat"));
    wat::parse_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One way a plugin attacks its sandbox, and what its attempts must say.
struct Attack {
    class: &'static str,
    plugin: &'static str,
    config: Value,
    error: &'static str,
}

fn attacks() -> Vec<Attack> {
    let attack = |class, plugin, config, error| Attack {
        class,
        plugin,
        config,
        error,
    };
    vec![
        attack(
            "infinite loop",
            "hostile",
            json!({"mode": "spin"}),
            "plugin exceeded its 200ms timeout",
        ),
        attack(
            "memory bomb",
            "hostile",
            json!({"mode": "hoard", "amount": 1u64 << 30}),
            "plugin exceeded its 64 MiB memory limit",
        ),
        attack(
            "stack overflow",
            "hostile",
            json!({"mode": "recurse", "amount": 1u64 << 40}),
            "call stack exhausted",
        ),
        attack(
            "four memories each at the cap",
            "four-memories",
            json!({}),
            "plugin exceeded its 4 MiB memory limit",
        ),
        attack(
            "huge output",
            "hostile",
            json!({"mode": "huge-body", "amount": (16u64 << 20) + 1}),
            "plugin output too large: the body has 16777217 bytes",
        ),
        attack(
            "header flood",
            "hostile",
            json!({"mode": "many-headers", "amount": 40_000}),
            "plugin output too large: 40000 headers",
        ),
        attack(
            "huge random buffer",
            "hostile",
            json!({"mode": "random", "amount": 64u64 << 20}),
            "exceeds limit 65536",
        ),
        attack(
            "resource table flood",
            "hostile",
            json!({"mode": "resources", "amount": 1_000_000}),
            "resource table has no free keys",
        ),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_components_fail_their_attempts_while_the_host_and_other_deliveries_carry_on() {
    let untouched = Receiver::start().await;
    let healthy = Receiver::start().await;
    let config = ConfigBuilder::new().retry_schedule(&RETRIES).build();
    let server = Server::start(&config).await;
    let uploads = [
        (format!("hostile?{HOSTILE_LIMITS}"), plugin_bytes("hostile")),
        (
            "four-memories?memory=4MiB".to_owned(),
            wat_component("four-memories"),
        ),
    ];
    for (path, bytes) in uploads {
        let (status, info) = put_plugin(&server, &path, bytes).await;
        assert_eq!(status, StatusCode::CREATED, "upload {path}: {info}");
    }

    let attacks = attacks();
    let mut hostile_ids = Vec::new();
    for attack in &attacks {
        let sub = server
            .create_subscription(
                "acme",
                &json!({
                    "url": untouched.url(), "events": ["*"],
                    "plugin": attack.plugin, "plugin_config": attack.config,
                }),
            )
            .await;
        hostile_ids.push(id_of(&sub));
    }
    let plain = id_of(
        &server
            .create_subscription("acme", &json!({"url": healthy.url(), "events": ["*"]}))
            .await,
    );

    let published = Instant::now();
    let first = id_of(
        &server
            .publish("acme", &sample("alpana-comment-added"))
            .await,
    );
    let delivered = healthy.wait_for(1, ON_TIME).await;
    assert_eq!(delivered[0].webhook_id(), first);
    println!(
        "the plain delivery arrived {:?} after publishing",
        published.elapsed()
    );

    for (attack, sub_id) in attacks.iter().zip(&hostile_ids) {
        let attempts = server.wait_attempts("acme", sub_id, 3, SOON * 2).await;
        assert_eq!(attempts.len(), 3, "{}: {attempts:?}", attack.class);
        for attempt in &attempts {
            assert_eq!(
                attempt["outcome"], "transform_failed",
                "{}: {attempt}",
                attack.class
            );
            assert!(
                attempt["request_body"].is_null(),
                "{}: nothing was sent: {attempt}",
                attack.class
            );
            let error = text_of(attempt, "error");
            assert!(
                error.contains(attack.error),
                "{}: error {error:?} lacks {:?}",
                attack.class,
                attack.error
            );
        }
    }
    let stored = server.settled_event("acme", &first, SOON).await;
    for (attack, sub_id) in attacks.iter().zip(&hostile_ids) {
        assert_eq!(
            delivery_of(&stored, sub_id)["state"],
            "failed",
            "{}",
            attack.class
        );
    }
    assert_eq!(delivery_of(&stored, &plain)["state"], "delivered");

    let (status, health) = server.get("/healthz", None).await;
    assert_eq!((status, health), (StatusCode::OK, json!({"status": "ok"})));
    let second = id_of(
        &server
            .publish("acme", &sample("alpana-dashboard-updated"))
            .await,
    );
    let delivered = healthy.wait_for(2, ON_TIME).await;
    assert_eq!(delivered[1].webhook_id(), second);
    untouched.assert_stays(0, QUIET).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_uploads_are_refused_with_422_or_413_and_change_nothing() {
    let server = Server::start(&ConfigBuilder::new().build()).await;
    let hostile = plugin_bytes("hostile");
    let mut thirty_mib = b"\0asm\x0d\0\x01\0".to_vec();
    thirty_mib.resize(30 << 20, 0);
    let gc = wat::parse_str("(component (core module (type (struct (field i32)))))").unwrap();

    let refused = [
        (
            "malformed",
            "",
            b"MZ\x90\0 not wasm".to_vec(),
            "not a WebAssembly binary",
        ),
        (
            "truncated",
            "",
            hostile[..hostile.len() / 2].to_vec(),
            "not a valid WebAssembly component",
        ),
        (
            "30 MiB",
            "",
            thirty_mib,
            "not a valid WebAssembly component",
        ),
        (
            "unprovided import",
            "",
            wat_component("unknown-import"),
            "imports something hookshape does not provide",
        ),
        ("uses GC", "", gc, "not a valid WebAssembly component"),
        (
            "timeout over 10 s",
            "?timeout=10s1ms",
            hostile.clone(),
            "invalid `timeout`: an uploaded plugin's timeout is at most 10s",
        ),
        (
            "memory over 1 GiB",
            "?memory=2GiB",
            hostile.clone(),
            "invalid `memory`: an uploaded plugin's memory is at most 1GiB",
        ),
    ];
    for (class, query, bytes, reason) in refused {
        let got = put_plugin(&server, &format!("hostile{query}"), bytes).await;
        assert_error(&got, StatusCode::UNPROCESSABLE_ENTITY, class);
        let message = text_of(&got.1["error"], "message");
        assert!(message.contains(reason), "{class}: {message}");
    }
    let unknown_import = put_plugin(&server, "hostile", wat_component("unknown-import")).await;
    assert!(
        text_of(&unknown_import.1["error"], "message").contains("evil:net/socket@1.0.0"),
        "the refusal names the import: {}",
        unknown_import.1
    );

    let too_big = put_plugin(&server, "hostile", vec![0; (32 << 20) + 1]).await;
    assert_error(&too_big, StatusCode::PAYLOAD_TOO_LARGE, "over 32 MiB");

    assert_eq!(plugin_list(&server).await, json!({"data": []}));
    let (status, health) = server.get("/healthz", None).await;
    assert_eq!((status, health), (StatusCode::OK, json!({"status": "ok"})));
    let (status, info) = put_plugin(&server, "hostile?timeout=10s&memory=1GiB", hostile).await;
    assert_eq!(status, StatusCode::CREATED, "the bounds themselves: {info}");
    assert_eq!(
        (info["timeout_ms"].clone(), info["memory_bytes"].clone()),
        (json!(10_000), json!(1u64 << 30))
    );
}
