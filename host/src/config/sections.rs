//! The meaning of each section of the file: which keys it has, their types,
//! defaults and rules, turning the spanned document into a [`Config`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use hookshape_signing::Secret;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::reader::{
    self, Node, Reader, Section, boolean, duration, expected, size, string, unsigned,
};
use super::{
    AuthConfig, Config, DeliveryConfig, LogFormat, PluginConfig, RetentionConfig, Role,
    ServerConfig, StorageConfig, SubscriptionConfig, TenantScope, TokenConfig, non_zero,
    plugin_memory,
};
use crate::headers::{HeaderError, HeaderSet};
use crate::ids::{InvalidId, PluginName, SubscriptionId, Tenant};
use crate::plugin::PluginLimits;
use crate::store::postgres::{DatabaseUrl, Settings as PgSettings};
use crate::store::{Backend, Durability};

type Env<'e> = &'e dyn Fn(&str) -> Option<String>;

const ROOT_KEYS: &[&str] = &[
    "server",
    "storage",
    "retention",
    "auth",
    "delivery",
    "plugins",
    "subscriptions",
];
const SERVER_KEYS: &[&str] = &[
    "listen",
    "max_event_bytes",
    "max_subscriptions_per_tenant",
    "max_headers_per_subscription",
    "log_format",
    "header_read_timeout",
    "request_timeout",
    "idle_timeout",
    "max_connections",
];
const STORAGE_KEYS: &[&str] = &[
    "backend", "path", "url", "lease", "sync", "max_size", "min_free",
];
const RETENTION_KEYS: &[&str] = &["events", "attempts", "sweep_interval"];
const AUTH_KEYS: &[&str] = &["open", "tokens"];
const TOKEN_KEYS: &[&str] = &["token", "role", "tenants"];
const DELIVERY_KEYS: &[&str] = &[
    "timeout",
    "retry_schedule",
    "allow_private_targets",
    "max_in_flight",
    "max_in_flight_per_subscription",
    "disable_after_failures",
    "extra_ca_file",
    "secret_rotation_overlap",
];
const PLUGIN_KEYS: &[&str] = &["path", "timeout", "memory"];
const SUBSCRIPTION_KEYS: &[&str] = &[
    "id",
    "tenant",
    "url",
    "events",
    "description",
    "plugin",
    "secret",
    "headers",
    "enabled",
    "ordered",
    "plugin_config",
];

/// Reads the whole document; problems go to `r`, and the parts they affect
/// keep their defaults.
pub(super) fn read(
    r: &mut Reader<'_>,
    root: &Spanned<DeTable<'_>>,
    base_dir: &Path,
    env: Env<'_>,
) -> Config {
    let root = Section::root(root);
    r.deny_unknown(&root, ROOT_KEYS);
    let server = r
        .subtable(&root, "server", SERVER_KEYS)
        .map(|s| read_server(r, &s))
        .unwrap_or_default();
    let storage = r
        .subtable(&root, "storage", STORAGE_KEYS)
        .map(|s| read_storage(r, &s, env))
        .unwrap_or_default();
    let retention = r
        .subtable(&root, "retention", RETENTION_KEYS)
        .map(|s| read_retention(r, &s))
        .unwrap_or_default();
    let auth = r
        .subtable(&root, "auth", AUTH_KEYS)
        .map(|s| read_auth(r, &s, env, server.listen))
        .unwrap_or_default();
    let delivery = r
        .subtable(&root, "delivery", DELIVERY_KEYS)
        .map(|s| read_delivery(r, &s, base_dir))
        .unwrap_or_default();
    let (plugins, declared_plugins) = read_plugins(r, &root, base_dir);
    let subscriptions = read_subscriptions(r, &root, &declared_plugins, env);
    Config {
        server,
        storage,
        retention,
        auth,
        delivery,
        plugins,
        subscriptions,
        source: None,
    }
}

