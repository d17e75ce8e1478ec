//! `GET /v1/tenants`: the tenants the caller administers that have
//! subscriptions, with their counts; where the console starts. Tenants are
//! not stored on their own: the list is derived from the subscriptions.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiError;
use super::extract::Admin;
use super::{ApiState, List};
use crate::app::{App, TenantSummary};
use crate::ids::Tenant;

/// A tenant with subscriptions.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantOut {
    pub tenant: Tenant,
    /// How many subscriptions it has.
    pub subscriptions: usize,
    /// How many of them are disabled.
    pub disabled: usize,
    /// How many enabled ones have finally failed deliveries in a row.
    pub failing: usize,
}

impl From<TenantSummary> for TenantOut {
    fn from(t: TenantSummary) -> Self {
        TenantOut {
            tenant: t.tenant,
            subscriptions: t.subscriptions,
            disabled: t.disabled,
            failing: t.failing,
        }
    }
}

/// By name; only the tenants the token may administer.
#[utoipa::path(
    get,
    path = "/v1/tenants",
    tag = "tenants",
    responses(
        (status = 200, body = List<TenantOut>),
    ),
)]
async fn list(
    State(app): State<App>,
    Admin(grant): Admin,
) -> Result<Json<List<TenantOut>>, ApiError> {
    let tenants = app.list_tenants(|t| grant.administers(t)).await?;
    let data = tenants.into_iter().map(Into::into).collect();
    Ok(Json(List { data }))
}

pub(super) fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new().routes(routes!(list))
}
