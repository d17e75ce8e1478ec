//! The application's use cases, one method each, behind the HTTP API.
//!
//! Handlers parse and authorize; everything else (validation that needs
//! state, matching, storing, durability, waking the dispatcher) happens
//! here, so the API stays thin and the rules live in one place. Subscription
//! use cases and the config reconciliation are in [`subscriptions`], dry
//! runs in [`dry_run`], recovering after an outage in [`recover`].

pub mod dry_run;
mod recover;
pub mod retention;
mod subscriptions;

use std::sync::Arc;

use tokio::sync::Notify;

pub use dry_run::DryRunEvent;
pub use subscriptions::{NewSubscription, ReconcileReport, SubscriptionChanges, TenantSummary};

use crate::clock::Timestamp;
use crate::config::Config;
use crate::ids::{AttemptId, DeliveryId, EventId, PluginName, SubscriptionId, Tenant};
use crate::metrics::Metrics;
use crate::model::{
    Attempt, Delivery, Event, OPERATIONAL_PREFIX, Payload, is_json_content_type, is_operational,
};
use crate::plugin::PluginLimits;
use crate::registry::{PluginInfo, RegistryError};
use crate::services::Services;
use crate::store::{Ingested, StoreError};

/// Longest accepted event type and source id.
const MAX_NAME_LEN: usize = 256;

#[cfg(test)]
mod properties;

/// A failed use case, mapped to an HTTP status by the API.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The thing asked for does not exist (404).
    #[error("{what} {id} not found")]
    NotFound {
        /// What kind of thing, e.g. `subscription`.
        what: &'static str,
        /// The id that was asked for.
        id: String,
    },
    /// The request clashes with what is stored (409).
    #[error("{message}")]
    Conflict {
        /// The machine-readable error code.
        code: &'static str,
        /// What clashed, for people.
        message: String,
    },
    /// The request is well-formed but not acceptable (422).
    #[error("{message}")]
    Invalid {
        /// The machine-readable error code.
        code: &'static str,
        /// What is wrong, for people.
        message: String,
    },
    /// The body exceeds its size limit (413).
    #[error("the body is larger than {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The store takes no writes for now; the client should retry after
    /// `retry_after` (503).
    #[error("{message}")]
    Unavailable {
        /// The machine-readable error code.
        code: &'static str,
        /// Why, for people.
        message: String,
        /// When the client may try again.
        retry_after: std::time::Duration,
    },
    /// Anything else: a store or plugin failure the client cannot fix (500).
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

/// How long a client is told to wait when the store is behind (it catches
/// up within a flush or two), and when it is full (space comes back with
/// retention's next sweep or an operator, not in a second).
const RETRY_OVERLOADED: std::time::Duration = std::time::Duration::from_secs(1);
const RETRY_FULL: std::time::Duration = std::time::Duration::from_secs(60);

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        let (code, retry_after) = match &e {
            StoreError::Overloaded | StoreError::Stalled(_) | StoreError::Closed => {
                ("overloaded", RETRY_OVERLOADED)
            }
            StoreError::Full(_) => ("storage_full", RETRY_FULL),
            StoreError::Backend(_) | StoreError::Corrupt { .. } | StoreError::Journal(_) => {
                tracing::error!(error = %e, "storage failure");
                return AppError::Internal(e.to_string());
            }
        };
        tracing::warn!(error = %e, "refusing a write for now");
        AppError::Unavailable {
            code,
            message: e.to_string(),
            retry_after,
        }
    }
}

/// An event to ingest, as its source gave it.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// The event type, e.g. `project.updated`.
    pub event_type: String,
    /// The source's own id, for idempotent ingest.
    pub source_id: Option<String>,
    /// `None`: `application/json`.
    pub content_type: Option<String>,
    /// The body as posted.
    pub payload: Payload,
}

/// What an ingest stored, or found stored for a repeated source id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestReceipt {
    /// The stored event's id (the earlier one's for a duplicate).
    pub id: EventId,
    /// How many deliveries the event fanned out to.
    pub deliveries: usize,
    /// The source id was seen before: nothing new was stored.
    pub duplicate: bool,
}

/// An event with its deliveries.
#[derive(Debug, Clone, PartialEq)]
pub struct EventDetails {
    /// The stored event.
    pub event: Event,
    /// Its deliveries, one per matching subscription.
    pub deliveries: Vec<Delivery>,
}

