//! The three source systems end to end, through the real binary and the real plugins: the
//! design center's project events become commits in the git-bridge's repository, a report run
//! above a revenue threshold becomes one Slack message (and one below it a skipped attempt), a
//! dashboard comment reaches a Zapier catch hook as flat fields, and `hookshape plugin run`
//! predicts byte for byte what the server sends with `examples/hookshape.toml`.
//!
//! The git-bridge and the Slack and Zapier stand-ins run in this process from their libraries,
//! on ephemeral loopback ports, checking hookshape's signatures.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use git_bridge::{Bridge, BridgeConfig};
use hookshape::config::Config;
use hookshape::plugin::testing::{build_plugin, workspace_dir};
use hookshape_signing::{DEFAULT_TOLERANCE, Secret};
use receivers::gate::{GateConfig, SignatureCheck};
use receivers::slack::SlackReceiver;
use receivers::zapier::ZapierReceiver;
use serde_json::{Value, json};

use crate::harness::{
    ADMIN, ConfigBuilder, DryRun, Receiver, Recorded, Server, run_dry_run, sample,
};

/// Deadline of waits for something that should happen almost at once.
const SOON: Duration = Duration::from_secs(15);

/// The signing secret every subscription here is declared with.
const SECRET: &str = "whsec_MfKQ9r8GKYqinV8ZBNTt3BPpMNwQWrtFbUX8Y4Oe2hA=";

/// The project id in the design-center samples.
const PROJECT_ID: &str = "5b7e1c2a-91f4-4d0b-a3c6-0e2f8d9a4b11";

