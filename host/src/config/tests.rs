use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use super::*;
use crate::plugin::PluginLimits;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// The contract's example, verbatim.
const CONTRACT_EXAMPLE: &str = r#"
[server]
listen = "127.0.0.1:8080"
max_event_bytes = 1048576          # larger event bodies get 413

[storage]
path = "hookshape-data"            # sled directory

[[auth.tokens]]                    # no tokens: a first-start admin token
token = "env:HOOKSHAPE_ADMIN_TOKEN" # a literal or env:VAR
role = "admin"                     # admin: everything; publisher: POST events only
tenants = ["*"]                    # tenants this token may touch

[delivery]
timeout = "10s"                    # per HTTP attempt
retry_schedule = ["5s", "5m", "30m", "2h", "5h", "10h", "10h"]  # waits before retries 1..n
allow_private_targets = false      # refuse loopback, private, link-local and metadata addresses
max_in_flight = 256                # concurrent deliveries, all subscriptions together
disable_after_failures = 50        # consecutive finally-failed deliveries that disable a subscription (0: never)

[plugins.slack-threshold]          # a named plugin: a WIT component file
path = "plugins/slack_threshold.wasm"
timeout = "100ms"                  # per transform call
memory = "32MiB"                   # linear memory cap

[[subscriptions]]                  # declared by the admin; reconciled into sled at start
id = "mode-revenue-alert"
tenant = "analyst-studio"
url = "https://hooks.slack.com/services/T000/B000/XXXX"
events = ["report_run_completed"]  # exact types or patterns: "project.*", "*"
plugin = "slack-threshold"         # optional
secret = "env:SLACK_HOOK_SECRET"   # optional; generated (whsec_...) when absent
headers = { "X-Team" = "data" }
enabled = true
ordered = false                    # true: one at a time, in ingest order
[subscriptions.plugin_config]      # any TOML table; handed to the plugin as JSON
pointer = "/rows/0/revenue"
op = ">"
threshold = 100000
"#;

