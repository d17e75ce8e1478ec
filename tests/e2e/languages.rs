//! Plugins in Python and JavaScript, built from source with their SDKs
//! (`plugin-sdk/python`, `plugin-sdk/js`): the ports of `slack-threshold`
//! answer exactly as the Rust original through the host's dry run, on every
//! sample event; each delivers through a real server; `plugin new` writes a
//! project in each language that passes its own test and builds.
//!
//! Without componentize-py or node these tests say so and pass, except
//! under CI (the `CI` variable), where they fail.

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::http::StatusCode;
use hookshape::plugin::testing::{Toolchain, build_foreign_plugin, build_plugin, workspace_dir};
use serde_json::{Value, json};

use crate::harness::{Receiver, Server, run_binary, sample};
use crate::plugins::{id_of, put_plugin};

/// Bounds each `plugin run` (a cached Python component loads in tens of ms).
const CLI_DEADLINE: Duration = Duration::from_secs(60);

/// Deadline of a delivery through a freshly uploaded plugin.
const SOON: Duration = Duration::from_secs(20);

/// Configs that make `slack-threshold` deliver, skip and fail on the samples,
/// and use every option.
fn golden_configs() -> [Value; 5] {
    [
        json!({"pointer": "/rows/0/revenue", "op": ">", "threshold": 100000,
               "message": "Daily revenue crossed the line"}),
        json!({"pointer": "/rows/1/revenue", "op": ">", "threshold": 100000, "on_missing": "skip"}),
        json!({"pointer": "/rows/0/revenue", "op": "<", "threshold": 1}),
        json!({"pointer": "/dashboard/id", "op": ">=", "threshold": 4812, "channel": "#bi",
               "username": "hookshape", "link_pointer": "/comment/url",
               "message": "{tenant}: {name} {value} {op} {threshold} on {event_type} <&>"}),
        json!({"pointer": "/rows/0/orders", "op": "!=", "threshold": 0.5, "link_pointer": "/report"}),
    ]
}

