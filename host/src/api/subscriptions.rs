//! `/v1/tenants/{tenant}/subscriptions`: create, list, read, patch, delete,
//! and the shapes they take in and give back.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::LOCATION;
use axum::response::IntoResponse;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiError;
use super::extract::{ApiJson, Id, TenantAdmin};
use super::{ApiState, List};
use crate::app::{App, NewSubscription, SubscriptionChanges};
use crate::clock::Timestamp;
use crate::headers::HeaderSet;
use crate::ids::{PluginName, SubscriptionId, Tenant};
use crate::model::{ManagedBy, Subscription};

/// A subscription to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionIn {
    /// Where deliveries are posted: `http` or `https`.
    pub url: String,
    /// Exact event types or patterns (`project.*`, `*`); at least one.
    pub events: Vec<String>,
    /// Free text, up to 1 KiB.
    #[serde(default)]
    pub description: Option<String>,
    /// Headers added to every delivery. Taken as a plain object here and
    /// checked as a [`HeaderSet`] after, so a refused one answers
    /// `invalid_header` rather than `invalid_request`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Defaults to true.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Deliver one at a time, in ingest order.
    #[serde(default)]
    pub ordered: bool,
    /// The plugin that transforms each delivery.
    #[serde(default)]
    pub plugin: Option<PluginName>,
    /// The plugin's settings: a JSON object.
    #[serde(default)]
    pub plugin_config: Option<serde_json::Value>,
    /// `whsec_` + base64 key; generated when absent.
    #[serde(default)]
    pub secret: Option<String>,
    /// Send a `webhook.test` event first; store nothing unless it gets a 2xx.
    #[serde(default)]
    pub verify: bool,
}

impl TryFrom<SubscriptionIn> for NewSubscription {
    type Error = ApiError;

    fn try_from(input: SubscriptionIn) -> Result<Self, ApiError> {
        Ok(NewSubscription {
            url: input.url,
            events: input.events,
            description: input.description,
            headers: HeaderSet::try_from(input.headers)?,
            enabled: input.enabled,
            ordered: input.ordered,
            plugin: input.plugin,
            plugin_config: input.plugin_config,
            secret: input.secret,
            verify: input.verify,
        })
    }
}

/// A partial update: absent fields stay; `null` clears the nullable ones.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionPatch {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "nullable")]
    pub description: Option<Option<String>>,
    /// Replaces every header; checked as for [`SubscriptionIn::headers`].
    pub headers: Option<BTreeMap<String, String>>,
    /// Enabling clears the failure streak; disabling cancels pending deliveries.
    pub enabled: Option<bool>,
    pub ordered: Option<bool>,
    /// `null` removes the plugin.
    #[serde(default, deserialize_with = "nullable")]
    pub plugin: Option<Option<PluginName>>,
    pub plugin_config: Option<serde_json::Value>,
    pub secret: Option<String>,
}

/// Present-and-null becomes `Some(None)`; absent stays `None` via `default`.
fn nullable<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

impl TryFrom<SubscriptionPatch> for SubscriptionChanges {
    type Error = ApiError;

    fn try_from(patch: SubscriptionPatch) -> Result<Self, ApiError> {
        Ok(SubscriptionChanges {
            url: patch.url,
            events: patch.events,
            description: patch.description,
            headers: patch.headers.map(HeaderSet::try_from).transpose()?,
            enabled: patch.enabled,
            ordered: patch.ordered,
            plugin: patch.plugin,
            plugin_config: patch.plugin_config,
            secret: patch.secret,
        })
    }
}

/// A subscription as the API shows it, without its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionOut {
    pub id: SubscriptionId,
    pub tenant: Tenant,
    pub url: String,
    /// Exact event types or patterns (`project.*`, `*`).
    pub events: Vec<String>,
    pub description: Option<String>,
    /// Header names as given, to values.
    pub headers: HeaderSet,
    pub enabled: bool,
    /// Why hookshape disabled it (410, too many failures); null when enabled or disabled by hand.
    pub disabled_reason: Option<String>,
    /// Deliveries go one at a time, in ingest order.
    pub ordered: bool,
    pub plugin: Option<PluginName>,
    /// The plugin's settings; null when unset.
    pub plugin_config: serde_json::Value,
    /// `api`, or `config` when the config file declares it (read-only here).
    pub managed_by: ManagedBy,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Finally-failed deliveries in a row, for `disable_after_failures`.
    pub consecutive_failures: u32,
}

