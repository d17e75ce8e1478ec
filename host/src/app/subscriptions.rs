//! Subscription use cases: create (with an optional `verify` send), read,
//! patch, delete, and reconciling the config file's `[[subscriptions]]` into
//! sled at start. One validation path serves the API and the config.

use std::collections::{HashMap, HashSet};

use hookshape_signing::Secret;

use super::{App, AppError};
use crate::config::SubscriptionConfig;
use crate::delivery::{request, worker};
use crate::headers::HeaderSet;
use crate::http_client::check_literal_target;
use crate::ids::{EventId, PluginName, SubscriptionId, Tenant};
use crate::model::{Event, ManagedBy, Payload, PreviousSecret, Subscription};
use crate::store::Store;

/// A subscription to create; unset fields take their defaults.
#[derive(Debug, Clone)]
pub struct NewSubscription {
    /// The endpoint deliveries are POSTed to.
    pub url: String,
    /// Exact event types or patterns (`project.*`, `*`).
    pub events: Vec<String>,
    /// Free text for the people who manage it.
    pub description: Option<String>,
    /// Extra headers sent with every delivery.
    pub headers: HeaderSet,
    /// `None`: enabled.
    pub enabled: Option<bool>,
    /// Deliver one at a time, in ingest order.
    pub ordered: bool,
    /// The transform to run on each event, if any.
    pub plugin: Option<PluginName>,
    /// `None`: null.
    pub plugin_config: Option<serde_json::Value>,
    /// `whsec_...`; `None`: generated.
    pub secret: Option<String>,
    /// Send a `webhook.test` event first and store nothing unless it succeeds.
    pub verify: bool,
}

/// A tenant that has subscriptions, and how they stand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantSummary {
    /// The tenant.
    pub tenant: Tenant,
    /// How many subscriptions it has.
    pub subscriptions: usize,
    /// How many of them are disabled.
    pub disabled: usize,
    /// How many enabled ones have finally failed deliveries in a row.
    pub failing: usize,
}

/// Changes to a subscription: `None` leaves a field as it is; the nullable
/// fields take `Some(None)` to clear them.
#[derive(Debug, Clone, Default)]
pub struct SubscriptionChanges {
    /// A new endpoint.
    pub url: Option<String>,
    /// New event types or patterns.
    pub events: Option<Vec<String>>,
    /// A new description, or `Some(None)` to clear it.
    pub description: Option<Option<String>>,
    /// New extra headers, replacing the old ones.
    pub headers: Option<HeaderSet>,
    /// Enable or disable it.
    pub enabled: Option<bool>,
    /// Turn ordered delivery on or off.
    pub ordered: Option<bool>,
    /// A new plugin, or `Some(None)` to drop it.
    pub plugin: Option<Option<PluginName>>,
    /// A new plugin config.
    pub plugin_config: Option<serde_json::Value>,
    /// A new signing secret (`whsec_` + base64).
    pub secret: Option<String>,
}

/// Longest accepted description.
const MAX_DESCRIPTION: usize = 1024;
/// The longest custom header value a subscription may set (8 KiB): a
/// receiver's credential fits; a multi-kilobyte blob is not a header's job.
const MAX_HEADER_VALUE: usize = 8 << 10;

impl App {
    /// Checks a subscription's fields; the same rules for the API and the config.
    /// Makes a plugin uploaded through another node sharing the store known
    /// here before [`App::validate`] looks it up.
    async fn fetch_plugin(&self, sub: &Subscription) {
        if let Some(p) = &sub.plugin {
            self.ctx().plugins.get_or_fetch(p).await;
        }
    }

    fn validate(&self, sub: &Subscription) -> Result<(), AppError> {
        let url = url::Url::parse(&sub.url).map_err(|e| {
            AppError::invalid(
                "invalid_url",
                format!("url {:?} is not a valid URL: {e}", sub.url),
            )
        })?;
        check_literal_target(&url, self.config().delivery.allow_private_targets).map_err(
            |why| {
                AppError::invalid(
                    "invalid_url",
                    format!("url {:?} is not allowed: {why}", sub.url),
                )
            },
        )?;
        let max_headers = self.config().server.max_headers_per_subscription;
        if sub.headers.len() > max_headers {
            return Err(AppError::invalid(
                "too_many_headers",
                format!(
                    "a subscription sets at most {max_headers} headers (server.max_headers_per_subscription); this one sets {}",
                    sub.headers.len()
                ),
            ));
        }
        if let Some((name, _)) = sub
            .headers
            .to_http()
            .find(|(_, value)| value.len() > MAX_HEADER_VALUE)
        {
            return Err(AppError::invalid(
                "invalid_header",
                format!("the value of header {name} is longer than {MAX_HEADER_VALUE} bytes"),
            ));
        }
        if sub.events.is_empty() || sub.events.iter().any(|e| e.trim().is_empty()) {
            return Err(AppError::invalid(
                "invalid_request",
                "events must list at least one event type or pattern",
            ));
        }
        if sub
            .description
            .as_ref()
            .is_some_and(|d| d.len() > MAX_DESCRIPTION)
        {
            return Err(AppError::invalid(
                "invalid_request",
                format!("description is longer than {MAX_DESCRIPTION} bytes"),
            ));
        }
        if let Some(p) = &sub.plugin
            && self.ctx().plugins.get(p).is_none()
        {
            return Err(AppError::invalid(
                "unknown_plugin",
                format!("plugin {p} is not installed"),
            ));
        }
        if !(sub.plugin_config.is_object() || sub.plugin_config.is_null()) {
            return Err(AppError::invalid(
                "invalid_request",
                "plugin_config must be a JSON object",
            ));
        }
        Ok(())
    }

