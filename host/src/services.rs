//! What the app and the dispatcher share: the store, the clock, the one
//! HTTP client, the plugin registry, the metrics and the delivery settings.
//! Built once by the server, then handed around as `Arc<Services>`.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::SharedClock;
use crate::http_client::HttpClient;
use crate::metrics::Metrics;
use crate::model::{Delivery, Event};
use crate::registry::PluginRegistry;
use crate::store::{Ingested, NewDelivery, SharedStore, StoreError};

/// The delivery settings from `[delivery]`.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Waits before retries 1..n; empty means no retries.
    pub retry_schedule: Vec<Duration>,
    /// Finally-failed deliveries in a row that disable a subscription; 0: never.
    pub disable_after_failures: u32,
    /// Concurrent attempts, all subscriptions together.
    pub max_in_flight: usize,
    /// Concurrent attempts of one subscription.
    pub max_in_flight_per_subscription: usize,
}

/// The services every request and every attempt uses.
pub struct Services {
    /// Where everything is kept.
    pub store: SharedStore,
    /// The one source of time.
    pub clock: SharedClock,
    /// The shared client deliveries are sent with.
    pub client: HttpClient,
    /// The plugins by name.
    pub plugins: Arc<PluginRegistry>,
    /// The Prometheus counters.
    pub metrics: Arc<Metrics>,
    /// The delivery settings.
    pub settings: Settings,
}

impl Services {
    /// Stores an event with one delivery per matching subscription, durably:
    /// what a source's ingest and hookshape's own operational events share.
    pub async fn publish(&self, event: &Event) -> Result<Ingested, StoreError> {
        let deliveries: Vec<NewDelivery> = self
            .store
            .matching_subscriptions(&event.tenant, &event.event_type)
            .await?
            .iter()
            .map(|s| NewDelivery {
                delivery: Delivery::new(event, &s.id, event.timestamp),
                ordered: s.ordered,
            })
            .collect();
        let ingested = self.store.ingest(event, &deliveries).await?;
        self.store.durable().await?;
        if matches!(ingested, Ingested::New(_)) {
            self.metrics.event_received();
        }
        Ok(ingested)
    }
}