fn test_env(name: &str) -> Option<String> {
    match name {
        "HOOKSHAPE_ADMIN_TOKEN" => Some("admin-token-123".to_owned()),
        "SLACK_HOOK_SECRET" => Some(SECRET.to_owned()),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

fn source() -> &'static Path {
    Path::new("/etc/hookshape/hookshape.toml")
}

fn parse(text: &str) -> Result<Config, ConfigErrors> {
    Config::parse(text, source(), &test_env)
}

fn parse_ok(text: &str) -> Config {
    parse(text).unwrap_or_else(|e| panic!("expected a valid config, got:\n{e}"))
}

fn errors(text: &str) -> Vec<ConfigError> {
    match parse(text) {
        Ok(config) => panic!("expected errors, got {config:?}"),
        Err(ConfigErrors(errors)) => errors,
    }
}

/// Asserts the one error of `text` is at `line` and `key` and mentions `needle`.
fn assert_single_error(text: &str, line: usize, key: &str, needle: &str) {
    let errors = errors(text);
    assert_eq!(errors.len(), 1, "expected one error, got {errors:#?}");
    let e = &errors[0];
    assert_eq!((e.line, e.key.as_str()), (Some(line), key), "{e}");
    assert!(
        e.message.contains(needle),
        "{:?} does not mention {needle:?}",
        e.message
    );
    assert_eq!(e.file, source());
}

/// A valid subscription with `extra` lines added; its `[[subscriptions]]` is line 1.
fn subscription(extra: &str) -> String {
    format!(
        "[[subscriptions]]\nid = \"s1\"\ntenant = \"acme\"\nurl = \"https://example.com/hook\"\nevents = [\"*\"]\n{extra}"
    )
}

#[test]
fn the_contract_example_parses_to_its_values() {
    let config = parse_ok(CONTRACT_EXAMPLE);

    assert_eq!(config.source.as_deref(), Some(source()));
    assert_eq!(
        config.server,
        ServerConfig {
            listen: "127.0.0.1:8080".parse().unwrap(),
            max_event_bytes: 1_048_576,
            log_format: LogFormat::Human,
            ..ServerConfig::default()
        }
    );
    assert_eq!(config.storage.path, PathBuf::from("hookshape-data"));
    assert_eq!(
        config.auth.tokens,
        vec![TokenConfig {
            token: "admin-token-123".to_owned(),
            role: Role::Admin,
            tenants: vec![TenantScope::Any],
        }]
    );
    let h = |n: u64| Duration::from_secs(n * 3600);
    assert_eq!(
        config.delivery,
        DeliveryConfig {
            timeout: Duration::from_secs(10),
            retry_schedule: vec![
                Duration::from_secs(5),
                Duration::from_secs(300),
                Duration::from_secs(1800),
                h(2),
                h(5),
                h(10),
                h(10),
            ],
            allow_private_targets: false,
            max_in_flight: 256,
            max_in_flight_per_subscription: 64,
            disable_after_failures: 50,
            extra_ca_file: None,
            secret_rotation_overlap: h(24),
        }
    );
    let plugin: PluginName = "slack-threshold".parse().unwrap();
    assert_eq!(
        config.plugins,
        BTreeMap::from([(
            plugin.clone(),
            PluginConfig {
                path: PathBuf::from("/etc/hookshape/plugins/slack_threshold.wasm"),
                timeout: Duration::from_millis(100),
                memory: 32 * 1024 * 1024,
            }
        )])
    );
    assert_eq!(
        config.subscriptions,
        vec![SubscriptionConfig {
            id: "mode-revenue-alert".parse().unwrap(),
            tenant: "analyst-studio".parse().unwrap(),
            url: "https://hooks.slack.com/services/T000/B000/XXXX".to_owned(),
            events: vec!["report_run_completed".to_owned()],
            description: None,
            plugin: Some(plugin),
            secret: Some(SECRET.to_owned()),
            headers: HeaderSet::from_pairs([("X-Team", "data")]).unwrap(),
            enabled: true,
            ordered: false,
            plugin_config: json!({"pointer": "/rows/0/revenue", "op": ">", "threshold": 100000}),
        }]
    );
}

#[test]
fn the_contract_example_spells_out_the_defaults() {
    let mut example = parse_ok(CONTRACT_EXAMPLE);
    let defaults = Config::default();
    assert_eq!(example.server, defaults.server);
    assert_eq!(example.storage, defaults.storage);
    assert_eq!(example.delivery, defaults.delivery);
    let plugin = example.plugins.pop_first().unwrap().1;
    assert_eq!(plugin.timeout, PluginLimits::DEFAULT.timeout);
    assert_eq!(plugin.memory, PluginLimits::DEFAULT.memory_bytes);
}

#[test]
fn an_empty_file_is_the_embedded_defaults() {
    let config = parse_ok("");
    assert_eq!(
        config,
        Config {
            source: Some(source().to_path_buf()),
            ..Config::default()
        }
    );
    let defaults = Config::default();
    assert_eq!(
        defaults.server.listen,
        SocketAddr::from(([127, 0, 0, 1], 8080))
    );
    assert_eq!(defaults.server.max_event_bytes, 1 << 20);
    assert_eq!(defaults.server.log_format, LogFormat::Human);
    assert_eq!(defaults.storage.path, PathBuf::from("hookshape-data"));
    assert!(defaults.auth.tokens.is_empty());
    assert_eq!(defaults.delivery.retry_schedule.len(), 7);
    assert!(!defaults.delivery.allow_private_targets);
    assert!(defaults.plugins.is_empty() && defaults.subscriptions.is_empty());
    assert_eq!(defaults.source, None);
}

#[test]
fn optional_subscription_keys_have_defaults() {
    let config = parse_ok(&subscription(""));
    let s = &config.subscriptions[0];
    assert!(s.enabled);
    assert!(!s.ordered);
    assert_eq!(s.plugin_config, json!({}));
    assert_eq!(
        (&s.plugin, &s.secret, &s.description),
        (&None, &None, &None)
    );
    assert!(s.headers.is_empty());
}

#[test]
fn extensions_and_alternative_spellings_parse() {
    let config = parse_ok(
        r#"
[server]
listen = "[::1]:9000"
max_event_bytes = "2MiB"
log_format = "json"
[delivery]
retry_schedule = []
extra_ca_file = "certs/internal.pem"
[plugins.p]
path = "/opt/p.wasm"
memory = 1048576
"#,
    );
    assert_eq!(config.server.listen, "[::1]:9000".parse().unwrap());
    assert_eq!(config.server.max_event_bytes, 2 << 20);
    assert_eq!(config.server.log_format, LogFormat::Json);
    assert!(config.delivery.retry_schedule.is_empty());
    assert_eq!(
        config.delivery.extra_ca_file,
        Some(PathBuf::from("/etc/hookshape/certs/internal.pem"))
    );
    let plugin = &config.plugins[&"p".parse::<PluginName>().unwrap()];
    assert_eq!(plugin.path, PathBuf::from("/opt/p.wasm"));
    assert_eq!(plugin.memory, 1 << 20);
    assert_eq!(plugin.timeout, PluginLimits::DEFAULT.timeout);
}

#[test]
fn plugin_paths_resolve_against_a_relative_config_directory() {
    let config = Config::parse(
        "[plugins.p]\npath = \"plugins/p.wasm\"\n",
        Path::new("hookshape.toml"),
        &test_env,
    )
    .unwrap();
    assert_eq!(
        config.plugins.values().next().unwrap().path,
        PathBuf::from("plugins/p.wasm")
    );
}

#[test]
fn tokens_take_literals_env_vars_and_tenant_lists() {
    let config = parse_ok(
        r#"
[[auth.tokens]]
token = "literal-token"
role = "publisher"
tenants = ["acme", "globex"]
[[auth.tokens]]
token = "env:HOOKSHAPE_ADMIN_TOKEN"
role = "admin"
tenants = ["*"]
"#,
    );
    let tokens = &config.auth.tokens;
    assert_eq!(tokens[0].token, "literal-token");
    assert_eq!(tokens[0].role, Role::Publisher);
    assert_eq!(
        tokens[0].tenants,
        vec![
            TenantScope::Tenant("acme".parse().unwrap()),
            TenantScope::Tenant("globex".parse().unwrap())
        ]
    );
    assert_eq!(tokens[1].token, "admin-token-123");
}

#[test]
fn secrets_take_literals_and_env_vars() {
    let literal = parse_ok(&subscription(&format!("secret = \"{SECRET}\"\n")));
    assert_eq!(literal.subscriptions[0].secret.as_deref(), Some(SECRET));
    let from_env = parse_ok(&subscription("secret = \"env:SLACK_HOOK_SECRET\"\n"));
    assert_eq!(from_env.subscriptions[0].secret.as_deref(), Some(SECRET));
}

#[test]
fn env_vars_that_are_unset_or_empty_are_errors() {
    let text = r#"
[[auth.tokens]]
token = "env:NOPE"
role = "admin"
tenants = ["*"]
[[auth.tokens]]
token = "env:EMPTY"
role = "admin"
tenants = ["*"]
[[auth.tokens]]
token = "env:"
role = "admin"
tenants = ["*"]
"#;
    let errors = errors(text);
    let got: Vec<_> = errors.iter().map(|e| (e.line, e.key.as_str())).collect();
    assert_eq!(
        got,
        vec![
            (Some(3), "auth.tokens[0].token"),
            (Some(7), "auth.tokens[1].token"),
            (Some(11), "auth.tokens[2].token"),
        ]
    );
    assert!(
        errors[0]
            .message
            .contains("environment variable NOPE is not set")
    );
    assert!(
        errors[1]
            .message
            .contains("environment variable EMPTY is empty")
    );
    assert!(errors[2].message.contains("needs a variable name"));
    assert_single_error(
        &subscription("secret = \"env:MISSING_SECRET\"\n"),
        6,
        "subscriptions[0].secret",
        "MISSING_SECRET is not set",
    );
}

#[test]
fn plugin_config_becomes_json() {
    let config = parse_ok(
        r#"
[plugins.p]
path = "p.wasm"
[[subscriptions]]
id = "s1"
tenant = "acme"
url = "http://receiver.internal:8080/in"
events = ["project.*"]
plugin = "p"
[subscriptions.plugin_config]
when = 1979-05-27T07:32:00Z
day = 1979-05-27
ratio = 0.5
hex = 0xff
negative = -3
list = [1, "two", true]
nested = { deep = { x = 1 } }
"#,
    );
    assert_eq!(
        config.subscriptions[0].plugin_config,
        json!({
            "when": "1979-05-27T07:32:00Z",
            "day": "1979-05-27",
            "ratio": 0.5,
            "hex": 255,
            "negative": -3,
            "list": [1, "two", true],
            "nested": {"deep": {"x": 1}},
        })
    );
}

#[test]
fn syntax_errors_carry_their_line() {
    let errors = errors("[server]\nlisten = \"127.0.0.1:8080\"\nmax_event_bytes = = 3\n");
    assert_eq!(errors[0].line, Some(3), "{errors:?}");
    assert_eq!(errors[0].key, "");
}

#[test]
fn duplicate_toml_keys_are_syntax_errors() {
    let errors = errors("[storage]\npath = \"a\"\npath = \"b\"\n");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].line, Some(3));
}