    fn store(&self) -> &dyn Store {
        &*self.ctx().store
    }

    /// Validates and stores a new API-managed subscription, first test-delivering to it when `verify` is set.
    pub async fn create_subscription(
        &self,
        tenant: &Tenant,
        input: NewSubscription,
    ) -> Result<Subscription, AppError> {
        let max = self.config().server.max_subscriptions_per_tenant;
        if self.store().list_subscriptions(tenant).await?.len() >= max {
            return Err(AppError::invalid(
                "too_many_subscriptions",
                format!(
                    "tenant {tenant} has {max} subscriptions, the most allowed (server.max_subscriptions_per_tenant)"
                ),
            ));
        }
        let now = self.now();
        let secret = resolve_secret(input.secret.as_deref())?;
        let sub = Subscription {
            id: SubscriptionId::generate(),
            tenant: tenant.clone(),
            url: input.url,
            events: input.events,
            description: input.description,
            headers: input.headers,
            enabled: input.enabled.unwrap_or(true),
            disabled_reason: None,
            ordered: input.ordered,
            plugin: input.plugin,
            plugin_config: input.plugin_config.unwrap_or(serde_json::Value::Null),
            secret,
            managed_by: ManagedBy::Api,
            created_at: now,
            updated_at: now,
            consecutive_failures: 0,
            previous_secret: None,
        };
        self.fetch_plugin(&sub).await;
        self.validate(&sub)?;
        if input.verify {
            self.verify(&sub)
                .await
                .map_err(|e| AppError::invalid("verification_failed", e.to_string()))?;
        }
        self.store().put_subscription(&sub).await?;
        self.store().durable().await?;
        Ok(sub)
    }

    /// The tenant's subscriptions.
    pub async fn list_subscriptions(&self, tenant: &Tenant) -> Result<Vec<Subscription>, AppError> {
        Ok(self.store().list_subscriptions(tenant).await?)
    }

    /// The tenants that have subscriptions and that `visible` lets through,
    /// by name, with their counts; derived from the stored subscriptions.
    pub async fn list_tenants(
        &self,
        visible: impl Fn(&Tenant) -> bool,
    ) -> Result<Vec<TenantSummary>, AppError> {
        let mut tenants = std::collections::BTreeMap::<Tenant, TenantSummary>::new();
        for sub in self.store().all_subscriptions().await? {
            if !visible(&sub.tenant) {
                continue;
            }
            let summary = tenants
                .entry(sub.tenant.clone())
                .or_insert_with(|| TenantSummary {
                    tenant: sub.tenant.clone(),
                    subscriptions: 0,
                    disabled: 0,
                    failing: 0,
                });
            summary.subscriptions += 1;
            if !sub.enabled {
                summary.disabled += 1;
            } else if sub.consecutive_failures > 0 {
                summary.failing += 1;
            }
        }
        Ok(tenants.into_values().collect())
    }

    /// One subscription of the tenant, or `NotFound`.
    pub async fn get_subscription(
        &self,
        tenant: &Tenant,
        id: &SubscriptionId,
    ) -> Result<Subscription, AppError> {
        self.store()
            .get_subscription(tenant, id)
            .await?
            .ok_or_else(|| AppError::not_found("subscription", id))
    }

    async fn editable(
        &self,
        tenant: &Tenant,
        id: &SubscriptionId,
    ) -> Result<Subscription, AppError> {
        let sub = self.get_subscription(tenant, id).await?;
        if sub.managed_by == ManagedBy::Config {
            return Err(AppError::Conflict {
                code: "config_managed",
                message: format!(
                    "subscription {id} is declared in the config file; change it there"
                ),
            });
        }
        Ok(sub)
    }

