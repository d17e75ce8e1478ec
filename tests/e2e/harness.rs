//! Shared helpers of the end-to-end suite: the server under test as a child
//! process ([`Server`]) with a JSON client for its API, a scriptable HTTP
//! receiver that records what it gets ([`Receiver`]), a builder for config
//! files ([`ConfigBuilder`]), the sample events, and bounded polling
//! ([`eventually`], [`wait_until`]).
//!
//! Everything is loopback-only and bounded in time: every wait has a
//! deadline and panics with a message saying what it waited for. When a test
//! panics, dropping its [`Server`] prints the server's stderr so the failure
//! shows the server's side of the story.

// Each test module uses its own subset of these helpers.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tokio::sync::Notify;

/// The token with every right that [`ConfigBuilder::new`] declares.
pub const ADMIN: Option<&str> = Some("e2e-admin-token");

/// How long the server may take to print its listening line.
const STARTUP_DEADLINE: Duration = Duration::from_secs(10);

/// The default deadline of the API client's requests.
const REQUEST_DEADLINE: Duration = Duration::from_secs(15);

/// How often the polling helpers look again.
const POLL_EVERY: Duration = Duration::from_millis(25);

/// The binary under test, built by cargo for this test target.
pub const BINARY: &str = env!("CARGO_BIN_EXE_hookshape");

// ---------------------------------------------------------------------------
// Polling

/// Polls `probe` until it yields `Some`, at most until `timeout`; panics
/// naming `what` otherwise.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// Polls a plain condition until it holds, at most until `timeout`.
pub async fn wait_until(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    eventually(timeout, what, || {
        std::future::ready(condition().then_some(()))
    })
    .await
}

// ---------------------------------------------------------------------------
// Samples and config files

