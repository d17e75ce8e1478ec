//! The admin's TOML configuration: its typed form ([`Config`]), the embedded
//! defaults `hookshape serve` runs on without `--config`, and the loader that
//! checks a file completely, reporting every problem with its file, line and
//! dotted key (`subscriptions[2].url`) rather than stopping at the first.
//!
//! Conventions of the file, beyond the contract's example:
//! - Durations are strings such as `"250ms"`, `"5s"`, `"1h30m"`
//!   ([`parse_duration`]); sizes are byte counts or strings such as
//!   `"32MiB"` or `"10MB"` ([`parse_size`]).
//! - `auth.tokens[].token` and `subscriptions[].secret` are a literal or
//!   `env:VAR`, read from the environment at load time.
//! - A subscription `secret`, when given, is `whsec_` followed by the standard
//!   base64 of 24 to 64 bytes (Standard Webhooks); leave it out to have one
//!   generated.
//! - Subscription ids are unique within their tenant. Array indexes in error
//!   keys count from 0, as in `subscriptions[0]`.
//! - `plugins.NAME.path` and `delivery.extra_ca_file` are relative to the
//!   config file's directory; `storage.path` is relative to the working
//!   directory, like the `--data` flag that overrides it.

#[cfg(test)]
mod properties;
mod reader;
mod sections;
#[cfg(test)]
mod tests;
mod units;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::headers::HeaderSet;
use crate::ids::{PluginName, SubscriptionId, Tenant};
use crate::store::{Backend, Durability};

pub use units::{
    MIN_PLUGIN_MEMORY, format_duration, format_size, non_zero, parse_duration, parse_size,
    plugin_memory,
};

/// Everything the admin's file declares.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    /// `[server]`.
    pub server: ServerConfig,
    /// `[storage]`.
    pub storage: StorageConfig,
    /// `[retention]`.
    pub retention: RetentionConfig,
    /// `[auth]`.
    pub auth: AuthConfig,
    /// `[delivery]`.
    pub delivery: DeliveryConfig,
    /// `[plugins.NAME]`: the config-managed plugins.
    pub plugins: BTreeMap<PluginName, PluginConfig>,
    /// `[[subscriptions]]`: the config-managed subscriptions.
    pub subscriptions: Vec<SubscriptionConfig>,
    /// The file this came from; `None` for the embedded defaults.
    pub source: Option<PathBuf>,
}

/// `[server]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// The address the HTTP API listens on.
    pub listen: SocketAddr,
    /// Larger event bodies are answered 413.
    pub max_event_bytes: usize,
    /// Subscriptions one tenant may have; creating one more is 422.
    pub max_subscriptions_per_tenant: usize,
    /// Custom headers one subscription may set; more is 422.
    pub max_headers_per_subscription: usize,
    /// How log lines are written.
    pub log_format: LogFormat,
    /// A client that has not sent a request's whole header this long after
    /// connecting, or after its first byte on a kept-alive connection, is
    /// dropped.
    pub header_read_timeout: Duration,
    /// From the end of the header to the answer, body included; past it the
    /// answer is 408 and the connection is closed.
    pub request_timeout: Duration,
    /// A kept-alive connection with no request this long is closed.
    pub idle_timeout: Duration,
    /// Connections served at once; further ones wait in the accept queue.
    pub max_connections: usize,
}

/// How the server writes its log lines (`server.log_format`, and the
/// command line's `--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Plain text for a terminal.
    #[default]
    Human,
    /// One JSON object a line, for log collectors.
    Json,
}

/// `[storage]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageConfig {
    /// Where records are kept: sled in `path`, or a PostgreSQL database.
    pub backend: Backend,
    /// The sled directory; with PostgreSQL, the node's local caches.
    pub path: PathBuf,
    /// What an acknowledged write survives.
    pub sync: Durability,
    /// Store size in bytes past which ingest answers 503 `storage_full`.
    pub max_size: u64,
    /// Free bytes on the data filesystem under which ingest answers the same.
    pub min_free: u64,
}

/// `[retention]`: how long final records are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionConfig {
    /// Final events (every delivery settled) older than this are deleted
    /// with their deliveries.
    pub events: Duration,
    /// Attempts older than this are deleted.
    pub attempts: Duration,
    /// How often the sweep runs.
    pub sweep_interval: Duration,
}