    /// Applies changes to an API-managed subscription; config-managed ones are a `Conflict`.
    pub async fn update_subscription(
        &self,
        tenant: &Tenant,
        id: &SubscriptionId,
        patch: SubscriptionChanges,
    ) -> Result<Subscription, AppError> {
        let before = self.editable(tenant, id).await?;
        let mut sub = before.clone();
        if let Some(v) = patch.url {
            sub.url = v;
        }
        if let Some(v) = patch.events {
            sub.events = v;
        }
        if let Some(v) = patch.description {
            sub.description = v;
        }
        if let Some(v) = patch.headers {
            sub.headers = v;
        }
        if let Some(v) = patch.ordered {
            sub.ordered = v;
        }
        if let Some(v) = patch.plugin {
            sub.plugin = v;
        }
        if let Some(v) = patch.plugin_config {
            sub.plugin_config = v;
        }
        if let Some(v) = patch.secret {
            // A replacement by hand ends any rotation overlap.
            sub.secret = resolve_secret(Some(&v))?;
            sub.previous_secret = None;
        }
        if let Some(enabled) = patch.enabled {
            sub.enabled = enabled;
            // Enabling forgives the failure streak; disabling by hand has no reason.
            sub.disabled_reason = None;
            if enabled {
                sub.consecutive_failures = 0;
            }
        }
        self.fetch_plugin(&sub).await;
        self.validate(&sub)?;
        sub.updated_at = self.now();
        self.store().put_subscription(&sub).await?;
        if before.enabled && !sub.enabled {
            self.store().cancel_pending(tenant, id).await?;
        }
        self.store().durable().await?;
        if before.ordered && !sub.ordered {
            // Its waiting deliveries were released into the queue.
            self.inner.wake.notify_one();
        }
        Ok(sub)
    }

    /// The subscription's signing secret (`whsec_...`).
    pub async fn subscription_secret(
        &self,
        tenant: &Tenant,
        id: &SubscriptionId,
    ) -> Result<String, AppError> {
        Ok(self.get_subscription(tenant, id).await?.secret)
    }

    /// Replaces an API-managed subscription's secret with `key` (generated
    /// when `None`) and returns it. Deliveries carry the old key's signature
    /// too for `delivery.secret_rotation_overlap`; config-managed ones are a `Conflict`.
    pub async fn rotate_secret(
        &self,
        tenant: &Tenant,
        id: &SubscriptionId,
        key: Option<String>,
    ) -> Result<String, AppError> {
        let mut sub = self.editable(tenant, id).await?;
        let new = resolve_secret(key.as_deref())?;
        let now = self.now();
        let old = std::mem::replace(&mut sub.secret, new.clone());
        sub.previous_secret = Some(PreviousSecret {
            key: old,
            rotated_at: now,
            until: now.saturating_add(self.config().delivery.secret_rotation_overlap),
        });
        sub.updated_at = now;
        self.store().put_subscription(&sub).await?;
        self.store().durable().await?;
        Ok(new)
    }

    /// Removes an API-managed subscription and cancels its pending deliveries.
    pub async fn delete_subscription(
        &self,
        tenant: &Tenant,
        id: &SubscriptionId,
    ) -> Result<(), AppError> {
        self.editable(tenant, id).await?;
        self.store().delete_subscription(tenant, id).await?;
        self.store().durable().await?;
        Ok(())
    }