/// A receiver library's router served on `127.0.0.1:0` until dropped.
struct Service {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Service {
    async fn start(router: Router) -> Service {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding a receiver");
        let addr = listener.local_addr().expect("the receiver's address");
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .await
                .expect("the receiver serves");
        });
        Service { addr, task }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn secret() -> Secret {
    Secret::parse(SECRET).expect("a valid secret")
}

fn signed_gate() -> GateConfig {
    GateConfig {
        secret: Some(secret()),
        ..GateConfig::default()
    }
}

/// `[plugins.NAME]` tables for the workspace's plugins, built from source.
fn plugins_toml(names: &[&str]) -> String {
    names
        .iter()
        .map(|name| {
            let path = build_plugin(name).display().to_string();
            format!("[plugins.{name}]\npath = {path:?}\ntimeout = \"1s\"\n")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn id_of(value: &Value) -> String {
    value["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {value}"))
        .to_owned()
}

/// Publishes `event` and waits until its one delivery settles; returns the event id and the
/// delivery's final state.
async fn publish_settled(server: &Server, tenant: &str, event: &Value) -> (String, String) {
    let receipt = server.publish(tenant, event).await;
    assert_eq!(receipt["deliveries"], 1, "publishing {event}: {receipt}");
    let id = id_of(&receipt);
    let stored = server.settled_event(tenant, &id, SOON).await;
    let state = stored["deliveries"][0]["state"]
        .as_str()
        .unwrap_or_else(|| panic!("no delivery state in {stored}"))
        .to_owned();
    (id, state)
}

/// Runs git in `repo` and returns its stdout.
fn git(repo: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .expect("running git");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("git prints UTF-8 here")
}

/// Commit subjects, newest first.
fn subjects(repo: &Path) -> Vec<String> {
    git(repo, &["log", "--format=%s"])
        .lines()
        .map(str::to_owned)
        .collect()
}

fn tracked(repo: &Path) -> BTreeSet<String> {
    git(repo, &["ls-files"])
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn design_center_events_become_commits_in_the_bridge_repository() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let repo = dir.path().join("repo");
    let bridge = Bridge::open(BridgeConfig {
        repo: repo.clone(),
        secret: secret(),
        tolerance: DEFAULT_TOLERANCE,
    })
    .expect("opening the bridge");
    let service = Service::start(Arc::new(bridge).router()).await;
    let config = ConfigBuilder::new()
        .raw(&plugins_toml(&["git-commit"]))
        .raw(&format!(
            r#"[[subscriptions]]
id = "design-center-git"
tenant = "atscale"
url = "http://{}/"
events = ["project.*", "snapshot.*"]
plugin = "git-commit"
ordered = true
secret = "{SECRET}"
"#,
            service.addr
        ))
        .build();
    let server = Server::start(&config).await;
    let file = format!("projects/sales-insights--{PROJECT_ID}.xml");

    let published = sample("atscale-project-published");
    let (published_id, state) = publish_settled(&server, "atscale", &published).await;
    assert_eq!(state, "delivered");
    assert_eq!(
        subjects(&repo),
        [format!(
            "project.published: Sales Insights v12 ({PROJECT_ID})"
        )]
    );
    let xml = published["payload"].as_str().expect("an XML payload");
    assert_eq!(
        std::fs::read(repo.join(&file)).expect("the committed file"),
        xml.as_bytes(),
        "the work tree holds the sample XML byte for byte"
    );
    assert_eq!(
        git(&repo, &["show", &format!("HEAD:{file}")]),
        xml,
        "the commit holds the sample XML byte for byte"
    );

    let snapshot = sample("atscale-snapshot-created");
    let (_, state) = publish_settled(&server, "atscale", &snapshot).await;
    assert_eq!(state, "delivered");
    assert_eq!(subjects(&repo).len(), 2);
    assert_eq!(
        git(&repo, &["show", &format!("HEAD:{file}")]),
        snapshot["payload"].as_str().unwrap()
    );

    // Resending the first publish reaches the bridge again with the same webhook-id: the bridge
    // answers from its ledger, so the older version does not overwrite the snapshot.
    let attempts = server
        .wait_attempts("atscale", "design-center-git", 2, SOON)
        .await;
    let first = attempts
        .iter()
        .find(|a| a["event_id"] == published_id.as_str())
        .expect("the publish's attempt");
    let (status, resent) = server
        .post(
            &format!("/v1/tenants/atscale/attempts/{}/resend", id_of(first)),
            ADMIN,
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "resend: {resent}");
    let attempts = server
        .wait_attempts("atscale", "design-center-git", 3, SOON)
        .await;
    let redelivery = &attempts[2];
    assert_eq!(redelivery["event_id"], published_id.as_str());
    assert_eq!(redelivery["outcome"], "delivered", "{redelivery}");
    assert_eq!(redelivery["status_code"], 200, "a replay, not a new commit");
    let replay: Value = serde_json::from_str(redelivery["response_body"].as_str().unwrap())
        .expect("the bridge answers JSON");
    assert_eq!(replay["replayed"], true, "{replay}");
    assert_eq!(subjects(&repo).len(), 2, "the redelivery made no commit");
    assert_eq!(
        std::fs::read_to_string(repo.join(&file)).unwrap(),
        snapshot["payload"].as_str().unwrap()
    );

    let deleted = json!({
        "type": "project.deleted",
        "id": "dc-7f3a9e03",
        "payload": {"project_id": PROJECT_ID, "name": "Sales Insights"},
    });
    let (_, state) = publish_settled(&server, "atscale", &deleted).await;
    assert_eq!(state, "delivered");
    assert_eq!(
        subjects(&repo)[0],
        format!("project.deleted: Sales Insights ({PROJECT_ID})")
    );
    assert_eq!(subjects(&repo).len(), 3);
    assert!(
        !repo.join(&file).exists(),
        "the deleted project's file is gone"
    );
    assert!(tracked(&repo).is_empty(), "{:?}", tracked(&repo));

    // Names and ids that try to leave the directory, or carry control characters, land at
    // safe paths inside it: a slug of the name, then the id (hex-encoded unless it is safe).
    let hostile = [
        (
            r#"<project id="p-hostile-1" name="../../etc/passwd" version="1"/>"#,
            "projects/etc-passwd--",
            "--p-hostile-1.xml",
        ),
        (
            r#"<project id="/etc/shadow" name="/etc/shadow"/>"#,
            "projects/etc-shadow--",
            "--2f6574632f736861646f77.xml",
        ),
        (
            r#"<project id="../../x" name="tab&#9;nl&#10;del&#127;cr&#13;end"/>"#,
            "projects/tab-nl-del-cr-end--",
            "--2e2e2f2e2e2f78.xml",
        ),
    ];
    for (n, (xml, _, _)) in hostile.iter().enumerate() {
        let event = json!({
            "type": "project.imported",
            "id": format!("dc-hostile-{n}"),
            "content_type": "application/xml",
            "payload": xml,
        });
        let (_, state) = publish_settled(&server, "atscale", &event).await;
        assert_eq!(state, "delivered", "{xml}");
    }
    assert_eq!(subjects(&repo).len(), 6);
    let files = tracked(&repo);
    assert_eq!(files.len(), 3, "{files:?}");
    for (xml, prefix, suffix) in hostile {
        let path = files
            .iter()
            .find(|f| f.starts_with(prefix) && f.ends_with(suffix))
            .unwrap_or_else(|| panic!("no {prefix}...{suffix} in {files:?}"));
        let name = path.strip_prefix("projects/").unwrap();
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.".contains(&b))
                && !name.contains(".."),
            "{path}"
        );
        assert_eq!(std::fs::read_to_string(repo.join(path)).unwrap(), xml);
    }
    let outside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        outside,
        ["repo"],
        "nothing was written beside the repository"
    );
    drop(service);
}

#[tokio::test(flavor = "multi_thread")]
async fn revenue_above_the_threshold_posts_one_slack_message_and_below_is_skipped() {
    let slack = SlackReceiver::new(signed_gate());
    let service = Service::start(Arc::clone(&slack).router()).await;
    let config = ConfigBuilder::new()
        .raw(&plugins_toml(&["slack-threshold"]))
        .raw(&format!(
            r#"[[subscriptions]]
id = "revenue-alert"
tenant = "analyst-studio"
url = "http://{}/services/T000/B000/XXXX"
events = ["report_run_completed"]
plugin = "slack-threshold"
secret = "{SECRET}"
[subscriptions.plugin_config]
pointer = "/rows/0/revenue"
op = ">"
threshold = 100000
"#,
            service.addr
        ))
        .build();
    let server = Server::start(&config).await;

    let (_, state) = publish_settled(
        &server,
        "analyst-studio",
        &sample("analyst-studio-report-run-completed"),
    )
    .await;
    assert_eq!(state, "delivered");
    let received = slack.received();
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0].signature, SignatureCheck::Verified);
    assert_eq!(received[0].path, "/services/T000/B000/XXXX");
    let text = received[0].detail.message["text"].as_str().expect("a text");
    assert!(text.contains("128450.5"), "{text}");
    // Slack mrkdwn escapes `>` as `&gt;`.
    assert!(text.contains("(&gt; 100000)"), "{text}");

    let mut slow_day = sample("analyst-studio-report-run-completed");
    slow_day["id"] = json!("as-run-457");
    slow_day["payload"]["rows"][0]["revenue"] = json!(42000.5);
    let (slow_id, state) = publish_settled(&server, "analyst-studio", &slow_day).await;
    assert_eq!(state, "skipped");
    let attempts = server
        .wait_attempts("analyst-studio", "revenue-alert", 2, SOON)
        .await;
    let skipped = &attempts[1];
    assert_eq!(skipped["event_id"], slow_id.as_str());
    assert_eq!(skipped["outcome"], "skipped", "{skipped}");
    assert_eq!(skipped["error"], "revenue 42000.5 is not > 100000");
    assert_eq!(slack.received().len(), 1, "nothing was sent for the skip");
    drop(service);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dashboard_comment_reaches_zapier_as_flat_fields() {
    let zapier = ZapierReceiver::new(signed_gate());
    let service = Service::start(Arc::clone(&zapier).router()).await;
    let config = ConfigBuilder::new()
        .raw(&plugins_toml(&["zapier"]))
        .raw(&format!(
            r#"[[subscriptions]]
id = "dashboards-zap"
tenant = "alpana"
url = "http://{}/hooks/catch/123456/alpana/"
events = ["dashboard_comment.*"]
plugin = "zapier"
secret = "{SECRET}"
"#,
            service.addr
        ))
        .build();
    let server = Server::start(&config).await;

    let comment = sample("alpana-comment-added");
    let (event_id, state) = publish_settled(&server, "alpana", &comment).await;
    assert_eq!(state, "delivered");
    let caught = zapier.received();
    assert_eq!(caught.len(), 1, "{caught:?}");
    assert_eq!(caught[0].signature, SignatureCheck::Verified);
    let fields = &caught[0].detail.fields;
    let expected = [
        ("event_type", json!("dashboard_comment.added")),
        ("event_id", json!(event_id)),
        ("tenant", json!("alpana")),
        ("payload__tenant", json!("acme-finance")),
        ("dashboard__id", json!(4812)),
        ("dashboard__name", json!("Cash position")),
        ("widget__name", json!("Cash by bank")),
        ("comment__id", json!(551)),
        ("comment__author", json!("Aiko Tanaka")),
        (
            "comment__text",
            comment["payload"]["comment"]["text"].clone(),
        ),
    ];
    for (key, value) in expected {
        assert_eq!(fields.get(key), Some(&value), "field {key} in {fields:?}");
    }
    assert!(
        fields.values().all(|v| !v.is_object() && !v.is_array()),
        "every field is flat: {fields:?}"
    );
    drop(service);
}

