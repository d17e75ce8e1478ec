//! The command line itself: every argument explains itself in `--help`,
//! `completions` prints a script naming the subcommands, `config check`
//! reports everything in one run, `serve` reads its config file, address and
//! data directory from the environment, and its JSON log lines carry the ids
//! of the flow they belong to.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{ADMIN, ConfigBuilder, Launch, Receiver, Server, eventually, run_binary};

/// Bounds every run of the binary that exits by itself.
const CLI_DEADLINE: Duration = Duration::from_secs(30);

/// The entries of a `--help` text's `Arguments:`, `Options:` and
/// `Commands:` lists that have no description. clap indents an entry by 2
/// (a long-only flag by 6) and writes its description after two or more
/// spaces, or on the next line indented by 10.
fn undescribed(help: &str) -> Vec<String> {
    let lines: Vec<&str> = help.lines().collect();
    let indent = |line: &str| line.len() - line.trim_start().len();
    let mut missing = Vec::new();
    let mut section = "";
    for (i, line) in lines.iter().enumerate() {
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        if indent(line) == 0 {
            section = text;
            continue;
        }
        let entry = match section {
            "Arguments:" | "Options:" => {
                indent(line) <= 6 && (text.starts_with('-') || text.starts_with('<'))
            }
            "Commands:" => indent(line) == 2,
            _ => false,
        };
        let same_line = text.split("  ").filter(|s| !s.trim().is_empty()).count() >= 2;
        let next_line = lines
            .get(i + 1)
            .is_some_and(|next| !next.trim().is_empty() && indent(next) > indent(line));
        if entry && !same_line && !next_line {
            missing.push(text.to_owned());
        }
    }
    missing
}

#[test]
fn every_argument_and_subcommand_has_a_help_line() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    for command in [
        &["--help"][..],
        &["serve", "--help"],
        &["config", "--help"],
        &["config", "check", "--help"],
        &["plugin", "--help"],
        &["plugin", "run", "--help"],
        &["completions", "--help"],
    ] {
        let (status, stdout, stderr) = run_binary(command, dir.path(), CLI_DEADLINE);
        assert!(status.success(), "hookshape {command:?}: {stderr}");
        assert!(
            stdout.contains("Options:"),
            "hookshape {command:?} printed no help:\n{stdout}"
        );
        let missing = undescribed(&stdout);
        assert!(
            missing.is_empty(),
            "hookshape {command:?} leaves {missing:?} undescribed:\n{stdout}"
        );
    }
    let (_, serve_help, _) = run_binary(&["serve", "--help"], dir.path(), CLI_DEADLINE);
    for var in ["HOOKSHAPE_CONFIG", "HOOKSHAPE_LISTEN", "HOOKSHAPE_DATA"] {
        assert!(
            serve_help.contains(&format!("[env: {var}")),
            "serve --help does not name {var}:\n{serve_help}"
        );
    }
}

#[test]
fn the_help_check_finds_an_undescribed_entry() {
    let short = "Usage: x [OPTIONS] <FILE>\n\nArguments:\n  <FILE>  The file\n\nOptions:\n      --bare <BARE>\n  -h, --help           Print help\n";
    assert_eq!(undescribed(short), ["--bare <BARE>"]);
    let long = "Commands:\n  run   Runs\n  idle\n\nOptions:\n      --bare <BARE>\n\n      --mode <MODE>\n          The mode\n\n          Possible values:\n          - a: A\n          - b\n\n  -h, --help\n          Print help\n";
    assert_eq!(undescribed(long), ["idle", "--bare <BARE>"]);
}

#[test]
fn completions_name_every_subcommand() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (status, script, stderr) = run_binary(&["completions", "bash"], dir.path(), CLI_DEADLINE);
    assert!(status.success(), "completions bash: {stderr}");
    assert!(
        script.contains("complete -F _hookshape"),
        "not a bash completion script for hookshape:\n{script}"
    );
    // The words each level offers: `opts="..."` in bash's script.
    let offered: Vec<Vec<&str>> = script
        .lines()
        .filter_map(|l| l.trim().strip_prefix("opts=\""))
        .map(|opts| opts.trim_end_matches('"').split(' ').collect())
        .collect();
    for words in [
        &["serve", "config", "plugin", "completions"][..],
        &["check"],
        &["run"],
    ] {
        assert!(
            offered
                .iter()
                .any(|opts| words.iter().all(|w| opts.contains(w))),
            "no level of the script offers {words:?}:\n{script}"
        );
    }

    let (status, _, stderr) = run_binary(&["completions", "tcsh"], dir.path(), CLI_DEADLINE);
    assert!(!status.success(), "an unknown shell was accepted");
    assert!(stderr.contains("possible values"), "{stderr}");
}

