//! The load generator: a keep-alive hyper client that POSTs events either
//! closed-loop (N concurrent senders, each posting as soon as its previous
//! answer arrived) or open-loop (a fixed rate, whatever the answers do).
//!
//! For every accepted ingest it keeps the event id from the 202 body and the
//! instant the answer arrived, so receipts can be matched by `webhook-id`
//! and the ack-to-receipt latency measured whatever a plugin did to the body.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Builds the body of the `i`th request.
pub type BodyFn = Arc<dyn Fn(u64) -> Bytes + Send + Sync>;

/// Where and what to post: the `i`th request goes to `uris[i % len]`.
#[derive(Clone)]
pub struct Target {
    pub uris: Arc<[Uri]>,
    pub token: Option<Arc<str>>,
    pub body: BodyFn,
}

/// When a closed-loop run ends.
#[derive(Debug, Clone, Copy)]
pub enum Stop {
    After(Duration),
    Count(u64),
}

/// What a run achieved.
#[derive(Debug, Default)]
pub struct LoadResult {
    /// Requests answered 2xx.
    pub ok: u64,
    pub failed: u64,
    pub elapsed: Duration,
    /// Event id -> when its 202 arrived (ingests only).
    pub acks: HashMap<Box<str>, Instant>,
}

impl LoadResult {
    pub fn per_second(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn merge(&mut self, other: LoadResult) {
        self.ok += other.ok;
        self.failed += other.failed;
        self.acks.extend(other.acks);
    }
}

pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(1024)
        .build(http)
}

/// A 2xx answer; for a 202 ingest, the event id and when the answer arrived.
type Answer = Option<Option<(Box<str>, Instant)>>;

/// Posts the `i`th body; `None` when it failed or got a non-2xx answer.
async fn post_one(client: &Client<HttpConnector, Full<Bytes>>, target: &Target, i: u64) -> Answer {
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(target.uris[(i % target.uris.len() as u64) as usize].clone())
        .header("content-type", "application/json");
    if let Some(token) = &target.token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let req = req.body(Full::new((target.body)(i))).ok()?;
    let resp = client.request(req).await.ok()?;
    let status = resp.status();
    let body = resp.into_body().collect().await.ok()?.to_bytes();
    let at = Instant::now();
    if !status.is_success() {
        return None;
    }
    let id = (status == StatusCode::ACCEPTED)
        .then(|| event_id(&body))
        .flatten();
    Some(id.map(|id| (id, at)))
}

/// The `"id"` of an ingest receipt, without a JSON parse per request.
fn event_id(body: &[u8]) -> Option<Box<str>> {
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find("\"id\":\"")? + 6;
    let len = text[start..].find('"')?;
    Some(text[start..start + len].into())
}

/// `concurrency` senders posting back to back until `stop`.
pub async fn closed_loop(target: Target, concurrency: usize, stop: Stop) -> LoadResult {
    let client = client();
    let issued = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut senders = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let (client, target, issued) = (client.clone(), target.clone(), issued.clone());
        senders.push(tokio::spawn(async move {
            let mut mine = LoadResult::default();
            loop {
                let i = issued.fetch_add(1, Ordering::Relaxed);
                let done = match stop {
                    Stop::After(d) => started.elapsed() >= d,
                    Stop::Count(n) => i >= n,
                };
                if done {
                    return mine;
                }
                record(&mut mine, post_one(&client, &target, i).await);
            }
        }));
    }
    let mut total = LoadResult::default();
    for sender in senders {
        total.merge(sender.await.expect("a sender task"));
    }
    total.elapsed = started.elapsed();
    total
}

/// `rate` requests per second for `duration`, each on its own task, so a
/// slow answer never delays the next send.
pub async fn open_loop(target: Target, rate: u64, duration: Duration) -> LoadResult {
    let client = client();
    let total = (rate as f64 * duration.as_secs_f64()).round() as u64;
    let period = Duration::from_secs_f64(1.0 / rate as f64);
    let started = Instant::now();
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sends = Vec::with_capacity(total as usize);
    for i in 0..total {
        tick.tick().await;
        let (client, target) = (client.clone(), target.clone());
        sends.push(tokio::spawn(
            async move { post_one(&client, &target, i).await },
        ));
    }
    let mut result = LoadResult::default();
    for send in sends {
        record(&mut result, send.await.expect("a send task"));
    }
    result.elapsed = started.elapsed();
    result
}

fn record(result: &mut LoadResult, answer: Answer) {
    match answer {
        Some(ack) => {
            result.ok += 1;
            result.acks.extend(ack);
        }
        None => result.failed += 1,
    }
}
