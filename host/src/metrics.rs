//! Prometheus metrics: the counters, gauges and latency histograms hookshape
//! keeps, and their text exposition (format 0.0.4) for `GET /metrics`.
//!
//! Everything is a plain atomic, so recording from the delivery workers never
//! takes a lock. Histogram buckets are stored non-cumulatively and summed at
//! render time; the `_count` line is derived from the same bucket reads, so a
//! scrape racing with writers still shows `+Inf` equal to `_count`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::model::{AttemptOutcome, DeliveryState};

const fn ms(n: u64) -> u64 {
    n * 1_000_000
}

const fn us(n: u64) -> u64 {
    n * 1_000
}

/// Upper bounds (nanoseconds) for transform calls: a small plugin runs in tens
/// of microseconds (fine buckets there resolve a 25us budget), the default
/// timeout is 100ms and nothing sensible takes 1s.
const TRANSFORM_BOUNDS_NS: &[u64] = &[
    us(5),
    us(10),
    us(15),
    us(20),
    us(25),
    us(30),
    us(40),
    us(50),
    us(75),
    us(100),
    us(150),
    us(250),
    us(500),
    ms(1),
    us(2_500),
    ms(5),
    ms(10),
    ms(25),
    ms(50),
    ms(100),
    ms(250),
    ms(500),
    ms(1_000),
];

/// Upper bounds (nanoseconds) for outgoing HTTP attempts: a local receiver
/// answers in about a millisecond, the default timeout is 10s, 30s is the cap
/// anyone would configure.
const ATTEMPT_BOUNDS_NS: &[u64] = &[
    ms(1),
    us(2_500),
    ms(5),
    ms(10),
    ms(25),
    ms(50),
    ms(100),
    ms(250),
    ms(500),
    ms(1_000),
    ms(2_500),
    ms(5_000),
    ms(10_000),
    ms(30_000),
];

/// The labelled series, in exposition order. `Pending` is not an outcome.
const DELIVERY_OUTCOMES: [DeliveryState; 4] = [
    DeliveryState::Delivered,
    DeliveryState::Failed,
    DeliveryState::Skipped,
    DeliveryState::Cancelled,
];

/// Every attempt outcome, in exposition order.
const ATTEMPT_OUTCOMES: [AttemptOutcome; 5] = [
    AttemptOutcome::Delivered,
    AttemptOutcome::Failed,
    AttemptOutcome::Skipped,
    AttemptOutcome::TransformFailed,
    AttemptOutcome::Refused,
];

fn delivery_label(state: DeliveryState) -> &'static str {
    match state {
        DeliveryState::Pending => "pending",
        DeliveryState::Delivered => "delivered",
        DeliveryState::Failed => "failed",
        DeliveryState::Skipped => "skipped",
        DeliveryState::Cancelled => "cancelled",
    }
}

fn attempt_label(outcome: AttemptOutcome) -> &'static str {
    match outcome {
        AttemptOutcome::Delivered => "delivered",
        AttemptOutcome::Failed => "failed",
        AttemptOutcome::Skipped => "skipped",
        AttemptOutcome::TransformFailed => "transform_failed",
        AttemptOutcome::Refused => "refused",
    }
}

/// A fixed-bucket latency histogram.
#[derive(Debug)]
struct Histogram {
    bounds_ns: &'static [u64],
    /// One slot per bound plus the overflow (`+Inf`) slot; not cumulative.
    buckets: Box<[AtomicU64]>,
    sum_ns: AtomicU64,
}