#[test]
fn config_check_lists_a_missing_plugin_with_the_other_problems() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join("hookshape.toml");
    // Line 2: an unknown key; line 5: a plugin file that is not there.
    let text = "[server]\nlisten_on = \"127.0.0.1:0\"\n\n[plugins.gone]\npath = \"gone.wasm\"\n";
    std::fs::write(&file, text).expect("writing the config");
    let file = file.display().to_string();

    let (status, stdout, stderr) =
        run_binary(&["config", "check", &file], dir.path(), CLI_DEADLINE);
    assert_eq!(status.code(), Some(1), "{stdout}\n{stderr}");
    let line_of = |needle: &str| {
        stderr
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle} is not reported:\n{stderr}"))
    };
    assert!(
        line_of("server.listen_on").starts_with(&format!("{file}:2: ")),
        "{stderr}"
    );
    let missing = line_of("plugins.gone:");
    assert!(missing.starts_with(&format!("{file}:5: ")), "{stderr}");
    assert!(missing.contains("gone.wasm: cannot read it"), "{stderr}");
    assert!(stderr.contains("2 problem(s)"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_reads_config_listen_and_data_from_the_environment() {
    let config = ConfigBuilder::new().build();
    let server = Server::start_with(&config, Launch::Env).await;

    // HOOKSHAPE_LISTEN: an ephemeral loopback port, not [server] listen's 8080.
    assert!(server.addr().ip().is_loopback(), "{}", server.addr());
    assert_ne!(server.addr().port(), 8080);
    let health = server.request(Method::GET, "/healthz", None, None).await;
    assert_eq!(health.status, StatusCode::OK, "{}", health.text());

    // HOOKSHAPE_CONFIG: the file's token is required.
    let path = "/v1/tenants/acme/subscriptions";
    assert_eq!(server.get(path, None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(server.get(path, ADMIN).await.0, StatusCode::OK);

    // HOOKSHAPE_DATA: the store is where it says.
    assert!(
        server.dir().join("data").is_dir(),
        "no store in {}",
        server.dir().display()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn json_log_lines_carry_the_ids_of_their_flow() {
    let receiver = Receiver::start().await;
    let config = ConfigBuilder::new()
        .server("log_format", "\"json\"")
        .build();
    let server = Server::start(&config).await;
    let sub = server
        .create_subscription("acme", &json!({"url": receiver.url(), "events": ["*"]}))
        .await;
    let receipt = server
        .publish("acme", &json!({"type": "order.paid", "payload": {}}))
        .await;
    receiver.wait_for(1, Duration::from_secs(10)).await;

    // The harness runs the server with hookshape=debug, which logs each
    // stored event and recorded attempt.
    let line = |message: &'static str| {
        let server = &server;
        eventually(Duration::from_secs(10), message, move || {
            let found = server
                .stderr()
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find(|l| l["fields"]["message"] == message);
            std::future::ready(found)
        })
    };
    let stored = line("event stored").await;
    assert_eq!(stored["span"]["name"], "ingest", "{stored}");
    assert_eq!(stored["span"]["event_id"], receipt["id"], "{stored}");
    assert_eq!(stored["span"]["tenant"], "acme", "{stored}");

    let attempt = line("attempt recorded").await;
    let span = &attempt["span"];
    assert_eq!(span["name"], "attempt", "{attempt}");
    assert_eq!(span["event_id"], receipt["id"], "{attempt}");
    assert_eq!(span["subscription_id"], sub["id"], "{attempt}");
    assert!(
        span["delivery_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("dlv_")),
        "{attempt}"
    );
    assert!(attempt["spans"].is_array(), "the span list: {attempt}");
}
