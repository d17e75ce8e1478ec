//! The domain records: events, subscriptions, deliveries and attempts.
//!
//! These are what the store keeps (serde gives their stored JSON); the API
//! answers with its own types, made from these (see `api`). States are enums,
//! not strings, so a typo cannot invent a new state.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::headers::HeaderSet;
use crate::ids::{AttemptId, DeliveryId, EventId, PluginName, SubscriptionId, Tenant};

/// An ingested event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Assigned by hookshape at ingest.
    pub id: EventId,
    /// The source's own id, used to make ingest idempotent.
    pub source_id: Option<String>,
    /// The event type (`type` on the wire), e.g. `project.updated`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The tenant the event was posted to.
    pub tenant: Tenant,
    /// When hookshape ingested it.
    pub timestamp: Timestamp,
    /// The media type the source posted the payload with.
    pub content_type: String,
    /// Any JSON for JSON content types; a string holding the document otherwise.
    pub payload: Payload,
}

impl Event {
    /// True when the content type is JSON (`application/json`, `...+json`).
    pub fn is_json(&self) -> bool {
        is_json_content_type(&self.content_type)
    }

    /// The payload as the bytes a plugin sees: JSON text, or the document itself.
    pub fn payload_bytes(&self) -> Vec<u8> {
        if !self.is_json()
            && let Ok(document) = serde_json::from_str::<String>(self.payload.json())
        {
            return document.into_bytes();
        }
        self.payload.json().as_bytes().to_vec()
    }
}

/// An event's payload: the JSON text exactly as the source sent it.
///
/// Kept as text rather than parsed into a tree, so the payload a receiver or
/// plugin gets is byte for byte what was posted (numbers such as `12.50` or
/// `18446744073709551616` survive as written), and ingesting, storing,
/// loading and sending an event never builds and re-prints the tree.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Payload(Box<serde_json::value::RawValue>);

impl Payload {
    /// The payload of a JSON value made by hookshape itself (test events).
    pub fn from_value(value: &serde_json::Value) -> Payload {
        Payload(serde_json::value::to_raw_value(value).expect("a JSON value serialises"))
    }

    /// The JSON text.
    pub fn json(&self) -> &str {
        self.0.get()
    }

    /// True when the payload is a JSON string (what a document must be).
    pub fn is_string(&self) -> bool {
        self.json().starts_with('"')
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        self.json() == other.json()
    }
}

/// `application/json`, `application/cloudevents+json` and the like, parameters ignored.
pub fn is_json_content_type(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || essence.ends_with("+json")
}

/// Who owns a subscription's definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ManagedBy {
    /// Created through the HTTP API; the API may change it.
    Api,
    /// Declared in the admin's TOML; reconciled at start, read-only over the API.
    Config,
}

/// A receiver of a tenant's events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscription {
    /// Assigned by hookshape when the subscription is created.
    pub id: SubscriptionId,
    /// The tenant whose events it receives.
    pub tenant: Tenant,
    /// The endpoint deliveries are POSTed to.
    pub url: String,
    /// Exact event types or patterns (`project.*`, `*`).
    pub events: Vec<String>,
    /// Free text for the people who manage it.
    #[serde(default)]
    pub description: Option<String>,
    /// Extra headers sent with every delivery, before the plugin's.
    #[serde(default)]
    pub headers: HeaderSet,
    /// Disabled subscriptions get no new deliveries.
    pub enabled: bool,
    /// Why hookshape disabled it (410, too many failures); null when enabled or disabled by hand.
    #[serde(default)]
    pub disabled_reason: Option<String>,
    /// Deliver one at a time, in ingest order.
    #[serde(default)]
    pub ordered: bool,
    /// The transform run on each event before it is sent, if any.
    #[serde(default)]
    pub plugin: Option<PluginName>,
    /// Handed to the plugin with each event; `null` when none.
    #[serde(default)]
    pub plugin_config: serde_json::Value,
    /// `whsec_` + base64 key.
    pub secret: String,
    /// Whether the API or the config file owns it.
    pub managed_by: ManagedBy,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
    /// Finally-failed deliveries in a row, for `disable_after_failures`.
    #[serde(default)]
    pub consecutive_failures: u32,
    /// The key the last rotation replaced, while deliveries are still signed with it too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret: Option<PreviousSecret>,
}

