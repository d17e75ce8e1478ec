//! `template`: renders the request body from a [MiniJinja](https://docs.rs/minijinja) (Jinja2)
//! template kept in the subscription config, so an admin can reshape events without writing code.
//!
//! # Template context
//!
//! | name | value |
//! | --- | --- |
//! | `event` | `id`, `type`, `tenant`, `timestamp` (RFC 3339), `content_type` |
//! | `payload` | the payload parsed as JSON, or its text for other content types (XML, CSV, ...) |
//! | `subscription` | `id`, `url` |
//!
//! Jinja's built-in filters are there, plus `tojson`, which writes any value as JSON: use it for
//! every value placed in a JSON body, e.g.
//! `{"event": {{ event.type | tojson }}, "report_run_url": {{ payload.report_run_url | tojson }}}`.
//! Nothing is escaped automatically. A missing key renders as nothing (`null` through `tojson`),
//! also down a chain such as `payload.a.b.c`.
//!
//! # Config
//!
//! | key | default | meaning |
//! | --- | --- | --- |
//! | `template` | required | the body template |
//! | `content_type` | `"application/json"` | the body's media type; a JSON one (`application/json`, `*+json`) requires the rendered body to parse as JSON |
//! | `headers` | `{}` | extra request headers, name to value (set the content type with `content_type`) |
//! | `skip_if_empty` | `false` | a body that is empty or only whitespace skips the delivery instead of sending it |
//!
//! A template syntax error, a render error or a JSON body that does not parse fails the attempt
//! with the template line or the parse error and the start of the rendered body, as does a payload
//! that does not match its content type (JSON that does not parse, a document that is not UTF-8).

use std::collections::BTreeMap;

use hookshape_plugin_sdk::{
    Error, Event, Outcome, Request, Subscription, Transform, export_transform, info,
    is_json_media_type,
};
use minijinja::value::Serde;
use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Value, json};

/// How much of a rendered body an error message quotes, in characters.
const QUOTED_CHARS: usize = 200;

/// The plugin.
pub struct Template;

impl Transform for Template {
    fn transform(event: Event, subscription: Subscription) -> Result<Outcome, Error> {
        let config: Config = subscription.config()?;
        config.check()?;
        let payload = event.payload_value()?;
        let context = json!({
            "event": {
                "id": event.id,
                "type": event.event_type,
                "tenant": event.tenant,
                "timestamp": event.timestamp,
                "content_type": event.content_type,
            },
            "payload": payload,
            "subscription": {"id": subscription.id, "url": subscription.url},
        });
        let body = render(&config.template, &context)?;
        if config.skip_if_empty && body.trim().is_empty() {
            return Ok(Outcome::skip("the template rendered an empty body"));
        }
        if is_json_media_type(&config.content_type) {
            check_json(&body)?;
        }
        info!("rendered {} bytes of {}", body.len(), config.content_type);
        let request = config.headers.into_iter().fold(
            Request::new(body, config.content_type),
            |request, (name, value)| request.header(name, value),
        );
        Ok(request.into())
    }
}

export_transform!(Template);

/// The plugin config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    template: String,
    #[serde(default = "default_content_type")]
    content_type: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    skip_if_empty: bool,
}

fn default_content_type() -> String {
    "application/json".to_owned()
}

impl Config {
    /// What serde cannot check: a media type and headers that HTTP can carry.
    fn check(&self) -> Result<(), Error> {
        let invalid = |field: &str, reason: String| {
            Err(Error::msg(format!(
                "invalid plugin config at `{field}`: {reason}"
            )))
        };
        let essence = self.content_type.split(';').next().unwrap_or_default();
        let media_type_ok = essence
            .trim()
            .split_once('/')
            .is_some_and(|(kind, sub)| is_token(kind) && is_token(sub));
        if !media_type_ok || !is_header_value(&self.content_type) {
            return invalid(
                "content_type",
                format!(
                    "{:?} is not a media type such as \"text/plain\"",
                    self.content_type
                ),
            );
        }
        for (name, value) in &self.headers {
            let field = format!("headers.{name}");
            if !is_token(name) {
                return invalid(&field, "not a valid header name".to_owned());
            }
            if name.eq_ignore_ascii_case("content-type") {
                return invalid(
                    &field,
                    "set the content type with `content_type`".to_owned(),
                );
            }
            if !is_header_value(value) {
                return invalid(&field, format!("{value:?} is not a valid header value"));
            }
        }
        Ok(())
    }
}