impl Histogram {
    fn new(bounds_ns: &'static [u64]) -> Self {
        Self {
            bounds_ns,
            buckets: (0..=bounds_ns.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_ns: AtomicU64::new(0),
        }
    }

    fn observe(&self, duration: Duration) {
        let ns = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        let slot = self.bounds_ns.partition_point(|&bound| bound < ns);
        self.buckets[slot].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Per-bucket counts as one consistent-enough read.
    fn snapshot(&self) -> Vec<u64> {
        self.buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect()
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let counts = self.snapshot();
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, count) in self.bounds_ns.iter().zip(&counts) {
            cumulative += count;
            let le = *bound as f64 / 1e9;
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        cumulative += counts[self.bounds_ns.len()];
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {cumulative}");
    }

    /// The `q` quantile by linear interpolation inside the bucket holding it,
    /// as Prometheus' `histogram_quantile` does. Observations past the last
    /// bound report that bound.
    fn quantile(&self, q: f64) -> Option<Duration> {
        if !(0.0..=1.0).contains(&q) {
            return None;
        }
        let counts = self.snapshot();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = q * total as f64;
        let mut below = 0u64;
        for (i, &count) in counts.iter().enumerate() {
            let Some(&upper) = self.bounds_ns.get(i) else {
                break;
            };
            if count > 0 && (below + count) as f64 >= rank {
                let lower = if i == 0 { 0 } else { self.bounds_ns[i - 1] };
                let within = ((rank - below as f64) / count as f64).clamp(0.0, 1.0);
                let ns = lower as f64 + (upper - lower) as f64 * within;
                return Some(Duration::from_nanos(ns.round() as u64));
            }
            below += count;
        }
        self.bounds_ns.last().map(|&ns| Duration::from_nanos(ns))
    }
}

/// hookshape's process-wide metrics. Share it behind the application's `Arc`.
#[derive(Debug)]
pub struct Metrics {
    events_received: AtomicU64,
    deliveries: [AtomicU64; DELIVERY_OUTCOMES.len()],
    attempts: [AtomicU64; ATTEMPT_OUTCOMES.len()],
    attempt_duration: Histogram,
    transform_duration: Histogram,
    queue_depth: AtomicU64,
    in_flight: AtomicU64,
    /// Records deleted by retention, by kind ([`SWEPT_KINDS`]).
    swept: [AtomicU64; SWEPT_KINDS.len()],
    /// When the last complete sweep ended (Unix seconds) and how long it took (microseconds).
    last_sweep_unix: AtomicU64,
    last_sweep_us: AtomicU64,
}

/// The kinds of record retention deletes, as labelled in the metric.
const SWEPT_KINDS: [&str; 4] = ["event", "delivery", "attempt", "plugin_blob"];

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// All counters at zero.
    pub fn new() -> Self {
        Self {
            events_received: AtomicU64::new(0),
            deliveries: Default::default(),
            attempts: Default::default(),
            attempt_duration: Histogram::new(ATTEMPT_BOUNDS_NS),
            transform_duration: Histogram::new(TRANSFORM_BOUNDS_NS),
            queue_depth: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            swept: Default::default(),
            last_sweep_unix: AtomicU64::new(0),
            last_sweep_us: AtomicU64::new(0),
        }
    }

    /// An event was accepted (duplicates of an earlier event are not counted).
    pub fn event_received(&self) {
        self.events_received.fetch_add(1, Ordering::Relaxed);
    }

    /// One attempt ended, with its wall time (transform plus HTTP).
    pub fn attempt_finished(&self, outcome: AttemptOutcome, duration: Duration) {
        if let Some(i) = ATTEMPT_OUTCOMES.iter().position(|&o| o == outcome) {
            self.attempts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.attempt_duration.observe(duration);
    }

    /// A delivery reached a final state. `Pending` is not final and is ignored.
    pub fn delivery_finished(&self, state: DeliveryState) {
        if let Some(i) = DELIVERY_OUTCOMES.iter().position(|&s| s == state) {
            self.deliveries[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// One plugin transform call ended (whatever its result).
    pub fn transform_finished(&self, duration: Duration) {
        self.transform_duration.observe(duration);
    }

    /// Deliveries waiting for their turn.
    pub fn set_queue_depth(&self, n: u64) {
        self.queue_depth.store(n, Ordering::Relaxed);
    }

    /// A delivery attempt started; pair with [`Metrics::in_flight_ended`].
    pub fn in_flight_started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// A delivery attempt started with [`Metrics::in_flight_started`] ended.
    pub fn in_flight_ended(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// A retention sweep ended: what it deleted by kind (events, deliveries,
    /// attempts, plugin blobs), when it ended and how long it took.
    pub fn sweep_finished(&self, deleted: [u64; 4], ended_unix: u64, took: Duration) {
        for (counter, n) in self.swept.iter().zip(deleted) {
            counter.fetch_add(n, Ordering::Relaxed);
        }
        self.last_sweep_unix.store(ended_unix, Ordering::Relaxed);
        self.last_sweep_us
            .store(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// The estimated `q` quantile (0.0..=1.0) of transform latency; `None`
    /// before the first transform or for a `q` out of range.
    pub fn transform_quantile(&self, q: f64) -> Option<Duration> {
        self.transform_duration.quantile(q)
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let counter = |out: &mut String, name: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
        };
        let gauge = |out: &mut String, name: &str, help: &str, value: &AtomicU64| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} gauge");
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        };

        let name = "hookshape_events_received_total";
        counter(&mut out, name, "Events accepted for delivery.");
        let _ = writeln!(
            out,
            "{name} {}",
            self.events_received.load(Ordering::Relaxed)
        );

        let name = "hookshape_deliveries_total";
        counter(&mut out, name, "Deliveries that reached a final state.");
        for (state, count) in DELIVERY_OUTCOMES.iter().zip(&self.deliveries) {
            let label = delivery_label(*state);
            let count = count.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}{{outcome=\"{label}\"}} {count}");
        }

        let name = "hookshape_attempts_total";
        counter(&mut out, name, "Delivery attempts by outcome.");
        for (outcome, count) in ATTEMPT_OUTCOMES.iter().zip(&self.attempts) {
            let label = attempt_label(*outcome);
            let count = count.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}{{outcome=\"{label}\"}} {count}");
        }

        self.attempt_duration.render(
            &mut out,
            "hookshape_attempt_duration_seconds",
            "Wall time of one delivery attempt, transform included.",
        );
        self.transform_duration.render(
            &mut out,
            "hookshape_transform_duration_seconds",
            "Wall time of one plugin transform call.",
        );

        gauge(
            &mut out,
            "hookshape_queue_depth",
            "Deliveries waiting for their turn.",
            &self.queue_depth,
        );
        gauge(
            &mut out,
            "hookshape_in_flight",
            "Deliveries being attempted right now.",
            &self.in_flight,
        );

        let name = "hookshape_retention_deleted_total";
        counter(
            &mut out,
            name,
            "Records deleted by the retention sweep, by kind.",
        );
        for (kind, count) in SWEPT_KINDS.iter().zip(&self.swept) {
            let count = count.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}{{kind=\"{kind}\"}} {count}");
        }
        gauge(
            &mut out,
            "hookshape_retention_last_sweep_timestamp_seconds",
            "When the last complete retention sweep ended (Unix time; 0 before the first).",
            &self.last_sweep_unix,
        );
        let name = "hookshape_retention_last_sweep_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} How long the last complete retention sweep took."
        );
        let _ = writeln!(out, "# TYPE {name} gauge");
        let us = self.last_sweep_us.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name} {}", us as f64 / 1e6);
        out
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    /// A minimal parser of the text format: every sample line becomes
    /// `name{labels}` -> value, and every sample must follow its family's
    /// `# TYPE` line.
    fn parse(text: &str) -> BTreeMap<String, f64> {
        let mut typed = BTreeSet::new();
        let mut samples = BTreeMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (family, kind) = rest.split_once(' ').expect("TYPE has a kind");
                assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
                assert!(
                    typed.insert(family.to_owned()),
                    "family typed twice: {family}"
                );
                continue;
            }
            if line.starts_with("# HELP ") {
                continue;
            }
            assert!(
                !line.starts_with('#') && !line.is_empty(),
                "stray line {line:?}"
            );
            let (series, value) = line.rsplit_once(' ').expect("sample has a value");
            let name = series.split('{').next().unwrap();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix).filter(|f| typed.contains(*f)))
                .unwrap_or(name);
            assert!(typed.contains(family), "sample before its TYPE: {line}");
            let value: f64 = value.parse().expect("value is a float");
            assert!(
                samples.insert(series.to_owned(), value).is_none(),
                "duplicate {series}"
            );
        }
        samples
    }