/// A rotated-out signing key. Its end is fixed at the rotation, so a later
/// config change does not stretch or cut an overlap receivers were told about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviousSecret {
    /// `whsec_` + base64 key.
    pub key: String,
    /// When it was rotated out.
    pub rotated_at: Timestamp,
    /// Deliveries before this moment carry its signature too.
    pub until: Timestamp,
}

impl Subscription {
    /// Does this subscription want events of this type?
    pub fn matches(&self, event_type: &str) -> bool {
        self.events.iter().any(|p| pattern_matches(p, event_type))
    }
}

#[cfg(test)]
impl Subscription {
    /// An enabled API subscription `id` of tenant `acme` to every event, with
    /// no headers or plugin: the unit tests' fixture, changed with `..`.
    pub(crate) fn for_tests(id: &str) -> Subscription {
        Subscription {
            id: id.parse().expect("a valid test subscription id"),
            tenant: "acme".parse().expect("a valid tenant"),
            url: "https://example.com/hook".into(),
            events: vec!["*".into()],
            description: None,
            headers: Default::default(),
            enabled: true,
            disabled_reason: None,
            ordered: false,
            plugin: None,
            plugin_config: serde_json::Value::Null,
            secret: "whsec_x".into(),
            managed_by: ManagedBy::Api,
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
            consecutive_failures: 0,
            previous_secret: None,
        }
    }
}

/// `*` matches everything; a trailing `*` matches any suffix (`project.*`);
/// anything else matches exactly. Operational events (`hookshape.*`) are
/// matched only by their exact names, so a catch-all does not start
/// receiving hookshape's reports about itself.
pub fn pattern_matches(pattern: &str, event_type: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => event_type.starts_with(prefix) && !is_operational(event_type),
        None => pattern == event_type,
    }
}

/// The prefix of hookshape's own operational event types; sources may not use it.
pub const OPERATIONAL_PREFIX: &str = "hookshape.";

/// True for hookshape's own operational event types.
pub fn is_operational(event_type: &str) -> bool {
    event_type.starts_with(OPERATIONAL_PREFIX)
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Waiting for its next attempt.
    Pending,
    /// A 2xx answer was received.
    Delivered,
    /// Gave up: retries exhausted or a permanent failure.
    Failed,
    /// The plugin chose not to send it.
    Skipped,
    /// Dropped while still pending, by hand or with its subscription.
    Cancelled,
}

impl DeliveryState {
    /// True for every state but `Pending`: nothing more will happen to it.
    pub fn is_final(self) -> bool {
        self != DeliveryState::Pending
    }
}

/// One event on its way to one subscription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// Assigned when the event fans out to the subscription.
    pub id: DeliveryId,
    /// The tenant of the event and the subscription.
    pub tenant: Tenant,
    /// The event being delivered.
    pub event_id: EventId,
    /// The subscription it goes to.
    pub subscription_id: SubscriptionId,
    /// Where it stands.
    pub state: DeliveryState,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the next attempt is due; null once the state is final.
    pub next_attempt_at: Option<Timestamp>,
    /// When the event fanned out to the subscription.
    pub created_at: Timestamp,
}

impl Delivery {
    /// A new pending delivery of `event` to subscription `sub`, due at `now`.
    pub fn new(event: &Event, sub: &SubscriptionId, now: Timestamp) -> Delivery {
        Delivery {
            id: DeliveryId::generate(),
            tenant: event.tenant.clone(),
            event_id: event.id.clone(),
            subscription_id: sub.clone(),
            state: DeliveryState::Pending,
            attempts: 0,
            next_attempt_at: Some(now),
            created_at: now,
        }
    }
}

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// The receiver answered 2xx.
    Delivered,
    /// Will be retried, or has given up.
    Failed,
    /// The plugin chose not to send; its reason is in `error`.
    Skipped,
    /// Plugin error, trap, timeout or memory cap.
    TransformFailed,
    /// The target resolved to an address hookshape may not call.
    Refused,
}

