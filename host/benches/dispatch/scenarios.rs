//! The scenarios. Each starts its own receiver and its own `hookshape serve`
//! nodes with a fresh data directory (and on PostgreSQL a fresh database),
//! drives them, and returns its table row; sizes come from [`Sizes`] (full or
//! `--quick`), the store from [`Backend`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::Value;

use crate::backend::Backend;
use crate::load::{self, BodyFn, LoadResult, Stop, Target};
use crate::receiver::{Receipt, Receiver};
use crate::report::{self, Cpu, Percentiles, Row};
use crate::server::{self, Nodes, SubscriptionSpec};

/// Concurrent clients of every closed-loop run.
const CONCURRENCY: usize = 64;
const TRANSFORM_HISTOGRAM: &str = "hookshape_transform_duration_seconds";
const SLACK_CONFIG: &str = r#"{ pointer = "/rows/0/revenue", op = ">", threshold = 100000 }"#;
/// [`SLACK_CONFIG`] as the JSON a plugin receives.
const SLACK_CONFIG_JSON: &str = r#"{"pointer": "/rows/0/revenue", "op": ">", "threshold": 100000}"#;
const GIT_CONFIG: &str = "{}";

/// How big each scenario is.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    pub raw: Duration,
    /// Events ingested with the receiver paused; they become the pending
    /// deliveries of the restart scenario.
    pub ingest_events: u64,
    pub e2e_events: u64,
    pub fanout_events: u64,
    pub fanout: usize,
    pub many_subscriptions: usize,
    pub fixed_rate: u64,
    pub fixed_for: Duration,
    pub transform_calls: usize,
    /// The longest a scenario waits for its deliveries to arrive.
    pub drain_deadline: Duration,
}

impl Sizes {
    pub fn full() -> Sizes {
        Sizes {
            raw: Duration::from_secs(5),
            ingest_events: 100_000,
            e2e_events: 30_000,
            fanout_events: 3_000,
            fanout: 10,
            many_subscriptions: 10_000,
            fixed_rate: 1_000,
            fixed_for: Duration::from_secs(30),
            transform_calls: 20_000,
            drain_deadline: Duration::from_secs(90),
        }
    }

    pub fn quick() -> Sizes {
        Sizes {
            raw: Duration::from_millis(500),
            ingest_events: 1_000,
            e2e_events: 300,
            fanout_events: 30,
            fanout: 10,
            many_subscriptions: 500,
            fixed_rate: 200,
            fixed_for: Duration::from_secs(1),
            transform_calls: 200,
            drain_deadline: Duration::from_secs(20),
        }
    }
}

