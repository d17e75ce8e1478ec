//! The runtime against the real `plugins/testkit` component, built from
//! source, and against hostile components: `plugins/hostile` and the
//! hand-written components in `plugins/hostile/wat/`.

use std::sync::OnceLock;

use serde_json::{Value, json};

use super::*;
use crate::clock::Timestamp;
use crate::ids::EventId;
use crate::model::Payload;

fn testkit_wasm() -> &'static [u8] {
    static WASM: OnceLock<Vec<u8>> = OnceLock::new();
    WASM.get_or_init(|| std::fs::read(testing::build_plugin("testkit")).expect("read testkit.wasm"))
}

/// One runtime and one compiled testkit shared by the tests: compiling is
/// the slow part and is tested on its own below.
fn shared() -> &'static (PluginRuntime, Arc<LoadedPlugin>) {
    static SHARED: OnceLock<(PluginRuntime, Arc<LoadedPlugin>)> = OnceLock::new();
    SHARED.get_or_init(|| {
        let runtime = PluginRuntime::new(None).expect("engine");
        let plugin = runtime.load(testkit_wasm()).expect("testkit loads");
        (runtime, plugin)
    })
}

fn event() -> Event {
    Event {
        id: EventId::generate(),
        source_id: None,
        event_type: "project.published".into(),
        tenant: "acme".parse().unwrap(),
        timestamp: Timestamp(1_735_689_600_000),
        content_type: "application/json".into(),
        payload: Payload::from_value(&json!({"project": "Sales", "rows": [1, 2]})),
    }
}

/// The hostile plugin, compiled by the shared runtime.
fn hostile() -> &'static Arc<LoadedPlugin> {
    static HOSTILE: OnceLock<Arc<LoadedPlugin>> = OnceLock::new();
    HOSTILE.get_or_init(|| {
        let wasm = std::fs::read(testing::build_plugin("hostile")).expect("read hostile.wasm");
        shared().0.load(&wasm).expect("hostile loads")
    })
}

