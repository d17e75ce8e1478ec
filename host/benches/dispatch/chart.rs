//! The run's chart: one SVG, two panels. On top, CPU time per delivery per
//! scenario as horizontal bars, the server's and the benchmark's own
//! (generator and receiver) stacked; below, the fixed-rate scenario's
//! ack-to-receipt latency as a CDF with its p50 and p99 marked. Plain data in,
//! SVG text out: nothing here knows the benchmark's rows, so the
//! `bench_chart` test target (`chart_tests.rs`) can test it by itself.

use std::time::Duration;

use plotters::coord::Shift;
use plotters::drawing::DrawingAreaErrorKind;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// What drawing into a string can fail with.
pub type ChartError = DrawingAreaErrorKind<std::io::Error>;

/// One scenario's CPU time per delivery.
pub struct CpuBar {
    pub scenario: String,
    pub server: Duration,
    /// The database's, on PostgreSQL.
    pub db: Option<Duration>,
    pub bench: Duration,
}

impl CpuBar {
    /// The stacked parts, in [`PARTS`]' order.
    fn parts(&self) -> [Duration; 3] {
        [self.server, self.db.unwrap_or_default(), self.bench]
    }

    fn total(&self) -> Duration {
        self.parts().iter().sum()
    }

    /// The parts in microseconds, as the table's cell gives them.
    fn label(&self) -> String {
        let (server, bench) = (self.server.as_micros(), self.bench.as_micros());
        match self.db {
            Some(db) => format!("{server} + {} + {bench} us", db.as_micros()),
            None => format!("{server} + {bench} us"),
        }
    }
}

/// One scenario's ack-to-receipt latencies, with the percentiles its table
/// row shows (so the marks and the table agree).
pub struct Latency {
    pub scenario: String,
    pub samples: Vec<Duration>,
    pub p50: Duration,
    pub p99: Duration,
}

const WIDTH: u32 = 960;
const BAR_HEIGHT: u32 = 34;
/// The bars' y unit: a tenth of a row, so that bars can leave gaps between
/// them on an integer axis (whose labels can be named).
const ROW: i32 = 10;
const LATENCY_HEIGHT: u32 = 380;
/// Room for the longest scenario name left of the bars.
const NAME_AREA: u32 = 290;
const FONT: &str = "sans-serif";
const SERVER: RGBColor = RGBColor(0x3b, 0x6e, 0xa8);
const DB: RGBColor = RGBColor(0x5a, 0xa4, 0x69);
const BENCH: RGBColor = RGBColor(0xe3, 0x9a, 0x3c);
/// The parts of a bar, left to right, with their legend and colour.
const PARTS: [(&str, RGBColor); 3] = [
    ("server", SERVER),
    ("database (PostgreSQL)", DB),
    ("benchmark (generator + receiver)", BENCH),
];
/// Points drawn along the CDF: enough for a smooth curve, not one per sample.
const CDF_POINTS: usize = 400;

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// The chart as SVG text; a panel without data is left out.
pub fn svg(title: &str, cpu: &[CpuBar], latency: Option<&Latency>) -> Result<String, ChartError> {
    let cpu_height = if cpu.is_empty() {
        0
    } else {
        80 + BAR_HEIGHT * (cpu.len() as u32 + 2)
    };
    let latency_height = if latency.is_some() { LATENCY_HEIGHT } else { 0 };
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, 50 + cpu_height + latency_height))
            .into_drawing_area();
        root.fill(&WHITE)?;
        let body = root.titled(title, (FONT, 20))?;
        let (top, bottom) = body.split_vertically(cpu_height);
        if !cpu.is_empty() {
            cpu_bars(&top, cpu)?;
        }
        if let Some(latency) = latency {
            latency_cdf(&bottom, latency)?;
        }
        root.present()?;
    }
    Ok(out)
}

