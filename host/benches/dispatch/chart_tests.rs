//! The chart's tests, the crate root of the `bench_chart` test target: a
//! `harness = false` bench never runs its own tests under `cargo test`, and
//! the chart needs no server, so it is tested here, on rows made up.

#[path = "chart.rs"]
mod chart;

use std::time::Duration;

use chart::{CpuBar, Latency, svg};

fn bar(scenario: &str, server: u64, bench: u64) -> CpuBar {
    CpuBar {
        scenario: scenario.into(),
        server: Duration::from_micros(server),
        db: None,
        bench: Duration::from_micros(bench),
    }
}

fn texts(svg: &str) -> Vec<String> {
    let doc = roxmltree::Document::parse(svg).expect("the chart is well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    doc.descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text().map(|t| t.trim().to_owned()))
        .collect()
}

#[test]
fn names_every_scenario_and_marks_the_percentiles() {
    let cpu = [
        bar("3. e2e, 1 sub, no plugin", 170, 40),
        bar("4. e2e, 1 sub, slack-threshold", 250, 49),
        bar("6. 10000 subs & <1> match", 211, 48),
        bar("8. fixed 1000/s for 30s", 650, 158),
    ];
    let latency = Latency {
        scenario: "8. fixed 1000/s for 30s".into(),
        samples: (0..1000).map(|i| Duration::from_micros(i * 3)).collect(),
        p50: Duration::from_micros(1500),
        p99: Duration::from_micros(2970),
    };
    let svg = svg("a run", &cpu, Some(&latency)).expect("drawing into a string");
    let texts = texts(&svg);
    for b in &cpu {
        assert!(texts.contains(&b.scenario), "{} is named", b.scenario);
    }
    for label in ["170 + 40 us", "650 + 158 us", "p50 1.50 ms", "p99 2.97 ms"] {
        assert!(texts.iter().any(|t| t == label), "{label} is written");
    }
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("8. fixed 1000/s for 30s: "))
    );
}

#[test]
fn every_bar_is_named_whatever_their_number() {
    for n in 1..=12 {
        let cpu: Vec<CpuBar> = (0..n)
            .map(|k| bar(&format!("scenario {k}"), 100 + k, 20))
            .collect();
        let texts = texts(&svg("n bars", &cpu, None).expect("drawn"));
        for b in &cpu {
            assert!(
                texts.contains(&b.scenario),
                "{} of {n} is named",
                b.scenario
            );
        }
    }
}

#[test]
fn a_run_without_latency_samples_draws_the_bars_alone() {
    let svg = svg("quick", &[bar("3. e2e, 1 sub, no plugin", 90, 30)], None).expect("drawn");
    let texts = texts(&svg);
    assert!(texts.iter().any(|t| t == "3. e2e, 1 sub, no plugin"));
    assert!(!texts.iter().any(|t| t.contains("latency")));
}

#[test]
fn the_database_is_a_part_of_its_own_where_it_is_measured() {
    let on_postgres = CpuBar {
        db: Some(Duration::from_micros(120)),
        ..bar("3. e2e, 1 sub, no plugin", 200, 50)
    };
    let pg = texts(&svg("pg", &[on_postgres], None).expect("drawn"));
    assert!(pg.iter().any(|t| t == "200 + 120 + 50 us"));
    assert!(pg.iter().any(|t| t == "database (PostgreSQL)"));

    let sled =
        texts(&svg("sled", &[bar("3. e2e, 1 sub, no plugin", 200, 50)], None).expect("drawn"));
    assert!(sled.iter().any(|t| t == "200 + 50 us"));
    assert!(!sled.iter().any(|t| t.starts_with("database")));
}
