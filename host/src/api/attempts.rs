//! Attempts: a subscription's attempt log, newest first with a cursor;
//! sending again, one attempt's event (resend) or every event that finally
//! failed since a time (recover); and the shapes they take and give back.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ApiState;
use super::error::ApiError;
use super::extract::{ApiJson, ApiQuery, Id, TenantAdmin};
use crate::app::{App, AttemptPage};
use crate::clock::Timestamp;
use crate::ids::{AttemptId, DeliveryId, EventId, SubscriptionId, Tenant};
use crate::model::{Attempt, AttemptOutcome, LogLine};

const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 250;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct PageQuery {
    /// 1 to 250; 50 when absent.
    limit: Option<usize>,
    /// The `next` of the previous page.
    before: Option<AttemptId>,
}

impl PageQuery {
    fn limit(&self) -> Result<usize, ApiError> {
        match self.limit {
            None => Ok(DEFAULT_LIMIT),
            Some(n @ 1..=MAX_LIMIT) => Ok(n),
            Some(n) => Err(ApiError::invalid_request(format!(
                "limit must be between 1 and {MAX_LIMIT}, not {n}"
            ))),
        }
    }
}

/// One try at a delivery, with everything needed to debug it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptOut {
    pub id: AttemptId,
    pub tenant: Tenant,
    pub delivery_id: DeliveryId,
    pub event_id: EventId,
    pub event_type: String,
    pub subscription_id: SubscriptionId,
    pub created_at: Timestamp,
    /// Counts from 1 within a delivery.
    pub attempt: u32,
    pub outcome: AttemptOutcome,
    /// The receiver's status; null when no answer came.
    pub status_code: Option<u16>,
    pub duration_ms: u64,
    /// As sent, with secret-looking values replaced.
    pub request_headers: BTreeMap<String, String>,
    /// Up to 64 KiB; null when nothing was sent.
    pub request_body: Option<String>,
    pub request_body_truncated: bool,
    /// Up to 64 KiB; null when no answer came.
    pub response_body: Option<String>,
    pub response_body_truncated: bool,
    /// What the plugin logged, in order.
    pub plugin_logs: Vec<LogLine>,
    /// The plugin version that ran, when one did.
    pub plugin_sha256: Option<String>,
    /// Why it failed or was skipped.
    pub error: Option<String>,
}

impl From<Attempt> for AttemptOut {
    fn from(a: Attempt) -> Self {
        AttemptOut {
            id: a.id,
            tenant: a.tenant,
            delivery_id: a.delivery_id,
            event_id: a.event_id,
            event_type: a.event_type,
            subscription_id: a.subscription_id,
            created_at: a.created_at,
            attempt: a.attempt,
            outcome: a.outcome,
            status_code: a.status_code,
            duration_ms: a.duration_ms,
            request_headers: a.request_headers,
            request_body: a.request_body,
            request_body_truncated: a.request_body_truncated,
            response_body: a.response_body,
            response_body_truncated: a.response_body_truncated,
            plugin_logs: a.plugin_logs,
            plugin_sha256: a.plugin_sha256,
            error: a.error,
        }
    }
}

/// A page of attempts, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptPageOut {
    pub data: Vec<AttemptOut>,
    /// The `before` of the next page; null on the last one.
    pub next: Option<AttemptId>,
}

impl From<AttemptPage> for AttemptPageOut {
    fn from(page: AttemptPage) -> Self {
        AttemptPageOut {
            data: page.attempts.into_iter().map(Into::into).collect(),
            next: page.next,
        }
    }
}

#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/subscriptions/{id}/attempts",
    tag = "attempts",
    params(super::openapi::SubscriptionPath, PageQuery),
    responses(
        (status = 200, description = "Attempts, newest first.", body = AttemptPageOut),
        (status = 404, description = "No such subscription in the tenant.", body = super::openapi::ErrorBody),
    ),
)]
async fn list(
    State(app): State<App>,
    TenantAdmin(tenant): TenantAdmin,
    Id(id): Id<SubscriptionId>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<AttemptPageOut>, ApiError> {
    let limit = query.limit()?;
    let page = app
        .list_attempts(&tenant, &id, limit, query.before.as_ref())
        .await?;
    Ok(Json(page.into()))
}

/// The answer to a resend.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResendOut {
    /// The new delivery of the attempt's event.
    pub delivery_id: DeliveryId,
}

