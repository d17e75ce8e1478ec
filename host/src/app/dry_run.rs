//! Dry runs: what a subscription would send for an event, with nothing sent
//! or stored. Two entry points share [`render`](crate::delivery::render):
//! [`App::dry_run`] (`POST .../subscriptions/{id}/dry-run`: a stored
//! subscription and its registered plugin, on a stored or a pasted event) and
//! `hookshape plugin run` ([`parse_event`] and [`offline_subscription`]: a
//! `.wasm` file on an event file, offline).
//!
//! The event file may be a source's body (`samples/*.json`: `type`, `id` as
//! the source id, `content_type`, `payload`) or a stored event as the API
//! shows it (`GET .../events/{id}`: `evt_` id, `tenant`, `timestamp`), so an
//! event that misbehaved in production can be replayed byte for byte.

use hookshape_signing::Secret;
use serde::Deserialize;

use super::{App, AppError, NewEvent, checked_event};
use crate::clock::Timestamp;
use crate::delivery::render::{self, Rendered};
use crate::ids::{EventId, SubscriptionId, Tenant};
use crate::model::{Event, ManagedBy, Payload, Subscription};

/// The URL `plugin run` uses when none is given.
pub const DEFAULT_URL: &str = "https://receiver.example/hook";

/// The tenant `plugin run` uses when neither `--tenant` nor the file names one.
pub const DEFAULT_TENANT: &str = "dry-run";

/// The event a dry run transforms.
#[derive(Debug, Clone)]
pub enum DryRunEvent {
    /// One of the tenant's stored events.
    Stored(EventId),
    /// An event as a source would post it; checked as an ingest checks it.
    Posted(NewEvent),
}

impl App {
    /// Runs the subscription's plugin on the event and builds the request a
    /// delivery now would send, sending and storing nothing. A disabled
    /// subscription can be tried too.
    pub async fn dry_run(
        &self,
        tenant: &Tenant,
        id: &SubscriptionId,
        event: DryRunEvent,
    ) -> Result<Rendered, AppError> {
        let sub = self.get_subscription(tenant, id).await?;
        let now = self.now();
        let event = match event {
            DryRunEvent::Stored(event_id) => self.get_event(tenant, &event_id).await?.event,
            DryRunEvent::Posted(posted) => checked_event(tenant, posted, now)?,
        };
        Ok(render::render_with(&self.ctx().plugins, &event, &sub, now).await)
    }
}

/// Why `plugin run` could not start.
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

/// Turns an event file into the event the server would have stored. Its
/// tenant is `tenant` when given, else the file's, else [`DEFAULT_TENANT`].
pub fn parse_event(
    text: &str,
    tenant: Option<Tenant>,
    now: Timestamp,
) -> Result<Event, DryRunError> {
    let f: EventFile = serde_json::from_str(text).map_err(|e| DryRunError::Event(e.to_string()))?;
    let (id, source_id) = match f.id.as_deref().map(str::parse::<EventId>) {
        Some(Ok(id)) => (id, f.source_id),
        _ => (EventId::generate(), f.source_id.or(f.id)),
    };
    Ok(Event {
        id,
        source_id,
        event_type: f.event_type,
        tenant: tenant
            .or(f.tenant)
            .unwrap_or_else(|| DEFAULT_TENANT.parse().expect("a valid tenant")),
        timestamp: f.timestamp.unwrap_or(now),
        content_type: f.content_type.unwrap_or_else(|| "application/json".into()),
        payload: f.payload,
    })
}

/// The subscription `plugin run` pretends the event goes to: `url`, the
/// plugin `config`, a fresh secret.
pub fn offline_subscription(
    event: &Event,
    config: serde_json::Value,
    url: &str,
    now: Timestamp,
) -> Result<Subscription, DryRunError> {
    if !(config.is_object() || config.is_null()) {
        return Err(DryRunError::Config(config.to_string()));
    }
    Ok(Subscription {
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
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_files_and_stored_events_both_parse() {
        let sample = r#"{"type": "report_run_completed", "id": "as-run-456", "payload": {"a": 1}}"#;
        let e = parse_event(sample, None, Timestamp(5)).unwrap();
        assert_eq!(e.source_id.as_deref(), Some("as-run-456"));
        assert!(e.id.as_str().starts_with("evt_"));
        assert_eq!(e.timestamp, Timestamp(5));
        assert_eq!(e.tenant.as_str(), DEFAULT_TENANT);
        let e = parse_event(sample, Some("acme".parse().unwrap()), Timestamp(5)).unwrap();
        assert_eq!(e.tenant.as_str(), "acme");

        let id = EventId::generate();
        let stored = format!(
            r#"{{"id": "{id}", "source_id": "x", "type": "t", "tenant": "acme", "timestamp": "2025-11-23T12:13:20.123Z",
                "content_type": "application/xml", "payload": "<a/>", "deliveries": []}}"#
        );
        let e = parse_event(&stored, None, Timestamp(5)).unwrap();
        assert_eq!(e.id, id);
        assert_eq!(e.tenant.as_str(), "acme");
        assert_eq!(e.timestamp, Timestamp(1_763_900_000_123));
        assert_eq!(e.payload_bytes(), b"<a/>");
        let e = parse_event(&stored, Some("globex".parse().unwrap()), Timestamp(5)).unwrap();
        assert_eq!(e.tenant.as_str(), "globex", "--tenant wins over the file's");
        assert!(parse_event("{}", None, Timestamp(0)).is_err());
    }

    #[test]
    fn the_offline_subscription_takes_an_object_config_only() {
        let e = parse_event(r#"{"type": "t", "payload": 1}"#, None, Timestamp(0)).unwrap();
        let sub = offline_subscription(&e, serde_json::json!({"a": 1}), DEFAULT_URL, Timestamp(0));
        assert_eq!(sub.unwrap().url, DEFAULT_URL);
        let err = offline_subscription(&e, serde_json::json!([1]), DEFAULT_URL, Timestamp(0));
        assert!(matches!(err, Err(DryRunError::Config(_))));
    }
}