/// A hand-written component from `plugins/hostile/wat/`.
fn wat_component(name: &str) -> Vec<u8> {
    let path = testing::workspace_dir()
        .join("plugins/hostile/wat")
        .join(format!("{name}.wat"));
    wat::parse_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

async fn run_with(config: Value, limits: PluginLimits) -> TransformReport {
    run_plugin(&shared().1, config, limits).await
}

async fn run_plugin(plugin: &LoadedPlugin, config: Value, limits: PluginLimits) -> TransformReport {
    let (runtime, _) = shared();
    let event = event();
    let config = config.to_string();
    runtime
        .transform(
            plugin,
            limits,
            TransformInput {
                event: &event,
                subscription_id: "sub_test",
                url: "https://example.com/hook",
                config_json: &config,
            },
        )
        .await
}

async fn run(config: Value) -> TransformReport {
    run_with(config, PluginLimits::default()).await
}

fn delivered(report: &TransformReport) -> &PluginRequest {
    match &report.result {
        Ok(Outcome::Deliver(request)) => request,
        other => panic!(
            "expected a delivery, got {other:?} (logs {:?})",
            report.logs
        ),
    }
}

fn log_has(report: &TransformReport, level: &str, needle: &str) -> bool {
    report
        .logs
        .iter()
        .any(|l| l.level == level && l.message.contains(needle))
}

#[tokio::test]
async fn echo_delivers_the_payload_unchanged() {
    // Spawned: the delivery workers need `transform`'s future to be `Send`.
    let report = tokio::spawn(run(json!({"mode": "echo"}))).await.unwrap();
    let request = delivered(&report);
    assert_eq!(request.body, event().payload_bytes());
    assert_eq!(request.content_type.as_deref(), Some("application/json"));
    assert_eq!(
        request.headers,
        HeaderSet::from_pairs([("x-hookshape-event-type", "project.published")]).unwrap()
    );
    assert!(log_has(&report, "info", "echoing"), "{:?}", report.logs);
}

#[tokio::test]
async fn wrap_sees_the_event_and_the_subscription() {
    let report = run(json!({"mode": "wrap", "reason": "kept"})).await;
    let body: Value = serde_json::from_slice(&delivered(&report).body).unwrap();
    assert_eq!(body["wrapped"], json!({"project": "Sales", "rows": [1, 2]}));
    assert_eq!(body["type"], "project.published");
    assert_eq!(body["tenant"], "acme");
    assert_eq!(body["subscription_id"], "sub_test");
    assert_eq!(body["config"], json!({"mode": "wrap", "reason": "kept"}));
    assert!(body["event_id"].as_str().unwrap().starts_with("evt_"));
}

#[tokio::test]
async fn skip_carries_the_reason() {
    let report = run(json!({"mode": "skip", "reason": "below threshold"})).await;
    assert_eq!(report.result, Ok(Outcome::Skip("below threshold".into())));
}

#[tokio::test]
async fn plugin_errors_are_reported_as_such() {
    let report = run(json!({"mode": "error", "message": "no rows"})).await;
    assert_eq!(report.result, Err(TransformError::Plugin("no rows".into())));
    let bad_config = run(json!({"mode": "echo", "threshold": 1})).await;
    let Err(TransformError::Plugin(message)) = bad_config.result else {
        panic!("expected a plugin error, got {:?}", bad_config.result);
    };
    assert!(message.contains("unknown field `threshold`"), "{message}");
}

#[tokio::test]
async fn a_panic_is_a_trap_with_its_message() {
    let report = run(json!({"mode": "panic", "message": "kaboom"})).await;
    let Err(TransformError::Trap(message)) = &report.result else {
        panic!("expected a trap, got {:?}", report.result);
    };
    assert!(message.starts_with("panicked at "), "{message}");
    assert!(message.ends_with(": kaboom"), "{message}");
    assert!(log_has(&report, "stderr", "kaboom"));
}

#[tokio::test]
async fn an_endless_loop_times_out_on_time() {
    let limits = PluginLimits {
        timeout: Duration::from_millis(50),
        ..PluginLimits::default()
    };
    let report = run_with(json!({"mode": "loop"}), limits).await;
    assert_eq!(
        report.result,
        Err(TransformError::Timeout(Duration::from_millis(50)))
    );
    assert_eq!(
        report.result.as_ref().unwrap_err().to_string(),
        "plugin exceeded its 50ms timeout"
    );
    println!("loop interrupted after {:?}", report.duration);
    assert!(report.duration >= Duration::from_millis(50));
    assert!(
        report.duration < Duration::from_millis(500),
        "{:?}",
        report.duration
    );
}

#[tokio::test]
async fn runaway_allocation_hits_the_memory_cap() {
    let limits = PluginLimits {
        memory_bytes: 8 << 20,
        ..PluginLimits::default()
    };
    let report = run_with(json!({"mode": "alloc"}), limits).await;
    assert_eq!(report.result, Err(TransformError::MemoryLimit(8 << 20)));
    assert_eq!(
        report.result.as_ref().unwrap_err().to_string(),
        "plugin exceeded its 8 MiB memory limit"
    );
}

#[tokio::test]
async fn the_sandbox_grants_no_files_env_or_network() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let report = run(json!({"mode": "probe", "connect": addr.to_string()})).await;
    let probe: Value = serde_json::from_slice(&delivered(&report).body).unwrap();
    println!("probe report: {probe:#}");
    for field in ["/file", "/dir", "/env/HOME", "/env/PATH", "/socket"] {
        let outcome = probe.pointer(field).and_then(Value::as_str).unwrap();
        assert!(outcome.starts_with("denied: "), "{field}: {outcome}");
    }
    assert_eq!(probe["env"]["vars"], 0);
    assert_eq!(probe["env"]["args"], 0);
    assert!(
        probe["clock"]
            .as_str()
            .unwrap()
            .ends_with("s since the epoch")
    );
    assert!(
        listener.accept().is_err(),
        "the plugin reached the listener"
    );
    assert!(
        log_has(&report, "stdout", "probe: hello from stdout"),
        "{:?}",
        report.logs
    );
    assert!(log_has(&report, "stderr", "probe: hello from stderr"));
}

