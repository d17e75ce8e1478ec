//! `slack-threshold`: posts a Slack incoming-webhook message when a number in a JSON event crosses
//! a threshold, and skips the delivery otherwise. Built for report runs (`report_run_completed`
//! carries its result rows), it works on any JSON event.
//!
//! # Config
//!
//! | key | default | meaning |
//! | --- | --- | --- |
//! | `pointer` | required | RFC 6901 JSON pointer to the number to watch, e.g. `/rows/0/revenue` |
//! | `op` | required | one of `>`, `>=`, `<`, `<=`, `==`, `!=`: deliver when `value op threshold` |
//! | `threshold` | required | the number to compare with |
//! | `on_missing` | `"error"` | no number at `pointer` (or a non-JSON document such as XML): `"error"` fails the attempt, `"skip"` skips it |
//! | `message` | the event type | headline; `{name}`, `{value}`, `{op}`, `{threshold}`, `{event_type}` and `{tenant}` are replaced |
//! | `link_pointer` | `"/report_run_url"` | JSON pointer to an `http(s)` URL linked from the message, when present |
//! | `channel` | none | `channel` override sent to Slack |
//! | `username` | none | `username` override sent to Slack |
//!
//! The name of the value is the pointer's last segment (`revenue`). A delivery is
//! `{"text": "Daily revenue crossed the line: revenue is 128450.5 (> 100000)", "blocks": [a
//! section with the headline and figure, a context with the link, event type and tenant]}`; a skip
//! reads `revenue 96410 is not > 100000`. A payload that does not match its content type (JSON that
//! does not parse, a document that is not UTF-8) fails the attempt whatever `on_missing` says.

use std::fmt;

use hookshape_plugin_sdk::{
    Error, Event, Outcome, Request, Subscription, Transform, export_transform, info, warn,
};
use serde::Deserialize;
use serde_json::{Value, json};

/// The plugin.
pub struct SlackThreshold;

impl Transform for SlackThreshold {
    fn transform(event: Event, subscription: Subscription) -> Result<Outcome, Error> {
        let config: Config = subscription.config()?;
        config.check()?;
        let payload = event.payload_value()?;
        // A document (XML, CSV, ...) has no numbers to point at.
        let json = event.is_json().then_some(&payload);
        let value = match read_number(json, &config.pointer) {
            Ok(value) => value,
            Err(found) => {
                let reason = format!("no number at {}: {found}", config.pointer);
                return match config.on_missing {
                    OnMissing::Error => Err(Error::msg(reason)),
                    OnMissing::Skip => Ok(Outcome::skip(reason)),
                };
            }
        };
        let name = value_name(&config.pointer);
        if !config.op.holds(value, config.threshold) {
            return Ok(Outcome::skip(format!(
                "{name} {} is not {} {}",
                Num(value),
                config.op,
                Num(config.threshold)
            )));
        }
        info!(
            "{name} {} is {} {}: notifying Slack",
            Num(value),
            config.op,
            Num(config.threshold)
        );
        let link = json
            .and_then(|p| p.pointer(&config.link_pointer))
            .and_then(|v| match v.as_str() {
                Some(url) if is_linkable(url) => Some(url),
                _ => {
                    warn!(
                        "{} holds no http(s) URL, so the message has no link",
                        config.link_pointer
                    );
                    None
                }
            });
        let alert = Alert {
            config: &config,
            event: &event,
            name,
            value,
            link,
        };
        Ok(Request::json(&alert.message())?.into())
    }
}

export_transform!(SlackThreshold);

/// The plugin config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    pointer: String,
    op: Op,
    threshold: f64,
    #[serde(default)]
    on_missing: OnMissing,
    #[serde(default)]
    message: Option<String>,
    #[serde(default = "default_link_pointer")]
    link_pointer: String,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    username: Option<String>,
}

fn default_link_pointer() -> String {
    "/report_run_url".to_owned()
}

impl Config {
    /// What serde cannot check: both pointers must be RFC 6901 pointers into the document.
    fn check(&self) -> Result<(), Error> {
        for (field, pointer) in [
            ("pointer", &self.pointer),
            ("link_pointer", &self.link_pointer),
        ] {
            if !pointer.starts_with('/') {
                return Err(Error::msg(format!(
                    "invalid plugin config at `{field}`: {pointer:?} is not a JSON pointer (it must start with '/', e.g. \"/rows/0/revenue\")"
                )));
            }
        }
        Ok(())
    }
}

