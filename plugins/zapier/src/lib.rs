//! `zapier`: flattens any event into one level of fields, the shape Zapier catch hooks map best.
//!
//! Nested keys are joined with the separator and array items are indexed, so
//! `{"dashboard": {"name": "Cash"}, "rows": [{"revenue": 5}]}` becomes
//! `{"dashboard__name": "Cash", "rows__0__revenue": 5, ...}`. Every value is a JSON scalar:
//! strings, numbers, booleans and nulls are kept as they are; a value that cannot be flattened
//! further (an empty object or array, or any object or array at `max_depth`) becomes its compact
//! JSON text.
//!
//! The event's own fields come along as `event_type`, `event_id`, `event_timestamp` and `tenant`.
//! A top-level payload key with one of those names is renamed `payload{separator}{key}` (an
//! Alpana `tenant` becomes `payload__tenant`). Should two paths still flatten to the same key
//! (`{"a__b": 1, "a": {"b": 2}}`), the later one in key order gets `{separator}2`, `{separator}3`, ...
//!
//! A payload that is not a JSON object or array (a non-JSON document such as XML, or a JSON
//! scalar) is sent whole as `content`.
//!
//! # Config
//!
//! | key | default | meaning |
//! | --- | --- | --- |
//! | `separator` | `"__"` | joins the segments of a nested key; not empty |
//! | `max_depth` | none | most segments in a key (at least 1); deeper values are JSON text |

use hookshape_plugin_sdk::{
    Error, Event, Outcome, Request, Subscription, Transform, export_transform, info,
};
use serde::Deserialize;
use serde_json::{Map, Value};

/// The event fields added to every body, and so reserved at the payload's top level.
const EVENT_FIELDS: [&str; 4] = ["event_type", "event_id", "event_timestamp", "tenant"];

/// The plugin.
pub struct Zapier;

impl Transform for Zapier {
    fn transform(event: Event, subscription: Subscription) -> Result<Outcome, Error> {
        let config: Config = subscription.config()?;
        config.check()?;
        let payload = event.payload_value()?;
        let fields = flatten_event(&event, payload, &config);
        info!(
            "flattened {} into {} fields",
            event.event_type,
            fields.len()
        );
        Ok(Request::json(&fields)?.into())
    }
}

export_transform!(Zapier);

/// The plugin config.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Config {
    separator: String,
    max_depth: Option<usize>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            separator: "__".to_owned(),
            max_depth: None,
        }
    }
}

impl Config {
    fn check(&self) -> Result<(), Error> {
        if self.separator.is_empty() {
            return Err(Error::msg(
                "invalid plugin config at `separator`: must not be empty",
            ));
        }
        if self.max_depth == Some(0) {
            return Err(Error::msg(
                "invalid plugin config at `max_depth`: must be at least 1",
            ));
        }
        Ok(())
    }
}

/// The flat body for an event whose payload is `payload`.
fn flatten_event(event: &Event, payload: Value, config: &Config) -> Map<String, Value> {
    let mut flat = Flattener {
        config,
        fields: Map::new(),
    };
    for (key, value) in EVENT_FIELDS.iter().zip([
        &event.event_type,
        &event.id,
        &event.timestamp,
        &event.tenant,
    ]) {
        flat.insert((*key).to_owned(), Value::String(value.clone()));
    }
    match payload {
        Value::Object(object) => {
            for (key, value) in object {
                let key = if EVENT_FIELDS.contains(&key.as_str()) {
                    format!("payload{}{key}", config.separator)
                } else {
                    key
                };
                flat.flatten(key, value, 1);
            }
        }
        Value::Array(items) => {
            for (index, value) in items.into_iter().enumerate() {
                flat.flatten(index.to_string(), value, 1);
            }
        }
        scalar => flat.insert("content".to_owned(), scalar),
    }
    flat.fields
}

/// Accumulates the flat fields.
struct Flattener<'a> {
    config: &'a Config,
    fields: Map<String, Value>,
}

impl Flattener<'_> {
    /// Flattens `value` found at `key`, whose key has `depth` segments.
    fn flatten(&mut self, key: String, value: Value, depth: usize) {
        let deeper = self.config.max_depth.is_none_or(|max| depth < max);
        let separator = &self.config.separator;
        match value {
            Value::Object(object) if deeper && !object.is_empty() => {
                for (child, value) in object {
                    self.flatten(format!("{key}{separator}{child}"), value, depth + 1);
                }
            }
            Value::Array(items) if deeper && !items.is_empty() => {
                for (index, value) in items.into_iter().enumerate() {
                    self.flatten(format!("{key}{separator}{index}"), value, depth + 1);
                }
            }
            container @ (Value::Object(_) | Value::Array(_)) => {
                self.insert(key, Value::String(container.to_string()));
            }
            scalar => self.insert(key, scalar),
        }
    }

    /// Adds a field, numbering the key when it is already taken.
    fn insert(&mut self, key: String, value: Value) {
        if !self.fields.contains_key(&key) {
            self.fields.insert(key, value);
            return;
        }
        let separator = &self.config.separator;
        let free = (2..)
            .map(|n| format!("{key}{separator}{n}"))
            .find(|candidate| !self.fields.contains_key(candidate))
            .expect("an unbounded range yields a free key");
        self.fields.insert(free, value);
    }
}

#[cfg(test)]
mod tests {
    use hookshape_plugin_sdk::testing::{self, delivered_json, event, failed, sample_event};
    use serde_json::json;

    use super::*;

    const COMMENT: &str = include_str!("../../../../shared/samples/alpana-comment-added.json");
    const DASHBOARD: &str =
        include_str!("../../../../shared/samples/alpana-dashboard-updated.json");