#[test]
fn unknown_keys_are_reported_where_they_are() {
    assert_single_error(
        "[server]\nlisen = \"x\"\n",
        2,
        "server.lisen",
        "unknown key",
    );
    assert_single_error("\n[serverr]\nlisten = \"x\"\n", 2, "serverr", "unknown key");
    assert_single_error(
        "[delivery]\ntimeout = \"1s\"\nretries = 3\n",
        3,
        "delivery.retries",
        "expected one of: timeout, retry_schedule",
    );
    assert_single_error(
        &subscription("enable = false\n"),
        6,
        "subscriptions[0].enable",
        "unknown key",
    );
    assert_single_error(
        "[[auth.tokens]]\ntoken = \"t\"\nrole = \"admin\"\ntenants = [\"*\"]\nscope = 1\n",
        5,
        "auth.tokens[0].scope",
        "unknown key",
    );
    assert_single_error(
        "[plugins.p]\npath = \"p.wasm\"\nfuel = 10\n",
        3,
        "plugins.p.fuel",
        "unknown key",
    );
}

#[test]
fn wrong_types_say_what_was_expected() {
    assert_single_error(
        "[server]\nlisten = 8080\n",
        2,
        "server.listen",
        "expected a string, found an integer",
    );
    assert_single_error(
        "[delivery]\nallow_private_targets = \"no\"\n",
        2,
        "delivery.allow_private_targets",
        "expected true or false, found a string",
    );
    assert_single_error(
        "server = 1\n",
        1,
        "server",
        "expected a table, found an integer",
    );
    assert_single_error(
        "[subscriptions]\nid = \"x\"\n",
        1,
        "subscriptions",
        "[[subscriptions]]",
    );
}

