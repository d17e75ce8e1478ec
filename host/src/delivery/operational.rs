//! Operational events: what hookshape tells a tenant about its own
//! deliveries, as events of the tenant (`hookshape.delivery.failed`,
//! `hookshape.subscription.disabled`), so an admin can subscribe Slack to
//! them with the plugins already there.
//!
//! Only subscriptions that name them exactly receive them (patterns never
//! match them, see [`crate::model::pattern_matches`]), and nothing about
//! the delivery of an operational event is reported: a subscription that
//! fails to take them does not produce more of them.

use serde_json::json;

use crate::clock::Timestamp;
use crate::delivery::worker::Job;
use crate::ids::EventId;
use crate::model::{DeliveryState, Event, Payload, is_operational};
use crate::store::AttemptResult;

/// A delivery finally failed (its last retry, or a permanent failure).
pub const DELIVERY_FAILED: &str = "hookshape.delivery.failed";
/// A subscription was disabled automatically (410, or too many failures).
pub const SUBSCRIPTION_DISABLED: &str = "hookshape.subscription.disabled";

/// The operational events an attempt's result calls for, stamped `now`.
pub fn reports(job: &Job, result: &AttemptResult, now: Timestamp) -> Vec<Event> {
    if is_operational(&job.event.event_type) {
        return Vec::new();
    }
    let event = |event_type: &str, payload: serde_json::Value| Event {
        id: EventId::generate(),
        source_id: None,
        event_type: event_type.to_owned(),
        tenant: job.event.tenant.clone(),
        timestamp: now,
        content_type: "application/json".to_owned(),
        payload: Payload::from_value(&payload),
    };
    let attempt = &result.attempt;
    let mut out = Vec::new();
    if result.delivery.state == DeliveryState::Failed {
        out.push(event(
            DELIVERY_FAILED,
            json!({
                "subscription_id": job.subscription.id,
                "delivery_id": result.delivery.id,
                "event_id": job.event.id,
                "event_type": job.event.event_type,
                "attempts": result.delivery.attempts,
                "reason": attempt.error,
                "last_status": attempt.status_code,
            }),
        ));
    }
    if let Some(sub) = result.subscription.as_ref().filter(|s| !s.enabled) {
        out.push(event(
            SUBSCRIPTION_DISABLED,
            json!({
                "subscription_id": sub.id,
                "reason": sub.disabled_reason,
                "event_id": job.event.id,
                "last_status": attempt.status_code,
            }),
        ));
    }
    out
}