fn read_server(r: &mut Reader<'_>, s: &Section<'_, '_>) -> ServerConfig {
    let defaults = ServerConfig::default();
    ServerConfig {
        listen: r
            .optional(s, "listen", listen_address)
            .unwrap_or(defaults.listen),
        max_event_bytes: r
            .optional(s, "max_event_bytes", |v| {
                positive(size(v)?).and_then(to_usize)
            })
            .unwrap_or(defaults.max_event_bytes),
        max_subscriptions_per_tenant: r
            .optional(s, "max_subscriptions_per_tenant", |v| {
                positive(unsigned(v)?).and_then(to_usize)
            })
            .unwrap_or(defaults.max_subscriptions_per_tenant),
        max_headers_per_subscription: r
            .optional(s, "max_headers_per_subscription", |v| {
                unsigned(v).and_then(to_usize)
            })
            .unwrap_or(defaults.max_headers_per_subscription),
        log_format: r
            .optional(s, "log_format", log_format)
            .unwrap_or(defaults.log_format),
        header_read_timeout: r
            .optional(s, "header_read_timeout", non_zero_duration)
            .unwrap_or(defaults.header_read_timeout),
        request_timeout: r
            .optional(s, "request_timeout", non_zero_duration)
            .unwrap_or(defaults.request_timeout),
        idle_timeout: r
            .optional(s, "idle_timeout", non_zero_duration)
            .unwrap_or(defaults.idle_timeout),
        max_connections: r
            .optional(s, "max_connections", |v| {
                positive(unsigned(v)?)
                    .and_then(to_usize)
                    .and_then(connection_limit)
            })
            .unwrap_or(defaults.max_connections),
    }
}

/// `[storage]`: `url` and `lease` belong to the postgres backend, and it
/// needs its `url`.
fn read_storage(r: &mut Reader<'_>, s: &Section<'_, '_>, env: Env<'_>) -> StorageConfig {
    let defaults = StorageConfig::default();
    let postgres = r.optional(s, "backend", backend_name).unwrap_or(false);
    let url = r.optional(s, "url", |v| database_url(v, env));
    let lease = r.optional(s, "lease", non_zero_duration);
    let backend = if postgres {
        match url {
            Some(url) => Backend::Postgres(PgSettings {
                url,
                lease: lease.unwrap_or(PgSettings::DEFAULT_LEASE),
            }),
            None => {
                if s.get("url").is_none() {
                    r.error(
                        None,
                        &s.path("url"),
                        r#"backend = "postgres" needs the database's url, e.g. url = "env:HOOKSHAPE_DATABASE_URL""#,
                    );
                }
                Backend::Sled
            }
        }
    } else {
        for key in ["url", "lease"] {
            if let Some(node) = s.get(key) {
                r.error(
                    Some(node.span()),
                    &s.path(key),
                    r#"is only read with backend = "postgres""#,
                );
            }
        }
        Backend::Sled
    };
    StorageConfig {
        backend,
        path: r
            .optional(s, "path", |v| non_empty_path(v).map(PathBuf::from))
            .unwrap_or(defaults.path),
        sync: r.optional(s, "sync", durability).unwrap_or(defaults.sync),
        max_size: r
            .optional(s, "max_size", |v| positive(size(v)?))
            .unwrap_or(defaults.max_size),
        min_free: r.optional(s, "min_free", size).unwrap_or(defaults.min_free),
    }
}

fn read_retention(r: &mut Reader<'_>, s: &Section<'_, '_>) -> RetentionConfig {
    let defaults = RetentionConfig::default();
    RetentionConfig {
        events: r
            .optional(s, "events", non_zero_duration)
            .unwrap_or(defaults.events),
        attempts: r
            .optional(s, "attempts", non_zero_duration)
            .unwrap_or(defaults.attempts),
        sweep_interval: r
            .optional(s, "sweep_interval", non_zero_duration)
            .unwrap_or(defaults.sweep_interval),
    }
}

/// `true` for `"postgres"`, `false` for `"sled"`.
fn backend_name(value: &DeValue<'_>) -> Result<bool, String> {
    match string(value)? {
        "sled" => Ok(false),
        "postgres" => Ok(true),
        other => Err(format!(
            r#"unknown backend {other:?}; expected "sled" (embedded) or "postgres""#
        )),
    }
}

/// A `postgres://` URL, literal or `env:VAR`.
fn database_url(value: &DeValue<'_>, env: Env<'_>) -> Result<DatabaseUrl, String> {
    let raw = string(value)?;
    let url = resolve(raw, env)?;
    DatabaseUrl::parse(&url).map_err(|e| format!("{}{e}", origin(raw)))
}