/// A plugin log line kept on the attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LogLine {
    /// The level the plugin logged at, e.g. `info`.
    pub level: String,
    /// What the plugin logged.
    pub message: String,
}

/// One try at a delivery, with everything needed to debug it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// Assigned when the attempt is recorded.
    pub id: AttemptId,
    /// The tenant of the delivery.
    pub tenant: Tenant,
    /// The delivery this attempt was for.
    pub delivery_id: DeliveryId,
    /// The event being delivered.
    pub event_id: EventId,
    /// The event's type, kept so attempts can be listed without loading the event.
    pub event_type: String,
    /// The subscription being delivered to.
    pub subscription_id: SubscriptionId,
    /// When the attempt started.
    pub created_at: Timestamp,
    /// Counts from 1 within a delivery.
    pub attempt: u32,
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// The receiver's HTTP status, when it answered.
    pub status_code: Option<u16>,
    /// How long the attempt took, plugin and request together.
    pub duration_ms: u64,
    /// The headers sent, signature headers included.
    pub request_headers: BTreeMap<String, String>,
    /// The body sent, cut at [`KEPT_BODY_BYTES`]; none when nothing was sent.
    pub request_body: Option<String>,
    /// True when `request_body` was cut.
    #[serde(default)]
    pub request_body_truncated: bool,
    /// The receiver's answer, cut at [`KEPT_BODY_BYTES`].
    pub response_body: Option<String>,
    /// True when `response_body` was cut.
    #[serde(default)]
    pub response_body_truncated: bool,
    /// What the plugin logged while it ran.
    pub plugin_logs: Vec<LogLine>,
    /// The plugin version that ran, when one did.
    #[serde(default)]
    pub plugin_sha256: Option<String>,
    /// What went wrong, or the plugin's skip reason.
    pub error: Option<String>,
}

/// Bodies kept on attempts are cut here.
pub const KEPT_BODY_BYTES: usize = 64 * 1024;

/// A body as kept on an attempt: at most [`KEPT_BODY_BYTES`], lossy UTF-8, and whether it was cut.
pub fn kept_body(bytes: &[u8]) -> (String, bool) {
    let cut = bytes.len() > KEPT_BODY_BYTES;
    let kept = &bytes[..bytes.len().min(KEPT_BODY_BYTES)];
    (String::from_utf8_lossy(kept).into_owned(), cut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_exact_prefix_and_all() {
        assert!(pattern_matches("*", "anything"));
        assert!(pattern_matches("project.*", "project.published"));
        assert!(!pattern_matches("project.*", "projects"));
        assert!(pattern_matches(
            "report_run_completed",
            "report_run_completed"
        ));
        assert!(!pattern_matches(
            "report_run_completed",
            "report_run_completed2"
        ));
    }

    #[test]
    fn operational_events_match_only_their_exact_names() {
        let failed = "hookshape.delivery.failed";
        assert!(pattern_matches(failed, failed));
        assert!(!pattern_matches("*", failed));
        assert!(!pattern_matches("hookshape.*", failed));
        assert!(!pattern_matches("hookshape.delivery.*", failed));
        assert!(!is_operational("project.published"));
    }

    #[test]
    fn json_content_types_are_recognised() {
        assert!(is_json_content_type("application/json"));
        assert!(is_json_content_type("Application/JSON; charset=utf-8"));
        assert!(is_json_content_type("application/cloudevents+json"));
        assert!(!is_json_content_type("application/xml"));
    }

    #[test]
    fn kept_bodies_are_cut_and_marked() {
        let (s, cut) = kept_body(b"short");
        assert_eq!((s.as_str(), cut), ("short", false));
        let big = vec![b'x'; KEPT_BODY_BYTES + 10];
        let (s, cut) = kept_body(&big);
        assert_eq!(s.len(), KEPT_BODY_BYTES);
        assert!(cut);
    }
}
