//! One row per scenario and the table they print as: throughput, ack-to-
//! receipt latency, the server's own transform histogram, peak RSS, CPU time
//! per delivery (server, database on PostgreSQL, benchmark), and the ratio to
//! the raw loopback limit measured in the same run.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::receiver::Receipt;

/// Latency percentiles of one scenario.
#[derive(Debug, Clone, Copy)]
pub struct Percentiles {
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Percentiles {
    /// `None` for an empty sample.
    pub fn of(mut samples: Vec<Duration>) -> Option<Percentiles> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
        Some(Percentiles {
            p50: at(0.50),
            p99: at(0.99),
            max: *samples.last().expect("not empty"),
        })
    }
}

/// Ack-to-receipt latency of every receipt whose `webhook-id` was acked. A
/// delivery can land before its 202 reaches the generator: that counts as 0.
pub fn ack_to_receipt_samples(
    acks: &HashMap<Box<str>, Instant>,
    receipts: &[Receipt],
) -> Vec<Duration> {
    receipts
        .iter()
        .filter_map(|r| {
            let ack = acks.get(r.webhook_id.as_deref()?)?;
            Some(r.at.saturating_duration_since(*ack))
        })
        .collect()
}

/// The percentiles of [`ack_to_receipt_samples`].
pub fn ack_to_receipt(
    acks: &HashMap<Box<str>, Instant>,
    receipts: &[Receipt],
) -> Option<Percentiles> {
    Percentiles::of(ack_to_receipt_samples(acks, receipts))
}

/// Receipts per second from `from` to the last receipt.
pub fn rate_since(from: Instant, receipts: &[Receipt]) -> Option<f64> {
    let last = receipts.iter().map(|r| r.at).max()?;
    Some(receipts.len() as f64 / last.saturating_duration_since(from).as_secs_f64().max(1e-9))
}

/// CPU time of the server nodes, the database (PostgreSQL only) and the
/// benchmark process (load generator and receiver, which share the machine):
/// a reading so far, or the time one delivery cost.
#[derive(Debug, Clone, Copy)]
pub struct Cpu {
    pub server: Duration,
    pub db: Option<Duration>,
    pub bench: Duration,
}

impl Cpu {
    /// What was spent from `before` to `after`, per delivery.
    pub fn per_delivery(before: Cpu, after: Cpu, deliveries: usize) -> Option<Cpu> {
        let n = u32::try_from(deliveries).ok().filter(|&n| n > 0)?;
        let spent = |a: Duration, b: Duration| a.saturating_sub(b) / n;
        Some(Cpu {
            server: spent(after.server, before.server),
            db: after.db.zip(before.db).map(|(a, b)| spent(a, b)),
            bench: spent(after.bench, before.bench),
        })
    }
}

#[derive(Debug, Default)]
pub struct Row {
    pub name: String,
    pub events_per_s: Option<f64>,
    pub deliveries_per_s: Option<f64>,
    pub latency: Option<Percentiles>,
    /// Every ack-to-receipt latency, kept by the fixed-rate scenario alone
    /// for the chart's distribution (the others keep percentiles only).
    pub latency_samples: Vec<Duration>,
    pub transform_p50: Option<Duration>,
    pub transform_p99: Option<Duration>,
    pub peak_rss_kib: Option<u64>,
    pub cpu_per_delivery: Option<Cpu>,
    /// Anything the columns cannot say (counts, restart time, failures).
    pub note: String,
}

impl Row {
    pub fn new(name: &str) -> Row {
        Row {
            name: name.to_owned(),
            ..Row::default()
        }
    }

    /// The figure compared with the raw limit: deliveries/s, else events/s.
    fn throughput(&self) -> Option<f64> {
        self.deliveries_per_s.or(self.events_per_s)
    }
}

fn rate(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.0}"))
}

fn time(d: Option<Duration>) -> String {
    match d {
        None => "-".into(),
        Some(d) if d < Duration::from_millis(1) => format!("{} us", d.as_micros()),
        Some(d) if d < Duration::from_secs(1) => format!("{:.1} ms", d.as_secs_f64() * 1e3),
        Some(d) => format!("{:.2} s", d.as_secs_f64()),
    }
}

/// The rows as a Markdown table; the first row is the raw limit.
pub fn table(rows: &[Row]) -> String {
    let raw = rows.first().and_then(Row::throughput);
    let mut out = String::from(
        "| scenario | events/s | deliveries/s | e2e p50 | e2e p99 | transform p50 | transform p99 | peak RSS | CPU/delivery | vs raw | notes |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n",
    );
    for row in rows {
        let ratio = match (row.throughput(), raw) {
            (Some(t), Some(r)) if r > 0.0 => format!("{:.0}%", 100.0 * t / r),
            _ => "-".into(),
        };
        let rss = row
            .peak_rss_kib
            .map_or("-".into(), |k| format!("{:.0} MiB", k as f64 / 1024.0));
        let cpu = row.cpu_per_delivery.map_or("-".into(), |cpu| {
            let db = cpu
                .db
                .map_or(String::new(), |db| format!(" + db {}", db.as_micros()));
            format!(
                "server {}{db} + bench {} us",
                cpu.server.as_micros(),
                cpu.bench.as_micros()
            )
        });
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            row.name,
            rate(row.events_per_s),
            rate(row.deliveries_per_s),
            time(row.latency.map(|l| l.p50)),
            time(row.latency.map(|l| l.p99)),
            time(row.transform_p50),
            time(row.transform_p99),
            rss,
            cpu,
            ratio,
            row.note
        ));
    }
    out
}