fn durability(value: &DeValue<'_>) -> Result<Durability, String> {
    match string(value)? {
        "full" => Ok(Durability::Full),
        "os" => Ok(Durability::Os),
        other => Err(format!(
            r#"unknown sync mode {other:?}; expected "full" (fsync before acknowledging) or "os""#
        )),
    }
}

fn read_auth(
    r: &mut Reader<'_>,
    s: &Section<'_, '_>,
    env: Env<'_>,
    listen: std::net::SocketAddr,
) -> AuthConfig {
    let open = r.optional(s, "open", boolean).unwrap_or(false);
    let mut tokens = Vec::new();
    // Two entries with the same token would make its role ambiguous; the
    // value is a secret, so the message names the first entry instead.
    let mut seen: HashMap<String, String> = HashMap::new();
    for t in r.array_of_tables(s, "tokens", TOKEN_KEYS) {
        let token = r.required(&t, "token", |v| bearer_token(v, env));
        let role = r.required(&t, "role", role);
        let tenants = r.list(&t, "tenants", true, tenant_scope);
        if let (Some(tenants), Some(node)) = (&tenants, t.get("tenants"))
            && tenants.is_empty()
        {
            r.error(
                Some(node.span()),
                &t.path("tenants"),
                r#"a token must reach at least one tenant; ["*"] means all"#,
            );
        }
        if let Some(token) = &token
            && let Some(first) = seen.insert(token.clone(), t.path("token"))
        {
            let span = t.get("token").map(Spanned::span);
            r.error(
                span,
                &t.path("token"),
                format!("the same token is already given in {first}"),
            );
        }
        if let (Some(token), Some(role), Some(tenants)) = (token, role, tenants) {
            tokens.push(TokenConfig {
                token,
                role,
                tenants,
            });
        }
    }
    if open {
        let span = s.get("open").map(Spanned::span);
        if !listen.ip().is_loopback() {
            r.error(
                span.clone(),
                &s.path("open"),
                format!(
                    "open access is allowed on a loopback address only, and server.listen is {listen}: add [[auth.tokens]] instead"
                ),
            );
        }
        if !tokens.is_empty() {
            r.error(
                span,
                &s.path("open"),
                "open = true lets every request in, so the [[auth.tokens]] would be ignored: keep one or the other",
            );
        }
    }
    AuthConfig { open, tokens }
}

fn read_delivery(r: &mut Reader<'_>, s: &Section<'_, '_>, base_dir: &Path) -> DeliveryConfig {
    let defaults = DeliveryConfig::default();
    DeliveryConfig {
        timeout: r
            .optional(s, "timeout", non_zero_duration)
            .unwrap_or(defaults.timeout),
        retry_schedule: r
            .list(s, "retry_schedule", false, duration)
            .unwrap_or(defaults.retry_schedule),
        allow_private_targets: r
            .optional(s, "allow_private_targets", boolean)
            .unwrap_or(defaults.allow_private_targets),
        max_in_flight: r
            .optional(s, "max_in_flight", |v| {
                positive(unsigned(v)?).and_then(to_usize)
            })
            .unwrap_or(defaults.max_in_flight),
        max_in_flight_per_subscription: r
            .optional(s, "max_in_flight_per_subscription", |v| {
                positive(unsigned(v)?).and_then(to_usize)
            })
            .unwrap_or(defaults.max_in_flight_per_subscription),
        disable_after_failures: r
            .optional(s, "disable_after_failures", |v| {
                u32::try_from(unsigned(v)?).map_err(|_| format!("must be at most {}", u32::MAX))
            })
            .unwrap_or(defaults.disable_after_failures),
        extra_ca_file: r.optional(
            s,
            "extra_ca_file",
            |v| Ok(base_dir.join(non_empty_path(v)?)),
        ),
        secret_rotation_overlap: r
            .optional(s, "secret_rotation_overlap", duration)
            .unwrap_or(defaults.secret_rotation_overlap),
    }
}