/// A sample event from the shared folder beside the repository
/// (`shared/samples/NAME.json`), shaped like an ingest request body.
pub fn sample(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/samples")
        .join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// A config file for tests. [`ConfigBuilder::new`] gives the admin token
/// [`ADMIN`], deliveries to loopback allowed, a 5 s attempt timeout and one
/// quick retry; every key can be replaced, and raw TOML (plugins,
/// subscriptions) appended. `listen` and `[storage] path` are left to
/// [`Server`], which passes them on the command line.
#[derive(Debug, Clone)]
pub struct ConfigBuilder {
    server: Vec<(String, String)>,
    delivery: Vec<(String, String)>,
    tokens: Vec<(String, String, Vec<String>)>,
    raw: Vec<String>,
}

impl Default for ConfigBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ConfigBuilder {
    pub fn new() -> Self {
        ConfigBuilder {
            server: Vec::new(),
            delivery: vec![
                ("timeout".into(), r#""5s""#.into()),
                ("retry_schedule".into(), r#"["200ms"]"#.into()),
                ("allow_private_targets".into(), "true".into()),
            ],
            tokens: vec![(ADMIN.unwrap().into(), "admin".into(), vec!["*".into()])],
            raw: Vec::new(),
        }
    }

    /// Sets `[server] key = value`; `value` is TOML (`"1024"`, `"\"5s\""`).
    pub fn server(mut self, key: &str, value: &str) -> Self {
        set(&mut self.server, key, value);
        self
    }

    /// Sets `[delivery] key = value`; `value` is TOML.
    pub fn delivery(mut self, key: &str, value: &str) -> Self {
        set(&mut self.delivery, key, value);
        self
    }

    /// Sets `[delivery] retry_schedule` from durations such as `"300ms"`.
    pub fn retry_schedule(self, waits: &[&str]) -> Self {
        let list: Vec<String> = waits.iter().map(|w| format!("{w:?}")).collect();
        self.delivery("retry_schedule", &format!("[{}]", list.join(", ")))
    }

    /// Declares no `[[auth.tokens]]` at all (not even [`ADMIN`]).
    pub fn without_tokens(mut self) -> Self {
        self.tokens.clear();
        self
    }

    /// Adds an `[[auth.tokens]]` entry.
    pub fn token(mut self, token: &str, role: &str, tenants: &[&str]) -> Self {
        self.tokens.push((
            token.into(),
            role.into(),
            tenants.iter().map(|t| t.to_string()).collect(),
        ));
        self
    }

    /// Appends TOML after the generated sections (`[[subscriptions]]`,
    /// `[plugins.NAME]` ...).
    pub fn raw(mut self, toml: &str) -> Self {
        self.raw.push(toml.to_owned());
        self
    }

    pub fn build(&self) -> String {
        let mut out = String::new();
        if !self.server.is_empty() {
            out.push_str("[server]\n");
            for (k, v) in &self.server {
                out.push_str(&format!("{k} = {v}\n"));
            }
            out.push('\n');
        }
        for (token, role, tenants) in &self.tokens {
            let tenants: Vec<String> = tenants.iter().map(|t| format!("{t:?}")).collect();
            out.push_str(&format!(
                "[[auth.tokens]]\ntoken = {token:?}\nrole = {role:?}\ntenants = [{}]\n\n",
                tenants.join(", ")
            ));
        }
        out.push_str("[delivery]\n");
        for (k, v) in &self.delivery {
            out.push_str(&format!("{k} = {v}\n"));
        }
        for raw in &self.raw {
            out.push('\n');
            out.push_str(raw);
            out.push('\n');
        }
        out
    }
}

fn set(entries: &mut Vec<(String, String)>, key: &str, value: &str) {
    match entries.iter_mut().find(|(k, _)| k == key) {
        Some(entry) => entry.1 = value.to_owned(),
        None => entries.push((key.to_owned(), value.to_owned())),
    }
}

// ---------------------------------------------------------------------------
// The storage backend

/// Set for the suite's run on PostgreSQL (see `postgres::postgres_suite`):
/// the URL of a throwaway cluster, without a database. Every [`Server`]
/// then gets a fresh database of its own there.
pub const POSTGRES_ENV: &str = "HOOKSHAPE_E2E_POSTGRES";

/// The lease the suite runs PostgreSQL nodes with: short, so that a test
/// killing a node sees its deliveries retaken soon.
pub const E2E_LEASE: &str = "2s";

/// The cluster this run uses, when it runs on PostgreSQL.
pub fn postgres_cluster() -> Option<String> {
    std::env::var(POSTGRES_ENV).ok()
}

/// For a test about sled itself (its files, fsync, disk limits): on
/// PostgreSQL it says why it does not apply and returns `true`.
pub fn sled_only(why: &str) -> bool {
    if postgres_cluster().is_none() {
        return false;
    }
    eprintln!("skipped on postgres: {why}");
    true
}

/// Creates an empty database in `cluster`; returns its URL.
pub fn create_database(cluster: String) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let name = format!(
        "e2e_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    crate::pg_cluster::create_database(&cluster, &name)
}

/// The config file as the server gets it: on PostgreSQL, `[storage]` names
/// the server's database (added to the test's own `[storage]`, if any).
fn for_backend(toml: &str, database: Option<&str>) -> String {
    let Some(url) = database else {
        return toml.to_owned();
    };
    let keys = format!("backend = \"postgres\"\nurl = {url:?}\nlease = {E2E_LEASE:?}\n");
    match toml.lines().position(|l| l.trim() == "[storage]") {
        Some(at) => {
            let mut lines: Vec<&str> = toml.lines().collect();
            lines.insert(at + 1, keys.trim_end());
            lines.join("\n") + "\n"
        }
        None => format!("{toml}\n[storage]\n{keys}"),
    }
}

// ---------------------------------------------------------------------------
// The server under test

/// An answer of the API: status, headers and raw body.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON; `Null` when empty. Panics on anything else.
    pub fn json(&self) -> Value {
        if self.body.is_empty() {
            return Value::Null;
        }
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "a {} answer is not JSON ({e}): {}",
                self.status,
                self.text()
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// How `hookshape serve` is told its config file, address and data
/// directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Launch {
    /// `--config`, `--listen` and `--data`.
    Flags,
    /// `HOOKSHAPE_CONFIG`, `HOOKSHAPE_LISTEN` and `HOOKSHAPE_DATA`.
    Env,
}

/// `hookshape serve` as a child process, with its temporary directory (the
/// config file and the data directory) and everything it wrote to stderr.
pub struct Server {
    dir: tempfile::TempDir,
    config_path: PathBuf,
    /// The server's own database, when the suite runs on PostgreSQL.
    database: Option<String>,
    launch: Launch,
    child: Option<Child>,
    addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Server {
    /// Writes `config_toml` to a fresh temporary directory and starts the
    /// server on it, listening on an ephemeral loopback port with its data
    /// inside the same directory.
    pub async fn start(config_toml: &str) -> Server {
        Server::start_with(config_toml, Launch::Flags).await
    }

    /// [`Server::start`], passing the config file, address and data
    /// directory as `launch` says.
    pub async fn start_with(config_toml: &str, launch: Launch) -> Server {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let config_path = dir.path().join("hookshape.toml");
        let database = postgres_cluster().map(create_database);
        std::fs::write(&config_path, for_backend(config_toml, database.as_deref()))
            .expect("writing the config file");
        let client = Client::builder(TokioExecutor::new()).build_http();
        let stderr = Arc::new(Mutex::new(String::new()));
        let (child, addr) = spawn(dir.path(), &config_path, launch, &stderr).await;
        Server {
            dir,
            config_path,
            database,
            launch,
            child: Some(child),
            addr,
            stderr,
            client,
        }
    }

    /// `http://ADDR` of the API.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The temporary directory holding the config file and `data/`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Everything the server (all its runs) wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server is running").id()
    }

    /// SIGKILL: no chance to flush or finish anything.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Fails only when the process already exited; reaping it is what matters.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits up to `timeout` for the process to exit.
    pub async fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        let pid = self.child.as_ref().expect("the server is running").id();
        let sent = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("running kill");
        assert!(sent.success(), "kill -TERM {pid} failed");
        self.wait_exit(timeout).await
    }

    /// Waits up to `timeout` for the process to exit by itself.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let child = self.child.as_mut().expect("the server is running");
        let status = eventually(timeout, "the server to exit", || {
            std::future::ready(child.try_wait().expect("polling the server"))
        })
        .await;
        self.child = None;
        status
    }

    /// Starts the server again on the same config file and data directory
    /// (after [`Server::kill9`] or [`Server::terminate`]; a running server is
    /// killed first). The port changes.
    pub async fn restart(&mut self) {
        self.kill9();
        self.stderr
            .lock()
            .unwrap()
            .push_str("\n---- restart ----\n");
        let (child, addr) = spawn(
            self.dir.path(),
            &self.config_path,
            self.launch,
            &self.stderr,
        )
        .await;
        self.child = Some(child);
        self.addr = addr;
    }

    /// Replaces the config file, then [`Server::restart`]s.
    pub async fn restart_with(&mut self, config_toml: &str) {
        self.kill9();
        let config = for_backend(config_toml, self.database.as_deref());
        std::fs::write(&self.config_path, config).expect("writing the config file");
        self.restart().await;
    }

    /// Any request to the API. `body` is `(content type, bytes)`.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<(&str, Vec<u8>)>,
    ) -> Reply {
        let mut builder = hyper::Request::builder()
            .method(method.clone())
            .uri(format!("{}{path}", self.base_url()));
        if let Some(token) = token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let bytes = match body {
            Some((content_type, bytes)) => {
                builder = builder.header(header::CONTENT_TYPE, content_type);
                Bytes::from(bytes)
            }
            None => Bytes::new(),
        };
        let request = builder
            .body(Full::new(bytes))
            .expect("a well-formed request");
        let exchange = async {
            let response = self.client.request(request).await?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Reply {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        match tokio::time::timeout(REQUEST_DEADLINE, exchange).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(e)) => panic!("{method} {path} failed: {e}"),
            Err(_) => panic!("{method} {path} got no answer within {REQUEST_DEADLINE:?}"),
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let reply = self.request(Method::GET, path, token, None).await;
        (reply.status, reply.json())
    }

    pub async fn post(&self, path: &str, token: Option<&str>, json: &Value) -> (StatusCode, Value) {
        self.send_json(Method::POST, path, token, json).await
    }

    pub async fn patch(
        &self,
        path: &str,
        token: Option<&str>,
        json: &Value,
    ) -> (StatusCode, Value) {
        self.send_json(Method::PATCH, path, token, json).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let reply = self.request(Method::DELETE, path, token, None).await;
        (reply.status, reply.json())
    }

    /// POSTs raw bytes as `application/json` (for malformed bodies).
    pub async fn post_raw(
        &self,
        path: &str,
        token: Option<&str>,
        body: &[u8],
    ) -> (StatusCode, Value) {
        let reply = self
            .request(
                Method::POST,
                path,
                token,
                Some(("application/json", body.to_vec())),
            )
            .await;
        (reply.status, reply.json())
    }

    pub async fn put_bytes(
        &self,
        path: &str,
        token: Option<&str>,
        bytes: Vec<u8>,
    ) -> (StatusCode, Value) {
        let reply = self
            .request(Method::PUT, path, token, Some(("application/wasm", bytes)))
            .await;
        (reply.status, reply.json())
    }

    async fn send_json(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        json: &Value,
    ) -> (StatusCode, Value) {
        let body = serde_json::to_vec(json).expect("serializable JSON");
        let reply = self
            .request(method, path, token, Some(("application/json", body)))
            .await;
        (reply.status, reply.json())
    }

    /// Creates a subscription with the admin token; asserts 201.
    pub async fn create_subscription(&self, tenant: &str, body: &Value) -> Value {
        let (status, sub) = self
            .post(&format!("/v1/tenants/{tenant}/subscriptions"), ADMIN, body)
            .await;
        assert_eq!(
            status,
            StatusCode::CREATED,
            "creating a subscription: {sub}"
        );
        sub
    }

    /// Ingests an event with the admin token; asserts 202 and returns the
    /// receipt (`{"id", "deliveries"}`).
    pub async fn publish(&self, tenant: &str, event: &Value) -> Value {
        let (status, receipt) = self
            .post(&format!("/v1/tenants/{tenant}/events"), ADMIN, event)
            .await;
        assert_eq!(
            status,
            StatusCode::ACCEPTED,
            "publishing {event}: {receipt}"
        );
        receipt
    }

    /// Publishes `count` events of `event_type` whose payload is `{"n": i}`,
    /// one after another; returns their ids in ingest order.
    pub async fn publish_numbered(
        &self,
        tenant: &str,
        event_type: &str,
        count: usize,
    ) -> Vec<String> {
        let mut ids = Vec::with_capacity(count);
        for n in 0..count {
            let event = json!({"type": event_type, "payload": {"n": n}});
            let receipt = self.publish(tenant, &event).await;
            let id = receipt["id"]
                .as_str()
                .unwrap_or_else(|| panic!("no id in {receipt}"));
            ids.push(id.to_owned());
        }
        ids
    }

    /// `GET` of an event with its deliveries; asserts 200.
    pub async fn event(&self, tenant: &str, event_id: &str) -> Value {
        let (status, event) = self
            .get(&format!("/v1/tenants/{tenant}/events/{event_id}"), ADMIN)
            .await;
        assert_eq!(status, StatusCode::OK, "reading event {event_id}: {event}");
        event
    }

    /// Waits until no delivery of the event is `pending` and returns the
    /// event.
    pub async fn settled_event(&self, tenant: &str, event_id: &str, timeout: Duration) -> Value {
        eventually(
            timeout,
            &format!("every delivery of {event_id} to settle"),
            || async {
                let event = self.event(tenant, event_id).await;
                let deliveries = event["deliveries"]
                    .as_array()
                    .expect("deliveries is a list");
                deliveries
                    .iter()
                    .all(|d| d["state"] != "pending")
                    .then_some(event)
            },
        )
        .await
    }

    /// `GET` of a subscription; asserts 200.
    pub async fn subscription(&self, tenant: &str, sub_id: &str) -> Value {
        let (status, sub) = self
            .get(
                &format!("/v1/tenants/{tenant}/subscriptions/{sub_id}"),
                ADMIN,
            )
            .await;
        assert_eq!(
            status,
            StatusCode::OK,
            "reading subscription {sub_id}: {sub}"
        );
        sub
    }

    /// The ids of the tenant's subscriptions.
    pub async fn subscription_ids(&self, tenant: &str) -> Vec<String> {
        let (status, list) = self
            .get(&format!("/v1/tenants/{tenant}/subscriptions"), ADMIN)
            .await;
        assert_eq!(status, StatusCode::OK, "listing subscriptions: {list}");
        list["data"]
            .as_array()
            .expect("data is a list")
            .iter()
            .map(|s| s["id"].as_str().expect("an id").to_owned())
            .collect()
    }

    /// The first page of a subscription's attempts, newest first.
    pub async fn attempts(&self, tenant: &str, sub_id: &str) -> Vec<Value> {
        let (status, page) = self
            .get(
                &format!("/v1/tenants/{tenant}/subscriptions/{sub_id}/attempts?limit=250"),
                ADMIN,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "listing attempts: {page}");
        page["data"].as_array().expect("data is a list").clone()
    }

    /// Waits until the subscription has at least `n` attempts; returns them
    /// oldest first.
    pub async fn wait_attempts(
        &self,
        tenant: &str,
        sub_id: &str,
        n: usize,
        timeout: Duration,
    ) -> Vec<Value> {
        eventually(timeout, &format!("{n} attempts on {sub_id}"), || async {
            let mut attempts = self.attempts(tenant, sub_id).await;
            attempts.reverse();
            (attempts.len() >= n).then_some(attempts)
        })
        .await
    }

    /// `/metrics` as text; asserts 200.
    pub async fn metrics(&self) -> String {
        let reply = self.request(Method::GET, "/metrics", None, None).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "GET /metrics: {}",
            reply.text()
        );
        reply.text()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            let stderr = self.stderr();
            let tail: String = {
                let skip = stderr.chars().count().saturating_sub(16_000);
                stderr.chars().skip(skip).collect()
            };
            eprintln!(
                "==== hookshape stderr (last 16000 chars) ====\n{tail}\n==== end of hookshape stderr ===="
            );
        }
    }
}