#[test]
fn server_limits_default_to_the_contract_and_parse() {
    let defaults = ServerConfig::default();
    assert_eq!(defaults.header_read_timeout, Duration::from_secs(10));
    assert_eq!(defaults.request_timeout, Duration::from_secs(30));
    assert_eq!(defaults.idle_timeout, Duration::from_secs(60));
    assert_eq!(defaults.max_connections, 4096);

    let config = parse_ok(
        r#"
[server]
header_read_timeout = "1s500ms"
request_timeout = "2m"
idle_timeout = "250ms"
max_connections = 2
"#,
    );
    assert_eq!(
        config.server,
        ServerConfig {
            header_read_timeout: Duration::from_millis(1500),
            request_timeout: Duration::from_secs(120),
            idle_timeout: Duration::from_millis(250),
            max_connections: 2,
            ..defaults
        }
    );
}

#[test]
fn server_limits_are_checked() {
    assert_single_error(
        "[server]\nlisten = \"127.0.0.1:1\"\nheader_read_timeout = \"0s\"\n",
        3,
        "server.header_read_timeout",
        "longer than zero",
    );
    assert_single_error(
        "[server]\nrequest_timeout = 30\n",
        2,
        "server.request_timeout",
        "a duration such as",
    );
    assert_single_error(
        "[server]\nidle_timeout = \"1 fortnight\"\n",
        2,
        "server.idle_timeout",
        "unknown unit",
    );
    assert_single_error(
        "[server]\nmax_connections = 0\n",
        2,
        "server.max_connections",
        "at least 1",
    );
    assert_single_error(
        "[server]\nmax_connections = \"many\"\n",
        2,
        "server.max_connections",
        "a whole number",
    );
    assert_single_error(
        "\n[server]\nmax_connections = 4611686018427387904\n",
        3,
        "server.max_connections",
        "must be at most",
    );
}

