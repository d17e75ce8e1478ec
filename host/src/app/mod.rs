//! The application's use cases, one method each, behind the HTTP API.
//!
//! Handlers parse and authorize; everything else (validation that needs
//! state, matching, storing, durability, waking the delivery engine) happens
//! here, so the API stays thin and the rules live in one place. Subscription
//! use cases and the config reconciliation are in [`subscriptions`].

mod subscriptions;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

pub use subscriptions::{NewSubscription, ReconcileReport, SubscriptionPatch};

use crate::clock::Timestamp;
use crate::config::Config;
use crate::delivery::Context;
use crate::ids::{AttemptId, DeliveryId, EventId, PluginName, SubscriptionId, Tenant};
use crate::metrics::Metrics;
use crate::model::{Attempt, Delivery, DeliveryState, Event, Payload, is_json_content_type};
use crate::plugin::PluginLimits;
use crate::registry::{PluginInfo, RegistryError};
use crate::store::{Ingested, StoreError};

/// Longest accepted event type and source id.
const MAX_NAME_LEN: usize = 256;

/// A failed use case, mapped to an HTTP status by the API.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{what} {id} not found")]
    NotFound { what: &'static str, id: String },
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    #[error("the body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("internal error: {0}")]
    Internal(String),
}

impl AppError {
    pub(crate) fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        AppError::Invalid {
            code,
            message: message.into(),
        }
    }

    fn not_found(what: &'static str, id: impl ToString) -> Self {
        AppError::NotFound {
            what,
            id: id.to_string(),
        }
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "storage failure");
        AppError::Internal(e.to_string())
    }
}

/// An event as a source posts it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewEvent {
    #[serde(rename = "type")]
    pub event_type: String,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub content_type: Option<String>,
    pub payload: Payload,
}

/// The answer to an ingest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IngestReceipt {
    pub id: EventId,
    pub deliveries: usize,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
}

/// A delivery as shown on its event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeliverySummary {
    pub id: DeliveryId,
    pub subscription_id: SubscriptionId,
    pub state: DeliveryState,
    pub attempts: u32,
    pub next_attempt_at: Option<Timestamp>,
}

