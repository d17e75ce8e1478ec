//! Dispatch benchmark: the real `hookshape serve` on loopback with a fresh
//! data directory, a keep-alive receiver that counts and timestamps what it
//! gets, and a load generator, all driven from this one process.
//!
//! It measures, in one run and on one machine: the raw loopback limit (the
//! generator posting straight to the receiver), durable ingest, end-to-end
//! delivery with and without plugins, fan-out, a tenant with many
//! subscriptions, a restart with a large backlog, latency at a fixed rate,
//! and, with nothing else running, the transform's own cost and the store's
//! own durable-ingest rate (no HTTP). It prints one Markdown table with, per
//! scenario, events/s, deliveries/s, ack-to-receipt latency, transform
//! quantiles (the server's own histogram; scenario 9's own timings), the
//! server's peak RSS, and the ratio to the raw limit.
//!
//! ```text
//! cargo bench -p hookshape --bench dispatch             # full run, a few minutes
//! cargo bench -p hookshape --bench dispatch -- --quick  # smoke run, seconds (CI)
//! cargo bench -p hookshape --bench dispatch -- --only 4,5
//! cargo bench -p hookshape --bench dispatch -- --sync os   # storage.sync = "os" (default "full")
//! cargo bench -p hookshape --bench dispatch -- --only 4,9 --plugin py   # scenarios 4 and 9 in Python (or js)
//! cargo bench -p hookshape --bench dispatch -- --out /tmp/runs   # where the files go (default target/bench)
//! ```
//!
//! Besides printing the table it writes it to `dispatch-<UTC time>.md` and a
//! chart of it to `dispatch-<UTC time>.svg` (CPU per delivery per scenario,
//! scenario 8's latency distribution), and prints both paths.
//!
//! Latency is measured from the moment the generator has the 202 (the event
//! is durable) to the moment the receiver has the whole delivery, matched by
//! `webhook-id`, so it holds whatever a plugin did to the body.

#[path = "dispatch/chart.rs"]
mod chart;
#[path = "dispatch/load.rs"]
mod load;
#[path = "dispatch/output.rs"]
mod output;
#[path = "dispatch/receiver.rs"]
mod receiver;
#[path = "dispatch/report.rs"]
mod report;
#[path = "dispatch/scenarios.rs"]
mod scenarios;
#[path = "dispatch/server.rs"]
mod server;

use std::path::PathBuf;
use std::time::{Instant, SystemTime};

use report::Row;
use scenarios::Sizes;

/// Command-line options (cargo passes `--bench` too; it is ignored).
struct Options {
    quick: bool,
    /// Scenario numbers to run besides the raw limit; empty: all.
    only: Vec<u32>,
    /// The language of scenarios 4 and 9's plugin.
    plugin: scenarios::SlackPlugin,
    /// Where the table and the chart are written (`--out`).
    out: PathBuf,
}

fn options() -> Options {
    let mut opts = Options {
        quick: false,
        only: Vec::new(),
        plugin: scenarios::SlackPlugin::Rust,
        out: output::default_dir(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => opts.quick = true,
            "--sync" => {
                let mode = match args.next().as_deref() {
                    Some("os") => "os",
                    Some("full") => "full",
                    other => panic!("--sync takes full or os, not {other:?}"),
                };
                let _ = server::SYNC.set(mode);
            }
            "--plugin" => {
                let lang = args.next().unwrap_or_default();
                opts.plugin = scenarios::SlackPlugin::parse(&lang)
                    .unwrap_or_else(|| panic!("--plugin takes rust, py or js, not {lang:?}"));
            }
            "--out" => opts.out = args.next().expect("--out takes a directory").into(),
            "--only" => {
                let list = args.next().unwrap_or_default();
                opts.only = list
                    .split(',')
                    .filter_map(|n| n.trim().parse().ok())
                    .collect();
            }
            _ => {}
        }
    }
    opts
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

async fn run(opts: &Options) -> Vec<Row> {
    let sizes = if opts.quick {
        Sizes::quick()
    } else {
        Sizes::full()
    };
    let wanted = |n: u32| opts.only.is_empty() || opts.only.contains(&n);
    let mut rows = vec![scenarios::raw_limit(sizes).await];
    let mut restart = None;
    if wanted(2) || wanted(7) {
        let (ingest, after) = scenarios::ingest_then_restart(sizes).await;
        rows.push(ingest);
        restart = Some(after);
    }
    if wanted(3) {
        rows.push(scenarios::one_subscription(sizes, None).await);
    }
    if wanted(4) {
        rows.push(scenarios::one_subscription(sizes, Some(opts.plugin)).await);
    }
    if wanted(5) {
        rows.push(scenarios::fan_out(sizes).await);
    }
    if wanted(6) {
        rows.push(scenarios::many_subscriptions(sizes).await);
    }
    rows.extend(restart);
    if wanted(8) {
        rows.push(scenarios::fixed_rate(sizes).await);
    }
    if wanted(9) {
        rows.push(scenarios::transform_alone(sizes, opts.plugin).await);
    }
    if wanted(10) {
        rows.push(scenarios::store_alone(sizes).await);
    }
    rows
}

fn main() {
    let opts = options();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load_before = load_average();
    let started_at = SystemTime::now();
    let started = Instant::now();
    let rows = runtime.block_on(run(&opts));
    let run_name = format!(
        "hookshape dispatch benchmark ({}, storage.sync = {})",
        if opts.quick { "quick" } else { "full" },
        server::SYNC.get().copied().unwrap_or("full"),
    );
    let header = format!(
        "{run_name}, {cpus} CPUs, load average {load_before} before, {} after, {:.0}s",
        load_average(),
        started.elapsed().as_secs_f64()
    );
    println!("\n{header}\n");
    print!("{}", report::table(&rows));
    let written =
        output::write(&opts.out, started_at, &run_name, &header, &rows).unwrap_or_else(|e| {
            panic!(
                "cannot write the run's files to {}: {e}",
                opts.out.display()
            )
        });
    for path in written {
        println!("written: {}", path.display());
    }
}