#[test]
fn server_values_are_checked() {
    assert_single_error(
        "[server]\nlisten = \"localhost\"\n",
        2,
        "server.listen",
        "not an IP address and port",
    );
    assert_single_error(
        "[server]\nmax_event_bytes = 0\n",
        2,
        "server.max_event_bytes",
        "at least 1",
    );
    assert_single_error(
        "[server]\nmax_event_bytes = -5\n",
        2,
        "server.max_event_bytes",
        "must not be negative",
    );
    assert_single_error(
        "[server]\nlog_format = \"xml\"\n",
        2,
        "server.log_format",
        "\"human\" or \"json\"",
    );
    assert_single_error(
        "[storage]\npath = \"\"\n",
        2,
        "storage.path",
        "must not be empty",
    );
}

#[test]
fn delivery_values_are_checked() {
    assert_single_error(
        "[delivery]\nretry_schedule = [\"5s\", \"5 parsecs\", \"1h\"]\n",
        2,
        "delivery.retry_schedule[1]",
        "unknown unit \"parsecs\"",
    );
    assert_single_error(
        "[delivery]\ntimeout = \"5\"\n",
        2,
        "delivery.timeout",
        "has no unit",
    );
    assert_single_error(
        "[delivery]\ntimeout = \"0s\"\n",
        2,
        "delivery.timeout",
        "longer than zero",
    );
    assert_single_error(
        "[delivery]\ntimeout = 5\n",
        2,
        "delivery.timeout",
        "a duration such as",
    );
    assert_single_error(
        "[delivery]\nmax_in_flight = 0\n",
        2,
        "delivery.max_in_flight",
        "at least 1",
    );
    assert_single_error(
        "[delivery]\ndisable_after_failures = 5000000000\n",
        2,
        "delivery.disable_after_failures",
        "at most",
    );
    let config = parse_ok("[delivery]\ndisable_after_failures = 0\n");
    assert_eq!(config.delivery.disable_after_failures, 0);
}

#[test]
fn plugin_values_are_checked() {
    assert_single_error(
        "[plugins.p]\npath = \"p.wasm\"\nmemory = \"32MB2\"\n",
        3,
        "plugins.p.memory",
        "unknown unit",
    );
    assert_single_error(
        "[plugins.p]\npath = \"p.wasm\"\nmemory = \"1KiB\"\n",
        3,
        "plugins.p.memory",
        "64KiB",
    );
    assert_single_error(
        "[plugins.p]\npath = \"p.wasm\"\ntimeout = \"fast\"\n",
        3,
        "plugins.p.timeout",
        "not a duration",
    );
    assert_single_error(
        "[plugins.p]\ntimeout = \"1s\"\n",
        1,
        "plugins.p.path",
        "required",
    );
    assert_single_error(
        "[plugins.Bad_Name]\npath = \"p.wasm\"\n",
        1,
        "plugins.Bad_Name",
        "plugin name",
    );
}