impl From<Subscription> for SubscriptionOut {
    fn from(s: Subscription) -> Self {
        SubscriptionOut {
            id: s.id,
            tenant: s.tenant,
            url: s.url,
            events: s.events,
            description: s.description,
            headers: s.headers,
            enabled: s.enabled,
            disabled_reason: s.disabled_reason,
            ordered: s.ordered,
            plugin: s.plugin,
            plugin_config: s.plugin_config,
            managed_by: s.managed_by,
            created_at: s.created_at,
            updated_at: s.updated_at,
            consecutive_failures: s.consecutive_failures,
        }
    }
}

/// A subscription with its secret: the answer to a create.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionWithSecretOut {
    #[serde(flatten)]
    pub subscription: SubscriptionOut,
    /// `whsec_` + base64 key, for verifying the signatures.
    pub secret: String,
}

impl From<Subscription> for SubscriptionWithSecretOut {
    fn from(mut s: Subscription) -> Self {
        let secret = std::mem::take(&mut s.secret);
        SubscriptionWithSecretOut {
            subscription: s.into(),
            secret,
        }
    }
}

/// 201 with the subscription (its secret included) and its `Location`.
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenant}/subscriptions",
    tag = "subscriptions",
    params(super::openapi::TenantPath),
    request_body = SubscriptionIn,
    responses(
        (status = 201, description = "Created; the only answer that shows the secret.", body = SubscriptionWithSecretOut),
    ),
)]
async fn create(
    State(app): State<App>,
    TenantAdmin(tenant): TenantAdmin,
    ApiJson(input): ApiJson<SubscriptionIn>,
) -> Result<impl IntoResponse, ApiError> {
    let subscription = app.create_subscription(&tenant, input.try_into()?).await?;
    let location = format!(
        "/v1/tenants/{}/subscriptions/{}",
        subscription.tenant, subscription.id
    );
    Ok((
        StatusCode::CREATED,
        [(LOCATION, location)],
        Json(SubscriptionWithSecretOut::from(subscription)),
    ))
}

#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/subscriptions",
    tag = "subscriptions",
    params(super::openapi::TenantPath),
    responses(
        (status = 200, description = "The tenant's subscriptions.", body = List<SubscriptionOut>),
    ),
)]
async fn list(
    State(app): State<App>,
    TenantAdmin(tenant): TenantAdmin,
) -> Result<Json<List<SubscriptionOut>>, ApiError> {
    let subscriptions = app.list_subscriptions(&tenant).await?;
    let data = subscriptions.into_iter().map(Into::into).collect();
    Ok(Json(List { data }))
}

#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/subscriptions/{id}",
    tag = "subscriptions",
    params(super::openapi::SubscriptionPath),
    responses(
        (status = 200, body = SubscriptionOut),
        (status = 404, description = "No such subscription in the tenant.", body = super::openapi::ErrorBody),
    ),
)]
async fn read(
    State(app): State<App>,
    TenantAdmin(tenant): TenantAdmin,
    Id(id): Id<SubscriptionId>,
) -> Result<Json<SubscriptionOut>, ApiError> {
    Ok(Json(app.get_subscription(&tenant, &id).await?.into()))
}

/// 200 with the updated subscription; 409 for one declared in the config.
#[utoipa::path(
    patch,
    path = "/v1/tenants/{tenant}/subscriptions/{id}",
    tag = "subscriptions",
    params(super::openapi::SubscriptionPath),
    request_body = SubscriptionPatch,
    responses(
        (status = 200, body = SubscriptionOut),
        (status = 404, description = "No such subscription in the tenant.", body = super::openapi::ErrorBody),
        (status = 409, description = "Declared in the config file (`config_managed`).", body = super::openapi::ErrorBody),
    ),
)]
async fn update(
    State(app): State<App>,
    TenantAdmin(tenant): TenantAdmin,
    Id(id): Id<SubscriptionId>,
    ApiJson(patch): ApiJson<SubscriptionPatch>,
) -> Result<Json<SubscriptionOut>, ApiError> {
    let updated = app
        .update_subscription(&tenant, &id, patch.try_into()?)
        .await?;
    Ok(Json(updated.into()))
}

/// A signing secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecretKey {
    /// `whsec_` + base64 key.
    pub key: String,
}

/// The body of a rotation: empty, `{}` or `{"key"}`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateIn {
    /// `whsec_` + base64 key; generated when absent.
    #[serde(default)]
    pub key: Option<String>,
}