/// The comparison that makes a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
enum Op {
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = "==")]
    Eq,
    #[serde(rename = "!=")]
    Ne,
}

impl Op {
    fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Self::Gt => value > threshold,
            Self::Ge => value >= threshold,
            Self::Lt => value < threshold,
            Self::Le => value <= threshold,
            Self::Eq => value == threshold,
            Self::Ne => value != threshold,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Gt => ">",
            Self::Ge => ">=",
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Eq => "==",
            Self::Ne => "!=",
        })
    }
}

/// What to do when there is no number to compare.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum OnMissing {
    #[default]
    Error,
    Skip,
}

/// A number as people write it: `96410`, not `96410.0`.
struct Num(f64);

impl fmt::Display for Num {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `f64`'s Display already drops a zero fraction and never uses an exponent.
        write!(f, "{}", self.0)
    }
}

/// The number at `pointer`, or what was found instead.
fn read_number(payload: Option<&Value>, pointer: &str) -> Result<f64, String> {
    let Some(payload) = payload else {
        return Err("the payload is not JSON".to_owned());
    };
    match payload.pointer(pointer) {
        Some(Value::Number(n)) => n
            .as_f64()
            .ok_or_else(|| format!("found {n}, which is out of range")),
        Some(Value::String(s)) => Err(format!("found string {s:?}")),
        Some(Value::Null) => Err("found null".to_owned()),
        Some(Value::Bool(b)) => Err(format!("found boolean {b}")),
        Some(Value::Array(_)) => Err("found an array".to_owned()),
        Some(Value::Object(_)) => Err("found an object".to_owned()),
        None => Err("nothing there".to_owned()),
    }
}

/// The pointer's last segment, unescaped; the whole pointer when that is an array index.
fn value_name(pointer: &str) -> String {
    let last = pointer.rsplit('/').next().unwrap_or_default();
    if last.is_empty() || last.bytes().all(|b| b.is_ascii_digit()) {
        return pointer.to_owned();
    }
    last.replace("~1", "/").replace("~0", "~")
}

/// Links must be web URLs that cannot break out of Slack's `<url|label>` syntax.
fn is_linkable(url: &str) -> bool {
    (url.starts_with("https://") || url.starts_with("http://"))
        && !url
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '|')
}

/// Escapes the three characters Slack's mrkdwn treats as markup.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A threshold crossing, ready to be worded.
struct Alert<'a> {
    config: &'a Config,
    event: &'a Event,
    name: String,
    value: f64,
    link: Option<&'a str>,
}

impl Alert<'_> {
    fn headline(&self) -> String {
        let Some(template) = &self.config.message else {
            return self.event.event_type.clone();
        };
        template
            .replace("{name}", &self.name)
            .replace("{value}", &Num(self.value).to_string())
            .replace("{op}", &self.config.op.to_string())
            .replace("{threshold}", &Num(self.config.threshold).to_string())
            .replace("{event_type}", &self.event.event_type)
            .replace("{tenant}", &self.event.tenant)
    }

    /// The incoming-webhook body.
    fn message(&self) -> Value {
        let headline = escape(&self.headline());
        let name = escape(&self.name);
        let (value, op, threshold) = (
            Num(self.value),
            escape(&self.config.op.to_string()),
            Num(self.config.threshold),
        );
        let mut context = vec![escape(&self.event.event_type), escape(&self.event.tenant)];
        if let Some(url) = self.link {
            context.insert(0, format!("<{}|Open>", escape(url)));
        }
        let mut message = json!({
            "text": format!("{headline}: {name} is {value} ({op} {threshold})"),
            "blocks": [
                {
                    "type": "section",
                    "text": {
                        "type": "mrkdwn",
                        "text": format!("*{headline}*\n{name} is *{value}* ({op} {threshold})"),
                    },
                },
                {
                    "type": "context",
                    "elements": [{"type": "mrkdwn", "text": context.join(" · ")}],
                },
            ],
        });
        for (key, value) in [
            ("channel", &self.config.channel),
            ("username", &self.config.username),
        ] {
            if let Some(value) = value {
                message[key] = json!(value);
            }
        }
        message
    }
}