/// Attempts newest first, and the cursor of the next page.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptPage {
    /// The page's attempts.
    pub attempts: Vec<Attempt>,
    /// `None` on the last page.
    pub next: Option<AttemptId>,
}

/// The use cases, over the shared services; cheap to clone into every handler.
#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    ctx: Arc<Services>,
    wake: Arc<Notify>,
}

impl App {
    /// `wake` is the dispatcher's: new work nudges it at once.
    pub fn new(config: Config, ctx: Arc<Services>, wake: Arc<Notify>) -> Self {
        App {
            inner: Arc::new(Inner { config, ctx, wake }),
        }
    }

    /// The configuration the server was started with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The Prometheus counters.
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

    /// Whether the store takes events now; the reason in words when not.
    pub fn readiness(&self) -> Result<(), String> {
        self.ctx().store.readiness().map_err(|e| e.to_string())
    }

    fn ctx(&self) -> &Services {
        &self.inner.ctx
    }

    fn now(&self) -> Timestamp {
        self.ctx().clock.now()
    }

    /// Stores the event and one delivery per matching subscription, durably,
    /// then wakes the dispatcher. A repeated source id answers the first receipt.
    #[tracing::instrument(skip_all, fields(tenant = %tenant, event_id))]
    pub async fn ingest(
        &self,
        tenant: &Tenant,
        input: NewEvent,
    ) -> Result<IngestReceipt, AppError> {
        if is_operational(&input.event_type) {
            return Err(AppError::invalid(
                "invalid_request",
                format!(
                    "event types starting with {OPERATIONAL_PREFIX:?} are hookshape's own operational events"
                ),
            ));
        }
        let event = checked_event(tenant, input, self.now())?;
        let ingested = self.ctx().publish(&event).await?;
        let receipt = match ingested {
            Ingested::New(r) => {
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

    /// One of the tenant's events with its deliveries, or `NotFound`.
    pub async fn get_event(&self, tenant: &Tenant, id: &EventId) -> Result<EventDetails, AppError> {
        let event = self
            .ctx()
            .store
            .get_event(id)
            .await?
            .filter(|e| &e.tenant == tenant)
            .ok_or_else(|| AppError::not_found("event", id))?;
        let deliveries = self.ctx().store.event_deliveries(id).await?;
        Ok(EventDetails { event, deliveries })
    }

    /// A page of a subscription's attempts, newest first, older than `before` when given.
    pub async fn list_attempts(
        &self,
        tenant: &Tenant,
        id: &SubscriptionId,
        limit: usize,
        before: Option<&AttemptId>,
    ) -> Result<AttemptPage, AppError> {
        self.get_subscription(tenant, id).await?;
        let slice = self
            .ctx()
            .store
            .list_attempts(tenant, id, limit, before)
            .await?;
        Ok(AttemptPage {
            attempts: slice.attempts,
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
            .get_attempt(attempt)
            .await?
            .filter(|a| &a.tenant == tenant)
            .ok_or_else(|| AppError::not_found("attempt", attempt))?;
        let sub = self.get_subscription(tenant, &a.subscription_id).await?;
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
            .get_event(&a.event_id)
            .await?
            .ok_or_else(|| AppError::not_found("event", &a.event_id))?;
        let d = Delivery::new(&event, &sub.id, self.now());
        self.ctx().store.add_delivery(&d, sub.ordered).await?;
        self.ctx().store.durable().await?;
        self.inner.wake.notify_one();
        Ok(d.id)
    }

    /// Stores an API-managed plugin once it compiles; true when the name is new.
    pub async fn put_plugin(
        &self,
        name: &PluginName,
        wasm: bytes::Bytes,
        limits: PluginLimits,
    ) -> Result<(PluginInfo, bool), AppError> {
        let result = self.ctx().plugins.put(name, wasm, limits, self.now()).await;
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

    /// The registered plugins.
    pub fn list_plugins(&self) -> Result<Vec<PluginInfo>, AppError> {
        Ok(self.ctx().plugins.list())
    }
}

/// The event an ingest would store at `now`, once its fields pass the rules
/// (names, content type, a non-JSON document held in a string).
fn checked_event(tenant: &Tenant, input: NewEvent, now: Timestamp) -> Result<Event, AppError> {
    let NewEvent {
        event_type,
        source_id,
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
    Ok(Event {
        id: EventId::generate(),
        source_id,
        event_type,
        tenant: tenant.clone(),
        timestamp: now,
        content_type,
        payload,
    })
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