fn read_sample(sample: &str) -> String {
    let path = hookshape::plugin::testing::workspace_dir()
        .join("../shared/samples")
        .join(format!("{sample}.json"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Event bodies built from a sample: a unique source `id` per event and an
/// event type chosen per index, the rest of the document shared.
fn event_bodies(
    sample: &str,
    event_type: impl Fn(u64) -> String + Send + Sync + 'static,
) -> BodyFn {
    let mut doc: Value = serde_json::from_str(&read_sample(sample)).expect("a JSON sample");
    let fields = doc.as_object_mut().expect("a sample is an object");
    fields.remove("id");
    fields.remove("type");
    let rest = serde_json::to_string(&doc).expect("JSON");
    let rest: Arc<str> = rest.strip_prefix('{').expect("an object").into();
    Arc::new(move |i| {
        Bytes::from(format!(
            "{{\"id\":\"bench-{i}\",\"type\":\"{}\",{rest}",
            event_type(i)
        ))
    })
}

/// One scenario's servers: the directory with their config and data, and
/// the nodes of the run's backend running on it.
struct Servers<'a> {
    dir: tempfile::TempDir,
    nodes: Nodes,
    backend: &'a Backend,
}

impl<'a> Servers<'a> {
    /// Writes the config into a fresh directory (on PostgreSQL, for a fresh
    /// database) and starts the nodes on it.
    async fn start(
        backend: &'a Backend,
        plugins: &[(&str, PathBuf)],
        subs: &[SubscriptionSpec],
    ) -> Servers<'a> {
        let dir = tempfile::tempdir().expect("a temporary directory");
        std::fs::write(
            dir.path().join("hookshape.toml"),
            server::config_toml(&backend.storage_keys(), plugins, subs),
        )
        .expect("writing the config");
        let nodes = Nodes::start(dir.path(), backend.nodes()).await;
        Servers {
            dir,
            nodes,
            backend,
        }
    }

    /// New nodes on the same config and data (the old ones are dropped,
    /// which kills them if they still run).
    async fn restart(&mut self) {
        self.nodes = Nodes::start(self.dir.path(), self.backend.nodes()).await;
    }

    /// Ingest requests to every node in turn.
    fn ingest_target(&self, body: BodyFn) -> Target {
        Target {
            uris: self.nodes.events_uris().into(),
            token: Some(server::TOKEN.into()),
            body,
        }
    }

    /// CPU time so far of the nodes, the database (on PostgreSQL) and the
    /// benchmark.
    fn cpu_times(&self) -> Option<Cpu> {
        let db = match self.backend.is_postgres() {
            true => Some(self.backend.db_cpu_time()?),
            false => None,
        };
        Some(Cpu {
            server: self.nodes.cpu_time()?,
            db,
            bench: crate::cpu::of("self")?,
        })
    }
}

fn subscription(
    id: impl Into<String>,
    receiver: &Receiver,
    events: impl Into<String>,
) -> SubscriptionSpec {
    SubscriptionSpec {
        id: id.into(),
        url: receiver.url(),
        events: events.into(),
        plugin: None,
    }
}

fn counts_note(load: &LoadResult, expected: u64, receipts: &[Receipt]) -> String {
    let mut note = format!("{} events, {} deliveries", load.ok, receipts.len());
    if load.failed > 0 {
        note.push_str(&format!(", {} ingests failed", load.failed));
    }
    if (receipts.len() as u64) < expected {
        note.push_str(&format!(", INCOMPLETE: {expected} expected"));
    }
    note
}

/// Scenario 1: the generator posts straight to the receiver: the loopback limit.
pub async fn raw_limit(sizes: Sizes) -> Row {
    let receiver = Receiver::start().await;
    let target = Target {
        uris: [receiver.url().parse().expect("a URI")].into(),
        token: None,
        body: event_bodies("analyst-studio-report-run-completed", |_| {
            "report_run_completed".into()
        }),
    };
    let load = load::closed_loop(target, CONCURRENCY, Stop::After(sizes.raw)).await;
    let mut row = Row::new("1. raw loopback (no hookshape)");
    row.deliveries_per_s = Some(load.per_second());
    row.note = format!("{} requests straight to the receiver", load.ok);
    row
}

/// Scenarios 2 and 7: ingest with the receiver paused, then (with `restart`)
/// SIGKILL the server and restart it on the same data with every delivery
/// still pending.
pub async fn ingest_then_restart(
    sizes: Sizes,
    backend: &Backend,
    restart: bool,
) -> (Row, Option<Row>) {
    let receiver = Receiver::start().await;
    receiver.set_paused(true);
    let sub = subscription("s0", &receiver, "report_run_completed");
    let mut servers = Servers::start(backend, &[], &[sub]).await;
    let body = event_bodies("analyst-studio-report-run-completed", |_| {
        "report_run_completed".into()
    });
    let cpu_before = servers.cpu_times();
    let load = load::closed_loop(
        servers.ingest_target(body),
        CONCURRENCY,
        Stop::Count(sizes.ingest_events),
    )
    .await;
    let mut ingest = Row::new("2. ingest only (receiver paused)");
    ingest.events_per_s = Some(load.per_second());
    ingest.peak_rss_kib = servers.nodes.peak_rss_kib();
    // Per acknowledged event: the column's "delivery" is the event here.
    ingest.cpu_per_delivery = cpu_before
        .zip(servers.cpu_times())
        .and_then(|(before, after)| Cpu::per_delivery(before, after, load.ok as usize));
    ingest.note = format!(
        "{} durable acks, {} failed; CPU per acknowledged event",
        load.ok, load.failed
    );
    servers.nodes.kill9().await;
    if !restart {
        return (ingest, None);
    }
    receiver.set_paused(false);

    servers.restart().await;
    let server = &mut servers.nodes;
    let listening = server.spawned_at().elapsed();
    let all = receiver
        .wait_for(load.ok, tokio::time::Instant::now() + sizes.drain_deadline)
        .await;
    let receipts = receiver.take();
    let mut restart = Row::new("7. restart with pending deliveries");
    restart.peak_rss_kib = server.peak_rss_kib();
    if let Some(first) = receipts.iter().map(|r| r.at).min() {
        restart.deliveries_per_s = report::rate_since(first, &receipts);
        restart.note = format!(
            "{} pending after kill -9; listening {}ms, first delivery {}ms after spawn",
            load.ok,
            listening.as_millis(),
            first
                .saturating_duration_since(server.spawned_at())
                .as_millis()
        );
    }
    if !all {
        restart
            .note
            .push_str(&format!(", INCOMPLETE: {} of {}", receipts.len(), load.ok));
    }
    server.kill9().await;
    (ingest, Some(restart))
}

/// What an end-to-end run measures, whatever the server setup.
struct EndToEnd {
    load: LoadResult,
    started: Instant,
    /// CPU time when the load started.
    cpu_before: Option<Cpu>,
    receipts: Vec<Receipt>,
    expected: u64,
}

impl EndToEnd {
    async fn finish(self, name: &str, servers: &Servers<'_>) -> Row {
        let server = &servers.nodes;
        let mut row = Row::new(name);
        row.events_per_s = Some(self.load.per_second());
        row.deliveries_per_s = report::rate_since(self.started, &self.receipts);
        row.latency = report::ack_to_receipt(&self.load.acks, &self.receipts);
        let metrics = server.metrics().await;
        row.transform_p50 = server::histogram_quantile(&metrics, TRANSFORM_HISTOGRAM, 0.5);
        row.transform_p99 = server::histogram_quantile(&metrics, TRANSFORM_HISTOGRAM, 0.99);
        row.peak_rss_kib = server.peak_rss_kib();
        row.cpu_per_delivery = self
            .cpu_before
            .zip(servers.cpu_times())
            .and_then(|(before, after)| Cpu::per_delivery(before, after, self.receipts.len()));
        row.note = counts_note(&self.load, self.expected, &self.receipts);
        row
    }
}

/// Ingests `events` closed-loop and waits for `per_event` deliveries of each.
async fn drive(
    sizes: Sizes,
    servers: &Servers<'_>,
    receiver: &Receiver,
    body: BodyFn,
    events: u64,
    per_event: u64,
) -> EndToEnd {
    let started = Instant::now();
    let cpu_before = servers.cpu_times();
    let load = load::closed_loop(
        servers.ingest_target(body),
        CONCURRENCY,
        Stop::Count(events),
    )
    .await;
    let expected = load.ok * per_event;
    receiver
        .wait_for(expected, tokio::time::Instant::now() + sizes.drain_deadline)
        .await;
    EndToEnd {
        load,
        started,
        cpu_before,
        receipts: receiver.take(),
        expected,
    }
}

/// The plugin of scenarios 4 and 9: `slack-threshold` in one of its
/// languages (`--plugin rust|py|js`); the ports answer byte for byte alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlackPlugin {
    /// `plugins/slack-threshold`.
    Rust,
    /// `plugins/slack-threshold-py` (componentize-py).
    Python,
    /// `plugins/slack-threshold-js` (componentize-js).
    JavaScript,
}