/// The demo's ports in `examples/hookshape.toml`, replaced by test receivers.
const DEMO_RECEIVERS: [&str; 3] = [
    "http://127.0.0.1:9101",
    "http://127.0.0.1:9102",
    "http://127.0.0.1:9103",
];

/// The tenant a sample file is for: the config tenant its name starts with.
fn tenant_of<'c>(name: &str, config: &'c Config) -> Option<&'c str> {
    config
        .subscriptions
        .iter()
        .map(|s| s.tenant.as_str())
        .filter(|t| {
            name.strip_prefix(t)
                .is_some_and(|rest| rest.starts_with('-'))
        })
        .max_by_key(|t| t.len())
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_runs_match_what_the_server_sends_with_the_example_config() {
    let receivers = [
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
    ];
    let mut text = std::fs::read_to_string(workspace_dir().join("examples/hookshape.toml"))
        .expect("reading examples/hookshape.toml");
    for (demo, receiver) in DEMO_RECEIVERS.iter().zip(&receivers) {
        assert!(text.contains(demo), "the example config uses {demo}");
        text = text.replace(demo, &format!("http://{}", receiver.addr()));
    }
    let plugins_dir = build_plugin("git-commit")
        .parent()
        .expect("the plugins' directory")
        .display()
        .to_string();
    text = text.replace(
        "\"../target/plugins/wasm32-wasip2/release/",
        &format!("\"{plugins_dir}/"),
    );
    for name in ["slack-threshold", "zapier", "template"] {
        build_plugin(name);
    }
    text.push_str(&format!(
        "\n[[auth.tokens]]\ntoken = {:?}\nrole = \"admin\"\ntenants = [\"*\"]\n",
        ADMIN.unwrap()
    ));
    let config = Config::parse(&text, Path::new("hookshape.toml"), &|_| None)
        .unwrap_or_else(|e| panic!("the rewritten example config is valid:\n{e}"));
    let server = Server::start(&text).await;

    let samples_dir = workspace_dir().join("../shared/samples");
    let mut names: Vec<String> = std::fs::read_dir(&samples_dir)
        .expect("the samples")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|f| f.strip_suffix(".json").map(str::to_owned))
        .collect();
    names.sort();
    let mut compared: BTreeMap<String, usize> = BTreeMap::new();
    for name in &names {
        let tenant = tenant_of(name, &config)
            .unwrap_or_else(|| panic!("no tenant of the example config serves {name}"));
        let receipt = server.publish(tenant, &sample(name)).await;
        let event = server.settled_event(tenant, &id_of(&receipt), SOON).await;
        let event_file = server.dir().join(format!("{name}.stored.json"));
        std::fs::write(&event_file, event.to_string()).expect("writing the stored event");
        for delivery in event["deliveries"].as_array().expect("deliveries") {
            let sub = config
                .subscriptions
                .iter()
                .find(|s| {
                    s.tenant.as_str() == tenant && delivery["subscription_id"] == s.id.as_str()
                })
                .unwrap_or_else(|| panic!("{name}: an unknown subscription in {delivery}"));
            let plugin = sub
                .plugin
                .as_ref()
                .expect("every example subscription has a plugin");
            let wasm = &config.plugins[plugin].path;
            let (status, stdout, stderr) = run_dry_run(
                wasm,
                &event_file,
                &sub.plugin_config.to_string(),
                Some(&sub.url),
                server.dir(),
                SOON,
            );
            assert!(status.success(), "{name} with {plugin}: {stdout}\n{stderr}");
            let dry_run = DryRun::parse(&stdout);
            let attempts = server.attempts(tenant, sub.id.as_str()).await;
            let attempt = attempts
                .iter()
                .find(|a| a["event_id"] == event["id"])
                .unwrap_or_else(|| panic!("{name}: no attempt on {}", sub.id));
            match delivery["state"].as_str() {
                Some("delivered") => {
                    let sent = sent_to(&receivers, &sub.url, event["id"].as_str().unwrap());
                    let context = format!("{name} through {plugin} ({})", sub.id);
                    assert_eq!(
                        dry_run.request_line(),
                        format!("deliver: POST {}", sub.url),
                        "{context}"
                    );
                    assert_eq!(
                        dry_run.header("content-type"),
                        sent.header("content-type"),
                        "{context}"
                    );
                    assert_eq!(dry_run.body(), &sent.body[..], "{context}");
                }
                Some("skipped") => assert_eq!(
                    dry_run,
                    DryRun::Skip(attempt["error"].as_str().expect("a reason").to_owned()),
                    "{name} through {plugin} ({})",
                    sub.id
                ),
                other => panic!("{name} to {}: delivery ended {other:?}: {attempt}", sub.id),
            }
            *compared.entry(plugin.to_string()).or_default() += 1;
        }
    }
    assert_eq!(
        compared,
        BTreeMap::from([
            ("git-commit".to_owned(), 2),
            ("slack-threshold".to_owned(), 2),
            ("template".to_owned(), 3),
            ("zapier".to_owned(), 3),
        ]),
        "every plugin ran on every sample it serves"
    );
}

/// The one request with this `webhook-id` that reached `url`'s path on the receivers.
fn sent_to(receivers: &[Receiver], url: &str, event_id: &str) -> Recorded {
    let path = url::Url::parse(url).expect("a URL").path().to_owned();
    let matching: Vec<Recorded> = receivers
        .iter()
        .flat_map(Receiver::requests)
        .filter(|r| r.uri == path && r.webhook_id() == event_id)
        .collect();
    assert_eq!(matching.len(), 1, "requests for {event_id} at {url}");
    matching.into_iter().next().unwrap()
}
