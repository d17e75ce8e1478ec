//! Server process control: writes a config to a temporary directory, runs
//! the real `hookshape serve` on an ephemeral loopback port with a fresh data
//! directory beside it (one or several nodes on the same config), and reads
//! what the benchmark reports from outside the processes: their peak RSS
//! (`VmHWM`), their CPU time and their own `/metrics`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::Uri;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The admin token every benchmark config declares.
pub const TOKEN: &str = "bench-admin-token";
/// The tenant every event goes to.
pub const TENANT: &str = "bench";

const BINARY: &str = env!("CARGO_BIN_EXE_hookshape");
/// Startup includes compiling plugins and reconciling up to 10,000
/// subscriptions from the config.
const STARTUP_DEADLINE: Duration = Duration::from_secs(120);

/// A subscription written into the config.
pub struct SubscriptionSpec {
    pub id: String,
    pub url: String,
    pub events: String,
    /// The plugin's name and its `plugin_config` as an inline TOML table.
    pub plugin: Option<(&'static str, &'static str)>,
}

/// The config file: admin token, deliveries to loopback allowed, plugins by
/// path, subscriptions declared (reconciled into the store at start), the
/// `[storage]` keys of the run's backend.
pub fn config_toml(
    storage: &str,
    plugins: &[(&str, PathBuf)],
    subscriptions: &[SubscriptionSpec],
) -> String {
    let mut out = format!(
        "[[auth.tokens]]\ntoken = \"{TOKEN}\"\nrole = \"admin\"\ntenants = [\"*\"]\n\n\
         [storage]\n{storage}\n\
         [delivery]\ntimeout = \"30s\"\nretry_schedule = [\"1s\", \"5s\"]\n\
         allow_private_targets = true\n\n"
    );
    for (name, path) in plugins {
        let _ = writeln!(
            out,
            "[plugins.{name}]\npath = {:?}\n",
            path.display().to_string()
        );
    }
    for s in subscriptions {
        let _ = write!(
            out,
            "[[subscriptions]]\nid = \"{}\"\ntenant = \"{TENANT}\"\nurl = \"{}\"\nevents = [\"{}\"]\n",
            s.id, s.url, s.events
        );
        if let Some((plugin, config)) = s.plugin {
            let _ = write!(out, "plugin = \"{plugin}\"\nplugin_config = {config}\n");
        }
        out.push('\n');
    }
    out
}

/// A running `hookshape serve`; killed when dropped.
pub struct ServerProcess {
    child: Child,
    pub base: String,
    /// When the process was spawned.
    pub spawned_at: Instant,
}

impl ServerProcess {
    /// Starts node `node` on `dir/hookshape.toml` with data in
    /// `dir/data-NODE`; returns once it prints its listening line.
    pub async fn start(dir: &Path, node: usize) -> ServerProcess {
        let log = dir.join(format!("server-{node}.log"));
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("the server log file");
        let spawned_at = Instant::now();
        let mut child = Command::new(BINARY)
            .arg("serve")
            .arg("--config")
            .arg(dir.join("hookshape.toml"))
            .args(["--listen", "127.0.0.1:0", "--data"])
            .arg(dir.join(format!("data-{node}")))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .expect("spawning hookshape serve");
        let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let listening = tokio::time::timeout(STARTUP_DEADLINE, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(base) = line.strip_prefix("hookshape listening on ") {
                    return Some(base.to_owned());
                }
            }
            None
        })
        .await;
        let Ok(Some(base)) = listening else {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            panic!("hookshape did not start within {STARTUP_DEADLINE:?}; its log:\n{log}");
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        ServerProcess {
            child,
            base,
            spawned_at,
        }
    }

    pub fn events_uri(&self) -> Uri {
        format!("{}/v1/tenants/{TENANT}/events", self.base)
            .parse()
            .expect("a valid URI")
    }

    /// Peak resident set size so far, in KiB (`VmHWM`).
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let pid = self.child.id()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// CPU time the server has used so far, user and system.
    pub fn cpu_time(&self) -> Option<Duration> {
        crate::cpu::of(&self.child.id()?.to_string())
    }

    /// The server's `/metrics` text.
    pub async fn metrics(&self) -> String {
        let client = crate::load::client();
        let uri: Uri = format!("{}/metrics", self.base).parse().expect("a URI");
        let req = hyper::Request::get(uri)
            .body(http_body_util::Full::new(Bytes::new()))
            .expect("a request");
        let resp = client.request(req).await.expect("GET /metrics");
        let body = resp.into_body().collect().await.expect("the metrics body");
        String::from_utf8_lossy(&body.to_bytes()).into_owned()
    }

    /// SIGKILL: nothing gets flushed or finished.
    pub async fn kill9(&mut self) {
        let _ = self.child.kill().await;
    }
}