impl From<Delivery> for DeliverySummary {
    fn from(d: Delivery) -> Self {
        DeliverySummary {
            id: d.id,
            subscription_id: d.subscription_id,
            state: d.state,
            attempts: d.attempts,
            next_attempt_at: d.next_attempt_at,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventDetails {
    #[serde(flatten)]
    pub event: Event,
    pub deliveries: Vec<DeliverySummary>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttemptPage {
    pub data: Vec<Attempt>,
    pub next: Option<AttemptId>,
}

#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    ctx: Arc<Context>,
    wake: Arc<Notify>,
}

impl App {
    /// `wake` is the delivery engine's: new work nudges it at once.
    pub fn new(config: Config, ctx: Arc<Context>, wake: Arc<Notify>) -> Self {
        App {
            inner: Arc::new(Inner { config, ctx, wake }),
        }
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.ctx.metrics
    }

    /// The Prometheus text of every metric. The queue depth is read from the
    /// store here, at scrape time, because counting it costs a tree walk.
    pub fn metrics_text(&self) -> String {
        let metrics = self.metrics();
        metrics.set_queue_depth(self.ctx().store.queue_len() as u64);
        metrics.render()
    }

    fn ctx(&self) -> &Context {
        &self.inner.ctx
    }

    fn now(&self) -> Timestamp {
        self.ctx().clock.now()
    }

    /// Stores the event and one delivery per matching subscription, durably,
    /// then wakes the engine. A repeated source id answers the first receipt.
    #[tracing::instrument(skip_all, fields(tenant = %tenant, event_id))]
    pub async fn ingest(
        &self,
        tenant: &Tenant,
        input: NewEvent,
    ) -> Result<IngestReceipt, AppError> {
        let NewEvent {
            event_type,
            id: source_id,
            content_type,
            payload,
        } = input;
        check_name("type", &event_type)?;
        if let Some(s) = &source_id {
            check_name("id", s)?;
        }
        let content_type = content_type.unwrap_or_else(|| "application/json".to_owned());
        if content_type.trim().is_empty() || content_type.chars().any(|c| c.is_control()) {
            return Err(AppError::invalid(
                "invalid_request",
                "content_type must be a media type",
            ));
        }
        if !is_json_content_type(&content_type) && !payload.is_string() {
            return Err(AppError::invalid(
                "invalid_request",
                format!(
                    "payload must be a string holding the document when content_type is {content_type}"
                ),
            ));
        }
        let now = self.now();
        let event = Event {
            id: EventId::generate(),
            source_id,
            event_type,
            tenant: tenant.clone(),
            timestamp: now,
            content_type,
            payload,
        };
        let subs = self
            .ctx()
            .store
            .matching_subscriptions(tenant, &event.event_type);
        let deliveries: Vec<(Delivery, bool)> = subs
            .iter()
            .map(|s| (new_delivery(&event, &s.id, now), s.ordered))
            .collect();
        let ingested = self.ctx().store.ingest(&event, &deliveries)?;
        self.ctx().store.durable().await?;
        let receipt = match ingested {
            Ingested::New(r) => {
                self.ctx().metrics.event_received();
                if r.deliveries > 0 {
                    self.inner.wake.notify_one();
                }
                IngestReceipt {
                    id: r.id,
                    deliveries: r.deliveries,
                    duplicate: false,
                }
            }
            Ingested::Duplicate(r) => IngestReceipt {
                id: r.id,
                deliveries: r.deliveries,
                duplicate: true,
            },
        };
        tracing::Span::current().record("event_id", tracing::field::display(&receipt.id));
        tracing::debug!(
            deliveries = receipt.deliveries,
            duplicate = receipt.duplicate,
            "event stored"
        );
        Ok(receipt)
    }

    pub fn get_event(&self, tenant: &Tenant, id: &EventId) -> Result<EventDetails, AppError> {
        let event = self
            .ctx()
            .store
            .get_event(id)?
            .filter(|e| &e.tenant == tenant)
            .ok_or_else(|| AppError::not_found("event", id))?;
        let deliveries = self
            .ctx()
            .store
            .event_deliveries(id)?
            .into_iter()
            .map(Into::into)
            .collect();
        Ok(EventDetails { event, deliveries })
    }

    pub fn list_attempts(
        &self,
        tenant: &Tenant,
        id: &SubscriptionId,
        limit: usize,
        before: Option<&AttemptId>,
    ) -> Result<AttemptPage, AppError> {
        self.get_subscription(tenant, id)?;
        let slice = self.ctx().store.list_attempts(tenant, id, limit, before)?;
        Ok(AttemptPage {
            data: slice.attempts,
            next: slice.next,
        })
    }

    /// Sends the attempt's event to its subscription again, as a new delivery
    /// (the plugin runs again, with the version current now).
    pub async fn resend(
        &self,
        tenant: &Tenant,
        attempt: &AttemptId,
    ) -> Result<DeliveryId, AppError> {
        let a = self
            .ctx()
            .store
            .get_attempt(attempt)?
            .filter(|a| &a.tenant == tenant)
            .ok_or_else(|| AppError::not_found("attempt", attempt))?;
        let sub = self.get_subscription(tenant, &a.subscription_id)?;
        if !sub.enabled {
            return Err(AppError::Conflict {
                code: "subscription_disabled",
                message: format!(
                    "subscription {} is disabled; enable it before resending",
                    sub.id
                ),
            });
        }
        let event = self
            .ctx()
            .store
            .get_event(&a.event_id)?
            .ok_or_else(|| AppError::not_found("event", &a.event_id))?;
        let d = new_delivery(&event, &sub.id, self.now());
        self.ctx().store.add_delivery(&d, sub.ordered)?;
        self.ctx().store.durable().await?;
        self.inner.wake.notify_one();
        Ok(d.id)
    }

    pub async fn put_plugin(
        &self,
        name: &PluginName,
        wasm: bytes::Bytes,
        limits: PluginLimits,
    ) -> Result<(PluginInfo, bool), AppError> {
        let registry = self.ctx().plugins.clone();
        let now = self.now();
        let name2 = name.clone();
        // Compiling a component takes a while: keep it off the reactor threads.
        let result = tokio::task::spawn_blocking(move || registry.put(&name2, &wasm, limits, now))
            .await
            .map_err(|e| AppError::Internal(e.to_string()))?;
        let answer = result.map_err(|e| match e {
            RegistryError::ConfigManaged(_) => AppError::Conflict {
                code: "config_managed",
                message: e.to_string(),
            },
            RegistryError::Invalid { .. } => AppError::invalid("invalid_plugin", e.to_string()),
            other => AppError::Internal(other.to_string()),
        })?;
        self.ctx().store.durable().await?;
        Ok(answer)
    }

    pub fn list_plugins(&self) -> Result<Vec<PluginInfo>, AppError> {
        Ok(self.ctx().plugins.list())
    }
}

fn check_name(field: &str, value: &str) -> Result<(), AppError> {
    if value.is_empty() || value.len() > MAX_NAME_LEN || value.chars().any(|c| c.is_control()) {
        return Err(AppError::invalid(
            "invalid_request",
            format!("{field} must be 1 to {MAX_NAME_LEN} characters with no control characters"),
        ));
    }
    Ok(())
}

fn new_delivery(event: &Event, sub: &SubscriptionId, now: Timestamp) -> Delivery {
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