/// The plugins that are fully valid, and the names of all declared ones (so
/// a subscription naming a declared-but-broken plugin is not also blamed).
fn read_plugins(
    r: &mut Reader<'_>,
    root: &Section<'_, '_>,
    base_dir: &Path,
) -> (BTreeMap<PluginName, PluginConfig>, BTreeSet<String>) {
    let mut plugins = BTreeMap::new();
    let mut declared = BTreeSet::new();
    let Some(section) = r.map(root, "plugins") else {
        return (plugins, declared);
    };
    for (key, node) in section.entries() {
        declared.insert(key.get_ref().to_string());
        let path = section.path(key.get_ref());
        let name = PluginName::from_str(key.get_ref())
            .map_err(|e| r.error(Some(key.span()), &path, e.to_string()))
            .ok();
        let Some(p) = r.table(node, path, PLUGIN_KEYS) else {
            continue;
        };
        let file = r.required(&p, "path", |v| Ok(base_dir.join(non_empty_path(v)?)));
        let timeout = r
            .optional(&p, "timeout", non_zero_duration)
            .unwrap_or(PluginLimits::DEFAULT.timeout);
        let memory = r
            .optional(&p, "memory", |v| plugin_memory(size(v)?))
            .unwrap_or(PluginLimits::DEFAULT.memory_bytes);
        if let (Some(name), Some(path)) = (name, file) {
            plugins.insert(
                name,
                PluginConfig {
                    path,
                    timeout,
                    memory,
                },
            );
        }
    }
    (plugins, declared)
}

fn read_subscriptions(
    r: &mut Reader<'_>,
    root: &Section<'_, '_>,
    declared_plugins: &BTreeSet<String>,
    env: Env<'_>,
) -> Vec<SubscriptionConfig> {
    let mut subscriptions = Vec::new();
    let mut first_line: HashMap<(Tenant, SubscriptionId), usize> = HashMap::new();
    for s in r.array_of_tables(root, "subscriptions", SUBSCRIPTION_KEYS) {
        let id = r.required(&s, "id", parse_name::<SubscriptionId>);
        let tenant = r.required(&s, "tenant", parse_name::<Tenant>);
        let url = r.required(&s, "url", target_url);
        let events = r.list(&s, "events", true, event_pattern);
        if let (Some(events), Some(node)) = (&events, s.get("events"))
            && events.is_empty()
        {
            r.error(
                Some(node.span()),
                &s.path("events"),
                r#"must list at least one event type or pattern; "*" means all"#,
            );
        }
        let description = r.optional(&s, "description", |v| string(v).map(str::to_owned));
        let plugin = r.optional(&s, "plugin", |v| {
            let name = parse_name::<PluginName>(v)?;
            if declared_plugins.contains(name.as_str()) {
                Ok(name)
            } else {
                Err(format!(
                    "plugin \"{name}\" is not declared; add a [plugins.{name}] table"
                ))
            }
        });
        let secret = r.optional(&s, "secret", |v| webhook_secret(v, env));
        let headers = s
            .get("headers")
            .map(|node| read_headers(r, node, &s.path("headers")))
            .unwrap_or_default();
        let enabled = r.optional(&s, "enabled", boolean).unwrap_or(true);
        let ordered = r.optional(&s, "ordered", boolean).unwrap_or(false);
        let plugin_config = match s.get("plugin_config") {
            None => serde_json::Value::Object(serde_json::Map::new()),
            Some(node) => {
                let path = s.path("plugin_config");
                if !node.get_ref().is_table() {
                    r.error(
                        Some(node.span()),
                        &path,
                        expected("a table", node.get_ref()),
                    );
                } else if s.get("plugin").is_none() {
                    r.error(
                        Some(node.span()),
                        &path,
                        "is set but `plugin` is not; name the plugin it is for",
                    );
                }
                to_json(r, node, &path)
            }
        };
        if let (Some(id), Some(tenant), Some(node)) = (&id, &tenant, s.get("id")) {
            let line = r.line_of(node.span().start);
            if let Some(first) = first_line.insert((tenant.clone(), id.clone()), line) {
                r.error(
                    Some(node.span()),
                    &s.path("id"),
                    format!("duplicate subscription id \"{id}\" in tenant \"{tenant}\"; the first is on line {first}"),
                );
            }
        }
        if let (Some(id), Some(tenant), Some(url), Some(events)) = (id, tenant, url, events) {
            subscriptions.push(SubscriptionConfig {
                id,
                tenant,
                url,
                events,
                description,
                plugin,
                secret,
                headers,
                enabled,
                ordered,
                plugin_config,
            });
        }
    }
    subscriptions
}