/// 202: a new delivery of the attempt's event to its subscription.
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenant}/attempts/{id}/resend",
    tag = "attempts",
    params(super::openapi::AttemptPath),
    responses(
        (status = 202, body = ResendOut),
        (status = 404, description = "No such attempt in the tenant.", body = super::openapi::ErrorBody),
        (status = 409, description = "The subscription is disabled.", body = super::openapi::ErrorBody),
    ),
)]
async fn resend(
    State(app): State<App>,
    TenantAdmin(tenant): TenantAdmin,
    Id(id): Id<AttemptId>,
) -> Result<(StatusCode, Json<ResendOut>), ApiError> {
    let delivery_id = app.resend(&tenant, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(ResendOut { delivery_id })))
}

/// The body of a recover.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoverIn {
    /// RFC 3339: events ingested at or after this time are looked at.
    pub since: Timestamp,
}

/// The answer to a recover.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecoverOut {
    /// How many new deliveries were made.
    pub deliveries: usize,
}

/// 202: a new delivery of every event ingested since `since` whose delivery
/// to the subscription finally failed, oldest first; 409 when disabled.
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenant}/subscriptions/{id}/recover",
    tag = "attempts",
    params(super::openapi::SubscriptionPath),
    request_body = RecoverIn,
    responses(
        (status = 202, body = RecoverOut),
        (status = 404, description = "No such subscription in the tenant.", body = super::openapi::ErrorBody),
        (status = 409, description = "The subscription is disabled.", body = super::openapi::ErrorBody),
    ),
)]
async fn recover(
    State(app): State<App>,
    TenantAdmin(tenant): TenantAdmin,
    Id(id): Id<SubscriptionId>,
    ApiJson(input): ApiJson<RecoverIn>,
) -> Result<(StatusCode, Json<RecoverOut>), ApiError> {
    let deliveries = app.recover(&tenant, &id, input.since).await?;
    Ok((StatusCode::ACCEPTED, Json(RecoverOut { deliveries })))
}

pub(super) fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(resend))
        .routes(routes!(recover))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(n: Option<usize>) -> Result<usize, ApiError> {
        PageQuery {
            limit: n,
            before: None,
        }
        .limit()
    }

    #[test]
    fn limit_defaults_and_stays_in_range() {
        assert_eq!(limit(None), Ok(DEFAULT_LIMIT));
        assert_eq!(limit(Some(1)), Ok(1));
        assert_eq!(limit(Some(250)), Ok(250));
        for bad in [0, 251] {
            let err = limit(Some(bad)).unwrap_err();
            assert_eq!(err.status(), StatusCode::UNPROCESSABLE_ENTITY);
            assert_eq!(err.code(), "invalid_request");
        }
    }

    #[test]
    fn an_attempt_answer_is_the_stored_attempt() {
        let attempt = Attempt {
            id: AttemptId::generate(),
            tenant: "acme".parse().unwrap(),
            delivery_id: DeliveryId::generate(),
            event_id: EventId::generate(),
            event_type: "a.b".into(),
            subscription_id: "s1".parse().unwrap(),
            created_at: Timestamp(0),
            attempt: 1,
            outcome: AttemptOutcome::TransformFailed,
            status_code: None,
            duration_ms: 3,
            request_headers: BTreeMap::from([("x-team".into(), "data".into())]),
            request_body: None,
            request_body_truncated: false,
            response_body: Some("no".into()),
            response_body_truncated: true,
            plugin_logs: vec![LogLine {
                level: "info".into(),
                message: "hi".into(),
            }],
            plugin_sha256: Some("ab".into()),
            error: Some("plugin error: x".into()),
        };
        let stored = serde_json::to_value(&attempt).unwrap();
        let page = AttemptPageOut::from(AttemptPage {
            attempts: vec![attempt],
            next: None,
        });
        let shown = serde_json::to_value(page).unwrap();
        assert_eq!(shown["data"][0], stored);
        assert_eq!(shown["next"], serde_json::Value::Null);
    }
}