#[tokio::test]
async fn reserved_and_malformed_headers_are_refused() {
    let refused = |headers: Value| async move {
        match run(json!({"mode": "headers", "headers": headers}))
            .await
            .result
        {
            Err(TransformError::InvalidHeader(why)) => why,
            other => panic!("expected an invalid header, got {other:?}"),
        }
    };
    assert!(
        refused(json!({"Webhook-Signature": "v1,forged"}))
            .await
            .contains("reserved")
    );
    assert!(
        refused(json!({"host": "evil.example"}))
            .await
            .contains("reserved")
    );
    assert!(
        refused(json!({"bad name": "v"}))
            .await
            .contains("not a valid header name")
    );
    assert!(
        refused(json!({"x-split": "a\r\nb"}))
            .await
            .contains("not a valid header value")
    );

    let ok = run(json!({"mode": "headers", "headers": {"x-team": "data"}})).await;
    assert_eq!(
        delivered(&ok).headers,
        HeaderSet::from_pairs([("x-team", "data")]).unwrap()
    );
}

#[tokio::test]
async fn log_floods_are_capped() {
    // 1000 lines of ~40 bytes, twice: past the 64 KiB budget. The timeout is
    // generous because unoptimised test builds of the host are slow.
    let limits = PluginLimits {
        timeout: Duration::from_secs(5),
        ..PluginLimits::default()
    };
    let report = run_with(json!({"mode": "flood", "lines": 1000}), limits).await;
    assert_eq!(report.result, Ok(Outcome::Skip("flooded".into())));
    let kept: usize = report.logs.iter().map(|l| l.message.len()).sum();
    assert!(kept <= sandbox::LOG_BYTES + 200, "{kept}");
    let last = report.logs.last().unwrap();
    assert_eq!(last.level, "warn");
    assert!(
        last.message.contains("more log lines dropped"),
        "{}",
        last.message
    );
    assert!(log_has(
        &report,
        "debug",
        "flood line 0 through the log import"
    ));
    assert!(log_has(&report, "stdout", "flood line 0 through stdout"));
}

#[test]
fn non_components_and_other_worlds_are_refused() {
    let (runtime, _) = shared();
    let err = runtime.load(b"MZ\x90\x00 not wasm").unwrap_err();
    assert!(matches!(err, PluginError::NotWasm), "{err}");

    let core_module = b"\0asm\x01\0\0\0";
    let err = runtime.load(core_module).unwrap_err();
    assert!(matches!(err, PluginError::CoreModule), "{err}");
    assert!(err.to_string().contains("wasm32-wasip2"));

    let empty_component = b"\0asm\x0d\0\x01\0";
    let err = runtime.load(empty_component).unwrap_err();
    assert!(matches!(err, PluginError::WrongWorld(_)), "{err}");
    assert!(err.to_string().contains("transform"), "{err}");

    let truncated = &testkit_wasm()[..testkit_wasm().len() / 2];
    let err = runtime.load(truncated).unwrap_err();
    assert!(matches!(err, PluginError::Invalid(_)), "{err}");
}

#[test]
fn loading_the_same_bytes_again_shares_the_compiled_plugin() {
    let (runtime, plugin) = shared();
    let again = runtime.load(testkit_wasm()).unwrap();
    assert!(Arc::ptr_eq(plugin, &again));
    assert_eq!(plugin.size, testkit_wasm().len());
    assert_eq!(plugin.sha256, hex::encode(Sha256::digest(testkit_wasm())));
}

#[test]
fn a_restart_maps_the_compiled_plugin_from_the_disk_cache() {
    let dir = tempfile::tempdir().unwrap();
    let first = PluginRuntime::new(Some(dir.path()))
        .unwrap()
        .load(testkit_wasm())
        .unwrap();
    assert!(!first.from_cache);

    let entries: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(entries[0].starts_with(&format!("{}-", first.sha256)));
    assert!(entries[0].ends_with(".cwasm"));

    let second = PluginRuntime::new(Some(dir.path()))
        .unwrap()
        .load(testkit_wasm())
        .unwrap();
    println!(
        "compile: {:?}, disk cache: {:?}",
        first.load_duration, second.load_duration
    );
    assert!(second.from_cache);
    assert!(second.load_duration < first.load_duration);

    // A damaged entry is discarded and replaced, never trusted. It is damaged
    // once nothing maps it: rewriting a mapped entry in place would be a
    // SIGBUS, which is why the cache only ever renames whole files in.
    drop((first, second));
    std::fs::write(dir.path().join(&entries[0]), b"not a compiled plugin").unwrap();
    let third = PluginRuntime::new(Some(dir.path()))
        .unwrap()
        .load(testkit_wasm())
        .unwrap();
    assert!(!third.from_cache);
    let fourth = PluginRuntime::new(Some(dir.path()))
        .unwrap()
        .load(testkit_wasm())
        .unwrap();
    assert!(fourth.from_cache);
}