/// `[auth]`. With no tokens and `open = false`, `serve` makes a first-start
/// admin token (see `crate::admin_token`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthConfig {
    /// `open = true`: every request is let in, on a loopback address only.
    pub open: bool,
    /// `[[auth.tokens]]`.
    pub tokens: Vec<TokenConfig>,
}

/// One `[[auth.tokens]]` entry.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenConfig {
    /// The bearer token itself, with any `env:VAR` already resolved.
    pub token: String,
    /// What the token may do.
    pub role: Role,
    /// The tenants it reaches.
    pub tenants: Vec<TenantScope>,
}

/// What a token may do.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Role {
    /// Everything.
    Admin,
    /// Post events only.
    Publisher,
}

/// A tenant a token may touch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantScope {
    /// `"*"`: every tenant.
    Any,
    /// That one tenant.
    Tenant(Tenant),
}

/// `[delivery]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryConfig {
    /// Per HTTP attempt.
    pub timeout: Duration,
    /// Waits before retries 1..n; empty means no retries.
    pub retry_schedule: Vec<Duration>,
    /// Allow loopback, private, link-local and metadata target addresses.
    pub allow_private_targets: bool,
    /// Concurrent deliveries, all subscriptions together.
    pub max_in_flight: usize,
    /// Concurrent deliveries of one subscription: one slow receiver cannot
    /// take every slot from the others.
    pub max_in_flight_per_subscription: usize,
    /// Finally-failed deliveries in a row that disable a subscription; 0: never.
    pub disable_after_failures: u32,
    /// PEM roots trusted in addition to the web PKI, for internal https
    /// receivers.
    pub extra_ca_file: Option<PathBuf>,
    /// How long after a secret rotation deliveries carry the old key's signature too.
    pub secret_rotation_overlap: Duration,
}

/// One `[plugins.NAME]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginConfig {
    /// The component file, resolved against the config file's directory.
    pub path: PathBuf,
    /// Per transform call.
    pub timeout: Duration,
    /// Linear memory cap in bytes.
    pub memory: u64,
}

/// One `[[subscriptions]]` entry, declared by the admin.
#[derive(Clone, PartialEq)]
pub struct SubscriptionConfig {
    /// Unique within `tenant`.
    pub id: SubscriptionId,
    /// The tenant whose events it receives.
    pub tenant: Tenant,
    /// The endpoint deliveries are POSTed to.
    pub url: String,
    /// Exact event types or patterns (`project.*`, `*`).
    pub events: Vec<String>,
    /// Free text for the people who manage it.
    pub description: Option<String>,
    /// Always one of the declared `[plugins.NAME]`.
    pub plugin: Option<PluginName>,
    /// `whsec_...` with any `env:VAR` resolved; `None`: generated on first start.
    pub secret: Option<String>,
    /// Extra headers sent with every delivery.
    pub headers: HeaderSet,
    /// Disabled subscriptions get no new deliveries.
    pub enabled: bool,
    /// One delivery at a time, in ingest order.
    pub ordered: bool,
    /// The `plugin_config` table as JSON (datetimes become strings); `{}`
    /// when absent.
    pub plugin_config: serde_json::Value,
}

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct ConfigError {
    /// The config file with the problem.
    pub file: PathBuf,
    /// 1-based; `None` when the problem is the whole file (e.g. unreadable).
    pub line: Option<usize>,
    /// Dotted path such as `subscriptions[2].url`; empty for syntax errors.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// Every problem found in a config file, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

/// Checks one `[plugins.NAME]` with a valid name and path beyond the file
/// itself (`config check` loads its component); an error is reported as
/// `plugins.NAME` at the line of its `path`, among the file's other problems.
pub type PluginCheck<'a> = dyn FnMut(&PluginName, &PluginConfig) -> Result<(), String> + 'a;

impl Config {
    /// Reads and checks `path`, resolving `env:VAR` from the process
    /// environment.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        Config::check(path, &mut |_, _| Ok(()))
    }

    /// Like [`Config::load`], and runs `check_plugin` on each plugin with a
    /// valid name and path, so one run reports a plugin that does not load
    /// together with everything else wrong in the file.
    pub fn check(path: &Path, check_plugin: &mut PluginCheck<'_>) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: path.to_path_buf(),
                line: None,
                key: String::new(),
                message: format!("cannot read the config file: {e}"),
            }])
        })?;
        Config::read(&text, path, &|name| std::env::var(name).ok(), check_plugin)
    }

    /// Checks `text`, the contents of `source`, resolving `env:VAR` with `env`.
    pub fn parse(
        text: &str,
        source: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigErrors> {
        Config::read(text, source, env, &mut |_, _| Ok(()))
    }

    fn read(
        text: &str,
        source: &Path,
        env: &dyn Fn(&str) -> Option<String>,
        check_plugin: &mut PluginCheck<'_>,
    ) -> Result<Config, ConfigErrors> {
        let mut reader = reader::Reader::new(source, text);
        let (root, syntax_errors) = DeTable::parse_recoverable(text);
        if !syntax_errors.is_empty() {
            // What the parser recovered is a guess; checking it would report
            // phantom problems, so the syntax errors stand alone.
            for e in syntax_errors {
                reader.error(e.span(), "", e.message());
            }
            return Err(ConfigErrors(reader.into_errors()));
        }
        let base_dir = source.parent().unwrap_or(Path::new(""));
        let config = sections::read(&mut reader, &root, base_dir, env);
        for (name, plugin) in &config.plugins {
            if let Err(message) = check_plugin(name, plugin) {
                let key = reader::join("plugins", name.as_str());
                reader.error(plugin_path_span(&root, name), &key, message);
            }
        }
        let errors = reader.into_errors();
        if errors.is_empty() {
            Ok(Config {
                source: Some(source.to_path_buf()),
                ..config
            })
        } else {
            Err(ConfigErrors(errors))
        }
    }
}

