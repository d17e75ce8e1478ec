//! Several nodes on one PostgreSQL database: three `hookshape serve`
//! processes, events posted to all three in turn, one node `kill -9`'d
//! under load and restarted. Checked: every acknowledged event is delivered
//! at least once; the only duplicates are deliveries that were in flight at
//! the kill (their lease ran out and another node retook them); an ordered
//! subscription gets its events in posting order; a subscription made
//! through one node is used by another node's very next ingest.

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use crate::harness::{
    ConfigBuilder, Receiver, Server, assert_first_arrivals_in_order, create_database,
    delivered_keys, eventually, postgres_cluster,
};
use crate::pg_cluster::{Cluster, THROWAWAY, bin};

/// Clients posting at once, each this many events (bounded load).
const CLIENTS: usize = 4;
const EVENTS_PER_CLIENT: usize = 60;

/// Runs one query with psql; the rows, fields split on `|`.
fn query(database: &str, sql: &str) -> Vec<Vec<String>> {
    let out = Command::new(bin("psql"))
        .args(["-X", "-A", "-t", "-q", "-c", sql, database])
        .output()
        .expect("running psql");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.split('|').map(str::to_owned).collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn three_nodes_share_the_work_and_a_kill_9_loses_nothing() {
    if postgres_cluster().is_some() {
        return; // the suite's postgres run: this test runs in the sled run
    }
    let Some(cluster) = Cluster::start(THROWAWAY) else {
        eprintln!("PostgreSQL is not installed: the multi-node test is skipped");
        return;
    };
    let database = create_database(cluster.url());
    let config = ConfigBuilder::new()
        .retry_schedule(&["100ms", "200ms", "400ms"])
        .raw(&format!(
            "[storage]\nbackend = \"postgres\"\nurl = {database:?}\nlease = \"1s\""
        ))
        .build();
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(Server::start(&config).await);
    }

    // Made through one node, used by the next ingest on another.
    let free = Receiver::start().await;
    let ordered = Receiver::start().await;
    nodes[0]
        .create_subscription(
            "acme",
            &json!({"url": free.url(), "events": ["multi.free"]}),
        )
        .await;
    let receipt = nodes[1]
        .publish(
            "acme",
            &json!({"type": "multi.free", "id": "first", "payload": {"key": "first"}}),
        )
        .await;
    assert_eq!(
        receipt["deliveries"], 1,
        "node B matched node A's subscription"
    );
    nodes[1]
        .create_subscription(
            "acme",
            &json!({"url": ordered.url(), "events": ["multi.ordered"], "ordered": true}),
        )
        .await;
    let receipt = nodes[2]
        .publish(
            "acme",
            &json!({"type": "multi.ordered", "id": "o-first", "payload": {"key": "o-first"}}),
        )
        .await;
    assert_eq!(
        receipt["deliveries"], 1,
        "node C matched node B's subscription"
    );

    // Load, round-robin over the nodes; node C is killed part-way.
    let bases = Arc::new(Mutex::new(
        nodes.iter().map(Server::base_url).collect::<Vec<_>>(),
    ));
    let acked = Arc::new(Mutex::new(HashSet::from([
        "first".to_owned(),
        "o-first".to_owned(),
    ])));
    let ordered_posted = Arc::new(Mutex::new(vec!["o-first".to_owned()]));
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let (bases, acked, ordered_posted) = (bases.clone(), acked.clone(), ordered_posted.clone());
        clients.push(tokio::spawn(async move {
            let http =
                hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                    .build_http::<http_body_util::Full<axum::body::Bytes>>();
            for n in 0..EVENTS_PER_CLIENT {
                // Client 0 posts the ordered subscription's events, one at a time.
                let (event_type, key) = match c {
                    0 => ("multi.ordered", format!("o-{n}")),
                    _ => ("multi.free", format!("f{c}-{n}")),
                };
                if c == 0 {
                    ordered_posted.lock().unwrap().push(key.clone());
                }
                let base = bases.lock().unwrap()[(c + n) % 3].clone();
                let body = json!({"type": event_type, "id": key, "payload": {"key": key}});
                let request = hyper::Request::post(format!("{base}/v1/tenants/acme/events"))
                    .header(
                        "authorization",
                        format!("Bearer {}", crate::harness::ADMIN.unwrap()),
                    )
                    .header("content-type", "application/json")
                    .body(http_body_util::Full::new(body.to_string().into()))
                    .expect("a request");
                let answer =
                    tokio::time::timeout(Duration::from_secs(5), http.request(request)).await;
                if let Ok(Ok(response)) = answer
                    && response.status() == 202
                {
                    acked.lock().unwrap().insert(key);
                }
            }
        }));
    }
    eventually(Duration::from_secs(30), "deliveries under way", || async {
        (free.requests().len() >= 20).then_some(())
    })
    .await;
    nodes[2].kill9();
    // What was in flight at the kill: claimed and not recorded.
    let in_flight: HashSet<String> = query(
        &database,
        "SELECT e.source_id FROM deliveries d JOIN events e ON e.id = d.event_id
         WHERE d.pending AND d.locked_by IS NOT NULL",
    )
    .into_iter()
    .map(|row| row[0].clone())
    .collect();
    nodes[2].restart().await;
    bases.lock().unwrap()[2] = nodes[2].base_url();
    for client in clients {
        client.await.expect("a client");
    }

    let acked = std::mem::take(&mut *acked.lock().unwrap());
    assert!(
        acked.len() > CLIENTS * EVENTS_PER_CLIENT / 2,
        "most posts were acknowledged"
    );
    eventually(
        Duration::from_secs(60),
        "every acknowledged event delivered",
        || async {
            let got: HashSet<String> = delivered_keys(&free)
                .into_iter()
                .chain(delivered_keys(&ordered))
                .collect();
            acked.is_subset(&got).then_some(())
        },
    )
    .await;

    let all: Vec<String> = delivered_keys(&free)
        .into_iter()
        .chain(delivered_keys(&ordered))
        .collect();
    let mut counts: HashMap<&String, usize> = HashMap::new();
    for k in &all {
        *counts.entry(k).or_default() += 1;
    }
    let duplicated: Vec<&String> = counts
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(k, _)| *k)
        .collect();
    eprintln!(
        "multi-node: {} acknowledged, {} deliveries, {} in flight at the kill, {} delivered twice or more: {duplicated:?}",
        acked.len(),
        all.len(),
        in_flight.len(),
        duplicated.len()
    );
    let unexpected: Vec<&&String> = duplicated
        .iter()
        .filter(|k| !in_flight.contains(**k))
        .collect();
    assert!(
        unexpected.is_empty(),
        "duplicates not in flight at the kill: {unexpected:?}"
    );

    let ordered_posted = ordered_posted.lock().unwrap().clone();
    assert_first_arrivals_in_order(&ordered_posted, delivered_keys(&ordered));
    // Every node delivered: the work is shared.
    for node in &nodes {
        assert!(
            node.stderr().contains("attempt recorded"),
            "a node delivered nothing"
        );
    }
}