/// `plugin run`'s output without what differs between runs (the generated
/// event id, the signature, the time taken).
fn dry_run(wasm: &Path, event: &Path, config: &Value, data: &Path) -> String {
    let (wasm, event, config) = (
        wasm.display().to_string(),
        event.display().to_string(),
        config.to_string(),
    );
    let data = data.display().to_string();
    // The answer is compared, not the speed: a generous timeout keeps a
    // busy machine from turning a cold Python call into a timeout.
    let args = [
        "plugin",
        "run",
        "--plugin",
        &wasm,
        "--event",
        &event,
        "--config",
        &config,
        "--data",
        &data,
        "--timeout",
        "10s",
    ];
    let (_status, stdout, stderr) = run_binary(&args, workspace_dir(), CLI_DEADLINE);
    assert!(!stdout.is_empty(), "plugin run printed nothing: {stderr}");
    stdout
        .lines()
        .filter(|l| !l.starts_with("webhook-") && !l.starts_with("transform took"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn samples() -> Vec<PathBuf> {
    let dir = workspace_dir().join("../shared/samples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

/// The compile cache the golden runs share, so each component compiles once.
fn golden_data() -> PathBuf {
    workspace_dir().join("target/plugins/dry-run-data")
}

fn assert_same_as_rust(port: &str, toolchain: Toolchain) {
    let Some(port_wasm) = build_foreign_plugin(port, toolchain) else {
        return;
    };
    let rust = build_plugin("slack-threshold");
    let mut seen = [false; 3];
    for config in golden_configs() {
        for event in samples() {
            let expected = dry_run(&rust, &event, &config, &golden_data());
            let got = dry_run(&port_wasm, &event, &config, &golden_data());
            assert_eq!(
                got,
                expected,
                "{port} differs from slack-threshold on {} with {config}",
                event.display()
            );
            for (i, prefix) in ["deliver:", "skip:", "transform_failed:"]
                .iter()
                .enumerate()
            {
                seen[i] |= expected.starts_with(prefix);
            }
        }
    }
    assert_eq!(seen, [true; 3], "the golden set delivers, skips and fails");
}

#[test]
fn the_python_port_answers_exactly_as_the_rust_plugin_on_every_sample() {
    assert_same_as_rust("slack-threshold-py", Toolchain::Python);
}

#[test]
fn the_javascript_port_answers_exactly_as_the_rust_plugin_on_every_sample() {
    assert_same_as_rust("slack-threshold-js", Toolchain::JavaScript);
}

/// Uploads the port, subscribes with it, publishes the report run and
/// checks the body the receiver gets.
async fn deliver_through(port: &str, toolchain: Toolchain) {
    let Some(wasm) = build_foreign_plugin(port, toolchain) else {
        return;
    };
    let receiver = Receiver::start().await;
    let server = Server::start(&crate::harness::ConfigBuilder::new().build()).await;
    // Compiling the component takes longer than an API request may on a busy
    // machine: a dry run with the server's data directory compiles it into
    // the cache they share, and the upload maps it from there.
    let data = server.dir().join("data");
    let event = workspace_dir().join("../shared/samples/analyst-studio-report-run-completed.json");
    let dry = dry_run(&wasm, &event, &golden_configs()[0], &data);
    assert!(dry.starts_with("deliver:"), "{dry}");
    let bytes = std::fs::read(&wasm).expect("reading the component");
    // A cold Python call takes milliseconds; 2 s keeps a busy test machine from timing it out.
    let (status, info) = put_plugin(&server, &format!("{port}?timeout=2s"), bytes).await;
    assert_eq!(status, StatusCode::CREATED, "upload: {info}");
    let config = &golden_configs()[0];
    server
        .create_subscription(
            "acme",
            &json!({"url": receiver.url(), "events": ["*"], "plugin": port, "plugin_config": config}),
        )
        .await;
    let event_id = id_of(
        &server
            .publish("acme", &sample("analyst-studio-report-run-completed"))
            .await,
    );
    let request = receiver.wait_for(1, SOON).await.remove(0);
    let expected = concat!(
        r#"{"blocks":[{"text":{"text":"*Daily revenue crossed the line*\nrevenue is *128450.5* (&gt; 100000)","type":"mrkdwn"},"type":"section"},"#,
        r#"{"elements":[{"text":"<https://studio.example.com/api/acme/reports/9f2c41/runs/b7d0e3|Open> · report_run_completed · acme","type":"mrkdwn"}],"type":"context"}],"#,
        r#""text":"Daily revenue crossed the line: revenue is 128450.5 (&gt; 100000)"}"#
    );
    assert_eq!(request.text(), expected, "{port}'s body");
    assert_eq!(request.webhook_id(), event_id);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_python_port_delivers_through_the_server() {
    deliver_through("slack-threshold-py", Toolchain::Python).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_javascript_port_delivers_through_the_server() {
    deliver_through("slack-threshold-js", Toolchain::JavaScript).await;
}

/// Runs `program args` in `dir`, panicking with its output on failure.
fn run_in(dir: &Path, program: &str, args: &[&str], env: &[(&str, &Path)]) {
    let mut command = std::process::Command::new(program);
    command
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} in {} failed:\n{}\n{}",
        dir.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `plugin new NAME --lang LANG` in a fresh directory; the project's path.
fn plugin_new(dir: &Path, name: &str, lang: &str) -> PathBuf {
    let dir_arg = dir.display().to_string();
    let (status, stdout, stderr) = run_binary(
        &["plugin", "new", name, "--lang", lang, "--dir", &dir_arg],
        dir,
        CLI_DEADLINE,
    );
    assert!(status.success(), "plugin new: {stdout}{stderr}");
    dir.join(name)
}

/// The generated project's dry run on its own `event.json` delivers.
fn assert_dry_run_delivers(project: &Path, wasm: &Path) {
    let out = dry_run(
        wasm,
        &project.join("event.json"),
        &json!({"prefix": "New: "}),
        &golden_data(),
    );
    assert!(
        out.starts_with("deliver: POST")
            && out.contains(r#""text":"New: order.paid from dry-run""#),
        "{out}"
    );
}

#[test]
fn plugin_new_writes_a_rust_project_that_passes_its_test_and_builds() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let project = plugin_new(dir.path(), "chat-digest", "rust");
    // One shared target directory: the SDK and serde compile once across runs.
    let target = workspace_dir().join("target/plugins-new");
    let env = [("CARGO_TARGET_DIR", target.as_path())];
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run_in(&project, &cargo, &["test", "--release"], &env);
    run_in(
        &project,
        &cargo,
        &["build", "--release", "--target", "wasm32-wasip2"],
        &env,
    );
    assert_dry_run_delivers(
        &project,
        &target.join("wasm32-wasip2/release/chat_digest.wasm"),
    );
}

#[test]
fn plugin_new_writes_a_python_project_that_passes_its_test_and_builds() {
    if !Toolchain::Python.available() {
        return;
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let project = plugin_new(dir.path(), "chat-digest", "python");
    run_in(
        &project,
        "python3",
        &["-m", "pytest", "-q", "-p", "no:cacheprovider"],
        &[],
    );
    let wasm = project.join("chat_digest.wasm");
    Toolchain::Python.build(&project, &wasm);
    assert_dry_run_delivers(&project, &wasm);
}

#[test]
fn plugin_new_writes_a_javascript_project_that_passes_its_test_and_builds() {
    if !Toolchain::JavaScript.available() {
        return;
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let project = plugin_new(dir.path(), "chat-digest", "js");
    // The only dependency is the SDK, linked from this checkout: no download.
    run_in(
        &project,
        "npm",
        &["install", "--offline", "--no-audit", "--no-fund"],
        &[],
    );
    run_in(&project, "npm", &["test"], &[]);
    run_in(&project, "npm", &["run", "build"], &[]);
    assert_dry_run_delivers(&project, &project.join("chat_digest.wasm"));
}

#[test]
fn config_check_starts_each_plugin_so_a_cap_below_its_image_fails_there() {
    let Some(wasm) = build_foreign_plugin("slack-threshold-py", Toolchain::Python) else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    // The compile cache `serve` would use, so the component compiles once.
    let data = golden_data();
    let check = |memory: &str| {
        let file = dir.path().join(format!("{memory}.toml"));
        let toml = format!(
            "[storage]\npath = {:?}\n[plugins.py]\npath = {:?}\nmemory = {memory:?}\n",
            data.display().to_string(),
            wasm.display().to_string()
        );
        std::fs::write(&file, toml).expect("writing the config");
        run_binary(
            &["config", "check", &file.display().to_string()],
            dir.path(),
            CLI_DEADLINE,
        )
    };
    // The Python interpreter's starting image is 12.4 MiB.
    let (status, stdout, stderr) = check("12MiB");
    assert_eq!(status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("plugins.py:")
            && stderr.contains(
                "does not start under its limits: plugin exceeded its 12 MiB memory limit"
            ),
        "{stderr}"
    );
    let (status, stdout, stderr) = check("16MiB");
    assert!(status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("plugin py: ok"), "{stdout}");
}
