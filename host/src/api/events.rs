//! `/v1/tenants/{tenant}/events`: ingest (publisher) and read back (admin).

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};

use super::ApiState;
use super::error::ApiError;
use super::extract::{ApiJson, Id, TenantAdmin, TenantPublisher};
use crate::app::{App, EventDetails, IngestReceipt, NewEvent};
use crate::ids::EventId;

/// 202 once the event and its deliveries are stored; 200 for a repeated
/// source id, with the first answer and `"duplicate": true`.
async fn ingest(
    State(app): State<App>,
    TenantPublisher(tenant): TenantPublisher,
    ApiJson(event): ApiJson<NewEvent>,
) -> Result<(StatusCode, Json<IngestReceipt>), ApiError> {
    let receipt = app.ingest(&tenant, event).await?;
    let status = if receipt.duplicate {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(receipt)))
}

async fn get_event(
    State(app): State<App>,
    TenantAdmin(tenant): TenantAdmin,
    Id(id): Id<EventId>,
) -> Result<Json<EventDetails>, ApiError> {
    Ok(Json(app.get_event(&tenant, &id).await?))
}

pub(super) fn router() -> Router<ApiState> {
    Router::new()
        .route("/v1/tenants/{tenant}/events", post(ingest))
        .route("/v1/tenants/{tenant}/events/{id}", get(get_event))
}