/// `headers = { "X-Team" = "data" }`: every header [`HeaderSet`] refuses is
/// reported at its key (or at its value, when the value is the problem).
fn read_headers(r: &mut Reader<'_>, node: &Node<'_>, path: &str) -> HeaderSet {
    let mut headers = HeaderSet::new();
    let DeValue::Table(table) = node.get_ref() else {
        r.error(
            Some(node.span()),
            path,
            expected("a table of header names to values", node.get_ref()),
        );
        return headers;
    };
    for (key, value) in table.iter() {
        let name = key.get_ref().as_ref();
        let key_path = reader::join(path, name);
        let text = match string(value.get_ref()) {
            Ok(text) => text,
            Err(message) => {
                r.error(Some(value.span()), &key_path, message);
                continue;
            }
        };
        if let Err(e) = headers.insert(name, text) {
            let span = match e {
                HeaderError::InvalidValue(_) => value.span(),
                _ => key.span(),
            };
            r.error(Some(span), &key_path, header_problem(&e));
        }
    }
    headers
}

/// A refused header in the file's words: the key path already names it.
fn header_problem(e: &HeaderError) -> String {
    match e {
        HeaderError::InvalidName(name) => format!("{name:?} is not a valid HTTP header name"),
        HeaderError::Reserved(_) => "hookshape sets this header itself; webhook-*, content-length, host and transfer-encoding are reserved".to_owned(),
        HeaderError::Duplicate { .. } => e.to_string(),
        HeaderError::InvalidValue(_) => {
            "not a valid HTTP header value: use visible ASCII, spaces and tabs".to_owned()
        }
    }
}

/// A TOML value as JSON, for `plugin_config`. Datetimes become their TOML
/// text; floats JSON cannot hold (nan, inf) are reported.
fn to_json(r: &mut Reader<'_>, node: &Node<'_>, path: &str) -> serde_json::Value {
    use serde_json::Value;
    match node.get_ref() {
        DeValue::String(s) => Value::String(s.to_string()),
        DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
            .map(Value::from)
            .unwrap_or_else(|_| {
                r.error(
                    Some(node.span()),
                    path,
                    format!("{i} does not fit in 64 bits"),
                );
                Value::Null
            }),
        DeValue::Float(f) => f
            .as_str()
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or_else(|| {
                r.error(
                    Some(node.span()),
                    path,
                    format!("{f} cannot be represented in JSON"),
                );
                Value::Null
            }),
        DeValue::Boolean(b) => Value::Bool(*b),
        DeValue::Datetime(d) => Value::String(d.to_string()),
        DeValue::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| to_json(r, item, &format!("{path}[{i}]")))
            .collect(),
        DeValue::Table(table) => table
            .iter()
            .map(|(k, v)| {
                (
                    k.get_ref().to_string(),
                    to_json(r, v, &reader::join(path, k.get_ref())),
                )
            })
            .collect::<serde_json::Map<_, _>>()
            .into(),
    }
}

/// A validated name type (tenant, subscription id, plugin name).
fn parse_name<T: FromStr<Err = InvalidId>>(value: &DeValue<'_>) -> Result<T, String> {
    string(value)?.parse().map_err(|e: InvalidId| e.to_string())
}