impl SlackPlugin {
    /// From `--plugin`'s value.
    pub fn parse(arg: &str) -> Option<SlackPlugin> {
        match arg {
            "rust" => Some(SlackPlugin::Rust),
            "py" => Some(SlackPlugin::Python),
            "js" => Some(SlackPlugin::JavaScript),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            SlackPlugin::Rust => "slack-threshold",
            SlackPlugin::Python => "slack-threshold-py",
            SlackPlugin::JavaScript => "slack-threshold-js",
        }
    }

    /// How many times the usual drain deadline scenario 4 allows: the ports'
    /// transforms cost milliseconds where Rust's costs microseconds (Python
    /// drains 30,000 deliveries at 220-340/s here), so they get the time to
    /// finish rather than a count cut short.
    fn drain_factor(self) -> u32 {
        match self {
            SlackPlugin::Rust => 1,
            SlackPlugin::JavaScript => 2,
            SlackPlugin::Python => 4,
        }
    }

    /// Builds the component from source.
    fn wasm(self) -> std::path::PathBuf {
        use hookshape::plugin::testing::{Toolchain, build_foreign_plugin, build_plugin};
        let toolchain = match self {
            SlackPlugin::Rust => return build_plugin(self.name()),
            SlackPlugin::Python => Toolchain::Python,
            SlackPlugin::JavaScript => Toolchain::JavaScript,
        };
        build_foreign_plugin(self.name(), toolchain)
            .unwrap_or_else(|| panic!("{} cannot be built here", self.name()))
    }
}

