//! `/v1/tenants/{tenant}/subscriptions`: create, list, read, patch, delete.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::LOCATION;
use axum::response::IntoResponse;
use axum::routing::get;

use super::error::ApiError;
use super::extract::{ApiJson, Id, TenantAdmin};
use super::{ApiState, List};
use crate::app::{App, NewSubscription, SubscriptionPatch};
use crate::ids::SubscriptionId;
use crate::model::Subscription;

/// 201 with the subscription (its secret included) and its `Location`.
async fn create(
    State(app): State<App>,
    TenantAdmin(tenant): TenantAdmin,
    ApiJson(input): ApiJson<NewSubscription>,
) -> Result<impl IntoResponse, ApiError> {
    let subscription = app.create_subscription(&tenant, input).await?;
    let location = format!(
        "/v1/tenants/{}/subscriptions/{}",
        subscription.tenant, subscription.id
    );
    Ok((
        StatusCode::CREATED,
        [(LOCATION, location)],
        Json(subscription),
    ))
}

async fn list(
    State(app): State<App>,
    TenantAdmin(tenant): TenantAdmin,
) -> Result<Json<List<Subscription>>, ApiError> {
    let data = app.list_subscriptions(&tenant).await?;
    Ok(Json(List { data }))
}

async fn read(
    State(app): State<App>,
    TenantAdmin(tenant): TenantAdmin,
    Id(id): Id<SubscriptionId>,
) -> Result<Json<Subscription>, ApiError> {
    Ok(Json(app.get_subscription(&tenant, &id).await?))
}

/// 200 with the updated subscription; 409 for one declared in the config.
async fn update(
    State(app): State<App>,
    TenantAdmin(tenant): TenantAdmin,
    Id(id): Id<SubscriptionId>,
    ApiJson(patch): ApiJson<SubscriptionPatch>,
) -> Result<Json<Subscription>, ApiError> {
    Ok(Json(app.update_subscription(&tenant, &id, patch).await?))
}

/// 204; 409 for one declared in the config.
async fn delete(
    State(app): State<App>,
    TenantAdmin(tenant): TenantAdmin,
    Id(id): Id<SubscriptionId>,
) -> Result<StatusCode, ApiError> {
    app.delete_subscription(&tenant, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) fn router() -> Router<ApiState> {
    Router::new()
        .route("/v1/tenants/{tenant}/subscriptions", get(list).post(create))
        .route(
            "/v1/tenants/{tenant}/subscriptions/{id}",
            get(read).patch(update).delete(delete),
        )
}