#[test]
fn token_values_are_checked() {
    let token = |token: &str, role: &str, tenants: &str| {
        format!("[[auth.tokens]]\ntoken = {token:?}\nrole = {role:?}\ntenants = {tenants}\n")
    };
    assert_single_error(
        &token("t", "root", "[\"*\"]"),
        3,
        "auth.tokens[0].role",
        "\"admin\" or \"publisher\"",
    );
    assert_single_error(
        &token("t", "admin", "[\"*\", \"Acme Corp\"]"),
        4,
        "auth.tokens[0].tenants[1]",
        "neither \"*\"",
    );
    assert_single_error(
        &token("t", "admin", "[]"),
        4,
        "auth.tokens[0].tenants",
        "at least one tenant",
    );
    assert_single_error(
        &token("has space", "admin", "[\"*\"]"),
        2,
        "auth.tokens[0].token",
        "visible ASCII",
    );
    assert_single_error(
        "[[auth.tokens]]\ntoken = \"t\"\nrole = \"admin\"\n",
        1,
        "auth.tokens[0].tenants",
        "required",
    );
    let twice = format!(
        "{}{}",
        token("same", "admin", "[\"*\"]"),
        token("same", "publisher", "[\"acme\"]")
    );
    assert_single_error(
        &twice,
        6,
        "auth.tokens[1].token",
        "already given in auth.tokens[0].token",
    );
}

#[test]
fn open_access_is_loopback_only_and_excludes_tokens() {
    assert!(parse_ok("[auth]\nopen = true\n").auth.open);
    assert!(!parse_ok("").auth.open);
    assert_single_error(
        "[server]\nlisten = \"0.0.0.0:8080\"\n\n[auth]\nopen = true\n",
        5,
        "auth.open",
        "loopback address only",
    );
    assert_single_error(
        "[auth]\nopen = true\n\n[[auth.tokens]]\ntoken = \"t\"\nrole = \"admin\"\ntenants = [\"*\"]\n",
        2,
        "auth.open",
        "keep one or the other",
    );
}

#[test]
fn subscription_urls_are_checked() {
    let with_url = |url: &str| {
        format!(
            "[[subscriptions]]\nid = \"s1\"\ntenant = \"acme\"\nurl = {url:?}\nevents = [\"*\"]\n"
        )
    };
    assert_single_error(
        &with_url("not a url"),
        4,
        "subscriptions[0].url",
        "not a valid URL",
    );
    assert_single_error(
        &with_url("ftp://example.com/x"),
        4,
        "subscriptions[0].url",
        "http:// or https://",
    );
    assert_single_error(
        &with_url("mailto:ops@example.com"),
        4,
        "subscriptions[0].url",
        "http:// or https://",
    );
    assert_single_error(&with_url("http://"), 4, "subscriptions[0].url", "URL");
}

#[test]
fn subscription_fields_are_checked() {
    let replace = |from: &str, to: &str| subscription("").replace(from, to);
    assert_single_error(
        &replace("\"acme\"", "\"Acme\""),
        3,
        "subscriptions[0].tenant",
        "tenant name is",
    );
    assert_single_error(
        &replace("\"s1\"", "\"../s1\""),
        2,
        "subscriptions[0].id",
        "subscription id is",
    );
    assert_single_error(
        &replace("[\"*\"]", "[]"),
        5,
        "subscriptions[0].events",
        "at least one event",
    );
    assert_single_error(
        &replace("[\"*\"]", "[\"a*b\"]"),
        5,
        "subscriptions[0].events[0]",
        "may only end",
    );
    assert_single_error(
        &replace("[\"*\"]", "[\"*\", \"\"]"),
        5,
        "subscriptions[0].events[1]",
        "non-empty",
    );
    assert_single_error(
        &replace("url = \"https://example.com/hook\"\n", ""),
        1,
        "subscriptions[0].url",
        "required",
    );
    assert_single_error(
        &subscription("plugin = \"nope\"\n"),
        6,
        "subscriptions[0].plugin",
        "[plugins.nope]",
    );
    assert_single_error(
        &subscription("enabled = 1\n"),
        6,
        "subscriptions[0].enabled",
        "true or false",
    );
    assert_single_error(
        &subscription("[subscriptions.plugin_config]\nx = 1\n"),
        6,
        "subscriptions[0].plugin_config",
        "`plugin` is not",
    );
    assert_single_error(
        &subscription("plugin_config = 3\n"),
        6,
        "subscriptions[0].plugin_config",
        "expected a table",
    );
}