/// Spawns `hookshape serve` and waits for its listening line; stderr is
/// appended to `stderr` by a draining thread, as is stdout past that line.
async fn spawn(
    dir: &Path,
    config: &Path,
    launch: Launch,
    stderr: &Arc<Mutex<String>>,
) -> (Child, SocketAddr) {
    let (listen, data) = ("127.0.0.1:0", dir.join("data"));
    let mut command = Command::new(BINARY);
    command.arg("serve");
    match launch {
        Launch::Flags => command
            .arg("--config")
            .arg(config)
            .args(["--listen", listen, "--data"])
            .arg(data),
        Launch::Env => command
            .env("HOOKSHAPE_CONFIG", config)
            .env("HOOKSHAPE_LISTEN", listen)
            .env("HOOKSHAPE_DATA", data),
    };
    let mut child = command
        .current_dir(dir)
        .env("RUST_LOG", "info,hookshape=debug")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {BINARY}: {e}"));
    drain(
        child.stderr.take().expect("piped stderr"),
        Arc::clone(stderr),
    );

    let (tx, rx) = tokio::sync::oneshot::channel();
    let stdout = child.stdout.take().expect("piped stdout");
    let sink = Arc::clone(stderr);
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout);
        let mut first = String::new();
        let _ = lines.read_line(&mut first);
        let _ = tx.send(first);
        drain(lines, sink);
    });

    let first = match tokio::time::timeout(STARTUP_DEADLINE, rx).await {
        Ok(Ok(line)) => line,
        Ok(Err(_)) => String::new(),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the server printed no listening line within {STARTUP_DEADLINE:?}; stderr:\n{}",
                stderr.lock().unwrap()
            );
        }
    };
    let addr = first
        .trim()
        .strip_prefix("hookshape listening on http://")
        .and_then(|a| a.parse().ok());
    match addr {
        Some(addr) => (child, addr),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            // The draining thread may still be copying the last lines.
            std::thread::sleep(Duration::from_millis(100));
            panic!(
                "unexpected first stdout line {first:?}; stderr:\n{}",
                stderr.lock().unwrap()
            );
        }
    }
}