#[tokio::test]
async fn a_cached_plugin_runs_like_a_compiled_one() {
    let dir = tempfile::tempdir().unwrap();
    PluginRuntime::new(Some(dir.path()))
        .unwrap()
        .load(testkit_wasm())
        .unwrap();
    let runtime = PluginRuntime::new(Some(dir.path())).unwrap();
    let plugin = runtime.load(testkit_wasm()).unwrap();
    assert!(plugin.from_cache);
    let event = event();
    let report = runtime
        .transform(
            &plugin,
            PluginLimits::default(),
            TransformInput {
                event: &event,
                subscription_id: "sub_test",
                url: "https://example.com/hook",
                config_json: r#"{"mode":"echo"}"#,
            },
        )
        .await;
    assert_eq!(delivered(&report).body, event.payload_bytes());
}

#[test]
fn the_runtime_can_be_shared_across_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<PluginRuntime>();
    shareable::<LoadedPlugin>();
}

#[test]
fn headers_of_the_binary_are_told_apart() {
    assert!(matches!(
        check_component_header(b""),
        Err(PluginError::NotWasm)
    ));
    assert!(matches!(
        check_component_header(b"\0asm"),
        Err(PluginError::NotWasm)
    ));
    assert!(matches!(
        check_component_header(b"\0asm\x01\0\0\0"),
        Err(PluginError::CoreModule)
    ));
    assert!(check_component_header(b"\0asm\x0d\0\x01\0").is_ok());
}

#[test]
fn errors_read_as_sentences() {
    assert_eq!(
        TransformError::Timeout(Duration::from_millis(100)).to_string(),
        "plugin exceeded its 100ms timeout"
    );
    assert_eq!(
        TransformError::MemoryLimit(32 << 20).to_string(),
        "plugin exceeded its 32 MiB memory limit"
    );
    assert_eq!(
        TransformError::MemoryLimit(1000).to_string(),
        "plugin exceeded its 1000 bytes memory limit"
    );
    assert_eq!(
        TransformError::Plugin("no rows".into()).to_string(),
        "plugin error: no rows"
    );
}

fn trap_message(report: &TransformReport) -> &str {
    match &report.result {
        Err(TransformError::Trap(message)) => message,
        other => panic!("expected a trap, got {other:?}"),
    }
}

fn with_memory(memory_bytes: u64) -> PluginLimits {
    PluginLimits {
        memory_bytes,
        ..PluginLimits::default()
    }
}

#[tokio::test]
async fn hostile_infinite_loop_is_interrupted_at_the_timeout() {
    let limits = PluginLimits {
        timeout: Duration::from_millis(50),
        ..PluginLimits::default()
    };
    let report = run_plugin(hostile(), json!({"mode": "spin"}), limits).await;
    assert_eq!(
        report.result,
        Err(TransformError::Timeout(Duration::from_millis(50)))
    );
    assert!(
        report.duration < Duration::from_millis(500),
        "{:?}",
        report.duration
    );
}

#[tokio::test]
async fn hostile_memory_bomb_in_one_allocation_hits_the_budget() {
    let report = run_plugin(
        hostile(),
        json!({"mode": "hoard", "amount": 1u64 << 30}),
        with_memory(8 << 20),
    )
    .await;
    assert_eq!(report.result, Err(TransformError::MemoryLimit(8 << 20)));
}

#[tokio::test]
async fn hostile_stack_overflow_traps_and_the_runtime_carries_on() {
    let report = run_plugin(
        hostile(),
        json!({"mode": "recurse", "amount": u64::MAX}),
        PluginLimits::default(),
    )
    .await;
    let message = trap_message(&report);
    assert!(message.contains("call stack exhausted"), "{message}");
    assert!(
        delivered(&run(json!({"mode": "echo"})).await)
            .body
            .starts_with(b"{")
    );
}