    /// Brings sled in line with the config file's subscriptions: adds new
    /// ones, updates changed ones, removes config-managed ones no longer
    /// declared. An unchanged declaration keeps its runtime state (secret when
    /// generated, failure streak, automatic disabling).
    pub async fn reconcile(
        &self,
        declared: &[SubscriptionConfig],
    ) -> Result<ReconcileReport, AppError> {
        // Nodes sharing a store take turns, each reading what the last wrote.
        let _turn = self.store().reconcile_lock().await?;
        let now = self.now();
        let mut report = ReconcileReport::default();
        let existing: Vec<Subscription> = self.store().all_subscriptions().await?;
        // Keyed lookups both ways: a config with thousands of subscriptions
        // must not cost a scan per declaration.
        let by_key: HashMap<(&Tenant, &SubscriptionId), &Subscription> =
            existing.iter().map(|s| ((&s.tenant, &s.id), s)).collect();
        let declared_keys: HashSet<(&Tenant, &SubscriptionId)> =
            declared.iter().map(|c| (&c.tenant, &c.id)).collect();
        for cfg in declared {
            let current = by_key.get(&(&cfg.tenant, &cfg.id)).copied();
            let secret = match (&cfg.secret, current) {
                (Some(s), _) => resolve_secret(Some(s))?,
                (None, Some(c)) => c.secret.clone(),
                (None, None) => Secret::generate().to_whsec(),
            };
            let mut sub = Subscription {
                id: cfg.id.clone(),
                tenant: cfg.tenant.clone(),
                url: cfg.url.clone(),
                events: cfg.events.clone(),
                description: cfg.description.clone(),
                headers: cfg.headers.clone(),
                enabled: cfg.enabled,
                disabled_reason: None,
                ordered: cfg.ordered,
                plugin: cfg.plugin.clone(),
                plugin_config: cfg.plugin_config.clone(),
                secret,
                managed_by: ManagedBy::Config,
                created_at: current.map_or(now, |c| c.created_at),
                updated_at: now,
                consecutive_failures: 0,
                previous_secret: None,
            };
            if let Some(c) = current {
                if same_definition(c, &sub) {
                    continue;
                }
                if c.managed_by == ManagedBy::Api {
                    tracing::warn!(subscription = %c.id, tenant = %c.tenant, "the config file takes over a subscription created through the API");
                }
                sub.consecutive_failures = c.consecutive_failures;
                report.changed += 1;
            } else {
                report.added += 1;
            }
            self.validate(&sub).map_err(|e| {
                AppError::invalid(
                    "invalid_config",
                    format!("subscription {} (tenant {}): {e}", sub.id, sub.tenant),
                )
            })?;
            if current.is_some_and(|c| c.enabled) && !sub.enabled {
                self.store().cancel_pending(&sub.tenant, &sub.id).await?;
            }
            self.store().put_subscription(&sub).await?;
        }
        for old in existing
            .iter()
            .filter(|s| s.managed_by == ManagedBy::Config)
        {
            if !declared_keys.contains(&(&old.tenant, &old.id)) {
                self.store()
                    .delete_subscription(&old.tenant, &old.id)
                    .await?;
                report.removed += 1;
            }
        }
        self.store().durable().await?;
        Ok(report)
    }
}

/// What reconciling the config did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Declared subscriptions that were not stored yet.
    pub added: usize,
    /// Stored subscriptions whose declaration changed.
    pub changed: usize,
    /// Config-managed subscriptions no longer declared, now deleted.
    pub removed: usize,
}

/// Equal as the admin declared them (ignores runtime state and timestamps).
fn same_definition(a: &Subscription, b: &Subscription) -> bool {
    a.managed_by == b.managed_by
        && a.url == b.url
        && a.events == b.events
        && a.description == b.description
        && a.headers == b.headers
        && a.ordered == b.ordered
        && a.plugin == b.plugin
        && a.plugin_config == b.plugin_config
        && a.secret == b.secret
        && (a.enabled || a.disabled_reason.is_some()) == b.enabled
}

fn resolve_secret(given: Option<&str>) -> Result<String, AppError> {
    match given {
        None => Ok(Secret::generate().to_whsec()),
        Some(s) => Secret::parse(s)
            .map(|s| s.to_whsec())
            .map_err(|e| AppError::invalid("invalid_secret", e.to_string())),
    }
}

/// Why the `verify` test send to a new subscription did not pass.
#[derive(Debug, thiserror::Error)]
pub enum EndpointTestError {
    #[error("the test event could not be sent: {0}")]
    Unsendable(String),
    #[error("the endpoint answered {status} to the test event")]
    Status { status: u16 },
    #[error("the endpoint did not answer the test event: {0}")]
    NoResponse(String),
    #[error("the target is refused: {0}")]
    Refused(String),
}

impl App {
    /// Sends a signed `webhook.test` event to a subscription not yet stored;
    /// passes on a 2xx answer.
    async fn verify(&self, sub: &Subscription) -> Result<(), EndpointTestError> {
        let event = Event {
            id: EventId::generate(),
            source_id: None,
            event_type: "webhook.test".into(),
            tenant: sub.tenant.clone(),
            timestamp: self.now(),
            content_type: "application/json".into(),
            payload: Payload::from_value(&serde_json::json!({
                "subscription_id": sub.id,
                "message": "hookshape test event",
            })),
        };
        let req = request::build(&event, sub, None, self.now())
            .map_err(|e| EndpointTestError::Unsendable(e.to_string()))?;
        match worker::send(self.ctx(), &req).await {
            worker::Exchange::Response {
                status: 200..=299, ..
            } => Ok(()),
            worker::Exchange::Response { status, .. } => Err(EndpointTestError::Status { status }),
            worker::Exchange::Refused(why) => Err(EndpointTestError::Refused(why)),
            other => Err(EndpointTestError::NoResponse(format!("{other:?}"))),
        }
    }
}