/// Copies everything from `from` into `into` on a thread until EOF.
fn drain(mut from: impl Read + Send + 'static, into: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => into
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
    });
}

/// Runs the dry run (`hookshape plugin run`) of the plugin at `wasm` on the
/// event in `event`, with a subscription's plugin config and, when given,
/// its URL. Returns the exit status, stdout and stderr.
pub fn run_dry_run(
    wasm: &Path,
    event: &Path,
    config: &str,
    url: Option<&str>,
    cwd: &Path,
    timeout: Duration,
) -> (ExitStatus, String, String) {
    let (wasm, event) = (wasm.display().to_string(), event.display().to_string());
    let mut args = vec![
        "plugin", "run", "--plugin", &wasm, "--event", &event, "--config", config,
    ];
    args.extend(url.map(|url| ["--url", url]).into_iter().flatten());
    run_binary(&args, cwd, timeout)
}

/// Runs the binary to completion with `args` (for `config check`, or a
/// `serve` expected to refuse its config), killing it past `timeout`.
/// Returns the exit status, stdout and stderr.
pub fn run_binary(args: &[&str], cwd: &Path, timeout: Duration) -> (ExitStatus, String, String) {
    let mut child = Command::new(BINARY)
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {BINARY}: {e}"));
    let stdout = Arc::new(Mutex::new(String::new()));
    let stderr = Arc::new(Mutex::new(String::new()));
    let out_thread = {
        let (from, into) = (
            child.stdout.take().expect("piped stdout"),
            Arc::clone(&stdout),
        );
        std::thread::spawn(move || copy_all(from, &into))
    };
    let err_thread = {
        let (from, into) = (
            child.stderr.take().expect("piped stderr"),
            Arc::clone(&stderr),
        );
        std::thread::spawn(move || copy_all(from, &into))
    };
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("polling the child") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "hookshape {args:?} did not exit within {timeout:?}; stderr:\n{}",
                stderr.lock().unwrap()
            );
        }
        std::thread::sleep(POLL_EVERY);
    };
    out_thread.join().expect("the stdout reader");
    err_thread.join().expect("the stderr reader");
    let (out, err) = (
        stdout.lock().unwrap().clone(),
        stderr.lock().unwrap().clone(),
    );
    (status, out, err)
}