/// Scenarios 3 and 4: one subscription on the report-run sample, with or without
/// `slack-threshold` (configured so every event crosses the threshold).
pub async fn one_subscription(sizes: Sizes, backend: &Backend, plugin: Option<SlackPlugin>) -> Row {
    let receiver = Receiver::start().await;
    let mut sub = subscription("s0", &receiver, "report_run_completed");
    let mut plugins = Vec::new();
    if let Some(plugin) = plugin {
        plugins.push((plugin.name(), plugin.wasm()));
        sub.plugin = Some((plugin.name(), SLACK_CONFIG));
    }
    let mut servers = Servers::start(backend, &plugins, &[sub]).await;
    let body = event_bodies("analyst-studio-report-run-completed", |_| {
        "report_run_completed".into()
    });
    let sizes = Sizes {
        drain_deadline: sizes.drain_deadline * plugin.map_or(1, SlackPlugin::drain_factor),
        ..sizes
    };
    let run = drive(sizes, &servers, &receiver, body, sizes.e2e_events, 1).await;
    let name = match plugin {
        Some(plugin) => format!("4. e2e, 1 sub, {}", plugin.name()),
        None => "3. e2e, 1 sub, no plugin".to_owned(),
    };
    let row = run.finish(&name, &servers).await;
    servers.nodes.kill9().await;
    row
}

/// Scenario 5: every event goes to `fanout` subscriptions, each running `git-commit`
/// on the XML project sample.
pub async fn fan_out(sizes: Sizes, backend: &Backend) -> Row {
    let receiver = Receiver::start().await;
    let wasm = hookshape::plugin::testing::build_plugin("git-commit");
    let subs: Vec<SubscriptionSpec> = (0..sizes.fanout)
        .map(|k| SubscriptionSpec {
            plugin: Some(("git-commit", GIT_CONFIG)),
            ..subscription(format!("s{k}"), &receiver, "project.published")
        })
        .collect();
    let mut servers = Servers::start(backend, &[("git-commit", wasm)], &subs).await;
    let body = event_bodies("atscale-project-published", |_| "project.published".into());
    let run = drive(
        sizes,
        &servers,
        &receiver,
        body,
        sizes.fanout_events,
        sizes.fanout as u64,
    )
    .await;
    let row = run
        .finish(
            &format!("5. fan-out x{}, git-commit", sizes.fanout),
            &servers,
        )
        .await;
    servers.nodes.kill9().await;
    row
}

/// Scenario 6: the tenant has many subscriptions, each on its own event type; each
/// event matches exactly one of them.
pub async fn many_subscriptions(sizes: Sizes, backend: &Backend) -> Row {
    let receiver = Receiver::start().await;
    let n = sizes.many_subscriptions;
    let subs: Vec<SubscriptionSpec> = (0..n)
        .map(|k| subscription(format!("s{k}"), &receiver, format!("report.run-{k}")))
        .collect();
    let mut servers = Servers::start(backend, &[], &subs).await;
    let startup = servers.nodes.spawned_at().elapsed();
    let n = n as u64;
    let body = event_bodies("analyst-studio-report-run-completed", move |i| {
        format!("report.run-{}", i % n)
    });
    let run = drive(sizes, &servers, &receiver, body, sizes.e2e_events, 1).await;
    let mut row = run
        .finish(&format!("6. {n} subs in the tenant, 1 match"), &servers)
        .await;
    row.note
        .push_str(&format!("; startup {}ms", startup.as_millis()));
    servers.nodes.kill9().await;
    row
}

/// Scenario 8: a fixed event rate, open loop: latency with the server not saturated.
pub async fn fixed_rate(sizes: Sizes, backend: &Backend) -> Row {
    let receiver = Receiver::start().await;
    let sub = subscription("s0", &receiver, "report_run_completed");
    let mut servers = Servers::start(backend, &[], &[sub]).await;
    let body = event_bodies("analyst-studio-report-run-completed", |_| {
        "report_run_completed".into()
    });
    let started = Instant::now();
    let cpu_before = servers.cpu_times();
    let load = load::open_loop(
        servers.ingest_target(body),
        sizes.fixed_rate,
        sizes.fixed_for,
    )
    .await;
    receiver
        .wait_for(load.ok, tokio::time::Instant::now() + sizes.drain_deadline)
        .await;
    let run = EndToEnd {
        expected: load.ok,
        load,
        started,
        cpu_before,
        receipts: receiver.take(),
    };
    let samples = report::ack_to_receipt_samples(&run.load.acks, &run.receipts);
    let mut row = run
        .finish(
            &format!(
                "8. fixed {}/s for {}s",
                sizes.fixed_rate,
                sizes.fixed_for.as_secs_f64()
            ),
            &servers,
        )
        .await;
    row.latency_samples = samples;
    if let Some(Percentiles { max, .. }) = row.latency {
        row.note
            .push_str(&format!("; e2e max {:.1} ms", max.as_secs_f64() * 1e3));
    }
    servers.nodes.kill9().await;
    row
}