#[test]
fn a_subscription_naming_a_broken_plugin_is_not_also_blamed() {
    let text = format!(
        "[plugins.p]\nmemory = \"1MiB\"\n{}",
        subscription("plugin = \"p\"\n")
    );
    let errors = errors(&text);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].key, "plugins.p.path");
}

#[test]
fn secrets_must_be_whsec_base64_of_24_to_64_bytes() {
    assert_single_error(
        &subscription("secret = \"hunter2\"\n"),
        6,
        "subscriptions[0].secret",
        "whsec_",
    );
    assert_single_error(
        &subscription("secret = \"whsec_!!!\"\n"),
        6,
        "subscriptions[0].secret",
        "base64",
    );
    // base64 of 3 bytes
    assert_single_error(
        &subscription("secret = \"whsec_YWJj\"\n"),
        6,
        "subscriptions[0].secret",
        "24 to 64 bytes",
    );
    let errors = errors(&subscription("secret = \"hunter2\"\n"));
    assert!(
        !errors[0].message.contains("hunter2"),
        "a secret must not be echoed: {}",
        errors[0]
    );
}

#[test]
fn headers_are_checked() {
    assert_single_error(
        &subscription("headers = { \"Webhook-Signature\" = \"x\" }\n"),
        6,
        "subscriptions[0].headers.Webhook-Signature",
        "reserved",
    );
    assert_single_error(
        &subscription("headers = { \"Host\" = \"x\" }\n"),
        6,
        "subscriptions[0].headers.Host",
        "reserved",
    );
    assert_single_error(
        &subscription("headers = { \"bad name\" = \"x\" }\n"),
        6,
        "subscriptions[0].headers.\"bad name\"",
        "not a valid HTTP header name",
    );
    assert_single_error(
        &subscription("[subscriptions.headers]\nX-Ok = \"a\"\nX-Bad = \"line\\nbreak\"\n"),
        8,
        "subscriptions[0].headers.X-Bad",
        "not a valid HTTP header value",
    );
    assert_single_error(
        &subscription("[subscriptions.headers]\nX-Team = \"a\"\nx-team = \"b\"\n"),
        8,
        "subscriptions[0].headers.x-team",
        "ignore case",
    );
    assert_single_error(
        &subscription("headers = { X-Count = 3 }\n"),
        6,
        "subscriptions[0].headers.X-Count",
        "expected a string",
    );
}

#[test]
fn subscription_ids_are_unique_per_tenant() {
    let two = |tenant: &str| {
        format!(
            "{}\n{}",
            subscription(""),
            subscription("").replace("acme", tenant)
        )
    };
    assert_single_error(&two("acme"), 8, "subscriptions[1].id", "first is on line 2");
    let config = parse_ok(&two("globex"));
    assert_eq!(config.subscriptions.len(), 2);
}

#[test]
fn plugin_config_values_json_cannot_hold_are_errors() {
    let text = format!(
        "[plugins.p]\npath = \"p.wasm\"\n{}",
        subscription("plugin = \"p\"\n[subscriptions.plugin_config]\nlimits = { max = nan }\n")
    );
    assert_single_error(
        &text,
        10,
        "subscriptions[0].plugin_config.limits.max",
        "JSON",
    );
}