fn copy_all(mut from: impl Read, into: &Mutex<String>) {
    let mut text = Vec::new();
    let _ = from.read_to_end(&mut text);
    into.lock()
        .unwrap()
        .push_str(&String::from_utf8_lossy(&text));
}

// ---------------------------------------------------------------------------
// The receiver

/// One request the receiver got, and what it answered.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    /// Path and query.
    pub uri: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// When the request's head arrived.
    pub at: Instant,
    /// The status the receiver chose to answer with (the sender may have
    /// given up before it was sent, when a delay exceeds its timeout).
    pub answered: StatusCode,
}

impl Recorded {
    /// A header as text; panics when it is not visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| {
            v.to_str()
                .unwrap_or_else(|_| panic!("header {name} is not text"))
        })
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("the delivered body is not JSON ({e}): {}", self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// `webhook-id`; panics when absent.
    pub fn webhook_id(&self) -> &str {
        self.header("webhook-id").expect("a webhook-id header")
    }

    pub fn succeeded(&self) -> bool {
        self.answered.is_success()
    }
}

/// What the receiver answers to one request.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: String,
    /// Held before answering, e.g. to keep a delivery in flight.
    pub delay: Duration,
}

impl Answer {
    pub fn status(code: u16) -> Self {
        Answer {
            status: StatusCode::from_u16(code).expect("a valid status code"),
            headers: Vec::new(),
            body: String::new(),
            delay: Duration::ZERO,
        }
    }