/// Scenario 9: the scenario-4 transform alone, in this process, one call at a
/// time with nothing else running: what instantiate + call + drop costs
/// without the queueing of a saturated server (the same `PluginRuntime` and
/// sandbox the server uses; the duration is its own `TransformReport`'s).
pub async fn transform_alone(sizes: Sizes, slack: SlackPlugin) -> Row {
    use hookshape::plugin::{Outcome, PluginLimits, PluginRuntime, TransformInput};

    let runtime = PluginRuntime::new(None).expect("a plugin runtime");
    let wasm = std::fs::read(slack.wasm()).expect("the built slack-threshold component");
    let plugin = runtime.load(&wasm).expect("slack-threshold loads");
    let now = hookshape::clock::Timestamp(0);
    let event = hookshape::app::dry_run::parse_event(
        &read_sample("analyst-studio-report-run-completed"),
        None,
        now,
    )
    .expect("the report-run sample parses");
    let mut durations = Vec::with_capacity(sizes.transform_calls);
    let started = Instant::now();
    for _ in 0..sizes.transform_calls {
        let input = TransformInput {
            event: &event,
            subscription_id: "s0",
            url: "http://127.0.0.1/hook",
            config_json: SLACK_CONFIG_JSON,
        };
        let report = runtime
            .transform(&plugin, PluginLimits::default(), input)
            .await;
        assert!(
            matches!(report.result, Ok(Outcome::Deliver(_))),
            "the sample crosses the threshold: {:?}",
            report.result
        );
        durations.push(report.duration);
    }
    let elapsed = started.elapsed();
    let mut row = Row::new(&format!("9. transform alone, {}", slack.name()));
    let quantiles = Percentiles::of(durations);
    row.transform_p50 = quantiles.as_ref().map(|q| q.p50);
    row.transform_p99 = quantiles.as_ref().map(|q| q.p99);
    row.note = format!(
        "{} calls one at a time in the bench process, {:.0} calls/s on one core",
        sizes.transform_calls,
        sizes.transform_calls as f64 / elapsed.as_secs_f64()
    );
    row
}

/// Scenario 10: scenario 2's storage work alone, in this process: the
/// server's own `Store::ingest` then `Store::durable` (one event and one
/// delivery per call, group-committed; unique source ids as the generator
/// sends), from [`CONCURRENCY`] tasks, with no
/// HTTP, no JSON parsing and no generator. Its rate is the ceiling the
/// storage engine puts on durable ingest on this machine.
pub async fn store_alone(sizes: Sizes) -> Row {
    use hookshape::ids::{DeliveryId, EventId, SubscriptionId};
    use hookshape::model::{Delivery, DeliveryState};
    use hookshape::store::NewDelivery;

    let dir = tempfile::tempdir().expect("a temporary data directory");
    let store = hookshape::store::open(&Default::default(), dir.path(), &Default::default())
        .await
        .expect("a fresh store opens");
    let now = hookshape::clock::Timestamp(0);
    let sample =
        hookshape::app::dry_run::parse_event(&read_sample("alpana-dashboard-updated"), None, now)
            .expect("the dashboard sample parses");
    let subscription: SubscriptionId = "s0".parse().expect("a valid subscription id");
    let per_task = sizes.ingest_events / CONCURRENCY as u64;
    let started = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|task| {
            let (store, sample, subscription) =
                (store.clone(), sample.clone(), subscription.clone());
            tokio::spawn(async move {
                for i in 0..per_task {
                    let event = hookshape::model::Event {
                        id: EventId::generate(),
                        // Unique, as in the generator's bodies.
                        source_id: Some(format!("bench-{task}-{i}")),
                        ..sample.clone()
                    };
                    let delivery = Delivery {
                        id: DeliveryId::generate(),
                        tenant: event.tenant.clone(),
                        event_id: event.id.clone(),
                        subscription_id: subscription.clone(),
                        state: DeliveryState::Pending,
                        attempts: 0,
                        next_attempt_at: Some(now),
                        created_at: now,
                    };
                    let delivery = NewDelivery {
                        delivery,
                        ordered: false,
                    };
                    store.ingest(&event, &[delivery]).await.expect("ingest");
                    store.durable().await.expect("a flush");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("an ingest task");
    }
    let elapsed = started.elapsed();
    let events = per_task * CONCURRENCY as u64;
    assert_eq!(
        store.queue_len() as u64,
        events,
        "every ingested delivery is queued"
    );
    let mut row = Row::new("10. store alone, durable ingest");
    row.events_per_s = Some(events as f64 / elapsed.as_secs_f64());
    row.note = format!(
        "{events} events from {CONCURRENCY} tasks straight into the store in the bench process, \
         no HTTP: the storage engine's ceiling for scenario 2"
    );
    row
}