#[test]
fn every_problem_is_reported_in_file_order() {
    let text = r#"[server]
listen = "nowhere"
bogus = true

[delivery]
retry_schedule = ["5s", "soon", "1x"]
max_in_flight = 0

[[subscriptions]]
id = "a"
tenant = "Not Valid"
url = "gopher://x"
events = []
plugin = "ghost"
secret = "env:UNSET"
headers = { "content-length" = "1" }
"#;
    let errors = errors(text);
    let got: Vec<_> = errors
        .iter()
        .map(|e| (e.line.unwrap(), e.key.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (2, "server.listen"),
            (3, "server.bogus"),
            (6, "delivery.retry_schedule[1]"),
            (6, "delivery.retry_schedule[2]"),
            (7, "delivery.max_in_flight"),
            (11, "subscriptions[0].tenant"),
            (12, "subscriptions[0].url"),
            (13, "subscriptions[0].events"),
            (14, "subscriptions[0].plugin"),
            (15, "subscriptions[0].secret"),
            (16, "subscriptions[0].headers.content-length"),
        ]
    );
    let shown = ConfigErrors(errors).to_string();
    assert_eq!(shown.lines().count(), 11);
    assert!(
        shown.starts_with(
            "/etc/hookshape/hookshape.toml:2: server.listen: \"nowhere\" is not an IP address"
        ),
        "{shown}"
    );
}

#[test]
fn a_plugin_check_is_reported_with_the_structural_problems() {
    let text = r#"[server]
listen = "nowhere"

[plugins.gone]
timeout = "50ms"
path = "gone.wasm"

[plugins.good]
path = "good.wasm"

[plugins.broken]
path = "broken.wasm"
memory = "1KiB"
"#;
    let mut checked = Vec::new();
    let result = Config::read(text, source(), &test_env, &mut |name, plugin| {
        checked.push(name.to_string());
        match name.as_str() {
            "gone" => Err(format!("{}: cannot read it", plugin.path.display())),
            _ => Ok(()),
        }
    });
    let ConfigErrors(errors) = result.unwrap_err();
    let got: Vec<_> = errors
        .iter()
        .map(|e| (e.line.unwrap(), e.key.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (2, "server.listen"),
            (6, "plugins.gone"),
            (13, "plugins.broken.memory")
        ]
    );
    assert_eq!(
        errors[1].to_string(),
        "/etc/hookshape/hookshape.toml:6: plugins.gone: /etc/hookshape/gone.wasm: cannot read it"
    );
    // Every plugin with a readable name and path is checked, whatever else
    // is wrong with it.
    assert_eq!(checked, ["broken", "gone", "good"]);
}

#[test]
fn error_display_leaves_out_unknown_parts() {
    let e = ConfigError {
        file: PathBuf::from("a.toml"),
        line: Some(4),
        key: "server.listen".to_owned(),
        message: "bad".to_owned(),
    };
    assert_eq!(e.to_string(), "a.toml:4: server.listen: bad");
    let whole_file = ConfigError {
        line: None,
        key: String::new(),
        ..e
    };
    assert_eq!(whole_file.to_string(), "a.toml: bad");
}

#[test]
fn load_reads_the_file_and_reports_a_missing_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hookshape.toml");
    std::fs::write(&path, "[plugins.p]\npath = \"p.wasm\"\n").unwrap();
    let config = Config::load(&path).unwrap();
    assert_eq!(config.source.as_deref(), Some(path.as_path()));
    assert_eq!(
        config.plugins.values().next().unwrap().path,
        dir.path().join("p.wasm")
    );

    let missing = dir.path().join("missing.toml");
    let ConfigErrors(errors) = Config::load(&missing).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(
        (errors[0].file.as_path(), errors[0].line),
        (missing.as_path(), None)
    );
    assert!(errors[0].message.contains("cannot read"), "{}", errors[0]);
}

#[test]
fn debug_output_hides_tokens_and_secrets() {
    let config = parse_ok(CONTRACT_EXAMPLE);
    let shown = format!("{config:?}");
    assert!(!shown.contains("admin-token-123"), "{shown}");
    assert!(!shown.contains(SECRET), "{shown}");
    assert!(shown.contains("<redacted>"));
}
