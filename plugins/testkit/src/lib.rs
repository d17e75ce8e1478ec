//! The host's test plugin: its subscription config picks what it does.
//!
//! `{"mode": ...}` selects one behaviour per call, so one component covers
//! every path the host must handle: deliveries (`echo`, `wrap`, `headers`),
//! `skip`, plugin errors (`error`), traps (`panic`), the timeout (`loop`),
//! the memory cap (`alloc`), the log cap (`flood`) and the sandbox (`probe`
//! tries files, environment, sockets and the clock and reports what
//! happened). It is built for `wasm32-wasip2` by the host's tests; it is not
//! meant to be deployed.

use std::collections::BTreeMap;
use std::fmt::Display;

use hookshape_plugin_sdk::{Error, Event, Outcome, Request, Subscription, Transform};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Mode {
    /// Deliver the payload unchanged, with an `x-hookshape-event-type` header.
    Echo,
    /// Deliver a JSON envelope around the payload, the event and the config.
    Wrap,
    /// Skip with `reason`.
    Skip,
    /// Fail with `message`.
    Error,
    /// Panic with `message`.
    Panic,
    /// Never return.
    Loop,
    /// Allocate until memory runs out.
    Alloc,
    /// Deliver with the `headers` map as extra headers.
    Headers,
    /// Try what the sandbox must deny and report the results.
    Probe,
    /// Log `lines` lines through the log import and stdout.
    Flood,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    mode: Mode,
    reason: Option<String>,
    message: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// `host:port` the probe tries to open a TCP connection to.
    connect: Option<String>,
    lines: Option<u32>,
}

struct Testkit;

impl Transform for Testkit {
    fn transform(event: Event, subscription: Subscription) -> Result<Outcome, Error> {
        let config: Config = subscription.config()?;
        match config.mode {
            Mode::Echo => {
                hookshape_plugin_sdk::info!(
                    "echoing {} bytes of {}",
                    event.payload.len(),
                    event.event_type
                );
                Ok(Request::new(event.payload, event.content_type)
                    .header("x-hookshape-event-type", event.event_type)
                    .into())
            }
            Mode::Wrap => wrap(&event, &subscription),
            Mode::Skip => Ok(Outcome::skip(
                config.reason.unwrap_or_else(|| "testkit skip".into()),
            )),
            Mode::Error => Err(Error::msg(
                config.message.unwrap_or_else(|| "testkit error".into()),
            )),
            Mode::Panic => panic!(
                "{}",
                config.message.unwrap_or_else(|| "testkit panic".into())
            ),
            Mode::Loop => spin_forever(),
            Mode::Alloc => allocate_forever(),
            Mode::Headers => Ok(config
                .headers
                .into_iter()
                .fold(
                    Request::new(event.payload, event.content_type),
                    |r, (k, v)| r.header(k, v),
                )
                .into()),
            Mode::Probe => Ok(Request::json(&probe(config.connect.as_deref()))?.into()),
            Mode::Flood => {
                for i in 0..config.lines.unwrap_or(1000) {
                    hookshape_plugin_sdk::debug!("flood line {i} through the log import");
                    println!("flood line {i} through stdout");
                }
                Ok(Outcome::skip("flooded"))
            }
        }
    }
}

hookshape_plugin_sdk::export_transform!(Testkit);

fn wrap(event: &Event, subscription: &Subscription) -> Result<Outcome, Error> {
    let wrapped = if event.is_json() {
        event.json_value()?
    } else {
        Value::String(event.text()?.to_owned())
    };
    let config: Value = subscription.config()?;
    Ok(Request::json(&json!({
        "wrapped": wrapped,
        "event_id": event.id,
        "type": event.event_type,
        "tenant": event.tenant,
        "subscription_id": subscription.id,
        "config": config,
    }))?
    .into())
}

fn spin_forever() -> ! {
    let mut n = 0u64;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

fn allocate_forever() -> ! {
    let mut chunks = Vec::new();
    loop {
        // Non-zero bytes so every page is really touched.
        chunks.push(std::hint::black_box(vec![1u8; 1 << 20]));
    }
}

/// Tries each thing the sandbox must refuse; never fails, only reports.
fn probe(connect: Option<&str>) -> Value {
    println!("probe: hello from stdout");
    eprintln!("probe: hello from stderr");
    let file = describe(std::fs::read("/etc/hostname").map(|b| format!("read {} bytes", b.len())));
    let dir = describe(std::fs::read_dir("/").map(|d| format!("listed {} entries", d.count())));
    let env = json!({
        "vars": std::env::vars().count(),
        "HOME": describe(std::env::var("HOME")),
        "PATH": describe(std::env::var("PATH")),
        "args": std::env::args().count(),
    });
    let socket = match connect {
        Some(addr) => describe(std::net::TcpStream::connect(addr).map(|_| "connected".into())),
        None => "not tried".into(),
    };
    let clock = describe(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| format!("{} s since the epoch", d.as_secs())),
    );
    json!({
        "file": file,
        "dir": dir,
        "env": env,
        "socket": socket,
        "clock": clock,
        "stdout": "printed one line to stdout and one to stderr",
    })
}

fn describe<E: Display>(result: Result<String, E>) -> String {
    result.unwrap_or_else(|e| format!("denied: {e}"))
}

#[cfg(test)]
mod tests {
    use hookshape_plugin_sdk::testing::{self, delivered, delivered_json, failed, skipped};

    use super::*;

    fn run(config: Value) -> Result<Outcome, Error> {
        let event = testing::event(
            "project.published",
            "application/json",
            r#"{"name":"Sales"}"#,
        );
        testing::run::<Testkit>(event, config)
    }

    #[test]
    fn echo_returns_the_payload_with_the_event_type() {
        let r = delivered(run(json!({"mode": "echo"})));
        assert_eq!(r.body, br#"{"name":"Sales"}"#);
        assert_eq!(r.content_type.as_deref(), Some("application/json"));
        assert_eq!(
            r.headers,
            vec![(
                "x-hookshape-event-type".to_owned(),
                "project.published".to_owned()
            )]
        );
    }

    #[test]
    fn wrap_embeds_payload_event_and_config() {
        let body = delivered_json(run(json!({"mode": "wrap", "reason": "r"})));
        assert_eq!(
            body,
            json!({
                "wrapped": {"name": "Sales"},
                "event_id": "evt_01JD8Z",
                "type": "project.published",
                "tenant": "acme",
                "subscription_id": "sub_1",
                "config": {"mode": "wrap", "reason": "r"},
            })
        );
    }

    #[test]
    fn skip_error_and_headers_follow_the_config() {
        assert_eq!(
            skipped(run(json!({"mode": "skip", "reason": "not today"}))),
            "not today"
        );
        assert_eq!(
            failed(run(json!({"mode": "error", "message": "boom"}))),
            "boom"
        );
        let r = delivered(run(
            json!({"mode": "headers", "headers": {"host": "evil", "x-a": "1"}}),
        ));
        assert_eq!(
            r.headers,
            vec![
                ("host".to_owned(), "evil".to_owned()),
                ("x-a".to_owned(), "1".to_owned())
            ]
        );
    }

    #[test]
    fn unknown_modes_and_fields_are_config_errors() {
        let e = failed(run(json!({"mode": "dance"})));
        assert!(e.contains("unknown variant `dance`"), "{e}");
        let e = failed(run(json!({"mode": "echo", "colour": "red"})));
        assert!(e.contains("unknown field `colour`"), "{e}");
    }
}