    pub fn ok() -> Self {
        Answer::status(200)
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((
            HeaderName::from_static(name),
            HeaderValue::from_str(value).expect("a valid header value"),
        ));
        self
    }

    pub fn body(mut self, body: &str) -> Self {
        self.body = body.to_owned();
        self
    }

    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// Chooses the answer to the `n`th request (from 0) when the script is
/// exhausted.
type Responder = Box<dyn Fn(usize, &Recorded) -> Answer + Send + Sync>;

struct ReceiverState {
    log: Mutex<Vec<Recorded>>,
    script: Mutex<VecDeque<Answer>>,
    responder: Mutex<Responder>,
    arrived: Notify,
    answered: AtomicUsize,
}

/// A real HTTP server on `127.0.0.1:0` that records every request and
/// answers from a script: queued answers first ([`Receiver::push`]), then
/// the responder ([`Receiver::respond_with`], 200 with an empty body unless
/// set). Stops when dropped.
pub struct Receiver {
    addr: SocketAddr,
    state: Arc<ReceiverState>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let state = Arc::new(ReceiverState {
            log: Mutex::new(Vec::new()),
            script: Mutex::new(VecDeque::new()),
            responder: Mutex::new(Box::new(|_, _| Answer::ok())),
            arrived: Notify::new(),
            answered: AtomicUsize::new(0),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the receiver");
        let addr = listener.local_addr().expect("the receiver's address");
        let router = axum::Router::new()
            .fallback(record)
            .with_state(Arc::clone(&state));
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .await
                .expect("the receiver serves");
        });
        Receiver { addr, state, task }
    }

    /// `http://127.0.0.1:PORT/hook`.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Queues an answer for the next request not yet scripted.
    pub fn push(&self, answer: Answer) -> &Self {
        self.state.script.lock().unwrap().push_back(answer);
        self
    }

