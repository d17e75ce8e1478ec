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
//! cargo bench -p hookshape --bench dispatch -- --backend postgres --nodes 2 --only 3,4
//! cargo bench -p hookshape --bench dispatch -- --out /tmp/runs   # where the files go (default target/bench)
//! ```
//!
//! `--backend postgres` (default `sled`) starts a throwaway PostgreSQL
//! cluster for the run (the newest installed under `/usr/lib/postgresql`,
//! fsync on, `synchronous_commit` on, or off with `--sync os`), gives each
//! scenario a fresh database and runs `--nodes N` (default 1; more only on
//! PostgreSQL) `hookshape serve` nodes on it with the same config; the
//! generator posts to the nodes in turn. CPU per delivery then counts the
//! database too (every process of the cluster) as its own part, and peak RSS
//! is the nodes' sum (the database's is not in it). On PostgreSQL scenario 7
//! (restart with a backlog) is not run: a node keeps no queue of its own to
//! recover, and the deliveries the killed nodes had claimed wait out the
//! lease (30 s) before another node retakes them, so its figure would be the
//! lease; scenario 10 (the store alone, in-process) is not run either: it
//! measures sled's engine. Scenario 9 runs no server and is the same on both.
//!
//! Besides printing the table it writes it to `dispatch-<UTC time>.md` and a
//! chart of it to `dispatch-<UTC time>.svg` (CPU per delivery per scenario,
//! scenario 8's latency distribution), and prints both paths.
//!
//! Latency is measured from the moment the generator has the 202 (the event
//! is durable) to the moment the receiver has the whole delivery, matched by
//! `webhook-id`, so it holds whatever a plugin did to the body.

#[path = "dispatch/backend.rs"]
mod backend;
#[path = "dispatch/chart.rs"]
mod chart;
#[path = "dispatch/cpu.rs"]
mod cpu;
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
// Shared with the e2e suite, which alone uses some of it.
#[allow(dead_code)]
#[path = "../../tests/support/pg_cluster.rs"]
mod pg_cluster;

use std::path::PathBuf;
use std::time::{Instant, SystemTime};

use backend::Backend;
use report::Row;
use scenarios::Sizes;

/// Command-line options (cargo passes `--bench` too; it is ignored).
struct Options {
    quick: bool,
    /// Scenario numbers to run besides the raw limit; empty: all.
    only: Vec<u32>,
    /// The language of scenarios 4 and 9's plugin.
    plugin: scenarios::SlackPlugin,
    backend: backend::Kind,
    nodes: usize,
    sync: backend::Sync,
    /// Where the table and the chart are written (`--out`).
    out: PathBuf,
}

fn options() -> Options {
    let mut opts = Options {
        quick: false,
        only: Vec::new(),
        plugin: scenarios::SlackPlugin::Rust,
        backend: backend::Kind::Sled,
        nodes: 1,
        sync: backend::Sync::Full,
        out: output::default_dir(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => opts.quick = true,
            "--sync" => {
                let mode = args.next().unwrap_or_default();
                opts.sync = backend::Sync::parse(&mode)
                    .unwrap_or_else(|| panic!("--sync takes full or os, not {mode:?}"));
            }
            "--backend" => {
                let name = args.next().unwrap_or_default();
                opts.backend = backend::Kind::parse(&name)
                    .unwrap_or_else(|| panic!("--backend takes sled or postgres, not {name:?}"));
            }
            "--nodes" => {
                let n = args.next().unwrap_or_default();
                opts.nodes = n
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .unwrap_or_else(|| panic!("--nodes takes a count of 1 or more, not {n:?}"));
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

/// The row of a scenario this backend does not run, saying why.
fn not_run(name: &str, why: &str) -> Row {
    let mut row = Row::new(name);
    row.note = format!("not run on PostgreSQL: {why}");
    row
}

async fn run(opts: &Options, backend: &Backend) -> Vec<Row> {
    let sizes = if opts.quick {
        Sizes::quick()
    } else {
        Sizes::full()
    };
    let wanted = |n: u32| opts.only.is_empty() || opts.only.contains(&n);
    let mut rows = vec![scenarios::raw_limit(sizes).await];
    let mut restart = None;
    let pg = backend.is_postgres();
    if wanted(2) || wanted(7) {
        let (ingest, after) =
            scenarios::ingest_then_restart(sizes, backend, wanted(7) && !pg).await;
        rows.push(ingest);
        restart = after;
    }
    if wanted(3) {
        rows.push(scenarios::one_subscription(sizes, backend, None).await);
    }
    if wanted(4) {
        rows.push(scenarios::one_subscription(sizes, backend, Some(opts.plugin)).await);
    }
    if wanted(5) {
        rows.push(scenarios::fan_out(sizes, backend).await);
    }
    if wanted(6) {
        rows.push(scenarios::many_subscriptions(sizes, backend).await);
    }
    if wanted(7) && pg {
        restart = Some(not_run(
            "7. restart with pending deliveries",
            "a node keeps no queue to recover; claims of the killed nodes wait out the 30 s lease",
        ));
    }
    rows.extend(restart);
    if wanted(8) {
        rows.push(scenarios::fixed_rate(sizes, backend).await);
    }
    if wanted(9) {
        rows.push(scenarios::transform_alone(sizes, opts.plugin).await);
    }
    if wanted(10) {
        rows.push(match pg {
            true => not_run(
                "10. store alone, durable ingest",
                "it measures sled's engine in the bench process",
            ),
            false => scenarios::store_alone(sizes).await,
        });
    }
    if backend.nodes() > 1 {
        for row in rows.iter_mut().filter(|r| r.peak_rss_kib.is_some()) {
            row.note
                .push_str(&format!("; RSS of {} nodes summed", backend.nodes()));
        }
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
    let backend = Backend::start(opts.backend, opts.nodes, opts.sync).unwrap_or_else(|why| {
        eprintln!("{why}");
        std::process::exit(2)
    });
    let load_before = load_average();
    let started_at = SystemTime::now();
    let started = Instant::now();
    let rows = runtime.block_on(run(&opts, &backend));
    let run_name = format!(
        "hookshape dispatch benchmark ({}, {})",
        if opts.quick { "quick" } else { "full" },
        backend.describe(),
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
