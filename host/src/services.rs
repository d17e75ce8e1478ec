//! What the app and the dispatcher share: the store, the clock, the one
//! HTTP client, the plugin registry, the metrics and the delivery settings.
//! Built once by the server, then handed around as `Arc<Services>`.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::SharedClock;
use crate::http_client::HttpClient;
use crate::metrics::Metrics;
use crate::registry::PluginRegistry;
use crate::store::SharedStore;

/// The delivery settings from `[delivery]`.
#[derive(Debug, Clone)]
pub struct Settings {
    pub retry_schedule: Vec<Duration>,
    pub disable_after_failures: u32,
    pub max_in_flight: usize,
}

/// The services every request and every attempt uses.
pub struct Services {
    pub store: SharedStore,
    pub clock: SharedClock,
    pub client: HttpClient,
    pub plugins: Arc<PluginRegistry>,
    pub metrics: Arc<Metrics>,
    pub settings: Settings,
}