    /// Sets how requests are answered once the queue is empty.
    pub fn respond_with(
        &self,
        responder: impl Fn(usize, &Recorded) -> Answer + Send + Sync + 'static,
    ) {
        *self.state.responder.lock().unwrap() = Box::new(responder);
    }

    /// Answers every request past the queue with `answer`.
    pub fn always(&self, answer: Answer) {
        self.respond_with(move |_, _| answer.clone());
    }

    /// The `webhook-id`s of every request so far, and of those answered 2xx.
    pub fn webhook_ids(&self) -> (HashSet<String>, HashSet<String>) {
        let mut all = HashSet::new();
        let mut succeeded = HashSet::new();
        for r in self.requests() {
            if r.succeeded() {
                succeeded.insert(r.webhook_id().to_owned());
            }
            all.insert(r.webhook_id().to_owned());
        }
        (all, succeeded)
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.log.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.state.log.lock().unwrap().len()
    }

    /// How many requests got their answer handed back (past any delay).
    pub fn answered(&self) -> usize {
        self.state.answered.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` requests arrived; returns them all.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Recorded> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.state.arrived.notified();
            let log = self.requests();
            if log.len() >= n {
                return log;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                panic!(
                    "the receiver got {} request(s) within {timeout:?}, expected {n}",
                    self.count()
                );
            }
        }
    }

    /// Asserts that the count stays at `n` for `period` (nothing more
    /// arrives).
    pub async fn assert_stays(&self, n: usize, period: Duration) {
        tokio::time::sleep(period).await;
        let log = self.requests();
        assert_eq!(
            log.len(),
            n,
            "the receiver expected {n} request(s) but got {}: {:?}",
            log.len(),
            log.iter().map(|r| r.text()).collect::<Vec<_>>()
        );
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(State(state): State<Arc<ReceiverState>>, request: Request) -> Response {
    let at = Instant::now();
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return StatusCode::BAD_REQUEST.into_response(),
    };
    let mut recorded = Recorded {
        method: parts.method,
        uri: parts.uri.to_string(),
        headers: parts.headers,
        body,
        at,
        answered: StatusCode::OK,
    };
    let answer = {
        let mut log = state.log.lock().unwrap();
        let scripted = state.script.lock().unwrap().pop_front();
        let answer =
            scripted.unwrap_or_else(|| (state.responder.lock().unwrap())(log.len(), &recorded));
        recorded.answered = answer.status;
        log.push(recorded);
        answer
    };
    state.arrived.notify_waiters();
    if !answer.delay.is_zero() {
        tokio::time::sleep(answer.delay).await;
    }
    state.answered.fetch_add(1, Ordering::SeqCst);
    let mut response = Response::new(Body::from(answer.body));
    *response.status_mut() = answer.status;
    for (name, value) in answer.headers {
        response.headers_mut().append(name, value);
    }
    response
}

// ---------------------------------------------------------------------------
// Signatures

/// Checks a delivered request's Standard Webhooks signature by hand (HMAC
/// over `{webhook-id}.{webhook-timestamp}.{body}`, keyed with the decoded
/// part of `whsec_...`) rather than through hookshape's own code, so the wire
/// format itself is under test. Also checks the timestamp is within a minute
/// of now.
pub fn assert_signed(request: &Recorded, secret: &str) {
    let key = BASE64
        .decode(
            secret
                .strip_prefix("whsec_")
                .unwrap_or_else(|| panic!("{secret} lacks whsec_")),
        )
        .expect("the secret is base64 after whsec_");
    let id = request.webhook_id();
    let timestamp = request
        .header("webhook-timestamp")
        .expect("a webhook-timestamp header");
    let signature = request
        .header("webhook-signature")
        .expect("a webhook-signature header");
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).expect("any key length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(&request.body);
    let expected = format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()));
    assert!(
        signature.split(' ').any(|s| s == expected),
        "webhook-signature {signature:?} does not hold {expected:?}"
    );
    let sent: u64 = timestamp
        .parse()
        .expect("webhook-timestamp is Unix seconds");
    let now = unix_now();
    assert!(
        sent.abs_diff(now) <= 60,
        "webhook-timestamp {sent} is far from now ({now})"
    );
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// Asserts an API error answer: the status and a `{"error": {"code",
/// "message"}}` body with a snake_case code and a non-empty message.
pub fn assert_error(got: &(StatusCode, Value), status: StatusCode, context: &str) {
    let (got_status, body) = got;
    assert_eq!(
        *got_status, status,
        "{context}: expected {status}, got {got_status} {body}"
    );
    let code = body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("{context}: no error.code in {body}"));
    assert!(
        !code.is_empty()
            && code
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
        "{context}: error.code {code:?} is not snake_case"
    );
    let message = body["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("{context}: no error.message in {body}"));
    assert!(!message.trim().is_empty(), "{context}: empty error.message");
}

// ---------------------------------------------------------------------------
// The dry run's output

/// What `hookshape plugin run` printed for a transform that delivered or
/// skipped.
#[derive(Debug, PartialEq, Eq)]
pub enum DryRun {
    /// `deliver: POST URL`, the header lines, a blank line, then the body
    /// byte for byte.
    Deliver {
        request_line: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// `skip: REASON`.
    Skip(String),
}

impl DryRun {
    pub fn parse(stdout: &str) -> DryRun {
        if let Some(rest) = stdout.strip_prefix("skip: ") {
            return DryRun::Skip(rest.lines().next().unwrap_or_default().to_owned());
        }
        let (head, rest) = stdout
            .split_once("\n\n")
            .unwrap_or_else(|| panic!("no blank line after the headers:\n{stdout}"));
        // The body is followed by the plugin's log lines, or by the timing
        // line when it logged nothing.
        let end = rest
            .rfind("\n\nplugin logs:\n")
            .or_else(|| rest.rfind("\n\ntransform took "))
            .unwrap_or_else(|| panic!("no end of the body:\n{stdout}"));
        let mut lines = head.lines();
        let request_line = lines.next().unwrap_or_default().to_owned();
        let headers = lines
            .map(|line| {
                let (name, value) = line
                    .split_once(": ")
                    .unwrap_or_else(|| panic!("not a header line: {line:?}"));
                (name.to_owned(), value.to_owned())
            })
            .collect();
        DryRun::Deliver {
            request_line,
            headers,
            body: rest.as_bytes()[..end].to_vec(),
        }
    }

    /// A header of a delivering dry run.
    pub fn header(&self, name: &str) -> Option<&str> {
        match self {
            DryRun::Deliver { headers, .. } => headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str()),
            DryRun::Skip(_) => None,
        }
    }

    /// The body of a delivering dry run; panics on a skip.
    pub fn body(&self) -> &[u8] {
        match self {
            DryRun::Deliver { body, .. } => body,
            DryRun::Skip(reason) => panic!("the dry run skipped: {reason}"),
        }
    }

    /// The first line of a delivering dry run; panics on a skip.
    pub fn request_line(&self) -> &str {
        match self {
            DryRun::Deliver { request_line, .. } => request_line,
            DryRun::Skip(reason) => panic!("the dry run skipped: {reason}"),
        }
    }
}

/// The sum over every series of a Prometheus metric; 0 when absent.
pub fn metric_total(exposition: &str, name: &str) -> f64 {
    exposition
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .map(|line| {
            let value = line.rsplit(' ').next().unwrap_or_default();
            value
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("not a sample line: {line}"))
        })
        .sum()
}

// ---------------------------------------------------------------------------
// Load checks

/// The `data.key` of every request a receiver got, in arrival order: the
/// load tests put a key in each event's payload.
pub fn delivered_keys(receiver: &Receiver) -> Vec<String> {
    receiver
        .requests()
        .iter()
        .map(|r| r.json()["data"]["key"].as_str().expect("a key").to_owned())
        .collect()
}

/// Asserts that the first arrival of each key follows the order in which
/// the keys were posted (redeliveries after a crash may repeat one).
pub fn assert_first_arrivals_in_order(posted: &[String], delivered: Vec<String>) {
    let position: HashMap<&String, usize> =
        posted.iter().enumerate().map(|(i, k)| (k, i)).collect();
    let mut seen = HashSet::new();
    let firsts: Vec<usize> = delivered
        .into_iter()
        .filter(|k| seen.insert(k.clone()))
        .map(|k| position[&k])
        .collect();
    assert!(
        firsts.windows(2).all(|w| w[0] < w[1]),
        "the ordered subscription got events out of order (posting positions): {firsts:?}"
    );
}