#[tokio::test]
async fn hostile_four_memories_share_one_budget() {
    let (runtime, _) = shared();
    let plugin = runtime
        .load(&wat_component("four-memories"))
        .expect("the four-memory component loads");
    // Each extra memory grows to 2 MiB: alone within 4 MiB, together not.
    let report = run_plugin(&plugin, json!({}), with_memory(4 << 20)).await;
    assert_eq!(report.result, Err(TransformError::MemoryLimit(4 << 20)));
    // With room for all four the same component runs to its end, so the
    // failure above is the budget and nothing else.
    let report = run_plugin(&plugin, json!({}), with_memory(8 << 20)).await;
    assert_eq!(
        report.result,
        Ok(Outcome::Skip("grew four memories".into()))
    );
}

#[tokio::test]
async fn hostile_huge_output_is_refused() {
    let roomy = with_memory(64 << 20);
    let too_big = MAX_BODY_BYTES as u64 + 1;
    let report = run_plugin(
        hostile(),
        json!({"mode": "huge-body", "amount": too_big}),
        roomy,
    )
    .await;
    assert_eq!(
        report.result,
        Err(TransformError::OutputTooLarge(format!(
            "the body has {too_big} bytes, more than the 16 MiB hookshape sends"
        )))
    );
    let report = run_plugin(
        hostile(),
        json!({"mode": "huge-body", "amount": MAX_BODY_BYTES}),
        roomy,
    )
    .await;
    assert_eq!(delivered(&report).body.len(), MAX_BODY_BYTES);
}

#[tokio::test]
async fn hostile_header_floods_and_long_header_values_are_refused() {
    let report = run_plugin(
        hostile(),
        json!({"mode": "many-headers", "amount": 40_000}),
        PluginLimits::default(),
    )
    .await;
    assert_eq!(
        report.result,
        Err(TransformError::OutputTooLarge(
            "40000 headers are more than the 64 hookshape sends".into()
        ))
    );
    let report = run_plugin(
        hostile(),
        json!({"mode": "many-headers", "amount": MAX_HEADERS}),
        PluginLimits::default(),
    )
    .await;
    assert_eq!(delivered(&report).headers.len(), MAX_HEADERS);

    let long = "v".repeat(MAX_HEADER_VALUE_BYTES + 1);
    let report = run(json!({"mode": "headers", "headers": {"x-long": long}})).await;
    assert_eq!(
        report.result,
        Err(TransformError::OutputTooLarge(
            "the value of \"x-long\" is longer than 8 KiB".into()
        ))
    );
}

#[tokio::test]
async fn hostile_random_byte_requests_past_the_bound_trap() {
    let ask = |amount: u64| {
        run_plugin(
            hostile(),
            json!({"mode": "random", "amount": amount}),
            PluginLimits::default(),
        )
    };
    let report = ask(64 << 20).await;
    let message = trap_message(&report);
    assert!(message.contains("exceeds limit 65536"), "{message}");
    let report = ask(sandbox::RANDOM_BYTES).await;
    assert_eq!(
        report.result,
        Ok(Outcome::Skip(format!(
            "got {} random bytes",
            sandbox::RANDOM_BYTES
        )))
    );
}

#[tokio::test]
async fn hostile_resource_floods_hit_the_table_bound() {
    let hold = |amount: usize| {
        run_plugin(
            hostile(),
            json!({"mode": "resources", "amount": amount}),
            PluginLimits::default(),
        )
    };
    let report = hold(1_000_000).await;
    let message = trap_message(&report);
    assert!(
        message.contains("resource table has no free keys"),
        "{message}"
    );
    let report = hold(100).await;
    assert_eq!(
        report.result,
        Ok(Outcome::Skip("held 100 resources".into()))
    );
}

#[test]
fn hostile_imports_the_host_does_not_provide_are_refused_by_name() {
    let (runtime, _) = shared();
    let err = runtime.load(&wat_component("unknown-import")).unwrap_err();
    assert!(matches!(err, PluginError::UnsupportedImport(_)), "{err}");
    assert!(err.to_string().contains("evil:net/socket@1.0.0"), "{err}");
}

#[test]
fn hostile_gc_components_are_refused_because_gc_is_off() {
    let (runtime, _) = shared();
    let gc = wat::parse_str("(component (core module (type (struct (field i32)))))").unwrap();
    let err = runtime.load(&gc).unwrap_err();
    assert!(matches!(err, PluginError::Invalid(_)), "{err}");
}