/// The server nodes of one scenario: one on sled, any number on one
/// PostgreSQL database, all on the same config; killed when dropped.
pub struct Nodes {
    nodes: Vec<ServerProcess>,
}

impl Nodes {
    /// Starts `count` nodes on `dir/hookshape.toml`, one after the other.
    pub async fn start(dir: &Path, count: usize) -> Nodes {
        let mut nodes = Vec::with_capacity(count);
        for node in 0..count {
            nodes.push(ServerProcess::start(dir, node).await);
        }
        Nodes { nodes }
    }

    /// When the first node was spawned.
    pub fn spawned_at(&self) -> Instant {
        self.nodes[0].spawned_at
    }

    /// Every node's ingest URI, for the generator to post to in turn.
    pub fn events_uris(&self) -> Vec<Uri> {
        self.nodes.iter().map(ServerProcess::events_uri).collect()
    }

    /// The nodes' peak RSS, summed, in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        self.nodes.iter().map(ServerProcess::peak_rss_kib).sum()
    }

    /// The nodes' CPU time so far, summed.
    pub fn cpu_time(&self) -> Option<Duration> {
        self.nodes.iter().map(ServerProcess::cpu_time).sum()
    }

    /// Every node's `/metrics` text.
    pub async fn metrics(&self) -> Vec<String> {
        let mut texts = Vec::with_capacity(self.nodes.len());
        for node in &self.nodes {
            texts.push(node.metrics().await);
        }
        texts
    }

    /// SIGKILL to every node.
    pub async fn kill9(&mut self) {
        for node in &mut self.nodes {
            node.kill9().await;
        }
    }
}

/// The `q` quantile of a Prometheus histogram, its buckets summed over the
/// `/metrics` texts of every node, interpolated inside its bucket as
/// `histogram_quantile` does.
pub fn histogram_quantile(metrics: &[String], name: &str, q: f64) -> Option<Duration> {
    let prefix = format!("{name}_bucket{{le=\"");
    let mut buckets: Vec<(f64, f64)> = Vec::new();
    for text in metrics {
        let node = text
            .lines()
            .filter_map(|l| l.strip_prefix(&prefix))
            .filter_map(|rest| {
                let (le, count) = rest.split_once("\"} ")?;
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().ok()?
                };
                Some((le, count.trim().parse::<f64>().ok()?))
            });
        for (k, (le, count)) in node.enumerate() {
            match buckets.get_mut(k) {
                Some(bucket) => bucket.1 += count,
                None => buckets.push((le, count)),
            }
        }
    }
    let total = buckets.last()?.1;
    if total == 0.0 {
        return None;
    }
    let rank = q * total;
    let (mut lower, mut below) = (0.0, 0.0);
    for &(upper, cumulative) in &buckets {
        if cumulative >= rank {
            if upper.is_infinite() {
                return Some(Duration::from_secs_f64(lower));
            }
            let within = (rank - below) / (cumulative - below).max(1e-9);
            return Some(Duration::from_secs_f64(lower + (upper - lower) * within));
        }
        (lower, below) = (upper, cumulative);
    }
    None
}