#[cfg(test)]
mod tests {
    use hookshape_plugin_sdk::testing::{self, delivered_json, event, failed, sample_event};

    use super::*;

    const REPORT_RUN: &str =
        include_str!("../../../../shared/samples/analyst-studio-report-run-completed.json");
    const RUN_URL: &str = "https://studio.example.com/api/acme/reports/9f2c41/runs/b7d0e3";

    fn report_run() -> Event {
        sample_event(REPORT_RUN)
    }

    /// Runs the plugin on `event` as posted to the `analyst-studio` tenant.
    fn run(event: Event, config: Value) -> Result<Outcome, Error> {
        let tenant = "analyst-studio".to_owned();
        testing::run::<SlackThreshold>(Event { tenant, ..event }, config)
    }

    fn revenue(row: usize, op: &str, threshold: f64) -> Value {
        json!({"pointer": format!("/rows/{row}/revenue"), "op": op, "threshold": threshold})
    }

    #[test]
    fn crossing_the_threshold_delivers_a_slack_message() {
        let mut config = revenue(0, ">", 100000.0);
        config["message"] = json!("Daily revenue crossed the line");
        let body = delivered_json(run(report_run(), config));
        assert_eq!(
            body["text"],
            "Daily revenue crossed the line: revenue is 128450.5 (&gt; 100000)"
        );
        assert_eq!(
            body["blocks"][0],
            json!({"type": "section", "text": {"type": "mrkdwn",
                "text": "*Daily revenue crossed the line*\nrevenue is *128450.5* (&gt; 100000)"}})
        );
        assert_eq!(
            body["blocks"][1],
            json!({"type": "context", "elements": [{"type": "mrkdwn",
                "text": format!("<{RUN_URL}|Open> · report_run_completed · analyst-studio")}]})
        );
        assert!(body.get("channel").is_none() && body.get("username").is_none());
    }

    #[test]
    fn staying_under_the_threshold_skips_with_the_reason() {
        assert_eq!(
            run(report_run(), revenue(1, ">", 100000.0)),
            Ok(Outcome::skip("revenue 96410 is not > 100000"))
        );
        assert_eq!(
            run(report_run(), revenue(0, "<=", 128450.0)),
            Ok(Outcome::skip("revenue 128450.5 is not <= 128450"))
        );
    }

    #[test]
    fn every_operator_compares_as_written() {
        let cases = [
            (">", 96410.0, false),
            (">=", 96410.0, true),
            ("<", 96410.0, false),
            ("<=", 96410.0, true),
            ("==", 96410.0, true),
            ("!=", 96410.0, false),
            ("<", 100000.0, true),
            ("!=", 1.0, true),
        ];
        for (op, threshold, delivers) in cases {
            let outcome = run(report_run(), revenue(1, op, threshold)).unwrap();
            assert_eq!(
                matches!(outcome, Outcome::Deliver(_)),
                delivers,
                "96410 {op} {threshold}: {outcome:?}"
            );
        }
    }

    #[test]
    fn headline_placeholders_and_overrides_are_applied() {
        let config = json!({
            "pointer": "/rows/0/orders", "op": ">=", "threshold": 1000,
            "message": "{tenant}: {name} {value} {op} {threshold} on {event_type} <&>",
            "channel": "#revenue", "username": "hookshape",
        });
        let body = delivered_json(run(report_run(), config));
        assert_eq!(
            body["text"],
            "analyst-studio: orders 1310 &gt;= 1000 on report_run_completed &lt;&amp;&gt;: orders is 1310 (&gt;= 1000)"
        );
        assert_eq!(body["channel"], "#revenue");
        assert_eq!(body["username"], "hookshape");
    }

    #[test]
    fn default_headline_is_the_event_type_and_links_are_optional() {
        let config = json!({"pointer": "/a~1b/c~0d", "op": "<", "threshold": 0,
                            "link_pointer": "/link"});
        let payload = json!({"a/b": {"c~d": -2.5}, "link": "javascript:alert(1)"});
        let body = delivered_json(run(
            event("metric", "application/json", payload.to_string()),
            config,
        ));
        assert_eq!(body["text"], "metric: c~d is -2.5 (&lt; 0)");
        assert_eq!(
            body["blocks"][1]["elements"][0]["text"],
            "metric · analyst-studio"
        );
    }