/// `{"key"}`: the subscription's signing secret.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/subscriptions/{id}/secret",
    tag = "subscriptions",
    params(super::openapi::SubscriptionPath),
    responses(
        (status = 200, body = SecretKey),
        (status = 404, description = "No such subscription in the tenant.", body = super::openapi::ErrorBody),
    ),
)]
async fn read_secret(
    State(app): State<App>,
    TenantAdmin(tenant): TenantAdmin,
    Id(id): Id<SubscriptionId>,
) -> Result<Json<SecretKey>, ApiError> {
    let key = app.subscription_secret(&tenant, &id).await?;
    Ok(Json(SecretKey { key }))
}

/// `{"key"}`: the new secret, the given one or generated when none is given;
/// 409 for one declared in the config.
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenant}/subscriptions/{id}/secret/rotate",
    tag = "subscriptions",
    params(super::openapi::SubscriptionPath),
    request_body = Option<RotateIn>,
    responses(
        (status = 200, body = SecretKey),
        (status = 404, description = "No such subscription in the tenant.", body = super::openapi::ErrorBody),
        (status = 409, description = "Declared in the config file (`config_managed`).", body = super::openapi::ErrorBody),
    ),
)]
async fn rotate_secret(
    State(app): State<App>,
    TenantAdmin(tenant): TenantAdmin,
    Id(id): Id<SubscriptionId>,
    given: Option<ApiJson<RotateIn>>,
) -> Result<Json<SecretKey>, ApiError> {
    let given = given.map(|ApiJson(r)| r).unwrap_or_default();
    let key = app.rotate_secret(&tenant, &id, given.key).await?;
    Ok(Json(SecretKey { key }))
}

/// 204; 409 for one declared in the config.
#[utoipa::path(
    delete,
    path = "/v1/tenants/{tenant}/subscriptions/{id}",
    tag = "subscriptions",
    params(super::openapi::SubscriptionPath),
    responses(
        (status = 204, description = "Deleted; its pending deliveries are cancelled."),
        (status = 404, description = "No such subscription in the tenant.", body = super::openapi::ErrorBody),
        (status = 409, description = "Declared in the config file (`config_managed`).", body = super::openapi::ErrorBody),
    ),
)]
async fn delete(
    State(app): State<App>,
    TenantAdmin(tenant): TenantAdmin,
    Id(id): Id<SubscriptionId>,
) -> Result<StatusCode, ApiError> {
    app.delete_subscription(&tenant, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(read, update, delete))
        .routes(routes!(read_secret))
        .routes(routes!(rotate_secret))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn subscription() -> Subscription {
        Subscription {
            headers: HeaderSet::from_pairs([("X-Team", "data")]).unwrap(),
            ..Subscription::for_tests("s1")
        }
    }

    #[test]
    fn answers_show_the_stored_fields_and_the_secret_where_asked() {
        let stored = serde_json::to_value(subscription()).unwrap();
        let created =
            serde_json::to_value(SubscriptionWithSecretOut::from(subscription())).unwrap();
        assert_eq!(created, stored, "v1 answers are the stored document");
        let plain = serde_json::to_value(SubscriptionOut::from(subscription())).unwrap();
        assert_eq!(plain.get("secret"), None);
        assert_eq!(plain["headers"], json!({"X-Team": "data"}));
    }

    #[test]
    fn refused_headers_answer_invalid_header() {
        let input: SubscriptionIn = serde_json::from_value(json!({
            "url": "https://example.com", "events": ["*"], "headers": {"Host": "x"}
        }))
        .unwrap();
        let err = NewSubscription::try_from(input).unwrap_err();
        assert_eq!(err.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(err.code(), "invalid_header");
        assert_eq!(err.message(), r#""Host" is reserved for hookshape"#);

        let patch: SubscriptionPatch =
            serde_json::from_value(json!({"headers": {"bad name": "x"}})).unwrap();
        let err = SubscriptionChanges::try_from(patch).unwrap_err();
        assert_eq!(err.code(), "invalid_header");
    }

    #[test]
    fn patches_tell_null_from_absent() {
        let patch: SubscriptionPatch =
            serde_json::from_value(json!({"description": null})).unwrap();
        let changes = SubscriptionChanges::try_from(patch).unwrap();
        assert_eq!(changes.description, Some(None));
        assert_eq!(changes.plugin, None);
        assert_eq!(changes.headers, None);
    }
}
