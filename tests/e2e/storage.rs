//! Storage as an operator sees it: what an acknowledgement waits for
//! (`storage.sync`), the storage limits and readiness, and retention.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hyper::StatusCode;
use serde_json::json;

use crate::harness::{self, ADMIN, ConfigBuilder, Receiver, Server, eventually, wait_until};

/// `strace` attached to a running server, logging its `fsync`/`fdatasync`
/// calls with wall-clock times and the paths of their file descriptors.
struct Strace {
    child: Child,
}

impl Strace {
    /// `None` when strace is not installed (CI installs it and insists).
    async fn attach(pid: u32, log: &Path) -> Option<Strace> {
        let spawned = Command::new("strace")
            .args(["-f", "-ttt", "-y", "-e", "trace=fsync,fdatasync", "-o"])
            .arg(log)
            .args(["-p", &pid.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(e) if std::env::var_os("CI").is_none() => {
                eprintln!("strace is not installed ({e}); skipping the fsync check");
                return None;
            }
            Err(e) => panic!("CI installs strace, but it cannot start: {e}"),
        };
        // strace writes its log once attached; give it a moment to attach to
        // every thread before the requests it must see.
        wait_until(Duration::from_secs(10), "strace to attach", || log.exists()).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        Some(Strace { child })
    }

    /// Detaches (SIGINT lets strace let go of the server cleanly).
    fn detach(mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// The times (Unix seconds) of successful syncs of the sled log, `data/db`.
fn log_syncs(log: &Path) -> Vec<f64> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("/data/db>") && l.trim_end().ends_with("= 0"))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
        .collect()
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64()
}

/// Posts `n` events one at a time; returns each one's (sent, acknowledged) times.
async fn acknowledged_ingests(server: &Server, n: usize) -> Vec<(f64, f64)> {
    let mut windows = Vec::new();
    for i in 0..n {
        let sent = unix_now();
        let (status, body) = server
            .post(
                "/v1/tenants/acme/events",
                ADMIN,
                &json!({"type": "project.published", "payload": {"n": i}}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        windows.push((sent, unix_now()));
    }
    windows
}

#[tokio::test]
async fn sync_full_fdatasyncs_the_log_before_each_202_and_sync_os_does_not() {
    if harness::sled_only("storage.sync is sled's; PostgreSQL commits with its own fsync") {
        return;
    }
    let full = Server::start(&ConfigBuilder::new().build()).await;
    let log = full.dir().join("strace-full.log");
    let Some(strace) = Strace::attach(full.pid(), &log).await else {
        return;
    };
    let windows = acknowledged_ingests(&full, 5).await;
    strace.detach();
    let syncs = log_syncs(&log);
    for (sent, acked) in &windows {
        assert!(
            syncs.iter().any(|t| t >= sent && t <= acked),
            "no fdatasync of data/db between sending an event at {sent} and its 202 at {acked}; syncs: {syncs:?}"
        );
    }

    // The control: with sync = "os" the same ingests sync nothing.
    let os = Server::start(&ConfigBuilder::new().raw("[storage]\nsync = \"os\"").build()).await;
    let log = os.dir().join("strace-os.log");
    let strace = Strace::attach(os.pid(), &log)
        .await
        .expect("strace ran above");
    acknowledged_ingests(&os, 5).await;
    strace.detach();
    assert_eq!(
        log_syncs(&log),
        Vec::<f64>::new(),
        "sync = \"os\" fsyncs nothing"
    );
}

#[tokio::test]
async fn past_max_size_ingest_answers_503_storage_full_and_readyz_says_why_while_the_api_works() {
    if harness::sled_only(
        "storage.max_size counts the embedded store's records; PostgreSQL's disk is the database's",
    ) {
        return;
    }
    let server = Server::start(
        &ConfigBuilder::new()
            .raw("[storage]\nmax_size = \"1KiB\"")
            .build(),
    )
    .await;
    // The store's size counts its records: a few events pass 1 KiB, and
    // the limit is measured at most once a second.
    let mut posted = 0;
    let reply = eventually(Duration::from_secs(10), "ingest to be refused", || {
        posted += 1;
        let server = &server;
        async move {
            let reply = server
                .request(
                    hyper::Method::POST,
                    "/v1/tenants/acme/events",
                    ADMIN,
                    Some((
                        "application/json",
                        br#"{"type": "project.published", "payload": {"pad": "0123456789abcdef"}}"#
                            .to_vec(),
                    )),
                )
                .await;
            match reply.status {
                StatusCode::ACCEPTED => None,
                _ => Some(reply),
            }
        }
    })
    .await;
    assert!(posted > 1, "an empty store is not over 1 KiB");
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.text()
    );
    assert_eq!(reply.json()["error"]["code"], "storage_full");
    assert!(
        reply.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("storage.max_size"),
        "{}",
        reply.text()
    );
    let retry_after: u64 = reply.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);

    let (status, ready) = server.get("/readyz", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready["status"], "not_ready");
    assert!(
        ready["reason"]
            .as_str()
            .unwrap()
            .contains("storage.max_size"),
        "{ready}"
    );
    // Liveness and the admin API are unaffected.
    assert_eq!(server.get("/healthz", None).await.0, StatusCode::OK);
    let (status, _) = server.get("/v1/tenants/acme/subscriptions", ADMIN).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn readyz_is_ready_on_a_healthy_store() {
    let server = Server::start(&ConfigBuilder::new().build()).await;
    let (status, ready) = server.get("/readyz", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ready, json!({"status": "ready"}));
}

#[tokio::test]
async fn retention_deletes_settled_events_and_old_attempts_but_never_a_pending_delivery() {
    let config = ConfigBuilder::new()
        .retry_schedule(&["1h"])
        .raw("[retention]\nevents = \"2s\"\nattempts = \"2s\"\nsweep_interval = \"1s\"");
    let server = Server::start(&config.build()).await;
    let ok = Receiver::start().await;
    let down = Receiver::start().await;
    down.always(crate::harness::Answer::status(503));
    let delivered_sub = server
        .create_subscription("acme", &json!({"url": ok.url(), "events": ["done"]}))
        .await;
    server
        .create_subscription("acme", &json!({"url": down.url(), "events": ["waiting"]}))
        .await;
    let settled = server
        .publish(
            "acme",
            &json!({"type": "done", "id": "src-1", "payload": {}}),
        )
        .await;
    let pending = server
        .publish("acme", &json!({"type": "waiting", "payload": {}}))
        .await;
    let (settled, pending) = (
        settled["id"].as_str().unwrap(),
        pending["id"].as_str().unwrap(),
    );
    server
        .settled_event("acme", settled, Duration::from_secs(10))
        .await;
    wait_until(
        Duration::from_secs(10),
        "the failing receiver to be tried",
        || down.count() >= 1,
    )
    .await;

    eventually(
        Duration::from_secs(15),
        "the settled event to be swept",
        || async {
            let (status, _) = server
                .get(&format!("/v1/tenants/acme/events/{settled}"), ADMIN)
                .await;
            (status == StatusCode::NOT_FOUND).then_some(())
        },
    )
    .await;
    let sub_id = delivered_sub["id"].as_str().unwrap();
    eventually(
        Duration::from_secs(10),
        "its attempts to be swept",
        || async {
            server
                .attempts("acme", sub_id)
                .await
                .is_empty()
                .then_some(())
        },
    )
    .await;
    // The delivery still waiting for its retry keeps its event.
    let (status, event) = server
        .get(&format!("/v1/tenants/acme/events/{pending}"), ADMIN)
        .await;
    assert_eq!(status, StatusCode::OK, "{event}");
    assert_eq!(event["deliveries"][0]["state"], "pending");
    // The source id is forgotten with its event: the same id is new again.
    let again = server
        .publish(
            "acme",
            &json!({"type": "done", "id": "src-1", "payload": {}}),
        )
        .await;
    assert_ne!(again["id"], settled);
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("hookshape_retention_deleted_total{kind=\"event\"} ")
            && !metrics.contains("hookshape_retention_deleted_total{kind=\"event\"} 0\n"),
        "{metrics}"
    );
}
