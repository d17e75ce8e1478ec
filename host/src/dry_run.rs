//! `hookshape plugin run`: one transform, offline, with the server's sandbox
//! and limits, showing the exact request the server would send.
//!
//! The event file may be a source's body (`samples/*.json`: `type`, `id` as
//! the source id, `content_type`, `payload`) or a stored event as the API
//! shows it (`GET .../events/{id}`: `evt_` id, `tenant`, `timestamp`), so an
//! event that misbehaved in production can be replayed byte for byte.

use hookshape_signing::Secret;
use serde::Deserialize;

use crate::clock::Timestamp;
use crate::delivery::request::{self, OutgoingRequest};
use crate::ids::{EventId, SubscriptionId, Tenant};
use crate::model::{Event, ManagedBy, Payload, Subscription};
use crate::plugin::{
    LoadedPlugin, Outcome, PluginLimits, PluginRuntime, TransformInput, TransformReport,
};

/// The URL used when none is given.
pub const DEFAULT_URL: &str = "https://receiver.example/hook";

/// Why a dry run could not start.
#[derive(Debug, thiserror::Error)]
pub enum DryRunError {
    /// The event file does not parse as an event.
    #[error("the event file is not a valid event: {0}")]
    Event(String),
    /// The plugin config is not a JSON object.
    #[error("the plugin config is not a JSON object: {0}")]
    Config(String),
}

#[derive(Deserialize)]
struct EventFile {
    #[serde(rename = "type")]
    event_type: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    source_id: Option<String>,
    #[serde(default)]
    tenant: Option<Tenant>,
    #[serde(default)]
    timestamp: Option<Timestamp>,
    #[serde(default)]
    content_type: Option<String>,
    payload: Payload,
}

/// Turns an event file into the event the server would have stored.
pub fn parse_event(text: &str, now: Timestamp) -> Result<Event, DryRunError> {
    let f: EventFile = serde_json::from_str(text).map_err(|e| DryRunError::Event(e.to_string()))?;
    let (id, source_id) = match f.id.as_deref().map(str::parse::<EventId>) {
        Some(Ok(id)) => (id, f.source_id),
        _ => (EventId::generate(), f.source_id.or(f.id)),
    };
    Ok(Event {
        id,
        source_id,
        event_type: f.event_type,
        tenant: f
            .tenant
            .unwrap_or_else(|| "dry-run".parse().expect("a valid tenant")),
        timestamp: f.timestamp.unwrap_or(now),
        content_type: f.content_type.unwrap_or_else(|| "application/json".into()),
        payload: f.payload,
    })
}

/// The outcome of a dry run: the plugin's report and, on deliver, the request.
pub struct DryRun {
    /// What the plugin did, with its logs.
    pub report: TransformReport,
    /// On deliver, the request hookshape would send, or why it could not build one.
    pub request: Option<Result<OutgoingRequest, request::RequestError>>,
}

/// Runs the transform as a delivery attempt at `now` would.
pub async fn run(
    runtime: &PluginRuntime,
    plugin: &LoadedPlugin,
    limits: PluginLimits,
    event: &Event,
    config: serde_json::Value,
    url: &str,
    now: Timestamp,
) -> Result<DryRun, DryRunError> {
    if !(config.is_object() || config.is_null()) {
        return Err(DryRunError::Config(config.to_string()));
    }
    let sub = Subscription {
        id: "dry-run".parse::<SubscriptionId>().expect("a valid id"),
        tenant: event.tenant.clone(),
        url: url.to_owned(),
        events: vec![event.event_type.clone()],
        description: None,
        headers: Default::default(),
        enabled: true,
        disabled_reason: None,
        ordered: false,
        plugin: None,
        plugin_config: config,
        secret: Secret::generate().to_whsec(),
        managed_by: ManagedBy::Api,
        created_at: now,
        updated_at: now,
        consecutive_failures: 0,
        previous_secret: None,
    };
    let config_json = match &sub.plugin_config {
        serde_json::Value::Null => "{}".to_owned(),
        v => v.to_string(),
    };
    let input = TransformInput {
        event,
        subscription_id: sub.id.as_str(),
        url,
        config_json: &config_json,
    };
    let report = runtime.transform(plugin, limits, input).await;
    let request = match &report.result {
        Ok(Outcome::Deliver(p)) => Some(request::build(event, &sub, Some(p), now)),
        _ => None,
    };
    Ok(DryRun { report, request })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_files_and_stored_events_both_parse() {
        let sample = r#"{"type": "report_run_completed", "id": "as-run-456", "payload": {"a": 1}}"#;
        let e = parse_event(sample, Timestamp(5)).unwrap();
        assert_eq!(e.source_id.as_deref(), Some("as-run-456"));
        assert!(e.id.as_str().starts_with("evt_"));
        assert_eq!(e.timestamp, Timestamp(5));
        assert_eq!(e.tenant.as_str(), "dry-run");

        let id = EventId::generate();
        let stored = format!(
            r#"{{"id": "{id}", "source_id": "x", "type": "t", "tenant": "acme", "timestamp": "2025-11-23T12:13:20.123Z",
                "content_type": "application/xml", "payload": "<a/>", "deliveries": []}}"#
        );
        let e = parse_event(&stored, Timestamp(5)).unwrap();
        assert_eq!(e.id, id);
        assert_eq!(e.tenant.as_str(), "acme");
        assert_eq!(e.timestamp, Timestamp(1_763_900_000_123));
        assert_eq!(e.payload_bytes(), b"<a/>");
        assert!(parse_event("{}", Timestamp(0)).is_err());
    }
}
