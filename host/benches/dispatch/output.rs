//! The files a run leaves beside the table it prints, in `--out` (default:
//! the build's `target/bench`): `dispatch-<UTC start time>.md`, the run's
//! header line and table with the chart linked, and `dispatch-<...>.svg`, the
//! chart drawn from the rows.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::chart::{self, CpuBar, Latency};
use crate::report::{self, Row};

/// `target/bench` of the build that made the benchmark: `target/` is two
/// levels above the `hookshape` binary it spawns (`target/release/hookshape`).
pub fn default_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_hookshape"))
        .ancestors()
        .nth(2)
        .expect("the binary lives in target/<profile>/")
        .join("bench")
}

/// The bars: every row with a CPU-per-delivery figure, in table order.
fn cpu_bars(rows: &[Row]) -> Vec<CpuBar> {
    rows.iter()
        .filter_map(|row| {
            let cpu = row.cpu_per_delivery?;
            Some(CpuBar {
                scenario: row.name.clone(),
                server: cpu.server,
                db: cpu.db,
                bench: cpu.bench,
            })
        })
        .collect()
}

/// The distribution: the row that kept its latency samples (scenario 8).
fn latency(rows: &[Row]) -> Option<Latency> {
    let row = rows.iter().find(|row| !row.latency_samples.is_empty())?;
    let percentiles = row.latency?;
    Some(Latency {
        scenario: row.name.clone(),
        samples: row.latency_samples.clone(),
        p50: percentiles.p50,
        p99: percentiles.p99,
    })
}

/// Writes the table and the chart of a run started at `started`; returns
/// their paths. The chart's title is `run_name` and the start time; the
/// table's is the printed `header` and the start time.
pub fn write(
    dir: &Path,
    started: SystemTime,
    run_name: &str,
    header: &str,
    rows: &[Row],
) -> std::io::Result<[PathBuf; 2]> {
    let started = humantime::format_rfc3339_seconds(started).to_string();
    // 2026-12-05T01:02:03Z -> 20261205T010203Z: sortable, no colons.
    let stamp: String = started
        .chars()
        .filter(|c| !matches!(c, '-' | ':'))
        .collect();
    let stem = format!("dispatch-{stamp}");
    let svg = chart::svg(
        &format!("{run_name}, {started}"),
        &cpu_bars(rows),
        latency(rows).as_ref(),
    )
    .map_err(std::io::Error::other)?;
    std::fs::create_dir_all(dir)?;
    let table_path = dir.join(format!("{stem}.md"));
    let chart_path = dir.join(format!("{stem}.svg"));
    std::fs::write(
        &table_path,
        format!(
            "{header}, started {started}\n\n{}\n![CPU per delivery and latency distribution]({stem}.svg)\n",
            report::table(rows)
        ),
    )?;
    std::fs::write(&chart_path, svg)?;
    Ok([table_path, chart_path])
}