fn listen_address(value: &DeValue<'_>) -> Result<SocketAddr, String> {
    let s = string(value)?;
    s.parse().map_err(|_| {
        format!(r#"{s:?} is not an IP address and port such as "127.0.0.1:8080" or "[::1]:8080""#)
    })
}

/// Spelled as on the command line (`--log-format`).
fn log_format(value: &DeValue<'_>) -> Result<LogFormat, String> {
    use clap::ValueEnum;
    let s = string(value)?;
    LogFormat::from_str(s, false).map_err(|_| {
        let names: Vec<String> = LogFormat::value_variants()
            .iter()
            .filter_map(|v| Some(format!("{:?}", v.to_possible_value()?.get_name())))
            .collect();
        format!("unknown log format {s:?}; expected {}", names.join(" or "))
    })
}

fn role(value: &DeValue<'_>) -> Result<Role, String> {
    match string(value)? {
        "admin" => Ok(Role::Admin),
        "publisher" => Ok(Role::Publisher),
        other => Err(format!(
            r#"unknown role {other:?}; expected "admin" or "publisher""#
        )),
    }
}

fn tenant_scope(value: &DeValue<'_>) -> Result<TenantScope, String> {
    match string(value)? {
        "*" => Ok(TenantScope::Any),
        name => name
            .parse()
            .map(TenantScope::Tenant)
            .map_err(|e: InvalidId| {
                format!(
                    r#"{name:?} is neither "*" (all tenants) nor a tenant name: {}"#,
                    e.why
                )
            }),
    }
}

/// An `http` or `https` URL with a host.
fn target_url(value: &DeValue<'_>) -> Result<String, String> {
    let s = string(value)?;
    let url = url::Url::parse(s).map_err(|e| format!("{s:?} is not a valid URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{s:?} must be an http:// or https:// URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{s:?} has no host"));
    }
    Ok(s.to_owned())
}

/// An event type, or a pattern whose only `*` is its last character.
fn event_pattern(value: &DeValue<'_>) -> Result<String, String> {
    let s = string(value)?;
    if s.is_empty() || s.chars().any(char::is_whitespace) {
        return Err(format!(
            "{s:?} is not an event type: it must be non-empty, without spaces"
        ));
    }
    if s.trim_end_matches('*').contains('*') || s.ends_with("**") {
        return Err(format!(
            r#"{s:?}: "*" may only end a pattern, as in "project.*" or "*""#
        ));
    }
    Ok(s.to_owned())
}

/// A literal or `env:VAR`, with the variable read through `env`.
fn resolve(s: &str, env: Env<'_>) -> Result<String, String> {
    let Some(var) = s.strip_prefix("env:") else {
        return Ok(s.to_owned());
    };
    if var.is_empty() {
        return Err("env: needs a variable name, as in env:HOOKSHAPE_ADMIN_TOKEN".to_owned());
    }
    match env(var) {
        None => Err(format!("environment variable {var} is not set")),
        Some(value) if value.is_empty() => Err(format!("environment variable {var} is empty")),
        Some(value) => Ok(value),
    }
}

/// Tokens travel in `Authorization: Bearer TOKEN`, so they must be a
/// single run of visible ASCII.
fn bearer_token(value: &DeValue<'_>, env: Env<'_>) -> Result<String, String> {
    let raw = string(value)?;
    let token = resolve(raw, env)?;
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "{}a token must be non-empty visible ASCII without spaces",
            origin(raw)
        ));
    }
    Ok(token)
}

fn webhook_secret(value: &DeValue<'_>, env: Env<'_>) -> Result<String, String> {
    let raw = string(value)?;
    let secret = resolve(raw, env)?;
    Secret::parse(&secret).map_err(|e| {
        format!(
            r#"{}{e}; a secret is "whsec_" followed by the standard base64 of 24 to 64 bytes (leave it out to have one generated)"#,
            origin(raw)
        )
    })?;
    Ok(secret)
}

/// "from env:VAR: " when the value came from the environment, so a bad
/// value is traced to its variable; the value itself is never repeated.
fn origin(raw: &str) -> String {
    if raw.starts_with("env:") {
        format!("{raw}: ")
    } else {
        String::new()
    }
}

fn non_empty_path<'v>(value: &'v DeValue<'_>) -> Result<&'v str, String> {
    match string(value)? {
        "" => Err("must not be empty".to_owned()),
        s => Ok(s),
    }
}

fn non_zero_duration(value: &DeValue<'_>) -> Result<std::time::Duration, String> {
    non_zero(duration(value)?)
}

fn positive(n: u64) -> Result<u64, String> {
    if n == 0 {
        return Err("must be at least 1".to_owned());
    }
    Ok(n)
}

/// The connection limit is a semaphore's permit count, which has a ceiling.
fn connection_limit(n: usize) -> Result<usize, String> {
    let max = tokio::sync::Semaphore::MAX_PERMITS;
    if n > max {
        return Err(format!("must be at most {max}"));
    }
    Ok(n)
}

fn to_usize(n: u64) -> Result<usize, String> {
    usize::try_from(n).map_err(|_| format!("{n} is too large for this machine"))
}