    /// Runs the plugin on `event` as posted to the `alpana` tenant.
    fn run(event: Event, config: Value) -> Result<Outcome, Error> {
        let tenant = "alpana".to_owned();
        testing::run::<Zapier>(Event { tenant, ..event }, config)
    }

    fn assert_flat(body: &Value) {
        for (key, value) in body.as_object().unwrap() {
            assert!(!value.is_object() && !value.is_array(), "{key}: {value}");
        }
    }

    #[test]
    fn comment_sample_flattens_with_event_fields_on_top() {
        let body = delivered_json(run(sample_event(COMMENT), json!({})));
        assert_eq!(
            body,
            json!({
                "event_type": "dashboard_comment.added",
                "event_id": "evt_01JD8Z",
                "event_timestamp": "2026-11-21T09:14:05Z",
                "tenant": "alpana",
                "payload__tenant": "acme-finance",
                "dashboard__id": 4812,
                "dashboard__name": "Cash position",
                "widget__id": 19,
                "widget__name": "Cash by bank",
                "comment__id": 551,
                "comment__url": "https://bi.example.com/acme-finance/dashboards/4812?comment=551",
                "comment__author": "Aiko Tanaka",
                "comment__text": "Bank B balance looks stale since Friday — can someone check the feed?",
            })
        );
    }

    #[test]
    fn dashboard_sample_with_a_custom_separator() {
        let body = delivered_json(run(sample_event(DASHBOARD), json!({"separator": "."})));
        assert_flat(&body);
        assert_eq!(body["dashboard.name"], "Cash position");
        assert_eq!(
            body["dashboard.url"],
            "https://bi.example.com/acme-finance/dashboards/4812"
        );
        assert_eq!(body["changed_by.name"], "Jonas Berg");
        assert_eq!(body["version"], 9);
        assert_eq!(body["occurred_at"], "2026-11-21T09:14:05Z");
        assert_eq!(body["payload.tenant"], "acme-finance");
        assert_eq!(body["tenant"], "alpana");
        assert_eq!(body.as_object().unwrap().len(), 12);
    }

    #[test]
    fn arrays_are_indexed_and_scalars_keep_their_types() {
        let payload = json!({
            "rows": [{"revenue": 128450.5, "ok": true}, {"revenue": null}],
            "tags": ["a", "b"],
            "empty": {}, "none": [],
        });
        let body = delivered_json(run(
            event(
                "report_run_completed",
                "application/json",
                payload.to_string(),
            ),
            json!({}),
        ));
        assert_flat(&body);
        assert_eq!(body["rows__0__revenue"], 128450.5);
        assert_eq!(body["rows__0__ok"], true);
        assert_eq!(body["rows__1__revenue"], Value::Null);
        assert_eq!(body["tags__1"], "b");
        assert_eq!(body["empty"], "{}");
        assert_eq!(body["none"], "[]");
    }

    #[test]
    fn max_depth_keeps_deeper_values_as_json_text() {
        let payload = json!({"a": {"b": {"c": 1}, "d": 2}, "e": [[1, 2]]});
        let body = delivered_json(run(
            event("x", "application/json", payload.to_string()),
            json!({"max_depth": 2}),
        ));
        assert_eq!(body["a__b"], r#"{"c":1}"#);
        assert_eq!(body["a__d"], 2);
        assert_eq!(body["e__0"], "[1,2]");
        let body = delivered_json(run(
            event("x", "application/json", payload.to_string()),
            json!({"max_depth": 1}),
        ));
        assert_eq!(body["a"], r#"{"b":{"c":1},"d":2}"#);
    }

    #[test]
    fn colliding_keys_are_numbered_not_lost() {
        let payload = json!({"a": {"b": 2}, "a__b": 1, "payload__tenant": "x", "tenant": "y"});
        let body = delivered_json(run(
            event("x", "application/json", payload.to_string()),
            json!({}),
        ));
        assert_eq!(body["a__b"], 2);
        assert_eq!(body["a__b__2"], 1);
        assert_eq!(body["payload__tenant"], "x");
        assert_eq!(body["payload__tenant__2"], "y");
        assert_eq!(body["tenant"], "alpana");
    }

    #[test]
    fn non_json_and_scalar_payloads_become_content() {
        let xml = "<project id=\"p1\"/>";
        let body = delivered_json(run(
            event("project.published", "application/xml", xml),
            json!({}),
        ));
        assert_eq!(
            body,
            json!({
                "event_type": "project.published",
                "event_id": "evt_01JD8Z",
                "event_timestamp": "2026-11-21T09:14:05Z",
                "tenant": "alpana",
                "content": xml,
            })
        );
        let body = delivered_json(run(event("n", "application/json", "42"), json!({})));
        assert_eq!(body["content"], 42);
        let body = delivered_json(run(
            event("l", "application/json", "[1, {\"x\": 2}]"),
            json!({}),
        ));
        assert_eq!(body["0"], 1);
        assert_eq!(body["1__x"], 2);
    }

    #[test]
    fn bad_config_and_binary_payloads_are_errors() {
        assert_eq!(
            failed(run(sample_event(COMMENT), json!({"separator": ""}))),
            "invalid plugin config at `separator`: must not be empty"
        );
        assert_eq!(
            failed(run(sample_event(COMMENT), json!({"max_depth": 0}))),
            "invalid plugin config at `max_depth`: must be at least 1"
        );
        assert!(failed(run(sample_event(COMMENT), json!({"depth": 2}))).contains("unknown field"));
        assert!(
            failed(run(
                event("b", "application/octet-stream", vec![0xff, 0x00]),
                json!({})
            ))
            .contains("not UTF-8")
        );
    }
}