/// Horizontal bars, the first scenario on top: server from 0, then the
/// database's time if there is one, then the benchmark's own, the parts
/// written at the end.
fn cpu_bars(area: &DrawingArea<SVGBackend, Shift>, bars: &[CpuBar]) -> Result<(), ChartError> {
    let n = bars.len();
    let widest = bars.iter().map(|b| micros(b.total())).fold(1.0, f64::max);
    let mut chart = ChartBuilder::on(area)
        .caption("CPU time per delivery, us", (FONT, 16))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(NAME_AREA)
        .build_cartesian_2d(
            0.0..widest * 1.2,
            // In tenths of a row: a label on every bar's centre, and above
            // the bars a band of a row and a half for the legend.
            (-ROW / 2..n as i32 * ROW + ROW)
                .with_key_points((0..n as i32).map(|r| r * ROW).collect()),
        )?;
    // Bar k is centred on row n-1-k, so the list reads top-down.
    let centre = |k: usize| (n - 1 - k) as i32 * ROW;
    let name_of = |y: &i32| match usize::try_from(y / ROW) {
        Ok(row) if y % ROW == 0 && row < n => bars[n - 1 - row].scenario.clone(),
        _ => String::new(),
    };
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n)
        .y_label_formatter(&name_of)
        .x_label_formatter(&|us| format!("{us:.0}"))
        .label_style((FONT, 13))
        .draw()?;
    let bar = |from: f64, to: f64, k: usize, color: RGBColor| {
        let y = centre(k);
        Rectangle::new([(from, y - 4), (to, y + 4)], color.filled())
    };
    let any_db = bars.iter().any(|b| b.db.is_some());
    for (part, &(name, color)) in PARTS.iter().enumerate() {
        if part == 1 && !any_db {
            continue;
        }
        chart
            .draw_series(bars.iter().enumerate().map(|(k, b)| {
                let parts = b.parts();
                let from: f64 = parts[..part].iter().map(|&d| micros(d)).sum();
                bar(from, from + micros(parts[part]), k, color)
            }))?
            .label(name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], color.filled()));
    }
    chart.draw_series(bars.iter().enumerate().map(|(k, b)| {
        let end = micros(b.total()) + widest * 0.01;
        Text::new(
            b.label(),
            (end, centre(k)),
            TextStyle::from((FONT, 12)).pos(Pos::new(HPos::Left, VPos::Center)),
        )
    }))?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.3))
        .label_font((FONT, 12))
        .draw()?;
    Ok(())
}

/// The share of deliveries at or under each latency, on a log axis.
fn latency_cdf(area: &DrawingArea<SVGBackend, Shift>, latency: &Latency) -> Result<(), ChartError> {
    let mut sorted: Vec<f64> = latency
        .samples
        .iter()
        .map(|&d| micros(d).max(1.0))
        .collect();
    sorted.sort_unstable_by(f64::total_cmp);
    let (lowest, highest) = match (sorted.first(), sorted.last()) {
        (Some(&lo), Some(&hi)) => (lo, hi),
        _ => (1.0, 10.0),
    };
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!(
                "{}: ack-to-receipt latency, share of {} deliveries at or under",
                latency.scenario,
                latency.samples.len()
            ),
            (FONT, 16),
        )
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(
            ((lowest * 0.8)..(highest * 1.25)).log_scale(),
            // Headroom above 100% for p99's label.
            0.0..106.0,
        )?;
    chart
        .configure_mesh()
        .x_desc("us, log scale (0 us, a delivery ahead of its 202, is drawn at 1)")
        .y_desc("%")
        .x_label_formatter(&|us| format!("{us:.0}"))
        .y_label_formatter(&|share| format!("{share:.0}"))
        .label_style((FONT, 13))
        .draw()?;
    let last = sorted.len().saturating_sub(1);
    chart.draw_series(LineSeries::new(
        (0..=CDF_POINTS).filter(|_| !sorted.is_empty()).map(|k| {
            let q = k as f64 / CDF_POINTS as f64;
            (sorted[(last as f64 * q).round() as usize], q * 100.0)
        }),
        SERVER.stroke_width(2),
    ))?;
    // p50's label to the right of its mark, p99's to the left: both stay
    // inside the plot, and they never meet.
    let right = Pos::new(HPos::Left, VPos::Bottom);
    let left = Pos::new(HPos::Right, VPos::Bottom);
    for (name, at, share, pos) in [
        ("p50", latency.p50, 50.0, right),
        ("p99", latency.p99, 99.0, left),
    ] {
        let x = micros(at).max(1.0);
        let color = RED.mix(0.8);
        chart.draw_series([PathElement::new(
            [(x, 0.0), (x, share)],
            color.stroke_width(1),
        )])?;
        chart.draw_series([Circle::new((x, share), 4, color.filled())])?;
        chart.draw_series([Text::new(
            format!("{name} {}", format_latency(at)),
            (x, share),
            TextStyle::from((FONT, 13)).pos(pos),
        )])?;
    }
    Ok(())
}

fn format_latency(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{} us", d.as_micros())
    } else {
        format!("{:.2} ms", d.as_secs_f64() * 1e3)
    }
}