    #[test]
    fn array_index_names_use_the_whole_pointer() {
        let config = json!({"pointer": "/values/1", "op": ">", "threshold": 5});
        assert_eq!(
            run(
                event("m", "application/json", r#"{"values": [9, 3]}"#),
                config
            ),
            Ok(Outcome::skip("/values/1 3 is not > 5"))
        );
    }

    #[test]
    fn missing_or_non_numeric_values_are_errors_by_default() {
        let payload = r#"{"rows": [{"revenue": "abc"}, {"revenue": null}]}"#;
        let missing = |pointer: &str| {
            failed(run(
                event("report_run_completed", "application/json", payload),
                json!({"pointer": pointer, "op": ">", "threshold": 1}),
            ))
        };
        assert_eq!(
            missing("/rows/0/revenue"),
            "no number at /rows/0/revenue: found string \"abc\""
        );
        assert_eq!(
            missing("/rows/1/revenue"),
            "no number at /rows/1/revenue: found null"
        );
        assert_eq!(
            missing("/rows/2/revenue"),
            "no number at /rows/2/revenue: nothing there"
        );
        assert_eq!(missing("/rows"), "no number at /rows: found an array");
    }

    #[test]
    fn on_missing_skip_turns_those_errors_into_skips() {
        let config = json!({"pointer": "/rows/5/revenue", "op": ">", "threshold": 1,
                            "on_missing": "skip"});
        assert_eq!(
            run(report_run(), config.clone()),
            Ok(Outcome::skip("no number at /rows/5/revenue: nothing there"))
        );
        assert_eq!(
            run(
                event("project.published", "application/xml", "<project/>"),
                config
            ),
            Ok(Outcome::skip(
                "no number at /rows/5/revenue: the payload is not JSON"
            ))
        );
    }

    #[test]
    fn payloads_that_do_not_match_their_content_type_fail_even_with_on_missing_skip() {
        let config = json!({"pointer": "/rows/0/revenue", "op": ">", "threshold": 1,
                            "on_missing": "skip"});
        assert_eq!(
            failed(run(
                event("upload", "application/octet-stream", vec![0xff]),
                config.clone()
            )),
            "the event payload is not UTF-8 text: invalid utf-8 sequence of 1 bytes from index 0"
        );
        let broken = failed(run(event("m", "application/json", "{\"rows\": ["), config));
        assert!(broken.contains("EOF while parsing a list"), "{broken}");
    }

    #[test]
    fn bad_config_names_the_field() {
        let bad_op = failed(run(
            report_run(),
            json!({"pointer": "/rows/0/revenue", "op": "=>", "threshold": 1}),
        ));
        assert!(
            bad_op.starts_with("invalid plugin config at `op`: unknown variant `=>`"),
            "{bad_op}"
        );
        let no_pointer = failed(run(report_run(), json!({"op": ">", "threshold": 1})));
        assert!(
            no_pointer.contains("missing field `pointer`"),
            "{no_pointer}"
        );
        assert_eq!(
            failed(run(
                report_run(),
                json!({"pointer": "rows/0", "op": ">", "threshold": 1})
            )),
            "invalid plugin config at `pointer`: \"rows/0\" is not a JSON pointer (it must start with '/', e.g. \"/rows/0/revenue\")"
        );
        let bad_threshold = failed(run(
            report_run(),
            json!({"pointer": "/a", "op": ">", "threshold": "100k"}),
        ));
        assert!(
            bad_threshold.starts_with("invalid plugin config at `threshold`"),
            "{bad_threshold}"
        );
        let typo = failed(run(
            report_run(),
            json!({"pointer": "/a", "op": ">", "threshold": 1, "treshold": 2}),
        ));
        assert!(typo.contains("unknown field `treshold`"), "{typo}");
    }

    #[test]
    fn numbers_print_without_a_trailing_zero_fraction() {
        assert_eq!(Num(96410.0).to_string(), "96410");
        assert_eq!(Num(128450.5).to_string(), "128450.5");
        assert_eq!(Num(-0.25).to_string(), "-0.25");
        assert_eq!(Num(1e16).to_string(), "10000000000000000");
    }
}
