//! Recovering after an outage: every event whose delivery to a subscription
//! finally failed since a time is sent again, as a new delivery, oldest
//! first (`POST .../subscriptions/{id}/recover`).
//!
//! The failed deliveries are found through the subscription's attempts
//! (every failed delivery has at least one, made after its event was
//! ingested), so this needs nothing from the store beyond what listing
//! attempts and reading events already give; the cost is one pass over the
//! subscription's attempts since `since`. A failed delivery whose attempts
//! retention has already deleted (`retention.attempts` shorter than
//! `retention.events`) is not found.

use std::collections::BTreeSet;

use super::{App, AppError};
use crate::clock::Timestamp;
use crate::ids::{EventId, SubscriptionId, Tenant};
use crate::model::{AttemptOutcome, Delivery, DeliveryState};

/// Attempts read per store call while looking for failures.
const PAGE: usize = 250;

impl App {
    /// Sends again every event ingested at or after `since` whose latest
    /// delivery to the subscription is `failed`, each as one new delivery,
    /// oldest event first (an `ordered` subscription gets them in that
    /// order). An event whose failure was already followed by a newer
    /// delivery (a resend, an earlier recover) is not sent again, so
    /// repeating a recover sends nothing twice. Returns how many deliveries
    /// it made; 409 for a disabled subscription.
    pub async fn recover(
        &self,
        tenant: &Tenant,
        id: &SubscriptionId,
        since: Timestamp,
    ) -> Result<usize, AppError> {
        let sub = self.get_subscription(tenant, id).await?;
        if !sub.enabled {
            return Err(AppError::Conflict {
                code: "subscription_disabled",
                message: format!("subscription {id} is disabled; enable it before recovering"),
            });
        }
        let store = &self.ctx().store;
        // Events with a failed attempt since `since`; ids sort by ingest time.
        let mut suspects = BTreeSet::<EventId>::new();
        let mut before = None;
        'pages: loop {
            let page = store
                .list_attempts(tenant, id, PAGE, before.as_ref())
                .await?;
            for attempt in page.attempts {
                if attempt.created_at < since {
                    break 'pages;
                }
                if matches!(
                    attempt.outcome,
                    AttemptOutcome::Failed
                        | AttemptOutcome::Refused
                        | AttemptOutcome::TransformFailed
                ) {
                    suspects.insert(attempt.event_id);
                }
            }
            match page.next {
                Some(next) => before = Some(next),
                None => break,
            }
        }
        let now = self.now();
        let mut made = 0;
        for event_id in suspects {
            let Some(event) = store.get_event(&event_id).await? else {
                continue;
            };
            if event.timestamp < since {
                continue;
            }
            // Deliveries come made-at-ingest first, then later ones oldest first.
            let latest = store
                .event_deliveries(&event_id)
                .await?
                .into_iter()
                .rfind(|d| &d.subscription_id == id);
            if latest.is_some_and(|d| d.state == DeliveryState::Failed) {
                let d = Delivery::new(&event, id, now);
                store.add_delivery(&d, sub.ordered).await?;
                made += 1;
            }
        }
        if made > 0 {
            store.durable().await?;
            self.inner.wake.notify_one();
        }
        tracing::info!(tenant = %tenant, subscription = %id, deliveries = made, "recovered failed deliveries");
        Ok(made)
    }
}