/// Where `plugins.NAME.path` is written in the document.
fn plugin_path_span(root: &Spanned<DeTable<'_>>, name: &PluginName) -> Option<Range<usize>> {
    fn table<'t, 'i>(node: &'t reader::Node<'i>) -> Option<&'t DeTable<'i>> {
        match node.get_ref() {
            DeValue::Table(table) => Some(table),
            _ => None,
        }
    }
    let plugins = table(root.get_ref().get("plugins")?)?;
    let plugin = table(plugins.get(name.as_str())?)?;
    Some(plugin.get("path")?.span())
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)),
            max_event_bytes: 1 << 20,
            max_subscriptions_per_tenant: 10_000,
            max_headers_per_subscription: 64,
            log_format: LogFormat::Human,
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 4096,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            backend: Backend::Sled,
            path: PathBuf::from("hookshape-data"),
            sync: Durability::Full,
            max_size: 20 << 30,
            min_free: 1 << 30,
        }
    }
}

impl Default for RetentionConfig {
    fn default() -> Self {
        let days = |d: u64| Duration::from_secs(d * 86_400);
        RetentionConfig {
            events: days(30),
            attempts: days(30),
            sweep_interval: Duration::from_secs(5 * 60),
        }
    }
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        let minutes = |m: u64| Duration::from_secs(m * 60);
        let hours = |h: u64| Duration::from_secs(h * 3600);
        DeliveryConfig {
            timeout: Duration::from_secs(10),
            retry_schedule: vec![
                Duration::from_secs(5),
                minutes(5),
                minutes(30),
                hours(2),
                hours(5),
                hours(10),
                hours(10),
            ],
            allow_private_targets: false,
            max_in_flight: 256,
            max_in_flight_per_subscription: 64,
            disable_after_failures: 50,
            extra_ca_file: None,
            secret_rotation_overlap: hours(24),
        }
    }
}

impl Role {
    /// The role's name as the config file spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Publisher => "publisher",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for TokenConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenConfig")
            .field("token", &"<redacted>")
            .field("role", &self.role)
            .field("tenants", &self.tenants)
            .finish()
    }
}

impl fmt::Debug for SubscriptionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubscriptionConfig")
            .field("id", &self.id)
            .field("tenant", &self.tenant)
            .field("url", &self.url)
            .field("events", &self.events)
            .field("description", &self.description)
            .field("plugin", &self.plugin)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("headers", &self.headers)
            .field("enabled", &self.enabled)
            .field("ordered", &self.ordered)
            .field("plugin_config", &self.plugin_config)
            .finish()
    }
}

impl ConfigError {
    /// `FILE:LINE: KEY: MESSAGE`, leaving out the parts that are unknown.
    fn render(&self) -> String {
        let mut out = self.file.display().to_string();
        if let Some(line) = self.line {
            out.push_str(&format!(":{line}"));
        }
        if !self.key.is_empty() {
            out.push_str(&format!(": {}", self.key));
        }
        out.push_str(&format!(": {}", self.message));
        out
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}
