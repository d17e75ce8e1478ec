//! Attempts: a subscription's attempt log, newest first with a cursor, and
//! resending an attempt's event.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use super::ApiState;
use super::error::ApiError;
use super::extract::{ApiQuery, Id, TenantAdmin};
use crate::app::{App, AttemptPage};
use crate::ids::{AttemptId, DeliveryId, SubscriptionId};

const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 250;

#[derive(Debug, Deserialize)]
struct PageQuery {
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

async fn list(
    State(app): State<App>,
    TenantAdmin(tenant): TenantAdmin,
    Id(id): Id<SubscriptionId>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<AttemptPage>, ApiError> {
    let limit = query.limit()?;
    let page = app
        .list_attempts(&tenant, &id, limit, query.before.as_ref())
        .await?;
    Ok(Json(page))
}

#[derive(Debug, Serialize)]
struct Resent {
    delivery_id: DeliveryId,
}

/// 202: a new delivery of the attempt's event to its subscription.
async fn resend(
    State(app): State<App>,
    TenantAdmin(tenant): TenantAdmin,
    Id(id): Id<AttemptId>,
) -> Result<(StatusCode, Json<Resent>), ApiError> {
    let delivery_id = app.resend(&tenant, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(Resent { delivery_id })))
}

pub(super) fn router() -> Router<ApiState> {
    Router::new()
        .route(
            "/v1/tenants/{tenant}/subscriptions/{id}/attempts",
            get(list),
        )
        .route("/v1/tenants/{tenant}/attempts/{id}/resend", post(resend))
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
}