/// An HTTP token (RFC 9110): header names and media type parts.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Visible characters, spaces and tabs: no line breaks that would split the header.
fn is_header_value(s: &str) -> bool {
    s.chars().all(|c| c == '\t' || !c.is_control())
}

/// Compiles and renders the template. Nothing is auto-escaped and undefined values chain, so
/// optional payload fields need no guards.
fn render(template: &str, context: &Value) -> Result<String, Error> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    let compiled = env
        .template_from_named_str("template", template)
        .map_err(|e| template_error("invalid template", &e))?;
    compiled
        .render(minijinja::Value::from(Serde(context)))
        .map_err(|e| template_error("the template failed", &e))
}

/// `{what} at line {n}: {kind}: {detail}`.
fn template_error(what: &str, e: &minijinja::Error) -> Error {
    let cause = match e.detail() {
        Some(detail) => format!("{}: {detail}", e.kind()),
        None => e.kind().to_string(),
    };
    Error::msg(match e.line() {
        Some(line) => format!("{what} at line {line}: {cause}"),
        None => format!("{what}: {cause}"),
    })
}

/// Fails unless the body is one JSON document.
fn check_json(body: &str) -> Result<(), Error> {
    serde_json::from_str::<IgnoredAny>(body).map_err(|e| {
        let start: String = body.chars().take(QUOTED_CHARS).collect();
        let cut = if start.len() < body.len() { "..." } else { "" };
        Error::msg(format!(
            "the rendered body is not valid JSON ({e}); it starts: {start}{cut}"
        ))
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use hookshape_plugin_sdk::testing::{self, delivered, event, failed, json_body, sample_event};

    use super::*;

    const REPORT_RUN: &str =
        include_str!("../../../../shared/samples/analyst-studio-report-run-completed.json");
    const BATCH_FAILED: &str =
        include_str!("../../../../shared/samples/atscale-aggregate-batch-failed.json");

    fn run(event: Event, config: Value) -> Result<Outcome, Error> {
        testing::run::<Template>(event, config)
    }

    #[test]
    fn thin_payload_from_a_report_run() {
        let template = r#"{"event": {{ event.type | tojson }}, "report_run_url": {{ payload.report_run_url | tojson }}}"#;
        let request = delivered(run(sample_event(REPORT_RUN), json!({"template": template})));
        assert_eq!(
            json_body(&request),
            json!({
                "event": "report_run_completed",
                "report_run_url": "https://studio.example.com/api/acme/reports/9f2c41/runs/b7d0e3",
            })
        );
        assert!(request.headers.is_empty());
    }

    #[test]
    fn slack_text_for_a_failed_aggregate_batch() {
        let template = "\
{%- set p = payload -%}
{%- set text = ':warning: Aggregate batch ' ~ p.batch_id ~ ' failed in ' ~ p.environment
    ~ ' (' ~ p.project ~ ' / ' ~ p.cube ~ '): ' ~ p.aggregates.failed ~ ' of '
    ~ p.aggregates.total ~ ' aggregates failed. ' ~ p.error -%}
{\"text\": {{ text | tojson }}, \"event_id\": {{ event.id | tojson }}}";
        let request = delivered(run(
            sample_event(BATCH_FAILED),
            json!({"template": template, "headers": {"X-Team": "data"}}),
        ));
        assert_eq!(
            json_body(&request),
            json!({
                "text": ":warning: Aggregate batch agg-batch-20261121-0400 failed in production \
                         (Sales Insights / Internet Sales): 3 of 15 aggregates failed. \
                         warehouse query timed out after 300s for aggregate agg_customer_country_month",
                "event_id": "evt_01JD8Z",
            })
        );
        assert_eq!(request.headers, vec![("X-Team".into(), "data".into())]);
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let message = failed(run(
            sample_event(REPORT_RUN),
            json!({"template": "{\n  \"a\": {{ payload.event | tojson }},\n  \"b\": {% if %}\n}"}),
        ));
        assert!(
            message.starts_with("invalid template at line 3: syntax error"),
            "{message}"
        );
    }

    #[test]
    fn render_errors_name_the_line() {
        let message = failed(run(
            sample_event(REPORT_RUN),
            json!({"template": "{\"n\":\n{{ payload.rows | nosuchfilter }}}"}),
        ));
        assert_eq!(
            message,
            "the template failed at line 2: unknown filter: filter nosuchfilter is unknown"
        );
    }

    #[test]
    fn non_json_render_with_a_json_content_type_is_an_error() {
        let message = failed(run(
            sample_event(REPORT_RUN),
            json!({"template": "Report {{ payload.report.name }} finished"}),
        ));
        assert_eq!(
            message,
            "the rendered body is not valid JSON (expected value at line 1 column 1); it starts: Report Daily revenue finished"
        );
        let long = format!("{{\"a\": {}", "1".repeat(500));
        let message = failed(run(sample_event(REPORT_RUN), json!({"template": long})));
        let quoted = message.split_once("it starts: ").unwrap().1;
        assert_eq!(quoted, format!("{}...", &long[..200]));
    }

    #[test]
    fn other_content_types_are_sent_as_rendered() {
        let request = delivered(run(
            sample_event(REPORT_RUN),
            json!({
                "template": "{{ payload.report.name | upper }}: {{ payload.rows | length }} rows\n\
                             {% for row in payload.rows %}{{ row.day }} {{ row.revenue }}\n{% endfor %}",
                "content_type": "text/plain; charset=utf-8",
            }),
        ));
        assert_eq!(
            request.content_type.as_deref(),
            Some("text/plain; charset=utf-8")
        );
        assert_eq!(
            String::from_utf8(request.body).unwrap(),
            "DAILY REVENUE: 2 rows\n2026-11-21 128450.5\n2026-11-20 96410.0\n"
        );
    }

    #[test]
    fn non_json_payloads_are_text_and_context_is_complete() {
        let template = r#"{"xml_bytes": {{ payload | length }}, "ct": {{ event.content_type | tojson }},
            "tenant": {{ event.tenant | tojson }}, "at": {{ event.timestamp | tojson }},
            "sub": {{ subscription.id | tojson }}, "url": {{ subscription.url | tojson }},
            "missing": {{ payload.a.b.c | tojson }}}"#;
        let subscription = Subscription {
            id: "sub_thin".into(),
            ..testing::subscription(json!({"template": template}))
        };
        let request = delivered(Template::transform(
            event("project.published", "application/xml", "<project/>"),
            subscription,
        ));
        assert_eq!(
            json_body(&request),
            json!({
                "xml_bytes": 10, "ct": "application/xml", "tenant": "acme",
                "at": "2026-11-21T09:14:05Z", "sub": "sub_thin",
                "url": "https://receiver.example.com/hook", "missing": null,
            })
        );
    }

    #[test]
    fn payloads_that_do_not_match_their_content_type_fail_before_rendering() {
        let config = json!({"template": "{}"});
        let binary = event("upload", "application/octet-stream", vec![0x50, 0x4b, 0xff]);
        assert_eq!(
            failed(run(binary, config.clone())),
            "the event payload is not UTF-8 text: invalid utf-8 sequence of 1 bytes from index 2"
        );
        let broken = failed(run(event("upload", "application/json", "{"), config));
        assert!(broken.contains("EOF while parsing an object"), "{broken}");
    }

    #[test]
    fn empty_renders_skip_only_when_asked() {
        let template = "{% if payload.rows[0].revenue > 200000 %}{\"alert\": true}{% endif %}\n";
        assert_eq!(
            run(
                sample_event(REPORT_RUN),
                json!({"template": template, "skip_if_empty": true})
            ),
            Ok(Outcome::skip("the template rendered an empty body"))
        );
        assert!(
            failed(run(sample_event(REPORT_RUN), json!({"template": template})))
                .starts_with("the rendered body is not valid JSON")
        );
    }

    #[test]
    fn bad_config_names_the_field() {
        let with = |config: Value| failed(run(sample_event(REPORT_RUN), config));
        assert!(with(json!({})).contains("missing field `template`"));
        assert_eq!(
            with(json!({"template": "{}", "content_type": "json"})),
            "invalid plugin config at `content_type`: \"json\" is not a media type such as \"text/plain\""
        );
        assert_eq!(
            with(json!({"template": "{}", "headers": {"bad name": "x"}})),
            "invalid plugin config at `headers.bad name`: not a valid header name"
        );
        assert_eq!(
            with(json!({"template": "{}", "headers": {"x-a": "1\r\nx-b: 2"}})),
            "invalid plugin config at `headers.x-a`: \"1\\r\\nx-b: 2\" is not a valid header value"
        );
        assert_eq!(
            with(json!({"template": "{}", "headers": {"Content-Type": "text/plain"}})),
            "invalid plugin config at `headers.Content-Type`: set the content type with `content_type`"
        );
        assert!(with(json!({"template": "{}", "skip_empty": true})).contains("unknown field"));
    }
}