    #[test]
    fn renders_every_family_at_zero() {
        let samples = parse(&Metrics::new().render());
        assert_eq!(samples["hookshape_events_received_total"], 0.0);
        for outcome in ["delivered", "failed", "skipped", "cancelled"] {
            let key = format!("hookshape_deliveries_total{{outcome=\"{outcome}\"}}");
            assert_eq!(samples[&key], 0.0, "{key}");
        }
        for outcome in [
            "delivered",
            "failed",
            "skipped",
            "transform_failed",
            "refused",
        ] {
            let key = format!("hookshape_attempts_total{{outcome=\"{outcome}\"}}");
            assert_eq!(samples[&key], 0.0, "{key}");
        }
        assert_eq!(samples["hookshape_queue_depth"], 0.0);
        assert_eq!(samples["hookshape_in_flight"], 0.0);
        assert_eq!(samples["hookshape_transform_duration_seconds_count"], 0.0);
        assert_eq!(
            samples["hookshape_transform_duration_seconds_bucket{le=\"0.00001\"}"],
            0.0
        );
        assert_eq!(
            samples["hookshape_attempt_duration_seconds_bucket{le=\"30\"}"],
            0.0
        );
    }

    #[test]
    fn counters_and_gauges_round_trip() {
        let m = Metrics::new();
        m.event_received();
        m.event_received();
        m.delivery_finished(DeliveryState::Delivered);
        m.delivery_finished(DeliveryState::Cancelled);
        m.delivery_finished(DeliveryState::Pending);
        m.attempt_finished(AttemptOutcome::TransformFailed, Duration::from_millis(3));
        m.attempt_finished(AttemptOutcome::Delivered, Duration::from_millis(40));
        m.set_queue_depth(7);
        for _ in 0..4 {
            m.in_flight_started();
        }
        m.in_flight_ended();

        let samples = parse(&m.render());
        assert_eq!(samples["hookshape_events_received_total"], 2.0);
        assert_eq!(
            samples["hookshape_deliveries_total{outcome=\"delivered\"}"],
            1.0
        );
        assert_eq!(
            samples["hookshape_deliveries_total{outcome=\"cancelled\"}"],
            1.0
        );
        assert_eq!(
            samples["hookshape_deliveries_total{outcome=\"failed\"}"],
            0.0
        );
        assert!(!samples.keys().any(|k| k.contains("pending")));
        assert_eq!(
            samples["hookshape_attempts_total{outcome=\"transform_failed\"}"],
            1.0
        );
        assert_eq!(
            samples["hookshape_attempts_total{outcome=\"delivered\"}"],
            1.0
        );
        assert_eq!(samples["hookshape_queue_depth"], 7.0);
        assert_eq!(samples["hookshape_in_flight"], 3.0);
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_bounded_inclusively() {
        let m = Metrics::new();
        m.attempt_finished(AttemptOutcome::Delivered, Duration::from_millis(1));
        m.attempt_finished(AttemptOutcome::Delivered, Duration::from_millis(2));
        m.attempt_finished(AttemptOutcome::Failed, Duration::from_secs(60));

        let samples = parse(&m.render());
        let bucket = |le: &str| {
            samples[&format!("hookshape_attempt_duration_seconds_bucket{{le=\"{le}\"}}")]
        };
        // `le` is inclusive: exactly 1ms lands in the 1ms bucket.
        assert_eq!(bucket("0.001"), 1.0);
        assert_eq!(bucket("0.0025"), 2.0);
        assert_eq!(bucket("30"), 2.0);
        assert_eq!(bucket("+Inf"), 3.0);
        assert_eq!(samples["hookshape_attempt_duration_seconds_count"], 3.0);
        assert!((samples["hookshape_attempt_duration_seconds_sum"] - 60.003).abs() < 1e-9);

        let mut buckets: Vec<(f64, f64)> = samples
            .iter()
            .filter_map(|(key, value)| {
                let le = key.strip_prefix("hookshape_attempt_duration_seconds_bucket{le=\"")?;
                let le = le.strip_suffix("\"}")?;
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap()
                };
                Some((le, *value))
            })
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert_eq!(buckets.len(), ATTEMPT_BOUNDS_NS.len() + 1);
        assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "{buckets:?}");
    }

    #[test]
    fn transform_quantiles_interpolate_within_buckets() {
        let m = Metrics::new();
        assert_eq!(m.transform_quantile(0.5), None);
        // 100 calls spread evenly through the (50us, 100us] bucket.
        for i in 1..=100 {
            m.transform_finished(Duration::from_nanos(50_000 + i * 500));
        }
        let p50 = m.transform_quantile(0.5).unwrap();
        assert_eq!(p50, Duration::from_micros(75));
        let p99 = m.transform_quantile(0.99).unwrap();
        assert!(p99 > Duration::from_micros(95) && p99 <= Duration::from_micros(100));
        assert_eq!(m.transform_quantile(1.5), None);

        // A slow outlier past the last bound reports that bound.
        let slow = Metrics::new();
        slow.transform_finished(Duration::from_secs(5));
        assert_eq!(slow.transform_quantile(0.99), Some(Duration::from_secs(1)));
    }
}
